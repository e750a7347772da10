// Package deployment releases Deployments in batches, in place (the default)
// or through an extra canary Deployment.
//
// In place, the Deployment is held (paused, strategy Recreate) and the
// controller moves pods between its ReplicaSets itself, the way the
// Deployment controller's rolling update would but stopping at each step:
// it creates the new revision's ReplicaSet, grows it to the step's replicas
// while shrinking the old ReplicaSets, never above replicas + maxSurge pods
// and never below replicas - maxUnavailable available pods, with maxSurge and
// maxUnavailable taken from the strategy saved by the hold. When the release
// ends the Deployment gets its strategy back and is unpaused; its controller
// then finds the new ReplicaSet already at full size.
package deployment

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// Annotations the Deployment controller keeps on ReplicaSets; the controller
// writes them the same way so that the Deployment controller, once the
// Deployment is released, sees no scaling event to correct.
const (
	revisionAnnotation        = "deployment.kubernetes.io/revision"
	desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	maxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
)

var deploymentKind = appsv1.SchemeGroupVersion.WithKind(v1beta1.KindDeployment)

func getDeployment(deps *workload.Deps, ro *v1beta1.Rollout) (*appsv1.Deployment, error) {
	return workload.Referenced(ro, deps.Deployments.Deployments(ro.Namespace).Get)
}

// ownedReplicaSets are the ReplicaSets whose controller is d.
func ownedReplicaSets(deps *workload.Deps, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	all, err := deps.ReplicaSetsOf(d.UID)
	if err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	owned := make([]*appsv1.ReplicaSet, 0, len(all))
	for _, rs := range all {
		if rs.DeletionTimestamp == nil {
			owned = append(owned, rs)
		}
	}
	// Oldest first, so that every choice below is deterministic.
	sort.Slice(owned, func(i, j int) bool {
		if !owned[i].CreationTimestamp.Equal(&owned[j].CreationTimestamp) {
			return owned[i].CreationTimestamp.Before(&owned[j].CreationTimestamp)
		}
		return owned[i].Name < owned[j].Name
	})
	return owned, nil
}

