// Package daemonset releases native DaemonSets in batches. The hold switches
// the DaemonSet to OnDelete, so its controller recreates a pod on the new
// revision only where a pod was deleted; each step deletes just enough
// old-revision pods for the step's count, no more at a time than the saved
// RollingUpdate maxUnavailable allows, and releasing restores the original
// strategy.
package daemonset

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// Releaser releases DaemonSets.
type Releaser struct {
	deps *workload.Deps
}

var _ workload.Releaser = (*Releaser)(nil)

// New returns the DaemonSet releaser.
func New(deps *workload.Deps) *Releaser {
	return &Releaser{deps: deps}
}

func (r *Releaser) get(ro *v1beta1.Rollout) (*appsv1.DaemonSet, error) {
	return workload.Referenced(ro, r.deps.DaemonSets.DaemonSets(ro.Namespace).Get)
}

// revisions are ds's ControllerRevisions, newest (highest revision) first.
// The DaemonSet controller gives the revision of the current template the
// highest number, even when it reuses an older one after a revert.
func (r *Releaser) revisions(ds *appsv1.DaemonSet) ([]*appsv1.ControllerRevision, error) {
	owned, err := r.deps.ControllerRevisionsOf(ds.UID)
	if err != nil {
		return nil, fmt.Errorf("listing ControllerRevisions of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	sort.Slice(owned, func(i, j int) bool { return owned[i].Revision > owned[j].Revision })
	return owned, nil
}

// recordsTemplate reports whether cr is the revision of ds's pod template.
// A ControllerRevision whose data cannot be read is taken as the current
// one, as the revision order says, rather than stopping every release.
func recordsTemplate(cr *appsv1.ControllerRevision, ds *appsv1.DaemonSet) bool {
	var patch struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &patch); err != nil || patch.Spec.Template == nil {
		return true
	}
	return workload.EqualIgnoreHash(patch.Spec.Template, &ds.Spec.Template)
}

// hashOf is the value pods of a revision carry in controller-revision-hash.
func hashOf(ds *appsv1.DaemonSet, cr *appsv1.ControllerRevision) string {
	if h := cr.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]; h != "" {
		return h
	}
	return strings.TrimPrefix(cr.Name, ds.Name+"-")
}

