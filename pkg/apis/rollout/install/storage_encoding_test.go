package install_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// storedRollout is a Rollout as etcd holds it in the middle of a release:
// about 2 KiB of spec and metadata (the shape make bench-api creates: three
// canary steps, an NGINX Ingress routing, labels and annotations), plus the
// managedFields of its two writers and a canary status with conditions.
func storedRollout() *v1beta1.Rollout {
	t0 := metav1.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)
	fields := func(s string) *metav1.FieldsV1 { return &metav1.FieldsV1{Raw: []byte(s)} }
	return &v1beta1.Rollout{
		TypeMeta: metav1.TypeMeta{APIVersion: v1beta1.SchemeGroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "ro-00042", Namespace: "bench-0", UID: "4f1c3c52-8a4d-4e0e-9d43-1f2a3b4c5d6e",
			ResourceVersion: "184467", Generation: 3, CreationTimestamp: t0,
			Labels: map[string]string{
				"app.kubernetes.io/name": "web-00042", "app.kubernetes.io/part-of": "storefront",
				"app.kubernetes.io/component": "frontend", "app.kubernetes.io/version": "1.27.3",
				"team": "payments", "environment": "production", "region": "eu-west-1", "bench": "api",
			},
			Annotations: map[string]string{
				"example.com/owner":       "payments-oncall@example.com",
				"example.com/runbook":     "https://runbooks.example.com/storefront/web-00042/canary-release",
				"example.com/change-id":   "CHG-40000042",
				"example.com/description": strings.Repeat("Canary release of the web tier, traffic through the NGINX ingress. ", 12),
			},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "rollout.kruise.io/v1beta1", Time: &t0,
					FieldsType: "FieldsV1", FieldsV1: fields(`{"f:metadata":{"f:annotations":{".":{},"f:example.com/change-id":{},"f:example.com/description":{},"f:example.com/owner":{},"f:example.com/runbook":{}},"f:labels":{".":{},"f:app.kubernetes.io/name":{},"f:bench":{},"f:team":{}}},"f:spec":{".":{},"f:strategy":{".":{},"f:canary":{".":{},"f:steps":{},"f:trafficRoutings":{}}},"f:workloadRef":{".":{},"f:apiVersion":{},"f:kind":{},"f:name":{}}}}`)},
				{Manager: "rollout-controller", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "rollout.kruise.io/v1beta1", Time: &t0, Subresource: "status",
					FieldsType: "FieldsV1", FieldsV1: fields(`{"f:status":{".":{},"f:canaryStatus":{".":{},"f:canaryReadyReplicas":{},"f:canaryReplicas":{},"f:canaryRevision":{},"f:currentStepIndex":{},"f:currentStepState":{},"f:podTemplateHash":{}},"f:conditions":{},"f:observedGeneration":{},"f:phase":{}}}`)},
			},
		},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web-00042"},
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{
					{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("20%")}, Replicas: ptr.To(intstr.FromString("20%"))},
					{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("50%")}, Replicas: ptr.To(intstr.FromString("50%")), Pause: v1beta1.StepPause{Duration: ptr.To[int32](60)}},
					{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("100%")}, Replicas: ptr.To(intstr.FromString("100%"))},
				},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{Service: "web-00042", GracePeriodSeconds: 5,
					Ingress: &v1beta1.IngressTrafficRouting{Name: "web-00042", ClassType: "nginx"}}},
			}},
		},
		Status: v1beta1.RolloutStatus{
			ObservedGeneration: 3,
			Phase:              v1beta1.RolloutPhaseProgressing,
			Message:            "Rollout is in step(1/3), and you need manually confirm to enter the next step",
			CurrentStepIndex:   1,
			CurrentStepState:   v1beta1.CanaryStepStatePaused,
			CanaryStatus: &v1beta1.CanaryStatus{
				CommonStatus: v1beta1.CommonStatus{
					ObservedWorkloadGeneration: 7, RolloutHash: "5d8f7c9b4", StableRevision: "6c5b8d7f9",
					PodTemplateHash: "7f9c6d5b8", CurrentStepIndex: 1, NextStepIndex: 2,
					CurrentStepState: v1beta1.CanaryStepStatePaused, LastUpdateTime: &t0, StepStartTime: &t0,
					StableReplicas: 8, StableReadyReplicas: 8,
				},
				CanaryRevision: "7f9c6d5b8", CanaryReplicas: 2, CanaryReadyReplicas: 2,
			},
			Conditions: []v1beta1.RolloutCondition{
				{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionTrue, LastUpdateTime: t0, LastTransitionTime: t0, Reason: "InRolling", Message: "Rollout is in Progressing"},
				{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionFalse, LastUpdateTime: t0, LastTransitionTime: t0, Reason: "", Message: ""},
			},
		},
	}
}

// storageSerializers are the encodings etcd could hold, as the storage
// codec would write them (apiVersion and kind in the bytes).
func storageSerializers() []struct {
	name string
	s    runtime.Serializer
} {
	scheme, _ := newScheme()
	return []struct {
		name string
		s    runtime.Serializer
	}{
		{"json", json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{})},
		{"protobuf", protobuf.NewSerializer(scheme, scheme)},
		{"cbor", cbor.NewSerializer(scheme, scheme)},
	}
}

// TestStorageEncodings checks that each candidate storage encoding gives
// back the stored object, and logs its size: the numbers behind
// docs/storage.md.
func TestStorageEncodings(t *testing.T) {
	obj := storedRollout()
	for _, tc := range storageSerializers() {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, tc.s.Encode(obj, &buf))
			got, _, err := tc.s.Decode(buf.Bytes(), nil, &v1beta1.Rollout{})
			require.NoError(t, err)
			assert.True(t, apiequality.Semantic.DeepEqual(obj, got), "%s changed the object", tc.name)
			t.Logf("%s: %d bytes", tc.name, buf.Len())
		})
	}
}

// BenchmarkStorageEncoding measures encode and decode time and bytes of the
// stored Rollout in JSON, protobuf and CBOR:
//
//	go test -run '^$' -bench StorageEncoding -benchmem ./pkg/apis/rollout/install/
func BenchmarkStorageEncoding(b *testing.B) {
	obj := storedRollout()
	for _, tc := range storageSerializers() {
		var buf bytes.Buffer
		require.NoError(b, tc.s.Encode(obj, &buf))
		data := buf.Bytes()
		b.Run(fmt.Sprintf("%s/encode", tc.name), func(b *testing.B) {
			b.ReportAllocs()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := tc.s.Encode(obj, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
		b.Run(fmt.Sprintf("%s/decode", tc.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tc.s.Decode(data, nil, &v1beta1.Rollout{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
	}
}
