package analysis

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
)

// script answers queries from a list, one answer per query.
type script struct {
	answers []answer
	queries []string
}

type answer struct {
	v   Value
	err error
}

func (s *script) Query(_ context.Context, _, query string, _ time.Time) (Value, error) {
	s.queries = append(s.queries, query)
	if len(s.answers) == 0 {
		return Value{}, errors.New("script exhausted")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a.v, a.err
}

func ok(v float64) answer { return answer{v: Value{Number: v}} }
func noData() answer      { return answer{v: Value{Inconclusive: "no data"}} }
func nan() answer         { return answer{v: Value{Number: math.NaN(), Inconclusive: "NaN"}} }
func unreachable() answer { return answer{err: errors.New("connection refused")} }
func minRange(lo string) *v1beta1.ThresholdRange {
	return &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse(lo))}
}

func check(count, failureLimit, inconclusiveLimit, errorLimit int32) v1beta1.MetricCheck {
	return v1beta1.MetricCheck{
		Name: "success-rate", Interval: metav1.Duration{Duration: 10 * time.Second},
		Count: count, FailureLimit: failureLimit, InconclusiveLimit: inconclusiveLimit, ConsecutiveErrorLimit: ptr.To(errorLimit),
		Provider:       v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: "http://prom:9090", Query: `ratio{revision={{canaryRevision}}}`}},
		ThresholdRange: minRange("0.99"),
	}
}

func rolloutAt() *v1beta1.Rollout {
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       v1beta1.RolloutSpec{WorkloadRef: v1beta1.ObjectRef{Kind: "Deployment", Name: "web"}},
		Status: v1beta1.RolloutStatus{CanaryStatus: &v1beta1.CanaryStatus{
			CommonStatus: v1beta1.CommonStatus{StableRevision: "old"}, CanaryRevision: "new"}},
	}
}

// run calls Analyze once per interval until the verdict is no longer
// Running, and returns the verdicts seen.
func run(t *testing.T, a *Analyzer, m v1beta1.MetricCheck, passes int) ([]release.AnalysisVerdict, release.AnalysisOutcome) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var results []v1beta1.MetricCheckResult
	var verdicts []release.AnalysisVerdict
	var out release.AnalysisOutcome
	for i := 0; i <= passes; i++ {
		var err error
		out, err = a.Analyze(context.Background(), &release.AnalysisContext{
			Rollout: rolloutAt(), Step: 1, Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{m}},
			Results: results, Now: t0.Add(time.Duration(i) * m.Interval.Duration),
		})
		require.NoError(t, err)
		results = out.Results
		verdicts = append(verdicts, out.Verdict)
		if out.Verdict != release.AnalysisRunning {
			break
		}
	}
	return verdicts, out
}

