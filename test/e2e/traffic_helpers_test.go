package e2e

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// What the traffic scenarios of every provider share: the stable Service "web" in front
// of the Deployment "web", the canary Service the release adds, and background checks.

// givenStableService creates the Service "web" that selects the Deployment's pods and
// returns it as stored.
func (s *scenario) givenStableService() *corev1.Service {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	svc, err := s.env.c.Client.CoreV1().Services(s.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"team": "shop"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create Service web: %v", err)
	}
	return svc
}

// observeServices reads the stable Service and the canary Service (nil when absent).
func (s *scenario) observeServices(ctx context.Context) (stable, canary *corev1.Service, err error) {
	if stable, err = s.env.c.Client.CoreV1().Services(s.ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		return nil, nil, err
	}
	canary, err = s.env.c.Client.CoreV1().Services(s.ns).Get(ctx, "web-canary", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return stable, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return stable, canary, nil
}

// servicesRouted checks the Services mid-release: the canary one selects the new
// revision; the stable one the stable revision (pinned) or, when a provider pins the
// stable revision itself (Istio subsets), both as before.
func servicesRouted(stable, canary *corev1.Service, cs *v1beta1.CanaryStatus, pinned bool) (bool, string) {
	want := map[string]string{"app": "web"}
	if pinned {
		want["pod-template-hash"] = cs.StableRevision
	}
	if !apiequality.Semantic.DeepEqual(stable.Spec.Selector, want) {
		return false, fmt.Sprintf("stable selector %v, want %v", stable.Spec.Selector, want)
	}
	if canary == nil {
		return false, "no canary Service"
	}
	if want := map[string]string{"app": "web", "pod-template-hash": cs.PodTemplateHash}; !apiequality.Semantic.DeepEqual(canary.Spec.Selector, want) {
		return false, fmt.Sprintf("canary selector %v, want %v", canary.Spec.Selector, want)
	}
	return true, ""
}

// servicesRestored checks the Services after a release: the stable one exactly as
// before (spec, labels, annotations), the canary one gone.
func servicesRestored(original, stable, canary *corev1.Service) (bool, string) {
	switch {
	case !apiequality.Semantic.DeepEqual(stable.Spec, original.Spec):
		return false, "stable Service spec " + jsonString(stable.Spec)
	case !apiequality.Semantic.DeepEqual(stable.Labels, original.Labels) || !apiequality.Semantic.DeepEqual(stable.Annotations, original.Annotations):
		return false, fmt.Sprintf("stable Service labels %v annotations %v", stable.Labels, stable.Annotations)
	case canary != nil:
		return false, "canary Service still there"
	}
	return true, ""
}

// sameObject compares what a release may change of a routing object, and says what differs.
func sameObject(what string, wantSpec, gotSpec any, want, got metav1.Object) (bool, string) {
	switch {
	case !apiequality.Semantic.DeepEqual(gotSpec, wantSpec):
		return false, what + " spec " + jsonString(gotSpec)
	case !apiequality.Semantic.DeepEqual(got.GetLabels(), want.GetLabels()):
		return false, fmt.Sprintf("%s labels %v", what, got.GetLabels())
	case !apiequality.Semantic.DeepEqual(got.GetAnnotations(), want.GetAnnotations()):
		return false, fmt.Sprintf("%s annotations %v", what, got.GetAnnotations())
	}
	return true, ""
}

func trafficStep(replicas, traffic string) v1beta1.CanaryStep {
	st := step(replicas)
	st.Traffic = ptr.To(traffic)
	return st
}

// expectStatusTraffic checks what status.canaryStatus.traffic records for the step.
func (s *scenario) expectStatusTraffic(weight *int32, matches int) {
	s.t.Helper()
	t := s.rollout().Status.Progress().Traffic
	switch {
	case t == nil:
		s.t.Errorf("status.canaryStatus.traffic not recorded")
	case !ptr.Equal(t.Weight, weight) || len(t.Matches) != matches:
		s.t.Errorf("status.canaryStatus.traffic = %s; want weight %v and %d matches", jsonString(t), ptr.Deref(weight, -1), matches)
	}
}

// checkUntilStopped runs check every interval in the background until it returns false
// or the returned stop function is called (which waits for the last check).
func (s *scenario) checkUntilStopped(interval time.Duration, check func() bool) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
			if !check() {
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// waitPodsGone waits until no live pod runs image.
func (s *scenario) waitPodsGone(image string) {
	s.t.Helper()
	s.eventually(waitTimeout, "the pods of "+image+" to go", func(ctx context.Context) (bool, string) {
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		return live[image] == 0, desc
	})
}
