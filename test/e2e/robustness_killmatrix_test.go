package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// killMatrixKills is how many times TestRobustnessKillMatrix kills the server in one run.
const killMatrixKills = 20

// killMatrixStates are the step states the matrix aims its kills at, in turn.
var killMatrixStates = []v1beta1.CanaryStepState{
	v1beta1.CanaryStepStateInit,
	v1beta1.CanaryStepStateUpgrade,
	v1beta1.CanaryStepStateTrafficRouting,
	v1beta1.CanaryStepStateMetricsAnalysis,
	v1beta1.CanaryStepStatePaused,
	v1beta1.CanaryStepStateReady,
	v1beta1.CanaryStepStateCompleted,
}

// TestRobustnessKillMatrix kills rollout-apiserver with SIGKILL 20 times in one run,
// aiming each kill at the next step state in turn (BeforeStepUpgrade, StepUpgrade,
// StepTrafficRouting, StepMetricsAnalysis, StepPaused, StepReady, Completed) of releases of
// a 10-replica Deployment (steps 20% wait-for-promote → 50% pause 2s → 100%), restarting
// it in place each time; a release that ends is followed by the next image. A state the
// release passes through within one reconcile (the traffic and metric states have no
// provider yet) may not be visible to the test: the kill then lands where the release is
// when the wait for it ends, and the figures say where every kill landed.
//
// Invariants, as in TestRobustnessKillAtEveryStepState: every release's status history is
// strictly increasing and shows every step; a pod watcher never sees more live pods than
// replicas + maxSurge (10 + 25%) nor more than replicas unavailable; at each wait-for-promote
// step the pods are exactly the step's batch; every release ends Healthy with Succeeded and
// the Deployment handed back; kube-controller-manager never scaled the held Deployment.
func TestRobustnessKillMatrix(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	began := time.Now()

	s, ns, rc := robKillableServer(ctx, t, c, "rob-matrix-"+rand.String(5))

	const name, replicas = "web", int32(10)
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, robDeployment(ns, name, replicas, "fake-image:v0"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, name, "fake-image:v0", replicas, 90*time.Second)
	steps := []v1beta1.CanaryStep{robStep("20%", nil), robStep("50%", robSeconds(2)), robStep("100%", nil)}
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, robRollout(ns, name, name, steps...), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	robWaitRollout(t, rc, ns, name, 60*time.Second, "phase Healthy before the first release", s,
		func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	robWaitControlled(t, c, ns, name, 60*time.Second)
	pods := killMatrixWatchPods(t, c, ns, name)
	scaleBefore := robScaleEvents(t, c, ns, name)

	var (
		landed   = map[string]int{} // where the kills landed, "aimed -> landed"
		restarts []time.Duration
		release  int
		image    string
		hist     *robHistory
		kills    int
	)
	startRelease := func() {
		t.Helper()
		release++
		image = fmt.Sprintf("fake-image:v%d", release)
		if _, err := robSetImage(ctx, c, ns, name, image); err != nil {
			t.Fatalf("release %d: update the Deployment's image: %v", release, err)
		}
		// Step 1 waits for promote, so the release cannot end before this sees it begin;
		// its history starts here, apart from the last release's.
		robWaitRollout(t, rc, ns, name, 60*time.Second, fmt.Sprintf("release %d Progressing", release), s,
			func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseProgressing })
		hist = robWatchHistory(t, s.RESTConfig(), ns, name)
	}
	finishRelease := func() {
		t.Helper()
		robWaitRollout(t, rc, ns, name, 3*time.Minute, fmt.Sprintf("release %d Healthy with Succeeded=True", release), s, robSucceeded)
		robWaitDeploymentReady(t, c, ns, name, image, replicas, 90*time.Second)
		hist.check(t, int32(len(steps)))
		t.Logf("release %d (%s) done; status history: %s", release, image, hist)
	}
	// advance promotes a release that waits for it, so the next kill has somewhere to go.
	advance := func(ro *v1beta1.Rollout) {
		t.Helper()
		cs := ro.Status.CanaryStatus
		// Step 1 is the one that waits for promote.
		if cs == nil || cs.CurrentStepIndex != 1 || cs.CurrentStepState != v1beta1.CanaryStepStatePaused || ro.Status.PendingAction != nil {
			return
		}
		// The batch of a wait-for-promote step: exactly its pods, old and new.
		want := int32(2) // 20% of 10
		robExpectPods(t, c, ns, name, image, want, replicas-want, 60*time.Second)
		if _, err := rc.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("promote release %d at step %d: %v", release, cs.CurrentStepIndex, err)
		}
	}

	startRelease()
	for kills < killMatrixKills {
		aim := killMatrixStates[kills%len(killMatrixStates)]
		var at *v1beta1.Rollout
		deadline := time.Now().Add(20 * time.Second)
		for {
			ro, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("waiting to kill at %s: %v", aim, err)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if robSucceeded(ro) {
				// This release is over: check it and start the next.
				// The deadline runs on: a state that no release shows
				// (BeforeStepUpgrade is recorded together with StepUpgrade)
				// must not keep this loop releasing for ever.
				finishRelease()
				startRelease()
				continue
			}
			if cs := ro.Status.CanaryStatus; cs != nil && ro.Status.Phase == v1beta1.RolloutPhaseProgressing {
				if cs.CurrentStepState == aim || time.Now().After(deadline) {
					at = ro
					break
				}
				advance(ro)
			}
			time.Sleep(20 * time.Millisecond)
		}
		pid := s.Pid()
		if err := s.Kill(); err != nil {
			t.Fatalf("kill %d: %v", kills+1, err)
		}
		kills++
		where := fmt.Sprintf("%s -> %s", aim, at.Status.CanaryStatus.CurrentStepState)
		landed[where]++
		t.Logf("kill -9 #%d (pid %d), aimed at %s: %s", kills, pid, aim, robDescribe(at))
		start := time.Now()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("restart after kill %d: %v", kills, err)
		}
		robWaitAuthenticated(t, rc, ns)
		restarts = append(restarts, time.Since(start))
	}
	// Let the release in flight end too, promoting as needed.
	for end := time.Now().Add(5 * time.Minute); ; {
		if time.Now().After(end) {
			t.Fatalf("the last release did not end within 5 minutes (history %s)", hist)
		}
		ro := robWaitRollout(t, rc, ns, name, 3*time.Minute, "the last release to move", s, func(*v1beta1.Rollout) bool { return true })
		if robSucceeded(ro) {
			break
		}
		advance(ro)
		time.Sleep(100 * time.Millisecond)
	}
	finishRelease()
	robCheckNoScaleFight(t, c, ns, name, scaleBefore)
	pods.check(t, replicas, replicas+3 /* maxSurge 25% of 10, rounded up */, 3 /* maxUnavailable 25%, rounded down, +1 for a pod being replaced */)

	// Figures for the closing note.
	var lines []string
	for k, n := range landed {
		lines = append(lines, fmt.Sprintf("%-45s x%d", k, n))
	}
	sort.Strings(lines)
	sort.Slice(restarts, func(i, j int) bool { return restarts[i] < restarts[j] })
	t.Logf("kill matrix: %d kills over %d releases in %s; restart to ready p50 %s, max %s; pods: max live %d, min ready %d\n  aimed -> landed:\n  %s",
		kills, release, time.Since(began).Round(time.Second),
		restarts[len(restarts)/2].Round(10*time.Millisecond), restarts[len(restarts)-1].Round(10*time.Millisecond),
		pods.maxLive(), pods.minReady(), strings.Join(lines, "\n  "))
}

