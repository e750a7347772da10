// Command rollback measures how fast a failing metric check takes a release back to the
// stable revision, on a real local control plane (test/e2e/framework) with a real
// Prometheus (bin/prometheus) scraping the framework's exporter every scrape interval.
//
// One Deployment of 4 pods behind a Service and a Gateway API HTTPRoute (-route=false: no
// traffic routing); its Rollout's step 1 moves 2 pods to the new revision, sends them 50% of
// the traffic and gates the step on the canary's error ratio
// (framework.ExporterErrorRatioQuery, max 0.05, failureLimit 0, a count that never runs
// out), measured every check interval. Each run:
//
//  1. a new image is released; once the check has passed its first measurement, the bench
//     waits a random part of one check interval, so the failure lands anywhere in it;
//  2. t0: the exporter starts failing every request of the new revision;
//  3. detected: status.abort is recorded (MetricCheckFailed), seen by a watch;
//  4. route: the HTTPRoute is back to what it was before the release (polled every 20ms);
//  5. stable: the route is back and every live pod runs the stable revision again, all
//     ready, 4 of them, seen by a watch of the pods.
//
// It prints a Markdown table of p50/p99 of t0 → detected, route and stable over the runs, with
// the check and scrape intervals and the goal (one check interval + one scrape interval +
// 1 s), and the load average: the machine is shared.
//
//	go run ./test/e2e/bench/rollback [-runs 10] [-interval 2s] [-scrape 1s] [-route=false]
//
// E2E_RUN_DIR=_output/x reuses (or starts and keeps) a control plane, as for the e2e tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

const (
	name     = "web"
	replicas = 4
	check    = "error-rate"
)

type options struct {
	runs             int
	interval, scrape time.Duration
	timeout          time.Duration
	route            bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 10, "releases to fail and roll back")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "the metric check's interval")
	flag.DurationVar(&o.scrape, "scrape", time.Second, "Prometheus' scrape interval")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "overall limit")
	flag.BoolVar(&o.route, "route", true, "route the canary through a Gateway API HTTPRoute (50% at step 1, gracePeriodSeconds 1)")
	flag.Parse()
	if o.runs < 1 || o.interval <= 0 || o.scrape <= 0 {
		fmt.Fprintln(os.Stderr, "bench-rollback: -runs, -interval and -scrape must be positive")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench-rollback: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// bench is one run of the program: the environment and what each release measured.
type bench struct {
	o        options
	kube     kubernetes.Interface
	ro       versioned.Interface
	gw       gwclient.Interface
	route    *gwv1.HTTPRoute // as created, CRD defaults included; nil without -route
	exporter *framework.Exporter
	prom     *framework.Prometheus
	ns       string
	w        *watcher
	detect   []time.Duration // t0 → status.abort recorded
	routed   []time.Duration // t0 → the HTTPRoute as before the release
	stable   []time.Duration // t0 → route back and every pod on the stable revision
	rollback []time.Duration // status.abort recorded → every pod back on the stable revision
}

func run(o options) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
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
	loadStart := loadAvg()

	exporter, err := c.StartExporter()
	if err != nil {
		return err
	}
	prom, err := c.StartPrometheus(ctx, framework.PrometheusOptions{Name: "prometheus-bench", ScrapeInterval: o.scrape, Targets: []string{exporter.Addr}})
	if err != nil {
		return err
	}
	if err := prom.WaitTargetsUp(ctx, 1); err != nil {
		return err
	}
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: []string{
		"--leader-elect=false",
		"--metrics-allowed-prometheus-addresses=" + prom.URL,
	}})
	if err != nil {
		return err
	}
	defer s.Kill() // a graceful stop can hang while the aggregator holds watches open

	b := &bench{o: o, exporter: exporter, prom: prom, kube: c.Client, ns: "bench-rollback-" + utilrand.String(5)}
	if b.ro, err = versioned.NewForConfig(c.Config); err != nil {
		return err
	}
	if b.gw, err = gwclient.NewForConfig(c.Config); err != nil {
		return err
	}
	if err := b.setUp(ctx); err != nil {
		return err
	}
	defer b.w.stop()
	for i := range o.runs {
		if err := b.release(ctx, i+1); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
	}
	b.report(loadStart, loadAvg())
	return nil
}

