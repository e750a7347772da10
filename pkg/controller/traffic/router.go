// Package traffic is the TrafficRouter of the step machine: for each step it
// creates the canary Service, pins the stable Service to the stable revision
// and has the provider of the Rollout's trafficRouting (one package per kind
// of routing object) route the step's weight and matches; at the end of a
// release it puts every routing object back as it was.
package traffic

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/gateway"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/ingress"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/istio"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/service"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// DefaultGracePeriod is how long the router waits after changing traffic
// before the release goes on, when trafficRoutings[].gracePeriodSeconds is 0
// (as in Kruise): long enough for a proxy to pick the change up.
const DefaultGracePeriod = 3 * time.Second

// Router implements release.TrafficRouter.
type Router struct {
	// Services creates, pins and restores Services.
	Services *service.Manager
	// Gateway reaches HTTPRoutes once the Gateway API is installed.
	Gateway *GatewayAPI
	// Ingress reaches Ingresses.
	Ingress *IngressAPI
	// Istio reaches Istio's VirtualServices and DestinationRules once Istio's
	// CRDs are installed.
	Istio *DynamicAPI
	// Recorder records an Event on every routing change.
	Recorder record.EventRecorder
	// Clock times grace periods.
	Clock clock.PassiveClock

	mu sync.Mutex
	// changed is when the router last changed a Rollout's routing, for its
	// grace period. Lost on restart: a restarted router routes again and, if
	// nothing needs changing, goes on at once.
	changed map[types.UID]time.Time
}

var _ release.TrafficRouter = (*Router)(nil)

// routing is the Rollout's trafficRouting; nil when it routes nothing.
func routing(ro *v1beta1.Rollout) *v1beta1.TrafficRoutingRef {
	if c := ro.Spec.Strategy.Canary; c != nil && len(c.TrafficRoutings) > 0 {
		return &c.TrafficRoutings[0]
	}
	return nil
}

// Desired is the routing step (1-based) of ro asks for; nil when ro routes
// no traffic. The step machine records it in status before routing.
func Desired(ro *v1beta1.Rollout, step int32) (*route.Desired, error) {
	ref := routing(ro)
	steps := ro.Spec.Strategy.Canary.Steps
	if ref == nil || step < 1 || int(step) > len(steps) {
		return nil, nil
	}
	s := steps[step-1]
	d := &route.Desired{
		StableService:  ref.Service,
		CanaryService:  service.CanaryName(ref.Service),
		Matches:        s.Matches,
		HeaderModifier: s.RequestHeaderModifier,
	}
	if s.Traffic != nil {
		w, err := rollout.ParseTrafficPercent(*s.Traffic)
		if err != nil {
			return nil, fmt.Errorf("step %d traffic: %w", step, err)
		}
		d.Weight = &w
	}
	return d, nil
}

// Status is what status.canaryStatus.traffic says for d.
func Status(d *route.Desired) *v1beta1.TrafficStatus {
	if d == nil || (d.Weight == nil && len(d.Matches) == 0) {
		return nil
	}
	return &v1beta1.TrafficStatus{Weight: d.Weight, Matches: d.Matches}
}

// revision says which label tells the two revisions' pods apart.
func revision(info *workload.Info) route.Revision {
	key := appsv1.ControllerRevisionHashLabelKey
	if info.Kind == v1beta1.KindDeployment {
		key = appsv1.DefaultDeploymentUniqueLabelKey
	}
	return route.Revision{Key: key, Stable: info.StableRevision, Canary: info.PodTemplateHash}
}

// Prepare implements release.TrafficRouter: the canary Service and the
// stable Service's pin, before the step's pods move.
func (r *Router) Prepare(ctx context.Context, rc *release.RouteContext) error {
	ro := rc.Rollout
	ref := routing(ro)
	if ref == nil || rc.Workload == nil || ro.Spec.Strategy.Canary.DisableGenerateCanaryService {
		return nil
	}
	provider, err := r.provider(ro, ref)
	if err != nil {
		// A routing object that cannot be reached (missing, no CRD) is
		// reported by Route, in the state that waits for routing; the pods
		// need no route to move.
		return nil
	}
	changes, err := r.services(ctx, ro, ref, revision(rc.Workload), provider)
	if err != nil {
		return err
	}
	r.record(ro, fmt.Sprintf("Step %d", rc.Step), changes)
	return nil
}

