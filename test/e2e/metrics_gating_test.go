package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestMetricGating releases Deployments whose steps are gated by a metric check against a
// real Prometheus (bin/prometheus) that scrapes, every second, an exporter of the test
// framework: it counts the requests of every pod by revision, and the test decides which
// share of a revision's requests fail. The check is the canary revision's error ratio
// (framework.ExporterErrorRatioQuery) with thresholdRange max 0.05, measured every 2s.
//
// The scenarios run one after the other against one rollout-apiserver of their own, started
// with the Prometheus address as its default and its only allowed address:
//
//   - a release with 1% errors passes every gated step and completes; kubectl -o wide shows
//     the check, and the server's /metrics shows the phase and step gauges move and the
//     release counted as started and succeeded;
//   - a release with 50% errors aborts at the first gated step within interval ×
//     (failureLimit + 1) + one scrape interval, back to the stable pods, with the check and
//     its value in status.abort, the message and a Warning Event, and counted as aborted;
//     behind a Gateway API HTTPRoute, the route goes back to stable before any canary pod;
//   - Prometheus stopped mid-analysis pauses the release with a condition that says why;
//     Prometheus back and a resume, and the release completes;
//   - rollout-apiserver killed (SIGKILL) mid-analysis resumes from status: no measurement
//     repeated or lost;
//   - a check naming an address outside the allow-list is refused with 422.
func TestMetricGating(t *testing.T) {
	g := startGatingEnvironment(t)
	scenarios := []struct {
		name string
		run  func(*testing.T, *gatingEnv)
	}{
		{"AddressOutsideTheAllowListIsRefused", gatingAddressRefused},
		{"HealthyReleasePassesEveryGatedStep", gatingHealthy},
		{"UnhealthyReleaseAbortsAtTheFirstGatedStep", gatingUnhealthy},
		{"UnhealthyRoutedReleaseMovesTrafficBackFirst", gatingRoutedUnhealthy},
		{"PrometheusDownPausesUntilResumed", gatingPrometheusDown},
		{"ServerKilledMidAnalysisKeepsItsMeasurements", gatingServerKilled},
	}
	for _, sc := range scenarios {
		// One at a time: the server's counters are compared before and after each, and one
		// scenario kills the server.
		t.Run(sc.name, func(t *testing.T) { sc.run(t, g) })
	}
}

// The check every scenario uses, and the timing the assertions rely on.
const (
	gatingCheck    = "error-rate"
	gatingInterval = 2 * time.Second
	gatingMaxRatio = "0.05"
)

// gatingEnv is what the scenarios share: Prometheus, the exporter it scrapes, and a
// rollout-apiserver that may query that Prometheus only.
type gatingEnv struct {
	c        *framework.Cluster
	prom     *framework.Prometheus
	exporter *framework.Exporter
	server   *framework.Server
	rel      *releaseEnv
}

func startGatingEnvironment(t *testing.T) *gatingEnv {
	t.Helper()
	c := framework.Get()
	robBuild(t, c) // also kills servers earlier tests left running
	ctx, cancel := context.WithTimeout(context.Background(), serverStartupTimeout)
	defer cancel()

	exporter, err := c.StartExporter()
	if err != nil {
		t.Fatalf("start the exporter: %v", err)
	}
	t.Cleanup(func() { _ = exporter.Close() })
	prom, err := c.StartPrometheus(ctx, framework.PrometheusOptions{Name: "prometheus-gating", ScrapeInterval: time.Second, Targets: []string{exporter.Addr}})
	if err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() { _ = prom.Stop() })
	if err := prom.WaitTargetsUp(ctx, 1); err != nil {
		t.Fatal(err)
	}

	server, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: []string{
		"--leader-elect=false", "--v=2",
		"--metrics-default-prometheus-address=" + prom.URL,
		"--metrics-allowed-prometheus-addresses=" + prom.URL,
	}})
	if err != nil {
		t.Fatalf("start rollout-apiserver: %v", err)
	}
	// Killed, not stopped: a graceful stop can wait for the aggregator's open watches. The
	// release tests start their own server again when they find none running.
	t.Cleanup(func() { _ = server.Kill() })
	rc, err := versioned.NewForConfig(c.Config) // through the aggregator, like kubectl
	if err != nil {
		t.Fatal(err)
	}
	return &gatingEnv{c: c, prom: prom, exporter: exporter, server: server, rel: &releaseEnv{c: c, server: server, ro: rc}}
}

