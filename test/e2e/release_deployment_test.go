package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// releaseDeploymentInPlace: one release of a Deployment of 10, in place, end to end.
// 20% waits for promote, 50% pauses 5 s, 100% finishes; the Deployment then runs the new
// revision on its own strategy exactly as it was before the release.
func releaseDeploymentInPlace(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("50%", 5), step("100%")})

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 8})
	s.expectStaysAtStep(1, 2*time.Second, "app:v2", 2)

	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 5, "app:v1": 5})

	// 5 s after step 2 is ready, the release moves on to 100% by itself. The controller's
	// own timestamps (whole seconds) tell when step 2 was ready and step 3 began; the wall
	// clock of the watcher bounds it from above.
	s.eventually(waitTimeout, "the release to leave step 2 after its 5 s pause", func(ctx context.Context) (bool, string) {
		_, ok := s.w.first(func(r roState) bool { return r.step >= 3 })
		return ok, s.w.lastRolloutState()
	})
	paused, _ := s.w.first(func(r roState) bool { return r.step == 2 && r.state == v1beta1.CanaryStepStatePaused })
	next, _ := s.w.first(func(r roState) bool { return r.step >= 3 })
	controllerWait, observedWait := next.stepStart.Sub(paused.lastUpdate), next.at.Sub(paused.at)
	s.logf("step 2 was ready at %s and step 3 began at %s (%s later by the controller's clock, %.1fs as observed)",
		paused.lastUpdate.Format("15:04:05"), next.stepStart.Format("15:04:05"), controllerWait, observedWait.Seconds())
	if controllerWait < 5*time.Second || observedWait > 12*time.Second {
		s.t.Errorf("step 2 (pause 5s) moved on %s after it was ready by the controller's clock (%.1fs as observed); want 5s",
			controllerWait, observedWait.Seconds())
	}

	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 10})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
	s.expectOneReplicaSetPerImage()
}

// releaseDeploymentExtraCanary: the same release through an extra canary Deployment. The
// canary Deployment runs each step's pods of the new revision beside the untouched original;
// at the end the original rolls to the new revision on its own strategy and the canary
// Deployment is removed.
func releaseDeploymentExtraCanary(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("50%", 5), step("100%")}, withExtraCanaryWorkload())

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectCanaryDeployment(2, "app:v2")
	s.expectPodsWhere(pods{"app:v2": 2}, "canary Deployment: ", isCanaryPod)
	s.expectPodsWhere(pods{"app:v1": 10}, "original Deployment: ", isOriginalPod)

	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectCanaryDeployment(5, "app:v2")
	s.expectPodsWhere(pods{"app:v2": 5}, "canary Deployment: ", isCanaryPod)
	s.expectPodsWhere(pods{"app:v1": 10}, "original Deployment: ", isOriginalPod)

	s.expectSucceeded()
	s.expectNoCanaryDeployment()
	s.expectPods(pods{"app:v2": 10})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
}

func isCanaryPod(p *corev1.Pod) bool   { return p.Labels[canaryWorkloadLabel] == "true" }
func isOriginalPod(p *corev1.Pod) bool { return p.Labels[canaryWorkloadLabel] != "true" }

// expectStaysAtStep checks that a step waiting for promote does not move on by itself.
func (s *scenario) expectStaysAtStep(index int32, d time.Duration, image string, n int) {
	s.t.Helper()
	s.consistently(d, fmt.Sprintf("the release to stay at step %d with %d pods on %s", index, n, image), func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		live, _, desc, err := s.podDistribution(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		return ro.Status.CurrentStepIndex == index && ro.Status.Phase == v1beta1.RolloutPhaseProgressing && live[image] == n,
			fmt.Sprintf("step %d %s; pods %s", ro.Status.CurrentStepIndex, ro.Status.CurrentStepState, desc)
	})
}

// expectOneReplicaSetPerImage: once released, the Deployment controller adopted the
// ReplicaSet the release controller made for the new revision (same pod-template-hash)
// instead of making a second one.
func (s *scenario) expectOneReplicaSetPerImage() {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	revs, err := s.revisionsOf(ctx)
	if err != nil {
		s.t.Fatalf("revisions: %v", err)
	}
	for img, hashes := range revs {
		if len(hashes) != 1 {
			s.t.Errorf("Deployment %s has %d ReplicaSets for %s (pod-template-hash %v); want 1\n%s", s.name, len(hashes), img, hashes, s.describe())
		}
	}
}

// expectCanaryDeployment waits until the extra canary Deployment runs replicas pods of image.
func (s *scenario) expectCanaryDeployment(replicas int32, image string) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("canary Deployment %s-canary with %d available pods of %s", s.name, replicas, image), func(ctx context.Context) (bool, string) {
		cd, err := s.env.c.Client.AppsV1().Deployments(s.ns).Get(ctx, s.name+"-canary", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		owner := metav1.GetControllerOf(cd)
		ok := ptr.Deref(cd.Spec.Replicas, 1) == replicas && cd.Spec.Template.Spec.Containers[0].Image == image &&
			cd.Status.AvailableReplicas == replicas && owner != nil && owner.Kind == "Deployment" && owner.Name == s.name
		return ok, fmt.Sprintf("replicas=%d image=%s owner=%v status=%+v", ptr.Deref(cd.Spec.Replicas, 1), cd.Spec.Template.Spec.Containers[0].Image, owner, cd.Status)
	})
	s.logf("canary Deployment %s-canary: %d pods of %s", s.name, replicas, image)
}

func (s *scenario) expectNoCanaryDeployment() {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("canary Deployment %s-canary removed", s.name), func(ctx context.Context) (bool, string) {
		cd, err := s.env.c.Client.AppsV1().Deployments(s.ns).Get(ctx, s.name+"-canary", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("still there: deleting=%v replicas=%d", cd.DeletionTimestamp != nil, ptr.Deref(cd.Spec.Replicas, 1))
	})
	s.logf("canary Deployment %s-canary removed", s.name)
}
