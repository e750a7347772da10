// Package workload holds what every kind of workload shares in a release: the
// Releaser contract that the step machine drives, the batch arithmetic, the
// hold that the admission webhook puts on a workload and its exact undoing,
// template hashing and write expectations. The mechanics of each kind live in
// the subpackages deployment, statefulset and daemonset.
package workload

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// ErrNotFound is returned (wrapped) by Observe when the referenced workload does not exist.
var ErrNotFound = errors.New("workload not found")

// ErrRevertUnsupported is returned (wrapped) by Revert for a kind whose pods
// cannot run an older revision than its pod template: the caller falls back
// to Rollback, which writes the stable template back.
var ErrRevertUnsupported = errors.New("the workload cannot run its stable revision without its pod template changing")

// Releaser moves one kind of workload through a release. Every method is
// idempotent and computes from the informer caches, so the step machine can
// call it on every reconcile; a method that has more to do returns false and
// the caller reconciles again when the workload or its pods change.
type Releaser interface {
	// Observe reads the workload and its pods and reports revisions and counts.
	Observe(ctx context.Context, ro *v1beta1.Rollout) (*Info, error)
	// Hold puts the same hold on the workload that the admission webhook puts on
	// it, for a release whose hold was removed by someone else.
	Hold(ctx context.Context, ro *v1beta1.Rollout, info *Info) error
	// Upgrade brings the workload toward desired pods of the new revision
	// within the workload's own surge and availability bounds, and reports
	// whether the batch is ready (allowing failureThreshold unready pods).
	Upgrade(ctx context.Context, ro *v1beta1.Rollout, info *Info, desired int32) (ready bool, err error)
	// Complete brings every pod to the new revision: the first stage of a
	// successful finalisation. It reports true once that is done.
	Complete(ctx context.Context, ro *v1beta1.Rollout, info *Info) (done bool, err error)
	// Rollback writes the stable revision's pod template back into the
	// workload and reports true once the workload controller has observed it.
	Rollback(ctx context.Context, ro *v1beta1.Rollout, info *Info) (done bool, err error)
	// CanRevert reports whether Revert works for this kind. An abort of a
	// kind that cannot revert writes the stable template back instead.
	CanRevert() bool
	// Revert brings every pod back to the stable revision while the
	// workload's pod template stays as the user wrote it and the hold stays
	// on: the aborted state. It reports true once no pod of another revision
	// is left and the stable revision has its replicas; it never waits for
	// the stable pods to become ready. A kind that cannot do it returns
	// ErrRevertUnsupported without changing anything.
	Revert(ctx context.Context, ro *v1beta1.Rollout, info *Info) (done bool, err error)
	// Release hands the workload back to its own update strategy, restoring
	// exactly what the hold changed and removing anything the release created.
	Release(ctx context.Context, ro *v1beta1.Rollout, info *Info) (done bool, err error)
}

// Retirer is a Releaser that keeps the stable revision running beside the
// new one until traffic has switched (blue-green), and so has one more
// stage in a successful finalisation.
type Retirer interface {
	Releaser
	// Retire scales every revision but the new one away and reports true
	// once none of their pods is left.
	Retire(ctx context.Context, ro *v1beta1.Rollout, info *Info) (done bool, err error)
}

// Info is what Observe saw.
type Info struct {
	// Kind and Name of the workload.
	Kind, Name string
	// Object is the workload as read from the cache; releasers use it in the
	// same reconcile instead of reading again. Treat it as read-only.
	Object runtime.Object
	// Generation of the workload.
	Generation int64
	// Consistent is false while the cache does not show the controller's own
	// last writes yet, or the workload's controller has not yet observed the
	// latest spec: decisions taken from such a view (start a release, the
	// revisions) could act on a state that is already gone.
	Consistent bool
	// Held is true while the workload carries the hold annotation.
	Held bool
	// Replicas is how many pods the workload should have in total.
	Replicas int32
	// StableRevision is the revision being replaced (the one in status while a
	// release is in progress, otherwise the one the workload's pods run).
	StableRevision string
	// CanaryRevision is the revision of the workload's current pod template.
	CanaryRevision string
	// PodTemplateHash is the label value that selects the new revision's pods.
	PodTemplateHash string
	// RolloutID is the workload's rollout-id annotation.
	RolloutID string
	// Canary and Stable count the pods of each revision; Ready counts pods that
	// are ready and have been for the workload's minReadySeconds.
	Canary, Stable Counts
}

// Counts are the pods of one revision.
type Counts struct {
	// Replicas is the number of pods.
	Replicas int32
	// Ready is the number of available pods.
	Ready int32
}

// Deps are the clients, caches and helpers the per-kind releasers share.
type Deps struct {
	// Kube writes to the host cluster.
	Kube kubernetes.Interface
	// Listers of the host cluster's objects.
	Deployments         appslisters.DeploymentLister
	ReplicaSets         appslisters.ReplicaSetLister
	StatefulSets        appslisters.StatefulSetLister
	DaemonSets          appslisters.DaemonSetLister
	ControllerRevisions appslisters.ControllerRevisionLister
	Pods                corelisters.PodLister
	// Owned finds a workload's ReplicaSets and ControllerRevisions by its UID.
	Owned OwnerIndexers
	// Recorder records Events on the Rollout for workload changes.
	Recorder record.EventRecorder
	// Expectations remembers writes the caches have not shown yet.
	Expectations *Expectations
	// Clock tells the time; tests replace it.
	Clock clock.PassiveClock
}

// StableRevisionInProgress returns the stable revision recorded by a release in
// progress, or by an aborted release whose workload is held on it, or "" when
// there is neither.
func StableRevisionInProgress(ro *v1beta1.Rollout) string {
	progress := ro.Status.Progress()
	if (ro.Status.Phase != v1beta1.RolloutPhaseProgressing && ro.Status.Phase != v1beta1.RolloutPhaseAborted) || progress == nil {
		return ""
	}
	return progress.StableRevision
}

// OwnerKey is the key under which expectations about a Rollout's workload are kept.
func OwnerKey(ro *v1beta1.Rollout) string {
	return ro.Namespace + "/" + ro.Name
}
