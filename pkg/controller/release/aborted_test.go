package release

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// abortAtStepOne starts the release of v2 and aborts it at step 1.
func (e *env) abortAtStepOne(reason string) {
	e.t.Helper()
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1, Reason: reason})
	e.settle()
	require.Equal(e.t, v1beta1.RolloutPhaseAborted, e.ro().Status.Phase, e.ro().Status.Message)
}

func TestAbortHoldsTheWorkloadOnStable(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.abortAtStepOne("latency is up")
	ro := e.ro()
	require.NotNil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.AbortReasonUser, ro.Status.Abort.Reason)
	assert.Equal(t, "latency is up", ro.Status.Abort.Message)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, corev1.ConditionFalse, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	assert.Contains(t, ro.Status.Message, "stays held until its pod template changes or the release is retried")
	assert.Equal(t, v1beta1.FinalisingStepTypeEnd, ro.Status.CanaryStatus.FinalisingStep)

	d := e.c.Deployment("web")
	assert.Equal(t, "v2", d.Spec.Template.Spec.Containers[0].Image, "the template stays as the user wrote it")
	assert.True(t, d.Spec.Paused && workload.IsHeld(d), "the workload stays held")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets(), "every pod is back on the stable revision")
	assert.True(t, e.hadEvent("Aborted"))
	assert.False(t, e.hadEvent("WorkloadRolledBack"), "no template was written")

	// Settled: passes keep it so and write nothing.
	before := e.ro().ResourceVersion
	e.settle()
	assert.Equal(t, before, e.ro().ResourceVersion)
}

func TestAbortedSameTemplateAppliedAgainStartsNothing(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.abortAtStepOne("bad")
	// A GitOps tool applies the same v2 (and its own strategy) again: the
	// webhook keeps the hold and the template is unchanged.
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseAborted, ro.Status.Phase)
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())
	assert.Equal(t, 1, e.countEvents("ReleaseStarted"), "no second release")
}

func TestAbortedPutsALostHoldBack(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.abortAtStepOne("bad")
	d := e.c.Deployment("web")
	workload.ReleaseDeployment(d)
	_, err := e.c.Kube.AppsV1().Deployments(fakecluster.Namespace).Update(context.Background(), d, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.c.Refresh()
	e.sync()
	assert.True(t, e.c.Deployment("web").Spec.Paused, "held again before its controller rolls v2 out")
	e.settle()
	assert.Equal(t, v1beta1.RolloutPhaseAborted, e.ro().Status.Phase)
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())
}

func TestAbortedRevertToStableHandsBack(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.abortAtStepOne("bad")
	e.c.SetImage(v1beta1.KindDeployment, "web", "v1", true)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy, "the strategy comes back exactly")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets(), "nothing rolled")
	assert.Equal(t, 1, e.countEvents("ReleaseStarted"), "a revert is no release")
	assert.True(t, e.hadEvent("Cancelled"))
	assert.Equal(t, ReasonCancelled, condition(ro, v1beta1.RolloutConditionSucceeded).Reason)
}

func TestAbortedNewRevisionStartsARelease(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.abortAtStepOne("bad")
	stable := e.ro().Status.CanaryStatus.StableRevision
	e.c.SetImage(v1beta1.KindDeployment, "web", "v3", true)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Nil(t, ro.Status.Abort)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, stable, ro.Status.CanaryStatus.StableRevision, "v1 is still the stable revision")
	assert.Equal(t, map[string]int32{"v1": 3, "v2": 0, "v3": 1}, e.replicaSets())
}

func TestRetryReleasesTheSameRevisionFromStepOne(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	require.Equal(t, int32(2), e.ro().Status.CurrentStepIndex)
	v2 := e.ro().Status.CanaryStatus.CanaryRevision
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 2})
	e.settle()
	require.Equal(t, v1beta1.RolloutPhaseAborted, e.ro().Status.Phase)
	require.Equal(t, int32(2), e.ro().Status.Abort.StepIndex)

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionRetry, StepIndex: 2})
	e.sync()
	ro := e.ro()
	assert.Nil(t, ro.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Nil(t, ro.Status.Abort)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.True(t, e.hadEvent("Retried"))

	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, v2, ro.Status.CanaryStatus.CanaryRevision, "the same revision again")
	assert.Equal(t, map[string]int32{"v1": 3, "v2": 1}, e.replicaSets())

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1, Full: true})
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
}

