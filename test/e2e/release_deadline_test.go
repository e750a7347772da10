package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// releaseProgressDeadline: a step whose new pods never become ready aborts the release by
// itself once progressDeadlineSeconds (10) have passed: every pod goes back to the stable
// revision, while the Deployment keeps the broken template and stays held (phase Aborted).
//
// Making pods never ready under kwok: a readiness gate does not do it, because kwok's
// pod-ready Stage writes every spec.readinessGates condition as True along with Ready (checked
// by hand: a pod with readinessGates [{conditionType: example.com/never}] turns Ready at once).
// A nodeSelector that no node matches does: the pods stay Pending, unschedulable, never Ready.
func releaseProgressDeadline(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("100%")}, withProgressDeadline(10))

	released := time.Now()
	s.updatePodTemplate("app:v2", func(tpl *corev1.PodTemplateSpec) {
		tpl.Spec.NodeSelector = map[string]string{"example.com/never": "true"}
	})
	s.waitForStep(1, v1beta1.CanaryStepStateUpgrade)
	s.eventually(waitTimeout, "2 pods of app:v2, none ready", func(ctx context.Context) (bool, string) {
		live, ready, desc, err := s.podDistribution(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		return live["app:v2"] == 2 && ready["app:v2"] == 0, desc
	})

	ro := s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	s.expectCondition(ro, v1beta1.RolloutConditionSucceeded, corev1.ConditionFalse, v1beta1.ProgressingReasonAborted)
	a := ro.Status.Abort
	if a == nil || a.Reason != v1beta1.AbortReasonProgressDeadline || a.StepIndex != 1 {
		t.Fatalf("status.abort = %+v; want reason %s at step 1\n%s", a, v1beta1.AbortReasonProgressDeadline, s.describe())
	}
	if cs := ro.Status.CanaryStatus; cs == nil || cs.StepStartTime == nil {
		t.Errorf("no canaryStatus.stepStartTime after the abort\n%s", rolloutSummary(ro))
	} else if waited := a.Time.Sub(cs.StepStartTime.Time); waited < 10*time.Second || waited > 20*time.Second {
		t.Errorf("status.abort.time is %s after step 1 began (canaryStatus.stepStartTime); want the 10s deadline", waited)
	} else {
		s.logf("step 1 began at %s, aborted at %s (%s, by the controller's clock)", cs.StepStartTime.Format("15:04:05"), a.Time.Format("15:04:05"), waited)
	}
	cancelling, ok := s.w.firstState(func(r roState) bool { return r.reason == v1beta1.ProgressingReasonCancelling })
	if !ok {
		t.Errorf("the watcher never saw the release cancelling")
	} else {
		after := cancelling.Sub(released)
		s.logf("aborted %.1fs after the release began (deadline 10s)", after.Seconds())
		if after < 9*time.Second || after > 25*time.Second {
			t.Errorf("the release was aborted %.1fs after it began; want about 10s (progressDeadlineSeconds)", after.Seconds())
		}
	}

	s.expectPods(pods{"app:v1": 10})
	ctx, cancel := s.ctx()
	defer cancel()
	d, err := s.env.c.Client.AppsV1().Deployments(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Spec.Containers[0].Image != "app:v2" || len(d.Spec.Template.Spec.NodeSelector) == 0 {
		t.Errorf("the Deployment's template changed: image %s, nodeSelector %v; want it as the user wrote it", d.Spec.Template.Spec.Containers[0].Image, d.Spec.Template.Spec.NodeSelector)
	}
	if !d.Spec.Paused || !isHeld(d) {
		t.Errorf("the aborted Deployment is not held: paused=%v held=%v", d.Spec.Paused, isHeld(d))
	}
}
