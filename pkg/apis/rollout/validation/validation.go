// Package validation checks rollout.kruise.io objects in their internal form.
// Every served version converts to the internal types before it is stored, so
// the rules here hold for v1alpha1 and v1beta1 alike; every error names the
// exact field it is about, as the API server reports it to the client.
package validation

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/ingress"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/istio"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// Limits and enumerations of the API.
const (
	// MaxSteps is the most steps a strategy may have.
	MaxSteps = 50
	// MaxTrafficRoutings is the most traffic routings a strategy may have; the
	// controller routes through one set of objects.
	MaxTrafficRoutings = 1
	// MaxAbortReasonLength is the longest reason an abort request may carry; it
	// ends up in status, which every reader of the Rollout downloads.
	MaxAbortReasonLength = 1024
	// MaxRevisionLength bounds a revision named in an action's preconditions
	// (a pod-template hash or a ControllerRevision name fits easily).
	MaxRevisionLength = 253

	// SupportedWorkloadAPIVersion is the API version of every supported workload kind.
	SupportedWorkloadAPIVersion = "apps/v1"

	// MatchTypeExact matches a value exactly.
	MatchTypeExact = "Exact"
	// MatchTypeRegularExpression matches a value against a regular expression.
	MatchTypeRegularExpression = "RegularExpression"
	// PathMatchTypePathPrefix matches a path by its prefix, element-wise.
	PathMatchTypePathPrefix = "PathPrefix"
)

var (
	// SupportedWorkloadKinds are the kinds a Rollout may reference.
	SupportedWorkloadKinds = []string{rollout.KindDeployment, rollout.KindStatefulSet, rollout.KindDaemonSet}

	supportedValueMatchTypes = []string{MatchTypeExact, MatchTypeRegularExpression}
	supportedPathMatchTypes  = []string{MatchTypeExact, PathMatchTypePathPrefix, MatchTypeRegularExpression}

	knownPhases = []rollout.RolloutPhase{
		rollout.RolloutPhaseInitial, rollout.RolloutPhaseHealthy, rollout.RolloutPhaseProgressing,
		rollout.RolloutPhaseAborted, rollout.RolloutPhaseTerminating, rollout.RolloutPhaseDisabled, rollout.RolloutPhaseDisabling,
	}
	knownStepStates = []rollout.CanaryStepState{
		rollout.CanaryStepStateInit, rollout.CanaryStepStateUpgrade, rollout.CanaryStepStateTrafficRouting,
		rollout.CanaryStepStateMetricsAnalysis, rollout.CanaryStepStatePaused, rollout.CanaryStepStateReady,
		rollout.CanaryStepStateCompleted,
	}
	knownConditionStatuses = []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown}
	knownActions           = []rollout.RolloutActionType{rollout.RolloutActionPromote, rollout.RolloutActionAbort, rollout.RolloutActionRetry}

	// percentRegexp is the shape of a percentage: digits and a percent sign,
	// no sign, spaces or fractions, which strconv.Atoi alone would let through.
	percentRegexp = regexp.MustCompile(`^[0-9]+%$`)
)

const inProgressMessage = "cannot change while a release is in progress"

// ValidateRollout validates a Rollout on create, and is the base of every update.
func ValidateRollout(r *rollout.Rollout) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&r.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	specPath := field.NewPath("spec")
	if costErrs := validateRequestCost(&r.Spec, specPath); len(costErrs) > 0 {
		// Over a cost limit, nothing expensive is attempted (see limits.go).
		return append(allErrs, costErrs...)
	}
	allErrs = append(allErrs, validateRolloutSpec(&r.Spec, specPath)...)
	allErrs = append(allErrs, validateSuccessConditionBudget(&r.Spec, specPath)...)
	return allErrs
}

