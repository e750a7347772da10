package controller

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestTrimForCache(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	owner := metav1.OwnerReference{Kind: "ReplicaSet", Name: "web-1", UID: "rs-uid", Controller: new(bool)}
	*owner.Controller = true
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1-a", Namespace: "ns", UID: "pod-uid", ResourceVersion: "7",
			Labels: map[string]string{"pod-template-hash": "1"}, Annotations: map[string]string{"big": "x"},
			OwnerReferences: []metav1.OwnerReference{owner}, ManagedFields: managed, DeletionTimestamp: &now,
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "main", Image: "v1"}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			PodIPs:     []corev1.PodIP{{IP: "10.0.0.1"}},
		},
	}
	got, err := trimForCache(pod)
	require.NoError(t, err)
	p := got.(*corev1.Pod)
	assert.Equal(t, pod.Name, p.Name)
	assert.Equal(t, pod.UID, p.UID)
	assert.Equal(t, pod.ResourceVersion, p.ResourceVersion)
	assert.Equal(t, pod.Labels, p.Labels)
	assert.Equal(t, pod.OwnerReferences, p.OwnerReferences)
	assert.Equal(t, pod.DeletionTimestamp, p.DeletionTimestamp)
	assert.Equal(t, "node-1", p.Spec.NodeName)
	assert.Equal(t, pod.Status.Conditions, p.Status.Conditions)
	assert.Equal(t, corev1.PodRunning, p.Status.Phase)
	assert.Empty(t, p.Annotations)
	assert.Empty(t, p.ManagedFields)
	assert.Empty(t, p.Spec.Containers)
	assert.Empty(t, p.Status.PodIPs)

	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", ManagedFields: managed, Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
		Spec: appsv1.ReplicaSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: "v1"}}}}}}
	got, err = trimForCache(rs)
	require.NoError(t, err)
	r := got.(*appsv1.ReplicaSet)
	assert.Empty(t, r.ManagedFields)
	assert.Equal(t, "2", r.Annotations["deployment.kubernetes.io/revision"], "workload metadata is kept")
	assert.Equal(t, "v1", r.Spec.Template.Spec.Containers[0].Image, "templates are kept")

	tombstone := cache.DeletedFinalStateUnknown{Key: "ns/web-1-a", Obj: pod}
	got, err = trimForCache(tombstone)
	require.NoError(t, err)
	assert.Equal(t, tombstone, got)
}

// TestSameTrimmedPod: pod updates that change only what the cache drops are
// recognised, and every change a release reads is not.
func TestSameTrimmedPod(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1-a", Namespace: "ns", UID: "u", ResourceVersion: "1",
			Labels: map[string]string{"pod-template-hash": "1"}},
		Spec: corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}},
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod)
		same   bool
	}{
		{"container statuses, IPs and annotations only", func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", Ready: true}}
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}}
			p.Annotations = map[string]string{"a": "b"}
		}, true},
		{"ready", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionTrue }, false},
		{"phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, false},
		{"scheduled", func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }, false},
		{"deleting", func(p *corev1.Pod) { p.DeletionTimestamp = &now }, false},
		{"labels", func(p *corev1.Pod) { p.Labels = map[string]string{"pod-template-hash": "2"} }, false},
		{"owner", func(p *corev1.Pod) { p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "x"}} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			updated := base.DeepCopy()
			updated.ResourceVersion = "2"
			tc.change(updated)
			assert.Equal(t, tc.same, sameTrimmedPod(trimPod(base), trimPod(updated)))
		})
	}
}
