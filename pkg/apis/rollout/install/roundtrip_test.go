package install_test

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apifuzzer "k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metafuzzer "k8s.io/apimachinery/pkg/apis/meta/fuzzer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/randfill"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/fuzzer"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/install"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func newScheme() (*runtime.Scheme, runtimeserializer.CodecFactory) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return scheme, runtimeserializer.NewCodecFactory(scheme)
}

// newFiller fills objects the way the round-trip tests do; the seed is logged
// so that a failure can be reproduced.
// convertVia converts between two versions the way the API server does,
// through the hub: a scheme has no direct conversions between versions.
func convertVia(scheme *runtime.Scheme, in, out runtime.Object) error {
	hub := &rollout.Rollout{}
	if err := scheme.Convert(in, hub, nil); err != nil {
		return err
	}
	return scheme.Convert(hub, out, nil)
}

func newFiller(t *testing.T, codecs runtimeserializer.CodecFactory) *randfill.Filler {
	seed := time.Now().UnixNano()
	t.Logf("fuzzer seed: %d", seed)
	return apifuzzer.FuzzerFor(apifuzzer.MergeFuzzerFuncs(metafuzzer.Funcs, fuzzer.Funcs), rand.NewSource(seed), codecs)
}

// TestRoundTripTypes fills internal objects at random and sends them through
// every served version: internal → vN → JSON → vN (defaulted) → internal.
func TestRoundTripTypes(t *testing.T) {
	roundtrip.RoundTripTestForAPIGroup(t, install.Install, fuzzer.Funcs)
}

// TestRoundTripProtobufTypes is TestRoundTripTypes through protobuf, the
// encoding of generated.pb.go: internal → vN → protobuf → vN → internal.
func TestRoundTripProtobufTypes(t *testing.T) {
	roundtrip.RoundTripProtobufTestForAPIGroup(t, install.Install, fuzzer.Funcs)
}

// TestRoundTripExternalTypes sends random versioned objects through JSON,
// YAML, CBOR and protobuf.
func TestRoundTripExternalTypes(t *testing.T) {
	scheme, codecs := newScheme()
	roundtrip.RoundTripExternalTypes(t, scheme, codecs, newFiller(t, codecs), nil)
}

// TestRoundTripToUnstructured checks that JSON and CBOR agree about every
// served type, as clients that use dynamic (unstructured) objects see them.
func TestRoundTripToUnstructured(t *testing.T) {
	scheme, _ := newScheme()
	// The option kinds that metav1 registers in every group have no internal
	// version of ours; they are filled directly.
	noInternal := sets.New[schema.GroupVersionKind]()
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		if !scheme.Recognizes(gvk.GroupKind().WithVersion(runtime.APIVersionInternal)) {
			noInternal.Insert(gvk)
		}
	}
	roundtrip.RoundtripToUnstructured(t, scheme, fuzzer.Funcs, sets.New[schema.GroupVersionKind](), noInternal)
}