// killMatrixPods watches a Deployment's pods for the whole test and keeps the extremes:
// the most live pods and the fewest ready ones at any moment.
type killMatrixPods struct {
	mu             sync.Mutex
	live, ready    int
	maxL, minR     int
	samples        int
	worstLive      string
	worstReadiness string
}

func (p *killMatrixPods) maxLive() int  { p.mu.Lock(); defer p.mu.Unlock(); return p.maxL }
func (p *killMatrixPods) minReady() int { p.mu.Lock(); defer p.mu.Unlock(); return p.minR }

// check fails the test when the watcher saw more than maxLive live pods or fewer than
// replicas-maxUnavailable ready ones.
func (p *killMatrixPods) check(t *testing.T, replicas, maxLive, maxUnavailable int32) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.samples == 0 {
		t.Errorf("the pod watcher saw nothing")
		return
	}
	if p.maxL > int(maxLive) {
		t.Errorf("at one point %d live pods (more than replicas + maxSurge = %d): %s", p.maxL, maxLive, p.worstLive)
	}
	if p.minR < int(replicas-maxUnavailable) {
		t.Errorf("at one point only %d ready pods (fewer than replicas - maxUnavailable = %d): %s", p.minR, replicas-maxUnavailable, p.worstReadiness)
	}
}

// killMatrixWatchPods polls the pods of app=name every 100ms until the test ends (a poll,
// not a watch, so that it keeps going through anything the test does to the cluster).
func killMatrixWatchPods(t *testing.T, c *framework.Cluster, ns, name string) *killMatrixPods {
	p := &killMatrixPods{minR: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
			if err == nil {
				live, ready := 0, 0
				for i := range list.Items {
					pod := &list.Items[i]
					if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
						continue
					}
					live++
					if podReady(pod) {
						ready++
					}
				}
				p.mu.Lock()
				p.samples++
				if live > p.maxL {
					p.maxL, p.worstLive = live, fmt.Sprintf("%d live, %d ready at %s", live, ready, time.Now().Format("15:04:05.000"))
				}
				if ready < p.minR {
					p.minR, p.worstReadiness = ready, fmt.Sprintf("%d live, %d ready at %s", live, ready, time.Now().Format("15:04:05.000"))
				}
				p.mu.Unlock()
			}
			robSleep(ctx, 100*time.Millisecond)
		}
	}()
	return p
}
