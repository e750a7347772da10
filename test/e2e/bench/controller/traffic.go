package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// phaseTraffic releases b.o.traffic Deployments in waves, each routed through its own
// HTTPRoute, and measures, per release, the time from step 1's pods being available to
// the route sending the step's share to the canary Service.
func (b *bench) phaseTraffic(ctx context.Context) error {
	ns, err := b.namespace(ctx, "bench-traffic")
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(b.c.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	names := b.names("traffic", b.o.traffic)
	if err := b.createDeployments(ctx, ns, names); err != nil {
		return err
	}
	if err := b.each(names, func(name string) error {
		if _, err := b.kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(80))}}}}}}},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("Services and HTTPRoutes: %w", err)
	}
	first := stepOf("50%", nil)
	first.Traffic = ptr.To("50%")
	last := stepOf("100%", nil)
	last.Traffic = ptr.To("100%")
	if err := b.createRollouts(ctx, ns, names, []v1beta1.CanaryStep{first, last}, func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.TrafficRoutings = []v1beta1.TrafficRoutingRef{{
			Service: ro.Name, GracePeriodSeconds: 1, Gateway: &v1beta1.GatewayTrafficRouting{HTTPRouteName: ptr.To(ro.Name)},
		}}
	}); err != nil {
		return err
	}
	if _, err := b.waitDeployments(ctx, ns, names, "v1", time.Time{}); err != nil {
		return err
	}
	if err := b.waitControlled(ctx, ns, names); err != nil {
		return err
	}

	// When each Deployment's new ReplicaSet first has the step's pods available, and when
	// each route first sends to a canary Service, as the watches see them.
	target := int32((b.o.replicas + 1) / 2)
	var mu sync.Mutex
	ready, routed := map[string]time.Time{}, map[string]time.Time{}
	rsWatch, err := b.kube.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer rsWatch.Stop()
	hrWatch, err := gw.GatewayV1().HTTPRoutes(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer hrWatch.Stop()
	go func() {
		for ev := range rsWatch.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok || ev.Type == watch.Deleted || rs.Spec.Template.Spec.Containers[0].Image != "fake-image:v2" || rs.Status.AvailableReplicas < target {
				continue
			}
			if owner := metav1.GetControllerOf(rs); owner != nil {
				mu.Lock()
				if _, seen := ready[owner.Name]; !seen {
					ready[owner.Name] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range hrWatch.ResultChan() {
			hr, ok := ev.Object.(*gwv1.HTTPRoute)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			for _, rule := range hr.Spec.Rules {
				for _, ref := range rule.BackendRefs {
					if string(ref.Name) == hr.Name+"-canary" && ptr.Deref(ref.Weight, 0) > 0 {
						mu.Lock()
						if _, seen := routed[hr.Name]; !seen {
							routed[hr.Name] = time.Now()
						}
						mu.Unlock()
					}
				}
			}
		}
	}()
	time.Sleep(time.Second) // the watches' initial ADDED events

	// Released in waves, as releases arrive in a cluster: the figure is the controller's
	// reaction to one step's pods, not the depth of a queue that 100 simultaneous
	// releases build (the rollouts phase measures that throughput).
	before := b.usage()
	start := time.Now()
	for i := 0; i < len(names); i += b.o.trafficWave {
		wave := names[i:min(i+b.o.trafficWave, len(names))]
		if err := b.updateImages(ctx, ns, wave, "v2"); err != nil {
			return err
		}
		if err := b.waitAllRollouts(ctx, ns, wave, "step 1 StepPaused with traffic routed", func(ro *v1beta1.Rollout) bool {
			cs := ro.Status.CanaryStatus
			return cs != nil && cs.CurrentStepIndex == 1 && cs.CurrentStepState == v1beta1.CanaryStepStatePaused
		}); err != nil {
			return err
		}
	}
	took := time.Since(start)
	time.Sleep(time.Second) // the last watch events
	after := b.usage()

	mu.Lock()
	var latencies []time.Duration
	var missing []string
	for _, name := range names {
		r, okR := ready[name]
		t, okT := routed[name]
		if !okR || !okT {
			missing = append(missing, fmt.Sprintf("%s (pods available seen: %v, route change seen: %v)", name, okR, okT))
			continue
		}
		latencies = append(latencies, t.Sub(r))
	}
	mu.Unlock()
	if len(missing) > 0 {
		return fmt.Errorf("%d releases without a measurement (pods ready or route change not seen), e.g. %s", len(missing), missing[0])
	}
	b.routedP99, b.trafficMeasured = pct(latencies, 99), true
	b.add("traffic", "releases with an HTTPRoute each", fmt.Sprintf("%d, in waves of %d", len(names), b.o.trafficWave))
	b.add("traffic", "first image update → every route at step 1 (50%)", dur(took))
	b.add("traffic", "step's pods available → route updated p50 / p90 / p99 / max", fmt.Sprintf("%s / %s / %s / %s",
		ms(pct(latencies, 50)), ms(pct(latencies, 90)), ms(pct(latencies, 99)), ms(pct(latencies, 100))))
	b.add("traffic", "rollout-apiserver CPU", fmt.Sprintf("%.1f s", after.cpu-before.cpu))
	b.add("traffic", "controller work queue", queueRow(before, after))
	logf("traffic: pods ready → route updated p50 %s p99 %s", ms(pct(latencies, 50)), ms(pct(latencies, 99)))
	return nil
}
