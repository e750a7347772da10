// Command controller benchmarks the embedded release controller on a real local control
// plane (test/e2e/framework: etcd, kube-apiserver, kube-controller-manager, scheduler, kwok
// fake nodes) with rollout-apiserver registered:
//
//  1. plain: N Deployments without Rollouts, all updated at once; time until every one has
//     rolled out (the Deployment controller alone) — the baseline;
//  2. rollouts: N other Deployments, each with a Rollout of 3 steps and no pauses (pause
//     duration 0), all updated at once; time until every Rollout is Healthy with
//     Succeeded=True and every Deployment rolled out;
//  3. step latency: M Rollouts with a manual step; for each in turn, POST promote and time
//     until the new ReplicaSet's spec.replicas changes (seen by a watch);
//  4. traffic (-traffic T): T Deployments, each behind a Service and a Gateway API
//     HTTPRoute, with a Rollout whose first step sends 50% of the traffic; released in
//     waves of -traffic-wave; for each, the time from its new ReplicaSet having the step's pods available
//     to its HTTPRoute sending to the canary Service (both seen by watches);
//
// and rollout-apiserver's CPU seconds (/proc/PID/stat utime+stime) and memory (VmRSS,
// VmHWM) per phase. It prints a Markdown table.
//
//	go run ./test/e2e/bench/controller [-n 200] [-replicas 2] [-manual 40] [-idle 10000] [-traffic 100]
//
// It ends with the goals (total-time ratio, promote latency, webhook latency and refusals,
// idle memory) beside what the run measured, and the load average: the machine is shared.
//
// E2E_RUN_DIR=_output/x reuses (or starts and keeps) a control plane, as for the e2e tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	rolloutinformers "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/informers/externalversions"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/bench/internal/prom"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

type options struct {
	n, replicas, manual, parallel, nice int
	idle, traffic, trafficWave          int
	timeout                             time.Duration
	serverArgs                          string
	pprofDir                            string
	kcmArgs                             string
}

type bench struct {
	o      options
	c      *framework.Cluster
	s      *framework.Server
	kube   kubernetes.Interface
	ro     versioned.Interface // through the aggregator, as users reach it
	suffix string
	rows   []row
	notes  []string

	mu              sync.Mutex
	webhookFailures atomic.Int64 // Deployment updates refused because the webhook call failed
	webhookErrors   []string
	updateCalls     []time.Duration // round trips of the current phase's Deployment updates

	// figures for the goals table
	plainTotal, rolloutsTotal     time.Duration
	plainUpdateP99, webhookP99    time.Duration
	webhookCalls                  prom.Histogram // kube-apiserver's calls to our webhook in the rollouts phase
	promotePatchedP99             time.Duration
	routedP99                     time.Duration
	trafficMeasured               bool
	idleRSSBytes                  int64
	latencyMeasured, idleMeasured bool
}

