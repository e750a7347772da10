package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestRobustnessHALeaderFailover runs two replicas of rollout-apiserver on one external
// etcd (--etcd-servers), as an HA installation does: A is behind the APIServices and the
// workload webhook, B is a second replica on its own port whose controller contends for
// the same Lease. Only the Lease holder may act on a Rollout; when it is killed with
// SIGKILL the other takes the Lease within the lease duration plus a margin and carries the
// release on from where it was.
//
//	A starts and leads → B starts, follows → kill -9 A → B leads → A restarts, follows →
//	release steps 1 and 2 (B acts, A's log shows no reconcile) → kill -9 B at step 2 →
//	A leads and finishes the release.
func TestRobustnessHALeaderFailover(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()

	etcd, err := c.StartExternalEtcd(ctx, "etcd-rob-ha")
	if err != nil {
		t.Fatalf("external etcd: %v", err)
	}
	t.Cleanup(func() { _ = etcd.Stop() })
	lease := "rob-ha-" + rand.String(5)
	args := append(robLeaseArgs(lease), "--etcd-servers="+etcd.URL)

	// --- A: registered, leads first --------------------------------------------------------
	aLog := filepath.Join(c.RunDir, "logs", "rollout-apiserver.log")
	aFrom := robLogSize(aLog)
	a, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: args})
	if err != nil {
		t.Fatalf("start replica A (registered): %v", err)
	}
	t.Cleanup(func() { _ = a.Kill() }) // see TestRobustnessGracefulStopWithOpenWatch
	idA1 := robWaitLeading(t, c, lease, "A", aLog, aFrom, robLeaseDuration+10*time.Second)

	// --- B: a second replica on the same etcd, follows --------------------------------------
	bLog := filepath.Join(c.RunDir, "logs", "rollout-apiserver-b.log")
	bFrom := robLogSize(bLog) // a reused run folder keeps earlier runs' lines
	b, err := c.StartCandidate(ctx, a, "rollout-apiserver-b")
	if err != nil {
		t.Fatalf("start replica B: %v", err)
	}
	t.Cleanup(func() { _ = b.Kill() })
	robWaitLog(t, b.LogPath(), bFrom, 15*time.Second, "B sees A as the leader", `"Rollout controller leader"`, `leader="`+idA1+`"`)

	// --- kill -9 A: B takes over ------------------------------------------------------------
	if err := a.Kill(); err != nil {
		t.Fatalf("kill -9 A: %v", err)
	}
	killedA := time.Now()
	holder := robWaitNewLeader(t, c, lease, idA1, robLeaseDuration+8*time.Second)
	failoverAB := time.Since(killedA)
	robWaitLog(t, b.LogPath(), bFrom, 10*time.Second, "B starts its workers", `"Starting rollout controller workers"`)
	t.Logf("kill -9 A: B (%s) holds the Lease %s after the kill (lease duration %s)", holder, failoverAB.Round(10*time.Millisecond), robLeaseDuration)
	if failoverAB > robLeaseDuration+4*time.Second {
		t.Errorf("failover A→B took %s, more than the lease duration %s + 4s", failoverAB.Round(10*time.Millisecond), robLeaseDuration)
	}

	// --- A comes back and follows -----------------------------------------------------------
	aFrom = robLogSize(aLog)
	if err := a.Start(ctx); err != nil {
		t.Fatalf("restart replica A: %v", err)
	}
	robWaitLog(t, aLog, aFrom, 15*time.Second, "restarted A sees B as the leader", `"Rollout controller leader"`, `leader="`+holder+`"`)

	// --- a release, acted on by B only -----------------------------------------------------
	ns := c.NewNamespace(t)
	rcA := robRolloutClient(t, a.RESTConfig())
	rcB := robRolloutClient(t, b.RESTConfig())
	robCleanupRollouts(t, rcA, ns)
	const name, v1, v2 = "web", "fake-image:v1", "fake-image:v2"
	key := fmt.Sprintf(`rollout="%s/%s"`, ns, name)
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, robDeployment(ns, name, 10, v1), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, name, v1, 10, 60*time.Second)
	// Through the aggregator, i.e. replica A; stored in the shared etcd.
	rcAgg := robRolloutClient(t, c.Config)
	if _, err := rcAgg.RolloutV1beta1().Rollouts(ns).Create(ctx, robRollout(ns, name, name,
		robStep("20%", nil), robStep("50%", nil), robStep("100%", nil)), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout through the aggregator: %v", err)
	}
	// B serves what A stored: they share etcd.
	robWaitRollout(t, rcB, ns, name, 30*time.Second, "phase Healthy, read from replica B", b.Server, func(ro *v1beta1.Rollout) bool {
		return ro.Status.Phase == v1beta1.RolloutPhaseHealthy
	})
	robWaitControlled(t, c, ns, name, 30*time.Second)
	hist := robWatchHistory(t, a.RESTConfig(), ns, name)
	scaleBefore := robScaleEvents(t, c, ns, name)
	if _, err := robSetImage(ctx, c, ns, name, v2); err != nil {
		t.Fatalf("update the Deployment's image: %v", err)
	}
	robWaitRollout(t, rcA, ns, name, 60*time.Second, "step 1 StepPaused", b.Server, robAt(1, v1beta1.CanaryStepStatePaused))
	robExpectPods(t, c, ns, name, v2, 2, 8, 30*time.Second)
	if _, err := rcAgg.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("promote step 1: %v", err)
	}
	robWaitRollout(t, rcA, ns, name, 60*time.Second, "step 2 StepPaused", b.Server, robAt(2, v1beta1.CanaryStepStatePaused))
	robExpectPods(t, c, ns, name, v2, 5, 5, 30*time.Second)
	if h, _, _ := robLeaseHolder(ctx, c, lease); h != holder {
		t.Fatalf("the Lease changed hands during B's term: %q, want %q", h, holder)
	}
	bText := robLogSince(b.LogPath(), bFrom)
	aText := robLogSince(aLog, aFrom)
	for _, what := range []string{`"Release started"`, `"Scaled ReplicaSet"`} {
		if len(robGrep(bText, what, key)) == 0 {
			t.Errorf("leader B's log has no %s line for %s", what, key)
		}
	}
	if lines := robGrep(aText, key); len(lines) > 0 {
		t.Errorf("follower A reconciled the Rollout while B held the Lease:\n  %s", strings.Join(lines, "\n  "))
	}
	if lines := robGrep(aText, `"Starting rollout controller workers"`); len(lines) > 0 {
		t.Errorf("follower A started controller workers while B held the Lease:\n  %s", strings.Join(lines, "\n  "))
	}
	t.Logf("steps 1 and 2 acted on by B only: B's log has %d lines for the Rollout, A's none", len(robGrep(bText, key)))

	// --- kill -9 B (the leader) at step 2: A takes over and finishes ------------------------
	if err := b.Kill(); err != nil {
		t.Fatalf("kill -9 B: %v", err)
	}
	killedB := time.Now()
	holderA := robWaitNewLeader(t, c, lease, holder, robLeaseDuration+8*time.Second)
	failoverBA := time.Since(killedB)
	robWaitLog(t, aLog, aFrom, 10*time.Second, "A starts its workers", `"Starting rollout controller workers"`)
	t.Logf("kill -9 B: A (%s) holds the Lease %s after the kill", holderA, failoverBA.Round(10*time.Millisecond))
	if failoverBA > robLeaseDuration+4*time.Second {
		t.Errorf("failover B→A took %s, more than the lease duration %s + 4s", failoverBA.Round(10*time.Millisecond), robLeaseDuration)
	}
	// Nothing moved while nobody led, and A picks the release up where B left it.
	ro := robWaitRollout(t, rcA, ns, name, 10*time.Second, "still step 2 StepPaused after the failover", a, robAt(2, v1beta1.CanaryStepStatePaused))
	robExpectPods(t, c, ns, name, v2, 5, 5, 10*time.Second)
	t.Logf("after the failover: %s", robDescribe(ro))
	if _, err := rcAgg.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("promote step 2: %v", err)
	}
	robWaitRollout(t, rcA, ns, name, 90*time.Second, "phase Healthy with Succeeded=True", a, robSucceeded)
	robWaitDeploymentReady(t, c, ns, name, v2, 10, 60*time.Second)
	dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment: %v", err)
	}
	if dep.Spec.Paused || dep.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation] != "" || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("the Deployment was not handed back: paused=%v strategy=%s annotations=%v", dep.Spec.Paused, dep.Spec.Strategy.Type, dep.Annotations)
	}
	aText = robLogSince(aLog, aFrom)
	for _, what := range []string{`"Scaled ReplicaSet"`, `"Release finished"`} {
		if len(robGrep(aText, what, key)) == 0 {
			t.Errorf("new leader A's log has no %s line for %s", what, key)
		}
	}
	hist.check(t, 3)
	t.Logf("status history: %s", hist)

	counts, lines, err := robEvents(ctx, c, ns, name)
	if err != nil {
		t.Fatalf("list Events: %v", err)
	}
	t.Logf("Events of the Rollout:\n  %s", strings.Join(lines, "\n  "))
	if n := robCountReason(counts, "Promoted:"); n != 2 {
		t.Errorf("want 2 Promoted Events (steps 1 and 2), got %d", n)
	}
	for i := 1; i <= 3; i++ {
		if n := robCountReason(counts, fmt.Sprintf("StepUpgrading: Step %d/3", i)); n != 1 {
			t.Errorf("want one StepUpgrading Event for step %d, got %d", i, n)
		}
	}
	robCheckNoScaleFight(t, c, ns, name, scaleBefore)
	t.Logf("whole test took %s", time.Since(began).Round(100*time.Millisecond))
}

// robWaitLeading waits until the Lease has a holder and the replica whose log is at path
// (from offset) started its workers; it returns the holder.
func robWaitLeading(t testing.TB, c *framework.Cluster, lease, replica, path string, offset int64, timeout time.Duration) string {
	t.Helper()
	robWaitLog(t, path, offset, timeout, replica+" starts its controller workers", `"Starting rollout controller workers"`)
	h, _, err := robLeaseHolder(context.Background(), c, lease)
	if err != nil || h == "" {
		t.Fatalf("Lease %s: holder %q, %v", lease, h, err)
	}
	return h
}

// robWaitLog waits until the log at path, from offset, has a line with all of words.
func robWaitLog(t testing.TB, path string, offset int64, timeout time.Duration, what string, words ...string) {
	t.Helper()
	framework.Eventually(t, timeout, 100*time.Millisecond, what+" (log "+path+")", func(context.Context) (bool, string) {
		text := robLogSince(path, offset)
		if len(robGrep(text, words...)) > 0 {
			return true, ""
		}
		lines := strings.Split(strings.TrimSpace(text), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		return false, "no line with " + strings.Join(words, " and ") + "; log tail:\n" + strings.Join(lines, "\n")
	})
}
