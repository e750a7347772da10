package release

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// TrafficRouter moves traffic between the stable and the canary revision. The
// step machine calls it in the StepTrafficRouting state and in the traffic
// stages of finalisation. Traffic providers (canary Service, Ingress, Gateway
// API, Istio) come with a later issue; until then NoopTrafficRouter passes
// every call straight through, so those states cost nothing.
type TrafficRouter interface {
	// Prepare readies the Services before a step's pods move: the canary
	// Service exists and the stable Service selects only the stable
	// revision, so that no new pod ever serves the stable Service's traffic.
	Prepare(ctx context.Context, rc *RouteContext) error
	// Route sends the current step's traffic share (or matches) to the canary.
	// It returns done=false, with a time to look again, while it waits (for
	// example for a grace period after a change).
	Route(ctx context.Context, rc *RouteContext) (done bool, retryAfter time.Duration, err error)
	// Finalise performs one traffic stage of finalisation: route traffic back
	// to stable, restore the stable Service, or remove the canary Service.
	Finalise(ctx context.Context, rc *RouteContext, stage v1beta1.FinalisingStepType) (done bool, retryAfter time.Duration, err error)
}

// RouteContext is what a TrafficRouter needs to know about the release.
type RouteContext struct {
	// Rollout being released; read-only.
	Rollout *v1beta1.Rollout
	// Step is the current step (1-based); 0 during finalisation.
	Step int32
	// Workload as last observed.
	Workload *workload.Info
	// Status is the canary status this pass writes; the router records in
	// its traffic field what it is about to route before routing it, and
	// clears it once traffic is back on stable. Nil when there is none.
	Status *v1beta1.CanaryStatus
}

// NoopTrafficRouter routes nothing: the release runs on pod counts alone.
type NoopTrafficRouter struct{}

// Prepare implements TrafficRouter.
func (NoopTrafficRouter) Prepare(context.Context, *RouteContext) error { return nil }

// Route implements TrafficRouter.
func (NoopTrafficRouter) Route(context.Context, *RouteContext) (bool, time.Duration, error) {
	return true, 0, nil
}

// Finalise implements TrafficRouter.
func (NoopTrafficRouter) Finalise(context.Context, *RouteContext, v1beta1.FinalisingStepType) (bool, time.Duration, error) {
	return true, 0, nil
}

// Analyzer runs the metric checks that gate a step. The step machine calls it
// in the StepMetricsAnalysis state; package analysis is the real one, and
// NoopAnalyzer passes every step (for tests and a server without checks).
type Analyzer interface {
	// Analyze takes the measurements that are due for the current step and
	// returns the verdict with the updated results for status.analysisResults.
	Analyze(ctx context.Context, ac *AnalysisContext) (AnalysisOutcome, error)
}

// AnalysisContext is what an Analyzer needs to know about the step.
type AnalysisContext struct {
	// Rollout being released; read-only.
	Rollout *v1beta1.Rollout
	// Step is the current step (1-based).
	Step int32
	// Analysis is the step's checks (its own, or the strategy's default); nil
	// when the step has none.
	Analysis *v1beta1.RolloutAnalysis
	// Results are the step's results so far, from status.
	Results []v1beta1.MetricCheckResult
	// Now is the reconcile's time.
	Now time.Time
}

// AnalysisVerdict is where a step's checks stand.
type AnalysisVerdict string

// Verdicts of an analysis.
const (
	// AnalysisRunning: more measurements are due; look again after RetryAfter.
	AnalysisRunning AnalysisVerdict = "Running"
	// AnalysisPassed: every check passed; the step goes on.
	AnalysisPassed AnalysisVerdict = "Passed"
	// AnalysisFailed: a check failed; the release is aborted and rolled back.
	AnalysisFailed AnalysisVerdict = "Failed"
	// AnalysisPaused: a check had too many errors or inconclusive results to
	// decide; the release pauses (spec.strategy.paused) until a user resumes
	// it, and never goes on by itself.
	AnalysisPaused AnalysisVerdict = "Paused"
)

// AnalysisOutcome is the result of one Analyze call.
type AnalysisOutcome struct {
	// Verdict of the step's checks.
	Verdict AnalysisVerdict
	// Results replace status.analysisResults.
	Results []v1beta1.MetricCheckResult
	// Message explains a failure or a pause; it becomes the abort message or
	// the pause condition's message.
	Message string
	// RetryAfter is when the next measurement is due, while Running.
	RetryAfter time.Duration
}

// Observer is told about every reconcile and every status write, for the
// controller's own metrics. Optional.
type Observer interface {
	// ReconcileDone reports how long one reconcile took.
	ReconcileDone(d time.Duration)
	// StatusWritten reports a status written over old at time now. cur is the
	// status as the pass built it, so the times the pass set are exact (the
	// stored copy keeps whole seconds).
	StatusWritten(ro *v1beta1.Rollout, old, cur *v1beta1.RolloutStatus, now time.Time)
	// Forget reports a Rollout that is gone.
	Forget(namespace, name string)
}

// NoopAnalyzer passes every step without measuring.
type NoopAnalyzer struct{}

// Analyze implements Analyzer.
func (NoopAnalyzer) Analyze(_ context.Context, ac *AnalysisContext) (AnalysisOutcome, error) {
	return AnalysisOutcome{Verdict: AnalysisPassed, Results: ac.Results}, nil
}

// pausedChecks describes the checks of step that paused the release, or "".
func pausedChecks(results []v1beta1.MetricCheckResult, step int32) string {
	var out []string
	for _, r := range results {
		if r.StepIndex == step && (r.Phase == v1beta1.MetricCheckError || r.Phase == v1beta1.MetricCheckInconclusive) {
			out = append(out, fmt.Sprintf("check %s: %s", r.Name, r.Message))
		}
	}
	return strings.Join(out, "; ")
}

// resumeChecks lets the paused checks of step measure again after a resume:
// their error and inconclusive counts start over, what they measured stays.
func resumeChecks(results []v1beta1.MetricCheckResult, step int32) {
	for i := range results {
		r := &results[i]
		if r.StepIndex == step && (r.Phase == v1beta1.MetricCheckError || r.Phase == v1beta1.MetricCheckInconclusive) {
			r.Phase = v1beta1.MetricCheckRunning
			r.ConsecutiveErrors, r.Inconclusive = 0, 0
			r.Message = "resumed: " + r.Message
		}
	}
}

// skipChecks records that step was promoted while its checks were running.
func skipChecks(results []v1beta1.MetricCheckResult, step int32, who string) {
	for i := range results {
		r := &results[i]
		if r.StepIndex == step && r.Phase == v1beta1.MetricCheckRunning {
			r.Phase = v1beta1.MetricCheckSkipped
			r.Message = fmt.Sprintf("promoted by %s after %d measurements", who, r.Count)
		}
	}
}

// compactResults keeps what earlier steps' checks decided but not their
// measurements, so status stays small as a release moves through its steps.
func compactResults(results []v1beta1.MetricCheckResult) []v1beta1.MetricCheckResult {
	if len(results) == 0 {
		return nil
	}
	out := make([]v1beta1.MetricCheckResult, len(results))
	for i := range results {
		out[i] = *results[i].DeepCopy()
		out[i].Measurements = nil
	}
	return out
}
