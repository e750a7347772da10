package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

// unwrap returns the object of a delete event, including one whose final
// state the informer missed.
func unwrap(obj any) any {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tombstone.Obj
	}
	return obj
}

func (c *Controller) rolloutHandler() cache.ResourceEventHandler {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.enqueue(key)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			oldRo, ok1 := oldObj.(*v1beta1.Rollout)
			newRo, ok2 := newObj.(*v1beta1.Rollout)
			if !ok2 || !c.store.echo(newRo) {
				enqueue(newObj)
			}
			if ok1 && ok2 && oldRo.Spec.WorkloadRef != newRo.Spec.WorkloadRef {
				// The workload it no longer references may need its label removed.
				c.enqueue(workloadKeyPrefix + workloadIndexKey(oldRo.Namespace, oldRo.Spec.WorkloadRef.Kind, oldRo.Spec.WorkloadRef.Name))
			}
		},
		DeleteFunc: func(obj any) {
			enqueue(obj)
			if ro, ok := unwrap(obj).(*v1beta1.Rollout); ok {
				c.store.forget(ro.Namespace, ro.Name)
				c.enqueue(workloadKeyPrefix + workloadIndexKey(ro.Namespace, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name))
			}
		},
	}
}

// referencing returns the Rollouts that reference a workload.
func (c *Controller) referencing(namespace, kind, name string) []*v1beta1.Rollout {
	out, _ := c.RolloutsOf(namespace, kind, name)
	return out
}

// RolloutsOf returns the Rollouts of the cache that reference a workload (or a
// routing object) of the given kind; it is a workload.RolloutLookup, which the
// workload webhook uses on every replica.
func (c *Controller) RolloutsOf(namespace, kind, name string) ([]*v1beta1.Rollout, error) {
	out, err := workload.ByIndex[*v1beta1.Rollout](c.rolloutIndexer, workloadIndex, workloadIndexKey(namespace, kind, name))
	if err != nil {
		return nil, fmt.Errorf("looking up the Rollouts of %s %s/%s: %w", kind, namespace, name, err)
	}
	return out, nil
}

// enqueueReferencing queues the Rollouts of a workload, and of the workload
// an extra canary Deployment belongs to.
func (c *Controller) enqueueReferencing(namespace, kind, name string) {
	for _, ro := range c.referencing(namespace, kind, name) {
		c.enqueue(ro.Namespace + "/" + ro.Name)
	}
}

func (c *Controller) workloadHandler(kind string) cache.ResourceEventHandler {
	handle := func(obj any) {
		meta, ok := unwrap(obj).(metav1.Object)
		if !ok {
			return
		}
		c.enqueueReferencing(meta.GetNamespace(), kind, meta.GetName())
		if owner := metav1.GetControllerOfNoCopy(meta); owner != nil && owner.Kind == v1beta1.KindDeployment {
			// An extra canary Deployment reports to its stable Deployment's Rollouts.
			c.enqueueReferencing(meta.GetNamespace(), v1beta1.KindDeployment, owner.Name)
		}
		c.checkWorkload(kind, meta)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, newObj any) { handle(newObj) },
		DeleteFunc: handle,
	}
}

// checkWorkload queues a clean-up of a workload that carries our label or
// hold although no Rollout references it any more.
func (c *Controller) checkWorkload(kind string, obj any) {
	meta, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	_, labelled := meta.GetLabels()[v1beta1.WorkloadControlLabel]
	if !labelled && !workload.IsHeld(meta) {
		return
	}
	if workload.ActiveRollout(c.referencing(meta.GetNamespace(), kind, meta.GetName()), kind, meta.GetName()) != nil {
		return
	}
	c.enqueue(workloadKeyPrefix + workloadIndexKey(meta.GetNamespace(), kind, meta.GetName()))
}

