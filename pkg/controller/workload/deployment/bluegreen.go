package deployment

import (
	"context"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// BlueGreen releases a Deployment blue-green: the new revision's
// ReplicaSet grows to each step's replicas beside the stable one, which
// keeps every replica (and so every request the route still sends it) until
// the finalisation has switched traffic and calls Retire. It uses the
// Deployment's own ReplicaSets, as InPlace does, so nothing but pods is
// doubled and the Deployment owns everything at the end.
type BlueGreen struct {
	InPlace
}

var _ workload.Retirer = (*BlueGreen)(nil)

// NewBlueGreen returns the blue-green releaser for Deployments.
func NewBlueGreen(deps *workload.Deps) *BlueGreen {
	return &BlueGreen{InPlace: InPlace{deps: deps}}
}

// Upgrade implements workload.Releaser: the new ReplicaSet is scaled to
// desired, the stable one to every replica, and any revision in between (a
// release restarted for a newer one) to zero.
func (r *BlueGreen) Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info, desired int32) (bool, error) {
	d, rss, ok, err := r.replicaSets(ro, info)
	if !ok || err != nil {
		return false, err
	}
	replicas := info.Replicas
	target := min(max(desired, 0), replicas)
	current := currentReplicaSet(d, rss)
	if current == nil {
		if target == 0 {
			return true, nil
		}
		created, err := r.createReplicaSet(ctx, ro, d, rss, 2*replicas)
		if err != nil {
			return false, err
		}
		current = created
		rss = append(rss, created)
	}
	scaled, err := r.scaleAll(ctx, ro, d, rss, func(rs *appsv1.ReplicaSet) int32 {
		switch {
		case rs == current:
			return target
		case revisionOf(rs) == info.StableRevision:
			return replicas
		}
		return 0
	})
	if err != nil {
		return false, err
	}
	tolerance := workload.FailureTolerance(failureThreshold(ro), target)
	return !scaled && current.Status.ObservedGeneration >= current.Generation &&
		workload.BatchReady(target, current.Status.Replicas, current.Status.AvailableReplicas, tolerance), nil
}

// Complete implements workload.Releaser: the new revision gets every
// replica; the old one keeps its own until Retire.
func (r *BlueGreen) Complete(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	return r.Upgrade(ctx, ro, info, info.Replicas)
}

// Retire implements workload.Retirer: every ReplicaSet but the new one is
// scaled to zero, and it is done once their pods are gone.
func (r *BlueGreen) Retire(ctx context.Context, ro *v1beta1.Rollout, info *workload.Info) (bool, error) {
	d, rss, ok, err := r.replicaSets(ro, info)
	if !ok || err != nil {
		return false, err
	}
	current := currentReplicaSet(d, rss)
	scaled, err := r.scaleAll(ctx, ro, d, rss, func(rs *appsv1.ReplicaSet) int32 {
		if rs == current {
			return replicasOf(rs.Spec.Replicas)
		}
		return 0
	})
	if err != nil || scaled {
		return false, err
	}
	for _, rs := range rss {
		if rs != current && rs.Status.Replicas > 0 {
			return false, nil
		}
	}
	// The new revision alone now: its ReplicaSet records the Deployment's
	// own replicas and surge again, as if the Deployment controller had
	// rolled it out, before the Deployment gets its strategy back.
	replicas := replicasOf(d.Spec.Replicas)
	if current != nil && current.Annotations[desiredReplicasAnnotation] != strconv.Itoa(int(replicas)) {
		surge, _, err := rollingParameters(d, replicas)
		if err != nil {
			return false, err
		}
		if err := r.scale(ctx, ro, d, current, replicasOf(current.Spec.Replicas), replicas, surge); err != nil {
			return false, err
		}
	}
	return true, nil
}

// scaleAll scales each ReplicaSet to what want says for it, shrinking
// before growing, and reports whether it wrote anything.
//
// The ReplicaSets it scales record 2×replicas as the Deployment's desired
// (and most) pods: both revisions run every replica. That is also what keeps
// the Deployment controller from undoing a blue-green release: even for a
// paused Deployment it scales every old ReplicaSet to 0 as soon as the new
// one is saturated, which it decides from that annotation.
func (r *BlueGreen) scaleAll(ctx context.Context, ro *v1beta1.Rollout, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, want func(*appsv1.ReplicaSet) int32) (bool, error) {
	both := 2 * replicasOf(d.Spec.Replicas)
	scaled := false
	for _, shrink := range []bool{true, false} {
		for _, rs := range rss {
			to, from := want(rs), replicasOf(rs.Spec.Replicas)
			unmarked := rs.Annotations[desiredReplicasAnnotation] != strconv.Itoa(int(both))
			if (to == from && !(unmarked && to > 0)) || (to < from) != shrink {
				continue
			}
			if err := r.scale(ctx, ro, d, rs, to, both, 0); err != nil {
				return scaled, err
			}
			scaled = true
		}
	}
	return scaled, nil
}
