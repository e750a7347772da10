package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestKruiseCompat replays what Kruise Rollout users do and expect, with only
// the group renamed: a last step that waits, jumps by promote and by Kruise's
// own status patch, Kruise's approve, observedWorkloadGeneration, and the
// status writes a user may and may not make. Scenarios run at the same time,
// each in its own namespace, like TestRelease.
func TestKruiseCompat(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"LastStepPauseWaits", kruiseLastStepPauseWaits},
		{"JumpsAndApprove", kruiseJumpsAndApprove},
		{"V1alpha1AsWritten", kruiseV1alpha1AsWritten},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}

// kruiseLastStepPauseWaits: replicas 3, steps 50% then 90% with pause {}.
// 90% of 3 rounds up to every pod, but the author wrote a step short of 100%
// that waits for approval, so Kruise waits there, and so do we. Afterwards
// canaryStatus.observedWorkloadGeneration equals the Deployment's generation,
// after the hand-back and after a scale, as Kruise's e2e asserts.
func kruiseLastStepPauseWaits(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 3)
	s.givenRollout([]v1beta1.CanaryStep{step("50%"), step("90%")})

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectStaysAtStep(2, 3*time.Second, "app:v2", 3)

	s.promote()
	s.expectSucceeded()
	s.expectObservedWorkloadGeneration("after the release")

	s.scaleDeployment(5)
	s.expectObservedWorkloadGeneration("after a scale to 5")
}

// kruiseJumpsAndApprove: a jump forward by promote toStepIndex, a jump back by
// Kruise's status patch canaryStatus.nextStepIndex, and Kruise's approve
// (currentStepState: StepReady) all move the release as Kruise's would.
func kruiseJumpsAndApprove(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 10)
	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("40%"), step("60%"), step("80%")})
	s.w.allowAll() // jumps go anywhere; the test checks where

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)

	ctx, cancel := s.ctx()
	defer cancel()
	rollouts := s.env.ro.RolloutV1beta1().Rollouts(s.ns)
	_, err := rollouts.Promote(ctx, s.name, &v1beta1.RolloutPromote{
		ToStepIndex:   ptr.To[int32](3),
		Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("promote to step 3: %v", err)
	}
	s.waitForCurrentStep(3, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 6, "app:v1": 4})

	// A second promote meant for step 1 is refused now: it would skip step 3.
	_, err = rollouts.Promote(ctx, s.name, &v1beta1.RolloutPromote{
		Preconditions: &v1beta1.ActionPreconditions{StepIndex: ptr.To[int32](1)},
	}, metav1.CreateOptions{})
	assert.ErrorContains(t, err, "the Rollout is at step 3", "a stale promote is a 409 naming where the release is")

	s.kruiseStatusPatch(`{"status":{"canaryStatus":{"nextStepIndex":2}}}`)
	s.waitForCurrentStep(2, v1beta1.CanaryStepStatePaused)

	s.kruiseStatusPatch(`{"status":{"canaryStatus":{"currentStepState":"StepReady"}}}`)
	s.waitForCurrentStep(3, v1beta1.CanaryStepStatePaused)

	s.promoteFull()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 10})
}

// kruiseStatusPatch sends a status patch the way Kruise's tools do (a merge
// patch of rollouts/status by a user, not the controller).
func (s *scenario) kruiseStatusPatch(patch string) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		s.t.Fatalf("status patch %s: %v\n%s", patch, err, s.describe())
	}
	if got.Status.PendingAction == nil || got.Status.PendingAction.Type != v1beta1.RolloutActionPromote {
		s.t.Errorf("status patch %s: want it recorded as a pending promote, got %+v", patch, got.Status.PendingAction)
	}
	s.logf("status patch %s", patch)
}

// waitForCurrentStep waits until the Rollout is now at step index in state
// (waitForStep answers from history, which a jump back revisits).
func (s *scenario) waitForCurrentStep(index int32, state v1beta1.CanaryStepState) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("the release to be at step %d in state %s", index, state), func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		cs := ro.Status.CanaryStatus
		return cs != nil && cs.CurrentStepIndex == index && cs.CurrentStepState == state && ro.Status.PendingAction == nil, rolloutSummary(ro)
	})
	s.logf("at step %d %s", index, state)
}

// expectObservedWorkloadGeneration waits until the Rollout has observed the
// Deployment's current generation.
func (s *scenario) expectObservedWorkloadGeneration(when string) {
	s.t.Helper()
	s.eventually(waitTimeout, "canaryStatus.observedWorkloadGeneration to equal the Deployment's generation "+when, func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		d, err := s.env.c.Client.AppsV1().Deployments(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cs := ro.Status.CanaryStatus
		if cs == nil {
			return false, "no canaryStatus"
		}
		return cs.ObservedWorkloadGeneration == d.Generation, fmt.Sprintf("observed %d, Deployment generation %d", cs.ObservedWorkloadGeneration, d.Generation)
	})
}

