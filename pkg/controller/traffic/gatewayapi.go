package traffic

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
)

// GatewayAPI starts the HTTPRoute informer the first time a Rollout needs
// it and the cluster serves the Gateway API.
type GatewayAPI struct {
	// Client reaches the Gateway API.
	Client gwclient.Interface
	// Discovery tells whether the cluster serves HTTPRoutes.
	Discovery discovery.DiscoveryInterface
	// OnChange is called with every HTTPRoute added, changed or deleted.
	OnChange func(namespace, name string)
	// Ctx stops the informer.
	Ctx context.Context

	lazy   lazyInformer
	lister gwlisters.HTTPRouteLister
}

// HTTPRoutes returns the client and a synced lister, or an error that says
// why not: the Gateway API is not installed, or the cache is still filling.
func (g *GatewayAPI) HTTPRoutes() (gwclient.Interface, gwlisters.HTTPRouteLister, error) {
	if g == nil || g.Client == nil {
		return nil, nil, fmt.Errorf("the Gateway API client is not configured")
	}
	if err := g.lazy.ensure(g.Discovery, schema.GroupVersion(gwv1.GroupVersion), "httproutes", errGatewayMissing, g.start); err != nil {
		return nil, nil, err
	}
	return g.Client, g.lister, nil
}

var errGatewayMissing = fmt.Errorf("the Gateway API is not installed in this cluster (no %s/httproutes); install its CRDs (config/crd/standard of sigs.k8s.io/gateway-api)", gwv1.GroupVersion)

func (g *GatewayAPI) start() cache.InformerSynced {
	factory := gwinformers.NewSharedInformerFactory(g.Client, 0)
	informer := factory.Gateway().V1().HTTPRoutes()
	if _, err := informer.Informer().AddEventHandler(notifier("HTTPRoute", g.OnChange)); err != nil {
		klog.ErrorS(err, "Watching HTTPRoutes")
	}
	g.lister = informer.Lister()
	factory.Start(g.Ctx.Done())
	klog.InfoS("Watching Gateway API HTTPRoutes")
	return informer.Informer().HasSynced
}
