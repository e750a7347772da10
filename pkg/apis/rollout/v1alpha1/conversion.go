package v1alpha1

import (
	"strconv"

	"k8s.io/apimachinery/pkg/conversion"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// Convert_v1alpha1_RolloutSpec_To_rollout_RolloutSpec moves spec.objectRef to
// the hub's spec.workloadRef.
func Convert_v1alpha1_RolloutSpec_To_rollout_RolloutSpec(in *RolloutSpec, out *rollout.RolloutSpec, s conversion.Scope) error {
	if err := autoConvert_v1alpha1_RolloutSpec_To_rollout_RolloutSpec(in, out, s); err != nil {
		return err
	}
	return Convert_v1alpha1_ObjectRef_To_rollout_ObjectRef(&in.ObjectRef, &out.WorkloadRef, s)
}

// Convert_rollout_RolloutSpec_To_v1alpha1_RolloutSpec writes the hub's
// spec.workloadRef as spec.objectRef.
func Convert_rollout_RolloutSpec_To_v1alpha1_RolloutSpec(in *rollout.RolloutSpec, out *RolloutSpec, s conversion.Scope) error {
	if err := autoConvert_rollout_RolloutSpec_To_v1alpha1_RolloutSpec(in, out, s); err != nil {
		return err
	}
	return Convert_rollout_ObjectRef_To_v1alpha1_ObjectRef(&in.WorkloadRef, &out.ObjectRef, s)
}

// Convert_v1alpha1_ObjectRef_To_rollout_ObjectRef unwraps objectRef.workloadRef.
func Convert_v1alpha1_ObjectRef_To_rollout_ObjectRef(in *ObjectRef, out *rollout.ObjectRef, _ conversion.Scope) error {
	*out = rollout.ObjectRef{}
	if ref := in.WorkloadRef; ref != nil {
		*out = rollout.ObjectRef{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name}
	}
	return nil
}

// Convert_rollout_ObjectRef_To_v1alpha1_ObjectRef wraps a reference as
// objectRef.workloadRef; an empty reference stays absent.
func Convert_rollout_ObjectRef_To_v1alpha1_ObjectRef(in *rollout.ObjectRef, out *ObjectRef, _ conversion.Scope) error {
	*out = ObjectRef{}
	if *in != (rollout.ObjectRef{}) {
		out.WorkloadRef = &WorkloadRef{APIVersion: in.APIVersion, Kind: in.Kind, Name: in.Name}
	}
	return nil
}

// Convert_v1alpha1_TrafficRoutingStrategy_To_rollout_TrafficRoutingStrategy turns
// weight N into traffic "N%".
func Convert_v1alpha1_TrafficRoutingStrategy_To_rollout_TrafficRoutingStrategy(in *TrafficRoutingStrategy, out *rollout.TrafficRoutingStrategy, s conversion.Scope) error {
	if err := autoConvert_v1alpha1_TrafficRoutingStrategy_To_rollout_TrafficRoutingStrategy(in, out, s); err != nil {
		return err
	}
	out.Traffic = nil
	if in.Weight != nil {
		traffic := strconv.Itoa(int(*in.Weight)) + "%"
		out.Traffic = &traffic
	}
	return nil
}

// Convert_rollout_TrafficRoutingStrategy_To_v1alpha1_TrafficRoutingStrategy turns
// traffic "N%" into weight N. Validation admits only that form, so every stored
// object converts; anything else is an error rather than a silent loss.
func Convert_rollout_TrafficRoutingStrategy_To_v1alpha1_TrafficRoutingStrategy(in *rollout.TrafficRoutingStrategy, out *TrafficRoutingStrategy, s conversion.Scope) error {
	if err := autoConvert_rollout_TrafficRoutingStrategy_To_v1alpha1_TrafficRoutingStrategy(in, out, s); err != nil {
		return err
	}
	out.Weight = nil
	if in.Traffic != nil {
		weight, err := rollout.ParseTrafficPercent(*in.Traffic)
		if err != nil {
			return err
		}
		out.Weight = &weight
	}
	return nil
}

// Convert_v1alpha1_CustomNetworkRef_To_rollout_ObjectRef copies a reference.
func Convert_v1alpha1_CustomNetworkRef_To_rollout_ObjectRef(in *CustomNetworkRef, out *rollout.ObjectRef, _ conversion.Scope) error {
	*out = rollout.ObjectRef{APIVersion: in.APIVersion, Kind: in.Kind, Name: in.Name}
	return nil
}

// Convert_rollout_ObjectRef_To_v1alpha1_CustomNetworkRef copies a reference.
func Convert_rollout_ObjectRef_To_v1alpha1_CustomNetworkRef(in *rollout.ObjectRef, out *CustomNetworkRef, _ conversion.Scope) error {
	*out = CustomNetworkRef{APIVersion: in.APIVersion, Kind: in.Kind, Name: in.Name}
	return nil
}

// Convert_v1alpha1_CanaryStrategy_To_rollout_CanaryStrategy reads the
// optional enableExtraWorkloadForCanary; defaulting has already applied
// Kruise's rule to an unset one, so unset here means in place.
func Convert_v1alpha1_CanaryStrategy_To_rollout_CanaryStrategy(in *CanaryStrategy, out *rollout.CanaryStrategy, s conversion.Scope) error {
	if err := autoConvert_v1alpha1_CanaryStrategy_To_rollout_CanaryStrategy(in, out, s); err != nil {
		return err
	}
	out.EnableExtraWorkloadForCanary = in.EnableExtraWorkloadForCanary != nil && *in.EnableExtraWorkloadForCanary
	return nil
}

// Convert_rollout_CanaryStrategy_To_v1alpha1_CanaryStrategy always writes
// enableExtraWorkloadForCanary, so a v1alpha1 client that reads a Rollout and
// writes it back never has Kruise's default flip an in-place release to canary style.
func Convert_rollout_CanaryStrategy_To_v1alpha1_CanaryStrategy(in *rollout.CanaryStrategy, out *CanaryStrategy, s conversion.Scope) error {
	if err := autoConvert_rollout_CanaryStrategy_To_v1alpha1_CanaryStrategy(in, out, s); err != nil {
		return err
	}
	extra := in.EnableExtraWorkloadForCanary
	out.EnableExtraWorkloadForCanary = &extra
	return nil
}
