package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// +genclient
// +genclient:method=Promote,verb=create,subresource=promote,input=RolloutPromote,result=Rollout
// +genclient:method=Pause,verb=create,subresource=pause,input=RolloutPause,result=Rollout
// +genclient:method=Resume,verb=create,subresource=resume,input=RolloutResume,result=Rollout
// +genclient:method=Abort,verb=create,subresource=abort,input=RolloutAbort,result=Rollout
// +genclient:method=Retry,verb=create,subresource=retry,input=RolloutRetry,result=Rollout
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Rollout releases a new version of the workload it references in steps:
// a batch of new pods, a share of the traffic, metric checks, then a pause.
type Rollout struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// Spec is how the workload is released.
	// +optional
	Spec RolloutSpec `json:"spec,omitempty" protobuf:"bytes,2,opt,name=spec"`
	// Status is what the controller observed and did; written through the status subresource.
	// +optional
	Status RolloutStatus `json:"status,omitempty" protobuf:"bytes,3,opt,name=status"`
}

// RolloutSpec is the desired release behaviour for one workload.
type RolloutSpec struct {
	// ObjectRef names the workload whose pod template changes are released by this Rollout.
	ObjectRef ObjectRef `json:"objectRef" protobuf:"bytes,1,opt,name=objectRef"`
	// Strategy says how a new revision is released.
	Strategy RolloutStrategy `json:"strategy" protobuf:"bytes,2,opt,name=strategy"`
	// Disabled stops the Rollout from acting; a release in progress is handed back
	// to the workload's own strategy.
	// +optional
	Disabled bool `json:"disabled" protobuf:"varint,3,opt,name=disabled"`
	// ProgressDeadlineSeconds is how long a step may take to become ready before the
	// release is aborted and rolled back. Unset means no deadline.
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty" protobuf:"varint,4,opt,name=progressDeadlineSeconds"`
}

// ObjectRef holds the reference to the workload (v1alpha1 shape).
type ObjectRef struct {
	// WorkloadRef names a Deployment, StatefulSet or DaemonSet in the Rollout's namespace.
	// +optional
	WorkloadRef *WorkloadRef `json:"workloadRef,omitempty" protobuf:"bytes,1,opt,name=workloadRef"`
}

// WorkloadRef references a workload in the Rollout's namespace.
type WorkloadRef struct {
	// APIVersion of the referent, e.g. apps/v1.
	APIVersion string `json:"apiVersion" protobuf:"bytes,1,opt,name=apiVersion"`
	// Kind of the referent, e.g. Deployment.
	Kind string `json:"kind" protobuf:"bytes,2,opt,name=kind"`
	// Name of the referent.
	Name string `json:"name" protobuf:"bytes,3,opt,name=name"`
}

// RolloutStrategy holds exactly one of canary or blueGreen.
type RolloutStrategy struct {
	// Paused stops the release where it is until it is set to false again
	// (the pause and resume subresources set it).
	// +optional
	Paused bool `json:"paused,omitempty" protobuf:"varint,1,opt,name=paused"`
	// Canary releases the new revision in batches beside the old one.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty" protobuf:"bytes,2,opt,name=canary"`
	// BlueGreen brings up the new revision beside the old one and then switches traffic.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty" protobuf:"bytes,3,opt,name=blueGreen"`
	// AbortRewritesTemplate makes an abort write the stable revision's pod
	// template back into the workload and hand it back, as this server did
	// before it held aborted workloads. Without it an abort keeps the template
	// as the user wrote it and holds the workload on the stable revision
	// (phase Aborted) until the template changes or the release is retried,
	// so a GitOps tool that keeps the workload equal to git sees no drift.
	// +optional
	AbortRewritesTemplate bool `json:"abortRewritesTemplate,omitempty" protobuf:"varint,4,opt,name=abortRewritesTemplate"`
}

