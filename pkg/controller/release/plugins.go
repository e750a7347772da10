package release

import (
	"context"
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

// Route implements TrafficRouter.
func (NoopTrafficRouter) Route(context.Context, *RouteContext) (bool, time.Duration, error) {
	return true, 0, nil
}

// Finalise implements TrafficRouter.
func (NoopTrafficRouter) Finalise(context.Context, *RouteContext, v1beta1.FinalisingStepType) (bool, time.Duration, error) {
	return true, 0, nil
}

// Analyzer runs the metric checks that gate a step. The step machine calls it
// in the StepMetricsAnalysis state. Metric providers (Prometheus) come with a
// later issue; until then NoopAnalyzer passes every step.
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
)

// AnalysisOutcome is the result of one Analyze call.
type AnalysisOutcome struct {
	// Verdict of the step's checks.
	Verdict AnalysisVerdict
	// Results replace status.analysisResults.
	Results []v1beta1.MetricCheckResult
	// Message explains a failure; it becomes the abort message.
	Message string
	// RetryAfter is when the next measurement is due, while Running.
	RetryAfter time.Duration
}

// NoopAnalyzer passes every step without measuring.
type NoopAnalyzer struct{}

// Analyze implements Analyzer.
func (NoopAnalyzer) Analyze(_ context.Context, ac *AnalysisContext) (AnalysisOutcome, error) {
	return AnalysisOutcome{Verdict: AnalysisPassed, Results: ac.Results}, nil
}
