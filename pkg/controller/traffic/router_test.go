package traffic

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/istio"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/service"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

type routerEnv struct {
	r        *Router
	kube     *fake.Clientset
	gw       *gwfake.Clientset
	services cache.Indexer
	routes   cache.Indexer
	// ingresses caches Ingresses.
	ingresses cache.Indexer
	clock     *clocktesting.FakeClock
	events    *record.FakeRecorder
}

func newRouterEnv(t *testing.T) *routerEnv {
	stable := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	hr := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: "web", Port: ptr.To(gwv1.PortNumber(80))}}}}}}},
	}
	e := &routerEnv{
		kube:      fake.NewClientset(stable),
		gw:        gwfake.NewSimpleClientset(hr),
		services:  cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		routes:    cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		ingresses: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		clock:     clocktesting.NewFakeClock(time.Now()),
		events:    record.NewFakeRecorder(100),
	}
	e.r = &Router{
		Services: &service.Manager{Kube: e.kube, Services: corelisters.NewServiceLister(e.services)},
		Ingress:  &IngressAPI{Client: e.kube, lister: networkinglisters.NewIngressLister(e.ingresses), lazy: lazyInformer{synced: func() bool { return true }}},
		Istio:    &DynamicAPI{Client: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), Discovery: e.kube.Discovery(), Ctx: context.Background()},
		Gateway:  &GatewayAPI{Client: e.gw, lister: gwlisters.NewHTTPRouteLister(e.routes), lazy: lazyInformer{synced: func() bool { return true }}},
		Recorder: e.events,
		Clock:    e.clock,
	}
	e.sync(t)
	return e
}

// sync copies the fake clusters into the caches, as the informers would.
func (e *routerEnv) sync(t *testing.T) {
	ctx := context.Background()
	svcs, err := e.kube.CoreV1().Services("shop").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	items := make([]any, 0, len(svcs.Items))
	for i := range svcs.Items {
		items = append(items, &svcs.Items[i])
	}
	require.NoError(t, e.services.Replace(items, ""))
	hrs, err := e.gw.GatewayV1().HTTPRoutes("shop").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	items = nil
	for i := range hrs.Items {
		items = append(items, &hrs.Items[i])
	}
	require.NoError(t, e.routes.Replace(items, ""))
	ings, err := e.kube.NetworkingV1().Ingresses("shop").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	items = nil
	for i := range ings.Items {
		items = append(items, &ings.Items[i])
	}
	require.NoError(t, e.ingresses.Replace(items, ""))
}

func rolloutWithGateway() *v1beta1.Rollout {
	step := func(traffic string) v1beta1.CanaryStep {
		return v1beta1.CanaryStep{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To(traffic)}}
	}
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "ro-uid"},
		Spec: v1beta1.RolloutSpec{Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
			Steps: []v1beta1.CanaryStep{step("5%"), step("100%")},
			TrafficRoutings: []v1beta1.TrafficRoutingRef{{
				Service: "web", Gateway: &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To("web")},
			}},
		}}},
	}
}

