// Package statefulset releases StatefulSets in batches through their
// RollingUpdate partition: the hold sets partition = replicas, each step
// lowers it to replicas - step replicas so the StatefulSet controller updates
// the highest ordinals first, and releasing restores the original strategy.
package statefulset

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// Releaser releases StatefulSets.
type Releaser struct {
	deps *workload.Deps
}

var _ workload.Releaser = (*Releaser)(nil)

// New returns the StatefulSet releaser.
func New(deps *workload.Deps) *Releaser {
	return &Releaser{deps: deps}
}

func (r *Releaser) get(ro *v1beta1.Rollout) (*appsv1.StatefulSet, error) {
	return workload.Referenced(ro, r.deps.StatefulSets.StatefulSets(ro.Namespace).Get)
}

// podCounts counts s's live pods per revision (the controller-revision-hash
// label holds the ControllerRevision name for StatefulSets).
func (r *Releaser) podCounts(s *appsv1.StatefulSet) (map[string]workload.Counts, error) {
	pods, err := r.ownedPods(s)
	if err != nil {
		return nil, err
	}
	now := r.deps.Clock.Now()
	counts := map[string]workload.Counts{}
	for _, pod := range pods {
		if !workload.IsAlive(pod) {
			continue
		}
		rev := pod.Labels[appsv1.ControllerRevisionHashLabelKey]
		c := counts[rev]
		c.Replicas++
		if workload.IsAvailable(pod, s.Spec.MinReadySeconds, now) {
			c.Ready++
		}
		counts[rev] = c
	}
	return counts, nil
}

// Observe implements workload.Releaser. The StatefulSet's status names both
// revisions once its controller has observed the latest spec: updateRevision
// is the new one, currentRevision the one the unchanged ordinals run.
func (r *Releaser) Observe(_ context.Context, ro *v1beta1.Rollout) (*workload.Info, error) {
	s, err := r.get(ro)
	if err != nil {
		return nil, err
	}
	info := &workload.Info{
		Kind:           v1beta1.KindStatefulSet,
		Name:           s.Name,
		Object:         s,
		Generation:     s.Generation,
		Consistent:     s.Status.ObservedGeneration >= s.Generation && s.Status.UpdateRevision != "" && !r.deps.Pending(ro),
		Held:           workload.IsHeld(s),
		Replicas:       workload.StatefulSetReplicas(s),
		CanaryRevision: s.Status.UpdateRevision,
		RolloutID:      s.Annotations[v1beta1.RolloutIDAnnotation],
	}
	info.PodTemplateHash = info.CanaryRevision
	info.StableRevision = workload.StableRevisionInProgress(ro)
	if info.StableRevision == "" {
		info.StableRevision = s.Status.CurrentRevision
	}
	counts, err := r.podCounts(s)
	if err != nil {
		return nil, err
	}
	info.Canary, info.Stable = counts[info.CanaryRevision], counts[info.StableRevision]
	return info, nil
}

// Hold implements workload.Releaser.
func (r *Releaser) Hold(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	s := info.Object.(*appsv1.StatefulSet).DeepCopy()
	changed, err := workload.HoldStatefulSet(nil, s, true)
	if err != nil || !changed {
		return err
	}
	updated, err := r.deps.Kube.AppsV1().StatefulSets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("holding StatefulSet %s/%s: %w", s.Namespace, s.Name, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindStatefulSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadHeld", "Held StatefulSet %s again: its release is not finished", s.Name)
	return nil
}

// Upgrade implements workload.Releaser: partition = replicas - desired.
func (r *Releaser) Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info, desired int32) (bool, error) {
	s := info.Object.(*appsv1.StatefulSet)
	if r.deps.Pending(ro) || !info.Consistent {
		return false, nil
	}
	target := min(max(desired, 0), info.Replicas)
	partition := info.Replicas - target
	if workload.HeldPartition(s) != partition || s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return false, r.setPartition(ctx, ro, s, partition)
	}
	tolerance := workload.FailureTolerance(ro.Spec.Strategy.Canary.FailureThreshold, target)
	return workload.BatchReady(target, info.Canary.Replicas, info.Canary.Ready, tolerance), nil
}

func (r *Releaser) setPartition(ctx context.Context, ro *v1beta1.Rollout, s *appsv1.StatefulSet, partition int32) error {
	from := workload.HeldPartition(s)
	s = s.DeepCopy()
	if s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || s.Spec.UpdateStrategy.RollingUpdate == nil {
		s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
			Type:          appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{},
		}
	}
	s.Spec.UpdateStrategy.RollingUpdate.Partition = &partition
	updated, err := r.deps.Kube.AppsV1().StatefulSets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("setting partition of StatefulSet %s/%s to %d: %w", s.Namespace, s.Name, partition, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindStatefulSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "PartitionSet", "Set partition of StatefulSet %s from %d to %d: ordinals %d and up run the new revision", s.Name, from, partition, partition)
	klog.V(2).InfoS("Set StatefulSet partition", "rollout", klog.KObj(ro), "statefulSet", klog.KObj(s), "from", from, "to", partition)
	return nil
}

// Complete implements workload.Releaser: partition 0.
func (r *Releaser) Complete(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return r.Upgrade(ctx, ro, info, info.Replicas)
}

