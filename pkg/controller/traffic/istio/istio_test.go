package istio

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// object reads YAML as the informer would decode it (whole numbers int64).
func object(t *testing.T, y string) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, utiljson.Unmarshal(j, &out))
	return out
}

const plainVS = `
hosts: [shop.example.com]
gateways: [public]
http:
- name: static
  match: [{uri: {prefix: /static}}]
  route: [{destination: {host: static}}]
- name: primary
  match: [{uri: {prefix: /}}]
  timeout: 5s
  route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 80}}}]
`

func desired(weight *int32, matches ...v1beta1.HttpRouteMatch) route.Desired {
	return route.Desired{StableService: "web", CanaryService: "web-canary", Weight: weight, Matches: matches,
		Revision: route.Revision{Key: "pod-template-hash", Stable: "old", Canary: "new"}}
}

func TestRouted(t *testing.T) {
	weighted := func(stable, canary int) string {
		return `
hosts: [shop.example.com]
gateways: [public]
http:
- name: static
  match: [{uri: {prefix: /static}}]
  route: [{destination: {host: static}}]
- name: primary
  match: [{uri: {prefix: /}}]
  timeout: 5s
  route:
  - {destination: {host: web.shop.svc.cluster.local, port: {number: 80}}, weight: ` + itoa(stable) + `}
  - {destination: {host: web-canary.shop.svc.cluster.local, port: {number: 80}}, weight: ` + itoa(canary) + `}
`
	}
	regex := ptr.To(route.MatchRegularExpression)
	tests := []struct {
		name    string
		in      string
		d       route.Desired
		want    string
		wantErr string
	}{
		{name: "5%", in: plainVS, d: desired(ptr.To[int32](5)), want: weighted(95, 5)},
		{name: "50%", in: plainVS, d: desired(ptr.To[int32](50)), want: weighted(50, 50)},
		{name: "100%", in: plainVS, d: desired(ptr.To[int32](100)), want: weighted(0, 100)},
		{name: "header exact and regex, query, path: a route ahead", in: plainVS, d: desired(nil,
			v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Name: "X-Canary", Value: "on"}}},
			v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Type: regex, Name: "user", Value: "^qa-.*"}},
				QueryParams: []v1beta1.HTTPQueryParamMatch{{Name: "beta", Value: "1"}}},
			v1beta1.HttpRouteMatch{Path: &v1beta1.HTTPPathMatch{Type: ptr.To("Exact"), Value: ptr.To("/api/v2")}},
		), want: `
hosts: [shop.example.com]
gateways: [public]
http:
- name: static
  match: [{uri: {prefix: /static}}]
  route: [{destination: {host: static}}]
- name: primary-canary
  match:
  - {uri: {prefix: /}, headers: {x-canary: {exact: "on"}}}
  - {uri: {prefix: /}, headers: {user: {regex: "^qa-.*"}}, queryParams: {beta: {exact: "1"}}}
  - {uri: {exact: /api/v2}}
  timeout: 5s
  route: [{destination: {host: web-canary.shop.svc.cluster.local, port: {number: 80}}}]
- name: primary
  match: [{uri: {prefix: /}}]
  timeout: 5s
  route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 80}}}]
`},
		{name: "weighted destinations keep their sum, header modifier on the canary", in: `
http:
- route:
  - {destination: {host: web}, weight: 80}
  - {destination: {host: legacy}, weight: 20}
`, d: func() route.Desired {
			d := desired(ptr.To[int32](50))
			d.HeaderModifier = &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "X-Release", Value: "canary"}}, Remove: []string{"x-debug"}}
			return d
		}(), want: `
http:
- route:
  - {destination: {host: web}, weight: 40}
  - {destination: {host: web-canary}, weight: 40, headers: {request: {set: {x-release: canary}, remove: [x-debug]}}}
  - {destination: {host: legacy}, weight: 20}
`},
		{name: "by subset: the canary subset of the same host", in: `
http:
- route: [{destination: {host: web.shop, subset: v1}}]
`, d: desired(ptr.To[int32](5)), want: `
http:
- route:
  - {destination: {host: web.shop, subset: v1}, weight: 95}
  - {destination: {host: web.shop, subset: v1-canary}, weight: 5}
`},
		{name: "a host in another namespace is not the stable Service", in: `
http:
- route: [{destination: {host: web.other.svc.cluster.local}}]
`, d: desired(ptr.To[int32](5)), wantErr: "no http route sends to the stable Service web"},
		{name: "a host that only starts like the stable Service", in: `
http:
- route: [{destination: {host: web.shopping}}]
`, d: desired(ptr.To[int32](5)), wantErr: "no http route sends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := object(t, tt.in)
			before := runtime.DeepCopyJSONValue(in)
			got, err := Routed(in, "shop", tt.d)
			require.Equal(t, before, in, "the original must not change")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, object(t, tt.want), got)
		})
	}
}

