package release

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// blueGreenRollout releases Deployment web blue-green: half the new pods
// beside the old ones, waiting for promote, then every new pod.
func blueGreenRollout() *v1beta1.Rollout {
	ro := webRollout()
	ro.Spec.Strategy = v1beta1.RolloutStrategy{BlueGreen: &v1beta1.BlueGreenStrategy{
		Steps: []v1beta1.CanaryStep{fakecluster.Step("50%", -1), fakecluster.Step("100%", -1)},
	}}
	return ro
}

// stageRouter records, for every traffic stage of a finalisation, the
// ReplicaSets' sizes when the stage ran.
type stageRouter struct {
	NoopTrafficRouter
	sizes  func() map[string]int32
	stages []v1beta1.FinalisingStepType
	at     map[v1beta1.FinalisingStepType]map[string]int32
}

func (r *stageRouter) Finalise(_ context.Context, _ *RouteContext, stage v1beta1.FinalisingStepType) (bool, time.Duration, error) {
	if r.at == nil {
		r.at = map[v1beta1.FinalisingStepType]map[string]int32{}
	}
	if _, seen := r.at[stage]; !seen {
		r.stages = append(r.stages, stage)
		r.at[stage] = r.sizes()
	}
	return true, 0, nil
}

func TestBlueGreenRelease(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, blueGreenRollout(), d)
	router := &stageRouter{sizes: e.replicaSets}
	e.r.Router = router
	e.startRelease()

	ro := e.ro()
	require.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Nil(t, ro.Status.CanaryStatus, "a blue-green release keeps its progress in blueGreenStatus")
	bg := ro.Status.BlueGreenStatus
	require.NotNil(t, bg)
	assert.Equal(t, int32(1), bg.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, bg.CurrentStepState)
	assert.Equal(t, int32(2), bg.UpdatedReplicas)
	assert.NotEqual(t, bg.StableRevision, bg.UpdatedRevision)
	assert.Equal(t, bg.CurrentStepState, ro.Status.CurrentStepState, "top-level fields mirror blueGreenStatus")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 2}, e.replicaSets(), "the new pods come up beside every old one")

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	assert.Equal(t, v1beta1.FinalisingStepTypeEnd, ro.Status.BlueGreenStatus.FinalisingStep)
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
	for _, rs := range e.c.ReplicaSets("web") {
		if *rs.Spec.Replicas > 0 {
			assert.Equal(t, "4", rs.Annotations["deployment.kubernetes.io/desired-replicas"], "the new ReplicaSet records the Deployment's own replicas again")
		}
	}
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy, "strategy restored exactly")
	assert.False(t, workload.IsHeld(got))

	assert.Equal(t, []v1beta1.FinalisingStepType{
		v1beta1.FinalisingStepRouteTrafficToNew,
		v1beta1.FinalisingStepRouteTrafficToStable,
		v1beta1.FinalisingStepRemoveCanaryService,
		v1beta1.FinalisingStepRestoreStableService,
	}, router.stages)
	both := map[string]int32{"v1": 4, "v2": 4}
	assert.Equal(t, both, router.at[v1beta1.FinalisingStepRouteTrafficToNew], "the switch finds both revisions at full size")
	assert.Equal(t, both, router.at[v1beta1.FinalisingStepRouteTrafficToStable])
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, router.at[v1beta1.FinalisingStepRestoreStableService],
		"the stable Service selects every pod again only once the old ones are gone")
}

func TestBlueGreenAbortSwitchesTrafficBackFirst(t *testing.T) {
	e := newEnv(t, blueGreenRollout(), webDeployment())
	router := &stageRouter{sizes: e.replicaSets}
	e.r.Router = router
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1, Reason: "bad build"})
	e.settle()

	assertAbortedOnStable(t, e)
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 2}, router.at[v1beta1.FinalisingStepRouteTrafficToStable],
		"traffic is back on stable before any new pod goes")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, router.at[v1beta1.FinalisingStepRestoreStableService],
		"the stable Service selects every pod again only once the aborted ones are gone")
	assert.NotContains(t, router.stages, v1beta1.FinalisingStepRouteTrafficToNew)
}

func TestBlueGreenOfAStatefulSetIsNotActedOn(t *testing.T) {
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "web")
	ro.Spec.Strategy = v1beta1.RolloutStrategy{BlueGreen: &v1beta1.BlueGreenStrategy{Steps: []v1beta1.CanaryStep{fakecluster.Step("100%", -1)}}}
	e := newEnv(t, ro, fakecluster.NewStatefulSet("web", "v1", 3))
	e.settle()
	assert.Contains(t, e.ro().Status.Message, "blueGreen releases Deployments only")
}
