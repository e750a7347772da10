package deployment

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// Labels and annotations of the extra canary Deployment.
const (
	// CanaryLabel is on the canary Deployment, in its selector and on its
	// pods. Being in the selector keeps the canary Deployment from selecting
	// the stable pods; the stable Service, which selects by the application's
	// own labels, still reaches the canary pods.
	CanaryLabel = "rollout.kruise.io/canary-workload"
	// CanaryRevisionAnnotation on the canary Deployment is the revision of the
	// stable Deployment that it runs.
	CanaryRevisionAnnotation = "rollout.kruise.io/canary-revision"
)

// CanaryName is the name of the extra canary Deployment of Deployment name.
func CanaryName(name string) string {
	return name + "-canary"
}

// Canary releases a Deployment through an extra canary Deployment: the
// Deployment stays held on its stable revision while a second Deployment with
// the new template is scaled to each step's replicas. At the end the
// Deployment is released, rolls out on its own strategy, and the canary
// Deployment is deleted once it has.
type Canary struct {
	deps *workload.Deps
}

var _ workload.Releaser = (*Canary)(nil)

// NewCanary returns the extra-workload releaser for Deployments.
func NewCanary(deps *workload.Deps) *Canary {
	return &Canary{deps: deps}
}

// canaryDeployment is the canary Deployment of d from the cache, nil if none.
// Another object with its name is an error: it is not ours to change.
func (r *Canary) canaryDeployment(d *appsv1.Deployment) (*appsv1.Deployment, error) {
	cd, err := r.deps.Deployments.Deployments(d.Namespace).Get(CanaryName(d.Name))
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading canary Deployment %s/%s from cache: %w", d.Namespace, CanaryName(d.Name), err)
	}
	if !workload.IsControlledBy(cd, d.UID) {
		return nil, fmt.Errorf("deployment %s/%s exists and is not the canary of Deployment %s; rename it or disable enableExtraWorkloadForCanary", d.Namespace, cd.Name, d.Name)
	}
	return cd, nil
}

// Observe implements workload.Releaser.
func (r *Canary) Observe(_ context.Context, ro *v1beta1.Rollout) (*workload.Info, error) {
	d, err := getDeployment(r.deps, ro)
	if err != nil {
		return nil, err
	}
	rss, err := ownedReplicaSets(r.deps, d)
	if err != nil {
		return nil, err
	}
	info := baseInfo(d)
	info.Consistent = !r.deps.Pending(ro)
	current, stable := revisions(ro, d, rss, info)
	info.Stable = countsOf(stable)
	if info.StableRevision == info.CanaryRevision {
		info.Canary = countsOf(current)
		return info, nil
	}
	cd, err := r.canaryDeployment(d)
	if err != nil {
		return nil, err
	}
	if cd == nil || cd.Annotations[CanaryRevisionAnnotation] != info.CanaryRevision {
		return info, nil
	}
	crss, err := ownedReplicaSets(r.deps, cd)
	if err != nil {
		return nil, err
	}
	if crs := currentReplicaSet(cd, crss); crs != nil {
		info.Canary = countsOf(crs)
		info.PodTemplateHash = revisionOf(crs)
	}
	return info, nil
}

// Hold implements workload.Releaser.
func (r *Canary) Hold(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	return hold(ctx, r.deps, ro, info.Object.(*appsv1.Deployment))
}

// desiredCanary is the canary Deployment for d's current template.
func desiredCanary(ro *v1beta1.Rollout, d *appsv1.Deployment, revision string, replicas int32) *appsv1.Deployment {
	template := d.Spec.Template.DeepCopy()
	template.Labels = maps.Clone(template.Labels)
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	if patch := ro.Spec.Strategy.Canary.PatchPodTemplateMetadata; patch != nil {
		maps.Copy(template.Labels, patch.Labels)
		if len(patch.Annotations) > 0 {
			template.Annotations = maps.Clone(template.Annotations)
			if template.Annotations == nil {
				template.Annotations = map[string]string{}
			}
			maps.Copy(template.Annotations, patch.Annotations)
		}
	}
	template.Labels[CanaryLabel] = "true"
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[CanaryLabel] = "true"
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:            CanaryName(d.Name),
			Namespace:       d.Namespace,
			Labels:          map[string]string{CanaryLabel: "true"},
			Annotations:     map[string]string{CanaryRevisionAnnotation: revision},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                selector,
			Template:                *template,
			Strategy:                workload.OriginalOfDeployment(d).Strategy,
			MinReadySeconds:         d.Spec.MinReadySeconds,
			RevisionHistoryLimit:    d.Spec.RevisionHistoryLimit,
			ProgressDeadlineSeconds: d.Spec.ProgressDeadlineSeconds,
		},
	}
}

