package ingress

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

func backend(svc string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}
}

func path(p, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: backend(svc)}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func stableIngress() *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "shop", Namespace: "shop", Labels: map[string]string{"team": "a"},
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/", classAnnotation: "nginx"},
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}},
			Rules: []networkingv1.IngressRule{
				rule("shop.example.com", path("/", "web"), path("/static", "static")),
				rule("static.example.com", path("/", "static")),
			},
		},
	}
}

func rolloutRef() *v1beta1.Rollout {
	return &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "ro-uid"}}
}

func desired(weight *int32, matches ...v1beta1.HttpRouteMatch) route.Desired {
	return route.Desired{StableService: "web", CanaryService: "web-canary", Weight: weight, Matches: matches}
}

func headerMatch(typ *string, name, value string) v1beta1.HttpRouteMatch {
	return v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Type: typ, Name: name, Value: value}}}
}

func TestAnnotations(t *testing.T) {
	regex := ptr.To(route.MatchRegularExpression)
	tests := []struct {
		name    string
		d       route.Desired
		want    map[string]string
		wantErr string
	}{
		{"5%", desired(ptr.To[int32](5)), map[string]string{AnnotationCanary: "true", AnnotationWeight: "5"}, ""},
		{"50%", desired(ptr.To[int32](50)), map[string]string{AnnotationCanary: "true", AnnotationWeight: "50"}, ""},
		{"100%", desired(ptr.To[int32](100)), map[string]string{AnnotationCanary: "true", AnnotationWeight: "100"}, ""},
		{"header exact", desired(nil, headerMatch(nil, "x-canary", "on")),
			map[string]string{AnnotationCanary: "true", AnnotationByHeader: "x-canary", AnnotationByHeaderValue: "on"}, ""},
		{"header regex", desired(nil, headerMatch(regex, "user", "^qa-.*")),
			map[string]string{AnnotationCanary: "true", AnnotationByHeader: "user", AnnotationByHeaderPattern: "^qa-.*"}, ""},
		{"header and cookie, ORed, with a weight", desired(ptr.To[int32](10), headerMatch(nil, "x-canary", "on"), headerMatch(nil, CookieMatchName, "beta")),
			map[string]string{AnnotationCanary: "true", AnnotationWeight: "10", AnnotationByHeader: "x-canary", AnnotationByHeaderValue: "on", AnnotationByCookie: "beta"}, ""},
		{"two headers", desired(nil, headerMatch(nil, "a", "1"), headerMatch(nil, "b", "2")), nil, "matches[1]: NGINX canary annotations match one header only"},
		{"two conditions in one match", desired(nil, v1beta1.HttpRouteMatch{Headers: []v1beta1.HTTPHeaderMatch{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}}), nil,
			"matches[0]: NGINX canary annotations match exactly one header or cookie per match, not 2"},
		{"path", desired(nil, v1beta1.HttpRouteMatch{Path: &v1beta1.HTTPPathMatch{Value: ptr.To("/api")}}), nil, "not a path or query parameters"},
		{"query", desired(nil, v1beta1.HttpRouteMatch{QueryParams: []v1beta1.HTTPQueryParamMatch{{Name: "canary", Value: "1"}}}), nil, "not a path or query parameters"},
		{"cookie regex", desired(nil, headerMatch(regex, CookieMatchName, "b.*")), nil, "names the cookie, so its type must be Exact"},
		{"header modifier", route.Desired{StableService: "web", CanaryService: "web-canary", Weight: ptr.To[int32](5),
			HeaderModifier: &v1beta1.HTTPHeaderFilter{Set: []v1beta1.HTTPHeader{{Name: "x", Value: "y"}}}}, nil, "requestHeaderModifier: NGINX canary annotations cannot change request headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Annotations(tt.d)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCanary(t *testing.T) {
	in := stableIngress()
	before := in.DeepCopy()
	got, err := Canary(in, rolloutRef(), desired(ptr.To[int32](5)))
	require.NoError(t, err)
	require.Equal(t, before, in, "the stable Ingress must not change")
	want := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "shop-canary", Namespace: "shop",
			Labels:          map[string]string{"rollout.kruise.io/rollout": "web"},
			Annotations:     map[string]string{AnnotationCanary: "true", AnnotationWeight: "5", classAnnotation: "nginx"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "rollout.kruise.io/v1beta1", Kind: "Rollout", Name: "web", UID: "ro-uid", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              before.Spec.TLS,
			Rules:            []networkingv1.IngressRule{rule("shop.example.com", path("/", "web-canary"))},
		},
	}
	assert.Equal(t, want, got)

	in.Spec.Rules = in.Spec.Rules[1:]
	_, err = Canary(in, rolloutRef(), desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "no path sends to the stable Service web")

	in.Spec.DefaultBackend = ptr.To(backend("web"))
	got, err = Canary(in, rolloutRef(), desired(ptr.To[int32](5)))
	require.NoError(t, err)
	assert.Equal(t, ptr.To(backend("web-canary")), got.Spec.DefaultBackend)
	assert.Empty(t, got.Spec.Rules)
}

// TestApplyRestore runs an Ingress through a release: each step's canary
// Ingress exactly, the stable Ingress untouched, the canary gone after.
func TestApplyRestore(t *testing.T) {
	ctx := context.Background()
	original := stableIngress()
	kube := fake.NewClientset(original.DeepCopy())
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	sync := func() {
		list, err := kube.NetworkingV1().Ingresses("shop").List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		var items []any
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
		require.NoError(t, indexer.Replace(items, ""))
	}
	sync()
	p := &Provider{Kube: kube, Ingresses: networkinglisters.NewIngressLister(indexer), Rollout: rolloutRef(), Name: "shop"}

	steps := []struct {
		d    route.Desired
		want map[string]string
	}{
		{desired(ptr.To[int32](5)), map[string]string{AnnotationWeight: "5"}},
		{desired(ptr.To[int32](50)), map[string]string{AnnotationWeight: "50"}},
		{desired(nil, headerMatch(nil, "x-canary", "on")), map[string]string{AnnotationByHeader: "x-canary", AnnotationByHeaderValue: "on"}},
		{desired(ptr.To[int32](100)), map[string]string{AnnotationWeight: "100"}},
	}
	for _, st := range steps {
		changed, err := p.Apply(ctx, st.d)
		require.NoError(t, err)
		assert.True(t, changed)
		sync()
		canary, err := kube.NetworkingV1().Ingresses("shop").Get(ctx, "shop-canary", metav1.GetOptions{})
		require.NoError(t, err)
		want := map[string]string{AnnotationCanary: "true", classAnnotation: "nginx"}
		for k, v := range st.want {
			want[k] = v
		}
		assert.Equal(t, want, canary.Annotations)
		changed, err = p.Apply(ctx, st.d)
		require.NoError(t, err)
		assert.False(t, changed, "a second Apply of the same step writes nothing")
		stable, err := kube.NetworkingV1().Ingresses("shop").Get(ctx, "shop", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, original, stable, "the stable Ingress is never changed")
	}

	changed, err := p.Restore(ctx)
	require.NoError(t, err)
	assert.True(t, changed)
	sync()
	_, err = kube.NetworkingV1().Ingresses("shop").Get(ctx, "shop-canary", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary Ingress is gone: %v", err)
	changed, err = p.Restore(ctx)
	require.NoError(t, err)
	assert.False(t, changed, "restoring twice writes nothing")

	// An Ingress of that name that the Rollout does not own is left alone.
	foreign := original.DeepCopy()
	foreign.Name = "shop-canary"
	_, err = kube.NetworkingV1().Ingresses("shop").Create(ctx, foreign, metav1.CreateOptions{})
	require.NoError(t, err)
	sync()
	_, err = p.Apply(ctx, desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "Ingress shop/shop-canary exists and is not the canary Ingress of Rollout web")
	changed, err = p.Restore(ctx)
	require.NoError(t, err)
	assert.False(t, changed)

	p.Name = "missing"
	_, err = p.Apply(ctx, desired(ptr.To[int32](5)))
	require.ErrorContains(t, err, "Ingress shop/missing named in trafficRoutings does not exist")
}

func TestCheckClassType(t *testing.T) {
	require.NoError(t, CheckClassType(""))
	require.NoError(t, CheckClassType("nginx"))
	require.ErrorContains(t, CheckClassType("aliyun-alb"), `classType "aliyun-alb" is not supported: only "nginx"`)
}