func (r *Releaser) pods(ds *appsv1.DaemonSet) ([]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	all, err := r.deps.Pods.Pods(ds.Namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var owned []*corev1.Pod
	for _, pod := range all {
		if workload.IsControlledBy(pod, ds.UID) {
			owned = append(owned, pod)
		}
	}
	return owned, nil
}

// Observe implements workload.Releaser.
func (r *Releaser) Observe(_ context.Context, ro *v1beta1.Rollout) (*workload.Info, error) {
	ds, err := r.get(ro)
	if err != nil {
		return nil, err
	}
	info := &workload.Info{
		Kind:       v1beta1.KindDaemonSet,
		Name:       ds.Name,
		Object:     ds,
		Generation: ds.Generation,
		Consistent: ds.Status.ObservedGeneration >= ds.Generation && !r.deps.Pending(ro),
		Held:       workload.IsHeld(ds),
		Replicas:   ds.Status.DesiredNumberScheduled,
		RolloutID:  ds.Annotations[v1beta1.RolloutIDAnnotation],
	}
	crs, err := r.revisions(ds)
	if err != nil {
		return nil, err
	}
	if len(crs) == 0 || !recordsTemplate(crs[0], ds) {
		// The DaemonSet controller has taken the new template but its
		// ControllerRevision is not in the cache yet: the newest revision
		// there is an older one, and a release decided from it would take
		// the new template for the stable one.
		info.Consistent = false
		return info, nil
	}
	info.CanaryRevision = hashOf(ds, crs[0])
	info.PodTemplateHash = info.CanaryRevision
	pods, err := r.pods(ds)
	if err != nil {
		return nil, err
	}
	now := r.deps.Clock.Now()
	counts := map[string]workload.Counts{}
	for _, pod := range pods {
		if !workload.IsAlive(pod) {
			continue
		}
		rev := pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		c := counts[rev]
		c.Replicas++
		if workload.IsAvailable(pod, ds.Spec.MinReadySeconds, now) {
			c.Ready++
		}
		counts[rev] = c
	}
	info.StableRevision = workload.StableRevisionInProgress(ro)
	if info.StableRevision == "" {
		info.StableRevision = info.CanaryRevision
		// The revision most of the other pods run, newest on a tie.
		best := int32(0)
		for _, cr := range crs[1:] {
			if c := counts[hashOf(ds, cr)]; c.Replicas > best {
				best, info.StableRevision = c.Replicas, hashOf(ds, cr)
			}
		}
	}
	info.Canary, info.Stable = counts[info.CanaryRevision], counts[info.StableRevision]
	return info, nil
}

// Hold implements workload.Releaser.
func (r *Releaser) Hold(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	ds := info.Object.(*appsv1.DaemonSet).DeepCopy()
	changed, err := workload.HoldDaemonSet(nil, ds)
	if err != nil || !changed {
		return err
	}
	updated, err := r.deps.Kube.AppsV1().DaemonSets(ds.Namespace).Update(ctx, ds, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("holding DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindDaemonSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadHeld", "Held DaemonSet %s again: its release is not finished", ds.Name)
	return nil
}

// maxUnavailable is the saved RollingUpdate maxUnavailable, scaled like the
// DaemonSet controller does (rounded up), at least 1 so the release moves.
func maxUnavailable(ds *appsv1.DaemonSet, desired int32) int32 {
	orig := workload.OriginalOfDaemonSet(ds)
	value := intstr.FromInt32(1)
	if ru := orig.UpdateStrategy.RollingUpdate; orig.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil && ru.MaxUnavailable != nil {
		value = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&value, int(desired), true)
	if err != nil || n < 1 {
		return 1
	}
	return int32(n)
}

// Upgrade implements workload.Releaser. Nodes whose pod is gone or going get a
// new-revision pod from the DaemonSet controller (OnDelete creates missing
// pods from the current template), so they count toward the batch already.
func (r *Releaser) Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info, desired int32) (bool, error) {
	ds := info.Object.(*appsv1.DaemonSet)
	if r.deps.Pending(ro) || !info.Consistent {
		return false, nil
	}
	target := min(max(desired, 0), info.Replicas)
	pods, err := r.pods(ds)
	if err != nil {
		return false, err
	}
	now := r.deps.Clock.Now()
	var old []*corev1.Pod
	var oldAlive, available int32
	for _, pod := range pods {
		if !workload.IsAlive(pod) {
			continue
		}
		if workload.IsAvailable(pod, ds.Spec.MinReadySeconds, now) {
			available++
		}
		if pod.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != info.CanaryRevision {
			oldAlive++
			old = append(old, pod)
		}
	}
	updatedOrComing := info.Replicas - oldAlive
	unavailable := max(info.Replicas-available, 0)
	toDelete := min(target-updatedOrComing, maxUnavailable(ds, info.Replicas)-unavailable, int32(len(old)))
	if toDelete > 0 {
		// Unready old pods first: deleting them costs no availability. Then
		// pods of an intermediate revision (a release restarted for a newer
		// one), so the stable revision keeps its pods longest.
		sort.SliceStable(old, func(i, j int) bool {
			ai, aj := workload.IsAvailable(old[i], ds.Spec.MinReadySeconds, now), workload.IsAvailable(old[j], ds.Spec.MinReadySeconds, now)
			if ai != aj {
				return !ai
			}
			si := old[i].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == info.StableRevision
			sj := old[j].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == info.StableRevision
			if si != sj {
				return !si
			}
			return old[i].Spec.NodeName < old[j].Spec.NodeName
		})
		for _, pod := range old[:toDelete] {
			if err := workload.DeletePod(ctx, r.deps, ro, pod, fmt.Sprintf("DaemonSet %s recreates it on revision %s", ds.Name, info.CanaryRevision)); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	tolerance := workload.FailureTolerance(ro.Spec.Strategy.Canary.FailureThreshold, target)
	return workload.BatchReady(target, info.Canary.Replicas, info.Canary.Ready, tolerance), nil
}

// Complete implements workload.Releaser: every node on the new revision.
func (r *Releaser) Complete(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return r.Upgrade(ctx, ro, info, info.Replicas)
}

// Rollback implements workload.Releaser: the stable ControllerRevision holds
// the stable template as a strategic merge patch of the DaemonSet.
func (r *Releaser) Rollback(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	ds := info.Object.(*appsv1.DaemonSet)
	if r.deps.Pending(ro) || !info.Consistent {
		return false, nil
	}
	if info.CanaryRevision == info.StableRevision {
		return true, nil
	}
	crs, err := r.revisions(ds)
	if err != nil {
		return false, err
	}
	var stable *appsv1.ControllerRevision
	for _, cr := range crs {
		if hashOf(ds, cr) == info.StableRevision {
			stable = cr
			break
		}
	}
	if stable == nil {
		return false, fmt.Errorf("rolling back DaemonSet %s/%s: the stable revision %s has no ControllerRevision any more", ds.Namespace, ds.Name, info.StableRevision)
	}
	updated, err := r.deps.Kube.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.StrategicMergePatchType, stable.Data.Raw, metav1.PatchOptions{})
	if err != nil {
		return false, fmt.Errorf("rolling back DaemonSet %s/%s to revision %s: %w", ds.Namespace, ds.Name, info.StableRevision, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindDaemonSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadRolledBack", "Rolled DaemonSet %s back to the pod template of revision %s", ds.Name, info.StableRevision)
	return false, nil
}

// CanRevert implements workload.Releaser: see Revert.
func (r *Releaser) CanRevert() bool { return false }

// Revert implements workload.Releaser: a native DaemonSet has no partition,
// and its controller recreates every deleted pod from the current template,
// so its pods cannot go back to the stable revision while the template says
// the new one. An abort of a DaemonSet release writes the stable template back
// (Rollback) instead, as with spec.strategy.abortRewritesTemplate.
func (r *Releaser) Revert(context.Context, *v1beta1.Rollout, *workload.Info) (bool, error) {
	return false, fmt.Errorf("DaemonSet: %w", workload.ErrRevertUnsupported)
}

// Release implements workload.Releaser.
func (r *Releaser) Release(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	ds := info.Object.(*appsv1.DaemonSet).DeepCopy()
	if !workload.ReleaseDaemonSet(ds) {
		return true, nil
	}
	updated, err := r.deps.Kube.AppsV1().DaemonSets(ds.Namespace).Update(ctx, ds, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("releasing DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	r.deps.ExpectWritten(ro, v1beta1.KindDaemonSet, updated)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadReleased", "Released DaemonSet %s to its own update strategy (%s)", ds.Name, ds.Spec.UpdateStrategy.Type)
	return true, nil
}
