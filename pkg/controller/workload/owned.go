package workload

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// ControllerIndex names the cache index of ReplicaSets and ControllerRevisions
// by the UID of their controller. A workload's own objects are then found
// without scanning its namespace: with a thousand Deployments in one
// namespace, a scan per pass made every pass cost O(namespace).
const ControllerIndex = "controller-uid"

// ControllerIndexFunc is the cache.IndexFunc of ControllerIndex.
func ControllerIndexFunc(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil //nolint:nilerr // not an object: in no index
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

// OwnerIndexers are the ReplicaSet and ControllerRevision caches, indexed by
// ControllerIndex.
type OwnerIndexers struct {
	ReplicaSets, ControllerRevisions cache.Indexer
}

// ReplicaSetsOf returns the ReplicaSets whose controller is uid.
func (d *Deps) ReplicaSetsOf(uid types.UID) ([]*appsv1.ReplicaSet, error) {
	return owned[*appsv1.ReplicaSet](d.Owned.ReplicaSets, uid)
}

// ControllerRevisionsOf returns the ControllerRevisions whose controller is uid.
func (d *Deps) ControllerRevisionsOf(uid types.UID) ([]*appsv1.ControllerRevision, error) {
	return owned[*appsv1.ControllerRevision](d.Owned.ControllerRevisions, uid)
}

func owned[T metav1.Object](idx cache.Indexer, uid types.UID) ([]T, error) {
	if idx == nil {
		return nil, fmt.Errorf("no %s index to find the objects of %s in", ControllerIndex, uid)
	}
	out, err := ByIndex[T](idx, ControllerIndex, string(uid))
	if err != nil {
		return nil, fmt.Errorf("looking up the objects controlled by %s: %w", uid, err)
	}
	return out, nil
}

// ByIndex returns the objects of idx filed under key in index, as Ts; an
// object of another type is left out.
func ByIndex[T any](idx cache.Indexer, index, key string) ([]T, error) {
	objs, err := idx.ByIndex(index, key)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(objs))
	for _, obj := range objs {
		if t, ok := obj.(T); ok {
			out = append(out, t)
		}
	}
	return out, nil
}