// ValidateRolloutUpdate validates an update of a Rollout's spec and metadata.
// While a release is in progress, the fields that its plan was made from
// cannot change, so the controller never has to reconcile a half-done release
// against a different workload, traffic route, rolling style or step count.
func ValidateRolloutUpdate(newR, oldR *rollout.Rollout) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newR.ObjectMeta, &oldR.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateRollout(newR)...)
	specPath := field.NewPath("spec")
	if oldR.Status.Phase == rollout.RolloutPhaseAborted && newR.Spec.WorkloadRef != oldR.Spec.WorkloadRef {
		// The aborted workload is still held; another reference would leave it so.
		allErrs = append(allErrs, field.Forbidden(specPath.Child("workloadRef"),
			"cannot change while the workload is held after an abort; change its template, retry or disable the Rollout first"))
	}
	if oldR.Status.Phase != rollout.RolloutPhaseProgressing {
		return allErrs
	}

	if newR.Spec.WorkloadRef != oldR.Spec.WorkloadRef {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("workloadRef"), inProgressMessage))
	}
	newStrategy, oldStrategy := &newR.Spec.Strategy, &oldR.Spec.Strategy
	strategyPath := strategyFieldPath(newStrategy, specPath.Child("strategy"))
	if newStyle, oldStyle := newStrategy.RollingStyle(), oldStrategy.RollingStyle(); newStyle != oldStyle {
		stylePath := specPath.Child("strategy")
		if newStrategy.Canary != nil && oldStrategy.Canary != nil {
			// Only the extra-workload switch tells Partition from Canary.
			stylePath = stylePath.Child("canary", "enableExtraWorkloadForCanary")
		}
		allErrs = append(allErrs, field.Forbidden(stylePath,
			fmt.Sprintf("the rolling style (%s, was %s) %s", newStyle, oldStyle, inProgressMessage)))
	}
	if !apiequality.Semantic.DeepEqual(newStrategy.TrafficRoutings(), oldStrategy.TrafficRoutings()) {
		allErrs = append(allErrs, field.Forbidden(strategyPath.Child("trafficRoutings"), inProgressMessage))
	}
	if newSteps, oldSteps := len(newStrategy.Steps()), len(oldStrategy.Steps()); newSteps != oldSteps {
		allErrs = append(allErrs, field.Forbidden(strategyPath.Child("steps"),
			fmt.Sprintf("the number of steps (%d, was %d) %s", newSteps, oldSteps, inProgressMessage)))
	}
	return allErrs
}

// strategyFieldPath is the path of whichever strategy is set, so that errors
// about steps and traffic routings name the field the user wrote.
func strategyFieldPath(s *rollout.RolloutStrategy, strategyPath *field.Path) *field.Path {
	switch {
	case s.Canary != nil:
		return strategyPath.Child("canary")
	case s.BlueGreen != nil:
		return strategyPath.Child("blueGreen")
	}
	return strategyPath
}

// ValidateRolloutStatusUpdate validates a write to the status subresource.
// The controller is its only writer; the checks catch a controller bug before
// it is persisted and shown to every client.
func ValidateRolloutStatusUpdate(newR, oldR *rollout.Rollout) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newR.ObjectMeta, &oldR.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateRolloutStatus(&newR.Status, &oldR.Status, len(newR.Spec.Strategy.Steps()), field.NewPath("status"))...)
	return allErrs
}

// ValidateRolloutPromote validates the body of a promote request.
func ValidateRolloutPromote(p *rollout.RolloutPromote) field.ErrorList {
	allErrs := validateActionMeta(&p.ObjectMeta, field.NewPath("metadata"))
	if p.ToStepIndex != nil {
		if *p.ToStepIndex < 1 {
			allErrs = append(allErrs, field.Invalid(field.NewPath("toStepIndex"), *p.ToStepIndex, "must be a step number, 1 or more"))
		}
		if p.Full {
			allErrs = append(allErrs, field.Forbidden(field.NewPath("toStepIndex"), "cannot be combined with full"))
		}
	}
	return append(allErrs, validateActionPreconditions(p.Preconditions, field.NewPath("preconditions"))...)
}

// ValidatePromoteTarget checks a promote's toStepIndex against the steps the
// Rollout has; it runs when the Rollout is read, since the body alone cannot know.
func ValidatePromoteTarget(p *rollout.RolloutPromote, steps int) field.ErrorList {
	if p.ToStepIndex != nil && int(*p.ToStepIndex) > steps {
		return field.ErrorList{field.Invalid(field.NewPath("toStepIndex"), *p.ToStepIndex,
			fmt.Sprintf("the Rollout has %d steps", steps))}
	}
	return nil
}

// validateActionPreconditions checks the optional preconditions of an action.
func validateActionPreconditions(p *rollout.ActionPreconditions, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p == nil {
		return nil
	}
	if p.StepIndex != nil && *p.StepIndex < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("stepIndex"), *p.StepIndex, "must not be negative"))
	}
	if len(p.CanaryRevision) > MaxRevisionLength {
		allErrs = append(allErrs, field.TooLong(fldPath.Child("canaryRevision"), "", MaxRevisionLength))
	}
	return allErrs
}

// ValidateRolloutPause validates the body of a pause request.
func ValidateRolloutPause(p *rollout.RolloutPause) field.ErrorList {
	allErrs := validateActionMeta(&p.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateActionPreconditions(p.Preconditions, field.NewPath("preconditions"))...)
}

// ValidateRolloutResume validates the body of a resume request.
func ValidateRolloutResume(r *rollout.RolloutResume) field.ErrorList {
	allErrs := validateActionMeta(&r.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateActionPreconditions(r.Preconditions, field.NewPath("preconditions"))...)
}

// ValidateRolloutAbort validates the body of an abort request.
func ValidateRolloutAbort(a *rollout.RolloutAbort) field.ErrorList {
	allErrs := validateActionMeta(&a.ObjectMeta, field.NewPath("metadata"))
	if len(a.Reason) > MaxAbortReasonLength {
		allErrs = append(allErrs, field.TooLong(field.NewPath("reason"), a.Reason, MaxAbortReasonLength))
	}
	return append(allErrs, validateActionPreconditions(a.Preconditions, field.NewPath("preconditions"))...)
}

