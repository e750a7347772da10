package deployment

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// InPlace releases a Deployment by moving pods between its own ReplicaSets.
type InPlace struct {
	deps *workload.Deps
}

var _ workload.Releaser = (*InPlace)(nil)

// NewInPlace returns the in-place releaser for Deployments.
func NewInPlace(deps *workload.Deps) *InPlace {
	return &InPlace{deps: deps}
}

// Observe implements workload.Releaser.
func (r *InPlace) Observe(_ context.Context, ro *v1beta1.Rollout) (*workload.Info, error) {
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
	info.Canary = countsOf(current)
	info.Stable = countsOf(stable)
	if info.StableRevision == info.CanaryRevision {
		info.Stable = info.Canary
	}
	return info, nil
}

// Hold implements workload.Releaser.
func (r *InPlace) Hold(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) error {
	return hold(ctx, r.deps, ro, info.Object.(*appsv1.Deployment))
}

// Upgrade implements workload.Releaser.
func (r *InPlace) Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info, desired int32) (bool, error) {
	d, rss, ok, err := r.replicaSets(ro, info)
	if !ok || err != nil {
		return false, err
	}
	replicas := info.Replicas
	target := min(max(desired, 0), replicas)
	surge, unavailable, err := rollingParameters(d, replicas)
	if err != nil {
		return false, err
	}
	current := currentReplicaSet(d, rss)
	if current == nil {
		if target == 0 {
			return true, nil
		}
		// The new ReplicaSet starts empty; the plan below sizes it.
		created, err := r.createReplicaSet(ctx, ro, d, rss, replicas+surge)
		if err != nil {
			return false, err
		}
		current = created
		rss = append(rss, created)
	}

	now := scaleState{name: current.Name, spec: replicasOf(current.Spec.Replicas), pods: current.Status.Replicas, available: current.Status.AvailableReplicas}
	var olds []scaleState
	byName := map[string]*appsv1.ReplicaSet{current.Name: current}
	for _, rs := range rss {
		if rs == current {
			continue
		}
		byName[rs.Name] = rs
		olds = append(olds, scaleState{
			name:      rs.Name,
			spec:      replicasOf(rs.Spec.Replicas),
			available: rs.Status.AvailableReplicas,
			pods:      rs.Status.Replicas,
			stable:    revisionOf(rs) == info.StableRevision,
		})
	}
	plan := planScale(replicas, surge, unavailable, target, now, olds)

	// Shrinks first, then grows, so the pod count never passes replicas + maxSurge.
	for _, step := range plan {
		if err := r.scale(ctx, ro, d, byName[step.name], step.to, replicas, surge); err != nil {
			return false, err
		}
	}

	tolerance := workload.FailureTolerance(failureThreshold(ro), target)
	currentTouched := false
	for _, step := range plan {
		currentTouched = currentTouched || step.name == current.Name
	}
	ready := !currentTouched &&
		replicasOf(current.Spec.Replicas) == target &&
		current.Status.ObservedGeneration >= current.Generation &&
		workload.BatchReady(target, current.Status.Replicas, current.Status.AvailableReplicas, tolerance)
	return ready, nil
}

// Complete implements workload.Releaser: the last batch is every pod.
func (r *InPlace) Complete(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return r.Upgrade(ctx, ro, info, info.Replicas)
}

// Rollback implements workload.Releaser.
func (r *InPlace) Rollback(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return rollback(ctx, r.deps, ro, info.Object.(*appsv1.Deployment), info.StableRevision)
}

// CanRevert implements workload.Releaser.
func (r *InPlace) CanRevert() bool { return true }

// Revert implements workload.Releaser: the batch arithmetic of Upgrade run
// backwards. The stable ReplicaSet plays the new one and grows back to every
// replica within replicas + maxSurge, while every other ReplicaSet shrinks to
// zero within the availability budget, unready pods first. The Deployment
// keeps its template and its hold, so its own controller (paused, Recreate)
// creates nothing; it only scales the stable ReplicaSet to the Deployment's
// replicas should that become the only active one, which is the goal anyway.
func (r *InPlace) Revert(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	d, rss, ok, err := r.replicaSets(ro, info)
	if !ok || err != nil {
		return false, err
	}
	stable := byRevision(rss, info.StableRevision)
	if stable == nil {
		return false, fmt.Errorf("reverting Deployment %s/%s: the stable revision %s has no ReplicaSet any more", d.Namespace, d.Name, info.StableRevision)
	}
	replicas := info.Replicas
	surge, unavailable, err := rollingParameters(d, replicas)
	if err != nil {
		return false, err
	}
	back := scaleState{name: stable.Name, spec: replicasOf(stable.Spec.Replicas), pods: stable.Status.Replicas, available: stable.Status.AvailableReplicas}
	var others []scaleState
	byName := map[string]*appsv1.ReplicaSet{stable.Name: stable}
	left := false
	for _, rs := range rss {
		if rs == stable {
			continue
		}
		byName[rs.Name] = rs
		others = append(others, scaleState{name: rs.Name, spec: replicasOf(rs.Spec.Replicas), available: rs.Status.AvailableReplicas, pods: rs.Status.Replicas})
		left = left || replicasOf(rs.Spec.Replicas) > 0 || rs.Status.Replicas > 0
	}
	plan := planScale(replicas, surge, unavailable, replicas, back, others)
	for _, step := range plan {
		if err := r.scale(ctx, ro, d, byName[step.name], step.to, replicas, surge); err != nil {
			return false, err
		}
	}
	return len(plan) == 0 && !left && replicasOf(stable.Spec.Replicas) == replicas &&
		stable.Status.ObservedGeneration >= stable.Generation, nil
}

