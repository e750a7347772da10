package rollout

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"
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
	// name is the subresource, e.g. "pause".
	name string
	// fields records in metadata.managedFields what the action wrote, as
	// an update by the request's field manager on this subresource.
	fields *actionFieldManagers
	// admit, when set, is the server's admission chain: the Rollout write an
	// action makes is validated by it as an UPDATE of the Rollout, so that
	// admission policies and webhooks see spec.strategy.paused and status change.
	admit      admission.Interface
	interfaces admission.ObjectInterfaces
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

func newActionREST(store *genericregistry.Store, name string, a action, fields *actionFieldManagers, admit admission.Interface, interfaces admission.ObjectInterfaces) *ActionREST {
	return &ActionREST{store: store, name: name, action: a, fields: fields, admit: admit, interfaces: interfaces}
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
	fields := a.fields.forRequest(ctx, a.name)
	manager := options.FieldManager
	if manager == "" {
		manager = DefaultActionFieldManager(a.name)
	}
	record := func(_ context.Context, _, old runtime.Object) (runtime.Object, error) {
		r := old.(*rollout.Rollout).DeepCopy()
		if r.DeletionTimestamp != nil {
			return nil, conflict(name, "the Rollout is being deleted")
		}
		if err := a.action.apply(r, obj, by); err != nil {
			return nil, err
		}
		if fields == nil {
			return r, nil
		}
		return fields.UpdateNoErrors(old, r, manager), nil
	}
	updateOptions := &metav1.UpdateOptions{DryRun: options.DryRun, FieldManager: options.FieldManager}
	updated, _, err := a.store.Update(ctx, name, rest.DefaultUpdatedObjectInfo(nil, record),
		rest.ValidateAllObjectFunc, a.updateValidation(ctx, name, updateOptions), false, updateOptions)
	return updated, err
}

// updateValidation runs the validating admission chain on the Rollout write
// the action makes, as an UPDATE of rollouts (no subresource: the write
// changes the Rollout itself) by the user who sent the action.
func (a *ActionREST) updateValidation(ctx context.Context, name string, options *metav1.UpdateOptions) rest.ValidateObjectUpdateFunc {
	if a.admit == nil {
		return rest.ValidateAllObjectUpdateFunc
	}
	version := ""
	if info, ok := genericapirequest.RequestInfoFrom(ctx); ok {
		version = info.APIVersion
	}
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	user, _ := genericapirequest.UserFrom(ctx)
	gv := schema.GroupVersion{Group: rollout.GroupName, Version: version}
	attrs := admission.NewAttributesRecord(nil, nil, gv.WithKind("Rollout"), namespace, name,
		gv.WithResource("rollouts"), "", admission.Update, options, len(options.DryRun) > 0, user)
	return rest.AdmissionToValidateObjectUpdateFunc(a.admit, attrs, a.interfaces)
}

// DefaultActionFieldManager is the field manager an action's write is
// recorded under when the request names none (?fieldManager=…): there is no
// user agent to take it from, as the generic handlers do, at this point.
func DefaultActionFieldManager(action string) string {
	return "rollout-apiserver-" + action
}

// actionFieldManagers are the field managers of the action subresources, by
// served version and subresource. They are made once the API group is
// installed (the OpenAPI models they need come from that), before the
// server serves; until then, and in unit tests, actions record nothing.
type actionFieldManagers struct {
	// actions are the subresources served, e.g. "pause".
	actions   []string
	byVersion map[string]map[string]*managedfields.FieldManager
}

// enable makes a field manager for each action of each version.
func (f *actionFieldManagers) enable(typeConverter managedfields.TypeConverter, scheme *runtime.Scheme, versions []string) error {
	f.byVersion = map[string]map[string]*managedfields.FieldManager{}
	hub := schema.GroupVersion{Group: rollout.GroupName, Version: runtime.APIVersionInternal}
	for _, version := range versions {
		f.byVersion[version] = map[string]*managedfields.FieldManager{}
		kind := schema.GroupVersionKind{Group: rollout.GroupName, Version: version, Kind: "Rollout"}
		for _, action := range f.actions {
			m, err := managedfields.NewDefaultFieldManager(typeConverter, scheme, scheme, scheme, kind, hub, action, nil)
			if err != nil {
				return fmt.Errorf("field manager of rollouts/%s in %s: %w", action, version, err)
			}
			f.byVersion[version][action] = m
		}
	}
	return nil
}

// forRequest is the field manager of the action in the request's version,
// or nil.
func (f *actionFieldManagers) forRequest(ctx context.Context, action string) *managedfields.FieldManager {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	if f == nil || !ok {
		return nil
	}
	return f.byVersion[info.APIVersion][action]
}

func conflict(name, format string, args ...interface{}) error {
	return apierrors.NewConflict(rollout.Resource("rollouts"), name, fmt.Errorf(format, args...))
}

// promoteAction asks the controller to leave the current paused step or the
// step's running metric checks (or, with full, to finish every remaining step;
// with toStepIndex, to go to that step, forward or back).
type promoteAction struct{}

func (promoteAction) newRequest() runtime.Object { return &rollout.RolloutPromote{} }

func (promoteAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutPromote(request.(*rollout.RolloutPromote))
}