// CanaryStrategy releases a new revision in steps.
type CanaryStrategy struct {
	// Steps of the release, in order. The last step normally has replicas 100%.
	// +listType=atomic
	Steps []CanaryStep `json:"steps,omitempty" protobuf:"bytes,1,rep,name=steps"`
	// TrafficRoutings says how traffic reaches the new revision; at most one entry.
	// +optional
	// +listType=atomic
	TrafficRoutings []TrafficRoutingRef `json:"trafficRoutings,omitempty" protobuf:"bytes,2,rep,name=trafficRoutings"`
	// FailureThreshold is how many (or what share of) new pods may be unready
	// while a step still counts as ready. Default: all must be ready.
	// +optional
	FailureThreshold *intstr.IntOrString `json:"failureThreshold,omitempty" protobuf:"bytes,3,opt,name=failureThreshold"`
	// PatchPodTemplateMetadata adds labels and annotations to the pods of the new revision.
	// +optional
	PatchPodTemplateMetadata *PatchPodTemplateMetadata `json:"patchPodTemplateMetadata,omitempty" protobuf:"bytes,4,opt,name=patchPodTemplateMetadata"`
	// EnableExtraWorkloadForCanary releases a Deployment through an extra canary
	// Deployment instead of in place. Unset, it follows Kruise's v1alpha1 rule:
	// true for a Deployment unless the Rollout is annotated
	// rollouts.kruise.io/rolling-style (or rollout.kruise.io/rolling-style): partition.
	// +optional
	EnableExtraWorkloadForCanary *bool `json:"enableExtraWorkloadForCanary,omitempty" protobuf:"varint,5,opt,name=enableExtraWorkloadForCanary"`
	// DisableGenerateCanaryService stops the controller from creating a canary Service.
	// +optional
	DisableGenerateCanaryService bool `json:"disableGenerateCanaryService,omitempty" protobuf:"varint,6,opt,name=disableGenerateCanaryService"`
	// Analysis is the metric checks run at every step that has none of its own.
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty" protobuf:"bytes,7,opt,name=analysis"`
}

// BlueGreenStrategy brings up the new revision fully before traffic moves to it.
type BlueGreenStrategy struct {
	// Steps of the release, in order.
	// +listType=atomic
	Steps []CanaryStep `json:"steps,omitempty" protobuf:"bytes,1,rep,name=steps"`
	// TrafficRoutings says how traffic reaches the new revision; at most one entry.
	// +optional
	// +listType=atomic
	TrafficRoutings []TrafficRoutingRef `json:"trafficRoutings,omitempty" protobuf:"bytes,2,rep,name=trafficRoutings"`
	// FailureThreshold is how many (or what share of) new pods may be unready
	// while a step still counts as ready.
	// +optional
	FailureThreshold *intstr.IntOrString `json:"failureThreshold,omitempty" protobuf:"bytes,3,opt,name=failureThreshold"`
	// DisableGenerateCanaryService stops the controller from creating a canary Service.
	// +optional
	DisableGenerateCanaryService bool `json:"disableGenerateCanaryService,omitempty" protobuf:"varint,4,opt,name=disableGenerateCanaryService"`
	// Analysis is the metric checks run at every step that has none of its own.
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty" protobuf:"bytes,5,opt,name=analysis"`
}

// PatchPodTemplateMetadata is metadata added to the pods of the new revision.
type PatchPodTemplateMetadata struct {
	// Annotations to add.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty" protobuf:"bytes,1,rep,name=annotations"`
	// Labels to add.
	// +optional
	Labels map[string]string `json:"labels,omitempty" protobuf:"bytes,2,rep,name=labels"`
}

// CanaryStep is one step of a release.
type CanaryStep struct {
	TrafficRoutingStrategy `json:",inline" protobuf:"bytes,1,opt,name=trafficRoutingStrategy"`
	// Replicas of the new revision at this step: a number or a percentage of the
	// workload's replicas such as "20%". Non-decreasing across steps.
	// +optional
	Replicas *intstr.IntOrString `json:"replicas,omitempty" protobuf:"bytes,2,opt,name=replicas"`
	// Pause after the step is ready. Without a duration the step waits for promote.
	// +optional
	Pause StepPause `json:"pause,omitempty" protobuf:"bytes,3,opt,name=pause"`
	// Analysis overrides the strategy's metric checks for this step.
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty" protobuf:"bytes,4,opt,name=analysis"`
}

// TrafficRoutingStrategy is the traffic a step sends to the new revision.
type TrafficRoutingStrategy struct {
	// Weight is the percentage of traffic sent to the new revision, 0 to 100.
	// +optional
	Weight *int32 `json:"weight,omitempty" protobuf:"varint,1,opt,name=weight"`
	// RequestHeaderModifier changes the headers of requests routed to the new revision
	// (Gateway API HTTPHeaderFilter shape).
	// +optional
	RequestHeaderModifier *HTTPHeaderFilter `json:"requestHeaderModifier,omitempty" protobuf:"bytes,2,opt,name=requestHeaderModifier"`
	// Matches routes requests that match any of these to the new revision,
	// independent of Traffic (Gateway API HTTPRouteMatch shape).
	// +optional
	// +listType=atomic
	Matches []HttpRouteMatch `json:"matches,omitempty" protobuf:"bytes,3,rep,name=matches"`
}

