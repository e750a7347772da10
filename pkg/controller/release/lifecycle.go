package release

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// observeForTeardown reads the workload for disabling or deleting; a missing
// workload or one of an unsupported kind leaves nothing to hand back.
func (r *Reconciler) observeForTeardown(ctx context.Context, p *pass) error {
	if p.ro.Spec.Strategy.Canary == nil {
		return nil
	}
	rel, err := r.Releasers(p.ro)
	if err != nil {
		return nil
	}
	info, err := rel.Observe(ctx, p.ro)
	if errors.Is(err, workload.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p.rel, p.info = rel, info
	return nil
}

// teardown hands the workload back (traffic to stable, hold undone, canary
// workload removed) for a Rollout entering phase, and reports when done.
func (r *Reconciler) teardown(ctx context.Context, p *pass, phase v1beta1.RolloutPhase, kind finaliseKind) (bool, error) {
	st := p.status
	if st.Phase != phase {
		// Entering the teardown: its stages start over, whatever an earlier
		// release left in finalisingStep.
		if st.CanaryStatus != nil {
			st.CanaryStatus.FinalisingStep = ""
		}
		st.Phase = phase
	}
	if err := r.observeForTeardown(ctx, p); err != nil {
		return false, err
	}
	return r.finalise(ctx, p, kind)
}

// syncDisabled hands the workload back and keeps the Rollout out of the way
// while spec.disabled is true. A release in progress is not rolled back: the
// workload finishes it on its own strategy.
func (r *Reconciler) syncDisabled(ctx context.Context, p *pass) error {
	st := p.status
	ref := p.ro.Spec.WorkloadRef
	if st.Phase == v1beta1.RolloutPhaseDisabled {
		if err := r.observeForTeardown(ctx, p); err != nil {
			return err
		}
		return r.dropControlLabel(ctx, p.ro, p.info)
	}
	if st.Phase != v1beta1.RolloutPhaseDisabling {
		p.event(corev1.EventTypeNormal, "Disabling", "spec.disabled is set; handing %s %s back to its own strategy", ref.Kind, ref.Name)
	}
	done, err := r.teardown(ctx, p, v1beta1.RolloutPhaseDisabling, finaliseDisable)
	if err != nil || !done {
		return err
	}
	if err := r.dropControlLabel(ctx, p.ro, p.info); err != nil {
		return err
	}
	st.Phase = v1beta1.RolloutPhaseDisabled
	message := fmt.Sprintf("Disabled: %s %s follows its own strategy", ref.Kind, ref.Name)
	if getCondition(st, v1beta1.RolloutConditionProgressing) != nil {
		setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, ReasonDisabled, message, p.now)
	}
	st.Message = message
	p.event(corev1.EventTypeNormal, "Disabled", "%s", message)
	return nil
}

// syncDeletion hands the workload back before the finalizer lets the Rollout
// go, so deleting a Rollout never leaves its workload held.
func (r *Reconciler) syncDeletion(ctx context.Context, p *pass) error {
	if !hasFinalizer(p.ro) {
		return nil
	}
	st := p.status
	ref := p.ro.Spec.WorkloadRef
	// A pending action dies with the Rollout.
	st.PendingAction = nil
	message := fmt.Sprintf("Handing %s %s back to its own strategy before the Rollout is deleted", ref.Kind, ref.Name)
	setCondition(st, v1beta1.RolloutConditionTerminating, corev1.ConditionTrue, v1beta1.TerminatingReasonInTerminating, message, p.now)
	done, err := r.teardown(ctx, p, v1beta1.RolloutPhaseTerminating, finaliseDelete)
	if err == nil && done {
		err = r.dropControlLabel(ctx, p.ro, p.info)
	}
	if err != nil || !done {
		st.Message = message
		_, werr := r.writeStatus(ctx, p)
		return errors.Join(err, werr)
	}
	message = fmt.Sprintf("%s %s was handed back; the Rollout can go", ref.Kind, ref.Name)
	setCondition(st, v1beta1.RolloutConditionTerminating, corev1.ConditionFalse, v1beta1.TerminatingReasonCompleted, message, p.now)
	st.Message = message
	p.event(corev1.EventTypeNormal, "Terminated", "%s", message)
	written, err := r.writeStatus(ctx, p)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ro := written.DeepCopy()
	ro.Finalizers = withoutFinalizer(ro.Finalizers)
	updated, err := r.Client.RolloutV1beta1().Rollouts(ro.Namespace).Update(ctx, ro, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing finalizer %s from Rollout %s/%s: %w", Finalizer, ro.Namespace, ro.Name, err)
	}
	r.Store.Written(updated)
	klog.InfoS("Rollout released its workload and may be deleted", "rollout", klog.KObj(ro))
	return nil
}

