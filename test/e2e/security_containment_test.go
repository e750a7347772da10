package e2e

// Failure containment and the paths around authorization (issue 10): an action is an
// UPDATE that admission policies see; one Rollout per workload holds across replicas; a
// stopping server keeps serving for its shutdown delay.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestSecurityPauseGoesThroughAdmissionPolicy: a pause is an UPDATE of the Rollout that
// sets spec.strategy.paused, and the cluster's ValidatingAdmissionPolicies see it like any
// other write. A policy that freezes pausing in one namespace turns POST .../pause there
// into the policy's 422 with its message, and leaves the Rollout unpaused; in another
// namespace the same pause goes through.
func TestSecurityPauseGoesThroughAdmissionPolicy(t *testing.T) {
	e := newSurfaceEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	frozen, open := e.namespace(), e.namespace()
	rc := robRolloutClient(t, e.c.Config) // through the aggregator, as the admin
	for _, ns := range []string{frozen, open} {
		_, err := rc.RolloutV1beta1().Rollouts(ns).Create(ctx, robRollout(ns, "web", "web", robStep("50%", nil), robStep("100%", nil)), metav1.CreateOptions{})
		require.NoError(t, err, "create Rollout in %s", ns)
		robCleanupRollouts(t, rc, ns)
	}

	const message = "pausing Rollouts is frozen in this namespace"
	freezePausing(ctx, t, e.c, frozen, message)

	// The server's policy informer picks the policy up within moments; until then a pause
	// goes through and is undone, so every probe starts from an unpaused Rollout.
	var denied error
	framework.Eventually(t, 30*time.Second, 500*time.Millisecond, "the policy to deny a pause in "+frozen, func(ctx context.Context) (bool, string) {
		_, err := rc.RolloutV1beta1().Rollouts(frozen).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
		if err == nil {
			_, rerr := rc.RolloutV1beta1().Rollouts(frozen).Resume(ctx, "web", &v1beta1.RolloutResume{}, metav1.CreateOptions{})
			return false, fmt.Sprintf("the pause went through (policy not seen yet); resume: %v", rerr)
		}
		denied = err
		return true, ""
	})
	t.Logf("POST rollouts/web/pause in %s: %v", frozen, denied)
	assert.True(t, apierrors.IsInvalid(denied), "want the policy's 422, got %v", denied)
	assert.Contains(t, denied.Error(), message)
	assert.Contains(t, denied.Error(), "freeze-pausing-"+frozen, "the message names the policy")
	ro, err := rc.RolloutV1beta1().Rollouts(frozen).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.False(t, ro.Spec.Strategy.Paused, "a denied pause changes nothing")

	paused, err := rc.RolloutV1beta1().Rollouts(open).Pause(ctx, "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err, "outside the policy's namespace a pause goes through")
	assert.True(t, paused.Spec.Strategy.Paused)
}

// freezePausing creates a ValidatingAdmissionPolicy and its binding that deny any write of
// a Rollout in namespace ns which leaves spec.strategy.paused true; removed when t ends.
func freezePausing(ctx context.Context, t *testing.T, c *framework.Cluster, ns, message string) {
	t.Helper()
	name := "freeze-pausing-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{
						APIGroups: []string{"rollout.kruise.io"}, APIVersions: []string{"*"}, Resources: []string{"rollouts"},
					},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!(has(object.spec.strategy.paused) && object.spec.strategy.paused)",
				Message:    message,
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	policies := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	_, err := policies.Create(ctx, policy, metav1.CreateOptions{})
	require.NoError(t, err, "create ValidatingAdmissionPolicy %s", name)
	t.Cleanup(func() { _ = policies.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	_, err = bindings.Create(ctx, binding, metav1.CreateOptions{})
	require.NoError(t, err, "create ValidatingAdmissionPolicyBinding %s", name)
	t.Cleanup(func() { _ = bindings.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// TestRobustnessClaimRaceAcrossReplicas: two replicas of rollout-apiserver on one
// external etcd, as the shipped install runs them. 50 clients create 50 different
// Rollouts for the same Deployment at once, half on replica A and half on replica B.
// Exactly one create wins; the 49 others get 422 on spec.workloadRef.name naming the
// Rollout that has (or is taking) the workload. Both replicas then serve that one Rollout.
// Five rounds, one workload each, so a lucky interleaving cannot pass it.
func TestRobustnessClaimRaceAcrossReplicas(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	etcd, err := c.StartExternalEtcd(ctx, "etcd-claim-race")
	require.NoError(t, err, "external etcd")
	t.Cleanup(func() { _ = etcd.Stop() })
	args := append(robLeaseArgs("claim-race-"+rand.String(5)), "--etcd-servers="+etcd.URL)
	a, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: args})
	require.NoError(t, err, "start replica A (registered)")
	t.Cleanup(func() { _ = a.Kill() })
	b, err := c.StartCandidate(ctx, a, "rollout-apiserver-claims-b")
	require.NoError(t, err, "start replica B")
	t.Cleanup(func() { _ = b.Kill() })

	ns := c.NewNamespace(t)
	// Straight to each replica (the aggregator would give B a head start) and with no
	// client-side rate limit: the creates must reach both replicas at the same moment.
	unthrottled := func(cfg *rest.Config) versioned.Interface {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
		return robRolloutClient(t, cfg)
	}
	replicas := []versioned.Interface{unthrottled(a.RESTConfig()), unthrottled(b.RESTConfig())}
	robCleanupRollouts(t, replicas[0], ns)
	for _, rc := range replicas {
		robWaitAuthenticated(t, rc, ns)
	}
	for round := range 5 {
		claimRace(ctx, t, replicas, ns, fmt.Sprintf("web-%d", round))
	}
}

// claimRace sends 50 creates of Rollouts for workload, alternately to each replica, all at
// once, and checks that exactly one won and both replicas serve only the winner.
func claimRace(ctx context.Context, t *testing.T, replicas []versioned.Interface, ns, workload string) {
	t.Helper()
	const creates = 50
	name := func(i int) string { return fmt.Sprintf("%s-%02d", workload, i) }
	replica := func(i int) string { return "AB"[i%2 : i%2+1] }
	errs := make([]error, creates)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ro := robRollout(ns, name(i), workload, robStep("50%", nil), robStep("100%", nil))
			<-start
			_, errs[i] = replicas[i%2].RolloutV1beta1().Rollouts(ns).Create(ctx, ro, metav1.CreateOptions{})
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)

	var winners []string
	refusals := map[string]int{}
	for i, err := range errs {
		if err == nil {
			winners = append(winners, name(i)+" on "+replica(i))
			continue
		}
		require.True(t, apierrors.IsInvalid(err), "%s (replica %s): want 422, got %v", name(i), replica(i), err)
		msg := err.Error()
		switch {
		case strings.Contains(msg, "is already released by Rollout"):
			refusals["already released"]++
		case strings.Contains(msg, "is being claimed by Rollout"):
			refusals["being claimed"]++
		default:
			t.Errorf("%s: the refusal does not name the holder: %s", name(i), msg)
		}
	}
	t.Logf("%s: %d creates across 2 replicas answered in %s; won: %v; refusals: %v", workload, creates, took.Round(time.Millisecond), winners, refusals)
	require.Len(t, winners, 1, "%s: exactly one create wins", workload)
	for r, rc := range replicas {
		list, err := rc.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.workloadRef.name=" + workload})
		require.NoError(t, err)
		require.Len(t, list.Items, 1, "replica %s serves one Rollout of %s", "AB"[r:r+1], workload)
	}
}

// TestRobustnessShutdownDelayServesWatchHeavyLoad: with --shutdown-delay-duration=3s a
// SIGTERM does not interrupt anyone for those 3 seconds: 20 watches stay open, and GETs and
// LISTs sent the whole time, through the aggregator and straight to the server, all
// succeed (no 5xx, no refused connection), while /readyz already says the server is
// going (so load balancers move away). Then the server exits cleanly.
func TestRobustnessShutdownDelayServesWatchHeavyLoad(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const delay = 3 * time.Second
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: append(robLeaseArgs("shutdown-delay-"+rand.String(5)),
		fmt.Sprintf("--shutdown-delay-duration=%s", delay))})
	require.NoError(t, err, "start rollout-apiserver")
	t.Cleanup(func() { _ = s.Kill() })
	ns := c.NewNamespace(t)
	clients := map[string]versioned.Interface{"aggregator": robRolloutClient(t, c.Config), "direct": robRolloutClient(t, s.RESTConfig())}
	robWaitAuthenticated(t, clients["direct"], ns)
	for i := range 5 {
		_, err := clients["aggregator"].RolloutV1beta1().Rollouts(ns).Create(ctx,
			robRollout(ns, fmt.Sprintf("web-%d", i), fmt.Sprintf("web-%d", i), robStep("100%", nil)), metav1.CreateOptions{})
		require.NoError(t, err)
	}

	load := newShutdownLoad()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for path, rc := range clients {
		for i := range 10 {
			load.watch(loadCtx, t, fmt.Sprintf("%s watch %d", path, i), rc, ns)
		}
		for i := range 2 {
			load.read(loadCtx, fmt.Sprintf("%s reader %d", path, i), rc, ns)
		}
	}
	time.Sleep(time.Second) // load running before the signal

	pid, exited := s.Pid(), s.Exited()
	sigterm := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM), "SIGTERM pid %d", pid)
	// /readyz fails at once during the delay.
	readyz := ""
	framework.Eventually(t, delay, 50*time.Millisecond, "/readyz to fail after SIGTERM", func(ctx context.Context) (bool, string) {
		hc, err := rest.HTTPClientFor(s.RESTConfig())
		if err != nil {
			return false, err.Error()
		}
		resp, err := hc.Get(s.URL + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		readyz = resp.Status
		return resp.StatusCode >= 500, resp.Status
	})
	t.Logf("/readyz %s after %s", readyz, time.Since(sigterm).Round(time.Millisecond))
	window := delay - 500*time.Millisecond // leave the edge of the window to the listener's close
	time.Sleep(time.Until(sigterm.Add(window)))
	stopLoad()
	load.wait()

	ok, failures, watchEnds := load.during(sigterm, sigterm.Add(window))
	t.Logf("in the %s after SIGTERM: %d requests succeeded, %d failed; %d of 20 watches ended", window, ok, len(failures), len(watchEnds))
	assert.GreaterOrEqual(t, ok, 50, "too few requests in the window for the test to mean anything")
	assert.Empty(t, failures, "requests failed during the shutdown delay")
	assert.Empty(t, watchEnds, "watches ended during the shutdown delay")

	select {
	case <-exited:
		t.Logf("rollout-apiserver exited %s after SIGTERM", time.Since(sigterm).Round(10*time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Errorf("rollout-apiserver still running 30s after SIGTERM; last log lines:\n%s", s.LogTail(12))
	}
	assert.NotContains(t, s.LogTail(40), "Fatal error", "a clean stop")
}

// shutdownLoad records what clients saw while a server shut down.
type shutdownLoad struct {
	wg sync.WaitGroup
	mu sync.Mutex
	// requests: when each request was sent and its error (nil: answered 2xx).
	requests []shutdownRequest
	// watchEnds: when a watch ended or reported an error, and why.
	watchEnds []shutdownRequest
}

type shutdownRequest struct {
	who  string
	at   time.Time
	err  error
	what string
}

func newShutdownLoad() *shutdownLoad { return &shutdownLoad{} }

// read GETs and LISTs Rollouts in a loop until ctx ends.
func (l *shutdownLoad) read(ctx context.Context, who string, rc versioned.Interface, ns string) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			at := time.Now()
			var err error
			if i%2 == 0 {
				_, err = rc.RolloutV1beta1().Rollouts(ns).Get(ctx, "web-0", metav1.GetOptions{})
			} else {
				_, err = rc.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
			}
			if ctx.Err() != nil {
				return // cancelled by the test, not answered by the server
			}
			l.mu.Lock()
			l.requests = append(l.requests, shutdownRequest{who: who, at: at, err: err})
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// watch opens a watch of the namespace's Rollouts and records when it ends.
func (l *shutdownLoad) watch(ctx context.Context, t *testing.T, who string, rc versioned.Interface, ns string) {
	t.Helper()
	w, err := rc.RolloutV1beta1().Rollouts(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err, "%s: open", who)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, open := <-w.ResultChan():
				if ctx.Err() != nil {
					return
				}
				if !open || ev.Type == watch.Error {
					l.mu.Lock()
					l.watchEnds = append(l.watchEnds, shutdownRequest{who: who, at: time.Now(), what: fmt.Sprintf("open=%v event=%s %v", open, ev.Type, ev.Object)})
					l.mu.Unlock()
					return
				}
			}
		}
	}()
}

