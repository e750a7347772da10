package release

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// syncProgressing drives a release in progress. Before the steps run it looks
// for what overrides them, in order: a finalisation under way, a revert of
// the workload to the stable revision (cancel), a newer revision (restart at
// step 1), a lost hold, spec.strategy.paused, and a change of the steps.
func (r *Reconciler) syncProgressing(ctx context.Context, p *pass) error {
	st, info := p.status, p.info
	cs := st.CanaryStatus
	if cs == nil {
		// A release without progress cannot go on; start it afresh.
		r.startRelease(p)
		cs = st.CanaryStatus
	}
	switch progressingReason(st) {
	case v1beta1.ProgressingReasonFinalising:
		return r.runFinalise(ctx, p, finaliseSuccess)
	case v1beta1.ProgressingReasonCancelling:
		if st.Abort != nil {
			return r.runFinalise(ctx, p, r.abortKind(p))
		}
		return r.runFinalise(ctx, p, finaliseCancel)
	}

	if !info.Consistent {
		st.Message = fmt.Sprintf("Waiting for the %s controller to observe %s %s", info.Kind, info.Kind, info.Name)
		p.after(waitPoll)
		return nil
	}
	if info.CanaryRevision == cs.StableRevision {
		r.cancel(p)
		return r.runFinalise(ctx, p, finaliseCancel)
	}
	if info.CanaryRevision != cs.CanaryRevision || info.RolloutID != cs.ObservedRolloutID {
		r.restart(p)
	}
	cs.ObservedWorkloadGeneration = info.Generation
	cs.PodTemplateHash = info.PodTemplateHash
	cs.CanaryReplicas, cs.CanaryReadyReplicas = info.Canary.Replicas, info.Canary.Ready
	cs.StableReplicas, cs.StableReadyReplicas = info.Stable.Replicas, info.Stable.Ready
	if !info.Held {
		// Someone removed the hold mid-release; put it back before any step.
		// The release itself is what status records; a release that starts in
		// this pass found the workload held.
		p.after(time.Second)
		if p.ro.Status.Phase != v1beta1.RolloutPhaseProgressing {
			return nil
		}
		return p.rel.Hold(ctx, p.ro, info)
	}

	steps := p.ro.Spec.Strategy.Canary.Steps
	if p.ro.Spec.Strategy.Paused {
		if progressingReason(st) != v1beta1.ProgressingReasonPaused {
			setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonPaused,
				fmt.Sprintf("Paused at step %d/%d", cs.CurrentStepIndex, len(steps)), p.now)
			p.event(corev1.EventTypeNormal, "Paused", "Release paused at step %d/%d (spec.strategy.paused)", cs.CurrentStepIndex, len(steps))
		}
		st.Message = fmt.Sprintf("Paused at step %d/%d (%s); resume to continue", cs.CurrentStepIndex, len(steps), cs.CurrentStepState)
		if why := pausedChecks(st.AnalysisResults, cs.CurrentStepIndex); why != "" {
			st.Message = fmt.Sprintf("Paused at step %d/%d by metric checks (%s); resume to measure again", cs.CurrentStepIndex, len(steps), why)
		}
		return nil
	}
	if progressingReason(st) == v1beta1.ProgressingReasonPaused {
		setCondition(st, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonInRolling,
			fmt.Sprintf("Resumed at step %d/%d", cs.CurrentStepIndex, len(steps)), p.now)
		p.event(corev1.EventTypeNormal, "Resumed", "Release resumed at step %d/%d", cs.CurrentStepIndex, len(steps))
		resumeChecks(st.AnalysisResults, cs.CurrentStepIndex)
		// The time spent paused does not count against the progress deadline.
		if cs.CurrentStepState == v1beta1.CanaryStepStateInit || cs.CurrentStepState == v1beta1.CanaryStepStateUpgrade {
			cs.StepStartTime = &p.now
		}
	}
	if cs.RolloutHash != stepsHash(p.ro) {
		if err := r.recomputeStep(p); err != nil {
			return err
		}
	}
	if err := r.runSteps(ctx, p); err != nil {
		return err
	}
	// An abort for the deadline is only recorded here; the rollback runs in a
	// later pass that reads it, like a user's abort.
	r.deadlineExceeded(p)
	return nil
}

