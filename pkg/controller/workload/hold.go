package workload

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// The hold is the contract between the admission webhook and the controller.
// When a workload's pod template changes, the webhook stops the workload's own
// controller from rolling it out:
//
//   - Deployment: spec.paused=true and spec.strategy={type: Recreate}. A paused
//     Deployment is still scaled by kube-controller-manager, and with a
//     RollingUpdate strategy it spreads replicas proportionally over all active
//     ReplicaSets, which would undo the batches that the controller sets on the
//     ReplicaSets directly. With Recreate it leaves two active ReplicaSets alone.
//     A revisionHistoryLimit below 2 is raised to 2: a paused Deployment
//     deletes old ReplicaSets scaled to zero beyond the limit, and with 0 the
//     stable ReplicaSet would go once the last step empties it, leaving an
//     abort nothing to roll back to.
//   - StatefulSet: a RollingUpdate strategy with partition = replicas.
//   - DaemonSet: updateStrategy OnDelete.
//
// The values the hold replaced are saved, as JSON, in the annotation
// rollout.kruise.io/original-strategy, whose presence marks the workload as
// held. Releasing the workload writes them back exactly and removes the
// annotation. A change a user makes to a held field of a workload that was
// already held is recorded as the new original (it is what the user wants once
// the release is over) and the hold is put back. A write that puts the hold
// on (the controller holding again) carries its own record, which is kept.

// HoldAnnotation marks a held workload and saves what the hold replaced.
const HoldAnnotation = v1beta1.WorkloadOriginalStrategyAnnotation

// DeploymentOriginal is what the hold replaced on a Deployment.
type DeploymentOriginal struct {
	// Paused is the original spec.paused.
	Paused bool `json:"paused"`
	// Strategy is the original spec.strategy.
	Strategy appsv1.DeploymentStrategy `json:"strategy"`
	// RevisionHistoryLimit is the original spec.revisionHistoryLimit, saved
	// when the hold raised it (HistoryLimitRaised).
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// HistoryLimitRaised records that the hold raised the limit, so release
	// puts RevisionHistoryLimit back (an absent value means unset).
	HistoryLimitRaised bool `json:"historyLimitRaised,omitempty"`
}

// heldMinRevisionHistory is the least revisionHistoryLimit of a held
// Deployment: the stable ReplicaSet and one revision a release replaced
// mid-way stay while emptied.
const heldMinRevisionHistory int32 = 2

// StatefulSetOriginal is what the hold replaced on a StatefulSet.
type StatefulSetOriginal struct {
	// UpdateStrategy is the original spec.updateStrategy.
	UpdateStrategy appsv1.StatefulSetUpdateStrategy `json:"updateStrategy"`
}

// DaemonSetOriginal is what the hold replaced on a DaemonSet.
type DaemonSetOriginal struct {
	// UpdateStrategy is the original spec.updateStrategy.
	UpdateStrategy appsv1.DaemonSetUpdateStrategy `json:"updateStrategy"`
}

// IsHeld reports whether obj carries the hold annotation.
func IsHeld(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[HoldAnnotation]
	return ok
}

// readOriginal decodes the hold annotation of obj, falling back to old's. A
// value that does not decode is ignored (and logged): refusing every later
// update of the workload over it would be worse than restoring what the
// workload has now.
func readOriginal(obj, old metav1.Object, into any) bool {
	for _, o := range []metav1.Object{obj, old} {
		if o == nil {
			continue
		}
		raw, ok := o.GetAnnotations()[HoldAnnotation]
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(raw), into); err != nil {
			klog.InfoS("Ignoring unreadable hold annotation", "object", klog.KObj(o), "err", err)
			continue
		}
		return true
	}
	return false
}

