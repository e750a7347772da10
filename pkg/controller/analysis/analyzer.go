// Package analysis gates the steps of a release on metric checks. It is the
// release.Analyzer of the controller: at every call it takes the
// measurements that are due, judges them, and decides each check and the
// step from the counts in status alone, so a restarted server carries on
// from status without repeating or losing a measurement. Metric providers
// live in packages under this one (prometheus).
//
// A measurement is Successful or Failed when the provider yields a number
// that passes or misses the check's thresholdRange and successCondition;
// Inconclusive when it yields none (no data, NaN, more than one series); and
// Error when it could not be taken (server unreachable, query refused,
// address not allowed). A check, after each measurement:
//
//  1. fails when failed > failureLimit (the release aborts);
//  2. errs when consecutive errors > consecutiveErrorLimit (the release pauses);
//  3. is inconclusive when inconclusive > inconclusiveLimit (the release pauses);
//  4. succeeds when count measurements yielded a value (Successful, Failed
//     or Inconclusive; errors are retried and do not count);
//  5. runs on otherwise, measuring again one interval later.
//
// The first measurement is taken one interval after the check starts, so the
// new pods have served traffic for that long before they are judged.
package analysis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
)

// Value is what one query yielded: a number, or why there is none.
type Value struct {
	// Number is the value; meaningful when Inconclusive is empty.
	Number float64
	// Inconclusive says why the answer holds no usable number.
	Inconclusive string
}

// Provider takes measurements from one kind of metric source.
type Provider interface {
	// Query evaluates query at time at against the server at address. An
	// error means no measurement could be taken.
	Query(ctx context.Context, address, query string, at time.Time) (Value, error)
}

// Recorder is told about every measurement, for the controller's own metrics.
type Recorder interface {
	// Measured counts one measurement of the given phase.
	Measured(phase v1beta1.MetricCheckPhase)
}

// Analyzer runs a step's metric checks; it implements release.Analyzer.
type Analyzer struct {
	// Prometheus takes Prometheus measurements.
	Prometheus Provider
	// Addresses is the server's policy for where checks may connect; it is
	// applied again here, so tightening it stops checks admitted before.
	Addresses validation.AddressPolicy
	// Recorder, if set, counts measurements.
	Recorder Recorder
}

var _ release.Analyzer = (*Analyzer)(nil)

// Analyze implements release.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context, ac *release.AnalysisContext) (release.AnalysisOutcome, error) {
	if ac.Analysis == nil || len(ac.Analysis.Metrics) == 0 {
		return release.AnalysisOutcome{Verdict: release.AnalysisPassed, Results: ac.Results}, nil
	}
	now := metav1.NewTime(ac.Now)
	results := keepOtherSteps(ac.Results, ac.Step)
	var (
		failed, paused []string
		running        bool
		next           time.Duration
	)
	for i := range ac.Analysis.Metrics {
		check := &ac.Analysis.Metrics[i]
		res := find(ac.Results, check.Name, ac.Step)
		if res == nil {
			// The check starts now; its first measurement is one interval away.
			res = &v1beta1.MetricCheckResult{Name: check.Name, StepIndex: ac.Step, Phase: v1beta1.MetricCheckRunning, StartedAt: &now}
		} else {
			res = res.DeepCopy()
		}
		if res.Phase == v1beta1.MetricCheckRunning {
			if due := nextDue(res, check); !ac.Now.Before(due) {
				a.measure(ctx, ac, check, res, now)
				decide(res, check)
			}
		}
		switch res.Phase {
		case v1beta1.MetricCheckFailed:
			failed = append(failed, fmt.Sprintf("check %s failed: %s", check.Name, res.Message))
		case v1beta1.MetricCheckError, v1beta1.MetricCheckInconclusive:
			paused = append(paused, fmt.Sprintf("check %s: %s", check.Name, res.Message))
		case v1beta1.MetricCheckRunning:
			running = true
			wait := nextDue(res, check).Sub(ac.Now)
			if next == 0 || wait < next {
				next = wait
			}
		}
		results = append(results, *res)
	}
	out := release.AnalysisOutcome{Results: results}
	switch {
	case len(failed) > 0:
		out.Verdict, out.Message = release.AnalysisFailed, strings.Join(failed, "; ")
	case len(paused) > 0:
		out.Verdict, out.Message = release.AnalysisPaused, strings.Join(paused, "; ")
	case running:
		out.Verdict, out.RetryAfter = release.AnalysisRunning, max(next, time.Second)
	default:
		out.Verdict = release.AnalysisPassed
	}
	return out, nil
}