// Upgrade implements workload.Releaser: the canary Deployment gets the new
// template and the batch's replicas; the stable Deployment is left as it is.
func (r *Canary) Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info, desired int32) (bool, error) {
	d := info.Object.(*appsv1.Deployment)
	if r.deps.Pending(ro) {
		return false, nil
	}
	target := min(max(desired, 0), info.Replicas)
	want := desiredCanary(ro, d, info.CanaryRevision, target)
	cd, err := r.canaryDeployment(d)
	if err != nil {
		return false, err
	}
	if cd == nil {
		created, err := r.deps.Kube.AppsV1().Deployments(d.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("creating canary Deployment %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.deps.ExpectWritten(ro, v1beta1.KindDeployment, created)
		r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "CanaryCreated", "Created canary Deployment %s with %d pods of revision %s", created.Name, target, info.CanaryRevision)
		return false, nil
	}
	if replicasOf(cd.Spec.Replicas) != target ||
		cd.Annotations[CanaryRevisionAnnotation] != info.CanaryRevision ||
		!apiequality.Semantic.DeepEqual(cd.Spec.Template, want.Spec.Template) ||
		!apiequality.Semantic.DeepEqual(cd.Spec.Strategy, want.Spec.Strategy) {
		update := cd.DeepCopy()
		update.Spec.Replicas = want.Spec.Replicas
		update.Spec.Template = want.Spec.Template
		update.Spec.Strategy = want.Spec.Strategy
		update.Spec.MinReadySeconds = want.Spec.MinReadySeconds
		if update.Annotations == nil {
			update.Annotations = map[string]string{}
		}
		update.Annotations[CanaryRevisionAnnotation] = info.CanaryRevision
		updated, err := r.deps.Kube.AppsV1().Deployments(d.Namespace).Update(ctx, update, metav1.UpdateOptions{})
		if err != nil {
			return false, fmt.Errorf("updating canary Deployment %s/%s: %w", update.Namespace, update.Name, err)
		}
		r.deps.ExpectWritten(ro, v1beta1.KindDeployment, updated)
		r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "CanaryScaled", "Set canary Deployment %s to %d pods of revision %s", updated.Name, target, info.CanaryRevision)
		return false, nil
	}
	if cd.Status.ObservedGeneration < cd.Generation {
		return false, nil
	}
	crss, err := ownedReplicaSets(r.deps, cd)
	if err != nil {
		return false, err
	}
	crs := currentReplicaSet(cd, crss)
	if crs == nil {
		return target == 0, nil
	}
	tolerance := workload.FailureTolerance(failureThreshold(ro), target)
	return cd.Status.UpdatedReplicas >= target &&
		workload.BatchReady(target, crs.Status.Replicas, crs.Status.AvailableReplicas, tolerance), nil
}

// Complete implements workload.Releaser: the stable Deployment is released
// and rolls out on its own strategy; done once its new revision is ready.
func (r *Canary) Complete(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	d := info.Object.(*appsv1.Deployment)
	if r.deps.Pending(ro) {
		return false, nil
	}
	if info.Held {
		if _, err := release(ctx, r.deps, ro, d); err != nil {
			return false, err
		}
		return false, nil
	}
	if d.Status.ObservedGeneration < d.Generation {
		return false, nil
	}
	rss, err := ownedReplicaSets(r.deps, d)
	if err != nil {
		return false, err
	}
	current := currentReplicaSet(d, rss)
	if current == nil {
		return false, nil
	}
	tolerance := workload.FailureTolerance(failureThreshold(ro), info.Replicas)
	return d.Status.UpdatedReplicas >= info.Replicas &&
		workload.BatchReady(info.Replicas, current.Status.Replicas, current.Status.AvailableReplicas, tolerance), nil
}

// Rollback implements workload.Releaser. The stable Deployment never left its
// stable pods; only its template goes back. Release removes the canary.
func (r *Canary) Rollback(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return rollback(ctx, r.deps, ro, info.Object.(*appsv1.Deployment), info.StableRevision)
}

// CanRevert implements workload.Releaser.
func (r *Canary) CanRevert() bool { return true }

// Revert implements workload.Releaser: the held Deployment never left its
// stable pods (paused, it creates no ReplicaSet for its new template), so
// the canary Deployment goes, and once the cache no longer shows it the
// Deployment's own ReplicaSets are reverted in place. That finds nothing to do
// unless the abort came after finalisation had already handed the Deployment
// its new revision.
func (r *Canary) Revert(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	if r.deps.Pending(ro) {
		return false, nil
	}
	gone, err := r.deleteCanary(ctx, ro, info.Object.(*appsv1.Deployment))
	if err != nil || !gone {
		return false, err
	}
	return NewInPlace(r.deps).Revert(ctx, ro, info)
}

// Release implements workload.Releaser: the canary Deployment is deleted and
// the stable Deployment gets its strategy back.
func (r *Canary) Release(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	d := info.Object.(*appsv1.Deployment)
	if _, err := r.deleteCanary(ctx, ro, d); err != nil {
		return false, err
	}
	return release(ctx, r.deps, ro, d)
}

// deleteCanary deletes d's canary Deployment and reports whether the cache
// already showed none.
func (r *Canary) deleteCanary(ctx context.Context, ro *v1beta1.Rollout, d *appsv1.Deployment) (bool, error) {
	cd, err := r.canaryDeployment(d)
	if err != nil || cd == nil {
		return cd == nil && err == nil, err
	}
	policy := metav1.DeletePropagationBackground
	err = r.deps.Kube.AppsV1().Deployments(cd.Namespace).Delete(ctx, cd.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &cd.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting canary Deployment %s/%s: %w", cd.Namespace, cd.Name, err)
	}
	r.deps.Expectations.ExpectGone(workload.OwnerKey(ro), workload.ObjectKey(v1beta1.KindDeployment, cd.Namespace, cd.Name), cd.UID)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "CanaryDeleted", "Deleted canary Deployment %s", cd.Name)
	klog.InfoS("Deleted canary Deployment", "rollout", klog.KObj(ro), "deployment", klog.KObj(cd))
	return false, nil
}