// TestFuzzedConversionBetweenVersions converts random objects of each version
// to the other version and back, through the hub, and requires them unchanged:
// the versions are promised to hold the same information.
func TestFuzzedConversionBetweenVersions(t *testing.T) {
	scheme, codecs := newScheme()
	f := newFiller(t, codecs)
	for _, tc := range []struct {
		name     string
		newObj   func() runtime.Object
		newOther func() runtime.Object
	}{
		{"v1alpha1 via v1beta1", func() runtime.Object { return &v1alpha1.Rollout{} }, func() runtime.Object { return &v1beta1.Rollout{} }},
		{"v1beta1 via v1alpha1", func() runtime.Object { return &v1beta1.Rollout{} }, func() runtime.Object { return &v1alpha1.Rollout{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 500 {
				original := tc.newObj()
				f.Fill(original)
				hub, other, back, hub2 := &rollout.Rollout{}, tc.newOther(), tc.newObj(), &rollout.Rollout{}
				require.NoError(t, scheme.Convert(original, hub, nil))
				require.NoError(t, scheme.Convert(hub, other, nil))
				require.NoError(t, scheme.Convert(other, hub2, nil))
				require.NoError(t, scheme.Convert(hub2, back, nil))
				if !apiequality.Semantic.DeepEqual(original, back) {
					t.Fatalf("conversion lost information: %s", cmp.Diff(original, back))
				}
			}
		})
	}
}

// fullV1beta1Rollout sets every field of a v1beta1 Rollout, so that a field
// the conversion forgets shows up as a difference.
// TestFullyPopulatedFixtures fails when a field is added to the types and not here.
func fullV1beta1Rollout() *v1beta1.Rollout {
	t0 := metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := metav1.Date(2026, 1, 2, 3, 9, 0, 0, time.UTC)
	analysis := func(name string) *v1beta1.RolloutAnalysis {
		return &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
			Name:                  name,
			Interval:              metav1.Duration{Duration: 45 * time.Second},
			Count:                 4,
			FailureLimit:          1,
			InconclusiveLimit:     2,
			ConsecutiveErrorLimit: ptr.To[int32](3),
			Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
				Address: "http://prometheus.monitoring:9090",
				Query:   "sum(rate(errors[1m]))",
			}},
			ThresholdRange:   &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse("-1")), Max: ptr.To(resource.MustParse("50m"))},
			SuccessCondition: "result < 0.05",
		}}}
	}
	steps := func() []v1beta1.CanaryStep {
		return []v1beta1.CanaryStep{{
			TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{
				Traffic: ptr.To("35%"),
				RequestHeaderModifier: &v1beta1.HTTPHeaderFilter{
					Set:    []v1beta1.HTTPHeader{{Name: "X-Set", Value: "1"}},
					Add:    []v1beta1.HTTPHeader{{Name: "X-Add", Value: "2"}},
					Remove: []string{"X-Remove"},
				},
				Matches: []v1beta1.HttpRouteMatch{{
					Path:        &v1beta1.HTTPPathMatch{Type: ptr.To("PathPrefix"), Value: ptr.To("/api")},
					Headers:     []v1beta1.HTTPHeaderMatch{{Type: ptr.To("Exact"), Name: "X-Canary", Value: "yes"}},
					QueryParams: []v1beta1.HTTPQueryParamMatch{{Type: ptr.To("RegularExpression"), Name: "c", Value: "^1$"}},
				}},
			},
			Replicas: ptr.To(intstr.FromString("20%")),
			Pause:    v1beta1.StepPause{Duration: ptr.To[int32](30)},
			Analysis: analysis("step-check"),
		}}
	}
	routings := func() []v1beta1.TrafficRoutingRef {
		return []v1beta1.TrafficRoutingRef{{
			Service:            "web",
			GracePeriodSeconds: 7,
			Ingress:            &v1beta1.IngressTrafficRouting{ClassType: "nginx", Name: "web"},
			Gateway:            &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To("web-route")},
			CustomNetworkRefs:  []v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web-vs"}},
		}}
	}
	common := func(i int32) v1beta1.CommonStatus {
		return v1beta1.CommonStatus{
			ObservedWorkloadGeneration: 9,
			ObservedRolloutID:          "rid-1",
			RolloutHash:                "hash",
			StableRevision:             "stable-abc",
			PodTemplateHash:            "canary-def",
			CurrentStepIndex:           i,
			NextStepIndex:              i + 1,
			FinalisingStep:             v1beta1.FinalisingStepRouteTrafficToNew,
			CurrentStepState:           v1beta1.CanaryStepStatePaused,
			Message:                    "step paused",
			LastUpdateTime:             &t1,
			StepStartTime:              &t0,
			StableReplicas:             8,
			StableReadyReplicas:        7,
			Traffic: &v1beta1.TrafficStatus{
				Weight:  ptr.To[int32](20),
				Matches: steps()[0].Matches,
			},
		}
	}
	return &v1beta1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.SchemeGroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			Strategy: v1beta1.RolloutStrategy{
				Paused:                true,
				AbortRewritesTemplate: true,
				Canary: &v1beta1.CanaryStrategy{
					Steps:            steps(),
					TrafficRoutings:  routings(),
					FailureThreshold: ptr.To(intstr.FromInt32(2)),
					PatchPodTemplateMetadata: &v1beta1.PatchPodTemplateMetadata{
						Annotations: map[string]string{"example.com/a": "b"},
						Labels:      map[string]string{"track": "canary"},
					},
					EnableExtraWorkloadForCanary: true,
					DisableGenerateCanaryService: true,
					Analysis:                     analysis("canary-check"),
				},
				BlueGreen: &v1beta1.BlueGreenStrategy{
					Steps:                        steps(),
					TrafficRoutings:              routings(),
					FailureThreshold:             ptr.To(intstr.FromString("10%")),
					DisableGenerateCanaryService: true,
					Analysis:                     analysis("bg-check"),
				},
			},
			Disabled:                true,
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
		Status: v1beta1.RolloutStatus{
			ObservedGeneration: 3,
			CanaryStatus:       &v1beta1.CanaryStatus{CommonStatus: common(1), CanaryRevision: "def", CanaryReplicas: 2, CanaryReadyReplicas: 1},
			BlueGreenStatus:    &v1beta1.BlueGreenStatus{CommonStatus: common(1), UpdatedRevision: "def", UpdatedReplicas: 10, UpdatedReadyReplicas: 9},
			Conditions: []v1beta1.RolloutCondition{{
				Type:               v1beta1.RolloutConditionProgressing,
				Status:             corev1.ConditionTrue,
				LastUpdateTime:     t1,
				LastTransitionTime: t0,
				Reason:             v1beta1.ProgressingReasonInRolling,
				Message:            "rolling",
			}},
			Phase:            v1beta1.RolloutPhaseProgressing,
			Message:          "step 1 paused",
			CurrentStepIndex: 1,
			CurrentStepState: v1beta1.CanaryStepStatePaused,
			PendingAction: &v1beta1.RolloutActionRequest{
				Type: v1beta1.RolloutActionPromote, StepIndex: 1, Full: true, ToStepIndex: ptr.To[int32](2), Reason: "looks good",
				RequestedBy: "alice", RequestedAt: t1,
			},
			Abort: &v1beta1.RolloutAbortStatus{
				Reason: v1beta1.AbortReasonMetricCheck, Message: "error rate", Revision: "old", StepIndex: 2, Time: t0,
			},
			AnalysisResults: []v1beta1.MetricCheckResult{{
				Name: "step-check", StepIndex: 1, Phase: v1beta1.MetricCheckRunning, Count: 3, Successful: 1,
				Failed: 1, Errors: 1, LastValue: "0.01", Message: "ok", StartedAt: &t0, LastMeasuredAt: &t1,
				Inconclusive: 1, ConsecutiveErrors: 1,
				Measurements: []v1beta1.Measurement{{Phase: v1beta1.MetricCheckFailed, Value: "0.5", Message: "above max", Time: t1}},
			}},
		},
	}
}

