package release

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// finaliseKind is why a release ends.
type finaliseKind int

const (
	// finaliseSuccess: every step is done.
	finaliseSuccess finaliseKind = iota
	// finaliseCancel: the workload was reverted to the stable revision.
	finaliseCancel
	// finaliseAbort: an abort (user, metric check, progress deadline) that
	// writes the stable template back and hands the workload back: opted into
	// with spec.strategy.abortRewritesTemplate, and the only abort of a kind
	// that cannot revert (a native DaemonSet).
	finaliseAbort
	// finaliseAbortHold: an abort that brings the pods back to the stable
	// revision and keeps the hold, leaving the template as the user wrote it;
	// the release ends in phase Aborted.
	finaliseAbortHold
	// finaliseDisable: spec.disabled was set.
	finaliseDisable
	// finaliseDelete: the Rollout is being deleted.
	finaliseDelete
)

// stagesOf lists a finalisation's stages in order, each recorded in
// canaryStatus.finalisingStep so that a restart resumes where it stopped.
//
// A successful release first brings every pod to the new revision, then
// points stable traffic at it and removes the canary routes, and only then
// gives the workload its own strategy back. Every other ending moves traffic
// back to stable first. An abort then rolls the workload back to the stable
// revision while the stable Service is still pinned to it, and only then gives
// the Service its original selector back: unpinned earlier, the Service would
// send the traffic just taken off a failing canary straight back to its pods
// until they are gone. Disabling and deleting hand the workload back as it is,
// to finish on its own strategy.
func stagesOf(kind finaliseKind) []v1beta1.FinalisingStepType {
	switch kind {
	case finaliseSuccess:
		// The stable Service selects every pod again before the route sends
		// everything to it, and both happen before the old pods go, so no
		// request is sent to a Service whose pods are leaving.
		return []v1beta1.FinalisingStepType{
			v1beta1.FinalisingStepRestoreStableService,
			v1beta1.FinalisingStepRouteTrafficToStable,
			v1beta1.FinalisingStepRemoveCanaryService,
			v1beta1.FinalisingStepResumeWorkload,
			v1beta1.FinalisingStepReleaseWorkloadControl,
		}
	case finaliseAbort:
		return []v1beta1.FinalisingStepType{
			v1beta1.FinalisingStepRouteTrafficToStable,
			v1beta1.FinalisingStepRemoveCanaryService,
			v1beta1.FinalisingStepResumeWorkload,
			v1beta1.FinalisingStepRestoreStableService,
			v1beta1.FinalisingStepReleaseWorkloadControl,
		}
	case finaliseAbortHold:
		// No ReleaseWorkloadControl: the hold is what keeps the pods on the
		// stable revision while the template says the aborted one.
		return []v1beta1.FinalisingStepType{
			v1beta1.FinalisingStepRouteTrafficToStable,
			v1beta1.FinalisingStepRemoveCanaryService,
			v1beta1.FinalisingStepResumeWorkload,
			v1beta1.FinalisingStepRestoreStableService,
		}
	default:
		return []v1beta1.FinalisingStepType{
			v1beta1.FinalisingStepRouteTrafficToStable,
			v1beta1.FinalisingStepRestoreStableService,
			v1beta1.FinalisingStepRemoveCanaryService,
			v1beta1.FinalisingStepReleaseWorkloadControl,
		}
	}
}

var stageText = map[v1beta1.FinalisingStepType]string{
	v1beta1.FinalisingStepRouteTrafficToStable:   "routing traffic back to the stable Service",
	v1beta1.FinalisingStepRestoreStableService:   "restoring the stable Service",
	v1beta1.FinalisingStepRemoveCanaryService:    "removing the canary Service",
	v1beta1.FinalisingStepReleaseWorkloadControl: "handing the workload back to its own strategy",
}