// cancel ends a release whose workload was reverted to the stable revision.
func (r *Reconciler) cancel(p *pass) {
	cs := p.status.CanaryStatus
	message := fmt.Sprintf("%s %s was reverted to the stable revision %s; cancelling the release of %s",
		p.info.Kind, p.info.Name, cs.StableRevision, cs.CanaryRevision)
	setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonCancelling, message, p.now)
	cs.FinalisingStep = ""
	cs.LastUpdateTime = &p.now
	p.status.Message = message
	p.event(corev1.EventTypeNormal, "Cancelled", "%s", message)
	klog.InfoS("Release cancelled by revert", "rollout", klog.KObj(p.ro), "revision", cs.CanaryRevision)
}

// abort ends a release and records why. Nothing is rolled back in the pass
// that records it: finalisation runs from a later pass that reads the record,
// so the reason is in status before the workload moves.
func (r *Reconciler) abort(p *pass, reason, message string) {
	cs := p.status.CanaryStatus
	p.status.Abort = &v1beta1.RolloutAbortStatus{
		Reason:    reason,
		Message:   message,
		Revision:  cs.CanaryRevision,
		StepIndex: cs.CurrentStepIndex,
		Time:      p.now,
	}
	text := fmt.Sprintf("Aborting the release of revision %s at step %d (%s): %s; bringing the pods back to revision %s",
		cs.CanaryRevision, cs.CurrentStepIndex, reason, message, cs.StableRevision)
	setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonCancelling, text, p.now)
	cs.FinalisingStep = ""
	cs.LastUpdateTime = &p.now
	p.status.Message = text
	p.event(corev1.EventTypeWarning, "Aborted", "%s", text)
	klog.InfoS("Release aborted", "rollout", klog.KObj(p.ro), "reason", reason, "revision", cs.CanaryRevision, "step", cs.CurrentStepIndex)
}

// restart begins the release again at step 1 for a revision that replaced
// the one being released; the stable revision stays what it was.
func (r *Reconciler) restart(p *pass) {
	cs, info := p.status.CanaryStatus, p.info
	previous := cs.CanaryRevision
	cs.CanaryRevision = info.CanaryRevision
	cs.PodTemplateHash = info.PodTemplateHash
	cs.ObservedRolloutID = info.RolloutID
	cs.RolloutHash = stepsHash(p.ro)
	cs.CurrentStepIndex = 1
	cs.NextStepIndex = nextStepIndex(1, len(p.ro.Spec.Strategy.Canary.Steps))
	cs.CurrentStepState = v1beta1.CanaryStepStateInit
	cs.FinalisingStep = ""
	cs.LastUpdateTime = &p.now
	cs.StepStartTime = &p.now
	p.status.AnalysisResults = nil
	message := fmt.Sprintf("Revision %s replaced revision %s mid-release; restarting at step 1 (stable revision %s)",
		info.CanaryRevision, previous, cs.StableRevision)
	setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonInRolling, message, p.now)
	p.event(corev1.EventTypeNormal, "NewRevision", "%s", message)
	klog.InfoS("Release restarted for a new revision", "rollout", klog.KObj(p.ro), "from", previous, "to", info.CanaryRevision)
}

// recomputeStep places the release on the new steps: the first step (trying
// the current one first) that keeps at least the pods already on the new
// revision, so a plan change never takes pods back.
func (r *Reconciler) recomputeStep(p *pass) error {
	cs, info := p.status.CanaryStatus, p.info
	steps := p.ro.Spec.Strategy.Canary.Steps
	order := make([]int, 0, len(steps))
	if i := int(cs.CurrentStepIndex) - 1; i >= 0 && i < len(steps) {
		order = append(order, i)
	}
	for i := range steps {
		if len(order) == 0 || i != order[0] {
			order = append(order, i)
		}
	}
	index := int32(len(steps))
	for _, i := range order {
		desired, err := workload.StepReplicas(&steps[i], info.Replicas)
		if err != nil {
			return fmt.Errorf("step %d of Rollout %s/%s: %w", i+1, p.ro.Namespace, p.ro.Name, err)
		}
		if desired >= info.Canary.Replicas {
			index = int32(i + 1)
			break
		}
	}
	previous := cs.CurrentStepIndex
	cs.CurrentStepIndex = index
	cs.NextStepIndex = nextStepIndex(index, len(steps))
	cs.CurrentStepState = v1beta1.CanaryStepStateInit
	cs.RolloutHash = stepsHash(p.ro)
	cs.LastUpdateTime = &p.now
	cs.StepStartTime = &p.now
	p.event(corev1.EventTypeNormal, "StepsChanged", "The steps changed at step %d; continuing at step %d/%d, the first that keeps the %d pods already on revision %s",
		previous, index, len(steps), info.Canary.Replicas, cs.CanaryRevision)
	return nil
}