// TestRouteAndFinalise runs one release through the router: step 1 routes,
// waits the grace period, then finalisation puts everything back.
func TestRouteAndFinalise(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	ro := rolloutWithGateway()
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	cs := &v1beta1.CanaryStatus{}
	rc := &release.RouteContext{Rollout: ro, Step: 1, Workload: info, Status: cs}

	done, retry, err := e.r.Route(ctx, rc)
	require.NoError(t, err)
	assert.False(t, done, "a change waits for the grace period")
	assert.Equal(t, DefaultGracePeriod, retry)
	assert.Equal(t, &v1beta1.TrafficStatus{Weight: ptr.To[int32](5)}, cs.Traffic)
	assert.Contains(t, <-e.events.Events, "TrafficRouted")
	e.sync(t)

	stable, err := e.kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "old"}, stable.Spec.Selector)
	canary, err := e.kube.CoreV1().Services("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "new"}, canary.Spec.Selector)
	hr, err := e.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, hr.Spec.Rules[0].BackendRefs, 2)
	assert.Equal(t, int32(95), *hr.Spec.Rules[0].BackendRefs[0].Weight)

	e.clock.Step(time.Second)
	done, retry, err = e.r.Route(ctx, rc)
	require.NoError(t, err)
	assert.False(t, done)
	assert.Equal(t, 2*time.Second, retry)
	e.clock.Step(2 * time.Second)
	done, _, err = e.r.Route(ctx, rc)
	require.NoError(t, err)
	assert.True(t, done, "nothing changed and the grace period is over")

	for _, stage := range []v1beta1.FinalisingStepType{
		v1beta1.FinalisingStepRouteTrafficToStable, v1beta1.FinalisingStepRestoreStableService, v1beta1.FinalisingStepRemoveCanaryService,
	} {
		for i := 0; ; i++ {
			require.Less(t, i, 5, "stage %s never done", stage)
			done, _, err := e.r.Finalise(ctx, rc, stage)
			require.NoError(t, err)
			e.sync(t)
			if done {
				break
			}
			e.clock.Step(DefaultGracePeriod)
		}
	}
	assert.Nil(t, cs.Traffic)
	stable, err = e.kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web"}, stable.Spec.Selector)
	assert.Empty(t, stable.Annotations)
	_, err = e.kube.CoreV1().Services("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.Error(t, err)
	hr, err = e.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, hr.Spec.Rules[0].BackendRefs, 1)
	assert.Nil(t, hr.Spec.Rules[0].BackendRefs[0].Weight)
	assert.Empty(t, hr.Annotations)
}