// applyPendingAction carries out the promote or abort waiting in
// status.pendingAction as a status change only, and clears it in the same
// write. A promote for a step that is no longer current is stale and dropped,
// so a retried or late request never promotes twice.
//
// It reports whether the pass goes on from the status it built. It does after
// a promote it applied: entering the next step is a status change too, so its
// record joins the same write, and the workload moves one status write sooner
// after a promote. The pass still acts only on what the status it read
// records. Anything else is written alone.
func (r *Reconciler) applyPendingAction(p *pass) bool {
	st := p.status
	action := *st.PendingAction
	st.PendingAction = nil
	who := action.RequestedBy
	if who == "" {
		who = "an unknown user"
	}
	cs := st.CanaryStatus
	if action.Type == v1beta1.RolloutActionRetry {
		r.retry(p, who)
		return false
	}
	reason := progressingReason(st)
	// An abort still rolls back a release that is finalising (its pods may not
	// all be on the new revision yet); a promote has nothing left to do there.
	ending := reason == v1beta1.ProgressingReasonCancelling ||
		(reason == v1beta1.ProgressingReasonFinalising && action.Type != v1beta1.RolloutActionAbort)
	if p.ro.Spec.Disabled || st.Phase != v1beta1.RolloutPhaseProgressing || cs == nil || ending {
		p.event(corev1.EventTypeWarning, "ActionIgnored", "%s requested by %s ignored: no release is in progress any more", action.Type, who)
		return false
	}
	var steps []v1beta1.CanaryStep
	if p.ro.Spec.Strategy.Canary != nil {
		steps = p.ro.Spec.Strategy.Canary.Steps
	}
	switch action.Type {
	case v1beta1.RolloutActionPromote:
		switch {
		case action.StepIndex != cs.CurrentStepIndex:
			p.event(corev1.EventTypeWarning, "ActionIgnored", "Promote of step %d requested by %s ignored: the release is at step %d now", action.StepIndex, who, cs.CurrentStepIndex)
		case action.ToStepIndex != nil:
			// A jump, forward or back (our promote toStepIndex, or Kruise's
			// canaryStatus.nextStepIndex patch recorded the same way): the
			// target step starts over, so its pods, traffic and pause apply again.
			to := min(max(*action.ToStepIndex, 1), int32(max(len(steps), 1)))
			cs.CurrentStepIndex = to
			cs.NextStepIndex = nextStepIndex(to, len(steps))
			r.setState(p, v1beta1.CanaryStepStateInit)
			cs.StepStartTime = &p.now
			st.AnalysisResults = nil
			p.event(corev1.EventTypeNormal, "Promoted", "%s moved the release of revision %s from step %d to step %d", who, cs.CanaryRevision, action.StepIndex, to)
			return true
		case action.Full:
			skipChecks(st.AnalysisResults, cs.CurrentStepIndex, who)
			cs.CurrentStepIndex = int32(len(steps))
			cs.NextStepIndex = -1
			r.setState(p, v1beta1.CanaryStepStateCompleted)
			p.event(corev1.EventTypeNormal, "Promoted", "%s promoted the release of revision %s past all remaining steps from step %d", who, cs.CanaryRevision, action.StepIndex)
		case cs.CurrentStepState == v1beta1.CanaryStepStatePaused:
			r.setState(p, v1beta1.CanaryStepStateReady)
			p.event(corev1.EventTypeNormal, "Promoted", "%s promoted step %d/%d of revision %s", who, cs.CurrentStepIndex, len(steps), cs.CanaryRevision)
			return true
		case cs.CurrentStepState == v1beta1.CanaryStepStateMetricsAnalysis:
			// The user overrides the checks; status keeps that they did.
			skipChecks(st.AnalysisResults, cs.CurrentStepIndex, who)
			r.setState(p, v1beta1.CanaryStepStateReady)
			p.event(corev1.EventTypeNormal, "Promoted", "%s promoted step %d/%d of revision %s during its metric checks", who, cs.CurrentStepIndex, len(steps), cs.CanaryRevision)
			return true
		default:
			p.event(corev1.EventTypeWarning, "ActionIgnored", "Promote requested by %s ignored: step %d is in state %s, not waiting for promote", who, cs.CurrentStepIndex, cs.CurrentStepState)
		}
	case v1beta1.RolloutActionAbort:
		message := action.Reason
		if message == "" {
			message = "aborted by " + who
		}
		r.abort(p, v1beta1.AbortReasonUser, message)
	default:
		p.event(corev1.EventTypeWarning, "ActionIgnored", "Unknown action %q requested by %s ignored", action.Type, who)
	}
	return false
}