// deadlineExceeded aborts a step that has not become ready within
// spec.progressDeadlineSeconds of its start, and otherwise asks to look again
// when the deadline falls.
func (r *Reconciler) deadlineExceeded(p *pass) bool {
	cs := p.status.CanaryStatus
	limit := p.ro.Spec.ProgressDeadlineSeconds
	if limit == nil || cs.StepStartTime == nil || progressingReason(p.status) != v1beta1.ProgressingReasonInRolling ||
		(cs.CurrentStepState != v1beta1.CanaryStepStateInit && cs.CurrentStepState != v1beta1.CanaryStepStateUpgrade) {
		return false
	}
	deadline := cs.StepStartTime.Add(time.Duration(*limit) * time.Second)
	if p.now.Time.Before(deadline) {
		p.after(deadline.Sub(p.now.Time))
		return false
	}
	r.abort(p, v1beta1.AbortReasonProgressDeadline, fmt.Sprintf("step %d was not ready within %ds (%d/%d pods of revision %s ready)",
		cs.CurrentStepIndex, *limit, p.info.Canary.Ready, p.stepReplicas(), cs.CanaryRevision))
	return true
}

// stepReplicas is the current step's desired new pods, for messages.
func (p *pass) stepReplicas() int32 {
	cs := p.status.CanaryStatus
	steps := p.ro.Spec.Strategy.Canary.Steps
	if cs == nil || cs.CurrentStepIndex < 1 || int(cs.CurrentStepIndex) > len(steps) {
		return 0
	}
	n, _ := workload.StepReplicas(&steps[cs.CurrentStepIndex-1], p.info.Replicas)
	return n
}

func (r *Reconciler) setState(p *pass, state v1beta1.CanaryStepState) {
	cs := p.status.CanaryStatus
	cs.CurrentStepState = state
	cs.LastUpdateTime = &p.now
}