// finalise runs the stages of kind from canaryStatus.finalisingStep on and
// reports whether all are done. Without a canaryStatus (nothing was released
// yet) only the workload's hold is undone.
func (r *Reconciler) finalise(ctx context.Context, p *pass, kind finaliseKind) (bool, error) {
	cs := p.status.CanaryStatus
	if cs == nil {
		if p.info == nil || !p.info.Held {
			return true, nil
		}
		if !p.endingRecorded() {
			p.recorded()
			return false, nil
		}
		return p.rel.Release(ctx, p.ro, p.info)
	}
	stages := stagesOf(kind)
	if cs.FinalisingStep == "" || (cs.FinalisingStep != v1beta1.FinalisingStepTypeEnd && !slices.Contains(stages, cs.FinalisingStep)) {
		cs.FinalisingStep = stages[0]
		cs.LastUpdateTime = &p.now
	}
	for cs.FinalisingStep != v1beta1.FinalisingStepTypeEnd {
		stage := cs.FinalisingStep
		if !p.stageRecorded(stage) {
			// Entering the stage (or the ending itself): record it first.
			p.status.Message = fmt.Sprintf("Finalising: %s", r.describeStage(kind, stage))
			p.recorded()
			return false, nil
		}
		done, retry, err := r.runStage(ctx, p, kind, stage)
		if err != nil {
			return false, fmt.Errorf("finalising stage %s: %w", stage, err)
		}
		if !done {
			p.status.Message = fmt.Sprintf("Finalising: %s", r.describeStage(kind, stage))
			if retry <= 0 {
				retry = waitPoll
			}
			p.after(retry)
			r.finaliseDeadline(p, kind, stage)
			return false, nil
		}
		i := slices.Index(stages, stage)
		next := v1beta1.FinalisingStepTypeEnd
		if i+1 < len(stages) {
			next = stages[i+1]
		}
		klog.V(2).InfoS("Finalising stage done", "rollout", klog.KObj(p.ro), "stage", stage, "next", next)
		cs.FinalisingStep = next
		cs.LastUpdateTime = &p.now
	}
	return true, nil
}

// finaliseDeadline applies spec.progressDeadlineSeconds to a finalisation
// stage that has not finished: a successful release that cannot bring its
// last pods up is aborted (recorded; a later pass rolls back), and an ending
// that is itself stuck says so in its message and a Warning Event, since
// there is nothing left to fall back to.
func (r *Reconciler) finaliseDeadline(p *pass, kind finaliseKind, stage v1beta1.FinalisingStepType) {
	cs, limit := p.status.CanaryStatus, p.ro.Spec.ProgressDeadlineSeconds
	if limit == nil || cs.LastUpdateTime == nil {
		return
	}
	deadline := cs.LastUpdateTime.Add(time.Duration(*limit) * time.Second)
	if p.now.Time.Before(deadline) {
		p.after(deadline.Sub(p.now.Time))
		return
	}
	what := fmt.Sprintf("finalisation stage %s (%s) was not done within %ds", stage, r.describeStage(kind, stage), *limit)
	if kind == finaliseSuccess {
		r.abort(p, v1beta1.AbortReasonProgressDeadline, what)
		return
	}
	message := fmt.Sprintf("Finalising: %s; still trying", what)
	if p.ro.Status.Message != message {
		p.event(corev1.EventTypeWarning, "FinalisationStuck", "%s", message)
	}
	p.status.Message = message
}

func (r *Reconciler) describeStage(kind finaliseKind, stage v1beta1.FinalisingStepType) string {
	if stage == v1beta1.FinalisingStepResumeWorkload {
		switch kind {
		case finaliseAbort:
			return "rolling the workload back to the stable revision"
		case finaliseAbortHold:
			return "bringing every pod back to the stable revision; the pod template stays"
		}
		return "bringing every pod to the new revision"
	}
	if text, ok := stageText[stage]; ok {
		return text
	}
	return string(stage)
}

// runStage performs one stage; done=false means look again after retry.
func (r *Reconciler) runStage(ctx context.Context, p *pass, kind finaliseKind, stage v1beta1.FinalisingStepType) (bool, time.Duration, error) {
	switch stage {
	case v1beta1.FinalisingStepResumeWorkload:
		if p.info == nil {
			return true, 0, nil
		}
		switch kind {
		case finaliseAbort:
			done, err := p.rel.Rollback(ctx, p.ro, p.info)
			return done, 0, err
		case finaliseAbortHold:
			done, err := r.holdOnStable(ctx, p)
			return done, 0, err
		}
		done, err := p.rel.Complete(ctx, p.ro, p.info)
		return done, 0, err
	case v1beta1.FinalisingStepReleaseWorkloadControl:
		if p.info == nil {
			return true, 0, nil
		}
		done, err := p.rel.Release(ctx, p.ro, p.info)
		return done, 0, err
	default:
		done, retry, err := r.Router.Finalise(ctx, &RouteContext{Rollout: p.ro, Workload: p.info, Status: p.status.CanaryStatus}, stage)
		if err != nil {
			return false, 0, r.routingFailed(p, "Finalising", err)
		}
		r.routingOK(p)
		return done, retry, nil
	}
}