// newScenario is a release scenario on the gating server whose Deployment "web" of
// replicas pods the exporter counts, its image errRate[image] of requests failing.
func (g *gatingEnv) newScenario(t *testing.T, replicas int32, errRate map[string]float64) *scenario {
	s := g.countedScenario(t, errRate)
	s.givenDeployment("web", replicas)
	return s
}

// newRoutedScenario is a gateway scenario (Deployment "web" of 4 behind Service "web" and
// HTTPRoute "web") on the gating server, counted by the exporter like newScenario's.
func (g *gatingEnv) newRoutedScenario(t *testing.T, errRate map[string]float64, steps []v1beta1.CanaryStep, opts ...rolloutOption) *gatewayScenario {
	return newGatewayScenarioOf(g.countedScenario(t, errRate), steps, true, opts...)
}

// countedScenario is a scenario on the gating server whose workload "web" the exporter counts.
func (g *gatingEnv) countedScenario(t *testing.T, errRate map[string]float64) *scenario {
	s := newScenarioOn(t, g.rel)
	// The Rollout's finalizer needs this server: delete it while the server runs.
	robCleanupRollouts(t, g.rel.ro, s.ns)
	g.exporter.Track(s.ns, "web", map[string]string{"app": "web"})
	for image, rate := range errRate {
		g.exporter.SetErrorRate(s.ns, image, rate)
	}
	return s
}

// errorRateCheck measures the canary revision's error ratio every gatingInterval, count
// times, tolerating failureLimit failed measurements.
func (g *gatingEnv) errorRateCheck(count, failureLimit int32) v1beta1.MetricCheck {
	return v1beta1.MetricCheck{
		Name:         gatingCheck,
		Interval:     metav1.Duration{Duration: gatingInterval},
		Count:        count,
		FailureLimit: failureLimit,
		Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
			Address: g.prom.URL,
			Query:   framework.ExporterErrorRatioQuery,
		}},
		ThresholdRange: &v1beta1.ThresholdRange{Max: ptr.To(resource.MustParse(gatingMaxRatio))},
	}
}

// withChecks gates every step (that has no checks of its own) on checks.
func withChecks(checks ...v1beta1.MetricCheck) rolloutOption {
	return func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.Analysis = &v1beta1.RolloutAnalysis{Metrics: checks}
	}
}

// gated is st with checks of its own.
func gated(st v1beta1.CanaryStep, checks ...v1beta1.MetricCheck) v1beta1.CanaryStep {
	st.Analysis = &v1beta1.RolloutAnalysis{Metrics: checks}
	return st
}

// ---------------------------------------------------------------------------------------
// Scenarios.

// gatingAddressRefused: with an allow-list, a check naming another address is a 422 on
// the address field, on create and on update; nothing is stored.
func gatingAddressRefused(t *testing.T, g *gatingEnv) {
	s := newScenarioOn(t, g.rel)
	rollouts := g.rel.ro.RolloutV1beta1().Rollouts(s.ns)
	ctx, cancel := s.ctx()
	defer cancel()

	metadata := g.errorRateCheck(2, 1)
	metadata.Provider.Prometheus.Address = "http://169.254.169.254:80" // the cloud metadata service
	ro := &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: s.ns},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: v1beta1.KindDeployment, Name: "web"},
			Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: []v1beta1.CanaryStep{gated(step("50%"), metadata), step("100%")}}},
		},
	}
	_, err := rollouts.Create(ctx, ro, metav1.CreateOptions{})
	expectAddressRefused(t, err, "spec.strategy.canary.steps[0].analysis.metrics[0].provider.prometheus.address", metadata.Provider.Prometheus.Address)
	if _, err := rollouts.Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused Rollout was stored (get: %v)", err)
	}

	// The same Rollout with the allowed address is stored; moving it elsewhere is refused.
	ro.Spec.Strategy.Canary.Steps[0] = gated(step("50%"), g.errorRateCheck(2, 1))
	if _, err := rollouts.Create(ctx, ro, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create with the allowed address %s: %v", g.prom.URL, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error { // the controller adds its finalizer meanwhile
		cur, err := rollouts.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Strategy.Canary.Steps[0].Analysis.Metrics[0].Provider.Prometheus.Address = "http://prometheus.elsewhere.example:9090"
		_, err = rollouts.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	expectAddressRefused(t, err, "spec.strategy.canary.steps[0].analysis.metrics[0].provider.prometheus.address", "http://prometheus.elsewhere.example:9090")
	if err := rollouts.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Errorf("delete: %v", err)
	}
}