// runSteps advances the current step through its states as far as it can go
// in this pass: BeforeStepUpgrade → StepUpgrade → StepTrafficRouting →
// StepMetricsAnalysis → StepPaused → StepReady → the next step, and after the
// last step Completed → finalisation.
func (r *Reconciler) runSteps(ctx context.Context, p *pass) error {
	cs, info, ro := p.status.CanaryStatus, p.info, p.ro
	steps := ro.Spec.Strategy.Canary.Steps
	n := int32(len(steps))
	if n == 0 {
		r.setState(p, v1beta1.CanaryStepStateCompleted)
	}
	cs.CurrentStepIndex = min(max(cs.CurrentStepIndex, 1), max(n, 1))

	// Once a step's pods are in place, keep the workload at the step's shape in
	// every later state: old pods still shrinking, replaced pods, a changed
	// replica count. Only for the step that status records.
	switch cs.CurrentStepState {
	case v1beta1.CanaryStepStateTrafficRouting, v1beta1.CanaryStepStateMetricsAnalysis, v1beta1.CanaryStepStatePaused:
		if p.stepRecorded() {
			if _, err := p.rel.Upgrade(ctx, ro, info, p.stepReplicas()); err != nil {
				return err
			}
		}
	}

	// Each state either moves on or returns; the bound only guards the loop.
	for range 8*len(steps) + 8 {
		index := cs.CurrentStepIndex
		var step *v1beta1.CanaryStep
		if index >= 1 && index <= n {
			step = &steps[index-1]
		}
		desired := p.stepReplicas()
		switch cs.CurrentStepState {
		case v1beta1.CanaryStepStateInit:
			r.setState(p, v1beta1.CanaryStepStateUpgrade)
			cs.StepStartTime = &p.now
			p.event(corev1.EventTypeNormal, "StepUpgrading", "Step %d/%d: moving %d of %d pods to revision %s",
				index, n, desired, info.Replicas, cs.CanaryRevision)

		case v1beta1.CanaryStepStateUpgrade:
			if !p.stepRecorded() {
				// Entering the step: record it before any pod moves.
				p.status.Message = fmt.Sprintf("Step %d/%d: moving %d of %d pods to revision %s",
					index, n, desired, info.Replicas, cs.CanaryRevision)
				p.recorded()
				return nil
			}
			if err := r.Router.Prepare(ctx, &RouteContext{Rollout: ro, Step: index, Workload: info, Status: cs}); err != nil {
				return r.routingFailed(p, fmt.Sprintf("Step %d/%d", index, n), err)
			}
			ready, err := p.rel.Upgrade(ctx, ro, info, desired)
			if err != nil {
				return err
			}
			if !ready {
				p.status.Message = fmt.Sprintf("Step %d/%d: waiting for %d pods of revision %s to be ready (%d of %d ready)",
					index, n, desired, cs.CanaryRevision, info.Canary.Ready, info.Canary.Replicas)
				p.after(waitPoll)
				return nil
			}
			r.setState(p, v1beta1.CanaryStepStateTrafficRouting)
			p.event(corev1.EventTypeNormal, "StepUpgraded", "Step %d/%d: %d pods of revision %s are ready", index, n, desired, cs.CanaryRevision)

		case v1beta1.CanaryStepStateTrafficRouting:
			// Without a traffic routing the state moves nothing: no record
			// to wait for (a write per step saved for most Rollouts).
			if routes(ro) && !p.stepRecorded() {
				p.status.Message = fmt.Sprintf("Step %d/%d: routing traffic to revision %s", index, n, cs.CanaryRevision)
				p.recorded()
				return nil
			}
			done, retry, err := r.Router.Route(ctx, &RouteContext{Rollout: ro, Step: index, Workload: info, Status: cs})
			if err != nil {
				return r.routingFailed(p, fmt.Sprintf("Step %d/%d", index, n), err)
			}
			r.routingOK(p)
			if !done {
				p.status.Message = fmt.Sprintf("Step %d/%d: routing traffic to revision %s", index, n, cs.CanaryRevision)
				p.after(retry)
				return nil
			}
			r.setState(p, v1beta1.CanaryStepStateMetricsAnalysis)

		case v1beta1.CanaryStepStateMetricsAnalysis:
			analysis := ro.Spec.Strategy.Canary.Analysis
			if step != nil && step.Analysis != nil {
				analysis = step.Analysis
			}
			// Without checks the state queries nothing: no record to wait for.
			if analysis != nil && len(analysis.Metrics) > 0 && !p.stepRecorded() {
				p.status.Message = fmt.Sprintf("Step %d/%d: checking metrics of revision %s", index, n, cs.CanaryRevision)
				p.recorded()
				return nil
			}
			out, err := r.Analyzer.Analyze(ctx, &AnalysisContext{Rollout: ro, Step: index, Analysis: analysis, Results: p.status.AnalysisResults, Now: p.now.Time})
			if err != nil {
				return fmt.Errorf("analysing step %d: %w", index, err)
			}
			p.status.AnalysisResults = out.Results
			switch out.Verdict {
			case AnalysisFailed:
				// Recorded now, rolled back by a later pass (see abort).
				r.abort(p, v1beta1.AbortReasonMetricCheck, out.Message)
				return nil
			case AnalysisPaused:
				return r.pauseForAnalysis(ctx, p, out.Message)
			case AnalysisPassed:
				r.setState(p, v1beta1.CanaryStepStatePaused)
				// A timed pause counts from the next whole second: status keeps
				// whole seconds, and a pause must never end early.
				cs.LastUpdateTime = ceilSecond(p.now)
				if step != nil && step.Pause.Duration != nil {
					p.event(corev1.EventTypeNormal, "StepPaused", "Step %d/%d is ready; pausing %ds", index, n, *step.Pause.Duration)
				} else if !releasesEveryPod(index, n, step, info.Replicas) {
					p.event(corev1.EventTypeNormal, "StepPaused", "Step %d/%d is ready; waiting for promote", index, n)
				}
			default:
				p.status.Message = fmt.Sprintf("Step %d/%d: checking metrics of revision %s", index, n, cs.CanaryRevision)
				p.after(out.RetryAfter)
				return nil
			}

		case v1beta1.CanaryStepStatePaused:
			switch {
			case releasesEveryPod(index, n, step, info.Replicas):
				// A last step that asks for every pod needs no confirmation (as in Kruise).
			case step == nil || step.Pause.Duration == nil:
				p.status.Message = fmt.Sprintf("Step %d/%d is ready (%d/%d pods on revision %s); waiting for promote",
					index, n, info.Canary.Ready, info.Replicas, cs.CanaryRevision)
				return nil
			default:
				end := cs.LastUpdateTime.Add(time.Duration(*step.Pause.Duration) * time.Second)
				if remaining := end.Sub(p.now.Time); remaining > 0 {
					p.status.Message = fmt.Sprintf("Step %d/%d is ready (%d/%d pods on revision %s); next step in %s",
						index, n, info.Canary.Ready, info.Replicas, cs.CanaryRevision, humanDuration(remaining))
					p.after(remaining)
					return nil
				}
			}
			r.setState(p, v1beta1.CanaryStepStateReady)

		case v1beta1.CanaryStepStateReady:
			if index < n {
				p.event(corev1.EventTypeNormal, "StepCompleted", "Step %d/%d completed", index, n)
				cs.CurrentStepIndex++
				cs.NextStepIndex = nextStepIndex(cs.CurrentStepIndex, len(steps))
				r.setState(p, v1beta1.CanaryStepStateInit)
				cs.StepStartTime = &p.now
				p.status.AnalysisResults = compactResults(p.status.AnalysisResults)
				continue
			}
			r.setState(p, v1beta1.CanaryStepStateCompleted)

		case v1beta1.CanaryStepStateCompleted:
			message := fmt.Sprintf("All %d steps of revision %s are done; finalising", n, cs.CanaryRevision)
			setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonFinalising, message, p.now)
			cs.FinalisingStep = ""
			p.event(corev1.EventTypeNormal, "StepsCompleted", "%s", message)
			return r.runFinalise(ctx, p, finaliseSuccess)

		default:
			r.setState(p, v1beta1.CanaryStepStateInit)
		}
	}
	return nil
}

