package rollout

import "time"

// Typed values of the API. Each versioned package defines its own types with
// these same values, so there is a single place where a value is spelled.

// RolloutPhase is the overall state of a Rollout.
type RolloutPhase string

// Phases of a Rollout.
const (
	RolloutPhaseInitial     RolloutPhase = "Initial"
	RolloutPhaseHealthy     RolloutPhase = "Healthy"
	RolloutPhaseProgressing RolloutPhase = "Progressing"
	// RolloutPhaseAborted: a release was aborted; the workload keeps the
	// template the user wrote and is held on the stable revision until the
	// template changes or the release is retried.
	RolloutPhaseAborted     RolloutPhase = "Aborted"
	RolloutPhaseTerminating RolloutPhase = "Terminating"
	RolloutPhaseDisabled    RolloutPhase = "Disabled"
	RolloutPhaseDisabling   RolloutPhase = "Disabling"
)

// CanaryStepState is the state of the current step.
type CanaryStepState string

// Step states, in the order a step goes through them.
const (
	CanaryStepStateInit            CanaryStepState = "BeforeStepUpgrade"
	CanaryStepStateUpgrade         CanaryStepState = "StepUpgrade"
	CanaryStepStateTrafficRouting  CanaryStepState = "StepTrafficRouting"
	CanaryStepStateMetricsAnalysis CanaryStepState = "StepMetricsAnalysis"
	CanaryStepStatePaused          CanaryStepState = "StepPaused"
	CanaryStepStateReady           CanaryStepState = "StepReady"
	CanaryStepStateCompleted       CanaryStepState = "Completed"
)

// RolloutConditionType names a condition.
type RolloutConditionType string

// Condition types and their reasons.
const (
	RolloutConditionProgressing RolloutConditionType = "Progressing"
	RolloutConditionSucceeded   RolloutConditionType = "Succeeded"
	RolloutConditionTerminating RolloutConditionType = "Terminating"
	// RolloutConditionTrafficRouting is False, with the routing object and the
	// API's answer in its message, while traffic cannot be routed as the step
	// asks; True once it is.
	RolloutConditionTrafficRouting RolloutConditionType = "TrafficRouting"

	ProgressingReasonInitializing = "Initializing"
	ProgressingReasonInRolling    = "InRolling"
	ProgressingReasonFinalising   = "Finalising"
	ProgressingReasonCompleted    = "Completed"
	ProgressingReasonCancelling   = "Cancelling"
	ProgressingReasonPaused       = "Paused"
	ProgressingReasonAborted      = "Aborted"

	TerminatingReasonInTerminating = "InTerminating"
	TerminatingReasonCompleted     = "Completed"
)

// FinalisingStepType is a stage of finishing a release.
type FinalisingStepType string

// Finalising stages, in order.
const (
	FinalisingStepRouteTrafficToNew      FinalisingStepType = "FinalisingStepRouteTrafficToNew"
	FinalisingStepRouteTrafficToStable   FinalisingStepType = "FinalisingStepRouteTrafficToStable"
	FinalisingStepRestoreStableService   FinalisingStepType = "RestoreStableService"
	FinalisingStepRemoveCanaryService    FinalisingStepType = "RemoveCanaryService"
	FinalisingStepResumeWorkload         FinalisingStepType = "ResumeWorkload"
	FinalisingStepReleaseWorkloadControl FinalisingStepType = "ReleaseWorkloadControl"
	// FinalisingStepScaleDownStable scales the old revision of a blue-green
	// release away, once traffic has switched to the new one.
	FinalisingStepScaleDownStable FinalisingStepType = "ScaleDownStable"
	FinalisingStepTypeEnd         FinalisingStepType = "END"
)

// RolloutActionType is an action requested through a subresource.
type RolloutActionType string

// Actions that wait in status.pendingAction.
const (
	RolloutActionPromote RolloutActionType = "Promote"
	RolloutActionAbort   RolloutActionType = "Abort"
	RolloutActionRetry   RolloutActionType = "Retry"
)

// MetricCheckPhase is the state of a metric check.
type MetricCheckPhase string

// Metric check phases.
const (
	MetricCheckRunning    MetricCheckPhase = "Running"
	MetricCheckSuccessful MetricCheckPhase = "Successful"
	MetricCheckFailed     MetricCheckPhase = "Failed"
	MetricCheckError      MetricCheckPhase = "Error"
	// MetricCheckInconclusive: too many inconclusive measurements; the release paused.
	MetricCheckInconclusive MetricCheckPhase = "Inconclusive"
	// MetricCheckSkipped: the step was promoted while the check was running.
	MetricCheckSkipped MetricCheckPhase = "Skipped"
)

// Reasons recorded in status.abort.reason.
const (
	AbortReasonUser             = "UserAbort"
	AbortReasonMetricCheck      = "MetricCheckFailed"
	AbortReasonProgressDeadline = "ProgressDeadlineExceeded"
)

// Labels and annotations written by rollout-apiserver.
const (
	// RolloutIDAnnotation on a workload starts a new release when it changes,
	// even if the pod template did not.
	RolloutIDAnnotation = "rollout.kruise.io/rollout-id"
	// WorkloadControlLabel marks workloads that a Rollout references; the
	// workload webhook's objectSelector matches it, so other workloads never
	// depend on this server.
	WorkloadControlLabel = "rollout.kruise.io/controlled"
	// WorkloadOriginalStrategyAnnotation holds the workload fields that the
	// webhook changed to hold a release, so they can be restored exactly.
	WorkloadOriginalStrategyAnnotation = "rollout.kruise.io/original-strategy"
)

// Supported workload kinds.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// Defaults of a metric check, applied by every version's defaulting.
const (
	DefaultMetricCheckInterval = 30 * time.Second
	DefaultMetricCheckCount    = 1
	// DefaultConsecutiveErrorLimit tolerates a Prometheus restart or a brief
	// network fault before the release pauses.
	DefaultConsecutiveErrorLimit = 4
	// MaxMeasurements is how many measurements of a check status keeps.
	MaxMeasurements = 10
)
