package apiserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// The same release plan, spelled in each version. Every field of the spec is
// set, our extensions included (progress deadline, metric checks), so a field
// lost or renamed by a conversion shows up as a difference.
func fullBeta(workload string) v1beta1.RolloutSpec {
	minute := metav1.Duration{Duration: time.Minute}
	return v1beta1.RolloutSpec{
		WorkloadRef:             v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: workload},
		Disabled:                false,
		ProgressDeadlineSeconds: ptr.To[int32](600),
		Strategy: v1beta1.RolloutStrategy{
			Paused: true,
			Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{
					{
						Replicas:               ptr.To(intstr.FromInt32(1)),
						TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("5%")},
						Pause:                  v1beta1.StepPause{Duration: ptr.To[int32](60)},
					},
					{
						Replicas: percent("50%"),
						TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{
							Traffic: ptr.To("50%"),
							Matches: []v1beta1.HttpRouteMatch{{
								Path:        &v1beta1.HTTPPathMatch{Type: ptr.To("PathPrefix"), Value: ptr.To("/api")},
								Headers:     []v1beta1.HTTPHeaderMatch{{Type: ptr.To("Exact"), Name: "X-Canary", Value: "always"}},
								QueryParams: []v1beta1.HTTPQueryParamMatch{{Type: ptr.To("RegularExpression"), Name: "canary", Value: "^1$"}},
							}},
							RequestHeaderModifier: &v1beta1.HTTPHeaderFilter{
								Set:    []v1beta1.HTTPHeader{{Name: "X-Release", Value: "canary"}},
								Add:    []v1beta1.HTTPHeader{{Name: "X-Added", Value: "1"}},
								Remove: []string{"X-Debug"},
							},
						},
						Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
							Name:         "latency-p99",
							Interval:     minute,
							Count:        5,
							FailureLimit: 1,
							Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
								Address: "http://prometheus.monitoring:9090",
								Query:   `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[1m])) by (le))`,
							}},
							ThresholdRange: &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse("0")), Max: ptr.To(resource.MustParse("250m"))},
						}}},
					},
					{Replicas: percent("100%")},
				},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{
					Service:            workload,
					GracePeriodSeconds: 5,
					Gateway:            &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To(workload)},
				}},
				FailureThreshold: percent("10%"),
				PatchPodTemplateMetadata: &v1beta1.PatchPodTemplateMetadata{
					Labels:      map[string]string{"track": "canary"},
					Annotations: map[string]string{"example.com/release": "canary"},
				},
				EnableExtraWorkloadForCanary: true,
				DisableGenerateCanaryService: true,
				Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
					Name: "error-rate",
					// interval and count are left out: the server defaults them (30s, 1).
					Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
						Address: "https://prometheus.example.com",
						Query:   `sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`,
					}},
					SuccessCondition: "result < 0.05",
				}}},
			},
		},
	}
}