// row is one line of the result table.
type row struct {
	phase, metric, value string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 200, "Deployments per phase (plain and with Rollouts; 0 skips both)")
	flag.IntVar(&o.traffic, "traffic", 0, "Rollouts that route through an HTTPRoute each, for the pods-ready → route-updated latency, e.g. 100 (0 skips)")
	flag.IntVar(&o.trafficWave, "traffic-wave", 1, "how many of the -traffic releases start together (1: the controller's reaction to one release; more: with a queue)")
	flag.IntVar(&o.replicas, "replicas", 2, "replicas of every Deployment")
	flag.IntVar(&o.manual, "manual", 40, "Rollouts with a manual step for the promote latency (0 skips)")
	flag.IntVar(&o.idle, "idle", 0, "idle Rollouts and their Deployments (0 replicas) to create at the end for the memory figure, e.g. 10000 (0 skips)")
	flag.IntVar(&o.parallel, "parallel", 16, "concurrent client requests when creating and updating")
	flag.DurationVar(&o.timeout, "timeout", 40*time.Minute, "overall limit")
	flag.StringVar(&o.serverArgs, "server-args", "", "extra rollout-apiserver flags, space separated")
	flag.StringVar(&o.kcmArgs, "kcm-args", "--kube-api-qps=100 --kube-api-burst=200",
		"extra kube-controller-manager flags; at client-go's 20 QPS a controller per kind, the Deployment and ReplicaSet controllers alone take ~10 min to roll 1,000 Deployments, so the plain baseline would measure their rate limiter (ignored with E2E_RUN_DIR)")
	flag.StringVar(&o.pprofDir, "pprof", "", "folder for rollout-apiserver profiles: CPU over the first 30 s of the rollouts phase, heap after it and after the idle phase (go tool pprof -top FILE)")
	flag.IntVar(&o.nice, "nice", 0, "nice value for the whole run (this process and everything it starts, or the reused control plane's processes), e.g. -10 on a machine other work keeps busy")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench-controller: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(o options) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if o.nice != 0 {
		// Children inherit the nice value of the thread that starts them.
		if err := renice(os.Getpid(), o.nice); err != nil {
			return fmt.Errorf("-nice %d: %w", o.nice, err)
		}
	}
	// hack/local-up.sh reads it; the framework starts local-up.sh with this process's environment.
	if err := os.Setenv("KCM_EXTRA_ARGS", o.kcmArgs); err != nil {
		return err
	}
	setupCtx, setupCancel := context.WithTimeout(ctx, 5*time.Minute)
	c, err := framework.Setup(setupCtx)
	setupCancel()
	if err != nil {
		if c != nil {
			_ = c.Teardown(true)
		}
		return fmt.Errorf("control plane: %w", err)
	}
	defer func() {
		if terr := c.Teardown(err != nil); terr != nil && err == nil {
			err = terr
		}
	}()
	// -v=2: client-go reports long client-side throttling waits at that level.
	args := []string{"--leader-elect-lease-name=bench-" + rand.String(5), "-v=2"}
	if o.serverArgs != "" {
		args = append(args, strings.Fields(o.serverArgs)...)
	}
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: args})
	if err != nil {
		return err
	}
	if o.nice != 0 {
		// A reused control plane (E2E_RUN_DIR) was not started by this process.
		pids, _ := filepath.Glob(filepath.Join(c.RunDir, "pids", "*.pid"))
		for _, f := range pids {
			if data, err := os.ReadFile(f); err == nil {
				if pid, err := strconv.Atoi(strings.Fields(string(data) + " x")[0]); err == nil {
					_ = renice(pid, o.nice)
				}
			}
		}
		_ = renice(s.Pid(), o.nice)
	}
	defer s.Kill() // a graceful stop can hang while the aggregator holds watches open

	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	b := &bench{o: o, c: c, s: s, suffix: rand.String(4)}
	if b.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if b.ro, err = versioned.NewForConfig(cfg); err != nil {
		return err
	}
	logf("rollout-apiserver pid %d; %d Deployments x %d replicas per phase; load average %s", s.Pid(), o.n, o.replicas, loadAvg())
	b.notes = append(b.notes, "load average (1/5/15 min) at the start: "+loadAvg())
	lostBefore := b.lostLeadership()
	logFrom := fileSize(s.LogPath())

	if o.n > 0 {
		if err := b.phasePlain(ctx); err != nil {
			return fmt.Errorf("phase plain: %w", err)
		}
		if err := b.phaseRollouts(ctx); err != nil {
			return fmt.Errorf("phase rollouts: %w", err)
		}
	}
	if o.traffic > 0 {
		if err := b.phaseTraffic(ctx); err != nil {
			return fmt.Errorf("phase traffic: %w", err)
		}
	}
	if o.manual > 0 {
		if err := b.phaseLatency(ctx); err != nil {
			return fmt.Errorf("phase step latency: %w", err)
		}
	}
	if o.idle > 0 {
		if err := b.phaseIdle(ctx); err != nil {
			return fmt.Errorf("phase idle: %w", err)
		}
	}
	if lost := b.lostLeadership() - lostBefore; lost > 0 {
		b.notes = append(b.notes, fmt.Sprintf("rollout-apiserver lost its leader Lease %d time(s) during the run (\"Stopped leading\" in %s)", lost, s.LogPath()))
	}
	if n, worst := throttled(s.LogPath(), logFrom); n > 0 {
		b.notes = append(b.notes, fmt.Sprintf("rollout-apiserver's clients waited over 1s for their client-side rate limiter: %d log lines (client-go logs at most one a second), the longest wait %s", n, worst))
	}
	b.notes = append(b.notes, "load average (1/5/15 min) at the end: "+loadAvg())
	b.report()
	return nil
}

// renice sets the nice value of every thread of process pid (Linux nice values are per
// thread; threads and processes created later inherit their creator's).
func renice(pid, nice int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("setpriority(%d, %d): %w", tid, nice, err)
		}
	}
	return nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// throttled counts client-go's "Waited before sending request" lines (reason client-side
// throttling; logged at -v=2 for waits over 1s) after offset and returns the longest wait.
func throttled(path string, offset int64) (int, string) {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return 0, ""
	}
	n, worst := 0, time.Duration(0)
	for _, line := range strings.Split(string(data[offset:]), "\n") {
		if !strings.Contains(line, "client-side throttling") {
			continue
		}
		n++
		if _, rest, ok := strings.Cut(line, `delay="`); ok {
			if v, _, ok := strings.Cut(rest, `"`); ok {
				if d, err := time.ParseDuration(v); err == nil && d > worst {
					worst = d
				}
			}
		}
	}
	return n, worst.String()
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}