// services creates the canary Service and pins the stable one (unless the
// provider keeps the revisions apart itself), and says what it changed.
func (r *Router) services(ctx context.Context, ro *v1beta1.Rollout, ref *v1beta1.TrafficRoutingRef, rev route.Revision, provider route.Provider) ([]string, error) {
	var changes []string
	if changed, err := r.Services.EnsureCanary(ctx, ro, ref.Service, rev); err != nil {
		return nil, err
	} else if changed {
		changes = append(changes, fmt.Sprintf("canary Service %s selects revision %s", service.CanaryName(ref.Service), rev.Canary))
	}
	pinned := false
	if p, ok := provider.(route.StablePinner); ok {
		var err error
		if pinned, err = p.PinsStable(); err != nil {
			return nil, err
		}
	}
	if !pinned {
		if changed, err := r.Services.Pin(ctx, ro.Namespace, ref.Service, rev); err != nil {
			return nil, err
		} else if changed {
			changes = append(changes, fmt.Sprintf("Service %s selects only revision %s", ref.Service, rev.Stable))
		}
	}
	return changes, nil
}

// Route implements release.TrafficRouter.
func (r *Router) Route(ctx context.Context, rc *release.RouteContext) (bool, time.Duration, error) {
	ro := rc.Rollout
	ref := routing(ro)
	d, err := Desired(ro, rc.Step)
	if err != nil || d == nil {
		return err == nil, 0, err
	}
	if rc.Workload == nil {
		return false, time.Second, nil
	}
	provider, err := r.provider(ro, ref)
	if err != nil {
		return false, 0, err
	}
	rev := revision(rc.Workload)
	d.Revision = rev
	if ro.Spec.Strategy.Canary.DisableGenerateCanaryService {
		return false, 0, fmt.Errorf("disableGenerateCanaryService leaves %s no Service that selects only revision %s; unset it to route traffic", provider.Object(), rev.Canary)
	}
	changes, err := r.services(ctx, ro, ref, rev, provider)
	if err != nil {
		return false, 0, err
	}
	if rc.Status != nil {
		// Recorded before it is applied, so status never claims less than
		// the routing object may already carry.
		rc.Status.Traffic = Status(d)
	}
	changed, err := provider.Apply(ctx, *d)
	if err != nil {
		return false, 0, err
	}
	if changed {
		changes = append(changes, fmt.Sprintf("%s sends %s to Service %s", provider.Object(), describe(d), d.CanaryService))
	}
	r.record(ro, fmt.Sprintf("Step %d", rc.Step), changes)
	return r.settle(ro, ref, len(changes) > 0)
}

// Finalise implements release.TrafficRouter.
func (r *Router) Finalise(ctx context.Context, rc *release.RouteContext, stage v1beta1.FinalisingStepType) (bool, time.Duration, error) {
	ro := rc.Rollout
	ref := routing(ro)
	if ref == nil {
		return true, 0, nil
	}
	var change string
	switch stage {
	case v1beta1.FinalisingStepRouteTrafficToStable:
		provider, err := r.provider(ro, ref)
		switch {
		case isNotServed(err):
			// No such API (Gateway API, Istio), so no routing object: nothing
			// carries a change to undo, and an ending must not wait for it.
		case err != nil:
			return false, 0, err
		default:
			changed, err := provider.Restore(ctx)
			if err != nil {
				return false, 0, err
			}
			if changed {
				change = provider.Object() + " is back to its original routing"
			}
		}
		if rc.Status != nil {
			rc.Status.Traffic = nil
		}
	case v1beta1.FinalisingStepRouteTrafficToNew:
		// The blue-green switch: the stable Service selects only the new
		// revision, so that once the route is restored to send everything to
		// the stable Service, the old revision gets no request and can go.
		if rc.Workload == nil {
			return false, time.Second, nil
		}
		rev := revision(rc.Workload)
		changed, err := r.Services.Pin(ctx, ro.Namespace, ref.Service, route.Revision{Key: rev.Key, Stable: rev.Canary})
		if err != nil {
			return false, 0, err
		}
		if changed {
			change = fmt.Sprintf("Service %s selects only revision %s", ref.Service, rev.Canary)
		}
	case v1beta1.FinalisingStepRestoreStableService:
		changed, err := r.Services.Restore(ctx, ro.Namespace, ref.Service)
		if err != nil {
			return false, 0, err
		}
		if changed {
			change = fmt.Sprintf("Service %s has its original selector back", ref.Service)
		}
	case v1beta1.FinalisingStepRemoveCanaryService:
		if _, err := r.Services.RemoveCanary(ctx, ro, ref.Service); err != nil {
			return false, 0, err
		}
		// Nothing routes to the canary Service any more: no grace needed.
		return true, 0, nil
	default:
		return true, 0, nil
	}
	var changes []string
	if change != "" {
		changes = []string{change}
	}
	r.record(ro, "Finalising", changes)
	return r.settle(ro, ref, change != "")
}