func TestRouteRefusesUnsupported(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	info := &workload.Info{Kind: v1beta1.KindDeployment, StableRevision: "old", PodTemplateHash: "new"}
	tests := []struct {
		name   string
		change func(*v1beta1.Rollout)
		want   string
	}{
		{"ingress class", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Ingress = &v1beta1.IngressTrafficRouting{Name: "web", ClassType: "aliyun-alb"}
		}, `trafficRoutings[0].ingress: classType "aliyun-alb" is not supported: only "nginx"`},
		{"missing Ingress", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Ingress = &v1beta1.IngressTrafficRouting{Name: "nope"}
		}, "Ingress shop/nope named in trafficRoutings does not exist"},
		{"istio kind", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
			ro.Spec.Strategy.Canary.TrafficRoutings[0].CustomNetworkRefs = []v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "Gateway", Name: "web"}}
		}, `trafficRoutings[0].customNetworkRefs[0]: kind "Gateway" is not supported`},
		{"istio not installed", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
			ro.Spec.Strategy.Canary.TrafficRoutings[0].CustomNetworkRefs = []v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"}}
		}, "Istio is not installed in this cluster (no networking.istio.io/v1/virtualservices for VirtualService web)"},
		{"no canary Service", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.DisableGenerateCanaryService = true
		}, "disableGenerateCanaryService leaves HTTPRoute shop/web no Service"},
		{"missing route", func(ro *v1beta1.Rollout) {
			ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway.HTTPRouteName = ptr.To("nope")
		}, "HTTPRoute shop/nope named in trafficRoutings does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := rolloutWithGateway()
			tt.change(ro)
			_, _, err := e.r.Route(ctx, &release.RouteContext{Rollout: ro, Step: 1, Workload: info})
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestRouteIngress: an Ingress routing creates the canary Ingress beside the
// untouched stable one and finalisation deletes it.
func TestRouteIngress(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	stable := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}},
		}}}},
	}
	stable, err := e.kube.NetworkingV1().Ingresses("shop").Create(ctx, stable, metav1.CreateOptions{})
	require.NoError(t, err)
	e.sync(t)
	ro := rolloutWithGateway()
	ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
	ro.Spec.Strategy.Canary.TrafficRoutings[0].Ingress = &v1beta1.IngressTrafficRouting{Name: "web"}
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	rc := &release.RouteContext{Rollout: ro, Step: 1, Workload: info, Status: &v1beta1.CanaryStatus{}}

	_, _, err = e.r.Route(ctx, rc)
	require.NoError(t, err)
	assert.Contains(t, <-e.events.Events, "Ingress shop/web sends 5% of requests to Service web-canary")
	canary, err := e.kube.NetworkingV1().Ingresses("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "5", canary.Annotations["nginx.ingress.kubernetes.io/canary-weight"])
	assert.Equal(t, "web-canary", canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name)
	e.sync(t)

	_, _, err = e.r.Finalise(ctx, rc, v1beta1.FinalisingStepRouteTrafficToStable)
	require.NoError(t, err)
	_, err = e.kube.NetworkingV1().Ingresses("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary Ingress is gone: %v", err)
	got, err := e.kube.NetworkingV1().Ingresses("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, stable, got, "the stable Ingress is never changed")
}

// TestRouteIstioSubset: a VirtualService that routes by subset gets a canary
// subset in its DestinationRule, and the stable Service is left selecting
// both revisions (the subset pins the stable one); finalisation restores both.
func TestRouteIstioSubset(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	gvr := func(resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: istio.Group, Version: "v1", Resource: resource}
	}
	object := func(kind string, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": istio.Group + "/v1", "kind": kind, "spec": spec}}
		u.SetNamespace("shop")
		u.SetName("web")
		return u
	}
	vs := object(istio.KindVirtualService, map[string]any{"http": []any{map[string]any{
		"route": []any{map[string]any{"destination": map[string]any{"host": "web", "subset": "v1"}}},
	}}})
	dr := object(istio.KindDestinationRule, map[string]any{"host": "web", "subsets": []any{
		map[string]any{"name": "v1", "labels": map[string]any{"app": "web"}},
	}})
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gvr("virtualservices"): "VirtualServiceList", gvr("destinationrules"): "DestinationRuleList",
	}, vs.DeepCopy(), dr.DeepCopy())
	indexers := map[schema.GroupVersionResource]cache.Indexer{}
	e.r.Istio = &DynamicAPI{Client: client, informers: map[schema.GroupVersionResource]*dynamicInformer{}}
	for _, r := range []string{"virtualservices", "destinationrules"} {
		indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		indexers[gvr(r)] = indexer
		e.r.Istio.informers[gvr(r)] = &dynamicInformer{lazyInformer: lazyInformer{synced: func() bool { return true }},
			lister: cache.NewGenericLister(indexer, gvr(r).GroupResource())}
	}
	get := func(resource string) *unstructured.Unstructured {
		u, err := client.Resource(gvr(resource)).Namespace("shop").Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		return u
	}
	syncIstio := func() {
		for _, r := range []string{"virtualservices", "destinationrules"} {
			require.NoError(t, indexers[gvr(r)].Replace([]any{get(r)}, ""))
		}
	}
	syncIstio()

	ro := rolloutWithGateway()
	ro.Spec.Strategy.Canary.TrafficRoutings[0].Gateway = nil
	ro.Spec.Strategy.Canary.TrafficRoutings[0].CustomNetworkRefs = []v1beta1.ObjectRef{
		{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"},
		{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule", Name: "web"},
	}
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	rc := &release.RouteContext{Rollout: ro, Step: 1, Workload: info, Status: &v1beta1.CanaryStatus{}}
	_, _, err := e.r.Route(ctx, rc)
	require.NoError(t, err)
	stable, err := e.kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web"}, stable.Spec.Selector, "the stable Service is not pinned")
	subsets, _, _ := unstructured.NestedSlice(get("destinationrules").Object, "spec", "subsets")
	assert.Equal(t, []any{
		map[string]any{"name": "v1", "labels": map[string]any{"app": "web", "pod-template-hash": "old"}},
		map[string]any{"name": "v1-canary", "labels": map[string]any{"pod-template-hash": "new"}},
	}, subsets)
	syncIstio()
	e.sync(t)

	_, _, err = e.r.Finalise(ctx, rc, v1beta1.FinalisingStepRouteTrafficToStable)
	require.NoError(t, err)
	assert.Equal(t, vs.Object["spec"], get("virtualservices").Object["spec"])
	assert.Equal(t, dr.Object["spec"], get("destinationrules").Object["spec"])
	assert.Empty(t, get("destinationrules").GetAnnotations())
}

// TestBlueGreenSwitch: the blue-green switch pins the stable Service to the
// new revision before the route is restored, and the Service's own selector
// comes back at the end.
func TestBlueGreenSwitch(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	ro := rolloutWithGateway()
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	rc := &release.RouteContext{Rollout: ro, Step: 2, Workload: info, Status: &v1beta1.CanaryStatus{}}
	_, _, err := e.r.Route(ctx, rc)
	require.NoError(t, err)
	e.sync(t)

	selector := func() map[string]string {
		svc, err := e.kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		return svc.Spec.Selector
	}
	finalise := func(stage v1beta1.FinalisingStepType) {
		t.Helper()
		e.clock.Step(DefaultGracePeriod)
		_, _, err := e.r.Finalise(ctx, rc, stage)
		require.NoError(t, err)
		e.sync(t)
	}
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "old"}, selector())
	finalise(v1beta1.FinalisingStepRouteTrafficToNew)
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "new"}, selector(), "the switch")
	finalise(v1beta1.FinalisingStepRouteTrafficToStable)
	hr, err := e.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, hr.Spec.Rules[0].BackendRefs, 1, "the route sends everything to the stable Service, now the new revision")
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "new"}, selector())
	finalise(v1beta1.FinalisingStepRestoreStableService)
	assert.Equal(t, map[string]string{"app": "web"}, selector(), "the original selector, exactly")
}