func TestDecisionTable(t *testing.T) {
	const (
		R = release.AnalysisRunning
		P = release.AnalysisPassed
		F = release.AnalysisFailed
		Z = release.AnalysisPaused
	)
	cases := []struct {
		name    string
		check   v1beta1.MetricCheck
		answers []answer
		// verdicts: the first call starts the check, each later one measures.
		verdicts []release.AnalysisVerdict
		phase    v1beta1.MetricCheckPhase
		message  string
	}{
		{"one success passes", check(1, 0, 0, 4), []answer{ok(1)}, []release.AnalysisVerdict{R, P}, v1beta1.MetricCheckSuccessful, "1 of 1 measurements passed"},
		{"count successes pass", check(3, 0, 0, 4), []answer{ok(1), ok(0.995), ok(0.99)}, []release.AnalysisVerdict{R, R, R, P}, v1beta1.MetricCheckSuccessful, "3 of 3"},
		{"one failure with no failures tolerated fails at once", check(3, 0, 0, 4), []answer{ok(0.5)}, []release.AnalysisVerdict{R, F}, v1beta1.MetricCheckFailed, "value 0.5 is below the minimum 0.99 (1 failed measurements, failureLimit 0)"},
		{"failures within the limit pass", check(3, 1, 0, 4), []answer{ok(0.5), ok(1), ok(1)}, []release.AnalysisVerdict{R, R, R, P}, v1beta1.MetricCheckSuccessful, "2 of 3"},
		{"failureLimit+1 failures fail", check(3, 1, 0, 4), []answer{ok(0.5), ok(0.4)}, []release.AnalysisVerdict{R, R, F}, v1beta1.MetricCheckFailed, "value 0.4"},
		{"an inconclusive with no tolerance pauses", check(3, 0, 0, 4), []answer{noData()}, []release.AnalysisVerdict{R, Z}, v1beta1.MetricCheckInconclusive, "1 inconclusive measurements (inconclusiveLimit 0); last: no data"},
		{"NaN is inconclusive", check(3, 0, 1, 4), []answer{nan(), nan()}, []release.AnalysisVerdict{R, R, Z}, v1beta1.MetricCheckInconclusive, "NaN"},
		{"inconclusives within the limit count towards count", check(2, 0, 1, 4), []answer{noData(), ok(1)}, []release.AnalysisVerdict{R, R, P}, v1beta1.MetricCheckSuccessful, "1 of 2"},
		{"errors are retried and do not count", check(2, 0, 0, 2), []answer{unreachable(), ok(1), unreachable(), unreachable(), ok(1)}, []release.AnalysisVerdict{R, R, R, R, R, P}, v1beta1.MetricCheckSuccessful, "2 of 2"},
		{"consecutiveErrorLimit+1 errors in a row pause", check(2, 0, 0, 2), []answer{unreachable(), unreachable(), unreachable()}, []release.AnalysisVerdict{R, R, R, Z}, v1beta1.MetricCheckError, "3 measurements in a row could not be taken (consecutiveErrorLimit 2); last error: connection refused"},
		{"consecutiveErrorLimit 0 pauses at the first error", check(2, 0, 0, 0), []answer{unreachable()}, []release.AnalysisVerdict{R, Z}, v1beta1.MetricCheckError, "connection refused"},
		{"a failure wins over errors", check(3, 0, 0, 1), []answer{unreachable(), ok(0)}, []release.AnalysisVerdict{R, R, F}, v1beta1.MetricCheckFailed, "value 0 is below"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{answers: tc.answers}
			verdicts, out := run(t, &Analyzer{Prometheus: s}, tc.check, 20)
			assert.Equal(t, tc.verdicts, verdicts)
			require.Len(t, out.Results, 1)
			res := out.Results[0]
			assert.Equal(t, tc.phase, res.Phase)
			assert.Contains(t, res.Message, tc.message)
			assert.Empty(t, s.answers, "every scripted answer is used")
			for _, q := range s.queries {
				assert.Equal(t, `ratio{revision="new"}`, q)
			}
			if tc.phase == v1beta1.MetricCheckFailed {
				assert.Contains(t, out.Message, "check success-rate failed: value")
			}
		})
	}
}

func TestMeasurementsAreBoundedAndResumeFromStatus(t *testing.T) {
	m := check(30, 29, 0, 4)
	var answers []answer
	for range 30 {
		answers = append(answers, ok(1))
	}
	s := &script{answers: answers}
	a := &Analyzer{Prometheus: s}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ac := func(results []v1beta1.MetricCheckResult, at time.Duration) *release.AnalysisContext {
		return &release.AnalysisContext{Rollout: rolloutAt(), Step: 2, Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{m}},
			Results: results, Now: t0.Add(at)}
	}
	out, err := a.Analyze(context.Background(), ac(nil, 0))
	require.NoError(t, err)
	for i := 1; i <= 12; i++ {
		out, err = a.Analyze(context.Background(), ac(out.Results, time.Duration(i)*10*time.Second))
		require.NoError(t, err)
	}
	res := out.Results[0]
	assert.EqualValues(t, 12, res.Count)
	assert.Len(t, res.Measurements, 10, "status keeps the last 10 measurements")
	assert.Equal(t, t0.Add(120*time.Second), res.Measurements[9].Time.Time)

	// A restarted server reads the same status: before the interval is over
	// it measures nothing, and the retry is the rest of the interval.
	before := len(s.queries)
	again, err := a.Analyze(context.Background(), ac(out.Results, 125*time.Second))
	require.NoError(t, err)
	assert.Equal(t, before, len(s.queries), "no measurement is repeated")
	assert.Equal(t, release.AnalysisRunning, again.Verdict)
	assert.Equal(t, 5*time.Second, again.RetryAfter)
	assert.EqualValues(t, 12, again.Results[0].Count)

	// A server that was down for several intervals takes one measurement,
	// not one per missed interval.
	late, err := a.Analyze(context.Background(), ac(out.Results, 10*time.Minute))
	require.NoError(t, err)
	assert.EqualValues(t, 13, late.Results[0].Count)
}