func TestRetryOutsideAbortedIsIgnored(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionRetry, StepIndex: 1})
	e.sync()
	ro := e.ro()
	assert.Nil(t, ro.Status.PendingAction)
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.True(t, e.hadEvent("ActionIgnored"))
}

func TestAbortedDisableHandsBackAsIs(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.abortAtStepOne("bad")
	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	e.settle()
	assert.Equal(t, v1beta1.RolloutPhaseDisabled, e.ro().Status.Phase)
	assert.False(t, workload.IsHeld(e.c.Deployment("web")))
}

func TestAbortHoldsAStatefulSetOnStable(t *testing.T) {
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db", fakecluster.Step("2", -1), fakecluster.Step("100%", -1))
	e := newEnv(t, ro, fakecluster.NewStatefulSet("db", "v1", 4))
	e.settle()
	e.c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
	e.settle()
	st := e.ro().Status
	require.Equal(t, v1beta1.CanaryStepStatePaused, st.CurrentStepState)
	stable, canary := st.CanaryStatus.StableRevision, st.CanaryStatus.CanaryRevision
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1})
	// Pods go one at a time, each a pass apart: settle until the state is reached.
	e.settleUntil(func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseAborted })
	s := e.c.StatefulSet("db")
	assert.Equal(t, "v2", s.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, int32(4), workload.HeldPartition(s))
	assert.Equal(t, map[string]int32{stable: 4}, e.c.Pods(s.UID, appsv1.ControllerRevisionHashLabelKey))

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionRetry})
	e.settleUntil(func(ro *v1beta1.Rollout) bool { return ro.Status.CurrentStepState == v1beta1.CanaryStepStatePaused })
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, e.ro().Status.Phase)
	assert.Equal(t, map[string]int32{stable: 2, canary: 2}, e.c.Pods(s.UID, appsv1.ControllerRevisionHashLabelKey))
}

// A native DaemonSet cannot run its stable revision under the new template,
// so its abort falls back to writing the stable template back.
func TestAbortOfADaemonSetRewritesTheTemplate(t *testing.T) {
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent", fakecluster.Step("1", -1), fakecluster.Step("100%", -1))
	e := newEnv(t, ro, fakecluster.NewDaemonSet("agent", "v1", "1"))
	e.settle()
	e.c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	e.settle()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1})
	// The DaemonSet controller observes the written template a pass later: settle until done.
	e.settleUntil(func(ro *v1beta1.Rollout) bool { return ro.Status.Phase == v1beta1.RolloutPhaseHealthy })
	got := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, got.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(got, v1beta1.RolloutConditionProgressing).Reason)
	assert.Contains(t, condition(got, v1beta1.RolloutConditionSucceeded).Message, "a DaemonSet cannot run its stable revision under a newer pod template")
	ds := e.c.DaemonSet("agent")
	assert.Equal(t, "v1", ds.Spec.Template.Spec.Containers[0].Image)
	assert.False(t, workload.IsHeld(ds))
}

// settleUntil reconciles and lets the workload controllers act until cond holds.
func (e *env) settleUntil(cond func(*v1beta1.Rollout) bool) {
	e.t.Helper()
	for range 60 {
		e.sync()
		e.c.Settle()
		if cond(e.ro()) {
			e.settle()
			return
		}
	}
	e.t.Fatalf("the Rollout never reached the state: %+v", e.ro().Status)
}

func (e *env) countEvents(reason string) int {
	n := 0
	for _, r := range e.events {
		if r == reason {
			n++
		}
	}
	return n
}