// HttpRouteMatch selects requests by path, headers and query parameters; all must match.
type HttpRouteMatch struct {
	// Path to match.
	// +optional
	Path *HTTPPathMatch `json:"path,omitempty" protobuf:"bytes,1,opt,name=path"`
	// Headers to match.
	// +optional
	// +listType=atomic
	Headers []HTTPHeaderMatch `json:"headers,omitempty" protobuf:"bytes,2,rep,name=headers"`
	// QueryParams to match.
	// +optional
	// +listType=atomic
	QueryParams []HTTPQueryParamMatch `json:"queryParams,omitempty" protobuf:"bytes,3,rep,name=queryParams"`
}

// HTTPPathMatch matches a request path.
type HTTPPathMatch struct {
	// Type is Exact, PathPrefix (default) or RegularExpression.
	// +optional
	Type *string `json:"type,omitempty" protobuf:"bytes,1,opt,name=type"`
	// Value of the path to match. Default "/".
	// +optional
	Value *string `json:"value,omitempty" protobuf:"bytes,2,opt,name=value"`
}

// HTTPHeaderMatch matches one request header.
type HTTPHeaderMatch struct {
	// Type is Exact (default) or RegularExpression.
	// +optional
	Type *string `json:"type,omitempty" protobuf:"bytes,1,opt,name=type"`
	// Name of the header.
	Name string `json:"name" protobuf:"bytes,2,opt,name=name"`
	// Value to match.
	Value string `json:"value" protobuf:"bytes,3,opt,name=value"`
}

// HTTPQueryParamMatch matches one query parameter.
type HTTPQueryParamMatch struct {
	// Type is Exact (default) or RegularExpression.
	// +optional
	Type *string `json:"type,omitempty" protobuf:"bytes,1,opt,name=type"`
	// Name of the query parameter.
	Name string `json:"name" protobuf:"bytes,2,opt,name=name"`
	// Value to match.
	Value string `json:"value" protobuf:"bytes,3,opt,name=value"`
}

// HTTPHeaderFilter changes request headers.
type HTTPHeaderFilter struct {
	// Set overwrites these headers.
	// +optional
	// +listType=atomic
	Set []HTTPHeader `json:"set,omitempty" protobuf:"bytes,1,rep,name=set"`
	// Add appends these headers.
	// +optional
	// +listType=atomic
	Add []HTTPHeader `json:"add,omitempty" protobuf:"bytes,2,rep,name=add"`
	// Remove deletes these headers.
	// +optional
	// +listType=atomic
	Remove []string `json:"remove,omitempty" protobuf:"bytes,3,rep,name=remove"`
}

// HTTPHeader is a header name and value.
type HTTPHeader struct {
	// Name of the header.
	Name string `json:"name" protobuf:"bytes,1,opt,name=name"`
	// Value of the header.
	Value string `json:"value" protobuf:"bytes,2,opt,name=value"`
}

// StepPause is how long a step waits once it is ready.
type StepPause struct {
	// Duration in seconds; unset means wait until promoted.
	// +optional
	Duration *int32 `json:"duration,omitempty" protobuf:"varint,1,opt,name=duration"`
}

// TrafficRoutingRef names the objects that route traffic to the workload.
type TrafficRoutingRef struct {
	// Service is the stable Service that selects the workload's pods.
	Service string `json:"service" protobuf:"bytes,1,opt,name=service"`
	// GracePeriodSeconds to wait after a traffic change before the next action.
	// +optional
	GracePeriodSeconds int32 `json:"gracePeriodSeconds,omitempty" protobuf:"varint,2,opt,name=gracePeriodSeconds"`
	// Ingress routes traffic through an Ingress (NGINX canary annotations).
	// +optional
	Ingress *IngressTrafficRouting `json:"ingress,omitempty" protobuf:"bytes,3,opt,name=ingress"`
	// Gateway routes traffic through a Gateway API HTTPRoute.
	// +optional
	Gateway *GatewayTrafficRouting `json:"gateway,omitempty" protobuf:"bytes,4,opt,name=gateway"`
	// CustomNetworkRefs routes traffic through other objects, such as an Istio VirtualService.
	// +optional
	// +listType=atomic
	CustomNetworkRefs []CustomNetworkRef `json:"customNetworkRefs,omitempty" protobuf:"bytes,5,rep,name=customNetworkRefs"`
}