// TestPrepareBeforePodsMove: before a step's pods move, the stable Service is
// pinned and the canary Service exists, and the route is not touched yet.
func TestPrepareBeforePodsMove(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	ro := rolloutWithGateway()
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	require.NoError(t, e.r.Prepare(ctx, &release.RouteContext{Rollout: ro, Step: 1, Workload: info, Status: &v1beta1.CanaryStatus{}}))

	stable, err := e.kube.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "old"}, stable.Spec.Selector)
	_, err = e.kube.CoreV1().Services("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.NoError(t, err)
	hr, err := e.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, hr.Spec.Rules[0].BackendRefs, 1, "the route changes only when the step routes")

	e.sync(t)
	require.NoError(t, e.r.Prepare(ctx, &release.RouteContext{Rollout: ro, Step: 1, Workload: info}))
	assert.Len(t, e.events.Events, 1, "a second Prepare changes nothing and records nothing")
}

// TestRouteWithoutTheGatewayAPI: on a cluster without the Gateway API CRDs a
// step that routes through an HTTPRoute fails with an error that says so,
// and putting traffic back has nothing to do, so an abort or a disable
// ends instead of waiting for the API.
func TestRouteWithoutTheGatewayAPI(t *testing.T) {
	ctx := context.Background()
	e := newRouterEnv(t)
	e.r.Gateway = &GatewayAPI{Client: e.gw, Discovery: e.kube.Discovery(), Ctx: ctx}
	ro := rolloutWithGateway()
	info := &workload.Info{Kind: v1beta1.KindDeployment, Name: "web", StableRevision: "old", PodTemplateHash: "new"}
	rc := &release.RouteContext{Rollout: ro, Step: 1, Workload: info, Status: &v1beta1.CanaryStatus{}}

	_, _, err := e.r.Route(ctx, rc)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the Gateway API is not installed in this cluster")

	done, _, err := e.r.Finalise(ctx, rc, v1beta1.FinalisingStepRouteTrafficToStable)
	require.NoError(t, err, "without the API there is no route to put back")
	assert.True(t, done)
}