// ValidateRolloutRetry validates the body of a retry request.
func ValidateRolloutRetry(r *rollout.RolloutRetry) field.ErrorList {
	allErrs := validateActionMeta(&r.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateActionPreconditions(r.Preconditions, field.NewPath("preconditions"))...)
}

// ValidateActionName checks that an action request body addresses the Rollout
// named in the URL: the body's metadata.name is optional, but when given it
// must agree, so a request built for one Rollout is never applied to another.
func ValidateActionName(bodyMeta *metav1.ObjectMeta, rolloutName string) field.ErrorList {
	if bodyMeta.Name != "" && bodyMeta.Name != rolloutName {
		return field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), bodyMeta.Name,
			fmt.Sprintf("must be empty or the name of the Rollout, %q", rolloutName))}
	}
	return nil
}

// validateActionMeta checks the optional metadata of an action request: only
// a name makes sense there, and it must be a possible Rollout name.
func validateActionMeta(meta *metav1.ObjectMeta, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if meta.Name != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(meta.Name, false) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("name"), meta.Name, msg))
		}
	}
	return allErrs
}

func validateRolloutSpec(spec *rollout.RolloutSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateWorkloadRef(&spec.WorkloadRef, fldPath.Child("workloadRef"))
	allErrs = append(allErrs, validateStrategy(&spec.Strategy, spec.WorkloadRef.Kind, fldPath.Child("strategy"))...)
	if spec.ProgressDeadlineSeconds != nil && *spec.ProgressDeadlineSeconds <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *spec.ProgressDeadlineSeconds, "must be greater than 0"))
	}
	return allErrs
}

func validateWorkloadRef(ref *rollout.ObjectRef, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch ref.APIVersion {
	case "":
		allErrs = append(allErrs, field.Required(fldPath.Child("apiVersion"), ""))
	case SupportedWorkloadAPIVersion:
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("apiVersion"), ref.APIVersion, []string{SupportedWorkloadAPIVersion}))
	}
	switch {
	case ref.Kind == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("kind"), ""))
	case !slices.Contains(SupportedWorkloadKinds, ref.Kind):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("kind"), ref.Kind, SupportedWorkloadKinds))
	}
	allErrs = append(allErrs, validateObjectName(ref.Name, fldPath.Child("name"))...)
	return allErrs
}

// validateObjectName requires a name that an object in the Rollout's namespace can have.
func validateObjectName(name string, fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Subdomain(name) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, msg))
	}
	return allErrs
}

func validateStrategy(s *rollout.RolloutStrategy, workloadKind string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case s.Canary == nil && s.BlueGreen == nil:
		allErrs = append(allErrs, field.Required(fldPath, "one of canary or blueGreen is required"))
	case s.Canary != nil && s.BlueGreen != nil:
		allErrs = append(allErrs, field.Forbidden(fldPath, "canary and blueGreen are mutually exclusive: set only one of them"))
	}
	// Both are validated even when both are set, so that one round trip tells
	// the user everything that is wrong.
	if c := s.Canary; c != nil {
		canaryPath := fldPath.Child("canary")
		allErrs = append(allErrs, validateSteps(c.Steps, len(c.TrafficRoutings) > 0, false, canaryPath.Child("steps"))...)
		allErrs = append(allErrs, validateTrafficRoutings(c.TrafficRoutings, canaryPath.Child("trafficRoutings"))...)
		allErrs = append(allErrs, validateStepsForIngress(c.Steps, c.TrafficRoutings, canaryPath.Child("steps"))...)
		allErrs = append(allErrs, validateFailureThreshold(c.FailureThreshold, canaryPath.Child("failureThreshold"))...)
		if m := c.PatchPodTemplateMetadata; m != nil {
			metaPath := canaryPath.Child("patchPodTemplateMetadata")
			allErrs = append(allErrs, metav1validation.ValidateLabels(m.Labels, metaPath.Child("labels"))...)
			allErrs = append(allErrs, apimachineryvalidation.ValidateAnnotations(m.Annotations, metaPath.Child("annotations"))...)
		}
		if c.EnableExtraWorkloadForCanary && workloadKind != rollout.KindDeployment {
			allErrs = append(allErrs, field.Forbidden(canaryPath.Child("enableExtraWorkloadForCanary"),
				fmt.Sprintf("an extra canary workload is only supported for kind %s, not %q", rollout.KindDeployment, workloadKind)))
		}
		allErrs = append(allErrs, validateAnalysis(c.Analysis, canaryPath.Child("analysis"))...)
	}
	if b := s.BlueGreen; b != nil {
		bgPath := fldPath.Child("blueGreen")
		if workloadKind != rollout.KindDeployment {
			// A StatefulSet's or DaemonSet's pods cannot run two revisions at
			// full size side by side under one workload.
			allErrs = append(allErrs, field.Forbidden(bgPath,
				fmt.Sprintf("blue-green releases kind %s only, not %q: use the canary strategy", rollout.KindDeployment, workloadKind)))
		}
		allErrs = append(allErrs, validateSteps(b.Steps, len(b.TrafficRoutings) > 0, true, bgPath.Child("steps"))...)
		allErrs = append(allErrs, validateTrafficRoutings(b.TrafficRoutings, bgPath.Child("trafficRoutings"))...)
		for i, ref := range b.TrafficRoutings {
			for j, n := range ref.CustomNetworkRefs {
				if n.Kind == istio.KindDestinationRule {
					// The switch pins the stable Service to the new revision;
					// subsets would keep sending to the old one.
					allErrs = append(allErrs, field.Forbidden(bgPath.Child("trafficRoutings").Index(i).Child("customNetworkRefs").Index(j),
						"blue-green switches traffic with the stable Service's selector, so routing by DestinationRule subsets is supported for canary only"))
				}
			}
		}
		allErrs = append(allErrs, validateStepsForIngress(b.Steps, b.TrafficRoutings, bgPath.Child("steps"))...)
		allErrs = append(allErrs, validateFailureThreshold(b.FailureThreshold, bgPath.Child("failureThreshold"))...)
		allErrs = append(allErrs, validateAnalysis(b.Analysis, bgPath.Child("analysis"))...)
	}
	return allErrs
}

