// Package ingress routes a release's traffic through an NGINX Ingress: a
// canary Ingress beside the stable one, owned by the Rollout, with the same
// hosts, paths and TLS, its backends pointing at the canary Service, and the
// NGINX canary annotations saying which requests it takes (a weight, one
// header, one cookie). The stable Ingress is never changed; the end of a
// release deletes the canary Ingress.
//
// How a step maps onto the annotations:
//
//	traffic: N%                                  canary-weight: N
//	matches[].headers[] {name, value}            canary-by-header: name, canary-by-header-value: value
//	... type RegularExpression                   canary-by-header, canary-by-header-pattern: value
//	matches[].headers[] {name: canary-by-cookie, value: C}   canary-by-cookie: C
//
// The last one is Kruise's convention: NGINX sends a request to the canary
// when its cookie C is "always". NGINX checks the header first, then the
// cookie, then the weight, so the step's matches are ORed with each other and
// with the weight, as in the other providers. What NGINX cannot express is
// refused (Annotations returns the reason, and admission uses it too): more
// than one header or cookie, a match with several conditions (ANDed), path
// and query parameter matches, and requestHeaderModifier.
package ingress

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	networkinglisters "k8s.io/client-go/listers/networking/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// ClassNginx is the only classType supported, and the default.
const ClassNginx = "nginx"

// SupportedClassTypes are the values trafficRoutings[].ingress.classType may
// take ("" means nginx).
var SupportedClassTypes = []string{ClassNginx}

// The NGINX Ingress controller's canary annotations.
const (
	annotationPrefix = "nginx.ingress.kubernetes.io/"
	// AnnotationCanary marks an Ingress as the canary of the Ingress with the
	// same hosts and paths.
	AnnotationCanary = annotationPrefix + "canary"
	// AnnotationWeight is the percentage of requests the canary takes.
	AnnotationWeight = annotationPrefix + "canary-weight"
	// AnnotationByHeader names the header that sends a request to the canary.
	AnnotationByHeader = annotationPrefix + "canary-by-header"
	// AnnotationByHeaderValue is the exact value of that header.
	AnnotationByHeaderValue = annotationPrefix + "canary-by-header-value"
	// AnnotationByHeaderPattern is a regular expression the header must match.
	AnnotationByHeaderPattern = annotationPrefix + "canary-by-header-pattern"
	// AnnotationByCookie names the cookie that sends a request to the canary
	// when its value is "always".
	AnnotationByCookie = annotationPrefix + "canary-by-cookie"
	// classAnnotation is the legacy way to pick an ingress controller; the
	// canary Ingress must be picked by the same one.
	classAnnotation = "kubernetes.io/ingress.class"
)

// CookieMatchName is the header name of a step match that stands for a
// cookie: its value names the cookie (as in Kruise Rollout).
const CookieMatchName = "canary-by-cookie"

// CanaryName is the name of the canary Ingress of an Ingress.
func CanaryName(stable string) string {
	return stable + "-canary"
}

// CheckClassType refuses every ingress controller but NGINX.
func CheckClassType(classType string) error {
	if classType == "" || classType == ClassNginx {
		return nil
	}
	return fmt.Errorf("classType %q is not supported: only %q (NGINX canary annotations) is; route through a Gateway API HTTPRoute or an Istio VirtualService for other controllers", classType, ClassNginx)
}

// Provider manages the canary Ingress of one Ingress.
type Provider struct {
	// Kube writes the canary Ingress.
	Kube kubernetes.Interface
	// Ingresses reads both Ingresses from an informer.
	Ingresses networkinglisters.IngressLister
	// Rollout owns the canary Ingress.
	Rollout *v1beta1.Rollout
	// Name of the stable Ingress.
	Name string
}

var _ route.Provider = (*Provider)(nil)

// Object implements route.Provider.
func (p *Provider) Object() string {
	return fmt.Sprintf("Ingress %s/%s", p.Rollout.Namespace, p.Name)
}

func (p *Provider) canaryObject() string {
	return fmt.Sprintf("the canary Ingress %s/%s", p.Rollout.Namespace, CanaryName(p.Name))
}

// Apply implements route.Provider: it creates or corrects the canary Ingress.
func (p *Provider) Apply(ctx context.Context, d route.Desired) (bool, error) {
	ns := p.Rollout.Namespace
	stable, err := p.Ingresses.Ingresses(ns).Get(p.Name)
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("%s named in trafficRoutings does not exist", p.Object())
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p.Object(), err)
	}
	want, err := Canary(stable, p.Rollout, d)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.Object(), err)
	}
	ingresses := p.Kube.NetworkingV1().Ingresses(ns)
	have, err := p.Ingresses.Ingresses(ns).Get(want.Name)
	switch {
	case apierrors.IsNotFound(err):
		if _, err := ingresses.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating %s: %w", p.canaryObject(), err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading %s: %w", p.canaryObject(), err)
	}
	if !metav1.IsControlledBy(have, p.Rollout) {
		return false, fmt.Errorf("Ingress %s/%s exists and is not the canary Ingress of Rollout %s; rename it", ns, want.Name, p.Rollout.Name)
	}
	if apiequality.Semantic.DeepEqual(have.Spec, want.Spec) && apiequality.Semantic.DeepEqual(have.Labels, want.Labels) &&
		apiequality.Semantic.DeepEqual(have.Annotations, want.Annotations) {
		return false, nil
	}
	update := have.DeepCopy()
	update.Spec, update.Labels, update.Annotations = want.Spec, want.Labels, want.Annotations
	if _, err := ingresses.Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("updating %s: %w", p.canaryObject(), err)
	}
	return true, nil
}

