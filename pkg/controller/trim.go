package controller

import (
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// trimForCache is the informers' transform: it drops what the controller
// never reads before an object enters a cache, which is most of the memory
// of a cluster with many workloads. Every object loses its managedFields;
// a pod keeps only its metadata (less annotations), node, phase and
// conditions, since releases count and delete pods but never read their
// containers. Workloads, ReplicaSets and ControllerRevisions keep their
// spec: their pod templates are what revisions are computed from.
func trimForCache(obj any) (any, error) {
	if _, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return obj, nil
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		return trimPod(pod), nil
	}
	if accessor, ok := obj.(metav1.ObjectMetaAccessor); ok {
		accessor.GetObjectMeta().SetManagedFields(nil)
	}
	return obj, nil
}

// trimPod returns the part of a pod the workload releasers read.
func trimPod(pod *corev1.Pod) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Generation:        pod.Generation,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
			Labels:            pod.Labels,
			OwnerReferences:   pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{
			Phase:      pod.Status.Phase,
			Conditions: pod.Status.Conditions,
		},
	}
}

// sameTrimmedPod reports whether two pods as the cache holds them (trimPod)
// differ in nothing but their resourceVersion: an update that changed only
// what trimPod drops (container statuses, IPs, start time, annotations),
// which a kubelet sends several times in a pod's life and which no release
// reads. Comparing the whole trimmed pod keeps this in step with trimPod.
func sameTrimmedPod(a, b *corev1.Pod) bool {
	x, y := *a, *b
	x.ResourceVersion, y.ResourceVersion = "", ""
	return apiequality.Semantic.DeepEqual(&x, &y)
}