// ownedHandler maps ReplicaSets, ControllerRevisions and pods to the Rollouts
// of the workload that owns them.
func (c *Controller) ownedHandler() cache.ResourceEventHandler {
	handle := func(obj any) {
		meta, ok := unwrap(obj).(metav1.Object)
		if !ok {
			return
		}
		owner := metav1.GetControllerOfNoCopy(meta)
		if owner == nil {
			return
		}
		switch owner.Kind {
		case "ReplicaSet":
			rs, err := c.deps.ReplicaSets.ReplicaSets(meta.GetNamespace()).Get(owner.Name)
			if err != nil {
				return
			}
			if dep := metav1.GetControllerOfNoCopy(rs); dep != nil && dep.Kind == v1beta1.KindDeployment {
				c.enqueueDeployment(meta.GetNamespace(), dep.Name)
			}
		case v1beta1.KindDeployment:
			c.enqueueDeployment(meta.GetNamespace(), owner.Name)
		case v1beta1.KindStatefulSet, v1beta1.KindDaemonSet:
			c.enqueueReferencing(meta.GetNamespace(), owner.Kind, owner.Name)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: handle,
		UpdateFunc: func(oldObj, newObj any) {
			// A pod update that changed nothing a release reads wakes no
			// Rollout: a thousand releases made over 60 reconciles each,
			// most of them for pod status the cache does not even keep.
			if oldPod, ok := oldObj.(*corev1.Pod); ok {
				if newPod, ok := newObj.(*corev1.Pod); ok && sameTrimmedPod(oldPod, newPod) {
					return
				}
			}
			handle(newObj)
		},
		DeleteFunc: handle,
	}
}

// enqueueDeployment queues the Rollouts of a Deployment, or of the stable
// Deployment when it is an extra canary.
func (c *Controller) enqueueDeployment(namespace, name string) {
	c.enqueueReferencing(namespace, v1beta1.KindDeployment, name)
	d, err := c.deps.Deployments.Deployments(namespace).Get(name)
	if err != nil {
		return
	}
	if owner := metav1.GetControllerOfNoCopy(d); owner != nil && owner.Kind == v1beta1.KindDeployment {
		c.enqueueReferencing(namespace, v1beta1.KindDeployment, owner.Name)
	}
}

// syncWorkload cleans up a workload (key kind/namespace/name) no Rollout
// acts on: it loses the control label when no active Rollout references it,
// and its hold when no Rollout references it at all (a Rollout that was
// force-deleted past its finalizer, say), so it is never left paused.
func (c *Controller) syncWorkload(ctx context.Context, key string) error {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return fmt.Errorf("bad workload key %q", key)
	}
	namespace, kind, name := parts[0], parts[1], parts[2]
	refs := c.referencing(namespace, kind, name)
	k, err := workload.KindOf(kind)
	if err != nil {
		return nil // keys are only made for supported kinds; nothing to clean up
	}
	meta, err := k.Get(c.deps, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s/%s from cache: %w", kind, namespace, name, err)
	}
	if len(refs) == 0 && workload.IsHeld(meta) {
		if err := c.releaseOrphan(ctx, k, meta); err != nil {
			return err
		}
	}
	// A Rollout being disabled or deleted still holds its workload and hands
	// it back itself, dropping the label last: the label is what lets the
	// server write the workload under the admission policy, so it stays
	// while a referencing Rollout still holds the workload.
	finishing := len(refs) > 0 && workload.IsHeld(meta)
	if _, labelled := meta.GetLabels()[v1beta1.WorkloadControlLabel]; labelled && !finishing && workload.ActiveRollout(refs, kind, name) == nil {
		klog.FromContext(ctx).Info("Removing control label from a workload no Rollout references", "kind", kind, "workload", klog.KRef(namespace, name))
		return workload.SetControlLabel(ctx, c.cfg.KubeClient, kind, namespace, name, false)
	}
	return nil
}

// releaseOrphan undoes the hold of a workload whose Rollout is gone.
func (c *Controller) releaseOrphan(ctx context.Context, k *workload.Kind, meta metav1.Object) error {
	released, changed := k.Release(meta)
	if !changed {
		return nil
	}
	if err := k.Update(ctx, c.cfg.KubeClient, released); err != nil {
		return fmt.Errorf("releasing %s %s/%s that no Rollout references: %w", k.Name, meta.GetNamespace(), meta.GetName(), err)
	}
	klog.FromContext(ctx).Info("Released a held workload that no Rollout references", "kind", k.Name, "workload", klog.KObj(meta))
	return nil
}