func expectAddressRefused(t *testing.T, err error, field, address string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("a check naming %s: want 422 Invalid, got %v", address, err)
	}
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Details == nil {
		t.Fatalf("422 without details: %v", err)
	}
	var fields []string
	for _, cause := range status.Status().Details.Causes {
		fields = append(fields, cause.Field)
		if cause.Field == field && strings.Contains(cause.Message, address) {
			t.Logf("refused with 422: %s: %s", cause.Field, cause.Message)
			return
		}
	}
	t.Errorf("422 for %s: no cause on %s naming the address; causes on %v: %v", address, field, fields, err)
}

// gatingHealthy: 1% errors pass the check (max 5%) at every step. Step 1 has a check of its
// own with three measurements (long enough to watch it run with kubectl) and waits for
// promote after it, so kubectl -o wide shows the passed check; steps 2 and 3 have the
// strategy's check of two measurements and move on by themselves once it passes.
func gatingHealthy(t *testing.T, g *gatingEnv) {
	s := g.newScenario(t, 4, map[string]float64{"app:v2": 0.01})
	m := g.watchServerMetrics(s)
	s.givenRollout([]v1beta1.CanaryStep{gated(step("25%"), g.errorRateCheck(3, 1)), step("50%", 0), step("100%")},
		withChecks(g.errorRateCheck(2, 1)))

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStateMetricsAnalysis)
	s.expectWideAnalysis(gatingCheck + " Running")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 1, "app:v1": 3})
	s.expectCheck(1, v1beta1.MetricCheckSuccessful, 3, 0)
	s.expectWideAnalysis(gatingCheck + " Successful 0.01")

	s.promote()
	ro := s.expectSucceeded()
	s.expectPods(pods{"app:v2": 4})
	expectCheckIn(t, ro, 1, v1beta1.MetricCheckSuccessful, 3, 0)
	expectCheckIn(t, ro, 2, v1beta1.MetricCheckSuccessful, 2, 0)
	expectCheckIn(t, ro, 3, v1beta1.MetricCheckSuccessful, 2, 0)

	m.expectPhasesAndSteps("Progressing/1", "Progressing/2", "Progressing/3", "Healthy/0")
	m.expectCounted("rollout_controller_releases_started_total", nil, 1)
	m.expectCounted("rollout_controller_releases_succeeded_total", nil, 1)
	m.expectCountedAtLeast("rollout_controller_analysis_measurements_total", map[string]string{"phase": "Successful"}, 7)
}

