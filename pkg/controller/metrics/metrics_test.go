package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func value(t *testing.T, m interface{ Get() (float64, error) }) float64 {
	t.Helper()
	v, err := m.Get()
	require.NoError(t, err)
	return v
}

type counter struct{ f func() (float64, error) }

func (c counter) Get() (float64, error) { return c.f() }

// TestRecorderFollowsAReleaseThroughItsStatusWrites feeds the status writes of
// one release that a metric check aborts and checks every metric it moves.
func TestRecorderFollowsAReleaseThroughItsStatusWrites(t *testing.T) {
	r := NewRecorder()
	ro := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	started := counter{func() (float64, error) { return testutil.GetCounterMetricValue(releasesStarted) }}
	aborted := counter{func() (float64, error) {
		return testutil.GetCounterMetricValue(releasesAborted.WithLabelValues(v1beta1.AbortReasonMetricCheck))
	}}
	startedBefore, abortedBefore := value(t, started), value(t, aborted)
	rollbacksBefore, rollbacksSumBefore, err := histogram("rollout_controller_metric_rollback_duration_seconds")
	require.NoError(t, err)

	healthy := &v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseHealthy}
	progressing := &v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseProgressing, CanaryStatus: &v1beta1.CanaryStatus{
		CommonStatus: v1beta1.CommonStatus{CurrentStepIndex: 2}, CanaryRevision: "new"}}
	r.StatusWritten(ro, &v1beta1.RolloutStatus{}, healthy, t0)
	r.StatusWritten(ro, healthy, progressing, t0)
	assert.Equal(t, startedBefore+1, value(t, started))

	// The pass that records the abort writes its exact time; status keeps
	// whole seconds, so later passes read the time truncated.
	abortedAt := t0.Add(1300 * time.Millisecond)
	aborting := progressing.DeepCopy()
	aborting.Abort = &v1beta1.RolloutAbortStatus{Reason: v1beta1.AbortReasonMetricCheck, Time: metav1.NewTime(abortedAt)}
	aborting.Conditions = []v1beta1.RolloutCondition{{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionTrue, Reason: v1beta1.ProgressingReasonCancelling}}
	r.StatusWritten(ro, progressing, aborting, abortedAt)
	stored := aborting.DeepCopy()
	stored.Abort.Time = metav1.NewTime(abortedAt.Truncate(time.Second))
	r.StatusWritten(ro, stored, stored, t0.Add(2*time.Second)) // a later write that keeps the abort
	assert.Equal(t, abortedBefore+1, value(t, aborted), "one abort counts once")

	back := stored.DeepCopy()
	back.Phase = v1beta1.RolloutPhaseHealthy
	back.Conditions[0] = v1beta1.RolloutCondition{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionFalse, Reason: v1beta1.ProgressingReasonAborted}
	r.StatusWritten(ro, stored, back, t0.Add(4*time.Second))
	rollbacks, sum, err := histogram("rollout_controller_metric_rollback_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, rollbacksBefore+1, rollbacks)
	assert.InDelta(t, rollbacksSumBefore+2.7, sum, 1e-9, "from the exact abort time, not status's whole second")

	r.Measured(v1beta1.MetricCheckFailed)
	n, err := testutil.GetCounterMetricValue(measurements.WithLabelValues("Failed"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 1.0)
	r.ReconcileDone(5 * time.Millisecond)
	count, err := histogramCount("rollout_controller_reconcile_duration_seconds")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, count, uint64(1))
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// histogramCount gathers a histogram's sample count the way a scrape sees it.
func histogramCount(name string) (uint64, error) {
	count, _, err := histogram(name)
	return count, err
}

// histogram gathers a histogram's sample count and sum the way a scrape sees them.
func histogram(name string) (uint64, float64, error) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum(), nil
		}
	}
	return 0, 0, nil
}

// TestGaugesComeFromTheRolloutCache: the phase and step gauges show what the
// source lists at scrape time, and nothing of a Rollout that is gone.
func TestGaugesComeFromTheRolloutCache(t *testing.T) {
	progressing := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Status: v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseProgressing, CanaryStatus: &v1beta1.CanaryStatus{
			CommonStatus: v1beta1.CommonStatus{CurrentStepIndex: 2}}}}
	fresh := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}}
	healthy := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "web"},
		Status: v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseHealthy, CanaryStatus: &v1beta1.CanaryStatus{
			CommonStatus: v1beta1.CommonStatus{CurrentStepIndex: 3}}}}
	blueGreen := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Status: v1beta1.RolloutStatus{Phase: v1beta1.RolloutPhaseProgressing, BlueGreenStatus: &v1beta1.BlueGreenStatus{
			CommonStatus: v1beta1.CommonStatus{CurrentStepIndex: 1}}}}
	cache := []*v1beta1.Rollout{progressing, fresh, healthy, blueGreen}
	ServeRolloutGauges(func() ([]*v1beta1.Rollout, error) { return cache, nil })
	t.Cleanup(func() { ServeRolloutGauges(func() ([]*v1beta1.Rollout, error) { return nil, nil }) })

	err := testutil.GatherAndCompare(legacyregistry.DefaultGatherer, stringsReader(`
# HELP rollout_controller_rollout_phase [ALPHA] 1 for the phase each Rollout is in (Initial, Healthy, Progressing, Terminating, Disabled, Disabling).
# TYPE rollout_controller_rollout_phase gauge
rollout_controller_rollout_phase{name="api",namespace="shop",phase="Initial"} 1
rollout_controller_rollout_phase{name="db",namespace="shop",phase="Progressing"} 1
rollout_controller_rollout_phase{name="web",namespace="bank",phase="Healthy"} 1
rollout_controller_rollout_phase{name="web",namespace="shop",phase="Progressing"} 1
# HELP rollout_controller_rollout_step [ALPHA] Current step (1-based) of each Rollout's release; 0 when no release is in progress.
# TYPE rollout_controller_rollout_step gauge
rollout_controller_rollout_step{name="api",namespace="shop"} 0
rollout_controller_rollout_step{name="db",namespace="shop"} 1
rollout_controller_rollout_step{name="web",namespace="bank"} 0
rollout_controller_rollout_step{name="web",namespace="shop"} 2
`), "rollout_controller_rollout_phase", "rollout_controller_rollout_step")
	require.NoError(t, err)

	cache = []*v1beta1.Rollout{healthy}
	err = testutil.GatherAndCompare(legacyregistry.DefaultGatherer, stringsReader(`
# HELP rollout_controller_rollout_phase [ALPHA] 1 for the phase each Rollout is in (Initial, Healthy, Progressing, Terminating, Disabled, Disabling).
# TYPE rollout_controller_rollout_phase gauge
rollout_controller_rollout_phase{name="web",namespace="bank",phase="Healthy"} 1
# HELP rollout_controller_rollout_step [ALPHA] Current step (1-based) of each Rollout's release; 0 when no release is in progress.
# TYPE rollout_controller_rollout_step gauge
rollout_controller_rollout_step{name="web",namespace="bank"} 0
`), "rollout_controller_rollout_phase", "rollout_controller_rollout_step")
	require.NoError(t, err, "a Rollout gone from the cache is gone from /metrics")
}