func (l *shutdownLoad) wait() { l.wg.Wait() }

// during returns how many requests sent in [from, to) succeeded, the failed ones, and the
// watches that ended in that span.
func (l *shutdownLoad) during(from, to time.Time) (ok int, failures, watchEnds []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in := func(at time.Time) bool { return !at.Before(from) && at.Before(to) }
	for _, r := range l.requests {
		if !in(r.at) {
			continue
		}
		if r.err == nil {
			ok++
			continue
		}
		failures = append(failures, fmt.Sprintf("%s at +%s: %v", r.who, r.at.Sub(from).Round(time.Millisecond), r.err))
	}
	for _, w := range l.watchEnds {
		if in(w.at) {
			watchEnds = append(watchEnds, fmt.Sprintf("%s at +%s: %s", w.who, w.at.Sub(from).Round(time.Millisecond), w.what))
		}
	}
	return ok, failures, watchEnds
}

// TestSecurityEmbeddedEtcdOnlyOnItsSocket: the embedded etcd of a running server has no
// authentication, so nothing but the server may reach it. The server process listens on
// exactly one TCP port, its own secure port (etcd listens on none, client or peer), and
// its etcd socket is a file of mode 0600 in a directory of mode 0700.
func TestSecurityEmbeddedEtcdOnlyOnItsSocket(t *testing.T) {
	e := newSurfaceEnv(t)
	pid := e.server.Pid()
	require.NotZero(t, pid)

	ports := listeningTCPPorts(t, pid)
	_, securePort, _ := strings.Cut(strings.TrimPrefix(e.server.URL, "https://"), ":")
	assert.Equal(t, []string{securePort}, ports, "TCP ports rollout-apiserver (pid %d) listens on", pid)

	sockets := listeningUnixSockets(t, pid)
	var etcdSocket string
	for _, path := range sockets {
		if strings.HasSuffix(path, "/etcd.sock") {
			etcdSocket = path
		}
	}
	require.NotEmpty(t, etcdSocket, "no etcd.sock among the server's unix sockets %v", sockets)
	info, err := os.Stat(etcdSocket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode of %s", etcdSocket)
	dir, err := os.Stat(filepath.Dir(etcdSocket))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm(), "mode of %s", filepath.Dir(etcdSocket))
	t.Logf("pid %d listens on TCP %v only; etcd on %s (%s)", pid, ports, etcdSocket, info.Mode().Perm())
}

