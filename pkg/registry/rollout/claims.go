package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// workloadClaims enforces "one Rollout per workload": a create, or an update
// that changes spec.workloadRef, is rejected when another Rollout in the
// namespace already references the same workload.
//
// The rule holds across replicas of the server because it is decided in
// etcd, not in one process: every workload that a Rollout references has a
// claim key (ClaimsResourcePrefix/NAMESPACE/KIND/NAME) naming that Rollout,
// and a write first creates the claim with an atomic create-if-absent
// transaction. Of any number of concurrent writers, on any replicas, one
// creates the claim; the others find it and are refused.
//
// A claim goes through two states. While the write that made it is in flight
// it is pending and bound to an etcd lease (claimTTL), so a server that dies
// between the claim and the write leaves nothing behind for longer than that.
// Once the Rollout is stored the claim is held: no lease, it lives as long as
// the Rollout references the workload, and is removed when the Rollout is
// deleted or moves to another workload. A held claim whose Rollout no longer
// exists, or no longer references the workload (a server died before it
// released the claim), is stale and is taken over by the next writer, with
// the claim's resourceVersion as precondition so two writers cannot both take
// it. A pending claim is never taken over; it expires.
//
// After taking the claim a writer still looks up Rollouts of the workload in
// the spec.workloadRef.name index of the watch cache, and confirms a hit in
// etcd: that finds Rollouts stored before claims existed, and those whose
// pending claim expired before it could be made held.
type workloadClaims struct {
	// storage holds the claims, beside the Rollouts in the same etcd.
	storage storage.Interface
	// rollouts is the Rollouts' store, to find the holder of a claim.
	rollouts *genericregistry.Store
}

// ClaimsResourcePrefix is where workload claims live in etcd, under the
// server's storage prefix and beside the Rollouts ("/rollout.kruise.io/rollouts").
const ClaimsResourcePrefix = "/" + rollout.GroupName + "/workloadclaims"

// claimTTL is how long a pending claim outlives a server that died before
// its write finished. Longer than any request may take (the request timeout
// is a minute), so a slow write never loses its claim.
const claimTTL = 2 * time.Minute

// claimStateAnnotation tells a pending claim from a held one.
const claimStateAnnotation = rollout.GroupName + "/workload-claim"

const (
	claimPending = "pending"
	claimHeld    = "held"
)

// claimReleaseTimeout bounds the claim work done after a write, with no
// request context left to bound it.
const claimReleaseTimeout = 10 * time.Second

func newWorkloadClaims(claims storage.Interface, rollouts *genericregistry.Store) *workloadClaims {
	return &workloadClaims{storage: claims, rollouts: rollouts}
}

// claimKey is the etcd key of the claim on the workload ref refers to in
// namespace; false when the reference cannot name a key (validation refuses
// such a Rollout anyway).
func claimKey(namespace string, ref rollout.ObjectRef) (string, bool) {
	if namespace == "" || ref.Kind == "" || ref.Name == "" {
		return "", false
	}
	for _, segment := range []string{namespace, ref.Kind, ref.Name} {
		if len(path.IsValidPathSegmentName(segment)) > 0 {
			return "", false
		}
	}
	return ClaimsResourcePrefix + "/" + namespace + "/" + ref.Kind + "/" + ref.Name, true
}

// newClaim is the record stored under a claim key: a Rollout with the
// holder's name, UID and workload reference, and the claim's state.
func newClaim(r *rollout.Rollout, namespace, state string) *rollout.Rollout {
	return &rollout.Rollout{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.Name, Namespace: namespace, UID: r.UID,
			Annotations: map[string]string{claimStateAnnotation: state},
		},
		Spec: rollout.RolloutSpec{WorkloadRef: r.Spec.WorkloadRef},
	}
}

func (w *workloadClaims) beginCreate(ctx context.Context, obj runtime.Object, options *metav1.CreateOptions) (genericregistry.FinishFunc, error) {
	return w.claim(ctx, obj.(*rollout.Rollout), len(options.DryRun) > 0, nil)
}

func (w *workloadClaims) beginUpdate(ctx context.Context, obj, old runtime.Object, options *metav1.UpdateOptions) (genericregistry.FinishFunc, error) {
	newR, oldR := obj.(*rollout.Rollout), old.(*rollout.Rollout)
	if sameWorkload(newR.Spec.WorkloadRef, oldR.Spec.WorkloadRef) {
		return finishNothing, nil
	}
	return w.claim(ctx, newR, len(options.DryRun) > 0, &oldR.Spec.WorkloadRef)
}