func itoa(i int) string {
	j, _ := utiljson.Marshal(i)
	return string(j)
}

func TestWithCanarySubsets(t *testing.T) {
	in := object(t, `
host: web
trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
subsets:
- {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
- {name: v2, labels: {version: v2}}
`)
	before := runtime.DeepCopyJSONValue(in)
	got, err := WithCanarySubsets(in, []string{"v1"}, route.Revision{Key: "pod-template-hash", Stable: "old", Canary: "new"})
	require.NoError(t, err)
	require.Equal(t, before, in)
	assert.Equal(t, object(t, `
host: web
trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
subsets:
- {name: v1, labels: {version: v1, pod-template-hash: old}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
- {name: v2, labels: {version: v2}}
- {name: v1-canary, labels: {pod-template-hash: new}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
`), got)
	_, err = WithCanarySubsets(in, []string{"v3"}, route.Revision{})
	require.ErrorContains(t, err, `no subset "v3"`)
	_, err = WithCanarySubsets(got, []string{"v1"}, route.Revision{})
	require.ErrorContains(t, err, `a subset "v1-canary" exists already`)
}

func TestSplit(t *testing.T) {
	vs := v1beta1.ObjectRef{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"}
	dr := v1beta1.ObjectRef{APIVersion: "networking.istio.io/v1beta1", Kind: "DestinationRule", Name: "web"}
	gotVS, gotDR, err := Split([]v1beta1.ObjectRef{dr, vs})
	require.NoError(t, err)
	assert.Equal(t, &vs, gotVS)
	assert.Equal(t, &dr, gotDR)
	for _, tt := range []struct {
		refs []v1beta1.ObjectRef
		want string
	}{
		{[]v1beta1.ObjectRef{dr}, "customNetworkRefs name no VirtualService"},
		{[]v1beta1.ObjectRef{vs, vs}, "customNetworkRefs[1]: only one VirtualService is supported"},
		{[]v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v2", Kind: "VirtualService", Name: "web"}}, `customNetworkRefs[0]: apiVersion "networking.istio.io/v2" is not supported`},
		{[]v1beta1.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "Gateway", Name: "web"}}, `customNetworkRefs[0]: kind "Gateway" is not supported`},
		{[]v1beta1.ObjectRef{{APIVersion: "apisix.apache.org/v2", Kind: "ApisixRoute", Name: "web"}}, `apiVersion "apisix.apache.org/v2" is not supported`},
	} {
		_, _, err := Split(tt.refs)
		require.ErrorContains(t, err, tt.want)
	}
}

// env is a fake cluster with a VirtualService and a DestinationRule, and the
// caches an informer would fill.
type env struct {
	t        *testing.T
	client   *dynamicfake.FakeDynamicClient
	indexers map[schema.GroupVersionResource]cache.Indexer
	p        *Provider
}

var (
	vsGVR = schema.GroupVersionResource{Group: Group, Version: "v1", Resource: "virtualservices"}
	drGVR = schema.GroupVersionResource{Group: Group, Version: "v1", Resource: "destinationrules"}
)

func newObject(kind, name string, meta map[string]any, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": Group + "/v1", "kind": kind, "spec": spec}}
	u.SetNamespace("shop")
	u.SetName(name)
	if l, ok := meta["labels"].(map[string]string); ok {
		u.SetLabels(l)
	}
	if a, ok := meta["annotations"].(map[string]string); ok {
		u.SetAnnotations(a)
	}
	return u
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	scheme := runtime.NewScheme()
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		vsGVR: "VirtualServiceList", drGVR: "DestinationRuleList",
	}, objs...)
	e := &env{t: t, client: client, indexers: map[schema.GroupVersionResource]cache.Indexer{}}
	object := func(kind string, gvr schema.GroupVersionResource) Object {
		indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		e.indexers[gvr] = indexer
		return Object{Kind: kind, Client: client.Resource(gvr), Lister: cache.NewGenericLister(indexer, gvr.GroupResource()), Name: "web"}
	}
	e.p = &Provider{Namespace: "shop", StableService: "web",
		VirtualService: object(KindVirtualService, vsGVR), DestinationRule: object(KindDestinationRule, drGVR)}
	e.sync()
	return e
}