// setOriginal writes the hold annotation and reports whether it changed.
func setOriginal(obj metav1.Object, original any) (bool, error) {
	raw, err := json.Marshal(original)
	if err != nil {
		return false, fmt.Errorf("encoding the %s annotation: %w", HoldAnnotation, err)
	}
	annotations := obj.GetAnnotations()
	if current, ok := annotations[HoldAnnotation]; ok && current == string(raw) {
		return false, nil
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[HoldAnnotation] = string(raw)
	obj.SetAnnotations(annotations)
	return true, nil
}

func removeOriginal(obj metav1.Object) {
	annotations := obj.GetAnnotations()
	delete(annotations, HoldAnnotation)
	obj.SetAnnotations(annotations)
}

// heldDeploymentStrategy is the strategy of a held Deployment.
func heldDeploymentStrategy() appsv1.DeploymentStrategy {
	return appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
}

// OriginalOfDeployment returns what the hold replaced on d, or d's own
// settings when d is not held.
func OriginalOfDeployment(d *appsv1.Deployment) DeploymentOriginal {
	var orig DeploymentOriginal
	if readOriginal(d, nil, &orig) {
		return orig
	}
	return DeploymentOriginal{Paused: d.Spec.Paused, Strategy: *d.Spec.Strategy.DeepCopy()}
}

// HoldDeployment holds d, the object being written; old is the object before
// the write (nil when unknown). It reports whether d changed.
func HoldDeployment(old, d *appsv1.Deployment) (bool, error) {
	var orig DeploymentOriginal
	switch {
	case !readOriginal(d, objOrNil(old), &orig):
		orig = DeploymentOriginal{Paused: d.Spec.Paused, Strategy: *d.Spec.Strategy.DeepCopy()}
	case old != nil && IsHeld(old):
		if d.Spec.Paused != old.Spec.Paused {
			orig.Paused = d.Spec.Paused
		}
		if !apiequality.Semantic.DeepEqual(d.Spec.Strategy, old.Spec.Strategy) {
			orig.Strategy = *d.Spec.Strategy.DeepCopy()
		}
		if !apiequality.Semantic.DeepEqual(d.Spec.RevisionHistoryLimit, old.Spec.RevisionHistoryLimit) {
			orig.RevisionHistoryLimit, orig.HistoryLimitRaised = nil, false
		}
	}
	changed := false
	if !d.Spec.Paused {
		d.Spec.Paused, changed = true, true
	}
	if limit := d.Spec.RevisionHistoryLimit; limit != nil && *limit < heldMinRevisionHistory {
		if !orig.HistoryLimitRaised {
			saved := *limit
			orig.RevisionHistoryLimit, orig.HistoryLimitRaised = &saved, true
		}
		raised := heldMinRevisionHistory
		d.Spec.RevisionHistoryLimit, changed = &raised, true
	}
	if held := heldDeploymentStrategy(); !apiequality.Semantic.DeepEqual(d.Spec.Strategy, held) {
		d.Spec.Strategy, changed = held, true
	}
	annotated, err := setOriginal(d, orig)
	return changed || annotated, err
}

// ReleaseDeployment undoes the hold on d. It reports whether d changed.
func ReleaseDeployment(d *appsv1.Deployment) bool {
	if !IsHeld(d) {
		return false
	}
	orig := OriginalOfDeployment(d)
	d.Spec.Paused = orig.Paused
	d.Spec.Strategy = orig.Strategy
	if orig.HistoryLimitRaised {
		d.Spec.RevisionHistoryLimit = orig.RevisionHistoryLimit
	}
	removeOriginal(d)
	return true
}

// OriginalOfStatefulSet returns what the hold replaced on s, or s's own
// settings when s is not held.
func OriginalOfStatefulSet(s *appsv1.StatefulSet) StatefulSetOriginal {
	var orig StatefulSetOriginal
	if readOriginal(s, nil, &orig) {
		return orig
	}
	return StatefulSetOriginal{UpdateStrategy: *s.Spec.UpdateStrategy.DeepCopy()}
}

// HeldPartition is the partition s has now; a StatefulSet without a
// RollingUpdate partition updates every pod, as partition 0 does.
func HeldPartition(s *appsv1.StatefulSet) int32 {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

// StatefulSetReplicas is spec.replicas with its default.
func StatefulSetReplicas(s *appsv1.StatefulSet) int32 {
	if s.Spec.Replicas == nil {
		return 1
	}
	return *s.Spec.Replicas
}

// HoldStatefulSet holds s, the object being written; old is the object before
// the write (nil when unknown). restart is true when the write starts a new
// release (the pod template or the rollout-id changed): the partition goes
// back to replicas. Otherwise the partition is the controller's to lower and is
// left alone; only a change away from RollingUpdate is undone.
func HoldStatefulSet(old, s *appsv1.StatefulSet, restart bool) (bool, error) {
	var orig StatefulSetOriginal
	found := readOriginal(s, objOrNil(old), &orig)
	switch {
	case !found:
		orig = StatefulSetOriginal{UpdateStrategy: *s.Spec.UpdateStrategy.DeepCopy()}
	case old != nil && IsHeld(old) && s.Spec.UpdateStrategy.Type != old.Spec.UpdateStrategy.Type:
		orig.UpdateStrategy = *s.Spec.UpdateStrategy.DeepCopy()
	}

	partition := StatefulSetReplicas(s)
	if found && !restart {
		switch {
		case s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType:
			partition = HeldPartition(s)
		case old != nil && old.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType:
			partition = HeldPartition(old)
		}
	}
	held := appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition},
	}
	// maxUnavailable is the user's to tune during a release.
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		held.RollingUpdate.MaxUnavailable = ru.MaxUnavailable
	} else if ru := orig.UpdateStrategy.RollingUpdate; ru != nil {
		held.RollingUpdate.MaxUnavailable = ru.MaxUnavailable
	}
	changed := false
	if !apiequality.Semantic.DeepEqual(s.Spec.UpdateStrategy, held) {
		s.Spec.UpdateStrategy, changed = held, true
	}
	annotated, err := setOriginal(s, orig)
	return changed || annotated, err
}

