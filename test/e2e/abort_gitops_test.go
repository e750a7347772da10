package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestAbortUnderGitOps drives an abort the way a team with a GitOps tool lives with it, on
// the real control plane, against a server of its own (it is killed with SIGKILL on the way):
//
//  1. the Deployment (10 pods of v1) is applied with server-side apply by a "gitops" field
//     manager; git then says v2: its release stops at step 1 (2 pods of v2) and is aborted;
//     every pod goes back to v1 while the Deployment's template still says v2 and it stays
//     held; the Rollout is Aborted;
//  2. the tool re-applies the same v2 manifest (its own strategy included): no release starts,
//     nothing moves, for 8 s;
//  3. kill -9 while aborted and restart: the hold stays and nothing moves;
//  4. retry: v2 is released again from step 1 (2 of 10 pods), then aborted again;
//  5. git says v3: a new release of v3 starts at step 1 from the stable v1; aborted again;
//  6. git says v1 (a revert): the Rollout hands the Deployment back, Healthy, and no pod is
//     replaced (the v1 pods keep their UIDs).
func TestAbortUnderGitOps(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs("abort-gitops-" + rand.String(5))})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	ns := c.NewNamespace(t)
	rc := robRolloutClient(t, s.RESTConfig())
	robCleanupRollouts(t, rc, ns)
	g := &gitops{t: t, c: c, rc: rc, s: s, ns: ns, name: "web"}

	const v1, v2, v3 = "fake-image:v1", "fake-image:v2", "fake-image:v3"
	g.apply(ctx, v1)
	robWaitDeploymentReady(t, c, ns, g.name, v1, 10, 90*time.Second)
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, robRollout(ns, g.name, g.name,
		robStep("20%", nil), robStep("100%", nil)), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	robWaitRollout(t, rc, ns, g.name, 30*time.Second, "phase Healthy before the release", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	robWaitControlled(t, c, ns, g.name, 30*time.Second)

	// --- 1. v2 is released to step 1, then aborted ---------------------------------------
	g.apply(ctx, v2)
	robWaitRollout(t, rc, ns, g.name, 90*time.Second, "step 1 of v2 waiting for promote", s, robAt(1, v1beta1.CanaryStepStatePaused))
	robExpectPods(t, c, ns, g.name, v2, 2, 8, 60*time.Second)
	v2Revision := g.rollout(ctx).Status.CanaryStatus.CanaryRevision
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Abort(ctx, g.name, &v1beta1.RolloutAbort{Reason: "e2e: error rate up"}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	ro := g.waitAborted(v2)
	if a := ro.Status.Abort; a == nil || a.Reason != v1beta1.AbortReasonUser || a.Revision != v2Revision || a.StepIndex != 1 {
		t.Errorf("status.abort = %+v; want %s of revision %s at step 1", a, v1beta1.AbortReasonUser, v2Revision)
	}
	v1Pods := g.podUIDs(ctx, v1)
	g.expectTable(ctx, "Aborted")

	// --- 2. the same v2 applied again by the GitOps tool: nothing happens -----------------
	started := g.countEvents(ctx, "ReleaseStarted")
	g.apply(ctx, v2)
	g.consistentlyAborted(8*time.Second, v2, v1Pods)
	if n := g.countEvents(ctx, "ReleaseStarted"); n != started {
		t.Errorf("re-applying the same template started %d more releases; want none", n-started)
	}

	// --- 3. kill -9 while aborted: the hold stays -----------------------------------------
	if err := s.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	robWaitAuthenticated(t, rc, ns)
	g.consistentlyAborted(8*time.Second, v2, v1Pods)
	t.Logf("after kill -9 and a restart: still Aborted, held, 10 pods of v1 with the same UIDs")

	// --- 4. retry: v2 again from step 1 -----------------------------------------------------
	retried, err := rc.RolloutV1beta1().Rollouts(ns).Retry(ctx, g.name, &v1beta1.RolloutRetry{
		Preconditions: &v1beta1.ActionPreconditions{CanaryRevision: v2Revision},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if pa := retried.Status.PendingAction; pa == nil || pa.Type != v1beta1.RolloutActionRetry {
		t.Errorf("retry: want status.pendingAction {Retry} in the response, got %+v", pa)
	}
	ro = robWaitRollout(t, rc, ns, g.name, 90*time.Second, "step 1 of v2 again after the retry", s, robAt(1, v1beta1.CanaryStepStatePaused))
	if ro.Status.CanaryStatus.CanaryRevision != v2Revision || ro.Status.Abort != nil {
		t.Errorf("after the retry: canaryRevision %s (want %s), abort %+v (want none)", ro.Status.CanaryStatus.CanaryRevision, v2Revision, ro.Status.Abort)
	}
	robExpectPods(t, c, ns, g.name, v2, 2, 8, 60*time.Second)
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Abort(ctx, g.name, &v1beta1.RolloutAbort{}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("abort after the retry: %v", err)
	}
	g.waitAborted(v2)

	// --- 5. v3 in git: a new release -------------------------------------------------------
	g.apply(ctx, v3)
	ro = robWaitRollout(t, rc, ns, g.name, 90*time.Second, "step 1 of v3", s, robAt(1, v1beta1.CanaryStepStatePaused))
	if cs := ro.Status.CanaryStatus; cs.CanaryRevision == v2Revision || ro.Status.Abort != nil {
		t.Errorf("v3 is released as %s with abort %+v; want a new revision and no abort", cs.CanaryRevision, ro.Status.Abort)
	}
	robExpectPods(t, c, ns, g.name, v3, 2, 8, 60*time.Second)
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Abort(ctx, g.name, &v1beta1.RolloutAbort{}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("abort of v3: %v", err)
	}
	g.waitAborted(v3)
	v1Pods = g.podUIDs(ctx, v1)

	// --- 6. git reverted to v1: Healthy, nothing rolled ------------------------------------
	g.apply(ctx, v1)
	robWaitRollout(t, rc, ns, g.name, 60*time.Second, "phase Healthy after the revert", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	framework.Eventually(t, 30*time.Second, 200*time.Millisecond, "the Deployment handed back, on v1", func(ctx context.Context) (bool, string) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, g.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return !isHeld(d) && !d.Spec.Paused && d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType &&
				d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == 10,
			fmt.Sprintf("held=%v paused=%v strategy=%s status=%+v", isHeld(d), d.Spec.Paused, d.Spec.Strategy.Type, d.Status)
	})
	if got := g.podUIDs(ctx, v1); !sameUIDs(got, v1Pods) {
		t.Errorf("the revert replaced pods: v1 pods before %v, after %v", v1Pods, got)
	}
}

// gitops plays a GitOps tool keeping one Deployment equal to git, and checks the Rollout.
type gitops struct {
	t        *testing.T
	c        *framework.Cluster
	rc       versioned.Interface
	s        *framework.Server
	ns, name string
}

// apply server-side applies the whole manifest as git has it (force: the tool owns it).
func (g *gitops) apply(ctx context.Context, image string) {
	g.t.Helper()
	labels := map[string]string{"app": g.name}
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("25%")
	d := appsv1ac.Deployment(g.name, g.ns).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(10).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(surge).WithMaxUnavailable(unavailable))).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().
			WithTerminationGracePeriodSeconds(0).
			WithContainers(corev1ac.Container().WithName("app").WithImage(image)))))
	framework.Eventually(g.t, 30*time.Second, 500*time.Millisecond, "server-side apply of "+image+" by field manager gitops", func(ctx context.Context) (bool, string) {
		_, err := g.c.Client.AppsV1().Deployments(g.ns).Apply(ctx, d, metav1.ApplyOptions{FieldManager: "gitops", Force: true})
		if err != nil {
			return false, err.Error() // a webhook call that timed out on a loaded machine
		}
		return true, ""
	})
	g.t.Logf("gitops applied %s", image)
}

