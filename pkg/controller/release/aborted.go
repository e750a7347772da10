package release

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// The aborted state. An abort (a user's, a failed metric check, a progress
// deadline) moves traffic back to stable, then brings every pod back to the
// stable revision while the workload keeps the pod template its owner wrote
// and stays held: a GitOps tool that keeps the workload equal to git sees no
// drift, and applying the same template again starts nothing. The Rollout
// stays in phase Aborted, holding the workload on the stable revision, until
//
//   - the template changes back to the stable revision: a release with nothing
//     to do, which hands the workload back (phase Healthy);
//   - the template (or the rollout-id) changes to anything else: a new release;
//   - a retry action: the aborted revision is released again from step 1;
//   - the Rollout is disabled or deleted: the workload is handed back as it is.
//
// Everything the state needs is in status (phase, canaryStatus with both
// revisions, abort), so a restart of the controller resumes it unchanged.

// abortKind is how this Rollout's abort ends: holding the workload on the
// stable revision, or, opted into by spec.strategy.abortRewritesTemplate or
// for a kind that cannot revert, rewriting its template and handing it back.
func (r *Reconciler) abortKind(p *pass) finaliseKind {
	if p.ro.Spec.Strategy.AbortRewritesTemplate || (p.rel != nil && !p.rel.CanRevert()) {
		return finaliseAbort
	}
	return finaliseAbortHold
}

// holdOnStable keeps the aborted workload held with every pod on the stable
// revision: the hold goes back on first if someone removed it (without it the
// workload's own controller would roll the template out).
func (r *Reconciler) holdOnStable(ctx context.Context, p *pass) (bool, error) {
	if p.info == nil {
		return true, nil
	}
	if !p.info.Held {
		return false, p.rel.Hold(ctx, p.ro, p.info)
	}
	return p.rel.Revert(ctx, p.ro, p.info)
}

// enterAborted records the end of a finaliseAbortHold: phase Aborted with
// the reason in status.abort, the message and the conditions.
func (r *Reconciler) enterAborted(p *pass) {
	st, cs := p.status, p.status.CanaryStatus
	kindName := p.ro.Spec.WorkloadRef.Kind + " " + p.ro.Spec.WorkloadRef.Name
	why := ""
	if st.Abort != nil {
		why = fmt.Sprintf(" (%s: %s)", st.Abort.Reason, st.Abort.Message)
	}
	message := fmt.Sprintf("The release of revision %s was aborted%s; %s runs revision %s and stays held until its pod template changes or the release is retried",
		cs.CanaryRevision, why, kindName, cs.StableRevision)
	st.Phase = v1beta1.RolloutPhaseAborted
	setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted, message, p.now)
	setCondition(st, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted, message, p.now)
	st.Message = message
	p.event(corev1.EventTypeWarning, "Aborted", "%s", message)
}

// syncAborted keeps an aborted release's workload held on the stable
// revision and watches for what ends the state (see the top of this file).
func (r *Reconciler) syncAborted(ctx context.Context, p *pass) error {
	st, info := p.status, p.info
	cs := st.CanaryStatus
	if cs == nil {
		// Nothing recorded to hold on to: the workload decides.
		st.Phase = v1beta1.RolloutPhaseHealthy
		return r.syncIdle(ctx, p)
	}
	if progressingReason(st) == v1beta1.ProgressingReasonCancelling {
		// Handing back after a revert to the stable template (below).
		return r.runFinalise(ctx, p, finaliseCancel)
	}
	if !info.Consistent {
		p.after(waitPoll)
		return nil
	}
	switch {
	case info.CanaryRevision == cs.StableRevision:
		// Reverted to the stable template: nothing to release, hand back. The
		// finaliseCancel stages find traffic at stable already and undo the hold.
		r.cancel(p)
		return r.runFinalise(ctx, p, finaliseCancel)
	case info.CanaryRevision != cs.CanaryRevision || info.RolloutID != cs.ObservedRolloutID:
		// A new revision (or rollout-id): a new release from the same stable.
		r.startRelease(p)
		return r.syncProgressing(ctx, p)
	}
	cs.StableReplicas, cs.StableReadyReplicas = info.Stable.Replicas, info.Stable.Ready
	cs.CanaryReplicas, cs.CanaryReadyReplicas = info.Canary.Replicas, info.Canary.Ready
	done, err := r.holdOnStable(ctx, p)
	if err != nil || !done {
		p.after(waitPoll)
	}
	return err
}

// retry releases the aborted revision again from step 1: the status write
// that clears the pending retry starts the release, and the next pass, which
// reads it, moves the first pods.
func (r *Reconciler) retry(p *pass, who string) {
	st, cs := p.status, p.status.CanaryStatus
	if p.ro.Spec.Disabled || st.Phase != v1beta1.RolloutPhaseAborted || cs == nil || progressingReason(st) == v1beta1.ProgressingReasonCancelling {
		p.event(corev1.EventTypeWarning, "ActionIgnored", "Retry requested by %s ignored: no aborted release to retry", who)
		return
	}
	if p.ro.Spec.Strategy.Canary == nil {
		p.event(corev1.EventTypeWarning, "ActionIgnored", "Retry requested by %s ignored: only the canary strategy is released", who)
		return
	}
	steps := p.ro.Spec.Strategy.Canary.Steps
	st.Phase = v1beta1.RolloutPhaseProgressing
	st.Abort = nil
	st.AnalysisResults = nil
	removeCondition(st, v1beta1.RolloutConditionSucceeded)
	cs.RolloutHash = stepsHash(p.ro)
	cs.CurrentStepIndex = 1
	cs.NextStepIndex = nextStepIndex(1, len(steps))
	cs.CurrentStepState = v1beta1.CanaryStepStateInit
	cs.FinalisingStep = ""
	cs.LastUpdateTime = &p.now
	cs.StepStartTime = &p.now
	message := fmt.Sprintf("%s retried the release of revision %s from step 1 of %d (stable revision %s)", who, cs.CanaryRevision, len(steps), cs.StableRevision)
	setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonInRolling, message, p.now)
	st.Message = message
	p.event(corev1.EventTypeNormal, "Retried", "%s", message)
	klog.InfoS("Release retried", "rollout", klog.KObj(p.ro), "revision", cs.CanaryRevision, "by", who)
}