// validateSteps checks the steps of a strategy. Blue-green steps may send 0%
// of the traffic (the new revision is up but not yet switched to); a canary
// step exists to expose the new revision, so its traffic must be above 0%.
func validateSteps(steps []rollout.CanaryStep, hasTrafficRouting, blueGreen bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case len(steps) == 0:
		return append(allErrs, field.Required(fldPath, "at least one step is required"))
	case len(steps) > MaxSteps:
		allErrs = append(allErrs, field.TooMany(fldPath, len(steps), MaxSteps))
	}
	// Replicas are compared only between steps that use the same kind of value,
	// both counts or both percentages: a count and a percentage cannot be
	// compared without the workload's replica count, which validation does not
	// know. Each step is compared with the last earlier step of its kind.
	lastOfKind := map[intstr.Type]int{}
	for i := range steps {
		step := &steps[i]
		stepPath := fldPath.Index(i)
		replicasErrs := validateStepReplicas(step.Replicas, stepPath.Child("replicas"))
		allErrs = append(allErrs, replicasErrs...)
		if len(replicasErrs) == 0 {
			if j, ok := lastOfKind[step.Replicas.Type]; ok && replicasValue(step.Replicas) < replicasValue(steps[j].Replicas) {
				allErrs = append(allErrs, field.Invalid(stepPath.Child("replicas"), step.Replicas.String(),
					fmt.Sprintf("must not be less than the replicas of step %d (%s): replicas never decrease across steps", j, steps[j].Replicas.String())))
			}
			lastOfKind[step.Replicas.Type] = i
		}
		allErrs = append(allErrs, validateStepTraffic(&step.TrafficRoutingStrategy, hasTrafficRouting, blueGreen, stepPath)...)
		if d := step.Pause.Duration; d != nil && *d < 0 {
			allErrs = append(allErrs, field.Invalid(stepPath.Child("pause", "duration"), *d, "must be greater than or equal to 0"))
		}
		allErrs = append(allErrs, validateAnalysis(step.Analysis, stepPath.Child("analysis"))...)
	}
	return allErrs
}

// replicasValue is the number in a valid replicas value, a count or a percentage.
func replicasValue(v *intstr.IntOrString) int {
	if v.Type == intstr.Int {
		return int(v.IntVal)
	}
	n, _ := parsePercent(v.StrVal)
	return n
}

// parsePercent reads "N%" with N a non-negative whole number.
func parsePercent(s string) (int, bool) {
	if !percentRegexp.MatchString(s) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil {
		// Only possible when the digits overflow an int.
		return 0, false
	}
	return n, true
}

// validateStepReplicas requires a positive count or a percentage in (0%, 100%].
// A count has no upper bound here: the workload's replicas are not known at
// validation time, and the controller caps a step at the workload's size.
func validateStepReplicas(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return field.ErrorList{field.Required(fldPath, "a number of replicas or a percentage such as \"20%\" is required")}
	}
	switch v.Type {
	case intstr.Int:
		if v.IntVal <= 0 {
			return field.ErrorList{field.Invalid(fldPath, v.IntVal, "must be greater than 0")}
		}
	case intstr.String:
		if n, ok := parsePercent(v.StrVal); !ok || n <= 0 || n > 100 {
			return field.ErrorList{field.Invalid(fldPath, v.StrVal, "must be a number greater than 0 or a percentage greater than 0% and at most 100%, such as \"20%\"")}
		}
	default:
		return field.ErrorList{field.Invalid(fldPath, v.String(), "must be an integer or a percentage")}
	}
	return nil
}