// keepOtherSteps returns the results of steps other than step: what earlier
// steps' checks decided stays visible.
func keepOtherSteps(results []v1beta1.MetricCheckResult, step int32) []v1beta1.MetricCheckResult {
	var out []v1beta1.MetricCheckResult
	for _, r := range results {
		if r.StepIndex != step {
			out = append(out, r)
		}
	}
	return out
}

func find(results []v1beta1.MetricCheckResult, name string, step int32) *v1beta1.MetricCheckResult {
	for i := range results {
		if results[i].Name == name && results[i].StepIndex == step {
			return &results[i]
		}
	}
	return nil
}

// nextDue is one interval after the last measurement, or after the start.
func nextDue(res *v1beta1.MetricCheckResult, check *v1beta1.MetricCheck) time.Time {
	interval := check.Interval.Duration
	if interval <= 0 {
		interval = rollout.DefaultMetricCheckInterval
	}
	last := res.StartedAt
	if res.LastMeasuredAt != nil {
		last = res.LastMeasuredAt
	}
	if last == nil {
		return time.Time{}
	}
	return last.Add(interval)
}

// measure takes one measurement and adds it to res.
func (a *Analyzer) measure(ctx context.Context, ac *release.AnalysisContext, check *v1beta1.MetricCheck, res *v1beta1.MetricCheckResult, now metav1.Time) {
	m := v1beta1.Measurement{Time: now}
	value, err := a.query(ctx, ac, check)
	switch {
	case err != nil:
		m.Phase, m.Message = v1beta1.MetricCheckError, err.Error()
	case value.Inconclusive != "":
		m.Phase, m.Message = v1beta1.MetricCheckInconclusive, value.Inconclusive
		if math.IsNaN(value.Number) {
			m.Value = "NaN"
		}
	default:
		m.Value = formatValue(value.Number)
		ok, why, err := judge(check, value.Number)
		switch {
		case err != nil:
			m.Phase, m.Message = v1beta1.MetricCheckError, err.Error()
		case ok:
			m.Phase = v1beta1.MetricCheckSuccessful
		default:
			m.Phase, m.Message = v1beta1.MetricCheckFailed, why
		}
	}
	m.Message = truncate(m.Message, maxMessage)
	res.LastMeasuredAt = &now
	res.LastValue = m.Value
	switch m.Phase {
	case v1beta1.MetricCheckSuccessful:
		res.Successful++
	case v1beta1.MetricCheckFailed:
		res.Failed++
	case v1beta1.MetricCheckInconclusive:
		res.Inconclusive++
	case v1beta1.MetricCheckError:
		res.Errors++
		res.ConsecutiveErrors++
	}
	if m.Phase != v1beta1.MetricCheckError {
		res.Count++
		res.ConsecutiveErrors = 0
	}
	res.Measurements = append(res.Measurements, m)
	if n := len(res.Measurements) - rollout.MaxMeasurements; n > 0 {
		res.Measurements = append([]v1beta1.Measurement(nil), res.Measurements[n:]...)
	}
	if a.Recorder != nil {
		a.Recorder.Measured(m.Phase)
	}
	klog.V(2).InfoS("Metric measured", "rollout", klog.KObj(ac.Rollout), "step", ac.Step, "check", check.Name,
		"phase", m.Phase, "value", m.Value, "message", m.Message)
}

// maxMessage bounds a measurement's message (an error from a server can be long).
const maxMessage = 256

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func formatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// query renders the check's query and asks its provider.
func (a *Analyzer) query(ctx context.Context, ac *release.AnalysisContext, check *v1beta1.MetricCheck) (Value, error) {
	prom := check.Provider.Prometheus
	if prom == nil || a.Prometheus == nil {
		return Value{}, fmt.Errorf("no metric provider for check %s", check.Name)
	}
	address := a.Addresses.Resolve(prom.Address)
	if address == "" {
		return Value{}, fmt.Errorf("the check names no Prometheus address and the server has no default")
	}
	if !a.Addresses.Allows(address) {
		return Value{}, fmt.Errorf("the server does not allow Prometheus address %q", address)
	}
	query, err := Render(prom.Query, Variables(ac))
	if err != nil {
		return Value{}, err
	}
	return a.Prometheus.Query(ctx, address, query, ac.Now)
}