// releasesEveryPod says whether step index of n is the last one and asks for
// every pod by itself. A last step whose percentage only rounds up to every
// pod (90% of 3) still waits for promote, as Kruise's does: its author wrote
// a step short of 100%, so "wait for me" is what they meant.
func releasesEveryPod(index, n int32, step *v1beta1.CanaryStep, replicas int32) bool {
	if index != n {
		return false
	}
	if step == nil {
		return true
	}
	value := step.Replicas
	if value == nil { // as in workload.StepReplicas: the traffic share, or every pod
		if step.Traffic == nil {
			return true
		}
		v := intstr.FromString(*step.Traffic)
		value = &v
	}
	asked, err := intstr.GetScaledValueFromIntOrPercent(value, int(replicas), false)
	return err == nil && int32(asked) >= replicas
}

// pauseForAnalysis pauses a release whose checks cannot decide (too many
// errors or inconclusive measurements) by setting spec.strategy.paused, so
// that the ordinary resume action continues it; the pass goes on from the
// updated Rollout, and its status write records why.
func (r *Reconciler) pauseForAnalysis(ctx context.Context, p *pass, why string) error {
	cs := p.status.CanaryStatus
	n := len(p.ro.Spec.Strategy.Canary.Steps)
	ro := p.stored.DeepCopy()
	ro.Spec.Strategy.Paused = true
	updated, err := r.Client.RolloutV1beta1().Rollouts(ro.Namespace).Update(ctx, ro, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("pausing Rollout %s/%s for its metric checks: %w", ro.Namespace, ro.Name, err)
	}
	r.Store.Written(updated)
	// The status built so far stays; the record the pass acts on is the
	// updated Rollout's, which a spec update leaves as it was.
	status := p.status
	p.read(updated)
	p.status = status
	p.status.ObservedGeneration = updated.Generation
	message := fmt.Sprintf("Paused at step %d/%d by metric checks (%s); resume to measure again", cs.CurrentStepIndex, n, why)
	setCondition(p.status, v1beta1.RolloutConditionProgressing, corev1.ConditionTrue, v1beta1.ProgressingReasonPaused, message, p.now)
	p.status.Message = message
	p.event(corev1.EventTypeWarning, "AnalysisPaused", "%s", message)
	klog.InfoS("Release paused by metric checks", "rollout", klog.KObj(p.ro), "step", cs.CurrentStepIndex, "reason", why)
	return nil
}

// routes reports whether ro's steps move traffic at all: without a traffic
// routing, the TrafficRouting state of a step has no side effect.
func routes(ro *v1beta1.Rollout) bool {
	c := ro.Spec.Strategy.Canary
	return c != nil && len(c.TrafficRoutings) > 0
}
