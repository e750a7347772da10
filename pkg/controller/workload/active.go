package workload

import (
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

// This file is the one definition of "the active Rollout of a workload",
// shared by the controller (which labels, holds and releases the workload)
// and the admission webhook (which holds it on a new revision), so the two
// never disagree about whether a workload is under a Rollout.

// Active reports whether a Rollout acts on its workload: it is neither
// disabled nor being deleted.
func Active(ro *v1beta1.Rollout) bool {
	return !ro.Spec.Disabled && ro.DeletionTimestamp == nil
}

// Releasable reports whether the step machine releases ro's workload with
// ro's strategy: canary for every kind, blue-green for Deployments only
// (admission refuses the rest; this covers Rollouts stored before that).
func Releasable(ro *v1beta1.Rollout) bool {
	if ro.Spec.Strategy.BlueGreen != nil {
		return ro.Spec.WorkloadRef.Kind == v1beta1.KindDeployment
	}
	return ro.Spec.Strategy.Canary != nil
}

// References reports whether a Rollout's workloadRef names the apps/v1
// workload kind/name (in the Rollout's own namespace).
func References(ro *v1beta1.Rollout, kind, name string) bool {
	ref := ro.Spec.WorkloadRef
	if ref.Kind != kind || ref.Name != name {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == "apps"
}

// ActiveRollout returns the Rollout that acts on the workload kind/name among
// rollouts (all of one namespace): the oldest active one that references it,
// ties broken by name; nil when there is none. Any other active Rollout of
// the same workload is a conflict and must stay out of the way.
func ActiveRollout(rollouts []*v1beta1.Rollout, kind, name string) *v1beta1.Rollout {
	var active *v1beta1.Rollout
	for _, ro := range rollouts {
		if !Active(ro) || !References(ro, kind, name) {
			continue
		}
		if active == nil || olderThan(ro, active) {
			active = ro
		}
	}
	return active
}

// olderThan orders Rollouts of one workload: earlier creation first, then name.
func olderThan(a, b *v1beta1.Rollout) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// RolloutLookup returns the Rollouts of a namespace whose workloadRef may name
// the workload kind/name: at least every one that does (ActiveRollout and
// References sort them out). The controller answers from an index of its
// Rollout cache, so neither a pass nor an admission review scans every
// Rollout of a namespace that holds a thousand.
type RolloutLookup func(namespace, kind, name string) ([]*v1beta1.Rollout, error)

// ListerLookup is a RolloutLookup that lists the namespace: for tests and
// callers without the index.
func ListerLookup(l rolloutlisters.RolloutLister) RolloutLookup {
	return func(namespace, _, _ string) ([]*v1beta1.Rollout, error) {
		return l.Rollouts(namespace).List(labels.Everything())
	}
}
