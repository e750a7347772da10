package v1alpha1

// The typed strings of this version; their values are those of the internal
// package (rollout.RolloutPhaseHealthy and so on).

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
