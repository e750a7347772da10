// Package metrics is the controller's own instrumentation, registered in the
// API server's legacy registry so that the server's /metrics serves it beside
// the apiserver's metrics: one scrape covers both. Every metric is documented
// in docs/metrics.md. Only the per-Rollout gauges carry namespace and name,
// and they are read from the Rollout cache at scrape time (gauges.go); every
// other label has a small fixed set of values.
package metrics

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8smetrics "k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	// The client-go workqueue metrics (depth, adds, latency, work duration,
	// retries) of the controller's queue, named rollout-controller.
	_ "k8s.io/component-base/metrics/prometheus/workqueue"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

const subsystem = "rollout_controller"

var (
	releasesStarted = k8smetrics.NewCounter(&k8smetrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "releases_started_total",
		Help:           "Releases started.",
		StabilityLevel: k8smetrics.ALPHA,
	})
	releasesSucceeded = k8smetrics.NewCounter(&k8smetrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "releases_succeeded_total",
		Help:           "Releases that completed every step and were finalised.",
		StabilityLevel: k8smetrics.ALPHA,
	})
	releasesAborted = k8smetrics.NewCounterVec(&k8smetrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "releases_aborted_total",
		Help:           "Releases aborted, by reason (UserAbort, MetricCheckFailed, ProgressDeadlineExceeded).",
		StabilityLevel: k8smetrics.ALPHA,
	}, []string{"reason"})
	reconcileDuration = k8smetrics.NewHistogram(&k8smetrics.HistogramOpts{
		Subsystem:      subsystem,
		Name:           "reconcile_duration_seconds",
		Help:           "Time one reconcile of one Rollout takes, metric queries and writes included.",
		Buckets:        []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		StabilityLevel: k8smetrics.ALPHA,
	})
	measurements = k8smetrics.NewCounterVec(&k8smetrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "analysis_measurements_total",
		Help:           "Metric check measurements, by result (Successful, Failed, Inconclusive, Error).",
		StabilityLevel: k8smetrics.ALPHA,
	}, []string{"phase"})
	rollbackDuration = k8smetrics.NewHistogram(&k8smetrics.HistogramOpts{
		Subsystem:      subsystem,
		Name:           "metric_rollback_duration_seconds",
		Help:           "Time from the measurement that failed a metric check to the end of the rollback (traffic and pods back at the stable revision).",
		Buckets:        []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		StabilityLevel: k8smetrics.ALPHA,
	})
)

var registerOnce sync.Once

// Register adds the controller's metrics to the legacy registry; idempotent.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(releasesStarted, releasesSucceeded, releasesAborted,
			reconcileDuration, measurements, rollbackDuration)
		legacyregistry.CustomMustRegister(gauges)
	})
}

// Recorder turns the status writes of the step machine into metrics.
// Only the acting replica writes status, so only it counts.
type Recorder struct {
	mu sync.Mutex
	// abortedAt is when this process recorded each Rollout's metric abort, to
	// the nanosecond: status keeps whole seconds, which would add up to a
	// second to the rollback duration. After a restart (or a new leader),
	// status.abort.time is all there is.
	abortedAt map[string]time.Time
}

// NewRecorder registers the metrics and returns a Recorder.
func NewRecorder() *Recorder {
	Register()
	return &Recorder{abortedAt: map[string]time.Time{}}
}

// Measured counts one measurement; it implements analysis.Recorder.
func (r *Recorder) Measured(phase v1beta1.MetricCheckPhase) {
	measurements.WithLabelValues(string(phase)).Inc()
}

// ReconcileDone observes the duration of one reconcile.
func (r *Recorder) ReconcileDone(d time.Duration) {
	reconcileDuration.Observe(d.Seconds())
}

// StatusWritten is told about every status the step machine wrote, with the
// status it replaced, at time now.
func (r *Recorder) StatusWritten(ro *v1beta1.Rollout, old, cur *v1beta1.RolloutStatus, now time.Time) {
	if cur.Phase == v1beta1.RolloutPhaseProgressing && cur.CanaryStatus != nil &&
		(old.Phase != v1beta1.RolloutPhaseProgressing || old.CanaryStatus == nil ||
			old.CanaryStatus.CanaryRevision != cur.CanaryStatus.CanaryRevision) {
		releasesStarted.Inc()
	}
	if becameTrue(old, cur, v1beta1.RolloutConditionSucceeded) {
		releasesSucceeded.Inc()
	}
	key := ro.Namespace + "/" + ro.Name
	if a := cur.Abort; a != nil && (old.Abort == nil || !old.Abort.Time.Equal(&a.Time) || old.Abort.Revision != a.Revision) {
		releasesAborted.WithLabelValues(abortReason(a.Reason)).Inc()
		if a.Reason == v1beta1.AbortReasonMetricCheck {
			// The pass that recorded the abort still holds its exact time.
			r.mu.Lock()
			r.abortedAt[key] = a.Time.Time
			r.mu.Unlock()
		}
	}
	if a := cur.Abort; a != nil && a.Reason == v1beta1.AbortReasonMetricCheck &&
		reason(cur, v1beta1.RolloutConditionProgressing) == v1beta1.ProgressingReasonAborted &&
		reason(old, v1beta1.RolloutConditionProgressing) != v1beta1.ProgressingReasonAborted {
		rollbackDuration.Observe(now.Sub(r.abortTime(key, a)).Seconds())
	}
}

// abortTime is when the metric abort a was recorded: this process's exact
// time if it recorded it, else status.abort.time (whole seconds).
func (r *Recorder) abortTime(key string, a *v1beta1.RolloutAbortStatus) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.abortedAt[key]
	delete(r.abortedAt, key)
	if ok && at.Truncate(time.Second).Equal(a.Time.Time.Truncate(time.Second)) {
		return at
	}
	return a.Time.Time
}

// Forget drops what the Recorder keeps of a Rollout that is gone.
func (r *Recorder) Forget(namespace, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.abortedAt, namespace+"/"+name)
}

// abortReason keeps the label to the known reasons.
func abortReason(r string) string {
	switch r {
	case v1beta1.AbortReasonUser, v1beta1.AbortReasonMetricCheck, v1beta1.AbortReasonProgressDeadline:
		return r
	}
	return "Other"
}

func condition(st *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType) *v1beta1.RolloutCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func reason(st *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType) string {
	if c := condition(st, t); c != nil {
		return c.Reason
	}
	return ""
}

func becameTrue(old, cur *v1beta1.RolloutStatus, t v1beta1.RolloutConditionType) bool {
	c := condition(cur, t)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	o := condition(old, t)
	return o == nil || o.Status != corev1.ConditionTrue
}
