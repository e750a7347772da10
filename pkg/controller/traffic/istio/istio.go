// Package istio routes a release's traffic through an Istio VirtualService
// (and, when it routes by subset, its DestinationRule), read and written
// through the dynamic client:
//
//   - every http route with a destination on the stable Service's host gets a
//     canary destination beside it; with a weight, the stable destination's
//     share is split between the two, so the route's weights keep their sum
//     (100);
//   - with matches, a route ahead of each such route sends the requests that
//     match both the route and a step match (headers exact or regex, query
//     parameters, uri path) to the canary;
//   - requestHeaderModifier becomes headers.request set/add/remove on the
//     canary destination;
//   - a destination with a subset keeps its host: the canary destination uses
//     a canary subset "<subset>-canary" that this package adds to the
//     DestinationRule (selecting the new revision's pods), and the stable
//     subset is pinned to the stable revision; the stable Service is then left
//     selecting both revisions, or the canary subset would have no endpoints.
//
// The original spec of each object it changes is kept in an annotation and
// put back exactly at the end.
package istio

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// Group is Istio's networking API group.
const Group = "networking.istio.io"

// Kinds of customNetworkRefs this package routes through.
const (
	KindVirtualService  = "VirtualService"
	KindDestinationRule = "DestinationRule"
)

// SupportedVersions are the versions of Group a customNetworkRef may name;
// Istio serves the same schema at each.
var SupportedVersions = []string{"v1", "v1beta1", "v1alpha3"}

var resources = map[string]string{KindVirtualService: "virtualservices", KindDestinationRule: "destinationrules"}

// CheckAPIVersion refuses every apiVersion but Istio's networking versions.
func CheckAPIVersion(apiVersion string) error {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || gv.Group != Group || !slices.Contains(SupportedVersions, gv.Version) {
		return fmt.Errorf("apiVersion %q is not supported: use %s/%s (or %s)", apiVersion, Group, SupportedVersions[0], strings.Join(SupportedVersions[1:], ", "))
	}
	return nil
}

// CheckKind refuses every kind but VirtualService and DestinationRule.
func CheckKind(kind string) error {
	if _, ok := resources[kind]; !ok {
		return fmt.Errorf("kind %q is not supported: customNetworkRefs name an Istio %s and, when it routes by subset, its %s", kind, KindVirtualService, KindDestinationRule)
	}
	return nil
}

// GVR is the resource of a customNetworkRef, or why it is not supported.
func GVR(apiVersion, kind string) (schema.GroupVersionResource, error) {
	if err := CheckAPIVersion(apiVersion); err != nil {
		return schema.GroupVersionResource{}, err
	}
	if err := CheckKind(kind); err != nil {
		return schema.GroupVersionResource{}, err
	}
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return gv.WithResource(resources[kind]), nil
}

// Split picks the VirtualService and the optional DestinationRule out of
// customNetworkRefs: exactly one VirtualService, at most one DestinationRule.
func Split(refs []v1beta1.ObjectRef) (vs, dr *v1beta1.ObjectRef, err error) {
	for i := range refs {
		ref := &refs[i]
		if _, err := GVR(ref.APIVersion, ref.Kind); err != nil {
			return nil, nil, fmt.Errorf("customNetworkRefs[%d]: %w", i, err)
		}
		switch {
		case ref.Kind == KindVirtualService && vs == nil:
			vs = ref
		case ref.Kind == KindDestinationRule && dr == nil:
			dr = ref
		default:
			return nil, nil, fmt.Errorf("customNetworkRefs[%d]: only one %s is supported", i, ref.Kind)
		}
	}
	if vs == nil {
		return nil, nil, fmt.Errorf("customNetworkRefs name no %s (%s)", KindVirtualService, Group)
	}
	return vs, dr, nil
}

// Object is one Istio object: its client, a synced lister and its name.
type Object struct {
	// Kind is VirtualService or DestinationRule.
	Kind string
	// Client reaches the kind's resource at the version the Rollout names.
	Client dynamic.NamespaceableResourceInterface
	// Lister reads it from an informer.
	Lister cache.GenericLister
	// Name of the object.
	Name string
}

// Provider routes through one VirtualService and, when it routes by subset,
// one DestinationRule (nil Client when none is named).
type Provider struct {
	// Namespace of the Rollout and of the objects.
	Namespace string
	// StableService is the stable Service, whose host the routes send to.
	StableService  string
	VirtualService Object
	// DestinationRule is optional.
	DestinationRule Object
}

var _ route.Provider = (*Provider)(nil)
var _ route.StablePinner = (*Provider)(nil)

// Describe names o for messages, e.g. "VirtualService ns/name".
func (o *Object) Describe(namespace string) string {
	return fmt.Sprintf("%s %s/%s", o.Kind, namespace, o.Name)
}

