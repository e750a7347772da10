// Package rollout is the storage of the rollouts resource: its strategies,
// the etcd-backed store, the status and action subresources and the table
// kubectl prints.
package rollout

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
)

// Field selectors that rollouts support besides metadata.name and
// metadata.namespace. The workload reference is indexed in the watch cache,
// so "which Rollout references this workload" is cheap for us and for kubectl.
const (
	FieldWorkloadName = "spec.workloadRef.name"
	FieldWorkloadKind = "spec.workloadRef.kind"
	FieldPhase        = "status.phase"
)

// servedVersions are the API versions whose managed fields the strategies reset.
var servedVersions = []fieldpath.APIVersion{"rollout.kruise.io/v1beta1", "rollout.kruise.io/v1alpha1"}

func resetFieldsFor(paths ...fieldpath.Path) map[fieldpath.APIVersion]*fieldpath.Set {
	out := make(map[fieldpath.APIVersion]*fieldpath.Set, len(servedVersions))
	for _, v := range servedVersions {
		out[v] = fieldpath.NewSet(paths...)
	}
	return out
}

// rolloutStrategy is the behaviour of the main resource: users own spec and
// metadata, the controller owns status.
type rolloutStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	// addresses is the server's say over where metric checks may connect.
	addresses validation.AddressPolicy
}

// NewStrategy returns the strategy of the rollouts resource; addresses is the
// server's policy for metric check addresses (zero: any address, no default).
func NewStrategy(typer runtime.ObjectTyper, addresses validation.AddressPolicy) rolloutStrategy {
	return rolloutStrategy{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator, addresses: addresses}
}

func (rolloutStrategy) NamespaceScoped() bool { return true }

// GetResetFields tells server-side apply that writes to the main resource
// never own status: the status subresource resets it.
func (rolloutStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetFieldsFor(fieldpath.MakePathOrDie("status"))
}

func (rolloutStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	r := obj.(*rollout.Rollout)
	r.Status = rollout.RolloutStatus{}
	r.Generation = 1
}

func (rolloutStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
	newR.Status = oldR.Status
	bumpGenerationOnSpecChange(newR, oldR)
}

func bumpGenerationOnSpecChange(newR, oldR *rollout.Rollout) {
	if specChanged(newR, oldR) {
		newR.Generation = oldR.Generation + 1
	}
}

// specChanged compares specs semantically. This runs before validation, and
// comparing a quantity with a huge exponent (threshold "9e999999999") against
// another materialises 10^exponent: such a spec counts as changed without the
// comparison, and validation then rejects it.
func specChanged(newR, oldR *rollout.Rollout) bool {
	for _, t := range thresholdRanges(&newR.Spec.Strategy) {
		for _, q := range []*resource.Quantity{t.Min, t.Max} {
			if q != nil {
				if f := q.AsApproximateFloat64(); math.IsInf(f, 0) || math.IsNaN(f) || (f == 0 && !q.IsZero()) {
					return true
				}
			}
		}
	}
	return !apiequality.Semantic.DeepEqual(newR.Spec, oldR.Spec)
}