// scaleDeployment sets the Deployment's replicas through its scale subresource.
func (s *scenario) scaleDeployment(replicas int32) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := s.env.c.Client.AppsV1().Deployments(s.ns).Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		s.t.Fatalf("scale to %d: %v", replicas, err)
	}
	if s.w != nil {
		s.w.scaled(int(replicas))
	}
	s.logf("scaled the Deployment to %d", replicas)
}

// TestKruiseCompatStatusRBAC: view lists Rollouts; edit cannot write status
// at all; rollout-status-approver may send Kruise's approve and jump but no
// other status field.
func TestKruiseCompatStatusRBAC(t *testing.T) {
	e := newSurfaceEnv(t)
	e.kubectl.must("apply", "-f", filepath.Join(e.c.RootDir, "artifacts", "deploy", "30-rbac-users.yaml"))
	ns := e.namespace()
	e.kubectl.mustApply(canaryRolloutYAML(ns, "web", "web"))
	for user, role := range map[string]string{"vera": "view", "ed": "edit", "sam": "rollout-status-approver"} {
		e.kubectl.must("create", "rolebinding", user, "-n", ns, "--clusterrole="+role, "--user="+user)
	}
	e.eventually("the RoleBindings to take effect", func(context.Context) (bool, string) {
		res := e.kubectl.as("sam").run("get", "rollout", "web", "-n", ns)
		return res.ExitCode == 0, res.String()
	})

	assert.Contains(t, e.kubectl.as("vera").must("get", "rollouts", "-n", ns), "web", "view lists Rollouts")

	forged := `{"status":{"phase":"Healthy","message":"forged"}}`
	res := e.kubectl.as("ed").run("patch", "rollout", "web", "-n", ns, "--subresource=status", "--type=merge", "-p", forged)
	expectForbidden(t, res)

	res = e.kubectl.as("sam").run("patch", "rollout", "web", "-n", ns, "--subresource=status", "--type=merge", "-p", forged)
	assert.NotZero(t, res.ExitCode, "%s", res)
	assert.Contains(t, res.Output, "status is written by the controller", "%s", res)

	// Kruise's approve is accepted only while a step waits; there is no
	// release here, so it is refused with the same explanation.
	res = e.kubectl.as("sam").run("patch", "rollout", "web", "-n", ns, "--subresource=status", "--type=merge",
		"-p", `{"status":{"canaryStatus":{"currentStepState":"StepReady"}}}`)
	assert.NotZero(t, res.ExitCode, "%s", res)
	assert.Contains(t, res.Output, "status is written by the controller", "%s", res)
}

// kruiseV1alpha1AsWritten: a Kruise v1alpha1 Rollout as Kruise users write it,
// with only the group renamed. A Deployment without the rolling-style
// partition annotation is canary style (an extra canary Deployment), as in
// Kruise, and the release runs to the end on that plan. Steps that carry only
// a weight and no trafficRouting are refused with the v1alpha1 field path:
// Kruise would quietly drop the weight, and a step that asks for traffic is
// never passed here without routing it (docs/api.md, "Moving from Kruise
// Rollout").
func kruiseV1alpha1AsWritten(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 4)
	alpha := func(steps ...v1alpha1.CanaryStep) *v1alpha1.Rollout {
		return &v1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.ns},
			Spec: v1alpha1.RolloutSpec{
				ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: s.name}},
				Strategy:  v1alpha1.RolloutStrategy{Canary: &v1alpha1.CanaryStrategy{Steps: steps}},
			},
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.env.ro.RolloutV1alpha1().Rollouts(s.ns).Create(ctx, alpha(
		v1alpha1.CanaryStep{TrafficRoutingStrategy: v1alpha1.TrafficRoutingStrategy{Weight: ptr.To[int32](25)}},
	), metav1.CreateOptions{})
	if assert.Error(t, err, "a weight without a trafficRouting") {
		assert.Contains(t, err.Error(), "spec.strategy.canary.steps[0].weight", "the error names the field the v1alpha1 client wrote")
		assert.Contains(t, err.Error(), "requires a trafficRouting")
	}

	quarter, all := intstr.FromString("25%"), intstr.FromString("100%")
	created := s.adoptRollout(func(ctx context.Context) (*v1beta1.Rollout, error) {
		if _, err := s.env.ro.RolloutV1alpha1().Rollouts(s.ns).Create(ctx, alpha(
			v1alpha1.CanaryStep{Replicas: &quarter}, v1alpha1.CanaryStep{Replicas: &all},
		), metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		return s.getRollout(ctx)
	})
	assert.True(t, created.Spec.Strategy.Canary.EnableExtraWorkloadForCanary, "no rolling-style partition annotation: canary style, as in Kruise")

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.promote()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 4})
}
