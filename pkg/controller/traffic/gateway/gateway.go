// Package gateway routes a release's traffic through a Gateway API
// HTTPRoute: weighted backendRefs for the stable and canary Services in
// every rule that sends to the stable Service, and, for a step with matches,
// a rule ahead of each such rule that sends only the matching requests to
// the canary Service. The route's original spec is kept in an annotation and
// put back exactly.
package gateway

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// Provider changes one HTTPRoute.
type Provider struct {
	Client          gwclient.Interface
	Routes          gwlisters.HTTPRouteLister
	Namespace, Name string
}

var _ route.Provider = (*Provider)(nil)

// Object implements route.Provider.
func (p *Provider) Object() string {
	return fmt.Sprintf("HTTPRoute %s/%s", p.Namespace, p.Name)
}

// Apply implements route.Provider.
func (p *Provider) Apply(ctx context.Context, d route.Desired) (bool, error) {
	hr, err := p.Routes.HTTPRoutes(p.Namespace).Get(p.Name)
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("%s named in trafficRoutings does not exist", p.Object())
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p.Object(), err)
	}
	annotations, original, err := route.SaveOriginal(hr.Annotations, hr.Spec)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	spec, err := Routed(&original, p.Namespace, d)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	update := hr.DeepCopy()
	update.Annotations, update.Spec = annotations, *spec
	// The route as stored carries the defaults of the Gateway API's CRD (match
	// types, paths, weights) that the spec built here leaves out; without the
	// comparison as stored, every reconcile would change the route and wait
	// out a grace period again.
	routes := p.Client.GatewayV1().HTTPRoutes(p.Namespace)
	same := func(a, b *gwv1.HTTPRoute) bool {
		return apiequality.Semantic.DeepEqual(a.Spec, b.Spec) && apiequality.Semantic.DeepEqual(a.Annotations, b.Annotations)
	}
	dryRun := func(ctx context.Context, hr *gwv1.HTTPRoute) (*gwv1.HTTPRoute, error) {
		return routes.Update(ctx, hr, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	if !route.Differs(ctx, hr, update, same, dryRun) {
		return false, nil
	}
	if _, err := routes.Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("updating %s: %w", p.Object(), err)
	}
	return true, nil
}

// Restore implements route.Provider.
func (p *Provider) Restore(ctx context.Context) (bool, error) {
	hr, err := p.Routes.HTTPRoutes(p.Namespace).Get(p.Name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p.Object(), err)
	}
	annotations, original, ok, err := route.TakeOriginal[gwv1.HTTPRouteSpec](hr.Annotations)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	if !ok {
		return false, nil
	}
	update := hr.DeepCopy()
	update.Annotations, update.Spec = annotations, original
	if _, err := p.Client.GatewayV1().HTTPRoutes(p.Namespace).Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("restoring %s: %w", p.Object(), err)
	}
	return true, nil
}

// Routed is original routing as d asks. Every rule with a backendRef to the
// stable Service gets, with a weight, the canary Service beside it (the
// stable share scaled by 100-weight, the canary's by weight, other backends
// by 100, so their proportions stay); with matches, a rule ahead of it that
// sends the requests matching both the rule and a step match to the canary.
func Routed(original *gwv1.HTTPRouteSpec, namespace string, d route.Desired) (*gwv1.HTTPRouteSpec, error) {
	out := original.DeepCopy()
	out.Rules = nil
	found := false
	for _, rule := range original.Rules {
		i := stableIndex(rule.BackendRefs, namespace, d.StableService)
		if i < 0 {
			out.Rules = append(out.Rules, *rule.DeepCopy())
			continue
		}
		found = true
		if len(d.Matches) > 0 {
			out.Rules = append(out.Rules, matchRule(rule, i, d))
		}
		weighted := rule.DeepCopy()
		if d.Weight != nil {
			w := *d.Weight
			refs := make([]gwv1.HTTPBackendRef, 0, len(rule.BackendRefs)+1)
			for j, ref := range weighted.BackendRefs {
				share := ptr.Deref(ref.Weight, 1)
				if j != i {
					ref.Weight = ptr.To(share * 100)
					refs = append(refs, ref)
					continue
				}
				ref.Weight = ptr.To(share * (100 - w))
				refs = append(refs, ref, canaryRef(rule.BackendRefs[i], d, ptr.To(share*w)))
			}
			weighted.BackendRefs = refs
		}
		out.Rules = append(out.Rules, *weighted)
	}
	if !found {
		return nil, fmt.Errorf("no rule sends to the stable Service %s, so there is no traffic to shift", d.StableService)
	}
	return out, nil
}