func validateStepTraffic(t *rollout.TrafficRoutingStrategy, hasTrafficRouting, blueGreen bool, stepPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if t.Traffic != nil {
		trafficPath := stepPath.Child("traffic")
		switch percent, err := rollout.ParseTrafficPercent(*t.Traffic); {
		case err != nil:
			allErrs = append(allErrs, field.Invalid(trafficPath, *t.Traffic, err.Error()))
		case percent == 0 && !blueGreen:
			allErrs = append(allErrs, field.Invalid(trafficPath, *t.Traffic, "must be greater than 0% in a canary step"))
		}
		if !hasTrafficRouting {
			allErrs = append(allErrs, field.Invalid(trafficPath, *t.Traffic, "requires a trafficRouting to route the traffic through"))
		}
	}
	if len(t.Matches) > 0 && !hasTrafficRouting {
		allErrs = append(allErrs, field.Forbidden(stepPath.Child("matches"), "requires a trafficRouting to route the matching requests through"))
	}
	for i := range t.Matches {
		allErrs = append(allErrs, validateRouteMatch(&t.Matches[i], stepPath.Child("matches").Index(i))...)
	}
	if m := t.RequestHeaderModifier; m != nil {
		modPath := stepPath.Child("requestHeaderModifier")
		if !hasTrafficRouting {
			allErrs = append(allErrs, field.Forbidden(modPath, "requires a trafficRouting to modify the requests it routes"))
		}
		for i := range m.Set {
			allErrs = append(allErrs, validateHeaderName(m.Set[i].Name, modPath.Child("set").Index(i).Child("name"))...)
		}
		for i := range m.Add {
			allErrs = append(allErrs, validateHeaderName(m.Add[i].Name, modPath.Child("add").Index(i).Child("name"))...)
		}
		for i, name := range m.Remove {
			allErrs = append(allErrs, validateHeaderName(name, modPath.Child("remove").Index(i))...)
		}
	}
	return allErrs
}

// validateHeaderName requires a non-empty HTTP header (or query parameter)
// name made of token characters, which is what both Gateway API and NGINX accept.
func validateHeaderName(name string, fldPath *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var allErrs field.ErrorList
	for _, msg := range utilvalidation.IsHTTPHeaderName(name) {
		allErrs = append(allErrs, field.Invalid(fldPath, name, msg))
	}
	return allErrs
}

func validateRouteMatch(m *rollout.HttpRouteMatch, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p := m.Path; p != nil {
		pathPath := fldPath.Child("path")
		matchType := PathMatchTypePathPrefix
		if p.Type != nil {
			matchType = *p.Type
			if !slices.Contains(supportedPathMatchTypes, matchType) {
				allErrs = append(allErrs, field.NotSupported(pathPath.Child("type"), matchType, supportedPathMatchTypes))
			}
		}
		if p.Value != nil {
			switch matchType {
			case MatchTypeRegularExpression:
				allErrs = append(allErrs, validateRegexp(*p.Value, pathPath.Child("value"))...)
			case MatchTypeExact, PathMatchTypePathPrefix:
				if !strings.HasPrefix(*p.Value, "/") {
					allErrs = append(allErrs, field.Invalid(pathPath.Child("value"), *p.Value, "must be an absolute path starting with \"/\""))
				}
			}
		}
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		allErrs = append(allErrs, validateValueMatch(h.Type, h.Name, h.Value, fldPath.Child("headers").Index(i))...)
	}
	for i := range m.QueryParams {
		q := &m.QueryParams[i]
		allErrs = append(allErrs, validateValueMatch(q.Type, q.Name, q.Value, fldPath.Child("queryParams").Index(i))...)
	}
	return allErrs
}

// validateValueMatch checks a header or query parameter match.
func validateValueMatch(matchType *string, name, value string, fldPath *field.Path) field.ErrorList {
	allErrs := validateHeaderName(name, fldPath.Child("name"))
	if matchType == nil {
		return allErrs
	}
	switch *matchType {
	case MatchTypeExact:
	case MatchTypeRegularExpression:
		allErrs = append(allErrs, validateRegexp(value, fldPath.Child("value"))...)
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), *matchType, supportedValueMatchTypes))
	}
	return allErrs
}

// validateRegexp requires an RE2 expression, the syntax Gateway API implementations share.
func validateRegexp(expr string, fldPath *field.Path) field.ErrorList {
	if _, err := regexp.Compile(expr); err != nil {
		return field.ErrorList{field.Invalid(fldPath, expr, fmt.Sprintf("must be a valid regular expression: %v", err))}
	}
	return nil
}

func validateTrafficRoutings(refs []rollout.TrafficRoutingRef, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(refs) > MaxTrafficRoutings {
		allErrs = append(allErrs, field.TooMany(fldPath, len(refs), MaxTrafficRoutings))
	}
	for i := range refs {
		allErrs = append(allErrs, validateTrafficRouting(&refs[i], fldPath.Index(i))...)
	}
	return allErrs
}