// Restore implements route.Provider: it deletes the canary Ingress if the
// Rollout owns it. The stable Ingress was never changed.
func (p *Provider) Restore(ctx context.Context) (bool, error) {
	ns, name := p.Rollout.Namespace, CanaryName(p.Name)
	have, err := p.Ingresses.Ingresses(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", p.canaryObject(), err)
	}
	if !metav1.IsControlledBy(have, p.Rollout) {
		return false, nil
	}
	uid := have.UID
	err = p.Kube.NetworkingV1().Ingresses(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting %s: %w", p.canaryObject(), err)
	}
	return true, nil
}

// Canary is the canary Ingress of stable for d: the stable Ingress's class,
// TLS and the hosts and paths that send to the stable Service, sending to the
// canary Service instead, with the NGINX canary annotations of d; owned by
// ro so that it goes away with the Rollout.
func Canary(stable *networkingv1.Ingress, ro *v1beta1.Rollout, d route.Desired) (*networkingv1.Ingress, error) {
	annotations, err := Annotations(d)
	if err != nil {
		return nil, err
	}
	if class, ok := stable.Annotations[classAnnotation]; ok {
		annotations[classAnnotation] = class
	}
	spec := networkingv1.IngressSpec{
		IngressClassName: stable.Spec.IngressClassName,
		TLS:              stable.Spec.TLS,
	}
	found := false
	if b := stable.Spec.DefaultBackend; b != nil && sendsTo(b, d.StableService) {
		spec.DefaultBackend = canaryBackend(b, d.CanaryService)
		found = true
	}
	for _, rule := range stable.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, path := range rule.HTTP.Paths {
			if sendsTo(&path.Backend, d.StableService) {
				path.Backend = *canaryBackend(&path.Backend, d.CanaryService)
				paths = append(paths, path)
			}
		}
		if len(paths) > 0 {
			found = true
			spec.Rules = append(spec.Rules, networkingv1.IngressRule{Host: rule.Host, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths},
			}})
		}
	}
	if !found {
		return nil, fmt.Errorf("no path sends to the stable Service %s, so there is no traffic to shift", d.StableService)
	}
	out := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:            CanaryName(stable.Name),
			Namespace:       stable.Namespace,
			Labels:          map[string]string{v1beta1.GroupName + "/rollout": ro.Name},
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ro, v1beta1.SchemeGroupVersion.WithKind("Rollout"))},
		},
		Spec: spec,
	}
	return out.DeepCopy(), nil
}

func sendsTo(b *networkingv1.IngressBackend, svc string) bool {
	return b.Service != nil && b.Service.Name == svc
}

func canaryBackend(b *networkingv1.IngressBackend, canary string) *networkingv1.IngressBackend {
	out := b.DeepCopy()
	out.Service.Name = canary
	return out
}

// Annotations are the NGINX canary annotations of d, or why NGINX cannot
// route as d asks.
func Annotations(d route.Desired) (map[string]string, error) {
	if d.HeaderModifier != nil {
		return nil, fmt.Errorf("requestHeaderModifier: NGINX canary annotations cannot change request headers; route through a Gateway API HTTPRoute or an Istio VirtualService to modify them")
	}
	out := map[string]string{AnnotationCanary: "true"}
	if d.Weight != nil {
		out[AnnotationWeight] = strconv.Itoa(int(*d.Weight))
	}
	var header *v1beta1.HTTPHeaderMatch
	var cookie string
	for i, m := range d.Matches {
		switch {
		case m.Path != nil || len(m.QueryParams) > 0:
			return nil, fmt.Errorf("matches[%d]: NGINX canary annotations match a header or a cookie, not a path or query parameters", i)
		case len(m.Headers) != 1:
			return nil, fmt.Errorf("matches[%d]: NGINX canary annotations match exactly one header or cookie per match, not %d (the conditions of one match would all have to hold)", i, len(m.Headers))
		}
		h := m.Headers[0]
		if strings.EqualFold(h.Name, CookieMatchName) {
			if cookie != "" {
				return nil, fmt.Errorf("matches[%d]: NGINX canary annotations match one cookie only", i)
			}
			if route.HeaderMatchType(h.Type) != route.MatchExact {
				return nil, fmt.Errorf("matches[%d]: a %s match names the cookie, so its type must be %s", i, CookieMatchName, route.MatchExact)
			}
			cookie = h.Value
			continue
		}
		if header != nil {
			return nil, fmt.Errorf("matches[%d]: NGINX canary annotations match one header only (and one %s)", i, CookieMatchName)
		}
		header = &h
	}
	if header != nil {
		out[AnnotationByHeader] = header.Name
		if route.HeaderMatchType(header.Type) == route.MatchRegularExpression {
			out[AnnotationByHeaderPattern] = header.Value
		} else {
			out[AnnotationByHeaderValue] = header.Value
		}
	}
	if cookie != "" {
		out[AnnotationByCookie] = cookie
	}
	return out, nil
}