// CustomNetworkRef references an object that routes traffic, such as an Istio VirtualService.
type CustomNetworkRef struct {
	// APIVersion of the referent.
	APIVersion string `json:"apiVersion" protobuf:"bytes,1,opt,name=apiVersion"`
	// Kind of the referent.
	Kind string `json:"kind" protobuf:"bytes,2,opt,name=kind"`
	// Name of the referent.
	Name string `json:"name" protobuf:"bytes,3,opt,name=name"`
}

// IngressTrafficRouting names an Ingress.
type IngressTrafficRouting struct {
	// ClassType of the ingress controller; default nginx.
	// +optional
	ClassType string `json:"classType,omitempty" protobuf:"bytes,1,opt,name=classType"`
	// Name of the Ingress.
	Name string `json:"name" protobuf:"bytes,2,opt,name=name"`
}

// GatewayTrafficRouting names an HTTPRoute.
type GatewayTrafficRouting struct {
	// HTTPRouteName is the name of the HTTPRoute.
	// +optional
	HTTPRouteName *string `json:"httpRouteName,omitempty" protobuf:"bytes,1,opt,name=httpRouteName"`
}

// RolloutAnalysis is a set of metric checks that gate a step.
type RolloutAnalysis struct {
	// Metrics to check; all must pass for the step to go on.
	// +listType=map
	// +listMapKey=name
	Metrics []MetricCheck `json:"metrics,omitempty" protobuf:"bytes,1,rep,name=metrics"`
}

// MetricCheck queries a metric repeatedly and judges each result.
type MetricCheck struct {
	// Name of the check, unique in its list.
	Name string `json:"name" protobuf:"bytes,1,opt,name=name"`
	// Interval between measurements, e.g. "30s".
	// +optional
	Interval metav1.Duration `json:"interval,omitempty" protobuf:"bytes,2,opt,name=interval"`
	// Count of measurements to take; the check passes after Count measurements
	// with no more than FailureLimit failures.
	// +optional
	Count int32 `json:"count,omitempty" protobuf:"varint,3,opt,name=count"`
	// FailureLimit is how many failed measurements are tolerated; one more
	// fails the check and aborts the release.
	// +optional
	FailureLimit int32 `json:"failureLimit,omitempty" protobuf:"varint,4,opt,name=failureLimit"`
	// InconclusiveLimit is how many inconclusive measurements (no data, NaN,
	// more than one series) are tolerated; one more pauses the release.
	// +optional
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty" protobuf:"varint,5,opt,name=inconclusiveLimit"`
	// ConsecutiveErrorLimit is how many measurements in a row that could not be
	// taken (provider unreachable, bad query) are tolerated; one more pauses
	// the release. Default 4.
	// +optional
	ConsecutiveErrorLimit *int32 `json:"consecutiveErrorLimit,omitempty" protobuf:"varint,6,opt,name=consecutiveErrorLimit"`
	// Provider is where the metric comes from.
	Provider MetricProvider `json:"provider" protobuf:"bytes,7,opt,name=provider"`
	// ThresholdRange passes a measurement whose value is within [min, max].
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty" protobuf:"bytes,8,opt,name=thresholdRange"`
	// SuccessCondition is a CEL expression over `result` (a double) that must be
	// true for a measurement to pass, e.g. "result < 0.05".
	// +optional
	SuccessCondition string `json:"successCondition,omitempty" protobuf:"bytes,9,opt,name=successCondition"`
}

// MetricProvider says where a metric is queried.
type MetricProvider struct {
	// Prometheus queries a Prometheus server.
	// +optional
	Prometheus *PrometheusMetric `json:"prometheus,omitempty" protobuf:"bytes,1,opt,name=prometheus"`
}

// PrometheusMetric is an instant PromQL query that yields one number.
type PrometheusMetric struct {
	// Address of the Prometheus server, e.g. http://prometheus.monitoring:9090.
	// Empty means the server's default (--metrics-default-prometheus-address);
	// the server may restrict addresses (--metrics-allowed-prometheus-addresses).
	// +optional
	Address string `json:"address,omitempty" protobuf:"bytes,1,opt,name=address"`
	// Query in PromQL; it must yield a single scalar or a one-element vector.
	Query string `json:"query" protobuf:"bytes,2,opt,name=query"`
}