func fullAlpha(workload string) v1alpha1.RolloutSpec {
	minute := metav1.Duration{Duration: time.Minute}
	return v1alpha1.RolloutSpec{
		ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{
			APIVersion: "apps/v1", Kind: "Deployment", Name: workload,
		}},
		ProgressDeadlineSeconds: ptr.To[int32](600),
		Strategy: v1alpha1.RolloutStrategy{
			Paused: true,
			Canary: &v1alpha1.CanaryStrategy{
				Steps: []v1alpha1.CanaryStep{
					{
						Replicas:               ptr.To(intstr.FromInt32(1)),
						TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](5)},
						Pause:                  v1alpha1.StepPause{Duration: ptr.To[int32](60)},
					},
					{
						Replicas: percent("50%"),
						TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{
							Weight: ptr.To[int32](50),
							Matches: []v1alpha1.HttpRouteMatch{{
								Path:        &v1alpha1.HTTPPathMatch{Type: ptr.To("PathPrefix"), Value: ptr.To("/api")},
								Headers:     []v1alpha1.HTTPHeaderMatch{{Type: ptr.To("Exact"), Name: "X-Canary", Value: "always"}},
								QueryParams: []v1alpha1.HTTPQueryParamMatch{{Type: ptr.To("RegularExpression"), Name: "canary", Value: "^1$"}},
							}},
							RequestHeaderModifier: &v1alpha1.HTTPHeaderFilter{
								Set:    []v1alpha1.HTTPHeader{{Name: "X-Release", Value: "canary"}},
								Add:    []v1alpha1.HTTPHeader{{Name: "X-Added", Value: "1"}},
								Remove: []string{"X-Debug"},
							},
						},
						Analysis: &v1alpha1.RolloutAnalysis{Metrics: []v1alpha1.MetricCheck{{
							Name:         "latency-p99",
							Interval:     minute,
							Count:        5,
							FailureLimit: 1,
							Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{
								Address: "http://prometheus.monitoring:9090",
								Query:   `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[1m])) by (le))`,
							}},
							ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr.To(resource.MustParse("0")), Max: ptr.To(resource.MustParse("250m"))},
						}}},
					},
					{Replicas: percent("100%")},
				},
				TrafficRoutings: []v1alpha1.TrafficRoutingRef{{
					Service:            workload,
					GracePeriodSeconds: 5,
					Gateway:            &v1alpha1.GatewayTrafficRouting{HTTPRouteName: ptr.To(workload)},
				}},
				FailureThreshold: percent("10%"),
				PatchPodTemplateMetadata: &v1alpha1.PatchPodTemplateMetadata{
					Labels:      map[string]string{"track": "canary"},
					Annotations: map[string]string{"example.com/release": "canary"},
				},
				EnableExtraWorkloadForCanary: ptr.To(true),
				DisableGenerateCanaryService: true,
				Analysis: &v1alpha1.RolloutAnalysis{Metrics: []v1alpha1.MetricCheck{{
					Name: "error-rate",
					Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{
						Address: "https://prometheus.example.com",
						Query:   `sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`,
					}},
					SuccessCondition: "result < 0.05",
				}}},
			},
		},
	}
}

// withDefaults is what the server stores for a spec that left the
// rollout-wide metric's interval and count out.
func withBetaDefaults(s v1beta1.RolloutSpec) v1beta1.RolloutSpec {
	m := &s.Strategy.Canary.Analysis.Metrics[0]
	m.Interval, m.Count = metav1.Duration{Duration: 30 * time.Second}, 1
	for _, a := range []*v1beta1.RolloutAnalysis{s.Strategy.Canary.Analysis, s.Strategy.Canary.Steps[1].Analysis} {
		for i := range a.Metrics {
			a.Metrics[i].ConsecutiveErrorLimit = ptr.To[int32](rollout.DefaultConsecutiveErrorLimit)
		}
	}
	return s
}

func withAlphaDefaults(s v1alpha1.RolloutSpec) v1alpha1.RolloutSpec {
	m := &s.Strategy.Canary.Analysis.Metrics[0]
	m.Interval, m.Count = metav1.Duration{Duration: 30 * time.Second}, 1
	for _, a := range []*v1alpha1.RolloutAnalysis{s.Strategy.Canary.Analysis, s.Strategy.Canary.Steps[1].Analysis} {
		for i := range a.Metrics {
			a.Metrics[i].ConsecutiveErrorLimit = ptr.To[int32](rollout.DefaultConsecutiveErrorLimit)
		}
	}
	return s
}

// A blue-green plan routed through a custom network object (an Istio
// VirtualService), in both spellings.
func blueGreenBeta(workload string) v1beta1.RolloutSpec {
	return v1beta1.RolloutSpec{
		WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: workload},
		Disabled:    true,
		Strategy: v1beta1.RolloutStrategy{BlueGreen: &v1beta1.BlueGreenStrategy{
			Steps: []v1beta1.CanaryStep{
				{Replicas: percent("100%"), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("0%")}},
				{Replicas: percent("100%"), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("100%")}},
			},
			TrafficRoutings: []v1beta1.TrafficRoutingRef{{
				Service: workload,
				CustomNetworkRefs: []v1beta1.ObjectRef{{
					APIVersion: "networking.istio.io/v1beta1", Kind: "VirtualService", Name: workload,
				}},
			}},
			FailureThreshold:             ptr.To(intstr.FromInt32(2)),
			DisableGenerateCanaryService: true,
		}},
	}
}