// socketInodes are the inodes of the sockets process pid has open.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	return out
}

// listeningTCPPorts lists the TCP ports process pid listens on (state 0A in
// /proc/PID/net/tcp and tcp6), sorted.
func listeningTCPPorts(t *testing.T, pid int) []string {
	t.Helper()
	mine := socketInodes(t, pid)
	seen := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && mine[f[9]] {
				_, hexPort, _ := strings.Cut(f[1], ":")
				port, err := strconv.ParseUint(hexPort, 16, 16)
				require.NoError(t, err)
				seen[strconv.FormatUint(port, 10)] = true
			}
		}
	}
	ports := slices.Collect(maps.Keys(seen))
	slices.Sort(ports)
	return ports
}

// listeningUnixSockets lists the paths of the unix sockets process pid listens on.
func listeningUnixSockets(t *testing.T, pid int) []string {
	t.Helper()
	mine := socketInodes(t, pid)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	require.NoError(t, err)
	var paths []string
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening.
		f := strings.Fields(line)
		if len(f) > 7 && f[3] == "00010000" && mine[f[6]] {
			paths = append(paths, f[7])
		}
	}
	return paths
}

// TestRobustnessSecondReplicaOnEmbeddedEtcdRefusesToRun: an embedded etcd serves one
// replica only. A second replica started with its own embedded etcd on the same Lease
// would serve a diverging copy of every Rollout; it finds the leader names another etcd,
// stops within a lease duration or so, and exits non-zero saying why. The first replica
// keeps leading and serving.
func TestRobustnessSecondReplicaOnEmbeddedEtcdRefusesToRun(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lease := "embedded-two-" + rand.String(5)
	aLog := filepath.Join(c.RunDir, "logs", "rollout-apiserver.log")
	aFrom := robLogSize(aLog)
	a, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: robLeaseArgs(lease)})
	require.NoError(t, err, "start replica A on its embedded etcd")
	t.Cleanup(func() { _ = a.Kill() })
	leader := robWaitLeading(t, c, lease, "A", aLog, aFrom, robLeaseDuration+10*time.Second)
	require.Contains(t, leader, "_embedded-etcd-", "the Lease names A's embedded etcd")

	bLog := filepath.Join(c.RunDir, "logs", "rollout-apiserver-embedded-b.log")
	bFrom := robLogSize(bLog)
	b, err := c.StartCandidate(ctx, a, "rollout-apiserver-embedded-b") // its own --etcd-data-dir
	require.NoError(t, err, "start replica B on an embedded etcd of its own")
	t.Cleanup(func() { _ = b.Kill() })
	started := time.Now()
	select {
	case <-b.Exited():
		t.Logf("replica B exited %s after it was ready", time.Since(started).Round(100*time.Millisecond))
	case <-time.After(robLeaseDuration + 20*time.Second):
		t.Fatalf("replica B still runs beside A with an etcd of its own; log tail:\n%s", b.LogTail(15))
	}
	assert.Error(t, b.ExitErr(), "replica B exits non-zero")
	robWaitLog(t, b.LogPath(), bFrom, 5*time.Second, "B says why it stopped", "another replica stores Rollouts in another etcd", "--etcd-servers")

	h, _, err := robLeaseHolder(ctx, c, lease)
	require.NoError(t, err)
	assert.Equal(t, leader, h, "A still leads")
	_, err = robRolloutClient(t, c.Config).RolloutV1beta1().Rollouts("default").List(ctx, metav1.ListOptions{Limit: 1})
	assert.NoError(t, err, "A still serves")
}