func (g *gitops) rollout(ctx context.Context) *v1beta1.Rollout {
	g.t.Helper()
	ro, err := g.rc.RolloutV1beta1().Rollouts(g.ns).Get(ctx, g.name, metav1.GetOptions{})
	if err != nil {
		g.t.Fatalf("get Rollout: %v", err)
	}
	return ro
}

// aborted checks the aborted state: phase Aborted with its conditions, the Deployment held
// with image in its template, and 10 ready pods of the stable v1 and no other.
func (g *gitops) aborted(ctx context.Context, image string) (bool, string) {
	ro, err := g.rc.RolloutV1beta1().Rollouts(g.ns).Get(ctx, g.name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	d, err := g.c.Client.AppsV1().Deployments(g.ns).Get(ctx, g.name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	counts, err := robCountPods(ctx, g.c, g.ns, g.name, "fake-image:v1")
	if err != nil {
		return false, err.Error()
	}
	progressing := condition(ro, v1beta1.RolloutConditionProgressing)
	ok := ro.Status.Phase == v1beta1.RolloutPhaseAborted && progressing != nil && progressing.Status == corev1.ConditionFalse &&
		progressing.Reason == v1beta1.ProgressingReasonAborted &&
		d.Spec.Template.Spec.Containers[0].Image == image && d.Spec.Paused && isHeld(d) &&
		counts.NewReady == 10 && counts.NewPods == 10 && counts.OldPods == 0
	return ok, fmt.Sprintf("rollout: %s; deployment: image %s paused=%v held=%v; pods (v1 = new): %+v",
		robDescribe(ro), d.Spec.Template.Spec.Containers[0].Image, d.Spec.Paused, isHeld(d), counts)
}

func (g *gitops) waitAborted(image string) *v1beta1.Rollout {
	g.t.Helper()
	framework.Eventually(g.t, 90*time.Second, 200*time.Millisecond, "phase Aborted, every pod on v1, template "+image+" held",
		func(ctx context.Context) (bool, string) { return g.aborted(ctx, image) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ro := g.rollout(ctx)
	g.t.Logf("Aborted: %s", ro.Status.Message)
	return ro
}

// consistentlyAborted checks the aborted state and that the v1 pods stay the same ones.
func (g *gitops) consistentlyAborted(d time.Duration, image string, v1Pods []types.UID) {
	g.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok, state := g.aborted(ctx, image)
		pods := g.podUIDs(ctx, "fake-image:v1")
		cancel()
		if !ok || !sameUIDs(pods, v1Pods) {
			g.t.Fatalf("the aborted state did not hold: %s (v1 pods then %v, now %v)\nserver log tail:\n%s", state, v1Pods, pods, g.s.LogTail(30))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// expectTable checks that kubectl get ro shows the phase in its STATUS column.
func (g *gitops) expectTable(ctx context.Context, status string) {
	g.t.Helper()
	table, err := g.c.KubectlCmd(ctx, "get", "ro", g.name, "-n", g.ns)
	if err != nil {
		g.t.Errorf("kubectl get ro: %v: %s", err, table)
		return
	}
	g.t.Logf("kubectl get ro:\n%s", table)
	if !slices.Contains(strings.Fields(table), status) {
		g.t.Errorf("kubectl get ro does not show %s:\n%s", status, table)
	}
}

func (g *gitops) countEvents(ctx context.Context, reason string) int32 {
	g.t.Helper()
	counts, _, err := robEvents(ctx, g.c, g.ns, g.name)
	if err != nil {
		g.t.Fatalf("list Events: %v", err)
	}
	return robCountReason(counts, reason+":")
}

// podUIDs are the UIDs of the live pods running image, sorted.
func (g *gitops) podUIDs(ctx context.Context, image string) []types.UID {
	g.t.Helper()
	list, err := g.c.Client.CoreV1().Pods(g.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + g.name})
	if err != nil {
		g.t.Fatalf("list pods: %v", err)
	}
	var out []types.UID
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == image {
			out = append(out, p.UID)
		}
	}
	slices.Sort(out)
	return out
}

func sameUIDs(a, b []types.UID) bool { return slices.Equal(a, b) }