// --- phases ---------------------------------------------------------------------------

func (b *bench) phasePlain(ctx context.Context) error {
	ns, err := b.namespace(ctx, "bench-plain")
	if err != nil {
		return err
	}
	names := b.names("plain", b.o.n)
	if err := b.createDeployments(ctx, ns, names); err != nil {
		return err
	}
	if _, err := b.waitDeployments(ctx, ns, names, "v1", time.Time{}); err != nil {
		return err
	}
	before := b.usage()
	start := time.Now()
	b.updateCalls = nil
	if err := b.updateImages(ctx, ns, names, "v2"); err != nil {
		return err
	}
	updated := time.Since(start)
	done, err := b.waitDeployments(ctx, ns, names, "v2", start)
	if err != nil {
		return err
	}
	total := time.Since(start)
	after := b.usage()
	b.plainTotal, b.plainUpdateP99 = total, pct(b.updateCalls, 99)
	b.add("plain", "Deployments updated at once", strconv.Itoa(len(names)))
	b.add("plain", "time to send the updates", dur(updated))
	b.add("plain", "Deployment update round trip p50 / p99 (no webhook)", fmt.Sprintf("%s / %s", ms(pct(b.updateCalls, 50)), ms(pct(b.updateCalls, 99))))
	b.add("plain", "time until all rolled out", dur(total))
	b.add("plain", "per Deployment, update → rolled out p50 / p99", fmt.Sprintf("%s / %s", dur(pct(done, 50)), dur(pct(done, 99))))
	b.add("plain", "rollout-apiserver CPU", fmt.Sprintf("%.1f s", after.cpu-before.cpu))
	b.add("plain", "controller work queue", queueRow(before, after))
	b.add("plain", "rollout-apiserver RSS after", mib(after.rss))
	logf("plain: %d Deployments rolled out in %s", len(names), dur(total))
	return nil
}

func (b *bench) phaseRollouts(ctx context.Context) error {
	ns, err := b.namespace(ctx, "bench-ro")
	if err != nil {
		return err
	}
	names := b.names("ro", b.o.n)
	if err := b.createDeployments(ctx, ns, names); err != nil {
		return err
	}
	zero := int32(0)
	steps := []v1beta1.CanaryStep{stepOf("34%", &zero), stepOf("67%", &zero), stepOf("100%", &zero)}
	if err := b.createRollouts(ctx, ns, names, steps); err != nil {
		return err
	}
	if _, err := b.waitDeployments(ctx, ns, names, "v1", time.Time{}); err != nil {
		return err
	}
	if err := b.waitControlled(ctx, ns, names); err != nil {
		return err
	}
	before := b.usage()
	start := time.Now()
	w, err := b.watchRollouts(ctx, ns, names)
	if err != nil {
		return err
	}
	defer w.stop()
	b.updateCalls = nil
	profiled := b.profile(ctx, "profile?seconds=30", "rollouts-cpu.pprof")
	callsBefore, err := b.webhookLatency(ctx)
	if err != nil {
		return err
	}
	handledBefore, err := b.webhookHandling(ctx)
	if err != nil {
		return err
	}
	if err := b.updateImages(ctx, ns, names, "v2"); err != nil {
		return err
	}
	updated := time.Since(start)
	b.webhookP99 = pct(b.updateCalls, 99)
	callsAfter, err := b.webhookLatency(ctx)
	if err != nil {
		return err
	}
	b.webhookCalls = callsAfter.Minus(callsBefore)
	handledAfter, err := b.webhookHandling(ctx)
	if err != nil {
		return err
	}
	handled := handledAfter.Minus(handledBefore)
	if len(b.webhookErrors) > 0 {
		b.notes = append(b.notes, "webhook failures, e.g.: "+b.webhookErrors[0])
	}
	if err := w.wait(ctx, start); err != nil {
		return err
	}
	healthy := time.Since(start)
	done, err := b.waitDeployments(ctx, ns, names, "v2", start)
	if err != nil {
		return err
	}
	total := time.Since(start)
	after := b.usage()
	<-profiled
	<-b.profile(ctx, "heap", "rollouts-heap.pprof")
	b.rolloutsTotal = total
	b.add("rollouts", "Deployments + Rollouts updated at once", fmt.Sprintf("%d (3 steps: 34%%, 67%%, 100%%, pause 0)", len(names)))
	b.add("rollouts", "time to send the updates (through the webhook)", dur(updated))
	b.add("rollouts", "updates refused by a failed webhook call (sent again)", strconv.FormatInt(b.webhookFailures.Load(), 10))
	b.add("rollouts", "Deployment update round trip p50 / p99 (through the webhook, under controller load)", fmt.Sprintf("%s / %s", ms(pct(b.updateCalls, 50)), ms(pct(b.updateCalls, 99))))
	b.add("rollouts", "webhook calls as kube-apiserver timed them: p50 / p99 (share ≤ 100 ms)", fmt.Sprintf("%.0f calls: %s / %s (%.1f%%)",
		b.webhookCalls.Count(), secMs(b.webhookCalls.Quantile(0.5)), secMs(b.webhookCalls.Quantile(0.99)), 100*b.webhookCalls.Within(0.1)))
	b.add("rollouts", "the same calls inside our webhook handler: p50 / p99 (share ≤ 10 ms)", fmt.Sprintf("%.0f calls: %s / %s (%.1f%%)",
		handled.Count(), secMs(handled.Quantile(0.5)), secMs(handled.Quantile(0.99)), 100*handled.Within(0.01)))
	b.add("rollouts", "time until all Rollouts Healthy + Succeeded", dur(healthy))
	b.add("rollouts", "time until all Deployments rolled out", dur(total))
	b.add("rollouts", "per Rollout, update → Succeeded p50 / p99", fmt.Sprintf("%s / %s", dur(pct(w.doneAt(start), 50)), dur(pct(w.doneAt(start), 99))))
	b.add("rollouts", "per Deployment, update → rolled out p50 / p99", fmt.Sprintf("%s / %s", dur(pct(done, 50)), dur(pct(done, 99))))
	b.add("rollouts", "Rollout status writes seen", strconv.FormatInt(w.updates.Load(), 10))
	b.add("rollouts", "rollout-apiserver CPU", fmt.Sprintf("%.1f s", after.cpu-before.cpu))
	b.add("rollouts", "controller work queue", queueRow(before, after))
	b.add("rollouts", "rollout-apiserver RSS after / peak", mib(after.rss)+" / "+mib(after.hwm))
	logf("rollouts: %d Rollouts Healthy in %s", len(names), dur(healthy))
	return nil
}