func stableIndex(refs []gwv1.HTTPBackendRef, namespace, stable string) int {
	for i, ref := range refs {
		if ptr.Deref(ref.Group, "") == "" && ptr.Deref(ref.Kind, "Service") == "Service" &&
			string(ref.Name) == stable && string(ptr.Deref(ref.Namespace, gwv1.Namespace(namespace))) == namespace {
			return i
		}
	}
	return -1
}

// canaryRef is the stable backendRef pointed at the canary Service, with
// the step's header modifier.
func canaryRef(stable gwv1.HTTPBackendRef, d route.Desired, weight *int32) gwv1.HTTPBackendRef {
	ref := *stable.DeepCopy()
	ref.Name = gwv1.ObjectName(d.CanaryService)
	ref.Weight = weight
	if m := d.HeaderModifier; m != nil {
		ref.Filters = withHeaderModifier(ref.Filters, m)
	}
	return ref
}

// withHeaderModifier adds m to filters, into the RequestHeaderModifier
// already there if there is one (a list may hold only one).
func withHeaderModifier(filters []gwv1.HTTPRouteFilter, m *v1beta1.HTTPHeaderFilter) []gwv1.HTTPRouteFilter {
	for i := range filters {
		if f := filters[i].RequestHeaderModifier; filters[i].Type == gwv1.HTTPRouteFilterRequestHeaderModifier && f != nil {
			f.Set = append(f.Set, headers(m.Set)...)
			f.Add = append(f.Add, headers(m.Add)...)
			f.Remove = append(f.Remove, m.Remove...)
			return filters
		}
	}
	return append(filters, gwv1.HTTPRouteFilter{
		Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
			Set: headers(m.Set), Add: headers(m.Add), Remove: append([]string(nil), m.Remove...),
		},
	})
}

func headers(in []v1beta1.HTTPHeader) []gwv1.HTTPHeader {
	var out []gwv1.HTTPHeader
	for _, h := range in {
		out = append(out, gwv1.HTTPHeader{Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value})
	}
	return out
}

// matchRule is the rule that sends what matches both rule and one of the
// step's matches to the canary Service, with the rule's own filters,
// timeouts and retries.
func matchRule(rule gwv1.HTTPRouteRule, stable int, d route.Desired) gwv1.HTTPRouteRule {
	out := *rule.DeepCopy()
	out.Name = nil
	base := rule.Matches
	if len(base) == 0 {
		base = []gwv1.HTTPRouteMatch{{}}
	}
	out.Matches = nil
	for _, b := range base {
		for _, s := range d.Matches {
			out.Matches = append(out.Matches, merge(b, s))
		}
	}
	out.BackendRefs = []gwv1.HTTPBackendRef{canaryRef(rule.BackendRefs[stable], d, nil)}
	return out
}

// merge narrows b by s: s's path replaces b's, headers and query parameters
// add up.
func merge(b gwv1.HTTPRouteMatch, s v1beta1.HttpRouteMatch) gwv1.HTTPRouteMatch {
	out := *b.DeepCopy()
	if s.Path != nil {
		out.Path = &gwv1.HTTPPathMatch{Value: s.Path.Value}
		if s.Path.Type != nil {
			out.Path.Type = ptr.To(gwv1.PathMatchType(*s.Path.Type))
		}
	}
	for _, h := range s.Headers {
		m := gwv1.HTTPHeaderMatch{Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value}
		if h.Type != nil {
			m.Type = ptr.To(gwv1.HeaderMatchType(*h.Type))
		}
		out.Headers = append(out.Headers, m)
	}
	for _, q := range s.QueryParams {
		m := gwv1.HTTPQueryParamMatch{Name: gwv1.HTTPHeaderName(q.Name), Value: q.Value}
		if q.Type != nil {
			m.Type = ptr.To(gwv1.QueryParamMatchType(*q.Type))
		}
		out.QueryParams = append(out.QueryParams, m)
	}
	return out
}