// provider is the routing object ro's trafficRouting names.
func (r *Router) provider(ro *v1beta1.Rollout, ref *v1beta1.TrafficRoutingRef) (route.Provider, error) {
	switch {
	case ref.Gateway != nil && ref.Gateway.HTTPRouteName != nil:
		client, lister, err := r.Gateway.HTTPRoutes()
		if err != nil {
			return nil, err
		}
		return &gateway.Provider{Client: client, Routes: lister, Namespace: ro.Namespace, Name: *ref.Gateway.HTTPRouteName}, nil
	case ref.Ingress != nil:
		if err := ingress.CheckClassType(ref.Ingress.ClassType); err != nil {
			return nil, fmt.Errorf("trafficRoutings[0].ingress: %w", err)
		}
		client, lister, err := r.Ingress.Ingresses()
		if err != nil {
			return nil, err
		}
		return &ingress.Provider{Kube: client, Ingresses: lister, Rollout: ro, Name: ref.Ingress.Name}, nil
	case len(ref.CustomNetworkRefs) > 0:
		vsRef, drRef, err := istio.Split(ref.CustomNetworkRefs)
		if err != nil {
			return nil, fmt.Errorf("trafficRoutings[0].%w", err)
		}
		p := &istio.Provider{Namespace: ro.Namespace, StableService: ref.Service}
		if p.VirtualService, err = r.istioObject(vsRef); err != nil {
			return nil, err
		}
		if drRef != nil {
			if p.DestinationRule, err = r.istioObject(drRef); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	return nil, fmt.Errorf("trafficRoutings[0] names no routing object")
}

// istioObject reaches the Istio object ref names.
func (r *Router) istioObject(ref *v1beta1.ObjectRef) (istio.Object, error) {
	gvr, err := istio.GVR(ref.APIVersion, ref.Kind)
	if err != nil {
		return istio.Object{}, err
	}
	missing := fmt.Errorf("Istio is not installed in this cluster (no %s/%s for %s %s); install Istio's CRDs", gvr.GroupVersion(), gvr.Resource, ref.Kind, ref.Name)
	client, lister, err := r.Istio.Resource(gvr, ref.Kind, missing)
	if err != nil {
		return istio.Object{}, err
	}
	return istio.Object{Kind: ref.Kind, Client: client, Lister: lister, Name: ref.Name}, nil
}

// record emits one Event for the routing changes of a pass.
func (r *Router) record(ro *v1beta1.Rollout, what string, changes []string) {
	if len(changes) == 0 {
		return
	}
	message := what + ": " + strings.Join(changes, "; ")
	r.Recorder.Event(ro, corev1.EventTypeNormal, "TrafficRouted", message)
	klog.InfoS("Traffic routed", "rollout", klog.KObj(ro), "change", message)
}

// settle holds the release for the grace period after a change.
func (r *Router) settle(ro *v1beta1.Rollout, ref *v1beta1.TrafficRoutingRef, changed bool) (bool, time.Duration, error) {
	grace := DefaultGracePeriod
	if ref.GracePeriodSeconds > 0 {
		grace = time.Duration(ref.GracePeriodSeconds) * time.Second
	}
	now := r.Clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = map[types.UID]time.Time{}
	}
	if changed {
		r.changed[ro.UID] = now
		return false, grace, nil
	}
	at, ok := r.changed[ro.UID]
	if !ok {
		return true, 0, nil
	}
	if remaining := at.Add(grace).Sub(now); remaining > 0 {
		return false, remaining, nil
	}
	delete(r.changed, ro.UID)
	return true, 0, nil
}

// describe says what d sends to the canary, e.g. "5% of requests" or
// "requests matching 1 match".
func describe(d *route.Desired) string {
	var parts []string
	if d.Weight != nil {
		parts = append(parts, fmt.Sprintf("%d%% of requests", ptr.Deref(d.Weight, 0)))
	}
	if n := len(d.Matches); n > 0 {
		parts = append(parts, fmt.Sprintf("requests matching %d match(es)", n))
	}
	if len(parts) == 0 {
		return "no requests"
	}
	return strings.Join(parts, " and ")
}