func (b *bench) phaseLatency(ctx context.Context) error {
	ns, err := b.namespace(ctx, "bench-step")
	if err != nil {
		return err
	}
	names := b.names("step", b.o.manual)
	if err := b.createDeployments(ctx, ns, names); err != nil {
		return err
	}
	// Step 1 waits for promote; the promote moves to step 2 (100%), which scales the new
	// ReplicaSet from 50% to 100% of the replicas.
	steps := []v1beta1.CanaryStep{stepOf("50%", nil), stepOf("100%", nil)}
	if err := b.createRollouts(ctx, ns, names, steps); err != nil {
		return err
	}
	if _, err := b.waitDeployments(ctx, ns, names, "v1", time.Time{}); err != nil {
		return err
	}
	if err := b.waitControlled(ctx, ns, names); err != nil {
		return err
	}
	if err := b.updateImages(ctx, ns, names, "v2"); err != nil {
		return err
	}
	if err := b.waitAllRollouts(ctx, ns, names, "step 1 StepPaused", func(ro *v1beta1.Rollout) bool {
		cs := ro.Status.CanaryStatus
		return cs != nil && cs.CurrentStepIndex == 1 && cs.CurrentStepState == v1beta1.CanaryStepStatePaused
	}); err != nil {
		return err
	}

	// Every ReplicaSet spec.replicas change in the namespace, as the watch sees it.
	type change struct {
		at       time.Time
		replicas int32
	}
	changes := make(chan struct {
		name string
		change
	}, 1024)
	w, err := b.kube.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	go func() {
		last := map[string]int32{}
		for ev := range w.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok || ev.Type != watch.Modified && ev.Type != watch.Added {
				continue
			}
			r := *rs.Spec.Replicas
			if prev, seen := last[rs.Name]; seen && prev != r {
				changes <- struct {
					name string
					change
				}{rs.Name, change{time.Now(), r}}
			}
			last[rs.Name] = r
		}
	}()
	time.Sleep(time.Second) // the watch's initial ADDED events

	var promote, patched []time.Duration
	before := b.usage()
	for _, name := range names {
		newRS, err := b.newReplicaSet(ctx, ns, name, "v2")
		if err != nil {
			return err
		}
		// drain what came before this promote
	drain:
		for {
			select {
			case <-changes:
			default:
				break drain
			}
		}
		start := time.Now()
		if _, err := b.ro.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("promote %s: %w", name, err)
		}
		promote = append(promote, time.Since(start))
		timeout := time.After(60 * time.Second)
	wait:
		for {
			select {
			case ch := <-changes:
				if ch.name == newRS && ch.replicas > int32(b.o.replicas)/2 {
					patched = append(patched, ch.at.Sub(start))
					break wait
				}
			case <-timeout:
				return fmt.Errorf("promote of %s: ReplicaSet %s not scaled within 60s", name, newRS)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	after := b.usage()
	b.promotePatchedP99, b.latencyMeasured = pct(patched, 99), true
	b.add("step latency", "promotes (one at a time)", strconv.Itoa(len(names)))
	b.add("step latency", "POST promote round trip p50 / p99", fmt.Sprintf("%s / %s", ms(pct(promote, 50)), ms(pct(promote, 99))))
	b.add("step latency", "promote sent → new ReplicaSet scaled p50 / p99", fmt.Sprintf("%s / %s", ms(pct(patched, 50)), ms(pct(patched, 99))))
	b.add("step latency", "rollout-apiserver CPU", fmt.Sprintf("%.1f s", after.cpu-before.cpu))
	b.add("step latency", "controller work queue", queueRow(before, after))
	b.add("step latency", "rollout-apiserver RSS after / peak", mib(after.rss)+" / "+mib(after.hwm))
	logf("step latency: p50 %s p99 %s", ms(pct(patched, 50)), ms(pct(patched, 99)))
	return nil
}

// --- objects ------------------------------------------------------------------------

func (b *bench) names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func (b *bench) namespace(ctx context.Context, base string) (string, error) {
	name := base + "-" + b.suffix
	if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := b.kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return name, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("namespace %s: no default ServiceAccount after 60s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("25%")
	grace := int64(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{Name: "app", Image: "fake-image:" + image}}},
			},
		},
	}
}