func validateTrafficRouting(ref *rollout.TrafficRoutingRef, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	servicePath := fldPath.Child("service")
	if ref.Service == "" {
		allErrs = append(allErrs, field.Required(servicePath, "the Service that selects the workload's pods is required"))
	} else {
		for _, msg := range utilvalidation.IsDNS1035Label(ref.Service) {
			allErrs = append(allErrs, field.Invalid(servicePath, ref.Service, msg))
		}
	}
	if ref.GracePeriodSeconds < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("gracePeriodSeconds"), ref.GracePeriodSeconds, "must be greater than or equal to 0"))
	}

	providers := 0
	if ing := ref.Ingress; ing != nil {
		providers++
		allErrs = append(allErrs, validateObjectName(ing.Name, fldPath.Child("ingress", "name"))...)
		if err := ingress.CheckClassType(ing.ClassType); err != nil {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("ingress", "classType"), ing.ClassType, ingress.SupportedClassTypes))
		}
	}
	if gw := ref.Gateway; gw != nil {
		providers++
		namePath := fldPath.Child("gateway", "httpRouteName")
		if gw.HTTPRouteName == nil {
			allErrs = append(allErrs, field.Required(namePath, ""))
		} else {
			allErrs = append(allErrs, validateObjectName(*gw.HTTPRouteName, namePath)...)
		}
	}
	if len(ref.CustomNetworkRefs) > 0 {
		providers++
		refsPath := fldPath.Child("customNetworkRefs")
		refs := make([]v1beta1.ObjectRef, 0, len(ref.CustomNetworkRefs))
		var refErrs field.ErrorList
		for i := range ref.CustomNetworkRefs {
			r := &ref.CustomNetworkRefs[i]
			refErrs = append(refErrs, validateCustomNetworkRef(r, refsPath.Index(i))...)
			refs = append(refs, v1beta1.ObjectRef{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name})
		}
		allErrs = append(allErrs, refErrs...)
		if len(refErrs) == 0 {
			if _, _, err := istio.Split(refs); err != nil {
				allErrs = append(allErrs, field.Forbidden(refsPath, err.Error()))
			}
		}
	}
	switch {
	case providers == 0:
		allErrs = append(allErrs, field.Required(fldPath, "one of ingress, gateway or customNetworkRefs is required"))
	case providers > 1:
		allErrs = append(allErrs, field.Forbidden(fldPath, "ingress, gateway and customNetworkRefs are mutually exclusive: set only one of them"))
	}
	return allErrs
}

// validateStepsForIngress refuses, when traffic goes through an NGINX
// Ingress, the matches and header modifiers that its canary annotations
// cannot express (the ingress provider says which).
func validateStepsForIngress(steps []rollout.CanaryStep, refs []rollout.TrafficRoutingRef, fldPath *field.Path) field.ErrorList {
	// (Several providers at once are refused on their own.)
	if len(refs) == 0 || refs[0].Ingress == nil || refs[0].Gateway != nil || len(refs[0].CustomNetworkRefs) > 0 {
		return nil
	}
	var allErrs field.ErrorList
	for i := range steps {
		t := &steps[i].TrafficRoutingStrategy
		if t.RequestHeaderModifier != nil {
			var m v1beta1.HTTPHeaderFilter
			if err := v1beta1.Convert_rollout_HTTPHeaderFilter_To_v1beta1_HTTPHeaderFilter(t.RequestHeaderModifier, &m, nil); err == nil {
				if _, err := ingress.Annotations(route.Desired{HeaderModifier: &m}); err != nil {
					allErrs = append(allErrs, field.Forbidden(fldPath.Index(i).Child("requestHeaderModifier"), "with an ingress trafficRouting: "+err.Error()))
				}
			}
		}
		matches := make([]v1beta1.HttpRouteMatch, len(t.Matches))
		for j := range t.Matches {
			if err := v1beta1.Convert_rollout_HttpRouteMatch_To_v1beta1_HttpRouteMatch(&t.Matches[j], &matches[j], nil); err != nil {
				return append(allErrs, field.InternalError(fldPath.Index(i).Child("matches").Index(j), err))
			}
		}
		if _, err := ingress.Annotations(route.Desired{Matches: matches}); err != nil {
			allErrs = append(allErrs, field.Forbidden(fldPath.Index(i).Child("matches"), "with an ingress trafficRouting: "+err.Error()))
		}
	}
	return allErrs
}

func validateCustomNetworkRef(ref *rollout.ObjectRef, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if ref.APIVersion == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("apiVersion"), ""))
	} else if err := istio.CheckAPIVersion(ref.APIVersion); err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("apiVersion"), ref.APIVersion, err.Error()))
	}
	if ref.Kind == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("kind"), ""))
	} else if err := istio.CheckKind(ref.Kind); err != nil {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("kind"), ref.Kind, []string{istio.KindVirtualService, istio.KindDestinationRule}))
	}
	allErrs = append(allErrs, validateObjectName(ref.Name, fldPath.Child("name"))...)
	return allErrs
}