// setUp creates the namespace, the Deployment on v1 and its Rollout, and starts watching.
func (b *bench) setUp(ctx context.Context) error {
	if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := poll(ctx, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := b.kube.CoreV1().ServiceAccounts(b.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	b.exporter.Track(b.ns, name, map[string]string{"app": name})
	surge, unavailable := intstr.FromString("25%"), intstr.FromInt32(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "app", Image: "app:v1"}},
					TerminationGracePeriodSeconds: ptr.To[int64](0),
				},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
		},
	}
	if _, err := b.kube.AppsV1().Deployments(b.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	b.w = startWatcher(b)
	if err := poll(ctx, "4 ready pods of v1", func(context.Context) (bool, error) {
		return b.w.allOn("app:v1"), nil
	}); err != nil {
		return err
	}
	one, twoPods := intstr.FromString("50%"), intstr.FromString("100%")
	var routings []v1beta1.TrafficRoutingRef
	var traffic, all *string
	if b.o.route {
		if err := b.createRoute(ctx); err != nil {
			return err
		}
		routings = []v1beta1.TrafficRoutingRef{{Service: name, GracePeriodSeconds: 1, Gateway: &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To(name)}}}
		traffic, all = ptr.To("50%"), ptr.To("100%")
	}
	ro := &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.ns},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: v1beta1.KindDeployment, Name: name},
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{TrafficRoutings: routings, Steps: []v1beta1.CanaryStep{
				{Replicas: &one, TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: traffic}, Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
					Name:     check,
					Interval: metav1.Duration{Duration: b.o.interval},
					Count:    1 << 20, // never runs out: the check measures until the failure
					// A new revision's first scrape can leave irate without two samples yet.
					InconclusiveLimit: 1 << 20,
					Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
						Address: b.prom.URL,
						Query:   framework.ExporterErrorRatioQuery,
					}},
					ThresholdRange: &v1beta1.ThresholdRange{Max: ptr.To(resource.MustParse("0.05"))},
				}}}},
				{Replicas: &twoPods, TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: all}},
			}}},
		},
	}
	if _, err := b.ro.RolloutV1beta1().Rollouts(b.ns).Create(ctx, ro, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Rollout: %w", err)
	}
	return poll(ctx, "the Rollout Healthy and controlling the Deployment", func(ctx context.Context) (bool, error) {
		ro, err := b.ro.RolloutV1beta1().Rollouts(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		d, err := b.kube.AppsV1().Deployments(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return ro.Status.Phase == v1beta1.RolloutPhaseHealthy && d.Labels[v1beta1.WorkloadControlLabel] == "true", nil
	})
}

// createRoute creates Service web and HTTPRoute web (every request to the Service) and
// keeps the route as stored, to compare with after each rollback.
func (b *bench) createRoute(ctx context.Context) error {
	_, err := b.kube.CoreV1().Services(b.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Service: %w", err)
	}
	b.route, err = b.gw.GatewayV1().HTTPRoutes(b.ns).Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Rules: []gwv1.HTTPRouteRule{{
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
					Name: name, Port: ptr.To(gwv1.PortNumber(80)),
				}}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create HTTPRoute (are the Gateway API CRDs installed? hack/local-up.sh does): %w", err)
	}
	return nil
}

// routeRestored reports whether the HTTPRoute is as it was before the release.
func (b *bench) routeRestored(ctx context.Context) bool {
	hr, err := b.gw.GatewayV1().HTTPRoutes(b.ns).Get(ctx, name, metav1.GetOptions{})
	return err == nil && apiequality.Semantic.DeepEqual(hr.Spec, b.route.Spec)
}

