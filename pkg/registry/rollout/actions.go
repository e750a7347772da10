package rollout

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
)

// action is one of the POST subresources. apply changes the Rollout in place
// to record the request, or returns an error (a 409 when the action makes no
// sense in the Rollout's state). apply must be safe to run again on a fresher
// copy of the Rollout, because conflicting writes are retried.
type action interface {
	newRequest() runtime.Object
	validate(request runtime.Object) field.ErrorList
	apply(r *rollout.Rollout, request runtime.Object, by actor) error
}

// actor is who asked for an action and when.
type actor struct {
	user string
	at   metav1.Time
}

// ActionREST serves one action subresource (rollouts/NAME/promote and so on)
// as a named create, the way pods/eviction and deployments/rollback are served.
type ActionREST struct {
	store  *genericregistry.Store
	action action
	// produces is the versioned Rollout the action answers with, for OpenAPI.
	produces runtime.Object
}

var _ rest.NamedCreater = &ActionREST{}
var _ rest.StorageMetadata = &ActionREST{}

// producing returns a copy of the action that documents its response as the
// given versioned Rollout.
func (a *ActionREST) producing(versionedRollout runtime.Object) *ActionREST {
	c := *a
	c.produces = versionedRollout
	return &c
}

// ProducesMIMETypes returns nil: the action answers in the negotiated type.
func (a *ActionREST) ProducesMIMETypes(string) []string { return nil }

// ProducesObject is the Rollout the action answers with, not its request body.
func (a *ActionREST) ProducesObject(string) interface{} { return a.produces }

func newActionREST(store *genericregistry.Store, a action) *ActionREST {
	return &ActionREST{store: store, action: a}
}

// New returns an empty request body of this action.
func (a *ActionREST) New() runtime.Object { return a.action.newRequest() }

// Destroy does nothing: the store is shared with the main resource.
func (a *ActionREST) Destroy() {}

// Create records the action on the named Rollout and returns the Rollout as
// stored (or as it would be, for a dry run).
func (a *ActionREST) Create(ctx context.Context, name string, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unreadable request body: %v", err))
	}
	if m.GetName() != "" && m.GetName() != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name in the request body (%q) does not match the Rollout in the URL (%q)", m.GetName(), name))
	}
	if errs := a.action.validate(obj); len(errs) > 0 {
		return nil, apierrors.NewInvalid(obj.GetObjectKind().GroupVersionKind().GroupKind(), name, errs)
	}
	if createValidation != nil {
		if err := createValidation(ctx, obj.DeepCopyObject()); err != nil {
			return nil, err
		}
	}

	by := actor{at: metav1.Now()}
	if u, ok := genericapirequest.UserFrom(ctx); ok {
		by.user = u.GetName()
	}
	record := func(_ context.Context, _, old runtime.Object) (runtime.Object, error) {
		r := old.(*rollout.Rollout).DeepCopy()
		if r.DeletionTimestamp != nil {
			return nil, conflict(name, "the Rollout is being deleted")
		}
		if err := a.action.apply(r, obj, by); err != nil {
			return nil, err
		}
		return r, nil
	}
	updated, _, err := a.store.Update(ctx, name, rest.DefaultUpdatedObjectInfo(nil, record),
		rest.ValidateAllObjectFunc, rest.ValidateAllObjectUpdateFunc, false,
		&metav1.UpdateOptions{DryRun: options.DryRun, FieldManager: options.FieldManager})
	return updated, err
}

func conflict(name, format string, args ...interface{}) error {
	return apierrors.NewConflict(rollout.Resource("rollouts"), name, fmt.Errorf(format, args...))
}

// promoteAction asks the controller to leave the current paused step or the
// step's running metric checks (or, with full, to finish every remaining step).
type promoteAction struct{}

func (promoteAction) newRequest() runtime.Object { return &rollout.RolloutPromote{} }