// validateFailureThreshold admits a non-negative count or a percentage from 0% to 100%.
func validateFailureThreshold(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	switch v.Type {
	case intstr.Int:
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(fldPath, v.IntVal, "must be greater than or equal to 0")}
		}
	case intstr.String:
		if n, ok := parsePercent(v.StrVal); !ok || n > 100 {
			return field.ErrorList{field.Invalid(fldPath, v.StrVal, "must be a number or a percentage from 0% to 100%, such as \"10%\"")}
		}
	default:
		return field.ErrorList{field.Invalid(fldPath, v.String(), "must be an integer or a percentage")}
	}
	return nil
}

func validateAnalysis(a *rollout.RolloutAnalysis, fldPath *field.Path) field.ErrorList {
	if a == nil {
		return nil
	}
	var allErrs field.ErrorList
	metricsPath := fldPath.Child("metrics")
	names := sets.New[string]()
	for i := range a.Metrics {
		m := &a.Metrics[i]
		metricPath := metricsPath.Index(i)
		if m.Name != "" && names.Has(m.Name) {
			allErrs = append(allErrs, field.Duplicate(metricPath.Child("name"), m.Name))
		}
		names.Insert(m.Name)
		allErrs = append(allErrs, validateMetricCheck(m, metricPath)...)
	}
	return allErrs
}

func validateMetricCheck(m *rollout.MetricCheck, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	namePath := fldPath.Child("name")
	if m.Name == "" {
		allErrs = append(allErrs, field.Required(namePath, ""))
	} else {
		// A DNS label, because the name appears in status, events and metric labels.
		for _, msg := range utilvalidation.IsDNS1123Label(m.Name) {
			allErrs = append(allErrs, field.Invalid(namePath, m.Name, msg))
		}
	}
	if m.Interval.Duration <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("interval"), m.Interval.Duration.String(), "must be greater than 0"))
	}
	if m.Count <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("count"), m.Count, "must be greater than 0"))
	}
	switch {
	case m.FailureLimit < 0:
		allErrs = append(allErrs, field.Invalid(fldPath.Child("failureLimit"), m.FailureLimit, "must be greater than or equal to 0"))
	case m.Count > 0 && m.FailureLimit >= m.Count:
		// With failureLimit >= count no measurement could ever fail the check.
		allErrs = append(allErrs, field.Invalid(fldPath.Child("failureLimit"), m.FailureLimit,
			fmt.Sprintf("must be less than count (%d), or the check can never fail", m.Count)))
	}
	if m.InconclusiveLimit < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("inconclusiveLimit"), m.InconclusiveLimit, "must be greater than or equal to 0"))
	}
	if l := m.ConsecutiveErrorLimit; l != nil && *l < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("consecutiveErrorLimit"), *l, "must be greater than or equal to 0"))
	}
	allErrs = append(allErrs, validateMetricProvider(&m.Provider, fldPath.Child("provider"))...)

	if m.ThresholdRange == nil && m.SuccessCondition == "" {
		allErrs = append(allErrs, field.Required(fldPath, "at least one of thresholdRange or successCondition is required"))
	}
	if r := m.ThresholdRange; r != nil {
		allErrs = append(allErrs, validateThresholdRange(r, fldPath.Child("thresholdRange"))...)
	}
	if expr := m.SuccessCondition; expr != "" {
		condPath := fldPath.Child("successCondition")
		if len(expr) > MaxSuccessConditionLength {
			allErrs = append(allErrs, field.TooLong(condPath, expr, MaxSuccessConditionLength))
		} else if _, err := CompileSuccessCondition(expr); err != nil {
			allErrs = append(allErrs, field.Invalid(condPath, expr, err.Error()))
		}
	}
	return allErrs
}

// validateThresholdRange requires bounds that a measurement (a float64) can be
// compared with, and min <= max. Bounds are compared as float64 on purpose:
// Quantity.Cmp materializes 10^exponent as a big integer, so a bound such as
// "9e999999999" would stall the API server, and a bound beyond float64's range
// could never be met or missed by a measurement anyway.
func validateThresholdRange(r *rollout.ThresholdRange, fldPath *field.Path) field.ErrorList {
	if r.Min == nil && r.Max == nil {
		return field.ErrorList{field.Required(fldPath, "at least one of min or max is required")}
	}
	var allErrs field.ErrorList
	bound := func(q *resource.Quantity, name string) (float64, bool) {
		if q == nil {
			return 0, false
		}
		f := q.AsApproximateFloat64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child(name), q.String(), "must be within the range of a double"))
			return 0, false
		}
		return f, true
	}
	lo, hasLo := bound(r.Min, "min")
	hi, hasHi := bound(r.Max, "max")
	if hasLo && hasHi && lo > hi {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("min"), r.Min.String(),
			fmt.Sprintf("must be less than or equal to max (%s)", r.Max.String())))
	}
	return allErrs
}