// ThresholdRange is an inclusive range; either bound may be omitted.
type ThresholdRange struct {
	// Min is the lowest passing value.
	// +optional
	Min *resource.Quantity `json:"min,omitempty" protobuf:"bytes,1,opt,name=min"`
	// Max is the highest passing value.
	// +optional
	Max *resource.Quantity `json:"max,omitempty" protobuf:"bytes,2,opt,name=max"`
}

// RolloutStatus is what the controller observed and did.
type RolloutStatus struct {
	// ObservedGeneration is the spec generation the controller acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty" protobuf:"varint,1,opt,name=observedGeneration"`
	// CanaryStatus is the state of a canary release.
	// +optional
	CanaryStatus *CanaryStatus `json:"canaryStatus,omitempty" protobuf:"bytes,2,opt,name=canaryStatus"`
	// BlueGreenStatus is the state of a blue-green release.
	// +optional
	BlueGreenStatus *BlueGreenStatus `json:"blueGreenStatus,omitempty" protobuf:"bytes,3,opt,name=blueGreenStatus"`
	// Conditions: Progressing, Succeeded, Terminating.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []RolloutCondition `json:"conditions,omitempty" protobuf:"bytes,4,rep,name=conditions"`
	// Phase is Initial, Healthy, Progressing, Aborted, Terminating, Disabled or Disabling.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty" protobuf:"bytes,5,opt,name=phase,casttype=RolloutPhase"`
	// Message says in words what is happening.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,6,opt,name=message"`
	// CurrentStepIndex mirrors the current step (1-based) of the release.
	// +optional
	CurrentStepIndex int32 `json:"currentStepIndex" protobuf:"varint,7,opt,name=currentStepIndex"`
	// CurrentStepState mirrors the state of the current step.
	// +optional
	CurrentStepState CanaryStepState `json:"currentStepState" protobuf:"bytes,8,opt,name=currentStepState,casttype=CanaryStepState"`
	// PendingAction is a promote, abort or retry requested through a subresource and
	// not yet carried out; the controller clears it in the same write that acts on it.
	// +optional
	PendingAction *RolloutActionRequest `json:"pendingAction,omitempty" protobuf:"bytes,9,opt,name=pendingAction"`
	// Abort records why the last release was aborted.
	// +optional
	Abort *RolloutAbortStatus `json:"abort,omitempty" protobuf:"bytes,10,opt,name=abort"`
	// AnalysisResults are the metric checks of the current step.
	// +optional
	// +listType=atomic
	AnalysisResults []MetricCheckResult `json:"analysisResults,omitempty" protobuf:"bytes,11,rep,name=analysisResults"`
}

// RolloutCondition is one observed condition of a Rollout.
type RolloutCondition struct {
	// Type of the condition.
	Type RolloutConditionType `json:"type" protobuf:"bytes,1,opt,name=type,casttype=RolloutConditionType"`
	// Status is True, False or Unknown.
	Status corev1.ConditionStatus `json:"status" protobuf:"bytes,2,opt,name=status,casttype=k8s.io/api/core/v1.ConditionStatus"`
	// LastUpdateTime is when the condition was last written.
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitempty" protobuf:"bytes,3,opt,name=lastUpdateTime"`
	// LastTransitionTime is when the status last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty" protobuf:"bytes,4,opt,name=lastTransitionTime"`
	// Reason in CamelCase.
	Reason string `json:"reason" protobuf:"bytes,5,opt,name=reason"`
	// Message for people.
	Message string `json:"message" protobuf:"bytes,6,opt,name=message"`
}