// Object implements route.Provider.
func (p *Provider) Object() string {
	return p.VirtualService.Describe(p.Namespace)
}

// get reads o from the cache; a missing object is nil.
func (p *Provider) get(o *Object) (*unstructured.Unstructured, error) {
	obj, err := o.Lister.ByNamespace(p.Namespace).Get(o.Name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.Describe(p.Namespace), err)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("reading %s: unexpected %T in the cache", o.Describe(p.Namespace), obj)
	}
	return u, nil
}

func (p *Provider) mustGet(o *Object) (*unstructured.Unstructured, error) {
	u, err := p.get(o)
	if err == nil && u == nil {
		err = fmt.Errorf("%s named in trafficRoutings does not exist", o.Describe(p.Namespace))
	}
	return u, err
}

// spec is the spec of u, or an empty one.
func spec(u *unstructured.Unstructured) map[string]any {
	s, _ := u.Object["spec"].(map[string]any)
	if s == nil {
		s = map[string]any{}
	}
	return s
}

// PinsStable implements route.StablePinner: the VirtualService routes the
// stable Service by subset.
func (p *Provider) PinsStable() (bool, error) {
	vs, err := p.mustGet(&p.VirtualService)
	if err != nil {
		return false, err
	}
	_, original, err := route.SaveOriginal(vs.GetAnnotations(), spec(vs))
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	return len(StableSubsets(original, p.Namespace, p.StableService)) > 0, nil
}

// Apply implements route.Provider: the DestinationRule first (the canary
// subset exists before a route names it), then the VirtualService.
func (p *Provider) Apply(ctx context.Context, d route.Desired) (bool, error) {
	vs, err := p.mustGet(&p.VirtualService)
	if err != nil {
		return false, err
	}
	vsAnnotations, original, err := route.SaveOriginal(vs.GetAnnotations(), spec(vs))
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	routed, err := Routed(original, p.Namespace, d)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	changed := false
	if subsets := StableSubsets(original, p.Namespace, d.StableService); len(subsets) > 0 {
		if p.DestinationRule.Client == nil {
			return false, fmt.Errorf("%s routes Service %s by subset (%s): name its %s in customNetworkRefs, so that a canary subset can be added", p.Object(), d.StableService, strings.Join(subsets, ", "), KindDestinationRule)
		}
		dr, err := p.mustGet(&p.DestinationRule)
		if err != nil {
			return false, err
		}
		drAnnotations, drOriginal, err := route.SaveOriginal(dr.GetAnnotations(), spec(dr))
		if err != nil {
			return false, fmt.Errorf("%s: %w", p.DestinationRule.Describe(p.Namespace), err)
		}
		drSpec, err := WithCanarySubsets(drOriginal, subsets, d.Revision)
		if err != nil {
			return false, fmt.Errorf("%s: %w", p.DestinationRule.Describe(p.Namespace), err)
		}
		if changed, err = p.write(ctx, &p.DestinationRule, dr, drAnnotations, drSpec); err != nil {
			return false, err
		}
	}
	vsChanged, err := p.write(ctx, &p.VirtualService, vs, vsAnnotations, routed)
	return changed || vsChanged, err
}