// gatingUnhealthy: 50% errors fail every measurement; with failureLimit 1 the second fails
// the check and the release is aborted at step 1, back to the stable pods.
func gatingUnhealthy(t *testing.T, g *gatingEnv) {
	s := g.newScenario(t, 4, map[string]float64{"app:v2": 0.5})
	m := g.watchServerMetrics(s)
	const failureLimit = 1
	s.givenRollout([]v1beta1.CanaryStep{step("25%", 0), step("100%")}, withChecks(g.errorRateCheck(3, failureLimit)))

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStateMetricsAnalysis)
	ro := s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)

	// How fast: from the step's checks starting to the abort being recorded.
	started, _ := s.w.seenStep(1, v1beta1.CanaryStepStateMetricsAnalysis)
	aborted, ok := s.w.firstState(func(r roState) bool { return r.reason == v1beta1.ProgressingReasonCancelling })
	if !ok {
		t.Fatalf("the abort (Progressing reason %s) was never observed:\n%s", v1beta1.ProgressingReasonCancelling, s.w.history(20))
	}
	bound := gatingInterval*(failureLimit+1) + g.prom.ScrapeInterval
	took := aborted.Sub(started)
	s.logf("aborted %.1fs after the checks of step 1 started (bound: interval %s × (failureLimit %d + 1) + scrape interval %s = %s)",
		took.Seconds(), gatingInterval, failureLimit, g.prom.ScrapeInterval, bound)
	if took > bound {
		t.Errorf("the abort came %s after the checks started; want within %s", took.Round(100*time.Millisecond), bound)
	}

	// Why, in status, the message and an Event: the check and its value.
	a := ro.Status.Abort
	if a == nil || a.Reason != v1beta1.AbortReasonMetricCheck || a.StepIndex != 1 ||
		!strings.Contains(a.Message, gatingCheck) || !strings.Contains(a.Message, "0.5") {
		t.Errorf("status.abort = %+v; want reason %s at step 1 naming %s and its value 0.5", a, v1beta1.AbortReasonMetricCheck, gatingCheck)
	}
	if !strings.Contains(ro.Status.Message, gatingCheck) || !strings.Contains(ro.Status.Message, "0.5") {
		t.Errorf("status.message %q does not name the check %s and its value 0.5", ro.Status.Message, gatingCheck)
	}
	s.expectEvent(corev1.EventTypeWarning, "Aborted", gatingCheck, "value 0.5")
	expectCheckIn(t, ro, 1, v1beta1.MetricCheckFailed, 2, 2)

	s.expectPods(pods{"app:v1": 4})

	m.expectPhasesAndSteps("Progressing/1", "Aborted/0")
	m.expectCounted("rollout_controller_releases_started_total", nil, 1)
	m.expectCounted("rollout_controller_releases_aborted_total", map[string]string{"reason": v1beta1.AbortReasonMetricCheck}, 1)
	m.expectCountedAtLeast("rollout_controller_analysis_measurements_total", map[string]string{"phase": "Failed"}, 2)
	m.expectCounted("rollout_controller_metric_rollback_duration_seconds", nil, 1)
}

// gatingRoutedUnhealthy: the same failing canary, behind a Gateway API HTTPRoute that sends
// it 25% of the traffic: the failed check moves the route back to the stable Service before
// the canary pod goes, the stable Service keeps selecting the stable revision only until the
// canary pod is gone, and the route and Services end as they were before the release.
func gatingRoutedUnhealthy(t *testing.T, g *gatingEnv) {
	s := g.newRoutedScenario(t, map[string]float64{"app:v2": 0.5},
		[]v1beta1.CanaryStep{trafficStep("1", "25%"), trafficStep("100%", "100%")}, withChecks(g.errorRateCheck(3, 1)))
	routeFirst := s.watchRouteBeforePods(1)
	pinned := s.watchStableServicePinnedWhileCanaryPods()
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStateMetricsAnalysis)
	s.expectRouted("step 1: 25% to web-canary while the check runs", weightedRule(75, 25))

	ro := s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	if a := ro.Status.Abort; a == nil || a.Reason != v1beta1.AbortReasonMetricCheck || !strings.Contains(a.Message, gatingCheck) {
		t.Errorf("status.abort = %+v; want reason %s naming %s", a, v1beta1.AbortReasonMetricCheck, gatingCheck)
	}
	s.expectPods(pods{"app:v1": 4})
	routeFirst()
	pinned()
	s.expectRestored("after the failed check: route and Services as before, canary Service gone")
}