func stepOf(replicas string, pause *int32) v1beta1.CanaryStep {
	r := intstr.Parse(replicas)
	return v1beta1.CanaryStep{Replicas: &r, Pause: v1beta1.StepPause{Duration: pause}}
}

// each runs f for every name with b.o.parallel workers and returns the first error.
func (b *bench) each(names []string, f func(name string) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	work := make(chan string)
	for range b.o.parallel {
		wg.Go(func() {
			for name := range work {
				if err := f(name); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	return first
}

func (b *bench) createDeployments(ctx context.Context, ns string, names []string) error {
	start := time.Now()
	err := b.each(names, func(name string) error {
		_, err := b.kube.AppsV1().Deployments(ns).Create(ctx, deployment(name, int32(b.o.replicas), "v1"), metav1.CreateOptions{})
		return err
	})
	logf("%s: created %d Deployments in %s", ns, len(names), dur(time.Since(start)))
	return err
}

// createRollouts creates a Rollout of steps for each Deployment of names; mutate, when
// given, changes each before it is sent.
func (b *bench) createRollouts(ctx context.Context, ns string, names []string, steps []v1beta1.CanaryStep, mutate ...func(*v1beta1.Rollout)) error {
	start := time.Now()
	err := b.each(names, func(name string) error {
		ro := &v1beta1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1beta1.RolloutSpec{
				WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
				Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: steps}},
			},
		}
		for _, m := range mutate {
			m(ro)
		}
		_, err := b.ro.RolloutV1beta1().Rollouts(ns).Create(ctx, ro, metav1.CreateOptions{})
		return err
	})
	logf("%s: created %d Rollouts in %s", ns, len(names), dur(time.Since(start)))
	return err
}

// updateImages updates every Deployment's image. An update the workload webhook fails
// (it timed out, say) is counted and sent again, up to 5 times.
func (b *bench) updateImages(ctx context.Context, ns string, names []string, image string) error {
	return b.each(names, func(name string) error {
		for attempt := 1; ; attempt++ {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				d, err := b.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				d.Spec.Template.Spec.Containers[0].Image = "fake-image:" + image
				sent := time.Now()
				_, err = b.kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
				if err == nil {
					b.mu.Lock()
					b.updateCalls = append(b.updateCalls, time.Since(sent))
					b.mu.Unlock()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "failed calling webhook") || attempt == 5 {
				return err
			}
			b.webhookFailures.Add(1)
			b.mu.Lock()
			if len(b.webhookErrors) < 3 {
				b.webhookErrors = append(b.webhookErrors, err.Error())
			}
			b.mu.Unlock()
		}
	})
}

// waitDeployments waits until every Deployment runs image on all its replicas, all
// available and no old pods left, and returns, per Deployment, how long after since it got
// there (as an informer saw it).
func (b *bench) waitDeployments(ctx context.Context, ns string, names []string, image string, since time.Time) ([]time.Duration, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var mu sync.Mutex
	doneAt := map[string]time.Time{}
	check := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok || !want[d.Name] {
			return
		}
		st, r := d.Status, *d.Spec.Replicas
		if d.Spec.Template.Spec.Containers[0].Image == "fake-image:"+image && st.ObservedGeneration >= d.Generation &&
			st.UpdatedReplicas == r && st.Replicas == r && st.AvailableReplicas == r && !d.Spec.Paused {
			mu.Lock()
			if _, seen := doneAt[d.Name]; !seen {
				doneAt[d.Name] = time.Now()
			}
			mu.Unlock()
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(b.kube, 0, informers.WithNamespace(ns))
	inf := f.Apps().V1().Deployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: check, UpdateFunc: func(_, n any) { check(n) },
	}); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	start := time.Now()
	for {
		mu.Lock()
		n := len(doneAt)
		mu.Unlock()
		if n == len(names) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %d of %d Deployments rolled out to %s when the time ran out", ns, n, len(names), image)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Minute {
			return nil, fmt.Errorf("%s: %d of %d Deployments rolled out to %s after 30m", ns, n, len(names), image)
		}
	}
	var out []time.Duration
	for _, t := range doneAt {
		if !since.IsZero() {
			out = append(out, t.Sub(since))
		}
	}
	if since.IsZero() {
		logf("%s: %d Deployments ready (%s) in %s", ns, len(names), image, dur(time.Since(start)))
	}
	return out, nil
}