// write updates have to annotations and spec unless that changes nothing.
func (p *Provider) write(ctx context.Context, o *Object, have *unstructured.Unstructured, annotations map[string]string, spec map[string]any) (bool, error) {
	update := have.DeepCopy()
	update.SetAnnotations(annotations)
	update.Object["spec"] = spec
	client := o.Client.Namespace(p.Namespace)
	same := func(a, b *unstructured.Unstructured) bool {
		return apiequality.Semantic.DeepEqual(a.Object["spec"], b.Object["spec"]) && apiequality.Semantic.DeepEqual(a.GetAnnotations(), b.GetAnnotations())
	}
	dryRun := func(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return client.Update(ctx, u, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	if !route.Differs(ctx, have, update, same, dryRun) {
		return false, nil
	}
	if _, err := client.Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("updating %s: %w", o.Describe(p.Namespace), err)
	}
	return true, nil
}

// Restore implements route.Provider: the VirtualService first (no route
// names the canary subset any more), then the DestinationRule.
func (p *Provider) Restore(ctx context.Context) (bool, error) {
	changed := false
	for _, o := range []*Object{&p.VirtualService, &p.DestinationRule} {
		if o.Client == nil {
			continue
		}
		u, err := p.get(o)
		if err != nil {
			return changed, err
		}
		if u == nil {
			continue
		}
		annotations, original, ok, err := route.TakeOriginal[map[string]any](u.GetAnnotations())
		if err != nil {
			return changed, fmt.Errorf("%s: %w", o.Describe(p.Namespace), err)
		}
		if !ok {
			continue
		}
		update := u.DeepCopy()
		update.SetAnnotations(annotations)
		if original == nil {
			delete(update.Object, "spec")
		} else {
			update.Object["spec"] = original
		}
		if _, err := o.Client.Namespace(p.Namespace).Update(ctx, update, metav1.UpdateOptions{}); err != nil {
			return changed, fmt.Errorf("restoring %s: %w", o.Describe(p.Namespace), err)
		}
		changed = true
	}
	return changed, nil
}

// CanarySubset is the name of the canary subset beside a stable subset.
func CanarySubset(stable string) string {
	return stable + "-canary"
}

// Routed is the VirtualService spec original routing as d asks (see the
// package documentation). original is not changed.
func Routed(original map[string]any, namespace string, d route.Desired) (map[string]any, error) {
	out := runtime.DeepCopyJSONValue(original).(map[string]any)
	http, _ := out["http"].([]any)
	routes := make([]any, 0, len(http)+1)
	found := false
	for _, item := range http {
		r, ok := item.(map[string]any)
		dests, _ := r["route"].([]any)
		i := stableIndex(dests, namespace, d.StableService)
		if !ok || i < 0 {
			routes = append(routes, item)
			continue
		}
		found = true
		stable := dests[i].(map[string]any)
		if len(d.Matches) > 0 {
			routes = append(routes, matchRoute(r, stable, d, namespace))
		}
		if d.Weight != nil {
			r["route"] = weighted(dests, i, *d.Weight, d, namespace)
		}
		routes = append(routes, r)
	}
	if !found {
		return nil, fmt.Errorf("no http route sends to the stable Service %s, so there is no traffic to shift", d.StableService)
	}
	out["http"] = routes
	return out, nil
}

// StableSubsets are the subsets of the destinations on the stable Service's
// host in spec, in order, each once.
func StableSubsets(spec map[string]any, namespace, stable string) []string {
	var out []string
	http, _ := spec["http"].([]any)
	for _, item := range http {
		r, _ := item.(map[string]any)
		dests, _ := r["route"].([]any)
		for _, d := range dests {
			dest, _ := d.(map[string]any)
			if _, ok := stableHost(dest, namespace, stable); !ok {
				continue
			}
			if s, _ := destination(dest)["subset"].(string); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func destination(dest map[string]any) map[string]any {
	m, _ := dest["destination"].(map[string]any)
	return m
}

// stableHost reports whether dest sends to the stable Service and returns the
// suffix its host adds to the name ("", ".ns", ".ns.svc.cluster.local").
func stableHost(dest map[string]any, namespace, stable string) (string, bool) {
	host, _ := destination(dest)["host"].(string)
	switch {
	case host == stable:
		return "", true
	case strings.HasPrefix(host, stable+"."+namespace) && (len(host) == len(stable)+1+len(namespace) || host[len(stable)+1+len(namespace)] == '.'):
		return strings.TrimPrefix(host, stable), true
	}
	return "", false
}

func stableIndex(dests []any, namespace, stable string) int {
	for i, d := range dests {
		if dest, ok := d.(map[string]any); ok {
			if _, ok := stableHost(dest, namespace, stable); ok {
				return i
			}
		}
	}
	return -1
}

// canaryDestination is stable pointed at the canary: the canary Service's
// host, or the canary subset of the same host; with the header modifier.
func canaryDestination(stable map[string]any, d route.Desired, namespace string) map[string]any {
	out := runtime.DeepCopyJSONValue(stable).(map[string]any)
	delete(out, "weight")
	dest := destination(out)
	if subset, _ := dest["subset"].(string); subset != "" {
		dest["subset"] = CanarySubset(subset)
	} else {
		suffix, _ := stableHost(stable, namespace, d.StableService)
		dest["host"] = d.CanaryService + suffix
	}
	if m := d.HeaderModifier; m != nil {
		headers, _ := out["headers"].(map[string]any)
		if headers == nil {
			headers = map[string]any{}
		}
		request, _ := headers["request"].(map[string]any)
		if request == nil {
			request = map[string]any{}
		}
		for key, hs := range map[string][]v1beta1.HTTPHeader{"set": m.Set, "add": m.Add} {
			if len(hs) == 0 {
				continue
			}
			values, _ := request[key].(map[string]any)
			if values == nil {
				values = map[string]any{}
			}
			for _, h := range hs {
				values[strings.ToLower(h.Name)] = h.Value
			}
			request[key] = values
		}
		if len(m.Remove) > 0 {
			remove, _ := request["remove"].([]any)
			for _, name := range m.Remove {
				remove = append(remove, strings.ToLower(name))
			}
			request["remove"] = remove
		}
		headers["request"] = request
		out["headers"] = headers
	}
	return out
}

// weighted splits the stable destination's share (100 when it is alone)
// between it and the canary; the other destinations keep theirs, so the sum
// stays what it was.
func weighted(dests []any, stable int, weight int32, d route.Desired, namespace string) []any {
	s := dests[stable].(map[string]any)
	share := int64(0)
	if len(dests) == 1 {
		share = 100
	}
	switch w := s["weight"].(type) {
	case int64:
		share = w
	case float64:
		share = int64(w)
	}
	canaryShare := (share*int64(weight) + 50) / 100
	out := make([]any, 0, len(dests)+1)
	for i, item := range dests {
		if i != stable {
			out = append(out, item)
			continue
		}
		st := runtime.DeepCopyJSONValue(s).(map[string]any)
		st["weight"] = share - canaryShare
		canary := canaryDestination(s, d, namespace)
		canary["weight"] = canaryShare
		out = append(out, st, canary)
	}
	return out
}

// matchRoute is the route that sends what matches both r and one of the
// step's matches to the canary, with r's own rewrites, timeouts and retries.
func matchRoute(r, stable map[string]any, d route.Desired, namespace string) map[string]any {
	out := runtime.DeepCopyJSONValue(r).(map[string]any)
	if name, _ := out["name"].(string); name != "" {
		out["name"] = name + "-canary"
	}
	base, _ := r["match"].([]any)
	if len(base) == 0 {
		base = []any{map[string]any{}}
	}
	matches := make([]any, 0, len(base)*len(d.Matches))
	for _, b := range base {
		bm, _ := b.(map[string]any)
		for _, m := range d.Matches {
			matches = append(matches, merge(bm, m))
		}
	}
	out["match"] = matches
	out["route"] = []any{canaryDestination(stable, d, namespace)}
	return out
}

// stringMatch is Istio's StringMatch for a match of type t.
func stringMatch(t, value string) map[string]any {
	switch t {
	case route.MatchRegularExpression:
		return map[string]any{"regex": value}
	case route.MatchPathPrefix:
		return map[string]any{"prefix": value}
	}
	return map[string]any{"exact": value}
}

// merge narrows b by m: m's path replaces b's uri, headers and query
// parameters add up (Istio header names are lower case).
func merge(b map[string]any, m v1beta1.HttpRouteMatch) map[string]any {
	out := map[string]any{}
	if b != nil {
		out = runtime.DeepCopyJSONValue(b).(map[string]any)
	}
	if p := m.Path; p != nil {
		value := "/"
		if p.Value != nil {
			value = *p.Value
		}
		out["uri"] = stringMatch(route.PathMatchType(p), value)
	}
	if len(m.Headers) > 0 {
		values, _ := out["headers"].(map[string]any)
		if values == nil {
			values = map[string]any{}
		}
		for _, h := range m.Headers {
			values[strings.ToLower(h.Name)] = stringMatch(route.HeaderMatchType(h.Type), h.Value)
		}
		out["headers"] = values
	}
	if len(m.QueryParams) > 0 {
		values, _ := out["queryParams"].(map[string]any)
		if values == nil {
			values = map[string]any{}
		}
		for _, q := range m.QueryParams {
			values[q.Name] = stringMatch(route.HeaderMatchType(q.Type), q.Value)
		}
		out["queryParams"] = values
	}
	return out
}

// WithCanarySubsets is the DestinationRule spec original with, for each
// stable subset, the subset pinned to the stable revision and a canary subset
// beside it (the stable one's traffic policy, selecting only the new
// revision's pods). original is not changed.
func WithCanarySubsets(original map[string]any, stableSubsets []string, rev route.Revision) (map[string]any, error) {
	out := runtime.DeepCopyJSONValue(original).(map[string]any)
	subsets, _ := out["subsets"].([]any)
	index := func(name string) int {
		return slices.IndexFunc(subsets, func(item any) bool {
			s, _ := item.(map[string]any)
			n, _ := s["name"].(string)
			return n == name
		})
	}
	for _, name := range stableSubsets {
		i := index(name)
		if i < 0 {
			return nil, fmt.Errorf("no subset %q, which the %s routes to", name, KindVirtualService)
		}
		if index(CanarySubset(name)) >= 0 {
			return nil, fmt.Errorf("a subset %q exists already; rename it, the release adds its own", CanarySubset(name))
		}
		stable := subsets[i].(map[string]any)
		canary := runtime.DeepCopyJSONValue(stable).(map[string]any)
		canary["name"] = CanarySubset(name)
		canary["labels"] = map[string]any{rev.Key: rev.Canary}
		labels, _ := stable["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels[rev.Key] = rev.Stable
		stable["labels"] = labels
		subsets = append(subsets, canary)
	}
	out["subsets"] = subsets
	return out, nil
}