// afterDelete releases the claim of a Rollout that is gone. If this fails
// (or the server dies first) the claim is stale and the next writer takes it.
func (w *workloadClaims) afterDelete(obj runtime.Object, options *metav1.DeleteOptions) {
	r, ok := obj.(*rollout.Rollout)
	if !ok || (options != nil && len(options.DryRun) > 0) {
		return
	}
	if key, ok := claimKey(r.Namespace, r.Spec.WorkloadRef); ok {
		ctx, cancel := context.WithTimeout(context.Background(), claimReleaseTimeout)
		defer cancel()
		w.release(ctx, key, r.Name)
	}
}

func finishNothing(context.Context, bool) {}

// claim takes the claim on r's workload for a write of r (a dry run only
// checks it) and returns what finishes it once the write is done: a stored
// write makes the claim held and releases released, the workload r
// referenced before; a failed one gives back a claim it made.
func (w *workloadClaims) claim(ctx context.Context, r *rollout.Rollout, dryRun bool, released *rollout.ObjectRef) (genericregistry.FinishFunc, error) {
	namespace, _ := genericapirequest.NamespaceFrom(ctx)
	key, ok := claimKey(namespace, r.Spec.WorkloadRef)
	if !ok {
		return finishNothing, nil // validation reports the reference
	}
	made, err := w.acquire(ctx, key, r, namespace, dryRun)
	if err != nil {
		return nil, err
	}
	holder, err := findHolder(ctx, w.rollouts, r)
	if err == nil && holder != "" {
		// The cache may still show a Rollout deleted (or moved to another
		// workload) a moment ago; etcd has the last word.
		var holds bool
		if holds, err = w.holds(ctx, namespace, holder, r.Spec.WorkloadRef); err == nil && holds {
			err = heldBy(r, holder, false)
		}
	}
	if err != nil {
		if made {
			w.release(context.WithoutCancel(ctx), key, r.Name)
		}
		return nil, err
	}
	if dryRun {
		return finishNothing, nil
	}
	return func(ctx context.Context, stored bool) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimReleaseTimeout)
		defer cancel()
		if !stored {
			if made {
				w.release(ctx, key, r.Name)
			}
			return
		}
		w.hold(ctx, key, r, namespace)
		if released != nil {
			if old, ok := claimKey(namespace, *released); ok {
				w.release(ctx, old, r.Name)
			}
		}
	}, nil
}

// acquire creates the pending claim key for r, or finds that r may write
// anyway (the claim already names r); made says whether it created the claim.
// A claim of another Rollout refuses the write unless it is stale.
func (w *workloadClaims) acquire(ctx context.Context, key string, r *rollout.Rollout, namespace string, dryRun bool) (made bool, err error) {
	// Each round either makes the claim, or finds one, or removes a stale
	// one; a few rounds are enough unless writers keep racing on a stale claim.
	for range 3 {
		if !dryRun {
			err := w.storage.Create(ctx, key, newClaim(r, namespace, claimPending), &rollout.Rollout{}, uint64(claimTTL.Seconds()))
			if err == nil {
				return true, nil
			}
			if !storage.IsExist(err) {
				return false, fmt.Errorf("claiming %s %q for Rollout %q: %w", r.Spec.WorkloadRef.Kind, r.Spec.WorkloadRef.Name, r.Name, err)
			}
		}
		existing := &rollout.Rollout{}
		if err := w.storage.Get(ctx, key, storage.GetOptions{IgnoreNotFound: true}, existing); err != nil {
			return false, fmt.Errorf("reading the claim on %s %q: %w", r.Spec.WorkloadRef.Kind, r.Spec.WorkloadRef.Name, err)
		}
		switch {
		case existing.Name == "":
			if dryRun {
				return false, nil
			}
			continue // released in the meantime: try again
		case existing.Name == r.Name:
			// The same Rollout: a write of it again, or a create of a name
			// that exists, which the store refuses on its own.
			return false, nil
		case existing.Annotations[claimStateAnnotation] != claimHeld:
			return false, heldBy(r, existing.Name, true)
		}
		stale, err := w.stale(ctx, existing)
		if err != nil {
			return false, err
		}
		if !stale {
			return false, heldBy(r, existing.Name, false)
		}
		if dryRun {
			return false, nil
		}
		err = w.storage.Delete(ctx, key, &rollout.Rollout{}, &storage.Preconditions{ResourceVersion: &existing.ResourceVersion},
			storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{})
		if err != nil && !storage.IsNotFound(err) && !storage.IsConflict(err) {
			return false, fmt.Errorf("removing the stale claim of Rollout %q on %s %q: %w", existing.Name, r.Spec.WorkloadRef.Kind, r.Spec.WorkloadRef.Name, err)
		}
		if err == nil {
			klog.InfoS("Removed a stale workload claim", "holder", klog.KRef(namespace, existing.Name),
				"kind", r.Spec.WorkloadRef.Kind, "workload", r.Spec.WorkloadRef.Name, "claimant", r.Name)
		}
	}
	return false, apierrors.NewConflict(rollout.Resource("rollouts"), r.Name,
		fmt.Errorf("the claim on %s %q changed while this write tried to take it; try again", r.Spec.WorkloadRef.Kind, r.Spec.WorkloadRef.Name))
}