// Rollback implements workload.Releaser: the stable ControllerRevision holds
// the stable template as a strategic merge patch of the StatefulSet, the same
// patch `kubectl rollout undo` applies.
func (r *Releaser) Rollback(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	s := info.Object.(*appsv1.StatefulSet)
	if r.deps.Pending(ro) || !info.Consistent {
		return false, nil
	}
	if info.CanaryRevision == info.StableRevision {
		return true, nil
	}
	cr, err := r.deps.ControllerRevisions.ControllerRevisions(s.Namespace).Get(info.StableRevision)
	if err != nil {
		return false, fmt.Errorf("reading stable revision %s of StatefulSet %s/%s: %w", info.StableRevision, s.Namespace, s.Name, err)
	}
	updated, err := r.deps.Kube.AppsV1().StatefulSets(s.Namespace).Patch(ctx, s.Name, types.StrategicMergePatchType, cr.Data.Raw, metav1.PatchOptions{})
	if err != nil {
		return false, fmt.Errorf("rolling back StatefulSet %s/%s to revision %s: %w", s.Namespace, s.Name, info.StableRevision, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindStatefulSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadRolledBack", "Rolled StatefulSet %s back to the pod template of revision %s", s.Name, info.StableRevision)
	return false, nil
}

// CanRevert implements workload.Releaser.
func (r *Releaser) CanRevert() bool { return true }

// Revert implements workload.Releaser. With partition = replicas every
// ordinal is below the partition, so the StatefulSet controller updates none
// and recreates a deleted pod at status.currentRevision, the revision the
// unchanged ordinals run: the stable one. The pods already updated are
// deleted, unready ones at once and ready ones no more at a time than the
// saved maxUnavailable (default 1) allows, highest ordinal first as the
// StatefulSet controller would.
func (r *Releaser) Revert(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	s := info.Object.(*appsv1.StatefulSet)
	if r.deps.Pending(ro) || !info.Consistent {
		return false, nil
	}
	if workload.HeldPartition(s) != info.Replicas || s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return false, r.setPartition(ctx, ro, s, info.Replicas)
	}
	stable := s.Status.CurrentRevision
	pods, err := r.ownedPods(s)
	if err != nil {
		return false, err
	}
	now := r.deps.Clock.Now()
	var updated []*corev1.Pod
	var unavailable, stableAlive int32
	for _, pod := range pods {
		if !workload.IsAlive(pod) {
			continue
		}
		if !workload.IsAvailable(pod, s.Spec.MinReadySeconds, now) {
			unavailable++
		}
		if pod.Labels[appsv1.ControllerRevisionHashLabelKey] == stable {
			stableAlive++
			continue
		}
		updated = append(updated, pod)
	}
	if len(updated) == 0 {
		return stableAlive >= info.Replicas, nil
	}
	sort.Slice(updated, func(i, j int) bool {
		ai, aj := workload.IsAvailable(updated[i], s.Spec.MinReadySeconds, now), workload.IsAvailable(updated[j], s.Spec.MinReadySeconds, now)
		if ai != aj {
			return !ai
		}
		return ordinal(updated[i]) > ordinal(updated[j])
	})
	budget := maxUnavailable(s, info.Replicas) - unavailable
	for _, pod := range updated {
		if workload.IsAvailable(pod, s.Spec.MinReadySeconds, now) {
			if budget <= 0 {
				break
			}
			budget--
		}
		if err := workload.DeletePod(ctx, r.deps, ro, pod, fmt.Sprintf("StatefulSet %s recreates it on its stable revision %s", s.Name, stable)); err != nil {
			return false, err
		}
	}
	return false, nil
}

// ownedPods are the pods whose controller is s.
func (r *Releaser) ownedPods(s *appsv1.StatefulSet) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of StatefulSet %s/%s: %w", s.Namespace, s.Name, err)
	}
	all, err := r.deps.Pods.Pods(s.Namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods of StatefulSet %s/%s: %w", s.Namespace, s.Name, err)
	}
	owned := all[:0:0]
	for _, pod := range all {
		if workload.IsControlledBy(pod, s.UID) {
			owned = append(owned, pod)
		}
	}
	return owned, nil
}

// ordinal is the number at the end of a StatefulSet pod's name, -1 if none.
func ordinal(pod *corev1.Pod) int {
	i := strings.LastIndexByte(pod.Name, '-')
	n, err := strconv.Atoi(pod.Name[i+1:])
	if i < 0 || err != nil {
		return -1
	}
	return n
}

// maxUnavailable is the saved RollingUpdate maxUnavailable against replicas
// (rounded down, as the StatefulSet controller does), at least 1.
func maxUnavailable(s *appsv1.StatefulSet, replicas int32) int32 {
	value := intstr.FromInt32(1)
	if ru := workload.OriginalOfStatefulSet(s).UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		value = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&value, int(replicas), false)
	if err != nil || n < 1 {
		return 1
	}
	return int32(n)
}

// Release implements workload.Releaser.
func (r *Releaser) Release(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	s := info.Object.(*appsv1.StatefulSet).DeepCopy()
	if !workload.ReleaseStatefulSet(s) {
		return true, nil
	}
	updated, err := r.deps.Kube.AppsV1().StatefulSets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("releasing StatefulSet %s/%s: %w", s.Namespace, s.Name, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindStatefulSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadReleased", "Released StatefulSet %s to its own update strategy (%s)", s.Name, s.Spec.UpdateStrategy.Type)
	return true, nil
}