// CommonStatus is the progress of a release, shared by canary and blue-green.
type CommonStatus struct {
	// ObservedWorkloadGeneration is the workload generation last observed.
	// +optional
	ObservedWorkloadGeneration int64 `json:"observedWorkloadGeneration,omitempty" protobuf:"varint,1,opt,name=observedWorkloadGeneration"`
	// ObservedRolloutID is the rollout-id annotation of the workload last observed.
	// +optional
	ObservedRolloutID string `json:"observedRolloutID,omitempty" protobuf:"bytes,2,opt,name=observedRolloutID"`
	// RolloutHash is a hash of the steps the release was planned with.
	// +optional
	RolloutHash string `json:"rolloutHash,omitempty" protobuf:"bytes,3,opt,name=rolloutHash"`
	// StableRevision is the revision being replaced.
	// +optional
	StableRevision string `json:"stableRevision,omitempty" protobuf:"bytes,4,opt,name=stableRevision"`
	// PodTemplateHash is the pod-template-hash of the new revision.
	PodTemplateHash string `json:"podTemplateHash" protobuf:"bytes,5,opt,name=podTemplateHash"`
	// CurrentStepIndex is the current step, 1-based.
	CurrentStepIndex int32 `json:"currentStepIndex" protobuf:"varint,6,opt,name=currentStepIndex"`
	// NextStepIndex is the step a promote moves to.
	NextStepIndex int32 `json:"nextStepIndex" protobuf:"varint,7,opt,name=nextStepIndex"`
	// FinalisingStep is the stage of finalisation after the last step.
	FinalisingStep FinalisingStepType `json:"finalisingStep" protobuf:"bytes,8,opt,name=finalisingStep,casttype=FinalisingStepType"`
	// CurrentStepState is the state of the current step.
	CurrentStepState CanaryStepState `json:"currentStepState" protobuf:"bytes,9,opt,name=currentStepState,casttype=CanaryStepState"`
	// Message about the current step.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,10,opt,name=message"`
	// LastUpdateTime is when the step state last changed.
	// +optional
	LastUpdateTime *metav1.Time `json:"lastUpdateTime,omitempty" protobuf:"bytes,11,opt,name=lastUpdateTime"`
	// StepStartTime is when the current step began; the progress deadline counts from it.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty" protobuf:"bytes,12,opt,name=stepStartTime"`
	// StableReplicas is the number of pods of the stable revision.
	// +optional
	StableReplicas int32 `json:"stableReplicas,omitempty" protobuf:"varint,13,opt,name=stableReplicas"`
	// StableReadyReplicas is the number of ready pods of the stable revision.
	// +optional
	StableReadyReplicas int32 `json:"stableReadyReplicas,omitempty" protobuf:"varint,14,opt,name=stableReadyReplicas"`
	// Traffic is what the controller routes to the new revision now: the
	// weight and the matches it last applied to the routing objects. Nil when
	// the Rollout routes no traffic or traffic is back on stable.
	// +optional
	Traffic *TrafficStatus `json:"traffic,omitempty" protobuf:"bytes,15,opt,name=traffic"`
}

// TrafficStatus is the routing currently applied for the new revision.
type TrafficStatus struct {
	// Weight is the percentage of traffic sent to the new revision.
	// +optional
	Weight *int32 `json:"weight,omitempty" protobuf:"varint,1,opt,name=weight"`
	// Matches send only matching requests to the new revision.
	// +optional
	// +listType=atomic
	Matches []HttpRouteMatch `json:"matches,omitempty" protobuf:"bytes,2,rep,name=matches"`
}

// CanaryStatus is the state of a canary release.
type CanaryStatus struct {
	CommonStatus `json:",inline" protobuf:"bytes,1,opt,name=commonStatus"`
	// CanaryRevision is the revision being released.
	CanaryRevision string `json:"canaryRevision" protobuf:"bytes,2,opt,name=canaryRevision"`
	// CanaryReplicas is the number of pods of the new revision.
	CanaryReplicas int32 `json:"canaryReplicas" protobuf:"varint,3,opt,name=canaryReplicas"`
	// CanaryReadyReplicas is the number of ready pods of the new revision.
	CanaryReadyReplicas int32 `json:"canaryReadyReplicas" protobuf:"varint,4,opt,name=canaryReadyReplicas"`
}

// BlueGreenStatus is the state of a blue-green release.
type BlueGreenStatus struct {
	CommonStatus `json:",inline" protobuf:"bytes,1,opt,name=commonStatus"`
	// UpdatedRevision is the revision being released.
	UpdatedRevision string `json:"updatedRevision" protobuf:"bytes,2,opt,name=updatedRevision"`
	// UpdatedReplicas is the number of pods of the new revision.
	UpdatedReplicas int32 `json:"updatedReplicas" protobuf:"varint,3,opt,name=updatedReplicas"`
	// UpdatedReadyReplicas is the number of ready pods of the new revision.
	UpdatedReadyReplicas int32 `json:"updatedReadyReplicas" protobuf:"varint,4,opt,name=updatedReadyReplicas"`
}

