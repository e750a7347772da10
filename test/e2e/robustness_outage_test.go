package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestRobustnessUnreferencedWorkloadDuringOutage: while rollout-apiserver is down, a
// Deployment that no Rollout references updates and rolls out fully as usual, because the
// webhook's objectSelector only sends workloads the controller labelled. A referenced
// Deployment in the same namespace is refused meanwhile (failurePolicy Fail: no release
// slips past its Rollout), which shows the webhook is in force; after the restart its
// update goes through and is held again.
func TestRobustnessUnreferencedWorkloadDuringOutage(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()

	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs("rob-outage-" + rand.String(5))})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() }) // see TestRobustnessGracefulStopWithOpenWatch
	ns := c.NewNamespace(t)
	rc := robRolloutClient(t, s.RESTConfig())
	robCleanupRollouts(t, rc, ns)

	const v1, v2 = "fake-image:v1", "fake-image:v2"
	for _, d := range []struct {
		name     string
		replicas int32
	}{{"plain", 4}, {"held", 2}} {
		if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, robDeployment(ns, d.name, d.replicas, v1), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Deployment %s: %v", d.name, err)
		}
	}
	if _, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, robRollout(ns, "held", "held", robStep("50%", nil), robStep("100%", nil)), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, "plain", v1, 4, 60*time.Second)
	robWaitDeploymentReady(t, c, ns, "held", v1, 2, 60*time.Second)
	robWaitControlled(t, c, ns, "held", 30*time.Second)
	plain, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment plain: %v", err)
	}
	if _, ok := plain.Labels[v1beta1.WorkloadControlLabel]; ok {
		t.Fatalf("the controller labelled Deployment plain, which no Rollout references: %v", plain.Labels)
	}

	if err := s.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	down := time.Now()
	if _, err := robSetImage(ctx, c, ns, "plain", v2); err != nil {
		t.Fatalf("updating Deployment plain (no Rollout) failed while rollout-apiserver is down: %v", err)
	}
	robWaitDeploymentReady(t, c, ns, "plain", v2, 4, 60*time.Second)
	plain, err = c.Client.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Deployment plain: %v", err)
	}
	if plain.Spec.Paused || plain.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation] != "" {
		t.Errorf("Deployment plain was held: paused=%v annotations=%v", plain.Spec.Paused, plain.Annotations)
	}
	t.Logf("Deployment plain rolled out fully to %s in %s with rollout-apiserver down", v2, time.Since(down).Round(10*time.Millisecond))

	_, err = robSetImage(ctx, c, ns, "held", v2)
	if err == nil {
		t.Errorf("updating Deployment held (referenced by a Rollout) succeeded while the webhook was down; failurePolicy Fail should refuse it")
	} else if !strings.Contains(err.Error(), "workloads.rollout.kruise.io") {
		t.Errorf("updating Deployment held failed, but not on the webhook: %v", err)
	} else {
		t.Logf("Deployment held refused while down, as it should be: %v", err)
	}

	if err := s.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The webhook serves once the server is ready; the aggregator needs no part in it.
	framework.Eventually(t, 30*time.Second, 200*time.Millisecond, "Deployment held updated and held by the webhook after the restart",
		func(ctx context.Context) (bool, string) {
			d, err := robSetImage(ctx, c, ns, "held", v2)
			if err != nil {
				return false, err.Error()
			}
			return d.Spec.Paused && d.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation] != "", "not held"
		})
	robWaitRollout(t, rc, ns, "held", 60*time.Second, "step 1 StepPaused", s, robAt(1, v1beta1.CanaryStepStatePaused))
	t.Logf("whole test took %s", time.Since(began).Round(100*time.Millisecond))
}

// TestRobustnessGracefulStopWithOpenWatch: SIGTERM must stop rollout-apiserver promptly
// even while a client watches Rollouts through the aggregator (kubectl get -w, or
// kube-controller-manager's garbage collector and quota informers, which watch every
// served resource). A stop that hangs until the kubelet's SIGKILL leaves the embedded
// etcd uncleanly closed and slows every rolling update of the server.
func TestRobustnessGracefulStopWithOpenWatch(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs("rob-stop-" + rand.String(5))})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	ns := c.NewNamespace(t)
	rcAgg := robRolloutClient(t, c.Config)
	w, err := rcAgg.RolloutV1beta1().Rollouts(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch Rollouts through the aggregator: %v", err)
	}
	defer w.Stop()

	const limit = 15 * time.Second
	pid := s.Pid()
	exited := s.Exited()
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM pid %d: %v", pid, err)
	}
	select {
	case <-exited:
		t.Logf("rollout-apiserver (pid %d) exited %s after SIGTERM with a watch open", pid, time.Since(start).Round(10*time.Millisecond))
	case <-time.After(limit):
		tail := s.LogTail(12)
		_ = s.Kill()
		t.Errorf("rollout-apiserver (pid %d) still running %s after SIGTERM while a client watched Rollouts through the aggregator; killed it. Last log lines:\n%s", pid, limit, tail)
	}
}

// TestRobustnessReadyMeansAuthenticated: once rollout-apiserver answers /readyz, it must
// authenticate client certificates (the admin's, and the aggregator's front-proxy
// certificate) — a Service or a load balancer sends traffic as soon as /readyz is ok, and
// a request treated as system:anonymous fails with 403 Forbidden. The client CA comes from
// kube-system/extension-apiserver-authentication; readiness has to wait for it.
func TestRobustnessReadyMeansAuthenticated(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs("rob-ready-" + rand.String(5))})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	ns := c.NewNamespace(t)
	hc, err := rest.HTTPClientFor(s.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, string(body)
	}
	list := "/apis/rollout.kruise.io/v1beta1/namespaces/" + ns + "/rollouts"

	const restarts = 3
	var failures []string
	for i := 1; i <= restarts; i++ {
		if err := s.Kill(); err != nil {
			t.Fatalf("kill -9: %v", err)
		}
		started := make(chan error, 1)
		go func() { started <- s.Start(ctx) }()
		// The moment /readyz is ok (as a kubelet probe would see it), an authenticated request.
		var ready time.Time
		for deadline := time.Now().Add(60 * time.Second); ready.IsZero(); time.Sleep(10 * time.Millisecond) {
			if code, _ := get("/readyz"); code == http.StatusOK {
				ready = time.Now()
			} else if time.Now().After(deadline) {
				t.Fatalf("restart %d: /readyz not ok after 60s; log tail:\n%s", i, s.LogTail(20))
			}
		}
		code, body := get(list)
		firstCode := code
		if code != http.StatusOK {
			// How long until it is authenticated.
			for code != http.StatusOK && time.Since(ready) < 10*time.Second {
				time.Sleep(5 * time.Millisecond)
				code, _ = get(list)
			}
			var st metav1.Status
			if json.Unmarshal([]byte(body), &st) == nil && st.Message != "" {
				body = st.Message
			}
			failures = append(failures, fmt.Sprintf("restart %d: right after /readyz was ok, GET of the namespace's Rollouts answered %d %q; authenticated %s after ready",
				i, firstCode, strings.TrimSpace(body), time.Since(ready).Round(time.Millisecond)))
		}
		if err := <-started; err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
	if len(failures) > 0 {
		t.Errorf("rollout-apiserver reports ready before it authenticates client certificates (requests are served as system:anonymous):\n  %s",
			strings.Join(failures, "\n  "))
	}
}