// waitControlled waits until the controller labelled every Deployment for the webhook.
func (b *bench) waitControlled(ctx context.Context, ns string, names []string) error {
	start := time.Now()
	for {
		list, err := b.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: v1beta1.WorkloadControlLabel + "=true"})
		if err == nil && len(list.Items) >= len(names) {
			logf("%s: %d Deployments labelled by the controller in %s", ns, len(names), dur(time.Since(start)))
			return nil
		}
		select {
		case <-ctx.Done():
			n := 0
			if list != nil {
				n = len(list.Items)
			}
			return fmt.Errorf("%s: %d of %d Deployments labelled %s", ns, n, len(names), v1beta1.WorkloadControlLabel)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (b *bench) waitAllRollouts(ctx context.Context, ns string, names []string, what string, cond func(*v1beta1.Rollout) bool) error {
	start := time.Now()
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	for {
		list, err := b.ro.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
		n := 0
		if err == nil {
			for i := range list.Items {
				if wanted[list.Items[i].Name] && cond(&list.Items[i]) {
					n++
				}
			}
			if n == len(names) {
				logf("%s: %d Rollouts at %s in %s", ns, n, what, dur(time.Since(start)))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d Rollouts at %s (last error %v)", ns, n, len(names), what, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (b *bench) newReplicaSet(ctx context.Context, ns, name, image string) (string, error) {
	list, err := b.kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		return "", err
	}
	for _, rs := range list.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == "fake-image:"+image {
			return rs.Name, nil
		}
	}
	return "", fmt.Errorf("no ReplicaSet of %s/%s runs %s", ns, name, image)
}

// rolloutWatch records when each Rollout first reached Healthy with Succeeded=True.
type rolloutWatch struct {
	names   map[string]bool
	mu      sync.Mutex
	done    map[string]time.Time
	updates atomic.Int64
	stopCh  chan struct{}
}

func (b *bench) watchRollouts(ctx context.Context, ns string, names []string) (*rolloutWatch, error) {
	w := &rolloutWatch{names: map[string]bool{}, done: map[string]time.Time{}, stopCh: make(chan struct{})}
	for _, n := range names {
		w.names[n] = true
	}
	check := func(obj any) {
		ro, ok := obj.(*v1beta1.Rollout)
		if !ok || !w.names[ro.Name] {
			return
		}
		w.updates.Add(1)
		if ro.Status.Phase != v1beta1.RolloutPhaseHealthy {
			return
		}
		for _, c := range ro.Status.Conditions {
			if c.Type == v1beta1.RolloutConditionSucceeded && c.Status == corev1.ConditionTrue {
				w.mu.Lock()
				if _, seen := w.done[ro.Name]; !seen {
					w.done[ro.Name] = time.Now()
				}
				w.mu.Unlock()
			}
		}
	}
	f := rolloutinformers.NewSharedInformerFactoryWithOptions(b.ro, 0, rolloutinformers.WithNamespace(ns))
	inf := f.Rollout().V1beta1().Rollouts().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, n any) { check(n) }}); err != nil {
		return nil, err
	}
	f.Start(w.stopCh)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("Rollout informer did not sync")
	}
	w.updates.Store(0)
	return w, nil
}

func (w *rolloutWatch) stop() { close(w.stopCh) }

