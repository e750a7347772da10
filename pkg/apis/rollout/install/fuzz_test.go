package install_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
)

// decodeSeeds are request bodies a client could send: valid objects of both
// versions in JSON and YAML, and the edge cases that conversion and defaulting
// have to handle.
var decodeSeeds = []string{
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","metadata":{"name":"web","namespace":"default"},
	  "spec":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},
	  "strategy":{"canary":{"steps":[{"replicas":"20%","traffic":"10%","pause":{"duration":60}},{"replicas":"100%"}],
	  "trafficRoutings":[{"service":"web","gateway":{"httpRouteName":"web"}}],
	  "analysis":{"metrics":[{"name":"errors","provider":{"prometheus":{"address":"http://p:9090","query":"up"}},"successCondition":"result < 0.05"}]}}}}}`,
	`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"Rollout","metadata":{"name":"web","namespace":"default"},
	  "spec":{"objectRef":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"db"}},
	  "strategy":{"blueGreen":{"steps":[{"replicas":3,"weight":0},{"replicas":3,"weight":100}],
	  "trafficRoutings":[{"service":"db","ingress":{"name":"db"}}]}}}}`,
	"apiVersion: rollout.kruise.io/v1beta1\nkind: Rollout\nmetadata: {name: web, namespace: default}\nspec:\n  workloadRef: {apiVersion: apps/v1, kind: DaemonSet, name: agent}\n  strategy:\n    canary:\n      steps:\n      - replicas: 1\n      - replicas: 100%\n",
	`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"Rollout","spec":{"strategy":{"canary":{"steps":[{"weight":150},{"weight":-1}]}}}}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","spec":{"strategy":{"canary":{"steps":[{"traffic":"020%"}]}}}}`,
	`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"Rollout","spec":{"objectRef":{"workloadRef":{}}}}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","spec":{"strategy":{"canary":{"analysis":{"metrics":[{"name":"m","interval":"-1h","count":-1,
	  "thresholdRange":{"min":"1e100","max":"1n"},"successCondition":"result"}]}}}}}`,
	// A bound far beyond a double: Quantity.Cmp on it would run for hours, so
	// validation must refuse it without comparing.
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","metadata":{"name":"web","namespace":"default"},
	  "spec":{"workloadRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"strategy":{"canary":{"steps":[{"replicas":1}],
	  "analysis":{"metrics":[{"name":"m","provider":{"prometheus":{"address":"http://p","query":"up"}},"thresholdRange":{"min":"9e999999999","max":"1"}}]}}}}}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","status":{"currentStepIndex":-5,"phase":"Nope","conditions":[{"type":"","status":"Maybe","lastUpdateTime":"2026-01-02T03:04:05.123Z"}]}}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutList","items":[{"spec":{"strategy":{}}}]}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote","metadata":{"name":"web"},"full":true}`,
	`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"RolloutAbort","reason":"metrics look bad"}`,
	`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"RolloutPause"}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutResume"}`,
	`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","spec":{"strategy":{"canary":{"failureThreshold":"x","steps":[{"replicas":"1.5"}]}}}}`,
	`{}`, `[]`, `null`, ``, `{"kind":"Rollout"}`, "\x00\x01", `k8s` + "\x00",
}

// FuzzDecodeRollout decodes arbitrary bytes as a request body of the group,
// converts to the hub, validates, and converts back to both versions. Nothing
// may panic; an object that validation admits must convert to every version
// and read back with the same spec.
func FuzzDecodeRollout(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	scheme, codecs := newScheme()
	// A fully-populated object, in both versions, as JSON and YAML.
	hub := &rollout.Rollout{}
	require.NoError(f, scheme.Convert(fullV1beta1Rollout(), hub, nil))
	for _, gv := range []schema.GroupVersion{v1beta1.SchemeGroupVersion, v1alpha1.SchemeGroupVersion} {
		data, err := runtime.Encode(codecs.LegacyCodec(gv), hub)
		require.NoError(f, err)
		f.Add(data)
		y, err := yaml.JSONToYAML(data)
		require.NoError(f, err)
		f.Add(y)
	}

	decoder := codecs.UniversalDecoder() // to the hub, defaulted, as the API server decodes
	encoders := map[string]runtime.Encoder{
		"v1beta1":  codecs.LegacyCodec(v1beta1.SchemeGroupVersion),
		"v1alpha1": codecs.LegacyCodec(v1alpha1.SchemeGroupVersion),
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		obj, _, err := decoder.Decode(data, nil, nil)
		if err != nil {
			return
		}
		switch o := obj.(type) {
		case *rollout.Rollout:
			checkDecodedRollout(t, o, decoder, encoders)
		case *rollout.RolloutList:
			for i := range o.Items {
				checkDecodedRollout(t, &o.Items[i], decoder, encoders)
			}
		case *rollout.RolloutPromote:
			_ = validation.ValidateRolloutPromote(o)
			_ = validation.ValidateActionName(&o.ObjectMeta, "web")
		case *rollout.RolloutPause:
			_ = validation.ValidateRolloutPause(o)
		case *rollout.RolloutResume:
			_ = validation.ValidateRolloutResume(o)
		case *rollout.RolloutAbort:
			_ = validation.ValidateRolloutAbort(o)
		}
	})
}

func checkDecodedRollout(t *testing.T, r *rollout.Rollout, decoder runtime.Decoder, encoders map[string]runtime.Encoder) {
	t.Helper()
	errs := validation.ValidateRollout(r)
	_ = validation.ValidateRolloutUpdate(r, r)
	_ = validation.ValidateRolloutStatusUpdate(r, r)
	progressing := r.DeepCopy()
	progressing.Status.Phase = rollout.RolloutPhaseProgressing
	_ = validation.ValidateRolloutUpdate(r, progressing)

	for version, encoder := range encoders {
		data, err := runtime.Encode(encoder, r)
		if err != nil {
			// Only invalid objects may fail to convert (v1alpha1 has no weight
			// for a malformed traffic value).
			require.NotEmpty(t, errs, "a valid object does not encode as %s: %v", version, err)
			continue
		}
		back, _, err := decoder.Decode(data, nil, nil)
		require.NoError(t, err, "%s written by us does not read back:\n%s", version, data)
		if len(errs) == 0 {
			got, ok := back.(*rollout.Rollout)
			require.True(t, ok, "decoded a %T", back)
			require.True(t, apiequality.Semantic.DeepEqual(r.Spec, got.Spec), "spec changed through %s: %s", version, cmp.Diff(r.Spec, got.Spec))
		}
	}
}

// TestDecodeSeedsAreValid keeps the first seeds valid, so that the fuzzer
// starts from inputs that reach the strongest check: lossless conversion.
func TestDecodeSeedsAreValid(t *testing.T) {
	_, codecs := newScheme()
	for i, s := range decodeSeeds[:3] {
		obj, _, err := codecs.UniversalDecoder().Decode([]byte(s), nil, nil)
		require.NoError(t, err, "seed %d", i)
		require.IsType(t, &rollout.Rollout{}, obj, "seed %d", i)
		require.Empty(t, validation.ValidateRollout(obj.(*rollout.Rollout)), "seed %d", i)
	}
}