// watchStableServicePinnedWhileCanaryPods checks, until stopped, that once the abort is
// recorded and the route is back to its original (everything to the stable Service) while
// pods of the failing revision are still alive, the stable Service still selects the stable
// revision only: otherwise the traffic taken off the canary would reach its pods through the
// stable Service.
func (s *gatewayScenario) watchStableServicePinnedWhileCanaryPods() func() {
	return s.checkUntilStopped(50*time.Millisecond, func() bool {
		ctx, cancel := s.ctx()
		defer cancel()
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil || live["app:v2"] == 0 {
			return true
		}
		r, err := s.observe(ctx)
		if err != nil || !apiequality.Semantic.DeepEqual(r.route.Spec, s.originalRoute.Spec) {
			return true
		}
		ro, err := s.getRollout(ctx)
		if err != nil || ro.Status.CanaryStatus == nil || ro.Status.Abort == nil {
			return true // before the abort, the route is original until the step routes
		}
		if r.stable.Spec.Selector["pod-template-hash"] != ro.Status.CanaryStatus.StableRevision {
			s.t.Errorf("pods of the failing revision are alive (%s) and the route sends everything to the stable Service, whose selector %v no longer pins the stable revision %s",
				desc, r.stable.Spec.Selector, ro.Status.CanaryStatus.StableRevision)
			return false
		}
		return true
	})
}

// gatingPrometheusDown: Prometheus stops after the check's first measurement; two
// measurements in a row that cannot be taken (consecutiveErrorLimit 1) pause the release,
// which stays at its step. Prometheus back and a resume: the check carries on and the
// release completes.
func gatingPrometheusDown(t *testing.T, g *gatingEnv) {
	s := g.newScenario(t, 4, map[string]float64{"app:v2": 0})
	check := g.errorRateCheck(5, 1)
	check.ConsecutiveErrorLimit = ptr.To[int32](1)
	s.givenRollout([]v1beta1.CanaryStep{gated(step("50%", 0), check), step("100%")})

	s.updateImage("app:v2")
	s.waitForMeasurements(1, 1)
	if err := g.prom.Stop(); err != nil {
		t.Fatalf("stop prometheus: %v", err)
	}
	promBack := false
	t.Cleanup(func() {
		if !promBack { // the next scenarios need it
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = g.prom.Start(ctx)
		}
	})
	s.logf("prometheus stopped")

	ro := s.waitForAnalysisPause()
	s.expectEvent(corev1.EventTypeWarning, "AnalysisPaused", gatingCheck, "could not be taken")
	if r := checkResult(ro, 1); r == nil || r.Phase != v1beta1.MetricCheckError || r.ConsecutiveErrors != 2 {
		t.Errorf("the check at the pause: %+v; want phase Error after 2 errors in a row", r)
	}
	s.expectStaysAtStep(1, 3*time.Second, "app:v2", 2)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.prom.Start(ctx); err != nil {
		t.Fatalf("start prometheus again: %v", err)
	}
	promBack = true
	if err := g.prom.WaitTargetsUp(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.logf("prometheus back")
	s.resume()
	ro = s.expectSucceeded()
	expectCheckIn(t, ro, 1, v1beta1.MetricCheckSuccessful, 5, 0)
	s.expectPods(pods{"app:v2": 4})
}

// gatingServerKilled: rollout-apiserver is killed with SIGKILL after two of the four
// measurements of step 1 and started again after more than an interval; the check carries
// on from status. When the step waits for promote, its measurements are the two from before
// the kill, unchanged, and two more, each at least an interval after the one before: none
// repeated, none lost, and no burst to catch up on the interval missed.
func gatingServerKilled(t *testing.T, g *gatingEnv) {
	s := g.newScenario(t, 4, map[string]float64{"app:v2": 0.01})
	s.givenRollout([]v1beta1.CanaryStep{gated(step("50%"), g.errorRateCheck(4, 1)), step("100%")})

	s.updateImage("app:v2")
	before := s.waitForMeasurements(1, 2)
	if err := g.server.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	s.logf("rollout-apiserver killed after %d measurements", before.Count)
	// Down for longer than an interval: a measurement falls due while nobody runs the check.
	time.Sleep(gatingInterval + time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), serverStartupTimeout)
	defer cancel()
	if err := g.server.Start(ctx); err != nil {
		t.Fatalf("start rollout-apiserver again: %v", err)
	}
	s.logf("rollout-apiserver running again")

	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	after := checkResult(s.rollout(), 1)
	if after == nil {
		t.Fatalf("no result of %s at step 1 after the restart", gatingCheck)
	}
	s.logf("after the restart: %s", measurementsString(after))
	if after.Phase != v1beta1.MetricCheckSuccessful || after.Count != 4 || after.Successful != 4 || len(after.Measurements) != 4 {
		t.Errorf("after the restart: phase %s, count %d, successful %d, %d measurements; want Successful, 4, 4, 4",
			after.Phase, after.Count, after.Successful, len(after.Measurements))
	}
	for i, m := range before.Measurements {
		if i >= len(after.Measurements) || !after.Measurements[i].Time.Equal(&m.Time) || after.Measurements[i].Value != m.Value {
			t.Errorf("measurement %d before the kill (%s at %s) is not the same after it: %s", i+1, m.Value, m.Time.UTC().Format(time.TimeOnly), measurementsString(after))
		}
	}
	for i := 1; i < len(after.Measurements); i++ {
		// Status keeps whole seconds, so two measurements an interval apart can show as one
		// second less.
		if gap := after.Measurements[i].Time.Sub(after.Measurements[i-1].Time.Time); gap < gatingInterval-time.Second {
			t.Errorf("measurements %d and %d are %s apart, less than the interval %s: a measurement was repeated", i, i+1, gap, gatingInterval)
		}
	}
	s.promote()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 4})
}