// assertFullyPopulated fails for every zero leaf field under v, so that the
// fixtures above stay complete as the types grow.
func assertFullyPopulated(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Interface().(type) {
	case metav1.TypeMeta, metav1.ObjectMeta:
		return // machinery, not API fields of ours
	case resource.Quantity, intstr.IntOrString, metav1.Time, metav1.Duration:
		assert.False(t, v.IsZero(), "%s is not set", path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if assert.False(t, v.IsNil(), "%s is not set", path) {
			assertFullyPopulated(t, v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name := path + "." + f.Name
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				name = path // inlined
			}
			assertFullyPopulated(t, v.Field(i), name)
		}
	case reflect.Slice, reflect.Map:
		if assert.Positive(t, v.Len(), "%s is empty", path) && v.Kind() == reflect.Slice {
			for i := range v.Len() {
				assertFullyPopulated(t, v.Index(i), path+"[]")
			}
		}
	default:
		assert.False(t, v.IsZero(), "%s is not set", path)
	}
}

func TestFullyPopulatedFixtures(t *testing.T) {
	assertFullyPopulated(t, reflect.ValueOf(fullV1beta1Rollout()), "v1beta1.Rollout")

	scheme, _ := newScheme()
	alpha := &v1alpha1.Rollout{}
	require.NoError(t, convertVia(scheme, fullV1beta1Rollout(), alpha))
	assertFullyPopulated(t, reflect.ValueOf(alpha), "v1alpha1.Rollout")
}

// TestConvertFullObjectBetweenVersions converts an object with every field set
// from v1beta1 to v1alpha1 and back, through the scheme and through JSON.
func TestConvertFullObjectBetweenVersions(t *testing.T) {
	scheme, codecs := newScheme()
	original := fullV1beta1Rollout()

	alpha := &v1alpha1.Rollout{}
	require.NoError(t, convertVia(scheme, original, alpha))
	// Spot-check the fields whose shape differs between the versions.
	require.NotNil(t, alpha.Spec.ObjectRef.WorkloadRef)
	assert.Equal(t, v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, *alpha.Spec.ObjectRef.WorkloadRef)
	assert.Equal(t, ptr.To[int32](35), alpha.Spec.Strategy.Canary.Steps[0].Weight)
	assert.Equal(t, ptr.To[int32](35), alpha.Spec.Strategy.BlueGreen.Steps[0].Weight)
	assert.Equal(t, []v1alpha1.CustomNetworkRef{{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web-vs"}},
		alpha.Spec.Strategy.Canary.TrafficRoutings[0].CustomNetworkRefs)

	back := &v1beta1.Rollout{}
	require.NoError(t, convertVia(scheme, alpha, back))
	back.TypeMeta = original.TypeMeta // Convert does not set the target's kind
	assert.True(t, apiequality.Semantic.DeepEqual(original, back), "v1beta1 → v1alpha1 → v1beta1 changed the object: %s", cmp.Diff(original, back))

	// The same through the wire, as the API server does it: the hub encoded as
	// v1alpha1 JSON, decoded to the hub, encoded as v1beta1 JSON and decoded.
	start := &rollout.Rollout{}
	require.NoError(t, scheme.Convert(original, start, nil))
	alphaJSON, err := runtime.Encode(codecs.LegacyCodec(v1alpha1.SchemeGroupVersion), start)
	require.NoError(t, err)
	assert.Contains(t, string(alphaJSON), `"objectRef":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}}`)
	assert.Contains(t, string(alphaJSON), `"weight":35`)
	assert.NotContains(t, string(alphaJSON), `"traffic":"`, "v1alpha1 steps carry weight, not traffic (status.*.traffic is an object in both)")
	hub, err := runtime.Decode(codecs.UniversalDecoder(), alphaJSON)
	require.NoError(t, err)
	require.IsType(t, &rollout.Rollout{}, hub)
	betaJSON, err := runtime.Encode(codecs.LegacyCodec(v1beta1.SchemeGroupVersion), hub)
	require.NoError(t, err)
	decoded, _, err := codecs.UniversalDeserializer().Decode(betaJSON, nil, nil)
	require.NoError(t, err)
	assert.True(t, apiequality.Semantic.DeepEqual(original, decoded), "v1beta1 → v1alpha1 JSON → v1beta1 JSON changed the object: %s", cmp.Diff(original, decoded))
}

// TestConvertEmptyWorkloadRef pins the one place where v1alpha1's shape and
// the hub's differ in what they can say: an absent objectRef.workloadRef is
// the hub's empty workloadRef, both ways.
func TestConvertEmptyWorkloadRef(t *testing.T) {
	scheme, codecs := newScheme()

	alpha := &v1alpha1.Rollout{}
	require.NoError(t, scheme.Convert(&rollout.Rollout{}, alpha, nil))
	assert.Nil(t, alpha.Spec.ObjectRef.WorkloadRef)

	hub := &rollout.Rollout{Spec: rollout.RolloutSpec{WorkloadRef: rollout.ObjectRef{Name: "x"}}}
	require.NoError(t, scheme.Convert(&v1alpha1.Rollout{}, hub, nil))
	assert.Equal(t, rollout.ObjectRef{}, hub.Spec.WorkloadRef, "an absent workloadRef must clear the hub's reference")

	data, err := runtime.Encode(codecs.LegacyCodec(v1alpha1.SchemeGroupVersion), &rollout.Rollout{})
	require.NoError(t, err)
	assert.NotContains(t, string(data), "workloadRef")
}

// TestConvertInvalidTraffic: traffic that is not a canonical percentage has no
// v1alpha1 weight; the conversion must fail loudly rather than drop it.
func TestConvertInvalidTraffic(t *testing.T) {
	scheme, _ := newScheme()
	for _, traffic := range []string{"", "20", "020%", "101%", "-1%", "1.5%", " 5%"} {
		hub := &rollout.Rollout{Spec: rollout.RolloutSpec{Strategy: rollout.RolloutStrategy{Canary: &rollout.CanaryStrategy{
			Steps: []rollout.CanaryStep{{TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{Traffic: ptr.To(traffic)}}},
		}}}}
		err := scheme.Convert(hub, &v1alpha1.Rollout{}, nil)
		assert.Error(t, err, "traffic %q", traffic)
		if err != nil {
			assert.True(t, strings.Contains(err.Error(), "percentage"), "error should say why: %v", err)
		}
	}
}
