package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Kinds of objects that expectations are kept about, beside the workload kinds.
const (
	KindReplicaSet = "ReplicaSet"
	KindPod        = "Pod"
)

// ObjectKey names an object in expectations: Kind/namespace/name.
func ObjectKey(kind, namespace, name string) string {
	return kind + "/" + namespace + "/" + name
}

// Lookup reads an expectation's object from the caches; it implements the
// Lookup function type for the objects that the releasers write.
func (d *Deps) Lookup(object string) (bool, int64, types.UID) {
	kind, rest, _ := strings.Cut(object, "/")
	namespace, name, _ := strings.Cut(rest, "/")
	var (
		obj metav1.Object
		err error
	)
	switch kind {
	case KindReplicaSet:
		obj, err = d.ReplicaSets.ReplicaSets(namespace).Get(name)
	case KindPod:
		obj, err = d.Pods.Pods(namespace).Get(name)
	default:
		k, kerr := KindOf(kind)
		if kerr != nil {
			return false, 0, ""
		}
		obj, err = k.Get(d, namespace, name)
	}
	if err != nil || obj.GetDeletionTimestamp() != nil {
		return false, 0, ""
	}
	return true, obj.GetGeneration(), obj.GetUID()
}

// Pending reports whether writes made for ro are not yet in the caches.
func (d *Deps) Pending(ro *v1beta1.Rollout) bool {
	return d.Expectations.Pending(OwnerKey(ro), d.Lookup)
}

// ExpectWritten records a write of obj (of kind) made for ro.
func (d *Deps) ExpectWritten(ro *v1beta1.Rollout, kind string, obj metav1.Object) {
	d.Expectations.ExpectGeneration(OwnerKey(ro), ObjectKey(kind, obj.GetNamespace(), obj.GetName()), obj.GetGeneration())
}

// SetControlLabel puts the rollout.kruise.io/controlled label on a workload
// (on=true) or removes it, with a merge patch so no other field is touched.
// A missing workload is not an error.
func SetControlLabel(ctx context.Context, kube kubernetes.Interface, kind, namespace, name string, on bool) error {
	var value any // nil removes the label in a merge patch
	if on {
		value = "true"
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{v1beta1.WorkloadControlLabel: value}}})
	if err != nil {
		return fmt.Errorf("encoding label patch: %w", err)
	}
	k, err := KindOf(kind)
	if err != nil {
		return err
	}
	err = k.Patch(ctx, kube, namespace, name, types.MergePatchType, patch)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("setting label %s on %s %s/%s: %w", v1beta1.WorkloadControlLabel, kind, namespace, name, err)
	}
	return nil
}