// ---------------------------------------------------------------------------------------
// Story helpers.

// waitForMeasurements waits until the check of step has taken at least n measurements and
// returns its result.
func (s *scenario) waitForMeasurements(step int32, n int32) v1beta1.MetricCheckResult {
	s.t.Helper()
	var got v1beta1.MetricCheckResult
	s.eventually(waitTimeout, fmt.Sprintf("%d measurements of %s at step %d", n, gatingCheck, step), func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		r := checkResult(ro, step)
		if r == nil {
			return false, rolloutSummary(ro)
		}
		got = *r.DeepCopy()
		return r.Count >= n, measurementsString(r)
	})
	s.logf("%s at step %d: %s", gatingCheck, step, measurementsString(&got))
	return got
}

// waitForAnalysisPause waits until the checks paused the release: spec.strategy.paused,
// condition Progressing reason Paused, and a message naming the check and why.
func (s *scenario) waitForAnalysisPause() *v1beta1.Rollout {
	s.t.Helper()
	var got *v1beta1.Rollout
	s.eventually(waitTimeout, "the release paused by its metric checks", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		got = ro
		c := condition(ro, v1beta1.RolloutConditionProgressing)
		return ro.Spec.Strategy.Paused && c != nil && c.Reason == v1beta1.ProgressingReasonPaused &&
			strings.Contains(c.Message, "by metric checks"), rolloutSummary(ro)
	})
	c := condition(got, v1beta1.RolloutConditionProgressing)
	for _, want := range []string{gatingCheck, "could not be taken", "resume"} {
		if !strings.Contains(c.Message, want) || !strings.Contains(got.Status.Message, want) {
			s.t.Errorf("condition message %q and status.message %q should name %q", c.Message, got.Status.Message, want)
		}
	}
	s.logf("paused: %s", got.Status.Message)
	return got
}

// expectWideAnalysis waits until `kubectl get ro -o wide` shows want in the ANALYSIS column.
func (s *scenario) expectWideAnalysis(want string) {
	s.t.Helper()
	s.eventually(20*time.Second, fmt.Sprintf("kubectl get ro -o wide to show ANALYSIS %q", want), func(ctx context.Context) (bool, string) {
		out, err := s.env.c.KubectlCmd(ctx, "get", "ro", s.name, "-n", s.ns, "-o", "wide")
		if err != nil {
			return false, err.Error()
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			return false, out
		}
		at := strings.Index(lines[0], "ANALYSIS")
		if at < 0 || at >= len(lines[1]) {
			return false, out
		}
		return strings.HasPrefix(lines[1][at:], want), out
	})
	s.logf("kubectl get ro -o wide: ANALYSIS %s", want)
}