// thresholdRanges returns every metric check's threshold range in a strategy.
func thresholdRanges(s *rollout.RolloutStrategy) []*rollout.ThresholdRange {
	var analyses []*rollout.RolloutAnalysis
	if s.Canary != nil {
		analyses = append(analyses, s.Canary.Analysis)
	}
	if s.BlueGreen != nil {
		analyses = append(analyses, s.BlueGreen.Analysis)
	}
	for i := range s.Steps() {
		analyses = append(analyses, s.Steps()[i].Analysis)
	}
	var out []*rollout.ThresholdRange
	for _, a := range analyses {
		if a == nil {
			continue
		}
		for i := range a.Metrics {
			if r := a.Metrics[i].ThresholdRange; r != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

func (s rolloutStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	r := obj.(*rollout.Rollout)
	allErrs := validation.ValidateRollout(r)
	allErrs = append(allErrs, s.addresses.ValidateAddresses(&r.Spec.Strategy, field.NewPath("spec", "strategy"))...)
	return inRequestVersion(ctx, allErrs)
}

func (rolloutStrategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

func (rolloutStrategy) AllowCreateOnUpdate(context.Context) bool { return false }

func (rolloutStrategy) AllowUnconditionalUpdate(context.Context) bool { return true }

func (rolloutStrategy) Canonicalize(runtime.Object) {}

func (s rolloutStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	r := obj.(*rollout.Rollout)
	allErrs := validation.ValidateRolloutUpdate(r, old.(*rollout.Rollout))
	allErrs = append(allErrs, s.addresses.ValidateAddresses(&r.Spec.Strategy, field.NewPath("spec", "strategy"))...)
	return inRequestVersion(ctx, allErrs)
}

// inRequestVersion names every field of errs as the client wrote it: a
// v1alpha1 client reads spec.objectRef.workloadRef.name and steps[0].weight,
// the fields it sent, not their v1beta1 names.
func inRequestVersion(ctx context.Context, errs field.ErrorList) field.ErrorList {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	if !ok || info.APIVersion != v1alpha1.SchemeGroupVersion.Version {
		return errs
	}
	for _, e := range errs {
		e.Field = V1alpha1FieldPath(e.Field)
	}
	return errs
}

var v1alpha1StepTraffic = regexp.MustCompile(`^(spec\.strategy\.(?:canary|blueGreen)\.steps\[\d+\])\.traffic$`)

// V1alpha1FieldPath turns a hub field path into the same field's v1alpha1 path.
func V1alpha1FieldPath(path string) string {
	if rest, ok := strings.CutPrefix(path, "spec.workloadRef"); ok {
		return "spec.objectRef.workloadRef" + rest
	}
	return v1alpha1StepTraffic.ReplaceAllString(path, "${1}.weight")
}

func (rolloutStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// statusStrategy is the behaviour of the status subresource: only status
// changes; spec and the metadata users own are kept as they were.
type statusStrategy struct {
	rolloutStrategy
}

// NewStatusStrategy returns the strategy of rollouts/status.
func NewStatusStrategy(s rolloutStrategy) statusStrategy {
	return statusStrategy{s}
}

// GetResetFields tells server-side apply that writes to status never own
// spec or the user-owned metadata.
func (statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return resetFieldsFor(
		fieldpath.MakePathOrDie("spec"),
		fieldpath.MakePathOrDie("metadata", "labels"),
		fieldpath.MakePathOrDie("metadata", "annotations"),
		fieldpath.MakePathOrDie("metadata", "finalizers"),
		fieldpath.MakePathOrDie("metadata", "ownerReferences"),
	)
}

func (statusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
	if !isController(ctx) {
		// Kruise's approve and jump become the action they mean; anything
		// else a user writes is left for ValidateUpdate to refuse.
		if action := kruiseStatusAction(newR, oldR, userName(ctx)); action != nil {
			newR.Status = *oldR.Status.DeepCopy()
			newR.Status.PendingAction = action
		}
	}
	newR.Spec = oldR.Spec
	newR.Labels = oldR.Labels
	newR.Annotations = oldR.Annotations
	newR.Finalizers = oldR.Finalizers
	newR.OwnerReferences = oldR.OwnerReferences
}

func (statusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
	if !isController(ctx) {
		if errs := validateUserStatusUpdate(newR, oldR, userName(ctx)); len(errs) > 0 {
			return errs
		}
	}
	return validation.ValidateRolloutStatusUpdate(newR, oldR)
}

// actionStrategy is the behaviour of writes made by the action subresources
// (promote, pause, resume, abort): the action's own code decides exactly what
// changes, in spec or status, so nothing is reset here.
type actionStrategy struct {
	rolloutStrategy
}

func (actionStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set { return nil }

func (actionStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	bumpGenerationOnSpecChange(obj.(*rollout.Rollout), old.(*rollout.Rollout))
}

func (actionStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
	errs := validation.ValidateRolloutUpdate(newR, oldR)
	return append(errs, validation.ValidateRolloutStatusUpdate(newR, oldR)...)
}

// GetAttrs returns the labels and the selectable fields of a Rollout.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	r, ok := obj.(*rollout.Rollout)
	if !ok {
		return nil, nil, fmt.Errorf("not a Rollout: %T", obj)
	}
	return labels.Set(r.Labels), selectableFields(r), nil
}

func selectableFields(r *rollout.Rollout) fields.Set {
	return generic.AddObjectMetaFieldsSet(fields.Set{
		FieldWorkloadName: r.Spec.WorkloadRef.Name,
		FieldWorkloadKind: r.Spec.WorkloadRef.Kind,
		FieldPhase:        string(phaseOf(r)),
	}, &r.ObjectMeta, true)
}

// Match returns the predicate that filters Rollouts by label and field selectors.
func Match(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{
		Label:       label,
		Field:       field,
		GetAttrs:    GetAttrs,
		IndexFields: []string{FieldWorkloadName},
	}
}
