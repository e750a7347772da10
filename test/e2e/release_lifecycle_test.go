package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// The lifecycle of a release of a Deployment of 10 beyond the happy path. Each scenario
// releases app:v2 over 20% → 50% → 100% and does something at step 2.

// releaseToStep2 creates the Deployment and its Rollout, releases app:v2 and promotes it to
// step 2 (5 of 10 pods on the new revision, ready).
func (s *scenario) releaseToStep2(step2 v1beta1.CanaryStep, opts ...rolloutOption) {
	s.t.Helper()
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step2, step("100%")}, opts...)
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 8})
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 5, "app:v1": 5})
}

// releaseAbort: with spec.strategy.abortRewritesTemplate, abort at step 2 rolls the
// Deployment's template back to the stable revision, hands it back and records why in
// status.abort. (The default abort, which keeps the template: TestAbortUnderGitOps.)
func releaseAbort(t *testing.T) {
	s := newScenario(t)
	s.releaseToStep2(step("50%"), withAbortRewritesTemplate())
	before := s.rollout().Status.CanaryStatus

	s.abort("e2e: the new version misbehaves")
	ro := s.waitForPhase(v1beta1.RolloutPhaseHealthy, v1beta1.ProgressingReasonAborted)
	s.expectCondition(ro, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted)
	a := ro.Status.Abort
	switch {
	case a == nil:
		t.Errorf("status.abort not recorded\n%s", rolloutSummary(ro))
	case a.Reason != v1beta1.AbortReasonUser || a.StepIndex != 2 || a.Revision != before.CanaryRevision ||
		!strings.Contains(a.Message, "e2e: the new version misbehaves") || a.Time.IsZero():
		t.Errorf("status.abort = %+v; want reason %s, step 2, revision %s, our message, a time", *a, v1beta1.AbortReasonUser, before.CanaryRevision)
	}
	if ro.Status.PendingAction != nil {
		t.Errorf("status.pendingAction left after the abort: %+v", ro.Status.PendingAction)
	}

	s.expectPods(pods{"app:v1": 10})
	s.expectWorkloadOn("app:v1")
	s.expectWorkloadReleased(true)
	s.consistently(3*time.Second, "the aborted revision not to be released again", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ro.Status.Phase == v1beta1.RolloutPhaseHealthy, rolloutSummary(ro)
	})
}

// releaseRevertToStable: setting the image back to the stable one at step 2 cancels the
// release at once; the Deployment goes back to the stable revision on its own strategy.
func releaseRevertToStable(t *testing.T) {
	s := newScenario(t)
	s.releaseToStep2(step("50%"))

	reverted := time.Now()
	s.updateImage(stableImage)
	ro := s.waitForPhase(v1beta1.RolloutPhaseHealthy, v1beta1.ProgressingReasonCompleted)
	took := time.Since(reverted)
	s.logf("release cancelled %.1fs after the revert", took.Seconds())
	if took > 15*time.Second {
		t.Errorf("cancelling a release by reverting took %.1fs; want it fast (< 15s)", took.Seconds())
	}
	s.expectCondition(ro, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, reasonCancelled)
	if ro.Status.Abort != nil {
		t.Errorf("a revert is a cancel, not an abort; status.abort = %+v", *ro.Status.Abort)
	}
	s.expectPods(pods{"app:v1": 10})
	s.expectWorkloadOn("app:v1")
	s.expectWorkloadReleased(true)
}

// releaseNewRevisionMidRelease: v1 → v2, and at step 2 of v2 the image changes to v3.
// The release restarts at step 1 for v3 against the same stable revision (v1); the v2 pods
// go first, then it runs to the end.
func releaseNewRevisionMidRelease(t *testing.T) {
	s := newScenario(t)
	s.releaseToStep2(step("50%"))
	v2 := s.rollout().Status.CanaryStatus

	s.updateImage("app:v3")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	cs := s.rollout().Status.CanaryStatus
	if cs.StableRevision != v2.StableRevision || cs.CanaryRevision == v2.CanaryRevision || cs.CurrentStepIndex != 1 {
		t.Errorf("after v3 mid-release: stable=%s canary=%s step=%d; want stable %s (unchanged), a canary revision other than v2's %s, step 1",
			cs.StableRevision, cs.CanaryRevision, cs.CurrentStepIndex, v2.StableRevision, v2.CanaryRevision)
	}
	// Step 1 of v3: 2 pods of v3; the intermediate v2 shrinks before the stable v1 does.
	s.expectPods(pods{"app:v3": 2, "app:v2": 3, "app:v1": 5})

	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v3": 5, "app:v1": 5})

	s.promote()
	s.expectSucceeded()
	s.expectPods(pods{"app:v3": 10})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v3")
}

// releasePauseResume: pausing at step 2 stops the release there, even past the step's
// pause duration; resuming lets it finish.
func releasePauseResume(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("50%", 8), step("100%")})
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 8})
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)

	// At once: step 2 pauses 8 s by itself, and the pause must land inside that.
	s.pause()
	if ro := s.rollout(); ro.Status.CurrentStepIndex != 2 {
		t.Fatalf("the pause came too late to test anything: the release had already left step 2 (8 s pause), so this machine is too slow for the scenario\n%s", s.describe())
	}
	s.eventually(waitTimeout, "condition Progressing reason Paused", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		return progressingReasonOf(ro) == v1beta1.ProgressingReasonPaused, rolloutSummary(ro)
	})
	s.consistently(11*time.Second, "no progress while paused (step 2 pauses only 8s)", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		return ro.Status.Phase == v1beta1.RolloutPhaseProgressing && ro.Status.CurrentStepIndex == 2 && live["app:v2"] == 5,
			fmt.Sprintf("phase %s step %d %s; pods %s", ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.CurrentStepState, desc)
	})

	s.resume()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 10})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
}

// releasePromoteFull: promote with full at step 1 finishes every remaining step at once.
func releasePromoteFull(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("50%"), step("100%")})
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 8})

	s.promoteFull()
	s.expectSucceeded()
	if at, ok := s.w.seenStep(2, v1beta1.CanaryStepStatePaused); ok {
		t.Errorf("promote full still stopped at step 2 (seen paused at +%.1fs)", at.Sub(s.start).Seconds())
	}
	s.expectPods(pods{"app:v2": 10})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
}

// releaseDisabledMidRelease: spec.disabled at step 2 hands the Deployment back to its own
// strategy, which finishes the rollout; nothing is left paused or held.
func releaseDisabledMidRelease(t *testing.T) {
	s := newScenario(t)
	s.releaseToStep2(step("50%"))

	s.w.allowAll() // the Deployment's own strategy takes over
	s.updateRollout(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	s.waitForPhase(v1beta1.RolloutPhaseDisabled, "")
	s.expectWorkloadReleased(false)
	s.expectWorkloadOn("app:v2")
	s.expectPods(pods{"app:v2": 10})
}

// releaseDeletedMidRelease: deleting the Rollout at step 2 hands the Deployment back before
// the Rollout goes away.
func releaseDeletedMidRelease(t *testing.T) {
	s := newScenario(t)
	s.releaseToStep2(step("50%"))

	s.w.allowAll()
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Delete(ctx, s.name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Rollout: %v", err)
	}
	s.logf("Rollout deleted")
	s.eventually(waitTimeout, "the Rollout to go away", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, rolloutSummary(ro) + fmt.Sprintf("  finalizers: %v", ro.Finalizers)
	})
	s.logf("Rollout gone")
	s.expectWorkloadReleased(false)
	s.expectWorkloadOn("app:v2")
	s.expectPods(pods{"app:v2": 10})
}