func (promoteAction) apply(r *rollout.Rollout, request runtime.Object, by actor) error {
	req := request.(*rollout.RolloutPromote)
	full, to := req.Full, req.ToStepIndex
	step := r.Status.CurrentStepIndex
	if errs := validation.ValidatePromoteTarget(req, len(r.Spec.Strategy.Steps())); len(errs) > 0 {
		return apierrors.NewInvalid(rollout.Kind("RolloutPromote"), r.Name, errs)
	}
	if err := checkPreconditions(r, req.Preconditions); err != nil {
		return err
	}
	if r.Status.Phase != rollout.RolloutPhaseProgressing {
		return conflict(r.Name, "nothing to promote: the Rollout is %s, not Progressing", phaseOf(r))
	}
	if r.Spec.Strategy.Paused {
		return conflict(r.Name, "the Rollout is paused; resume it before promoting")
	}
	if pending := r.Status.PendingAction; pending != nil {
		if pending.Type == rollout.RolloutActionPromote && pending.StepIndex == step && pending.Full == full && equalStep(pending.ToStepIndex, to) {
			return nil // the same promote, sent again: already recorded
		}
		return conflict(r.Name, "%s of step %d is already pending", pending.Type, pending.StepIndex)
	}
	// A step whose metric checks are running may be promoted past them: the
	// user overrides the checks, and status records that they did.
	if state := r.Status.CurrentStepState; !full && to == nil && state != rollout.CanaryStepStatePaused && state != rollout.CanaryStepStateMetricsAnalysis {
		return conflict(r.Name, "step %d is in state %s, not waiting to be promoted; promote with full to finish every step", step, state)
	}
	r.Status.PendingAction = &rollout.RolloutActionRequest{
		Type: rollout.RolloutActionPromote, StepIndex: step, Full: full, ToStepIndex: to,
		RequestedBy: by.user, RequestedAt: by.at,
	}
	return nil
}

func equalStep(a, b *int32) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// checkPreconditions refuses an action meant for another step or revision
// than the current one with a 409 that says where the release is now, so a
// late or duplicate request never acts on a step its sender did not see.
func checkPreconditions(r *rollout.Rollout, p *rollout.ActionPreconditions) error {
	if p == nil {
		return nil
	}
	step, revision := r.Status.CurrentStepIndex, r.Status.NewRevision()
	if (p.StepIndex != nil && *p.StepIndex != step) || (p.CanaryRevision != "" && p.CanaryRevision != revision) {
		want := "step " + describeStep(p.StepIndex)
		if p.CanaryRevision != "" {
			want += fmt.Sprintf(" of canary revision %q", p.CanaryRevision)
		}
		return conflict(r.Name, "precondition failed: the request was for %s, but the Rollout is at step %d (%s) of canary revision %q",
			want, step, r.Status.CurrentStepState, revision)
	}
	return nil
}

func describeStep(i *int32) string {
	if i == nil {
		return "any"
	}
	return fmt.Sprint(*i)
}

// abortAction asks the controller to roll the release back to the stable revision.
type abortAction struct{}

func (abortAction) newRequest() runtime.Object { return &rollout.RolloutAbort{} }

func (abortAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutAbort(request.(*rollout.RolloutAbort))
}

func (abortAction) apply(r *rollout.Rollout, request runtime.Object, by actor) error {
	if err := checkPreconditions(r, request.(*rollout.RolloutAbort).Preconditions); err != nil {
		return err
	}
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

// retryAction asks the controller to release the aborted revision again from
// step 1. It is the explicit way out of phase Aborted for a workload whose
// template still says the aborted revision (the other is changing the template).
type retryAction struct{}

func (retryAction) newRequest() runtime.Object { return &rollout.RolloutRetry{} }

func (retryAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutRetry(request.(*rollout.RolloutRetry))
}

func (retryAction) apply(r *rollout.Rollout, request runtime.Object, by actor) error {
	if r.Status.Phase != rollout.RolloutPhaseAborted {
		return conflict(r.Name, "nothing to retry: the Rollout is %s, not Aborted", phaseOf(r))
	}
	if r.Spec.Disabled {
		return conflict(r.Name, "the Rollout is disabled")
	}
	if err := checkPreconditions(r, request.(*rollout.RolloutRetry).Preconditions); err != nil {
		return err
	}
	if pending := r.Status.PendingAction; pending != nil {
		if pending.Type == rollout.RolloutActionRetry {
			return nil // the same retry, sent again: already recorded
		}
		return conflict(r.Name, "%s is already pending", pending.Type)
	}
	r.Status.PendingAction = &rollout.RolloutActionRequest{
		Type: rollout.RolloutActionRetry, StepIndex: r.Status.CurrentStepIndex,
		RequestedBy: by.user, RequestedAt: by.at,
	}
	return nil
}

// pauseAction sets spec.strategy.paused, Kruise's own field for it. Pausing a
// paused Rollout answers like the first pause did (the Rollout, unchanged),
// the way a repeated promote or abort does, so a retried request is harmless.
type pauseAction struct{}

func (pauseAction) newRequest() runtime.Object { return &rollout.RolloutPause{} }

func (pauseAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutPause(request.(*rollout.RolloutPause))
}

func (pauseAction) apply(r *rollout.Rollout, request runtime.Object, _ actor) error {
	if err := checkPreconditions(r, request.(*rollout.RolloutPause).Preconditions); err != nil {
		return err
	}
	r.Spec.Strategy.Paused = true
	return nil
}

// resumeAction clears spec.strategy.paused; resuming a Rollout that is not
// paused answers with the Rollout, unchanged.
type resumeAction struct{}

func (resumeAction) newRequest() runtime.Object { return &rollout.RolloutResume{} }

func (resumeAction) validate(request runtime.Object) field.ErrorList {
	return validation.ValidateRolloutResume(request.(*rollout.RolloutResume))
}

func (resumeAction) apply(r *rollout.Rollout, request runtime.Object, _ actor) error {
	if err := checkPreconditions(r, request.(*rollout.RolloutResume).Preconditions); err != nil {
		return err
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