func (promoteAction) validate(runtime.Object) field.ErrorList { return nil }

func (promoteAction) apply(r *rollout.Rollout, request runtime.Object, by actor) error {
	full := request.(*rollout.RolloutPromote).Full
	step := r.Status.CurrentStepIndex
	if r.Status.Phase != rollout.RolloutPhaseProgressing {
		return conflict(r.Name, "nothing to promote: the Rollout is %s, not Progressing", phaseOf(r))
	}
	if r.Spec.Strategy.Paused {
		return conflict(r.Name, "the Rollout is paused; resume it before promoting")
	}
	if pending := r.Status.PendingAction; pending != nil {
		if pending.Type == rollout.RolloutActionPromote && pending.StepIndex == step && pending.Full == full {
			return nil // the same promote, sent again: already recorded
		}
		return conflict(r.Name, "%s of step %d is already pending", pending.Type, pending.StepIndex)
	}
	// A step whose metric checks are running may be promoted past them: the
	// user overrides the checks, and status records that they did.
	if state := r.Status.CurrentStepState; !full && state != rollout.CanaryStepStatePaused && state != rollout.CanaryStepStateMetricsAnalysis {
		return conflict(r.Name, "step %d is in state %s, not waiting to be promoted; promote with full to finish every step", step, state)
	}
	r.Status.PendingAction = &rollout.RolloutActionRequest{
		Type: rollout.RolloutActionPromote, StepIndex: step, Full: full,
		RequestedBy: by.user, RequestedAt: by.at,
	}
	return nil
}

// abortAction asks the controller to roll the release back to the stable revision.
type abortAction struct{}

func (abortAction) newRequest() runtime.Object { return &rollout.RolloutAbort{} }

func (abortAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutAbort(request.(*rollout.RolloutAbort))
}

func (abortAction) apply(r *rollout.Rollout, request runtime.Object, by actor) error {
	if r.Status.Phase != rollout.RolloutPhaseProgressing {
		return conflict(r.Name, "nothing to abort: the Rollout is %s, not Progressing", phaseOf(r))
	}
	if pending := r.Status.PendingAction; pending != nil && pending.Type == rollout.RolloutActionAbort {
		return nil // already aborting
	}
	reason := request.(*rollout.RolloutAbort).Reason
	if reason == "" {
		reason = "aborted by " + by.user
	}
	// An abort replaces a pending promote: going back wins over going on.
	r.Status.PendingAction = &rollout.RolloutActionRequest{
		Type: rollout.RolloutActionAbort, StepIndex: r.Status.CurrentStepIndex, Reason: reason,
		RequestedBy: by.user, RequestedAt: by.at,
	}
	return nil
}

// pauseAction sets spec.strategy.paused, Kruise's own field for it.
type pauseAction struct{}

func (pauseAction) newRequest() runtime.Object { return &rollout.RolloutPause{} }

func (pauseAction) validate(runtime.Object) field.ErrorList { return nil }

func (pauseAction) apply(r *rollout.Rollout, _ runtime.Object, _ actor) error {
	if r.Spec.Strategy.Paused {
		return conflict(r.Name, "the Rollout is already paused")
	}
	r.Spec.Strategy.Paused = true
	return nil
}

// resumeAction clears spec.strategy.paused.
type resumeAction struct{}

func (resumeAction) newRequest() runtime.Object { return &rollout.RolloutResume{} }

func (resumeAction) validate(runtime.Object) field.ErrorList { return nil }

func (resumeAction) apply(r *rollout.Rollout, _ runtime.Object, _ actor) error {
	if !r.Spec.Strategy.Paused {
		return conflict(r.Name, "the Rollout is not paused")
	}
	r.Spec.Strategy.Paused = false
	return nil
}

func phaseOf(r *rollout.Rollout) rollout.RolloutPhase {
	if r.Status.Phase == "" {
		return rollout.RolloutPhaseInitial
	}
	return r.Status.Phase
}