// currentReplicaSet is the ReplicaSet whose template is d's, as the
// Deployment controller decides it; the oldest when there are several.
func currentReplicaSet(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	for _, rs := range rss {
		if workload.EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func revisionOf(rs *appsv1.ReplicaSet) string {
	return rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
}

func revisionNumber(rs *appsv1.ReplicaSet) int64 {
	n, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func byRevision(rss []*appsv1.ReplicaSet, revision string) *appsv1.ReplicaSet {
	for _, rs := range rss {
		if revisionOf(rs) == revision {
			return rs
		}
	}
	return nil
}

// detectStable is the revision the Deployment's pods run apart from current:
// of the other ReplicaSets that have pods, the most recent revision.
func detectStable(current *appsv1.ReplicaSet, rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var stable *appsv1.ReplicaSet
	for _, rs := range rss {
		if rs == current || (replicasOf(rs.Spec.Replicas) == 0 && rs.Status.Replicas == 0) {
			continue
		}
		if stable == nil || revisionNumber(rs) >= revisionNumber(stable) {
			stable = rs
		}
	}
	return stable
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// canaryRevision names d's current template: its ReplicaSet's hash when the
// ReplicaSet exists, otherwise the hash the Deployment controller would give it.
func canaryRevision(d *appsv1.Deployment, current *appsv1.ReplicaSet) string {
	if current != nil {
		return revisionOf(current)
	}
	return workload.ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
}

// revisions fills the revision fields of info for Deployment d and returns
// the ReplicaSets of both revisions (either may be nil).
func revisions(ro *v1beta1.Rollout, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, info *workload.Info) (current, stable *appsv1.ReplicaSet) {
	current = currentReplicaSet(d, rss)
	info.CanaryRevision = canaryRevision(d, current)
	info.PodTemplateHash = info.CanaryRevision
	if rev := workload.StableRevisionInProgress(ro); rev != "" {
		info.StableRevision = rev
		return current, byRevision(rss, rev)
	}
	stable = detectStable(current, rss)
	if stable == nil {
		info.StableRevision = info.CanaryRevision
		return current, current
	}
	info.StableRevision = revisionOf(stable)
	return current, stable
}

func baseInfo(d *appsv1.Deployment) *workload.Info {
	return &workload.Info{
		Kind:       v1beta1.KindDeployment,
		Name:       d.Name,
		Object:     d,
		Generation: d.Generation,
		Held:       workload.IsHeld(d),
		Replicas:   replicasOf(d.Spec.Replicas),
		RolloutID:  d.Annotations[v1beta1.RolloutIDAnnotation],
	}
}

func countsOf(rs *appsv1.ReplicaSet) workload.Counts {
	if rs == nil {
		return workload.Counts{}
	}
	return workload.Counts{Replicas: rs.Status.Replicas, Ready: rs.Status.AvailableReplicas}
}

// rollingParameters are maxSurge and maxUnavailable of the strategy the hold
// saved. A Recreate strategy never runs two revisions side by side on its
// own; in batches it becomes "no surge, take old pods down first".
func rollingParameters(d *appsv1.Deployment, replicas int32) (surge, unavailable int32, err error) {
	orig := workload.OriginalOfDeployment(d)
	var maxSurge, maxUnavailable *intstr.IntOrString
	switch {
	case orig.Strategy.Type == appsv1.RecreateDeploymentStrategyType:
		zero, all := intstr.FromInt32(0), intstr.FromString("100%")
		maxSurge, maxUnavailable = &zero, &all
	case orig.Strategy.RollingUpdate != nil:
		maxSurge, maxUnavailable = orig.Strategy.RollingUpdate.MaxSurge, orig.Strategy.RollingUpdate.MaxUnavailable
	}
	surge, unavailable, err = workload.SurgeAndUnavailable(maxSurge, maxUnavailable, replicas)
	if err != nil {
		return 0, 0, fmt.Errorf("rolling parameters of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return surge, unavailable, nil
}

// hold puts the webhook's hold on d.
func hold(ctx context.Context, deps *workload.Deps, ro *v1beta1.Rollout, d *appsv1.Deployment) error {
	d = d.DeepCopy()
	changed, err := workload.HoldDeployment(nil, d)
	if err != nil || !changed {
		return err
	}
	updated, err := deps.Kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("holding Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	deps.ExpectWritten(ro, v1beta1.KindDeployment, updated)
	deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadHeld", "Held Deployment %s again: its release is not finished", d.Name)
	return nil
}

// release gives d its own strategy back; true once that is written.
func release(ctx context.Context, deps *workload.Deps, ro *v1beta1.Rollout, d *appsv1.Deployment) (bool, error) {
	d = d.DeepCopy()
	if !workload.ReleaseDeployment(d) {
		return true, nil
	}
	updated, err := deps.Kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("releasing Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	deps.ExpectWritten(ro, v1beta1.KindDeployment, updated)
	deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadReleased", "Released Deployment %s to its own strategy (%s)", d.Name, d.Spec.Strategy.Type)
	klog.InfoS("Released Deployment", "rollout", klog.KObj(ro), "deployment", klog.KObj(d))
	return true, nil
}

// rollback writes the stable revision's template into d; true once d has it.
func rollback(ctx context.Context, deps *workload.Deps, ro *v1beta1.Rollout, d *appsv1.Deployment, stableRevision string) (bool, error) {
	rss, err := ownedReplicaSets(deps, d)
	if err != nil {
		return false, err
	}
	stable := byRevision(rss, stableRevision)
	if stable == nil {
		return false, fmt.Errorf("rolling back Deployment %s/%s: the stable revision %s has no ReplicaSet any more", d.Namespace, d.Name, stableRevision)
	}
	if workload.EqualIgnoreHash(&d.Spec.Template, &stable.Spec.Template) {
		return true, nil
	}
	d = d.DeepCopy()
	template := stable.Spec.Template.DeepCopy()
	delete(template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	d.Spec.Template = *template
	updated, err := deps.Kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("rolling back Deployment %s/%s to revision %s: %w", d.Namespace, d.Name, stableRevision, err)
	}
	deps.ExpectWritten(ro, v1beta1.KindDeployment, updated)
	deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "WorkloadRolledBack", "Rolled Deployment %s back to the pod template of revision %s", d.Name, stableRevision)
	return false, nil
}