// stale reports whether a held claim's Rollout is gone or references
// another workload now.
func (w *workloadClaims) stale(ctx context.Context, claim *rollout.Rollout) (bool, error) {
	holds, err := w.holds(ctx, claim.Namespace, claim.Name, claim.Spec.WorkloadRef)
	return !holds, err
}

// holds reports whether Rollout namespace/name exists and references ref,
// read from etcd (a Get without resourceVersion bypasses the watch cache).
func (w *workloadClaims) holds(ctx context.Context, namespace, name string, ref rollout.ObjectRef) (bool, error) {
	obj, err := w.rollouts.Get(genericapirequest.WithNamespace(ctx, namespace), name, &metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up Rollout %q, which claims %s %q: %w", name, ref.Kind, ref.Name, err)
	}
	return sameWorkload(obj.(*rollout.Rollout).Spec.WorkloadRef, ref), nil
}

// errNotOurs stops an update of a claim that another Rollout holds.
var errNotOurs = errors.New("the claim names another Rollout")

// hold makes r's claim held: no lease, so it lasts until it is released.
func (w *workloadClaims) hold(ctx context.Context, key string, r *rollout.Rollout, namespace string) {
	err := w.storage.GuaranteedUpdate(ctx, key, &rollout.Rollout{}, true, nil,
		func(in runtime.Object, _ storage.ResponseMeta) (runtime.Object, *uint64, error) {
			if existing := in.(*rollout.Rollout); existing.Name != "" && existing.Name != r.Name {
				return nil, nil, errNotOurs
			}
			return newClaim(r, namespace, claimHeld), nil, nil
		}, nil)
	if err != nil {
		// The Rollout is stored: the index check still finds it if its
		// pending claim expires, so the rule holds; only a log is due.
		klog.ErrorS(err, "Could not make a workload claim held", "rollout", klog.KRef(namespace, r.Name),
			"kind", r.Spec.WorkloadRef.Kind, "workload", r.Spec.WorkloadRef.Name)
	}
}

// release removes the claim at key if it names holder.
func (w *workloadClaims) release(ctx context.Context, key, holder string) {
	existing := &rollout.Rollout{}
	if err := w.storage.Get(ctx, key, storage.GetOptions{IgnoreNotFound: true}, existing); err != nil {
		klog.ErrorS(err, "Could not read a workload claim to release it", "key", key, "holder", holder)
		return
	}
	if existing.Name != holder {
		return
	}
	err := w.storage.Delete(ctx, key, &rollout.Rollout{}, &storage.Preconditions{ResourceVersion: &existing.ResourceVersion},
		storage.ValidateAllObjectFunc, nil, storage.DeleteOptions{})
	if err != nil && !storage.IsNotFound(err) && !storage.IsConflict(err) {
		// Left behind, the claim is stale and the next writer takes it.
		klog.ErrorS(err, "Could not release a workload claim", "key", key, "holder", holder)
	}
}

// heldBy is the 422 that refuses r because holder has its workload (or is
// being written with it, when pending).
func heldBy(r *rollout.Rollout, holder string, pending bool) error {
	ref := r.Spec.WorkloadRef
	msg := fmt.Sprintf("%s %q is already released by Rollout %q; a workload can have only one Rollout", ref.Kind, ref.Name, holder)
	if pending {
		msg = fmt.Sprintf("%s %q is being claimed by Rollout %q, whose create or update is in flight; a workload can have only one Rollout", ref.Kind, ref.Name, holder)
	}
	return apierrors.NewInvalid(rollout.Kind("Rollout"), r.Name, field.ErrorList{
		field.Invalid(field.NewPath("spec", "workloadRef", "name"), ref.Name, msg),
	})
}

// findHolder returns the name of another Rollout in the namespace that
// references the same workload, or "".
//
// It reads the watch cache as it is (resourceVersion "0"), not a consistent
// list: a consistent one would wait for the cache to see the claim just
// written, which is outside the Rollouts' prefix, so only a progress
// notification (up to 100 ms later) tells the cache it is current. Freshness
// is not needed here: a Rollout written concurrently, on any replica, holds
// its claim, which acquire already found; the Rollouts this lookup is for
// (stored before claims existed, or whose pending claim expired after a
// crash) are minutes old and in every cache.
func findHolder(ctx context.Context, store *genericregistry.Store, r *rollout.Rollout) (string, error) {
	list, err := store.List(ctx, &metainternalversion.ListOptions{
		ResourceVersion: "0",
		FieldSelector:   fields.OneTermEqualSelector(FieldWorkloadName, r.Spec.WorkloadRef.Name),
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
