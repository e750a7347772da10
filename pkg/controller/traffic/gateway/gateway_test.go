package gateway

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

func backend(name string, weight *int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(80))},
		Weight:                 weight,
	}}
}

func prefix(p string) []gwv1.HTTPRouteMatch {
	return []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To(p)}}}
}

func spec(rules ...gwv1.HTTPRouteRule) *gwv1.HTTPRouteSpec {
	return &gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
		Hostnames:       []gwv1.Hostname{"shop.example.com"},
		Rules:           rules,
	}
}

func desired(weight *int32, matches ...v1beta1.HttpRouteMatch) route.Desired {
	return route.Desired{StableService: "web", CanaryService: "web-canary", Weight: weight, Matches: matches}
}

func TestRouted(t *testing.T) {
	other := gwv1.HTTPRouteRule{Matches: prefix("/static"), BackendRefs: []gwv1.HTTPBackendRef{backend("static", nil)}}
	header := v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}}
	regex := v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Type: ptr.To("RegularExpression"), Name: "user", Value: "^qa-.*"}}}
	modifier := &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "x-version", Value: "canary"}}}
	canaryWithModifier := backend("web-canary", ptr.To[int32](5))
	canaryWithModifier.Filters = []gwv1.HTTPRouteFilter{{
		Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-version", Value: "canary"}}},
	}}

	tests := []struct {
		name    string
		in      *gwv1.HTTPRouteSpec
		d       route.Desired
		want    *gwv1.HTTPRouteSpec
		wantErr string
	}{{
		name: "weight 5% beside the stable Service, other rules untouched",
		in:   spec(other, gwv1.HTTPRouteRule{Matches: prefix("/"), BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}}),
		d:    desired(ptr.To[int32](5)),
		want: spec(other, gwv1.HTTPRouteRule{Matches: prefix("/"), BackendRefs: []gwv1.HTTPBackendRef{
			backend("web", ptr.To[int32](95)), backend("web-canary", ptr.To[int32](5))}}),
	}, {
		name: "weight 100%",
		in:   spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}}),
		d:    desired(ptr.To[int32](100)),
		want: spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", ptr.To[int32](0)), backend("web-canary", ptr.To[int32](100))}}),
	}, {
		name: "other backends of the rule keep their proportions",
		in:   spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", ptr.To[int32](3)), backend("legacy", nil)}}),
		d:    desired(ptr.To[int32](50)),
		want: spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{
			backend("web", ptr.To[int32](150)), backend("web-canary", ptr.To[int32](150)), backend("legacy", ptr.To[int32](100))}}),
	}, {
		name: "header match becomes a rule ahead, narrowing the rule's own matches",
		in:   spec(gwv1.HTTPRouteRule{Matches: prefix("/shop"), BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}}),
		d:    desired(nil, header, regex),
		want: spec(
			gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{
				{Path: prefix("/shop")[0].Path, Headers: []gwv1.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}},
				{Path: prefix("/shop")[0].Path, Headers: []gwv1.HTTPHeaderMatch{{Type: ptr.To(gwv1.HeaderMatchRegularExpression), Name: "user", Value: "^qa-.*"}}},
			}, BackendRefs: []gwv1.HTTPBackendRef{backend("web-canary", nil)}},
			gwv1.HTTPRouteRule{Matches: prefix("/shop"), BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}},
		),
	}, {
		name: "header modifier goes on the canary backend",
		in:   spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}}),
		d:    route.Desired{StableService: "web", CanaryService: "web-canary", Weight: ptr.To[int32](5), HeaderModifier: modifier},
		want: spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", ptr.To[int32](95)), canaryWithModifier}}),
	}, {
		name:    "no rule sends to the stable Service",
		in:      spec(other),
		d:       desired(ptr.To[int32](5)),
		wantErr: "no rule sends to the stable Service web",
	}, {
		name: "a backend in another namespace is not the stable Service",
		in: spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{func() gwv1.HTTPBackendRef {
			b := backend("web", nil)
			b.Namespace = ptr.To(gwv1.Namespace("elsewhere"))
			return b
		}()}}),
		d:       desired(ptr.To[int32](5)),
		wantErr: "no rule sends",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.in.DeepCopy()
			got, err := Routed(tt.in, "shop", tt.d)
			require.Equal(t, before, tt.in, "the original must not change")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestApplyRestore runs a route through a release: in → each step → restored
// exactly, labels and annotations included.
func TestApplyRestore(t *testing.T) {
	ctx := context.Background()
	original := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop", Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "x"}},
		Spec:       *spec(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{backend("web", nil)}}),
	}
	client := gwfake.NewSimpleClientset(original.DeepCopy())
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	p := &Provider{Client: client, Routes: gwlisters.NewHTTPRouteLister(indexer), Namespace: "shop", Name: "shop"}
	sync := func() *gwv1.HTTPRoute {
		hr, err := client.GatewayV1().HTTPRoutes("shop").Get(ctx, "shop", metav1.GetOptions{})
		require.NoError(t, err)
		require.NoError(t, indexer.Update(hr))
		return hr
	}
	sync()

	for _, w := range []int32{5, 50, 100} {
		changed, err := p.Apply(ctx, desired(ptr.To(w)))
		require.NoError(t, err)
		assert.True(t, changed)
		hr := sync()
		assert.Equal(t, 100-w, *hr.Spec.Rules[0].BackendRefs[0].Weight)
		assert.Equal(t, w, *hr.Spec.Rules[0].BackendRefs[1].Weight)
		assert.Contains(t, hr.Annotations, route.OriginalAnnotation)
		changed, err = p.Apply(ctx, desired(ptr.To(w)))
		require.NoError(t, err)
		assert.False(t, changed, "a second Apply of the same step writes nothing")
	}

	changed, err := p.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, changed)
	hr := sync()
	assert.Equal(t, original.Spec, hr.Spec)
	assert.Equal(t, original.Labels, hr.Labels)
	assert.Equal(t, original.Annotations, hr.Annotations)

	changed, err = p.Restore(ctx)
	require.NoError(t, err)
	assert.False(t, changed, "restoring twice writes nothing")

	p.Name = "missing"
	_, err = p.Apply(ctx, desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "HTTPRoute shop/missing named in trafficRoutings does not exist")
}
