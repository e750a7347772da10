package traffic

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
)

// gatewayRecheck is how long a missing Gateway API is believed missing
// before discovery is asked again.
const gatewayRecheck = 10 * time.Second

// GatewayAPI starts the HTTPRoute informer the first time a Rollout needs
// it and the cluster serves the Gateway API, so that a cluster without the
// Gateway API CRDs costs nothing and gets a clear message instead of an
// informer that never syncs.
type GatewayAPI struct {
	// Client reaches the Gateway API.
	Client gwclient.Interface
	// Discovery tells whether the cluster serves HTTPRoutes.
	Discovery discovery.DiscoveryInterface
	// OnChange is called with every HTTPRoute added, changed or deleted.
	OnChange func(namespace, name string)
	// Ctx stops the informer.
	Ctx context.Context

	mu          sync.Mutex
	lister      gwlisters.HTTPRouteLister
	synced      cache.InformerSynced
	missingTill time.Time
}

// HTTPRoutes returns the client and a synced lister, or an error that says
// why not: the Gateway API is not installed, or the cache is still filling.
func (g *GatewayAPI) HTTPRoutes() (gwclient.Interface, gwlisters.HTTPRouteLister, error) {
	if g == nil || g.Client == nil {
		return nil, nil, fmt.Errorf("the Gateway API client is not configured")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lister == nil {
		if time.Now().Before(g.missingTill) {
			return nil, nil, errGatewayMissing
		}
		served, err := g.served()
		if err != nil {
			return nil, nil, err
		}
		if !served {
			g.missingTill = time.Now().Add(gatewayRecheck)
			return nil, nil, errGatewayMissing
		}
		g.start()
	}
	if !g.synced() {
		return nil, nil, fmt.Errorf("the HTTPRoute cache is still filling")
	}
	return g.Client, g.lister, nil
}

var errGatewayMissing = fmt.Errorf("the Gateway API is not installed in this cluster (no %s/httproutes); install its CRDs (config/crd/standard of sigs.k8s.io/gateway-api)", gwv1.GroupVersion)

func (g *GatewayAPI) served() (bool, error) {
	list, err := g.Discovery.ServerResourcesForGroupVersion(gwv1.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", gwv1.GroupVersion, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == "httproutes" }), nil
}

func (g *GatewayAPI) start() {
	factory := gwinformers.NewSharedInformerFactory(g.Client, 0)
	informer := factory.Gateway().V1().HTTPRoutes()
	notify := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil && g.OnChange != nil {
			if ns, name, err := cache.SplitMetaNamespaceKey(key); err == nil {
				g.OnChange(ns, name)
			}
		}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}); err != nil {
		klog.ErrorS(err, "Watching HTTPRoutes")
	}
	g.lister = informer.Lister()
	g.synced = informer.Informer().HasSynced
	factory.Start(g.Ctx.Done())
	klog.InfoS("Watching Gateway API HTTPRoutes")
}