// rolloutStore reads Rollouts from the informer cache, or the reconciler's
// own last write of a Rollout while the informer has not delivered it yet: a
// reconcile from an older copy would act on a step that is already behind.
// (client-go's MutationCache does the same but panics on a resourceVersion
// that is not an integer; this one trusts the informer then.)
type rolloutStore struct {
	lister rolloutlisters.RolloutLister
	lookup workload.RolloutLookup
	// settled holds, per Rollout, the resourceVersions of the status writes
	// whose watch events need no reconcile (release.Store.Settled); each is
	// consumed by its event, and a key holds at most maxSettled.
	settled map[string][]string
	mu      sync.Mutex
	written map[string]*v1beta1.Rollout
}

func newRolloutStore(lister rolloutlisters.RolloutLister, lookup workload.RolloutLookup) *rolloutStore {
	return &rolloutStore{lister: lister, lookup: lookup, written: map[string]*v1beta1.Rollout{}, settled: map[string][]string{}}
}

// Get implements release.Store.
func (s *rolloutStore) Get(namespace, name string) (*v1beta1.Rollout, error) {
	key := namespace + "/" + name
	cached, err := s.lister.Rollouts(namespace).Get(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.written, key)
		return nil, err
	}
	if w, ok := s.written[key]; ok {
		if w.UID == cached.UID && newerResourceVersion(w.ResourceVersion, cached.ResourceVersion) {
			return w, nil
		}
		delete(s.written, key)
	}
	return cached, nil
}

// newerResourceVersion reports whether a is a later integer resourceVersion
// than b; anything else is not known to be newer.
func newerResourceVersion(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x > y
}

// maxSettled bounds the settled writes remembered per Rollout: a Sync writes
// at most a few statuses back to back, and an event that never comes (a
// relist skips versions) must not leave entries behind for ever.
const maxSettled = 8

// Settled implements release.Store.
func (s *rolloutStore) Settled(ro *v1beta1.Rollout) {
	key := ro.Namespace + "/" + ro.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	versions := append(s.settled[key], ro.ResourceVersion)
	if len(versions) > maxSettled {
		versions = versions[len(versions)-maxSettled:]
	}
	s.settled[key] = versions
}

// echo reports whether ro, as a watch event delivers it, is a settled status
// write of the reconciler's own, and forgets it: any other version of the
// Rollout (a user's change, a resync, a write of another replica) is not.
func (s *rolloutStore) echo(ro *v1beta1.Rollout) bool {
	key := ro.Namespace + "/" + ro.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	versions := s.settled[key]
	for i, v := range versions {
		if v == ro.ResourceVersion {
			// Older versions than this one will not be delivered any more.
			if rest := versions[i+1:]; len(rest) > 0 {
				s.settled[key] = rest
			} else {
				delete(s.settled, key)
			}
			return true
		}
	}
	return false
}

// forget drops what the store remembers of a deleted Rollout.
func (s *rolloutStore) forget(namespace, name string) {
	key := namespace + "/" + name
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.settled, key)
	delete(s.written, key)
}

// Referencing implements release.Store.
func (s *rolloutStore) Referencing(namespace, kind, name string) ([]*v1beta1.Rollout, error) {
	return s.lookup(namespace, kind, name)
}

// Written implements release.Store.
func (s *rolloutStore) Written(ro *v1beta1.Rollout) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written[ro.Namespace+"/"+ro.Name] = ro
}

// serviceHandler looks again at the Rollouts that route through a Service
// (as the stable or the canary Service) when it changes.
func (c *Controller) serviceHandler() cache.ResourceEventHandler {
	handle := func(obj any) {
		if meta, ok := unwrap(obj).(metav1.Object); ok {
			c.enqueueReferencing(meta.GetNamespace(), kindService, meta.GetName())
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
		DeleteFunc: handle,
	}
}