// RolloutActionRequest is a promote, abort or retry waiting for the controller.
type RolloutActionRequest struct {
	// Type is Promote, Abort or Retry.
	Type RolloutActionType `json:"type" protobuf:"bytes,1,opt,name=type,casttype=RolloutActionType"`
	// StepIndex is the step the action was requested at; the controller drops a
	// promote whose step is no longer current, so a promote is never applied twice.
	// +optional
	StepIndex int32 `json:"stepIndex,omitempty" protobuf:"varint,2,opt,name=stepIndex"`
	// Full, for a promote, finishes all remaining steps.
	// +optional
	Full bool `json:"full,omitempty" protobuf:"varint,3,opt,name=full"`
	// ToStepIndex, for a promote, is the 1-based step to jump to (forward or back)
	// instead of the next one. Kruise's status patch canaryStatus.nextStepIndex is
	// recorded the same way.
	// +optional
	ToStepIndex *int32 `json:"toStepIndex,omitempty" protobuf:"varint,4,opt,name=toStepIndex"`
	// Reason, for an abort, says why.
	// +optional
	Reason string `json:"reason,omitempty" protobuf:"bytes,5,opt,name=reason"`
	// RequestedBy is the user who asked.
	// +optional
	RequestedBy string `json:"requestedBy,omitempty" protobuf:"bytes,6,opt,name=requestedBy"`
	// RequestedAt is when the action was asked for.
	// +optional
	RequestedAt metav1.Time `json:"requestedAt,omitempty" protobuf:"bytes,7,opt,name=requestedAt"`
}

// RolloutAbortStatus records an aborted release.
type RolloutAbortStatus struct {
	// Reason is UserAbort, MetricCheckFailed or ProgressDeadlineExceeded.
	Reason string `json:"reason" protobuf:"bytes,1,opt,name=reason"`
	// Message for people.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,2,opt,name=message"`
	// Revision is the revision whose release was aborted; it is not released again
	// until the workload changes to another revision.
	// +optional
	Revision string `json:"revision,omitempty" protobuf:"bytes,3,opt,name=revision"`
	// StepIndex is the step the release was at.
	// +optional
	StepIndex int32 `json:"stepIndex,omitempty" protobuf:"varint,4,opt,name=stepIndex"`
	// Time of the abort.
	// +optional
	Time metav1.Time `json:"time,omitempty" protobuf:"bytes,5,opt,name=time"`
}

// MetricCheckResult is the progress of one metric check.
type MetricCheckResult struct {
	// Name of the check.
	Name string `json:"name" protobuf:"bytes,1,opt,name=name"`
	// StepIndex is the step the check ran at.
	StepIndex int32 `json:"stepIndex" protobuf:"varint,2,opt,name=stepIndex"`
	// Phase is Running, Successful, Failed, Inconclusive (too many
	// inconclusive measurements; the release paused), Error (too many errors
	// in a row; the release paused) or Skipped (the step was promoted during
	// the check).
	Phase MetricCheckPhase `json:"phase" protobuf:"bytes,3,opt,name=phase,casttype=MetricCheckPhase"`
	// Count of measurements taken that yielded a value (Successful, Failed or
	// Inconclusive); errors do not count.
	// +optional
	Count int32 `json:"count,omitempty" protobuf:"varint,4,opt,name=count"`
	// Successful measurements.
	// +optional
	Successful int32 `json:"successful,omitempty" protobuf:"varint,5,opt,name=successful"`
	// Failed measurements.
	// +optional
	Failed int32 `json:"failed,omitempty" protobuf:"varint,6,opt,name=failed"`
	// Errors is the number of measurements that could not be taken.
	// +optional
	Errors int32 `json:"errors,omitempty" protobuf:"varint,7,opt,name=errors"`
	// Inconclusive measurements: no data, NaN, or more than one series.
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty" protobuf:"varint,8,opt,name=inconclusive"`
	// ConsecutiveErrors is the number of errors since the last measurement
	// that yielded a value.
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty" protobuf:"varint,9,opt,name=consecutiveErrors"`
	// LastValue is the value of the last measurement.
	// +optional
	LastValue string `json:"lastValue,omitempty" protobuf:"bytes,10,opt,name=lastValue"`
	// Message about the last measurement.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,11,opt,name=message"`
	// StartedAt is when the check started; its first measurement is one interval later.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty" protobuf:"bytes,12,opt,name=startedAt"`
	// LastMeasuredAt is when the last measurement was taken.
	// +optional
	LastMeasuredAt *metav1.Time `json:"lastMeasuredAt,omitempty" protobuf:"bytes,13,opt,name=lastMeasuredAt"`
	// Measurements are the last few measurements, oldest first (at most 10).
	// +optional
	// +listType=atomic
	Measurements []Measurement `json:"measurements,omitempty" protobuf:"bytes,14,rep,name=measurements"`
}