// expectEvent waits for an Event of the Rollout with type and reason whose message holds
// every one of parts.
func (s *scenario) expectEvent(eventType, reason string, parts ...string) {
	s.t.Helper()
	s.eventually(30*time.Second, fmt.Sprintf("a %s Event %s naming %q", eventType, reason, parts), func(ctx context.Context) (bool, string) {
		list, err := s.env.c.Client.CoreV1().Events(s.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Rollout,involvedObject.name=" + s.name})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
			if e.Type != eventType || e.Reason != reason {
				continue
			}
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(e.Message, p) }) {
				s.logf("Event %s %s: %s", e.Type, e.Reason, e.Message)
				return true, ""
			}
		}
		return false, strings.Join(seen, "\n")
	})
}

// expectCheck checks the result of the error-rate check at step in the Rollout as it is now.
func (s *scenario) expectCheck(step int32, phase v1beta1.MetricCheckPhase, count, failed int32) {
	s.t.Helper()
	expectCheckIn(s.t, s.rollout(), step, phase, count, failed)
}

// expectCheckIn checks the result of the error-rate check at step: its phase, how many
// measurements counted, how many failed.
func expectCheckIn(t *testing.T, ro *v1beta1.Rollout, step int32, phase v1beta1.MetricCheckPhase, count, failed int32) {
	t.Helper()
	r := checkResult(ro, step)
	if r == nil {
		t.Errorf("no result of %s at step %d in status.analysisResults: %s", gatingCheck, step, jsonString(ro.Status.AnalysisResults))
		return
	}
	if r.Phase != phase || r.Count != count || r.Failed != failed {
		t.Errorf("%s at step %d: phase %s, count %d, failed %d; want %s, %d, %d (%s)", gatingCheck, step, r.Phase, r.Count, r.Failed, phase, count, failed, r.Message)
	}
}

func checkResult(ro *v1beta1.Rollout, step int32) *v1beta1.MetricCheckResult {
	for i := range ro.Status.AnalysisResults {
		if r := &ro.Status.AnalysisResults[i]; r.Name == gatingCheck && r.StepIndex == step {
			return r
		}
	}
	return nil
}

func measurementsString(r *v1beta1.MetricCheckResult) string {
	parts := []string{fmt.Sprintf("%s, %d measured (%d failed, %d errors)", r.Phase, r.Count, r.Failed, r.Errors)}
	for _, m := range r.Measurements {
		parts = append(parts, fmt.Sprintf("%s %s %s", m.Time.UTC().Format(time.TimeOnly), m.Phase, m.Value))
	}
	return strings.Join(parts, "; ")
}

// ---------------------------------------------------------------------------------------
// The server's own /metrics.

// serverMetrics scrapes rollout-apiserver's /metrics (as the admin user) every 200ms while
// a scenario runs, and keeps what the per-Rollout gauges said over time and the counters at
// the start.
type serverMetrics struct {
	s      *scenario
	client *http.Client
	url    string
	before map[string]*dto.MetricFamily
	last   map[string]*dto.MetricFamily

	mu     sync.Mutex
	seen   []string // "phase/step" of the scenario's Rollout, in the order they were seen
	errs   []string
	stopCh chan struct{}
	done   chan struct{}
}

func (g *gatingEnv) watchServerMetrics(s *scenario) *serverMetrics {
	s.t.Helper()
	client, err := rest.HTTPClientFor(g.server.RESTConfig())
	if err != nil {
		s.t.Fatal(err)
	}
	m := &serverMetrics{s: s, client: client, url: g.server.URL + "/metrics", stopCh: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := s.ctx()
	defer cancel()
	if m.before, err = m.scrape(ctx); err != nil {
		s.t.Fatalf("scrape %s: %v", m.url, err)
	}
	go m.loop()
	s.t.Cleanup(m.stop)
	return m
}

func (m *serverMetrics) loop() {
	defer close(m.done)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fams, err := m.scrape(ctx)
		cancel()
		m.mu.Lock()
		if err != nil {
			m.errs = append(m.errs, err.Error())
		} else {
			m.last = fams
			if ps := m.phaseStep(fams); ps != "" && (len(m.seen) == 0 || m.seen[len(m.seen)-1] != ps) {
				m.seen = append(m.seen, ps)
			}
		}
		m.mu.Unlock()
		select {
		case <-m.stopCh:
			return
		case <-tick.C:
		}
	}
}