func validateMetricProvider(p *rollout.MetricProvider, fldPath *field.Path) field.ErrorList {
	prom := p.Prometheus
	if prom == nil {
		// Prometheus is the only provider today; with more, this becomes "exactly one of".
		return field.ErrorList{field.Required(fldPath.Child("prometheus"), "a metric provider is required")}
	}
	var allErrs field.ErrorList
	promPath := fldPath.Child("prometheus")
	addrPath := promPath.Child("address")
	// An empty address means the server's default; the registry strategy,
	// which knows the server's flags, refuses it when there is none.
	if prom.Address != "" {
		if msg := validateHTTPURL(prom.Address); msg != "" {
			allErrs = append(allErrs, field.Invalid(addrPath, prom.Address, msg))
		}
	}
	if strings.TrimSpace(prom.Query) == "" {
		allErrs = append(allErrs, field.Required(promPath.Child("query"), ""))
	}
	return allErrs
}

// validateHTTPURL returns why raw is not an absolute http or https URL with a
// host, or "" when it is one.
func validateHTTPURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("must be a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute URL with scheme http or https"
	case u.Host == "" || u.Hostname() == "":
		return "must name a host"
	case u.User != nil:
		// Credentials in a URL would be shown to everyone who can read the Rollout.
		return "must not contain credentials"
	}
	return ""
}

// validateRolloutStatus checks a new status. Step indexes are checked only when
// they change: the spec may have lost steps since the controller last wrote
// status, and rejecting every status write until the controller has caught up
// with the spec would leave it unable to record anything at all.
func validateRolloutStatus(s, old *rollout.RolloutStatus, steps int, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.CurrentStepIndex != old.CurrentStepIndex {
		allErrs = append(allErrs, validateStepIndex(s.CurrentStepIndex, steps, fldPath.Child("currentStepIndex"))...)
	}
	allErrs = append(allErrs, validateStepState(s.CurrentStepState, fldPath.Child("currentStepState"))...)
	if s.Phase != "" && !slices.Contains(knownPhases, s.Phase) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("phase"), s.Phase, knownPhases))
	}
	if s.CanaryStatus != nil && s.BlueGreenStatus != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath, "canaryStatus and blueGreenStatus are mutually exclusive"))
	}
	if cs := s.CanaryStatus; cs != nil {
		allErrs = append(allErrs, validateCommonStatus(&cs.CommonStatus, old.CommonStatus(), steps, fldPath.Child("canaryStatus"))...)
	}
	if bs := s.BlueGreenStatus; bs != nil {
		allErrs = append(allErrs, validateCommonStatus(&bs.CommonStatus, old.CommonStatus(), steps, fldPath.Child("blueGreenStatus"))...)
	}
	seen := sets.New[rollout.RolloutConditionType]()
	for i := range s.Conditions {
		c := &s.Conditions[i]
		condPath := fldPath.Child("conditions").Index(i)
		switch {
		case c.Type == "":
			allErrs = append(allErrs, field.Required(condPath.Child("type"), ""))
		case seen.Has(c.Type):
			allErrs = append(allErrs, field.Duplicate(condPath.Child("type"), c.Type))
		}
		seen.Insert(c.Type)
		if !slices.Contains(knownConditionStatuses, c.Status) {
			allErrs = append(allErrs, field.NotSupported(condPath.Child("status"), c.Status, knownConditionStatuses))
		}
	}
	if a := s.PendingAction; a != nil && !slices.Contains(knownActions, a.Type) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("pendingAction", "type"), a.Type, knownActions))
	}
	return allErrs
}

// validateCommonStatus checks the progress of a release; old is the previous
// progress, nil when there was none.
func validateCommonStatus(s, old *rollout.CommonStatus, steps int, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if old == nil || s.CurrentStepIndex != old.CurrentStepIndex {
		allErrs = append(allErrs, validateStepIndex(s.CurrentStepIndex, steps, fldPath.Child("currentStepIndex"))...)
	}
	allErrs = append(allErrs, validateStepState(s.CurrentStepState, fldPath.Child("currentStepState"))...)
	return allErrs
}

// validateStepIndex admits 0 (no release yet) up to the number of steps (steps are 1-based).
func validateStepIndex(index int32, steps int, fldPath *field.Path) field.ErrorList {
	if index < 0 || int(index) > steps {
		return field.ErrorList{field.Invalid(fldPath, index, fmt.Sprintf("must be between 0 and the number of steps (%d)", steps))}
	}
	return nil
}

func validateStepState(state rollout.CanaryStepState, fldPath *field.Path) field.ErrorList {
	if state != "" && !slices.Contains(knownStepStates, state) {
		return field.ErrorList{field.NotSupported(fldPath, state, knownStepStates)}
	}
	return nil
}