// release releases image app:v<n+1>, fails it after its first good measurement and times
// the rollback.
func (b *bench) release(ctx context.Context, n int) error {
	image := fmt.Sprintf("app:v%d", n+1)
	b.exporter.SetErrorRate(b.ns, image, 0)
	err := retry.OnError(wait.Backoff{Steps: 5, Duration: time.Second, Factor: 1}, func(error) bool { return true }, func() error {
		d, err := b.kube.AppsV1().Deployments(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		_, err = b.kube.AppsV1().Deployments(b.ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set image %s: %w", image, err)
	}
	var revision string
	if err := poll(ctx, "the first passed measurement of "+image, func(ctx context.Context) (bool, error) {
		ro, err := b.ro.RolloutV1beta1().Rollouts(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || ro.Status.Phase != v1beta1.RolloutPhaseProgressing || ro.Status.CanaryStatus == nil {
			return false, nil
		}
		for _, r := range ro.Status.AnalysisResults {
			if r.Name == check && r.StepIndex == 1 && r.Successful >= 1 {
				revision = ro.Status.CanaryStatus.CanaryRevision
				return true, nil
			}
			if r.Failed > 0 || r.Errors > 0 {
				return false, fmt.Errorf("the healthy canary measured %s: %s", r.Phase, r.Message)
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	time.Sleep(time.Duration(rand.Int64N(int64(b.o.interval))))

	b.w.reset(revision)
	t0 := time.Now()
	b.exporter.SetErrorRate(b.ns, image, 1)
	var detected, podsBack, routed time.Time
	if b.route == nil {
		routed = t0 // nothing to route back
	}
	if err := poll(ctx, "the rollback of "+image, func(ctx context.Context) (bool, error) {
		detected, podsBack = b.w.times()
		if routed.IsZero() && !detected.IsZero() && b.routeRestored(ctx) {
			routed = time.Now()
		}
		return !detected.IsZero() && !podsBack.IsZero() && !routed.IsZero(), nil
	}); err != nil {
		return err
	}
	stable := podsBack
	if routed.After(stable) {
		stable = routed
	}
	b.detect = append(b.detect, detected.Sub(t0))
	b.stable = append(b.stable, stable.Sub(t0))
	b.rollback = append(b.rollback, stable.Sub(detected))
	if b.route != nil {
		b.routed = append(b.routed, routed.Sub(t0))
	}
	logf("run %d (%s, revision %s): abort recorded after %s, route back after %s, every pod on stable after %s",
		n, image, revision, detected.Sub(t0).Round(time.Millisecond), routed.Sub(t0).Round(time.Millisecond), podsBack.Sub(t0).Round(time.Millisecond))
	// The next release starts from phase Aborted, the workload held on the stable revision.
	return poll(ctx, "phase Aborted", func(ctx context.Context) (bool, error) {
		ro, err := b.ro.RolloutV1beta1().Rollouts(b.ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && ro.Status.Phase == v1beta1.RolloutPhaseAborted, nil
	})
}

func (b *bench) report(loadStart, loadEnd string) {
	goal := b.o.interval + b.o.scrape + time.Second
	p99 := percentile(b.stable, 0.99)
	met := "yes"
	if p99 > goal {
		met = "no"
	}
	fmt.Printf("\n### make bench-rollback, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	routing := "no traffic routing"
	if b.route != nil {
		routing = "a Gateway API HTTPRoute sending the canary 50%"
	}
	fmt.Printf("%d runs; check interval %s, failureLimit 0; Prometheus scrape interval %s; Deployment of %d pods, 2 on the canary; %s.\n\n",
		b.o.runs, b.o.interval, b.o.scrape, replicas, routing)
	fmt.Println("| from the exporter failing to | p50 | p99 | min | max |")
	fmt.Println("|---|---|---|---|---|")
	rows := []struct {
		what string
		d    []time.Duration
	}{
		{"status.abort recorded (MetricCheckFailed)", b.detect},
		{"the HTTPRoute as before the release", b.routed},
		{"back at stable: route and every pod (4, ready) on the stable revision", b.stable},
		{"(of which: status.abort recorded → back at stable)", b.rollback},
	}
	if b.route == nil {
		rows = slices.Delete(rows, 1, 2)
	}
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.what, sec(percentile(r.d, 0.5)), sec(percentile(r.d, 0.99)), sec(percentile(r.d, 0)), sec(percentile(r.d, 1)))
	}
	fmt.Println("\np50 and p99 are nearest-rank percentiles: with fewer than 100 runs, p99 is the slowest run.")
	fmt.Printf("Goal: back at stable within one check interval + one scrape interval + 1 s = %s; p99 %s: met: %s.\n", sec(goal), sec(p99), met)
	fmt.Printf("Load average (1/5/15 min): %s at the start, %s at the end.\n", loadStart, loadEnd)
}

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// percentile is the nearest-rank percentile q (0 to 1) of d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
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

func poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, cond)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out waiting for %s", what)
	}
	return err
}

// ---------------------------------------------------------------------------------------

// watcher sees the Rollout and the pods through informers and notes, for the run under
// way, when status.abort first appeared and when the pods were first all back on the
// stable revision after it.
type watcher struct {
	b       *bench
	stopCh  chan struct{}
	pods    cache.Store
	mu      sync.Mutex
	canary  string // the revision of the run under way
	stable  string // the stable revision (status.canaryStatus.stableRevision)
	aborted time.Time
	back    time.Time
}

func startWatcher(b *bench) *watcher {
	w := &watcher{b: b, stopCh: make(chan struct{})}
	kf := informers.NewSharedInformerFactoryWithOptions(b.kube, 0, informers.WithNamespace(b.ns))
	pods := kf.Core().V1().Pods().Informer()
	w.pods = pods.GetStore()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.checkPods() },
		UpdateFunc: func(any, any) { w.checkPods() },
		DeleteFunc: func(any) { w.checkPods() },
	})
	lw := cache.NewListWatchFromClient(b.ro.RolloutV1beta1().RESTClient(), "rollouts", b.ns, fields.Everything())
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &v1beta1.Rollout{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    w.observeRollout,
			UpdateFunc: func(_, obj any) { w.observeRollout(obj) },
		},
	})
	kf.Start(w.stopCh)
	go ctrl.Run(w.stopCh)
	return w
}