func (w *rolloutWatch) wait(ctx context.Context, since time.Time) error {
	for {
		w.mu.Lock()
		n := len(w.done)
		w.mu.Unlock()
		if n == len(w.names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d Rollouts Healthy with Succeeded=True after %s", n, len(w.names), dur(time.Since(since)))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *rolloutWatch) doneAt(since time.Time) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for _, t := range w.done {
		out = append(out, t.Sub(since))
	}
	return out
}

// --- measurements -------------------------------------------------------------------

type usage struct {
	cpu      float64 // utime+stime, seconds
	rss, hwm int64   // bytes
	rssFile  int64   // bytes of rss backed by files (mapped etcd database, the binary)
	// The controller's work queue (rollout-apiserver's /metrics): items processed, and
	// the sums of their time waiting in the queue and being reconciled.
	reconciles          float64
	queueWait, workTime float64
}

// queueRow describes the controller's work queue between two usages.
func queueRow(before, after usage) string {
	n := after.reconciles - before.reconciles
	if n <= 0 {
		return "no reconciles"
	}
	return fmt.Sprintf("%.0f reconciles; mean wait in queue %.0f ms, mean reconcile %.0f ms",
		n, 1000*(after.queueWait-before.queueWait)/n, 1000*(after.workTime-before.workTime)/n)
}

// usage reads rollout-apiserver's CPU time and memory from /proc.
func (b *bench) usage() usage {
	var u usage
	pid := b.s.Pid()
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may hold spaces) in parentheses.
		s := string(data)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			// f[0] is field 3 (state): utime is field 14, stime field 15.
			if len(f) > 12 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				u.cpu = (ut + st) / clockTicks()
			}
		}
	}
	b.queueMetrics(&u)
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				u.rss = kb * 1024
			case "VmHWM:":
				u.hwm = kb * 1024
			case "RssFile:":
				u.rssFile = kb * 1024
			}
		}
	}
	return u
}

// profile saves rollout-apiserver's /debug/pprof/<what> into -pprof's folder as file, in
// the background; the channel closes when it is done (at once without -pprof). A failed
// profile is a note, not a failed run: the figures do not depend on it.
func (b *bench) profile(ctx context.Context, what, file string) <-chan struct{} {
	done := make(chan struct{})
	if b.o.pprofDir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		err := func() error {
			if err := os.MkdirAll(b.o.pprofDir, 0o755); err != nil {
				return err
			}
			hc, err := rest.HTTPClientFor(b.s.RESTConfig())
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.s.URL+"/debug/pprof/"+what, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
			}
			return os.WriteFile(filepath.Join(b.o.pprofDir, file), data, 0o644)
		}()
		b.mu.Lock()
		defer b.mu.Unlock()
		if err != nil {
			b.notes = append(b.notes, fmt.Sprintf("profile %s: %v", file, err))
			return
		}
		b.notes = append(b.notes, "profile saved: "+filepath.Join(b.o.pprofDir, file))
	}()
	return done
}

// queueMetrics reads the rollout-controller work queue's counters from /metrics.
func (b *bench) queueMetrics(u *usage) {
	fams, err := b.ourMetrics(context.Background())
	if err != nil {
		return
	}
	queue := map[string]string{"name": "rollout-controller"}
	work := fams.Histogram("workqueue_work_duration_seconds", queue)
	u.reconciles, u.workTime = work.Count(), work.Sum
	u.queueWait = fams.Histogram("workqueue_queue_duration_seconds", queue).Sum
}

var ticks float64

func clockTicks() float64 {
	if ticks == 0 {
		ticks = 100
		if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
				ticks = v
			}
		}
	}
	return ticks
}

// lostLeadership counts "Stopped leading" lines in the server's log.
func (b *bench) lostLeadership() int {
	data, _ := os.ReadFile(b.s.LogPath())
	return strings.Count(string(data), `"Stopped leading"`)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100 // nearest rank
	return s[min(max(i-1, 0), len(s)-1)]
}

