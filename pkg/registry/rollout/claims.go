package rollout

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// workloadClaims enforces "one Rollout per workload": a create, or an update
// that changes spec.workloadRef, is rejected when another Rollout in the
// namespace already references the same workload.
//
// The check is a consistent read of the spec.workloadRef.name index, made
// while holding a lock for that workload, and the lock is held until the write
// is stored. So concurrent writes through one server are serialised per
// workload and cannot both win. Writes through two different replicas of the
// server at the same instant can still both pass; see docs/api.md.
type workloadClaims struct {
	mu    sync.Mutex
	locks map[string]*claimLock
}

type claimLock struct {
	sync.Mutex
	waiters int
}

func newWorkloadClaims() *workloadClaims {
	return &workloadClaims{locks: map[string]*claimLock{}}
}

// lock takes the lock of one workload and returns its release. Unused locks
// are dropped, so the map holds only workloads being written right now.
func (w *workloadClaims) lock(key string) func() {
	w.mu.Lock()
	l, ok := w.locks[key]
	if !ok {
		l = &claimLock{}
		w.locks[key] = l
	}
	l.waiters++
	w.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		w.mu.Lock()
		l.waiters--
		if l.waiters == 0 {
			delete(w.locks, key)
		}
		w.mu.Unlock()
	}
}

func (w *workloadClaims) beginCreate(store *genericregistry.Store) genericregistry.BeginCreateFunc {
	return func(ctx context.Context, obj runtime.Object, _ *metav1.CreateOptions) (genericregistry.FinishFunc, error) {
		return w.claim(ctx, store, obj.(*rollout.Rollout))
	}
}

func (w *workloadClaims) beginUpdate(store *genericregistry.Store) genericregistry.BeginUpdateFunc {
	return func(ctx context.Context, obj, old runtime.Object, _ *metav1.UpdateOptions) (genericregistry.FinishFunc, error) {
		newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
		if sameWorkload(newR.Spec.WorkloadRef, oldR.Spec.WorkloadRef) {
			return finishNothing, nil
		}
		return w.claim(ctx, store, newR)
	}
}

func finishNothing(context.Context, bool) {}

func (w *workloadClaims) claim(ctx context.Context, store *genericregistry.Store, r *rollout.Rollout) (genericregistry.FinishFunc, error) {
	ref := r.Spec.WorkloadRef
	if ref.Name == "" {
		return finishNothing, nil // validation reports the missing name
	}
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	unlock := w.lock(namespace + "/" + ref.Kind + "/" + ref.Name)

	holder, err := findHolder(ctx, store, r)
	if err != nil {
		unlock()
		return nil, err
	}
	if holder != "" {
		unlock()
		path := field.NewPath("spec", "workloadRef", "name")
		return nil, apierrors.NewInvalid(rollout.Kind("Rollout"), r.Name, field.ErrorList{
			field.Invalid(path, ref.Name, fmt.Sprintf("%s %q is already released by Rollout %q; a workload can have only one Rollout", ref.Kind, ref.Name, holder)),
		})
	}
	return func(context.Context, bool) { unlock() }, nil
}

// findHolder returns the name of another Rollout in the namespace that
// references the same workload, or "".
func findHolder(ctx context.Context, store *genericregistry.Store, r *rollout.Rollout) (string, error) {
	list, err := store.List(ctx, &metainternalversion.ListOptions{
		FieldSelector: fields.OneTermEqualSelector(FieldWorkloadName, r.Spec.WorkloadRef.Name),
	})
	if err != nil {
		return "", fmt.Errorf("looking up Rollouts of workload %q: %w", r.Spec.WorkloadRef.Name, err)
	}
	for i := range list.(*rollout.RolloutList).Items {
		other := &list.(*rollout.RolloutList).Items[i]
		if other.Name != r.Name && sameWorkload(other.Spec.WorkloadRef, r.Spec.WorkloadRef) {
			return other.Name, nil
		}
	}
	return "", nil
}

// sameWorkload compares references by kind and name: apps/v1 is the only
// group served for every supported kind, so the version does not matter.
func sameWorkload(a, b rollout.ObjectRef) bool {
	return a.Kind == b.Kind && a.Name == b.Name
}
