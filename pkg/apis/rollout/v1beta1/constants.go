package v1beta1

import "github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"

// The typed values of this version; their spelling lives once, in the internal package.

// RolloutPhase is the overall state of a Rollout.
type RolloutPhase string

// CanaryStepState is the state of the current step.
type CanaryStepState string

// RolloutConditionType names a condition.
type RolloutConditionType string

// FinalisingStepType is a stage of finishing a release.
type FinalisingStepType string

// RolloutActionType is an action requested through a subresource.
type RolloutActionType string

// MetricCheckPhase is the state of a metric check.
type MetricCheckPhase string

// Values of the typed strings above.
const (
	RolloutPhaseInitial                  = RolloutPhase(rollout.RolloutPhaseInitial)
	RolloutPhaseHealthy                  = RolloutPhase(rollout.RolloutPhaseHealthy)
	RolloutPhaseProgressing              = RolloutPhase(rollout.RolloutPhaseProgressing)
	RolloutPhaseAborted                  = RolloutPhase(rollout.RolloutPhaseAborted)
	RolloutPhaseTerminating              = RolloutPhase(rollout.RolloutPhaseTerminating)
	RolloutPhaseDisabled                 = RolloutPhase(rollout.RolloutPhaseDisabled)
	RolloutPhaseDisabling                = RolloutPhase(rollout.RolloutPhaseDisabling)
	CanaryStepStateInit                  = CanaryStepState(rollout.CanaryStepStateInit)
	CanaryStepStateUpgrade               = CanaryStepState(rollout.CanaryStepStateUpgrade)
	CanaryStepStateTrafficRouting        = CanaryStepState(rollout.CanaryStepStateTrafficRouting)
	CanaryStepStateMetricsAnalysis       = CanaryStepState(rollout.CanaryStepStateMetricsAnalysis)
	CanaryStepStatePaused                = CanaryStepState(rollout.CanaryStepStatePaused)
	CanaryStepStateReady                 = CanaryStepState(rollout.CanaryStepStateReady)
	CanaryStepStateCompleted             = CanaryStepState(rollout.CanaryStepStateCompleted)
	RolloutConditionProgressing          = RolloutConditionType(rollout.RolloutConditionProgressing)
	RolloutConditionSucceeded            = RolloutConditionType(rollout.RolloutConditionSucceeded)
	RolloutConditionTerminating          = RolloutConditionType(rollout.RolloutConditionTerminating)
	RolloutConditionTrafficRouting       = RolloutConditionType(rollout.RolloutConditionTrafficRouting)
	FinalisingStepRouteTrafficToNew      = FinalisingStepType(rollout.FinalisingStepRouteTrafficToNew)
	FinalisingStepRouteTrafficToStable   = FinalisingStepType(rollout.FinalisingStepRouteTrafficToStable)
	FinalisingStepRestoreStableService   = FinalisingStepType(rollout.FinalisingStepRestoreStableService)
	FinalisingStepRemoveCanaryService    = FinalisingStepType(rollout.FinalisingStepRemoveCanaryService)
	FinalisingStepResumeWorkload         = FinalisingStepType(rollout.FinalisingStepResumeWorkload)
	FinalisingStepReleaseWorkloadControl = FinalisingStepType(rollout.FinalisingStepReleaseWorkloadControl)
	FinalisingStepScaleDownStable        = FinalisingStepType(rollout.FinalisingStepScaleDownStable)
	FinalisingStepTypeEnd                = FinalisingStepType(rollout.FinalisingStepTypeEnd)
	RolloutActionPromote                 = RolloutActionType(rollout.RolloutActionPromote)
	RolloutActionAbort                   = RolloutActionType(rollout.RolloutActionAbort)
	RolloutActionRetry                   = RolloutActionType(rollout.RolloutActionRetry)
	MetricCheckRunning                   = MetricCheckPhase(rollout.MetricCheckRunning)
	MetricCheckSuccessful                = MetricCheckPhase(rollout.MetricCheckSuccessful)
	MetricCheckFailed                    = MetricCheckPhase(rollout.MetricCheckFailed)
	MetricCheckError                     = MetricCheckPhase(rollout.MetricCheckError)
	MetricCheckInconclusive              = MetricCheckPhase(rollout.MetricCheckInconclusive)
	MetricCheckSkipped                   = MetricCheckPhase(rollout.MetricCheckSkipped)
)

// Untyped values: condition reasons, abort reasons, labels, annotations, kinds.
const (
	ProgressingReasonInitializing      = rollout.ProgressingReasonInitializing
	ProgressingReasonInRolling         = rollout.ProgressingReasonInRolling
	ProgressingReasonFinalising        = rollout.ProgressingReasonFinalising
	ProgressingReasonCompleted         = rollout.ProgressingReasonCompleted
	ProgressingReasonCancelling        = rollout.ProgressingReasonCancelling
	ProgressingReasonPaused            = rollout.ProgressingReasonPaused
	ProgressingReasonAborted           = rollout.ProgressingReasonAborted
	TerminatingReasonInTerminating     = rollout.TerminatingReasonInTerminating
	TerminatingReasonCompleted         = rollout.TerminatingReasonCompleted
	AbortReasonUser                    = rollout.AbortReasonUser
	AbortReasonMetricCheck             = rollout.AbortReasonMetricCheck
	AbortReasonProgressDeadline        = rollout.AbortReasonProgressDeadline
	RolloutIDAnnotation                = rollout.RolloutIDAnnotation
	WorkloadControlLabel               = rollout.WorkloadControlLabel
	WorkloadOriginalStrategyAnnotation = rollout.WorkloadOriginalStrategyAnnotation
	KindDeployment                     = rollout.KindDeployment
	KindStatefulSet                    = rollout.KindStatefulSet
	KindDaemonSet                      = rollout.KindDaemonSet
)