func (w *watcher) stop() { close(w.stopCh) }

// reset starts a run: the times are those after now.
func (w *watcher) reset(canary string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.canary, w.aborted, w.back = canary, time.Time{}, time.Time{}
}

func (w *watcher) times() (time.Time, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.aborted, w.back
}

func (w *watcher) observeRollout(obj any) {
	ro, ok := obj.(*v1beta1.Rollout)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cs := ro.Status.CanaryStatus; cs != nil && cs.StableRevision != "" {
		w.stable = cs.StableRevision
	}
	if a := ro.Status.Abort; a != nil && w.canary != "" && a.Revision == w.canary && w.aborted.IsZero() {
		w.aborted = time.Now()
	}
}

// checkPods notes when, after the abort, every live pod runs the stable revision.
func (w *watcher) checkPods() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted.IsZero() || !w.back.IsZero() || w.stable == "" {
		return
	}
	if w.onRevisionLocked(func(p *corev1.Pod) bool { return p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == w.stable }) {
		w.back = time.Now()
	}
}

// allOn reports whether exactly `replicas` live pods run image, all ready, and no other.
func (w *watcher) allOn(image string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.onRevisionLocked(func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image == image })
}

func (w *watcher) onRevisionLocked(want func(*corev1.Pod) bool) bool {
	n := 0
	for _, obj := range w.pods.List() {
		p := obj.(*corev1.Pod)
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if !want(p) || !ready(p) {
			return false
		}
		n++
	}
	return n == replicas
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