// routingRetry is how soon a failed routing change is tried again: a missing
// routing object or CRD gets a steady retry rather than a growing backoff,
// so that it is picked up soon after it appears.
const routingRetry = 10 * time.Second

// routingFailed records a traffic provider's error in the TrafficRouting
// condition and the message (it names the object and the API's answer) and
// retries after routingRetry; a write conflict is retried at once instead.
func (r *Reconciler) routingFailed(p *pass, what string, err error) error {
	if apierrors.IsConflict(err) {
		return err
	}
	message := fmt.Sprintf("%s: routing traffic failed: %v", what, err)
	if c := getCondition(p.status, v1beta1.RolloutConditionTrafficRouting); c == nil || c.Message != message {
		p.event(corev1.EventTypeWarning, "TrafficRoutingFailed", "%s", message)
	}
	setCondition(p.status, v1beta1.RolloutConditionTrafficRouting, corev1.ConditionFalse, "RoutingFailed", message, p.now)
	p.status.Message = message
	p.after(routingRetry)
	return nil
}

// routingOK clears a routing failure recorded earlier.
func (r *Reconciler) routingOK(p *pass) {
	if c := getCondition(p.status, v1beta1.RolloutConditionTrafficRouting); c != nil && c.Status != corev1.ConditionTrue {
		setCondition(p.status, v1beta1.RolloutConditionTrafficRouting, corev1.ConditionTrue, "Routed", "Traffic is routed as the release asks", p.now)
	}
}

// runFinalise finalises a release in progress and records its end.
func (r *Reconciler) runFinalise(ctx context.Context, p *pass, kind finaliseKind) error {
	done, err := r.finalise(ctx, p, kind)
	if err != nil || !done {
		return err
	}
	r.finishRelease(p, kind)
	return nil
}

// finishRelease records the end of a release: phase Healthy and the
// Progressing and Succeeded conditions that say how it ended.
func (r *Reconciler) finishRelease(p *pass, kind finaliseKind) {
	st := p.status
	cs := st.CanaryStatus
	kindName := p.ro.Spec.WorkloadRef.Kind + " " + p.ro.Spec.WorkloadRef.Name
	st.Phase = v1beta1.RolloutPhaseHealthy
	switch kind {
	case finaliseSuccess:
		r.setState(p, v1beta1.CanaryStepStateCompleted)
		message := fmt.Sprintf("Revision %s of %s is released", cs.CanaryRevision, kindName)
		setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, v1beta1.ProgressingReasonCompleted, message, p.now)
		setCondition(st, v1beta1.RolloutConditionSucceeded, corev1.ConditionTrue, v1beta1.ProgressingReasonCompleted, message, p.now)
		st.Message = message
		p.event(corev1.EventTypeNormal, "Succeeded", "%s", message)
	case finaliseCancel:
		message := fmt.Sprintf("The release of revision %s was cancelled: %s was reverted to revision %s", cs.CanaryRevision, kindName, cs.StableRevision)
		setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, v1beta1.ProgressingReasonCompleted, message, p.now)
		setCondition(st, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, ReasonCancelled, message, p.now)
		st.Message = message
		p.event(corev1.EventTypeNormal, "ReleaseCancelled", "%s", message)
	case finaliseAbort:
		why := ""
		if st.Abort != nil {
			why = fmt.Sprintf(" (%s: %s)", st.Abort.Reason, st.Abort.Message)
		}
		message := fmt.Sprintf("The release of revision %s was aborted%s; %s is back on revision %s", cs.CanaryRevision, why, kindName, cs.StableRevision)
		if !p.ro.Spec.Strategy.AbortRewritesTemplate {
			message += fmt.Sprintf(" (a %s cannot run its stable revision under a newer pod template, so the stable template was written back)", p.ro.Spec.WorkloadRef.Kind)
		}
		setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted, message, p.now)
		setCondition(st, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted, message, p.now)
		st.Message = message
		p.event(corev1.EventTypeWarning, "RolledBack", "%s", message)
	case finaliseAbortHold:
		r.enterAborted(p)
	}
	klog.InfoS("Release finished", "rollout", klog.KObj(p.ro), "revision", cs.CanaryRevision, "phase", st.Phase, "message", st.Message)
}