func dur(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
func ms(d time.Duration) string  { return fmt.Sprintf("%d ms", d.Milliseconds()) }
func secMs(s float64) string     { return fmt.Sprintf("%.0f ms", s*1000) }
func mib(n int64) string         { return fmt.Sprintf("%d MiB", n>>20) }

// phaseIdle creates o.idle Deployments of 0 replicas, each with a Rollout, waits until
// the controller has labelled them all, and reads rollout-apiserver's memory: what a
// cluster with that many idle Rollouts costs.
func (b *bench) phaseIdle(ctx context.Context) error {
	ns, err := b.namespace(ctx, "bench-idle")
	if err != nil {
		return err
	}
	names := b.names("idle", b.o.idle)
	saved := b.o.replicas
	b.o.replicas = 0
	err = b.createDeployments(ctx, ns, names)
	b.o.replicas = saved
	if err != nil {
		return err
	}
	zero := int32(0)
	if err := b.createRollouts(ctx, ns, names, []v1beta1.CanaryStep{stepOf("50%", &zero), stepOf("100%", &zero)}); err != nil {
		return err
	}
	if err := b.waitControlled(ctx, ns, names); err != nil {
		return err
	}
	// Let the last status writes and Events settle before reading the memory.
	b.waitQueueIdle(ctx)
	u := b.usage()
	heap := "?"
	if fams, err := b.ourMetrics(ctx); err == nil {
		if v, ok := fams.Gauge("go_memstats_heap_inuse_bytes", nil); ok {
			heap = mib(int64(v))
		}
	}
	<-b.profile(ctx, "heap", "idle-heap.pprof")
	b.idleRSSBytes, b.idleMeasured = u.rss, true
	b.add("idle", "Rollouts + Deployments (0 replicas) created, all labelled", strconv.Itoa(len(names)))
	b.add("idle", "rollout-apiserver RSS / peak", mib(u.rss)+" / "+mib(u.hwm))
	b.add("idle", "… of it file-backed (embedded etcd's bbolt, the binary) / Go heap in use", mib(u.rssFile)+" / "+heap)
	logf("idle: %d Rollouts, RSS %s", len(names), mib(u.rss))
	return nil
}

// waitQueueIdle waits (at most a minute) until the controller's work queue has stayed empty
// for three seconds: the last status writes and Events of a phase are done.
func (b *bench) waitQueueIdle(ctx context.Context) {
	queue := map[string]string{"name": "rollout-controller"}
	empty := 0
	for deadline := time.Now().Add(time.Minute); empty < 3 && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		fams, err := b.ourMetrics(ctx)
		if err != nil {
			empty = 0
			continue
		}
		if depth, ok := fams.Gauge("workqueue_depth", queue); ok && depth == 0 {
			empty++
		} else {
			empty = 0
		}
	}
}

// goals prints the goals beside what this run measured.
func (b *bench) goals() {
	fmt.Println("\n| goal | measured | target | met |")
	fmt.Println("|---|---|---|---|")
	line := func(goal, measured, target string, met bool) {
		fmt.Printf("| %s | %s | %s | %v |\n", goal, measured, target, met)
	}
	if b.plainTotal > 0 && b.rolloutsTotal > 0 {
		ratio := b.rolloutsTotal.Seconds() / b.plainTotal.Seconds()
		line("total time, Rollouts / plain Deployments", fmt.Sprintf("%.2f× (%s / %s)", ratio, dur(b.rolloutsTotal), dur(b.plainTotal)), "≤ 1.3×", ratio <= 1.3)
	}
	if b.latencyMeasured {
		line("promote → workload patched p99", ms(b.promotePatchedP99), "≤ 200 ms", b.promotePatchedP99 <= 200*time.Millisecond)
	}
	if b.trafficMeasured {
		line("step's pods ready → route updated p99", ms(b.routedP99), "≤ 200 ms", b.routedP99 <= 200*time.Millisecond)
	}
	if n := b.webhookCalls.Count(); n > 0 {
		p99 := b.webhookCalls.Quantile(0.99)
		line("webhook call p99 under controller load (kube-apiserver's histogram, interpolated)",
			fmt.Sprintf("%s over %.0f calls, %.1f%% ≤ 100 ms (whole update through it: p99 %s; without the webhook: %s)", secMs(p99), n, 100*b.webhookCalls.Within(0.1), ms(b.webhookP99), ms(b.plainUpdateP99)),
			"≤ 100 ms", b.webhookCalls.Within(0.1) >= 0.99)
	}
	line("updates refused by a failed webhook call", strconv.FormatInt(b.webhookFailures.Load(), 10), "0", b.webhookFailures.Load() == 0)
	if b.idleMeasured {
		line(fmt.Sprintf("RSS with %d idle Rollouts + Deployments", b.o.idle), mib(b.idleRSSBytes), "≤ 300 MiB", b.idleRSSBytes <= 300<<20)
	}
	fmt.Printf("\nload average (1/5/15 min) now: %s\n", loadAvg())
}

func (b *bench) add(phase, metric, value string) {
	b.rows = append(b.rows, row{phase, metric, value})
}

func (b *bench) report() {
	host, _ := os.Hostname()
	var model string
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, model, _ = strings.Cut(line, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	fmt.Printf("\n## rollout-apiserver controller benchmark, %s\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Printf("machine: %s, %d CPUs (%s), %s; %s\n", host, runtime.NumCPU(), model, memTotal(), runtime.Version())
	fmt.Printf("cluster: local control plane (kube-apiserver, kube-controller-manager %s, kube-scheduler, kwok with fake nodes); %d Deployments per phase, %d replicas each\n\n", b.o.kcmArgs, b.o.n, b.o.replicas)
	fmt.Println("| phase | metric | value |")
	fmt.Println("|---|---|---|")
	for _, r := range b.rows {
		fmt.Printf("| %s | %s | %s |\n", r.phase, r.metric, r.value)
	}
	for _, n := range b.notes {
		fmt.Printf("\nnote: %s\n", n)
	}
	b.goals()
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}