func blueGreenAlpha(workload string) v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: workload}},
		Disabled:  true,
		Strategy: v1alpha1.RolloutStrategy{BlueGreen: &v1alpha1.BlueGreenStrategy{
			Steps: []v1alpha1.CanaryStep{
				{Replicas: percent("100%"), TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](0)}},
				{Replicas: percent("100%"), TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](100)}},
			},
			TrafficRoutings: []v1alpha1.TrafficRoutingRef{{
				Service: workload,
				CustomNetworkRefs: []v1alpha1.CustomNetworkRef{{
					APIVersion: "networking.istio.io/v1beta1", Kind: "VirtualService", Name: workload,
				}},
			}},
			FailureThreshold:             ptr.To(intstr.FromInt32(2)),
			DisableGenerateCanaryService: true,
		}},
	}
}

// A status that uses every extension: a pending action, an abort record and
// metric check results.
func fullStatusBeta() v1beta1.RolloutStatus {
	at := metav1.NewTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	return v1beta1.RolloutStatus{
		ObservedGeneration: 1,
		Phase:              v1beta1.RolloutPhaseProgressing,
		Message:            "step 2 analysing",
		CurrentStepIndex:   2,
		CurrentStepState:   v1beta1.CanaryStepStateMetricsAnalysis,
		Conditions: []v1beta1.RolloutCondition{{
			Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionTrue,
			LastUpdateTime: at, LastTransitionTime: at, Reason: v1beta1.ProgressingReasonInRolling, Message: "rolling",
		}},
		CanaryStatus: &v1beta1.CanaryStatus{
			CommonStatus: v1beta1.CommonStatus{
				ObservedWorkloadGeneration: 4, ObservedRolloutID: "r1", RolloutHash: "h", StableRevision: "old",
				PodTemplateHash: "new", CurrentStepIndex: 2, NextStepIndex: 3,
				FinalisingStep: v1beta1.FinalisingStepTypeEnd, CurrentStepState: v1beta1.CanaryStepStateMetricsAnalysis,
				Message: "analysing", LastUpdateTime: &at, StepStartTime: &at, StableReplicas: 8, StableReadyReplicas: 8,
			},
			CanaryRevision: "new", CanaryReplicas: 5, CanaryReadyReplicas: 5,
		},
		PendingAction: &v1beta1.RolloutActionRequest{
			Type: v1beta1.RolloutActionPromote, StepIndex: 2, Full: true, RequestedBy: "alice", RequestedAt: at,
		},
		Abort: &v1beta1.RolloutAbortStatus{
			Reason: v1beta1.AbortReasonMetricCheck, Message: "error rate 0.2", Revision: "older", StepIndex: 1, Time: at,
		},
		AnalysisResults: []v1beta1.MetricCheckResult{{
			Name: "latency-p99", StepIndex: 2, Phase: v1beta1.MetricCheckRunning, Count: 2, Successful: 2,
			LastValue: "0.12", Message: "within range", StartedAt: &at, LastMeasuredAt: &at,
		}},
	}
}

