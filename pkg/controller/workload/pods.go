package workload

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// IsAlive reports whether a pod counts toward its workload: it is not being
// deleted and has not finished.
func IsAlive(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// IsAvailable reports whether a live pod has been ready for at least
// minReadySeconds at now, the way workload controllers count available pods.
func IsAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !IsAlive(pod) {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		if c.Status != corev1.ConditionTrue {
			return false
		}
		if minReadySeconds == 0 {
			return true
		}
		return !c.LastTransitionTime.IsZero() && !c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).After(now)
	}
	return false
}

// IsControlledBy reports whether obj's controller owner reference is uid.
func IsControlledBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == uid
}

// DeletePod deletes a workload's pod so that its controller recreates it from
// another revision; why ends the Event's sentence ("... so <why>"). A pod
// already gone or replaced (another UID) counts as deleted. The deletion is
// expected, so decisions wait until the cache shows the pod gone.
func DeletePod(ctx context.Context, deps *Deps, ro *v1beta1.Rollout, pod *corev1.Pod, why string) error {
	err := deps.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s so %s: %w", pod.Namespace, pod.Name, why, err)
	}
	deps.Expectations.ExpectGone(OwnerKey(ro), ObjectKey(KindPod, pod.Namespace, pod.Name), pod.UID)
	deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "PodDeleted", "Deleted pod %s on node %s so %s", pod.Name, pod.Spec.NodeName, why)
	klog.V(2).InfoS("Deleted pod", "rollout", klog.KObj(ro), "pod", klog.KObj(pod), "node", pod.Spec.NodeName, "why", why)
	return nil
}
