package traffic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// missingRecheck is how long a resource the cluster does not serve is
// believed missing before discovery is asked again.
const missingRecheck = 10 * time.Second

// lazyInformer starts the informer of a resource that the cluster may not
// serve (a CRD that is not installed) the first time a Rollout needs it, so
// that a cluster without the CRD costs nothing and gets a clear message
// instead of an informer that never syncs.
type lazyInformer struct {
	mu          sync.Mutex
	synced      cache.InformerSynced
	missingTill time.Time
}

// notServed is the error of a resource the cluster does not serve (its CRD
// is not installed): no object of it exists, so none carries a change that
// an ending of a release would have to undo.
type notServed struct{ error }

func (e notServed) Unwrap() error { return e.error }

// isNotServed reports whether err says the cluster does not serve a routing
// resource.
func isNotServed(err error) bool {
	var ns notServed
	return errors.As(err, &ns)
}

// ensure starts the informer with start once discovery finds resource in gv,
// and reports errMissing (as notServed) while it does not, or that the cache
// is filling.
func (l *lazyInformer) ensure(disc discovery.DiscoveryInterface, gv schema.GroupVersion, resource string, errMissing error, start func() cache.InformerSynced) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.synced == nil {
		if time.Now().Before(l.missingTill) {
			return notServed{errMissing}
		}
		list, err := disc.ServerResourcesForGroupVersion(gv.String())
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("discovering %s: %w", gv, err)
		case slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == resource }):
			l.synced = start()
		}
		if l.synced == nil {
			l.missingTill = time.Now().Add(missingRecheck)
			return notServed{errMissing}
		}
	}
	if !l.synced() {
		return fmt.Errorf("the %s cache is still filling", resource)
	}
	return nil
}

// notifier calls onChange with the namespace and name of every object an
// informer sees added, changed or deleted.
func notifier(what string, onChange func(namespace, name string)) cache.ResourceEventHandler {
	notify := func(obj any) {
		if onChange == nil {
			return
		}
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			klog.ErrorS(err, "Reading the key of a routing object", "kind", what)
			return
		}
		if ns, name, err := cache.SplitMetaNamespaceKey(key); err == nil {
			onChange(ns, name)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}
}

// DynamicAPI reaches routing objects that have no typed client here (Istio's
// VirtualServices and DestinationRules) through the dynamic client, with one
// informer per resource, each started the first time a Rollout needs it and
// the cluster serves it.
type DynamicAPI struct {
	// Client reaches the resources.
	Client dynamic.Interface
	// Discovery tells whether the cluster serves a resource.
	Discovery discovery.DiscoveryInterface
	// OnChange is called with the kind, namespace and name of every object
	// added, changed or deleted.
	OnChange func(kind, namespace, name string)
	// Ctx stops the informers.
	Ctx context.Context

	mu        sync.Mutex
	factory   dynamicinformer.DynamicSharedInformerFactory
	informers map[schema.GroupVersionResource]*dynamicInformer
}

type dynamicInformer struct {
	lazyInformer
	lister cache.GenericLister
}

// Resource returns the client of gvr (objects of kind) and a synced lister,
// or an error that says why not: errMissing when the cluster does not serve
// it, or that the cache is still filling.
func (d *DynamicAPI) Resource(gvr schema.GroupVersionResource, kind string, errMissing error) (dynamic.NamespaceableResourceInterface, cache.GenericLister, error) {
	if d == nil || d.Client == nil {
		return nil, nil, fmt.Errorf("the dynamic client for %s is not configured", gvr.GroupResource())
	}
	d.mu.Lock()
	if d.informers == nil {
		d.informers = map[schema.GroupVersionResource]*dynamicInformer{}
	}
	inf, ok := d.informers[gvr]
	if !ok {
		inf = &dynamicInformer{}
		d.informers[gvr] = inf
	}
	d.mu.Unlock()
	err := inf.ensure(d.Discovery, gvr.GroupVersion(), gvr.Resource, errMissing, func() cache.InformerSynced {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.factory == nil {
			d.factory = dynamicinformer.NewDynamicSharedInformerFactory(d.Client, 0)
		}
		informer := d.factory.ForResource(gvr)
		onChange := func(namespace, name string) {
			if d.OnChange != nil {
				d.OnChange(kind, namespace, name)
			}
		}
		if _, err := informer.Informer().AddEventHandler(notifier(kind, onChange)); err != nil {
			klog.ErrorS(err, "Watching routing objects", "resource", gvr.String())
		}
		inf.lister = informer.Lister()
		d.factory.Start(d.Ctx.Done())
		klog.InfoS("Watching routing objects", "resource", gvr.String())
		return informer.Informer().HasSynced
	})
	if err != nil {
		return nil, nil, err
	}
	return d.Client.Resource(gvr), inf.lister, nil
}

// IngressAPI starts the Ingress informer the first time a Rollout routes
// through an Ingress, so that clusters that route otherwise neither cache
// every Ingress nor need the permission to.
type IngressAPI struct {
	// Client reaches Ingresses.
	Client kubernetes.Interface
	// OnChange is called with every Ingress added, changed or deleted.
	OnChange func(namespace, name string)
	// Ctx stops the informer.
	Ctx context.Context

	lazy   lazyInformer
	lister networkinglisters.IngressLister
}

var errIngressMissing = fmt.Errorf("this cluster does not serve %s/ingresses", networkingv1.SchemeGroupVersion)

// Ingresses returns the client and a synced lister, or why not.
func (i *IngressAPI) Ingresses() (kubernetes.Interface, networkinglisters.IngressLister, error) {
	if i == nil || i.Client == nil {
		return nil, nil, fmt.Errorf("the Ingress client is not configured")
	}
	if err := i.lazy.ensure(i.Client.Discovery(), networkingv1.SchemeGroupVersion, "ingresses", errIngressMissing, i.start); err != nil {
		return nil, nil, err
	}
	return i.Client, i.lister, nil
}

func (i *IngressAPI) start() cache.InformerSynced {
	factory := informers.NewSharedInformerFactory(i.Client, 0)
	informer := factory.Networking().V1().Ingresses()
	if _, err := informer.Informer().AddEventHandler(notifier("Ingress", i.OnChange)); err != nil {
		klog.ErrorS(err, "Watching Ingresses")
	}
	i.lister = informer.Lister()
	factory.Start(i.Ctx.Done())
	klog.InfoS("Watching Ingresses")
	return informer.Informer().HasSynced
}