// stop ends the scraping (idempotent); the scenario's cleanup calls it.
func (m *serverMetrics) stop() {
	select {
	case <-m.stopCh:
	default:
		close(m.stopCh)
	}
	<-m.done
}

func (m *serverMetrics) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// phaseStep is "phase/step" of the scenario's Rollout in fams, or "" if it has none yet.
func (m *serverMetrics) phaseStep(fams map[string]*dto.MetricFamily) string {
	me := map[string]string{"namespace": m.s.ns, "name": m.s.name}
	phase := ""
	for _, metric := range fams["rollout_controller_rollout_phase"].GetMetric() {
		if matches(metric, me) && metric.GetGauge().GetValue() == 1 {
			phase = label(metric, "phase")
		}
	}
	if phase == "" {
		return ""
	}
	step, ok := sampleValue(fams, "rollout_controller_rollout_step", me)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s/%d", phase, int(step))
}

// metricsWait bounds how long the expectations wait for /metrics to catch up: the
// controller updates its metrics just after the status write the test may already see.
const metricsWait = 10 * time.Second

// expectPhasesAndSteps checks that the gauges showed want in this order (other values may
// come between them, and a value that lasted less than a scrape may be missed only if it is
// not in want).
func (m *serverMetrics) expectPhasesAndSteps(want ...string) {
	m.s.t.Helper()
	var seen, errs []string
	ok := m.within(func() bool {
		m.mu.Lock()
		seen, errs = slices.Clone(m.seen), slices.Clone(m.errs)
		m.mu.Unlock()
		i := 0
		for _, ps := range seen {
			if i < len(want) && ps == want[i] {
				i++
			}
		}
		return i == len(want)
	})
	if !ok {
		m.s.t.Errorf("/metrics: rollout_controller_rollout_phase and _step of %s/%s went %v; want %v in this order (scrape errors: %v)", m.s.ns, m.s.name, seen, want, errs)
		return
	}
	m.s.logf("/metrics: phase/step of the Rollout went %s", strings.Join(seen, " → "))
}

// expectCounted checks that the counter (or histogram's count) name with labels grew by
// exactly n during the scenario, and not more a moment later.
func (m *serverMetrics) expectCounted(name string, labels map[string]string, n float64) {
	m.s.t.Helper()
	var got float64
	if !m.within(func() bool { got = m.delta(name, labels); return got >= n }) || got != n {
		m.s.t.Errorf("/metrics: %s%v grew by %v during the scenario; want %v", name, labels, got, n)
		return
	}
	m.s.logf("/metrics: %s%v +%v", name, labels, n)
}

// expectCountedAtLeast checks that the counter name with labels grew by n or more.
func (m *serverMetrics) expectCountedAtLeast(name string, labels map[string]string, n float64) {
	m.s.t.Helper()
	var got float64
	if !m.within(func() bool { got = m.delta(name, labels); return got >= n }) {
		m.s.t.Errorf("/metrics: %s%v grew by %v during the scenario; want at least %v", name, labels, got, n)
		return
	}
	m.s.logf("/metrics: %s%v +%v", name, labels, got)
}

// within polls cond (over what the background scrapes collect) for up to metricsWait.
func (m *serverMetrics) within(cond func() bool) bool {
	deadline := time.Now().Add(metricsWait)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func (m *serverMetrics) delta(name string, labels map[string]string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	before, _ := sampleValue(m.before, name, labels)
	after, _ := sampleValue(m.last, name, labels)
	return after - before
}

// sampleValue sums the samples of family name whose labels include labels: a counter's or
// gauge's value, a histogram's count.
func sampleValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
	for _, metric := range fam.GetMetric() {
		if !matches(metric, labels) {
			continue
		}
		found = true
		switch {
		case metric.Counter != nil:
			sum += metric.GetCounter().GetValue()
		case metric.Gauge != nil:
			sum += metric.GetGauge().GetValue()
		case metric.Histogram != nil:
			sum += float64(metric.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

func matches(metric *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		if label(metric, k) != v {
			return false
		}
	}
	return true
}

func label(metric *dto.Metric, name string) string {
	for _, l := range metric.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