// An object written in v1beta1 reads back in v1alpha1 in Kruise's older
// shape (spec.objectRef.workloadRef, steps[].weight), with every extension
// field; and the other way round. Reading in one version and writing the
// object back unchanged changes nothing: the conversion is lossless.
func TestVersionsConvertBothWays(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	alpha := server.Client.RolloutV1alpha1().Rollouts(ns)

	t.Run("v1beta1 canary read as v1alpha1", func(t *testing.T) {
		created := create(ctx, t, ns, &v1beta1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "beta-canary"},
			Spec:       fullBeta("web"),
		})
		assertJSONEqual(t, withBetaDefaults(fullBeta("web")), created.Spec, "stored v1beta1 spec")

		got, err := alpha.Get(ctx, "beta-canary", metav1.GetOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, withAlphaDefaults(fullAlpha("web")), got.Spec, "spec read in v1alpha1")
		assert.Equal(t, created.ResourceVersion, got.ResourceVersion)
		assert.Equal(t, created.UID, got.UID)
	})

	t.Run("v1alpha1 canary read as v1beta1", func(t *testing.T) {
		created, err := alpha.Create(ctx, &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "alpha-canary"},
			Spec:       fullAlpha("api"),
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, withAlphaDefaults(fullAlpha("api")), created.Spec, "stored v1alpha1 spec")

		got, err := rollouts(ns).Get(ctx, "alpha-canary", metav1.GetOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, withBetaDefaults(fullBeta("api")), got.Spec, "spec read in v1beta1")
	})

	t.Run("blue-green with custom network refs, both ways", func(t *testing.T) {
		create(ctx, t, ns, &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "beta-bg"}, Spec: blueGreenBeta("db")})
		got, err := alpha.Get(ctx, "beta-bg", metav1.GetOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, blueGreenAlpha("db"), got.Spec, "v1beta1 → v1alpha1")

		_, err = alpha.Create(ctx, &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "alpha-bg"}, Spec: blueGreenAlpha("cache")}, metav1.CreateOptions{})
		require.NoError(t, err)
		back, err := rollouts(ns).Get(ctx, "alpha-bg", metav1.GetOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, blueGreenBeta("cache"), back.Spec, "v1alpha1 → v1beta1")
	})

	t.Run("status written in v1beta1 reads the same in v1alpha1", func(t *testing.T) {
		written := setStatus(ctx, t, ns, "beta-canary", fullStatusBeta())
		assertJSONEqual(t, fullStatusBeta(), written.Status, "stored status")
		got, err := alpha.Get(ctx, "beta-canary", metav1.GetOptions{})
		require.NoError(t, err)
		// The status types are the same shape in both versions.
		assertJSONEqual(t, fullStatusBeta(), got.Status, "status read in v1alpha1")
	})

	t.Run("a v1alpha1 read-modify-write loses nothing", func(t *testing.T) {
		before, err := rollouts(ns).Get(ctx, "beta-canary", metav1.GetOptions{})
		require.NoError(t, err)
		a, err := alpha.Get(ctx, "beta-canary", metav1.GetOptions{})
		require.NoError(t, err)
		a.Annotations = map[string]string{"touched-by": "v1alpha1-client"}
		_, err = alpha.Update(ctx, a, metav1.UpdateOptions{})
		require.NoError(t, err)

		after, err := rollouts(ns).Get(ctx, "beta-canary", metav1.GetOptions{})
		require.NoError(t, err)
		assertJSONEqual(t, before.Spec, after.Spec, "spec after a v1alpha1 update")
		assertJSONEqual(t, before.Status, after.Status, "status after a v1alpha1 update")
		assert.Equal(t, before.Generation, after.Generation, "nothing in the spec changed")
		assert.Equal(t, "v1alpha1-client", after.Annotations["touched-by"])
	})

	t.Run("v1alpha1 status writes and actions work", func(t *testing.T) {
		a, err := alpha.Get(ctx, "alpha-canary", metav1.GetOptions{})
		require.NoError(t, err)
		a.Status = v1alpha1.RolloutStatus{Phase: "Progressing", CurrentStepIndex: 1, CurrentStepState: "StepPaused"}
		_, err = alpha.UpdateStatus(ctx, a, metav1.UpdateOptions{})
		require.NoError(t, err)
		// The v1alpha1 spec is paused (fullAlpha); resume, then promote, in v1alpha1.
		_, err = alpha.Resume(ctx, "alpha-canary", &v1alpha1.RolloutResume{}, metav1.CreateOptions{})
		require.NoError(t, err)
		promoted, err := alpha.Promote(ctx, "alpha-canary", &v1alpha1.RolloutPromote{}, metav1.CreateOptions{})
		require.NoError(t, err)
		require.NotNil(t, promoted.Status.PendingAction)
		assert.Equal(t, v1alpha1.RolloutActionType("Promote"), promoted.Status.PendingAction.Type)

		b, err := rollouts(ns).Get(ctx, "alpha-canary", metav1.GetOptions{})
		require.NoError(t, err)
		require.NotNil(t, b.Status.PendingAction)
		assert.Equal(t, v1beta1.RolloutActionPromote, b.Status.PendingAction.Type)
		assert.False(t, b.Spec.Strategy.Paused)
	})
}

// assertJSONEqual compares two values by their JSON, the form clients see
// (quantities and times compare by their canonical text).
func assertJSONEqual(t *testing.T, want, got interface{}, what string) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(w), string(g), what)
}