// replicaSets returns the Deployment and its ReplicaSets to scale, or
// ok=false while a previous write is not in the cache yet (its event brings
// the Rollout back): sizes computed from an older cache could undo it.
func (r *InPlace) replicaSets(ro *v1beta1.Rollout, info *workload.Info) (*appsv1.Deployment, []*appsv1.ReplicaSet, bool, error) {
	d := info.Object.(*appsv1.Deployment)
	if r.deps.Pending(ro) {
		return d, nil, false, nil
	}
	rss, err := ownedReplicaSets(r.deps, d)
	if err != nil {
		return d, nil, false, err
	}
	return d, rss, true, nil
}

// Release implements workload.Releaser.
func (r *InPlace) Release(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return release(ctx, r.deps, ro, info.Object.(*appsv1.Deployment))
}

// createReplicaSet creates d's ReplicaSet for its current template, empty, as
// the Deployment controller would have: same name, hash label, selector,
// owner and revision annotations.
func (r *InPlace) createReplicaSet(ctx context.Context, ro *v1beta1.Rollout, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, maxReplicas int32) (*appsv1.ReplicaSet, error) {
	hash := workload.ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	template := d.Spec.Template.DeepCopy()
	template.Labels = maps.Clone(template.Labels)
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	var revision int64
	for _, rs := range rss {
		revision = max(revision, revisionNumber(rs))
	}
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          maps.Clone(template.Labels),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind)},
			Annotations: map[string]string{
				revisionAnnotation:        strconv.FormatInt(revision+1, 10),
				desiredReplicasAnnotation: strconv.Itoa(int(replicasOf(d.Spec.Replicas))),
				maxReplicasAnnotation:     strconv.Itoa(int(maxReplicas)),
			},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        &zero,
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	created, err := r.deps.Kube.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Most likely our own earlier create that the cache has not shown yet.
		existing, getErr := r.deps.Kube.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, fmt.Errorf("reading existing ReplicaSet %s/%s: %w", d.Namespace, rs.Name, getErr)
		}
		if workload.IsControlledBy(existing, d.UID) && workload.EqualIgnoreHash(&existing.Spec.Template, &d.Spec.Template) {
			return existing, nil
		}
		return nil, fmt.Errorf("ReplicaSet %s/%s exists but is not Deployment %s's new revision (a pod-template-hash collision)", d.Namespace, rs.Name, d.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("creating ReplicaSet for the new revision of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	r.deps.Expectations.ExpectGeneration(workload.OwnerKey(ro), workload.ObjectKey(workload.KindReplicaSet, created.Namespace, created.Name), created.Generation)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "ReplicaSetCreated", "Created ReplicaSet %s for revision %s of Deployment %s", created.Name, hash, d.Name)
	return created, nil
}

// scale sets one ReplicaSet's replicas, with the annotations the Deployment
// controller keeps, through an update that fails if the cache was stale.
func (r *InPlace) scale(ctx context.Context, ro *v1beta1.Rollout, d *appsv1.Deployment, rs *appsv1.ReplicaSet, to, replicas, surge int32) error {
	from := replicasOf(rs.Spec.Replicas)
	rs = rs.DeepCopy()
	rs.Spec.Replicas = &to
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[desiredReplicasAnnotation] = strconv.Itoa(int(replicas))
	rs.Annotations[maxReplicasAnnotation] = strconv.Itoa(int(replicas + surge))
	updated, err := r.deps.Kube.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("scaling ReplicaSet %s/%s from %d to %d: %w", rs.Namespace, rs.Name, from, to, err)
	}
	r.deps.Expectations.ExpectGeneration(workload.OwnerKey(ro), workload.ObjectKey(workload.KindReplicaSet, updated.Namespace, updated.Name), updated.Generation)
	r.deps.Recorder.Eventf(ro, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled ReplicaSet %s of Deployment %s from %d to %d", rs.Name, d.Name, from, to)
	klog.V(2).InfoS("Scaled ReplicaSet", "rollout", klog.KObj(ro), "replicaSet", klog.KObj(rs), "from", from, "to", to)
	return nil
}

func failureThreshold(ro *v1beta1.Rollout) *intstr.IntOrString {
	if ro.Spec.Strategy.Canary == nil {
		return nil
	}
	return ro.Spec.Strategy.Canary.FailureThreshold
}