// ReleaseStatefulSet undoes the hold on s. It reports whether s changed.
func ReleaseStatefulSet(s *appsv1.StatefulSet) bool {
	if !IsHeld(s) {
		return false
	}
	s.Spec.UpdateStrategy = OriginalOfStatefulSet(s).UpdateStrategy
	removeOriginal(s)
	return true
}

// OriginalOfDaemonSet returns what the hold replaced on ds, or ds's own
// settings when ds is not held.
func OriginalOfDaemonSet(ds *appsv1.DaemonSet) DaemonSetOriginal {
	var orig DaemonSetOriginal
	if readOriginal(ds, nil, &orig) {
		return orig
	}
	return DaemonSetOriginal{UpdateStrategy: *ds.Spec.UpdateStrategy.DeepCopy()}
}

// HoldDaemonSet holds ds, the object being written; old is the object before
// the write (nil when unknown). It reports whether ds changed.
func HoldDaemonSet(old, ds *appsv1.DaemonSet) (bool, error) {
	var orig DaemonSetOriginal
	switch {
	case !readOriginal(ds, objOrNil(old), &orig):
		orig = DaemonSetOriginal{UpdateStrategy: *ds.Spec.UpdateStrategy.DeepCopy()}
	case old != nil && IsHeld(old) && !apiequality.Semantic.DeepEqual(ds.Spec.UpdateStrategy, old.Spec.UpdateStrategy):
		orig.UpdateStrategy = *ds.Spec.UpdateStrategy.DeepCopy()
	}
	changed := false
	if held := (appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}); !apiequality.Semantic.DeepEqual(ds.Spec.UpdateStrategy, held) {
		ds.Spec.UpdateStrategy, changed = held, true
	}
	annotated, err := setOriginal(ds, orig)
	return changed || annotated, err
}

// ReleaseDaemonSet undoes the hold on ds. It reports whether ds changed.
func ReleaseDaemonSet(ds *appsv1.DaemonSet) bool {
	if !IsHeld(ds) {
		return false
	}
	ds.Spec.UpdateStrategy = OriginalOfDaemonSet(ds).UpdateStrategy
	removeOriginal(ds)
	return true
}

// objOrNil keeps a nil typed pointer from becoming a non-nil interface.
func objOrNil[T any, P interface {
	*T
	metav1.Object
}](p P) metav1.Object {
	if p == nil {
		return nil
	}
	return p
}