// Variables are the values of a release that a query may use.
func Variables(ac *release.AnalysisContext) map[string]string {
	ro := ac.Rollout
	vars := map[string]string{
		VarNamespace: ro.Namespace,
		VarRollout:   ro.Name,
		VarWorkload:  ro.Spec.WorkloadRef.Name,
	}
	if cs := ro.Status.CanaryStatus; cs != nil {
		vars[VarCanaryRevision] = cs.CanaryRevision
		vars[VarStableRevision] = cs.StableRevision
	} else {
		vars[VarCanaryRevision], vars[VarStableRevision] = "", ""
	}
	return vars
}

// judge applies the check's thresholdRange and successCondition (both must
// hold when both are set) and says why a value misses.
func judge(check *v1beta1.MetricCheck, v float64) (bool, string, error) {
	if r := check.ThresholdRange; r != nil {
		if r.Min != nil && v < r.Min.AsApproximateFloat64() {
			return false, fmt.Sprintf("value %s is below the minimum %s", formatValue(v), formatValue(r.Min.AsApproximateFloat64())), nil
		}
		if r.Max != nil && v > r.Max.AsApproximateFloat64() {
			return false, fmt.Sprintf("value %s is above the maximum %s", formatValue(v), formatValue(r.Max.AsApproximateFloat64())), nil
		}
	}
	if expr := check.SuccessCondition; expr != "" {
		prg, err := compile(expr)
		if err != nil {
			return false, "", fmt.Errorf("successCondition: %w", err)
		}
		ok, err := validation.EvaluateSuccessCondition(prg, v)
		if err != nil {
			return false, "", err
		}
		if !ok {
			return false, fmt.Sprintf("value %s does not satisfy %q", formatValue(v), expr), nil
		}
	}
	return true, "", nil
}

// compile compiles a successCondition; the same limits as at admission apply.
func compile(expr string) (cel.Program, error) {
	return validation.CompileSuccessCondition(expr)
}

// decide sets the check's phase from its counts (see the package comment).
func decide(res *v1beta1.MetricCheckResult, check *v1beta1.MetricCheck) {
	errLimit := int32(rollout.DefaultConsecutiveErrorLimit)
	if check.ConsecutiveErrorLimit != nil {
		errLimit = *check.ConsecutiveErrorLimit
	}
	last := ""
	if n := len(res.Measurements); n > 0 {
		m := res.Measurements[n-1]
		last = m.Message
		if last == "" && m.Value != "" {
			last = "value " + m.Value
		}
	}
	switch {
	case res.Failed > check.FailureLimit:
		res.Phase = v1beta1.MetricCheckFailed
		res.Message = fmt.Sprintf("%s (%d failed measurements, failureLimit %d)", last, res.Failed, check.FailureLimit)
	case res.ConsecutiveErrors > errLimit:
		res.Phase = v1beta1.MetricCheckError
		res.Message = fmt.Sprintf("%d measurements in a row could not be taken (consecutiveErrorLimit %d); last error: %s", res.ConsecutiveErrors, errLimit, last)
	case res.Inconclusive > check.InconclusiveLimit:
		res.Phase = v1beta1.MetricCheckInconclusive
		res.Message = fmt.Sprintf("%d inconclusive measurements (inconclusiveLimit %d); last: %s", res.Inconclusive, check.InconclusiveLimit, last)
	case res.Count >= max(check.Count, 1):
		res.Phase = v1beta1.MetricCheckSuccessful
		res.Message = fmt.Sprintf("%d of %d measurements passed", res.Successful, res.Count)
	default:
		res.Phase = v1beta1.MetricCheckRunning
		res.Message = fmt.Sprintf("%d of %d measurements taken; last: %s", res.Count, max(check.Count, 1), last)
	}
	res.Message = truncate(res.Message, 2*maxMessage)
}
