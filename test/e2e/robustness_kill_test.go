package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestRobustnessKillAtEveryStepState kills rollout-apiserver with SIGKILL at each kind of
// point of a release of a 10-replica Deployment (steps 20% wait-for-promote → 50% pause 5s
// → 100%) and restarts it in place (same port, same embedded etcd data):
//
//  1. during StepUpgrade of step 1 (the image was just changed, new pods not ready yet);
//  2. at step 1 StepPaused, waiting for promote;
//  3. right after a promote POST returned, before the controller acted on it (the test
//     holds the controller's Lease while the server takes the POST, so the controller
//     cannot act; the pendingAction must then be carried out exactly once: step 2, not 3);
//  4. during step 2's timed pause.
//
// After each restart it checks the step and the pods; at the end, a watcher's record of
// every distinct (currentStepIndex, currentStepState) must be strictly increasing (no step
// or state skipped back to or repeated), with every step present, and the Rollout's Events
// must show one promote and no step started or completed twice.
func TestRobustnessKillAtEveryStepState(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()

	lease := "rob-kill-" + rand.String(5)
	s, ns, rc := robKillableServer(ctx, t, c, lease)

	const name, v1, v2 = "web", "fake-image:v1", "fake-image:v2"
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, robDeployment(ns, name, 10, v1), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, name, v1, 10, 60*time.Second)
	ro := robRollout(ns, name, name,
		robStep("20%", nil),
		robStep("50%", robSeconds(5)),
		robStep("100%", nil))
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, ro, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	robWaitRollout(t, rc, ns, name, 30*time.Second, "phase Healthy before the release", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	robWaitControlled(t, c, ns, name, 30*time.Second)
	hist := robWatchHistory(t, s.RESTConfig(), ns, name)

	restart := func(when string) time.Duration {
		t.Helper()
		start := time.Now()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("restart after kill -9 %s: %v", when, err)
		}
		robWaitAuthenticated(t, rc, ns)
		return time.Since(start)
	}
	kill := func(when string) {
		t.Helper()
		pid := s.Pid()
		if err := s.Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", when, err)
		}
		t.Logf("kill -9 pid %d %s (history so far: %s)", pid, when, hist)
	}

	// --- 1. kill during StepUpgrade, right after the image change -------------------------
	scaleBefore := robScaleEvents(t, c, ns, name)
	d, err := robSetImage(ctx, c, ns, name, v2)
	if err != nil {
		t.Fatalf("update the Deployment's image: %v", err)
	}
	if !d.Spec.Paused || d.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation] == "" {
		t.Fatalf("the webhook did not hold the Deployment on the image change: paused=%v annotations=%v", d.Spec.Paused, d.Annotations)
	}
	atKill := robWaitFast(t, rc, ns, name, 20*time.Second, "step 1 StepUpgrade", s, func(ro *v1beta1.Rollout) (bool, error) {
		cs := ro.Status.CanaryStatus
		if cs == nil {
			return false, nil
		}
		if cs.CurrentStepIndex == 1 && cs.CurrentStepState == v1beta1.CanaryStepStateUpgrade {
			return true, nil
		}
		if cs.CurrentStepIndex > 1 || robStateRank[cs.CurrentStepState] > robStateRank[v1beta1.CanaryStepStateUpgrade] {
			return false, fmt.Errorf("the release passed step 1 StepUpgrade before the test could kill the server: %s", robDescribe(ro))
		}
		return false, nil
	})
	kill("during step 1 StepUpgrade")
	podsAtKill, _ := robCountPods(ctx, c, ns, name, v2)
	t.Logf("killed at %s; pods then: %+v", robDescribe(atKill), podsAtKill)
	took := restart("during StepUpgrade")
	t.Logf("restarted in %s", took.Round(10*time.Millisecond))
	robWaitRollout(t, rc, ns, name, 60*time.Second, "step 1 StepPaused after the restart", s, robAt(1, v1beta1.CanaryStepStatePaused))
	got := robExpectPods(t, c, ns, name, v2, 2, 8, 30*time.Second)
	t.Logf("step 1 reached StepPaused after the restart: %+v", got)

	// --- 2. kill at StepPaused, waiting for promote ---------------------------------------
	holder, _, err := robLeaseHolder(ctx, c, lease)
	if err != nil {
		t.Fatalf("read Lease %s: %v", lease, err)
	}
	kill("at step 1 StepPaused (waiting for promote)")
	restart("at StepPaused")
	robWaitNewLeader(t, c, lease, holder, robLeaseDuration+10*time.Second)
	leadAt := time.Now()
	// The new process leads; give it a few reconciles' time to (wrongly) move on.
	time.Sleep(3 * time.Second)
	ro2, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Rollout: %v", err)
	}
	if !robAt(1, v1beta1.CanaryStepStatePaused)(ro2) || ro2.Status.PendingAction != nil {
		t.Fatalf("after a restart at step 1 StepPaused the release should still wait for promote there; it is at %s (history %s)", robDescribe(ro2), hist)
	}
	robExpectPods(t, c, ns, name, v2, 2, 8, 10*time.Second)
	t.Logf("3s after the restarted server took the Lease (%s) the release still waits at step 1: %s", leadAt.Format("15:04:05.000"), robDescribe(ro2))

	// --- 3. kill right after a promote POST returned, before the controller acted ---------
	kill("at step 1 StepPaused, before the promote")
	releaseLease := robHoldLease(t, c, lease)
	restart("with the Lease held by the test")
	promoted, err := rc.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("POST promote: %v", err)
	}
	pa := promoted.Status.PendingAction
	if pa == nil || pa.Type != v1beta1.RolloutActionPromote || pa.StepIndex != 1 || pa.Full {
		t.Fatalf("POST promote returned without status.pendingAction {Promote, stepIndex 1}: %s", robDescribe(promoted))
	}
	time.Sleep(1500 * time.Millisecond)
	pending, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Rollout: %v", err)
	}
	if pending.Status.PendingAction == nil || !robAt(1, v1beta1.CanaryStepStatePaused)(pending) {
		h, _, _ := robLeaseHolder(ctx, c, lease)
		t.Fatalf("a controller acted on the promote although the test holds the Lease (holder %q): %s", h, robDescribe(pending))
	}
	kill("right after POST promote returned (pendingAction recorded, not acted on)")
	releaseLease()
	restart("after the promote")
	robWaitRollout(t, rc, ns, name, 30*time.Second, "the pending promote carried out", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.PendingAction == nil })
	at2 := robWaitRollout(t, rc, ns, name, 60*time.Second, "step 2 StepPaused (the timed pause)", s, robAt(2, v1beta1.CanaryStepStatePaused))
	got = robExpectPods(t, c, ns, name, v2, 5, 5, 30*time.Second)
	t.Logf("the promote was carried out after the restart; step 2 paused: %s; pods %+v", robDescribe(at2), got)
	if o, ok := hist.first(func(k robStepKey) bool { return k.Index >= 3 }); ok {
		t.Fatalf("the promote was applied more than once: step %s seen before step 2's 5s pause could end (history %s)", o.Key, hist)
	}

	// --- 4. kill during the timed pause ----------------------------------------------------
	pauseStart := at2.Status.CanaryStatus.LastUpdateTime.Time
	time.Sleep(time.Until(pauseStart.Add(1500 * time.Millisecond)))
	kill("during step 2's 5s pause")
	time.Sleep(time.Second)
	restart("during the timed pause")
	robWaitRollout(t, rc, ns, name, 60*time.Second, "step 3 after step 2's pause", s, func(ro *v1beta1.Rollout) bool {
		return ro.Status.CanaryStatus != nil && ro.Status.CanaryStatus.CurrentStepIndex >= 3
	})
	if o, ok := hist.first(func(k robStepKey) bool { return k.Index >= 3 }); ok {
		if o.At.Before(pauseStart.Add(5 * time.Second)) {
			t.Errorf("step 2's 5s pause was cut short: step 3 seen at %s, the pause began at %s", o.At.Format("15:04:05.000"), pauseStart.Format("15:04:05.000"))
		}
		t.Logf("step 2's pause began %s; step 3 seen %s after it (kill -9 and restart in between)", pauseStart.Format("15:04:05"), o.At.Sub(pauseStart).Round(10*time.Millisecond))
	}

	// --- the release ends ----------------------------------------------------------------
	final := robWaitRollout(t, rc, ns, name, 90*time.Second, "phase Healthy with Succeeded=True", s, robSucceeded)
	robWaitDeploymentReady(t, c, ns, name, v2, 10, 60*time.Second)
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment: %v", err)
	}
	if dep.Spec.Paused || dep.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation] != "" || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("the Deployment was not handed back: paused=%v strategy=%s annotations=%v", dep.Spec.Paused, dep.Spec.Strategy.Type, dep.Annotations)
	}
	t.Logf("release finished: %s", robDescribe(final))

	hist.check(t, 3)
	for _, want := range []robStepKey{{1, v1beta1.CanaryStepStatePaused}, {2, v1beta1.CanaryStepStatePaused}} {
		if _, ok := hist.first(func(k robStepKey) bool { return k == want }); !ok {
			t.Errorf("status history never showed %s: %s", want, hist)
		}
	}
	t.Logf("status history: %s", hist)

	// Events are recorded asynchronously after the status write; the last one (Succeeded)
	// arriving means the others have been sent.
	var counts map[string]int32
	var lines []string
	framework.Eventually(t, 20*time.Second, 200*time.Millisecond, "the Rollout's Succeeded Event", func(ctx context.Context) (bool, string) {
		counts, lines, err = robEvents(ctx, c, ns, name)
		if err != nil {
			return false, err.Error()
		}
		return robCountReason(counts, "Succeeded:") == 1 && robCountReason(counts, "Promoted:") >= 1, strings.Join(lines, "\n")
	})
	t.Logf("Events of the Rollout:\n  %s", strings.Join(lines, "\n  "))
	if n := robCountReason(counts, "Promoted:"); n != 1 {
		t.Errorf("want exactly one Promoted Event, got %d", n)
	}
	if n := robCountReason(counts, "ActionIgnored:"); n != 0 {
		t.Errorf("want no ActionIgnored Event (the one promote applies to step 1), got %d", n)
	}
	for i := 1; i <= 3; i++ {
		if n := robCountReason(counts, fmt.Sprintf("StepUpgrading: Step %d/3", i)); n > 1 {
			t.Errorf("step %d started %d times (StepUpgrading Events)", i, n)
		}
		if n := robCountReason(counts, fmt.Sprintf("StepCompleted: Step %d/3", i)); n > 1 {
			t.Errorf("step %d completed %d times (StepCompleted Events)", i, n)
		}
	}
	// Events are sent asynchronously after the status write, so a SIGKILL right after it
	// may lose some (best effort, as everywhere in Kubernetes): at most one of each.
	for _, reason := range []string{"ReleaseStarted:", "StepsCompleted:", "Succeeded:"} {
		if n := robCountReason(counts, reason); n > 1 {
			t.Errorf("want at most one %s Event, got %d", strings.TrimSuffix(reason, ":"), n)
		}
	}
	robCheckNoScaleFight(t, c, ns, name, scaleBefore)
	t.Logf("whole test took %s", time.Since(began).Round(100*time.Millisecond))
}

// robKillableServer starts a server of its own on the given Lease and a namespace whose Rollouts are deleted before the server
// is killed at the end. SIGKILL, not Stop: a graceful stop can take 30s+ while
// a client watches (see TestRobustnessGracefulStopWithOpenWatch); the kill
// runs after the namespace's deletion is requested (cleanups run last-in
// first-out).
func robKillableServer(ctx context.Context, t *testing.T, c *framework.Cluster, lease string) (*framework.Server, string, versioned.Interface) {
	t.Helper()
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs(lease)})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	ns := c.NewNamespace(t)
	rc := robRolloutClient(t, s.RESTConfig())
	robCleanupRollouts(t, rc, ns)
	return s, ns, rc
}