// Measurement is one query of a metric check and its judgement.
type Measurement struct {
	// Phase is Successful, Failed, Inconclusive or Error.
	Phase MetricCheckPhase `json:"phase" protobuf:"bytes,1,opt,name=phase,casttype=MetricCheckPhase"`
	// Value is the number the query returned, as text ("NaN" included).
	// +optional
	Value string `json:"value,omitempty" protobuf:"bytes,2,opt,name=value"`
	// Message explains an inconclusive or failed measurement or an error.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,3,opt,name=message"`
	// Time the measurement was taken.
	Time metav1.Time `json:"time" protobuf:"bytes,4,opt,name=time"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutList is a list of Rollouts.
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Items is the list of Rollouts.
	Items []Rollout `json:"items" protobuf:"bytes,2,rep,name=items"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutPromote is the body of POST rollouts/NAME/promote: go to the next step, or
// with full finish every remaining step.
type RolloutPromote struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta.Name, when set, must be the Rollout's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Full skips every remaining step.
	// +optional
	Full bool `json:"full,omitempty" protobuf:"varint,2,opt,name=full"`
	// ToStepIndex is the 1-based step to go to, forward or back, instead of the
	// next one. It must name an existing step and cannot be combined with full.
	// +optional
	ToStepIndex *int32 `json:"toStepIndex,omitempty" protobuf:"varint,3,opt,name=toStepIndex"`
	// Preconditions must hold when the promote arrives, or it is refused with 409.
	// +optional
	Preconditions *ActionPreconditions `json:"preconditions,omitempty" protobuf:"bytes,4,opt,name=preconditions"`
}

// ActionPreconditions say which state an action was meant for, in the style of
// DeleteOptions.preconditions: an action whose preconditions no longer hold is
// refused with 409 Conflict instead of acting on a step its sender never saw.
type ActionPreconditions struct {
	// StepIndex is the 1-based step the sender saw as current (status.currentStepIndex).
	// +optional
	StepIndex *int32 `json:"stepIndex,omitempty" protobuf:"varint,1,opt,name=stepIndex"`
	// CanaryRevision is the revision the sender saw being released
	// (status.canaryStatus.canaryRevision).
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty" protobuf:"bytes,2,opt,name=canaryRevision"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutPause is the body of POST rollouts/NAME/pause: stop the release where it is.
type RolloutPause struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta.Name, when set, must be the Rollout's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Preconditions must hold when the action arrives, or it is refused with 409.
	// +optional
	Preconditions *ActionPreconditions `json:"preconditions,omitempty" protobuf:"bytes,2,opt,name=preconditions"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutResume is the body of POST rollouts/NAME/resume: undo a pause.
type RolloutResume struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta.Name, when set, must be the Rollout's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Preconditions must hold when the action arrives, or it is refused with 409.
	// +optional
	Preconditions *ActionPreconditions `json:"preconditions,omitempty" protobuf:"bytes,2,opt,name=preconditions"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutAbort is the body of POST rollouts/NAME/abort: roll the release back to
// the stable revision.
type RolloutAbort struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta.Name, when set, must be the Rollout's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Reason is recorded in status.abort.message.
	// +optional
	Reason string `json:"reason,omitempty" protobuf:"bytes,2,opt,name=reason"`
	// Preconditions must hold when the abort arrives, or it is refused with 409.
	// +optional
	Preconditions *ActionPreconditions `json:"preconditions,omitempty" protobuf:"bytes,3,opt,name=preconditions"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RolloutRetry is the body of POST rollouts/NAME/retry: release the revision
// whose release was aborted again, from step 1, while the workload still has
// that revision's pod template.
type RolloutRetry struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta.Name, when set, must be the Rollout's name.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	// Preconditions must hold when the retry arrives, or it is refused with 409:
	// stepIndex is the step the aborted release stopped at, canaryRevision the
	// aborted revision.
	// +optional
	Preconditions *ActionPreconditions `json:"preconditions,omitempty" protobuf:"bytes,2,opt,name=preconditions"`
}