func (e *env) sync() {
	for gvr, indexer := range e.indexers {
		list, err := e.client.Resource(gvr).Namespace("shop").List(context.Background(), metav1.ListOptions{})
		require.NoError(e.t, err)
		var items []any
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
		require.NoError(e.t, indexer.Replace(items, ""))
	}
}

func (e *env) get(gvr schema.GroupVersionResource) *unstructured.Unstructured {
	u, err := e.client.Resource(gvr).Namespace("shop").Get(context.Background(), "web", metav1.GetOptions{})
	require.NoError(e.t, err)
	return u
}

// TestApplyRestore runs a VirtualService routing by subset and its
// DestinationRule through a release: in → each step → restored exactly.
func TestApplyRestore(t *testing.T) {
	ctx := context.Background()
	meta := map[string]any{"labels": map[string]string{"team": "a"}, "annotations": map[string]string{"note": "x"}}
	vs := newObject(KindVirtualService, "web", meta, object(t, `
hosts: [web]
http:
- route: [{destination: {host: web, subset: v1}}]
`))
	dr := newObject(KindDestinationRule, "web", meta, object(t, `
host: web
subsets: [{name: v1, labels: {version: v1}}]
`))
	e := newEnv(t, vs.DeepCopy(), dr.DeepCopy())
	pins, err := e.p.PinsStable()
	require.NoError(t, err)
	assert.True(t, pins, "routing by subset pins the stable revision in the DestinationRule")

	for _, w := range []int64{5, 50, 100} {
		changed, err := e.p.Apply(ctx, desired(ptr.To(int32(w))))
		require.NoError(t, err)
		assert.True(t, changed)
		e.sync()
		assert.Equal(t, object(t, `
hosts: [web]
http:
- route:
  - {destination: {host: web, subset: v1}, weight: `+itoa(int(100-w))+`}
  - {destination: {host: web, subset: v1-canary}, weight: `+itoa(int(w))+`}
`), e.get(vsGVR).Object["spec"])
		assert.Equal(t, object(t, `
host: web
subsets:
- {name: v1, labels: {version: v1, pod-template-hash: old}}
- {name: v1-canary, labels: {pod-template-hash: new}}
`), e.get(drGVR).Object["spec"])
		changed, err = e.p.Apply(ctx, desired(ptr.To(int32(w))))
		require.NoError(t, err)
		assert.False(t, changed, "a second Apply of the same step writes nothing")
	}

	changed, err := e.p.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, changed)
	e.sync()
	for gvr, want := range map[schema.GroupVersionResource]*unstructured.Unstructured{vsGVR: vs, drGVR: dr} {
		got := e.get(gvr)
		assert.Equal(t, want.Object["spec"], got.Object["spec"], gvr.Resource)
		assert.Equal(t, want.GetLabels(), got.GetLabels(), gvr.Resource)
		assert.Equal(t, want.GetAnnotations(), got.GetAnnotations(), gvr.Resource)
	}
	changed, err = e.p.Restore(ctx)
	require.NoError(t, err)
	assert.False(t, changed, "restoring twice writes nothing")

	e.p.DestinationRule = Object{}
	_, err = e.p.Apply(ctx, desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "VirtualService shop/web routes Service web by subset (v1): name its DestinationRule in customNetworkRefs")
	e.p.VirtualService.Name = "missing"
	_, err = e.p.Apply(ctx, desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "VirtualService shop/missing named in trafficRoutings does not exist")
}

// TestApplyByHost: without subsets the DestinationRule is left alone.
func TestApplyByHost(t *testing.T) {
	ctx := context.Background()
	vs := newObject(KindVirtualService, "web", nil, object(t, plainVS))
	e := newEnv(t, vs.DeepCopy())
	pins, err := e.p.PinsStable()
	require.NoError(t, err)
	assert.False(t, pins)
	changed, err := e.p.Apply(ctx, desired(ptr.To[int32](5)))
	require.NoError(t, err)
	assert.True(t, changed)
	e.sync()
	assert.Contains(t, e.get(vsGVR).GetAnnotations(), route.OriginalAnnotation)
	changed, err = e.p.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, changed)
	got := e.get(vsGVR)
	assert.Equal(t, vs.Object["spec"], got.Object["spec"])
	assert.Empty(t, got.GetAnnotations())
}