func TestAnalyzeKeepsOtherStepsAndSkipsTerminalChecks(t *testing.T) {
	m := check(1, 0, 0, 4)
	earlier := v1beta1.MetricCheckResult{Name: "success-rate", StepIndex: 1, Phase: v1beta1.MetricCheckSuccessful}
	done := v1beta1.MetricCheckResult{Name: "success-rate", StepIndex: 2, Phase: v1beta1.MetricCheckSuccessful}
	s := &script{}
	out, err := (&Analyzer{Prometheus: s}).Analyze(context.Background(), &release.AnalysisContext{
		Rollout: rolloutAt(), Step: 2, Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{m}},
		Results: []v1beta1.MetricCheckResult{earlier, done}, Now: time.Now(),
	})
	require.NoError(t, err)
	assert.Equal(t, release.AnalysisPassed, out.Verdict)
	assert.Equal(t, []v1beta1.MetricCheckResult{earlier, done}, out.Results)
	assert.Empty(t, s.queries)
}

func TestAddressPolicyIsAppliedBeforeQuerying(t *testing.T) {
	policy, err := validation.ParseAddressPolicy("http://default:9090", []string{"*.monitoring.svc"})
	require.NoError(t, err)
	cases := []struct {
		address, queried, err string
	}{
		{address: "", queried: "http://default:9090"},
		{address: "http://prom.monitoring.svc:9090", queried: "http://prom.monitoring.svc:9090"},
		{address: "http://metadata.internal", err: `the server does not allow Prometheus address "http://metadata.internal"`},
	}
	for _, tc := range cases {
		t.Run(tc.address, func(t *testing.T) {
			m := check(1, 0, 0, 0)
			m.Provider.Prometheus.Address = tc.address
			p := &addressRecorder{}
			_, out := run(t, &Analyzer{Prometheus: p, Addresses: policy}, m, 2)
			if tc.err != "" {
				assert.Empty(t, p.addresses)
				assert.Equal(t, release.AnalysisPaused, out.Verdict)
				assert.Contains(t, out.Message, tc.err)
				return
			}
			assert.Equal(t, []string{tc.queried}, p.addresses)
		})
	}
}

type addressRecorder struct{ addresses []string }

func (r *addressRecorder) Query(_ context.Context, address, _ string, _ time.Time) (Value, error) {
	r.addresses = append(r.addresses, address)
	return Value{Number: 1}, nil
}

func TestJudge(t *testing.T) {
	cases := []struct {
		name   string
		rng    *v1beta1.ThresholdRange
		cond   string
		v      float64
		pass   bool
		reason string
	}{
		{name: "within range", rng: &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse("0.9")), Max: ptr.To(resource.MustParse("1"))}, v: 0.95, pass: true},
		{name: "on the bounds", rng: &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse("0.9")), Max: ptr.To(resource.MustParse("1"))}, v: 1, pass: true},
		{name: "above max", rng: &v1beta1.ThresholdRange{Max: ptr.To(resource.MustParse("50m"))}, v: 0.2, reason: "value 0.2 is above the maximum 0.05"},
		{name: "+Inf above max", rng: &v1beta1.ThresholdRange{Max: ptr.To(resource.MustParse("1"))}, v: math.Inf(1), reason: "value +Inf is above the maximum 1"},
		{name: "CEL passes", cond: "result < 0.05", v: 0.01, pass: true},
		{name: "CEL with an int literal", cond: "result <= 1", v: 1, pass: true},
		{name: "CEL fails", cond: "result < 0.05", v: 0.5, reason: `value 0.5 does not satisfy "result < 0.05"`},
		{name: "both must hold", rng: minRange("0"), cond: "result < 0.05", v: 0.5, reason: `value 0.5 does not satisfy "result < 0.05"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pass, reason, err := judge(&v1beta1.MetricCheck{ThresholdRange: tc.rng, SuccessCondition: tc.cond}, tc.v)
			require.NoError(t, err)
			assert.Equal(t, tc.pass, pass)
			assert.Equal(t, tc.reason, reason)
		})
	}
}
