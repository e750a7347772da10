package release

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/deployment"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/releasers"
)

// env is a Rollout named "ro" and its workload in a fake cluster, with the
// reconciler that the controller's workers run.
type env struct {
	t        *testing.T
	c        *fakecluster.Cluster
	r        *Reconciler
	analyzer *scriptedAnalyzer
	events   []string
}

func newEnv(t *testing.T, ro *v1beta1.Rollout, objs ...runtime.Object) *env {
	t.Helper()
	c := fakecluster.New(t, append(objs, ro)...)
	e := &env{t: t, c: c, analyzer: &scriptedAnalyzer{}}
	e.r = &Reconciler{
		Client:       c.Rollouts,
		Kube:         c.Kube,
		Store:        c.Store,
		Releasers:    releasers.For(c.Deps),
		Router:       NoopTrafficRouter{},
		Analyzer:     e.analyzer,
		Recorder:     c.Recorder,
		Clock:        c.Clock,
		Expectations: c.Deps.Expectations,
	}
	c.Settle()
	return e
}

// sync runs one reconcile and lets the caches catch up.
func (e *env) sync() time.Duration {
	e.t.Helper()
	requeue, err := e.r.Sync(context.Background(), fakecluster.Namespace+"/ro")
	require.NoError(e.t, err)
	e.c.Refresh()
	e.events = append(e.events, e.c.Events()...)
	return requeue
}

// settle reconciles and lets the workload controllers act until the Rollout stops changing.
func (e *env) settle() {
	e.t.Helper()
	// Settled means neither the Rollout's status nor the ReplicaSets moved in
	// a pass: a pass may only shrink old pods and grow into the room later.
	// A pass may also act on what an earlier pass recorded without changing
	// status (record, then act), so the workloads are part of what must stay.
	var last *v1beta1.RolloutStatus
	var lastSizes map[string]int32
	var lastWorkloads string
	for range 60 {
		before, beforeWorkloads, beforeSizes := e.ro(), e.c.WorkloadFingerprint(), e.c.ReplicaSetSizes()
		requeue := e.sync()
		// A Sync that only wrote status and asked for no requeue gets no
		// event but its own write's, which the controller ignores.
		if after := e.ro(); requeue == 0 && after.ResourceVersion != before.ResourceVersion && hasFinalizer(before) &&
			after.Generation == before.Generation && beforeWorkloads == e.c.WorkloadFingerprint() && maps.Equal(beforeSizes, e.c.ReplicaSetSizes()) {
			e.assertFixedPoint()
		}
		e.c.Settle()
		st := e.ro().Status
		sizes := e.c.ReplicaSetSizes()
		workloads := e.c.WorkloadFingerprint()
		if last != nil && equalStatus(last, &st) && maps.Equal(lastSizes, sizes) && workloads == lastWorkloads {
			e.sync()
			return
		}
		last, lastSizes, lastWorkloads = st.DeepCopy(), sizes, workloads
	}
	e.t.Fatalf("the Rollout never settled: %+v", e.ro().Status)
}

// assertFixedPoint checks that a Sync left nothing for its own status
// write's watch event to do: the controller does not reconcile that echo
// (release.Store.Settled), so a Sync run again at once, on what it wrote and
// with no workload controller acting in between, must change nothing.
func (e *env) assertFixedPoint() {
	e.t.Helper()
	version, workloads, sizes := e.ro().ResourceVersion, e.c.WorkloadFingerprint(), e.c.ReplicaSetSizes()
	e.sync()
	assert.Equal(e.t, version, e.ro().ResourceVersion, "a Sync right after a Sync wrote status: %+v", e.ro().Status)
	assert.Equal(e.t, workloads, e.c.WorkloadFingerprint(), "a Sync right after a Sync changed the workload")
	assert.Equal(e.t, sizes, e.c.ReplicaSetSizes(), "a Sync right after a Sync scaled ReplicaSets")
}

func equalStatus(a, b *v1beta1.RolloutStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

func (e *env) ro() *v1beta1.Rollout { return e.c.Rollout("ro") }

// request puts an action in status.pendingAction, as the promote and abort subresources do.
func (e *env) request(action v1beta1.RolloutActionRequest) {
	e.t.Helper()
	ro := e.ro()
	action.RequestedBy = "alice"
	action.RequestedAt = metav1.NewTime(e.c.Clock.Now())
	ro.Status.PendingAction = &action
	defer e.c.HoldFaults()()
	_, err := e.c.Rollouts.RolloutV1beta1().Rollouts(ro.Namespace).UpdateStatus(context.Background(), ro, metav1.UpdateOptions{})
	require.NoError(e.t, err)
	e.c.Refresh()
}

func (e *env) updateSpec(mutate func(ro *v1beta1.Rollout)) {
	e.t.Helper()
	ro := e.ro()
	mutate(ro)
	ro.Generation++
	e.c.UpdateRollout(ro)
}

func (e *env) hadEvent(reason string) bool {
	return slices.Contains(e.events, reason)
}

// replicaSets maps image to spec.replicas for Deployment "web".
func (e *env) replicaSets() map[string]int32 {
	out := map[string]int32{}
	for _, rs := range e.c.ReplicaSets("web") {
		out[rs.Spec.Template.Spec.Containers[0].Image] = *rs.Spec.Replicas
	}
	return out
}

func condition(ro *v1beta1.Rollout, t v1beta1.RolloutConditionType) *v1beta1.RolloutCondition {
	return getCondition(&ro.Status, t)
}

// scriptedAnalyzer returns a fixed verdict; Passed when unset.
type scriptedAnalyzer struct {
	verdict AnalysisVerdict
	calls   int
	// results, if set, are what a non-passing verdict reports.
	results []v1beta1.MetricCheckResult
	// seen are the results each call was given.
	seen [][]v1beta1.MetricCheckResult
}

func (a *scriptedAnalyzer) Analyze(_ context.Context, ac *AnalysisContext) (AnalysisOutcome, error) {
	a.calls++
	a.seen = append(a.seen, ac.Results)
	if a.verdict == "" || a.verdict == AnalysisPassed {
		return AnalysisOutcome{Verdict: AnalysisPassed, Results: ac.Results}, nil
	}
	return AnalysisOutcome{Verdict: a.verdict, Message: "error rate 0.3 above 0.05", RetryAfter: 10 * time.Second, Results: a.results}, nil
}

func webRollout(steps ...v1beta1.CanaryStep) *v1beta1.Rollout {
	if len(steps) == 0 {
		steps = []v1beta1.CanaryStep{fakecluster.Step("1", -1), fakecluster.Step("50%", 60), fakecluster.Step("100%", -1)}
	}
	return fakecluster.NewRollout("ro", v1beta1.KindDeployment, "web", steps...)
}

func webDeployment() *appsv1.Deployment {
	return fakecluster.NewDeployment("web", "v1", 4, "25%", "25%")
}

// startRelease brings the env to step 1 of the release of v2, waiting for promote.
func (e *env) startRelease() {
	e.t.Helper()
	e.settle()
	require.Equal(e.t, v1beta1.RolloutPhaseHealthy, e.ro().Status.Phase)
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
}

func TestReleaseEndToEnd(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)

	e.sync()
	assert.Contains(t, e.ro().Finalizers, Finalizer, "the finalizer goes on first")
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, "true", e.c.Deployment("web").Labels[v1beta1.WorkloadControlLabel], "referenced workloads get the webhook's label")
	assert.Equal(t, ro.Generation, ro.Status.ObservedGeneration)

	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
	ro = e.ro()
	require.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, ro.Status.CurrentStepState, ro.Status.CanaryStatus.CurrentStepState, "top-level fields mirror canaryStatus")
	assert.Contains(t, ro.Status.Message, "waiting for promote")
	assert.Equal(t, map[string]int32{"v1": 3, "v2": 1}, e.replicaSets())
	cs := ro.Status.CanaryStatus
	assert.NotEqual(t, cs.StableRevision, cs.CanaryRevision)
	assert.Equal(t, int32(1), cs.CanaryReplicas)
	assert.Equal(t, int32(1), cs.CanaryReadyReplicas)
	assert.Equal(t, int32(3), cs.StableReadyReplicas)
	assert.Equal(t, v1beta1.ProgressingReasonInRolling, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.True(t, e.c.Deployment("web").Spec.Paused)

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.sync()
	ro = e.ro()
	// The write that applies the promote clears it; the same Sync then acts
	// on that record (chained passes), so step 2 is entered at once.
	assert.Nil(t, ro.Status.PendingAction, "the promote is cleared in the write that applies it")
	assert.Equal(t, int32(2), ro.Status.CurrentStepIndex, "the promote is acted on in the same Sync, after its write")

	e.settle()
	ro = e.ro()
	require.Equal(t, int32(2), ro.Status.CurrentStepIndex)
	require.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, map[string]int32{"v1": 2, "v2": 2}, e.replicaSets())
	requeue := e.sync()
	assert.InDelta(t, 60*time.Second, requeue, float64(time.Second), "a timed pause requeues for its remaining time")

	e.c.Clock.Step(61 * time.Second)
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, v1beta1.CanaryStepStateCompleted, ro.Status.CurrentStepState)
	assert.Equal(t, int32(3), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.FinalisingStepTypeEnd, ro.Status.CanaryStatus.FinalisingStep)
	assert.Equal(t, corev1.ConditionFalse, condition(ro, v1beta1.RolloutConditionProgressing).Status)
	assert.Equal(t, v1beta1.ProgressingReasonCompleted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())

	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused, "never left paused")
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy, "strategy restored exactly")
	assert.False(t, workload.IsHeld(got))

	for _, reason := range []string{"ReleaseStarted", "StepUpgrading", "ScalingReplicaSet", "StepUpgraded", "StepPaused", "Promoted", "StepCompleted", "StepsCompleted", "WorkloadReleased", "Succeeded"} {
		assert.True(t, e.hadEvent(reason), "event %s", reason)
	}
}

func TestPromoteIsAppliedExactlyOnce(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("1", -1), fakecluster.Step("2", -1), fakecluster.Step("3", -1), fakecluster.Step("4", -1)), webDeployment())
	e.startRelease()

	// A promote for a step that is no longer current is stale.
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 2})
	e.sync()
	ro := e.ro()
	assert.Nil(t, ro.Status.PendingAction)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.True(t, e.hadEvent("ActionIgnored"))

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	ro = e.ro()
	assert.Equal(t, int32(2), ro.Status.CurrentStepIndex, "one promote, one step")
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)

	// The same request delivered again (a retry, a restart) is stale now.
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	assert.Equal(t, int32(2), e.ro().Status.CurrentStepIndex)

	// A promote that arrives while the step is still upgrading is dropped.
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 2})
	e.sync()
	e.settle()
	assert.Equal(t, int32(3), e.ro().Status.CurrentStepIndex)
}

// TestPromoteEntersTheNextStepInTheWriteThatAppliesIt: the status write that
// applies a promote also records the step it enters, so the workload moves
// one write after the promote, and not before that write has landed.
func TestPromoteEntersTheNextStepInTheWriteThatAppliesIt(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.startRelease()
	atStep1 := e.replicaSets()
	writes := &statusLog{}
	e.r.Observer = writes

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.c.FailStatusWrites(fakecluster.FaultConflict)
	_, err := e.r.Sync(context.Background(), fakecluster.Namespace+"/ro")
	require.Error(t, err, "the write that applies the promote got a 409")
	e.c.Refresh()
	assert.Equal(t, atStep1, e.replicaSets(), "nothing moves before the promote is recorded")
	assert.NotNil(t, e.ro().Status.PendingAction, "the promote waits to be applied again")

	e.sync()
	require.NotEmpty(t, writes.statuses)
	first := writes.statuses[0]
	assert.Nil(t, first.PendingAction, "the first write applies the promote")
	assert.Equal(t, int32(2), first.CurrentStepIndex, "and records the step it enters")
	assert.Equal(t, v1beta1.CanaryStepStateUpgrade, first.CurrentStepState)
	assert.Equal(t, int32(2), e.replicaSets()["v2"], "the same Sync then acts on that record")
	assert.True(t, e.hadEvent("Promoted"))
	assert.True(t, e.hadEvent("StepCompleted"))
}

// statusLog is an Observer that keeps every status written, in order.
type statusLog struct {
	statuses []*v1beta1.RolloutStatus
}

func (l *statusLog) ReconcileDone(time.Duration) {}

func (l *statusLog) StatusWritten(_ *v1beta1.Rollout, _, cur *v1beta1.RolloutStatus, _ time.Time) {
	l.statuses = append(l.statuses, cur.DeepCopy())
}

func (l *statusLog) Forget(string, string) {}

func TestPromoteFull(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1, Full: true})
	e.sync()
	assert.Equal(t, v1beta1.CanaryStepStateCompleted, e.ro().Status.CurrentStepState)
	assert.Equal(t, int32(3), e.ro().Status.CurrentStepIndex)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
	assert.False(t, e.c.Deployment("web").Spec.Paused)
}

func TestActionWithoutReleaseIsDropped(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.settle()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, Reason: "late"})
	e.sync()
	ro := e.ro()
	assert.Nil(t, ro.Status.PendingAction)
	assert.Nil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.True(t, e.hadEvent("ActionIgnored"))
}

func TestSpecPausedStopsProgress(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("1", 0), fakecluster.Step("3", 0), fakecluster.Step("100%", -1)), webDeployment())
	e.settle()
	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Strategy.Paused = true })
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonPaused, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, map[string]int32{"v1": 4}, e.replicaSets(), "nothing moves while paused")
	assert.True(t, e.hadEvent("Paused"))

	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Strategy.Paused = false })
	e.settle()
	ro = e.ro()
	assert.True(t, e.hadEvent("Resumed"))
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase, "pause-less steps run to the end")
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
}

// rewritingRollout opts into the abort that writes the stable template back.
func rewritingRollout() *v1beta1.Rollout {
	ro := webRollout()
	ro.Spec.Strategy.AbortRewritesTemplate = true
	return ro
}

func TestAbortRewritesTemplateWhenAskedTo(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, rewritingRollout(), d)
	e.startRelease()
	canary := e.ro().Status.CanaryStatus.CanaryRevision

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1, Reason: "latency is up"})
	e.sync()
	ro := e.ro()
	require.NotNil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.AbortReasonUser, ro.Status.Abort.Reason)
	assert.Equal(t, "latency is up", ro.Status.Abort.Message)
	assert.Equal(t, canary, ro.Status.Abort.Revision)
	assert.Equal(t, int32(1), ro.Status.Abort.StepIndex)
	assert.Equal(t, e.c.Clock.Now().Unix(), ro.Status.Abort.Time.Unix())
	assert.Nil(t, ro.Status.PendingAction)

	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, corev1.ConditionFalse, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	got := e.c.Deployment("web")
	assert.Equal(t, "v1", got.Spec.Template.Spec.Containers[0].Image, "the workload is back on the stable revision")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())
	assert.True(t, e.hadEvent("Aborted"))
	assert.True(t, e.hadEvent("WorkloadRolledBack"))
	assert.NotNil(t, ro.Status.Abort, "the abort stays on record")
}

// TestStaleWorkloadCacheStartsNothing: right after the controller hands a
// workload back, the workload cache may still show it held; the Rollout
// must not take that for a new release.
func TestStaleWorkloadCacheStartsNothing(t *testing.T) {
	e := newEnv(t, rewritingRollout(), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 1})
	ctx := context.Background()
	for range 10 {
		_, err := e.r.Sync(ctx, fakecluster.Namespace+"/ro")
		require.NoError(t, err)
		// Only the Rollout cache moves on; the Deployment cache stays behind.
		e.c.RefreshRollouts()
		if e.ro().Status.Phase != v1beta1.RolloutPhaseProgressing {
			break
		}
		if e.ro().Status.CanaryStatus.FinalisingStep == v1beta1.FinalisingStepResumeWorkload {
			e.c.Refresh() // the rollback must be seen before the hand-back
		}
	}
	for range 3 {
		_, err := e.r.Sync(ctx, fakecluster.Namespace+"/ro")
		require.NoError(t, err)
		e.c.RefreshRollouts()
	}
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase, "no release starts from a stale cache")
	e.c.Refresh()
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, "v1", e.c.Deployment("web").Spec.Template.Spec.Containers[0].Image)
}

func TestAbortWhileFinalising(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, rewritingRollout(), d)
	e.startRelease()
	// One new pod never becomes ready, so bringing every pod over never ends.
	e.c.Unready[e.ro().Status.CanaryStatus.CanaryRevision] = 1
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1, Full: true})
	e.settle()
	ro := e.ro()
	require.Equal(t, v1beta1.ProgressingReasonFinalising, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	require.Equal(t, v1beta1.FinalisingStepResumeWorkload, ro.Status.CanaryStatus.FinalisingStep)

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, StepIndex: 3, Reason: "stuck"})
	e.settle()
	ro = e.ro()
	require.NotNil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	got := e.c.Deployment("web")
	assert.Equal(t, "v1", got.Spec.Template.Spec.Containers[0].Image)
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
}

func TestRevertCancels(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.startRelease()
	e.c.SetImage(v1beta1.KindDeployment, "web", "v1", true)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, ReasonCancelled, condition(ro, v1beta1.RolloutConditionSucceeded).Reason)
	assert.Nil(t, ro.Status.Abort)
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.Equal(t, int32(4), e.replicaSets()["v1"])
	assert.True(t, e.hadEvent("Cancelled"))
}

func TestNewRevisionRestartsAtStepOne(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	ro := e.ro()
	require.Equal(t, int32(2), ro.Status.CurrentStepIndex)
	stable, v2 := ro.Status.CanaryStatus.StableRevision, ro.Status.CanaryStatus.CanaryRevision

	e.c.SetImage(v1beta1.KindDeployment, "web", "v3", true)
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, int32(1), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, stable, ro.Status.CanaryStatus.StableRevision, "the stable revision stays")
	assert.NotEqual(t, v2, ro.Status.CanaryStatus.CanaryRevision)
	assert.True(t, e.hadEvent("NewRevision"))
	rss := e.replicaSets()
	assert.Equal(t, int32(1), rss["v3"])
	assert.Equal(t, int32(1), rss["v2"], "the intermediate revision shrinks first")
	assert.Equal(t, int32(2), rss["v1"], "the stable revision keeps its pods")
}

func TestProgressDeadlineAborts(t *testing.T) {
	d := webDeployment()
	ro := webRollout()
	deadline := int32(30)
	ro.Spec.ProgressDeadlineSeconds = &deadline
	e := newEnv(t, ro, d)
	e.settle()
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.c.Unready[workload.ComputeHash(&e.c.Deployment("web").Spec.Template, nil)] = 10
	e.settle()
	ro = e.ro()
	require.Equal(t, v1beta1.CanaryStepStateUpgrade, ro.Status.CurrentStepState)
	requeue := e.sync()
	assert.LessOrEqual(t, requeue, 30*time.Second)
	assert.Nil(t, e.ro().Status.Abort)

	e.c.Clock.Step(31 * time.Second)
	e.sync()
	ro = e.ro()
	require.NotNil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.AbortReasonProgressDeadline, ro.Status.Abort.Reason)
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseAborted, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Equal(t, "v2", e.c.Deployment("web").Spec.Template.Spec.Containers[0].Image, "the template stays")
	assert.True(t, e.c.Deployment("web").Spec.Paused, "the hold stays")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())
}

func TestMetricFailureAborts(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.analyzer.verdict = AnalysisFailed
	e.startRelease()
	ro := e.ro()
	require.NotNil(t, ro.Status.Abort)
	assert.Equal(t, v1beta1.AbortReasonMetricCheck, ro.Status.Abort.Reason)
	assert.Equal(t, "error rate 0.3 above 0.05", ro.Status.Abort.Message)
	assert.Equal(t, v1beta1.RolloutPhaseAborted, ro.Status.Phase)
	assert.Equal(t, "v2", e.c.Deployment("web").Spec.Template.Spec.Containers[0].Image, "the template stays")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())

	// The metric would fail again, but nothing starts while the template is the same.
	e.settle()
	assert.Equal(t, v1beta1.RolloutPhaseAborted, e.ro().Status.Phase)
	assert.Equal(t, 1, e.analyzer.calls, "no second release, no second analysis")
}

func TestMetricAnalysisRunningWaits(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.analyzer.verdict = AnalysisRunning
	e.startRelease()
	ro := e.ro()
	assert.Equal(t, v1beta1.CanaryStepStateMetricsAnalysis, ro.Status.CurrentStepState)
	assert.Equal(t, 10*time.Second, e.sync())
}

func TestMetricAnalysisPausesUntilResumed(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.analyzer.verdict = AnalysisPaused
	e.analyzer.results = []v1beta1.MetricCheckResult{{
		Name: "error-rate", StepIndex: 1, Phase: v1beta1.MetricCheckError, Errors: 5, ConsecutiveErrors: 5,
		Message: "5 measurements in a row could not be taken (consecutiveErrorLimit 4); last error: connection refused",
	}}
	e.startRelease()
	ro := e.ro()
	assert.True(t, ro.Spec.Strategy.Paused, "the controller pauses the release through spec.strategy.paused")
	assert.Equal(t, v1beta1.ProgressingReasonPaused, condition(ro, v1beta1.RolloutConditionProgressing).Reason)
	assert.Contains(t, ro.Status.Message, "Paused at step 1/3 by metric checks (check error-rate: 5 measurements in a row could not be taken")
	assert.Contains(t, condition(ro, v1beta1.RolloutConditionProgressing).Message, "error rate 0.3 above 0.05", "the condition says why, in the analyzer's words")
	assert.Equal(t, v1beta1.CanaryStepStateMetricsAnalysis, ro.Status.CurrentStepState)
	assert.Nil(t, ro.Status.Abort, "a pause never aborts")
	assert.True(t, e.hadEvent("AnalysisPaused"))
	calls := e.analyzer.calls
	e.settle()
	assert.Equal(t, calls, e.analyzer.calls, "no measurement while paused")

	e.analyzer.verdict = AnalysisPassed
	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Strategy.Paused = false })
	e.sync()
	require.NotEmpty(t, e.analyzer.seen)
	resumed := e.analyzer.seen[len(e.analyzer.seen)-1]
	require.Len(t, resumed, 1)
	assert.Equal(t, v1beta1.MetricCheckRunning, resumed[0].Phase, "resume lets the paused check measure again")
	assert.Zero(t, resumed[0].ConsecutiveErrors)
	assert.EqualValues(t, 5, resumed[0].Errors, "what was measured stays")
	e.settle()
	assert.Equal(t, v1beta1.CanaryStepStatePaused, e.ro().Status.CurrentStepState, "step 1 passed its checks and waits for promote")
}

func TestPromoteDuringMetricAnalysis(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.analyzer.verdict = AnalysisRunning
	e.analyzer.results = []v1beta1.MetricCheckResult{{Name: "error-rate", StepIndex: 1, Phase: v1beta1.MetricCheckRunning, Count: 2,
		Measurements: []v1beta1.Measurement{{Phase: v1beta1.MetricCheckSuccessful, Value: "0"}}}}
	e.startRelease()
	require.Equal(t, v1beta1.CanaryStepStateMetricsAnalysis, e.ro().Status.CurrentStepState)
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.analyzer.verdict = AnalysisPassed
	e.sync()
	ro := e.ro()
	assert.True(t, e.hadEvent("Promoted"))
	require.Len(t, ro.Status.AnalysisResults, 1)
	assert.Equal(t, v1beta1.MetricCheckSkipped, ro.Status.AnalysisResults[0].Phase)
	assert.Equal(t, "promoted by alice after 2 measurements", ro.Status.AnalysisResults[0].Message)
	e.sync()
	ro = e.ro()
	assert.EqualValues(t, 2, ro.Status.CurrentStepIndex)
	require.NotEmpty(t, ro.Status.AnalysisResults)
	assert.Equal(t, v1beta1.MetricCheckSkipped, ro.Status.AnalysisResults[0].Phase, "the override stays recorded in later steps")
	assert.Empty(t, ro.Status.AnalysisResults[0].Measurements, "earlier steps keep no measurements")
}

func TestDisableMidRelease(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.startRelease()
	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = true })
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseDisabled, ro.Status.Phase)
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused, "a disabled Rollout never leaves its workload paused")
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.False(t, workload.IsHeld(got))
	assert.NotContains(t, got.Labels, v1beta1.WorkloadControlLabel)
	assert.Equal(t, "v2", got.Spec.Template.Spec.Containers[0].Image, "the release is handed over, not rolled back")

	e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Disabled = false })
	e.settle()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, e.ro().Status.Phase)
	assert.Equal(t, "true", e.c.Deployment("web").Labels[v1beta1.WorkloadControlLabel])
}

func TestDeleteMidRelease(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.startRelease()
	ro := e.ro()
	now := metav1.NewTime(e.c.Clock.Now())
	ro.DeletionTimestamp = &now
	e.c.UpdateRollout(ro)
	e.settle()
	ro = e.ro()
	assert.NotContains(t, ro.Finalizers, Finalizer, "the finalizer goes once the workload is released")
	assert.Equal(t, v1beta1.RolloutPhaseTerminating, ro.Status.Phase)
	assert.Equal(t, v1beta1.TerminatingReasonCompleted, condition(ro, v1beta1.RolloutConditionTerminating).Reason)
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.NotContains(t, got.Labels, v1beta1.WorkloadControlLabel)
}

func TestStepsChangeRecomputesStep(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("1", -1), fakecluster.Step("2", -1), fakecluster.Step("100%", -1)), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	require.Equal(t, int32(2), e.ro().Status.CurrentStepIndex)
	require.Equal(t, map[string]int32{"v1": 2, "v2": 2}, e.replicaSets())

	// Same number of steps, new values: step 1 now wants 3 pods, more than the 2 released.
	e.updateSpec(func(ro *v1beta1.Rollout) {
		ro.Spec.Strategy.Canary.Steps = []v1beta1.CanaryStep{fakecluster.Step("3", -1), fakecluster.Step("75%", -1), fakecluster.Step("100%", -1)}
	})
	e.settle()
	ro := e.ro()
	assert.True(t, e.hadEvent("StepsChanged"))
	assert.Equal(t, int32(2), ro.Status.CurrentStepIndex, "the current step (3 pods) keeps the 2 released pods")
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, map[string]int32{"v1": 1, "v2": 3}, e.replicaSets())
	assert.Equal(t, stepsHash(ro), ro.Status.CanaryStatus.RolloutHash)
}

func TestNothingToReleaseHandsBack(t *testing.T) {
	d := webDeployment()
	e := newEnv(t, webRollout(), d)
	e.settle()
	// A rollout-id change alone is held by the webhook but releases nothing.
	dep := e.c.Deployment("web")
	held := dep.DeepCopy()
	held.Annotations = map[string]string{v1beta1.RolloutIDAnnotation: "r2"}
	_, err := workload.HoldDeployment(dep, held)
	require.NoError(t, err)
	_, err = e.c.Kube.AppsV1().Deployments(fakecluster.Namespace).Update(context.Background(), held, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.c.Refresh()
	e.settle()
	got := e.c.Deployment("web")
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, e.ro().Status.Phase)
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.True(t, e.hadEvent("NothingToRelease"))
}

func TestConflictingRollout(t *testing.T) {
	older := webRollout()
	older.Name = "first"
	older.UID = "uid-first"
	older.CreationTimestamp = metav1.NewTime(older.CreationTimestamp.Add(-time.Hour))
	e := newEnv(t, webRollout(), webDeployment(), older)
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseInitial, ro.Status.Phase)
	assert.Contains(t, ro.Status.Message, "already released by Rollout first")
}

func TestWorkloadMissing(t *testing.T) {
	e := newEnv(t, webRollout())
	e.settle()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseInitial, ro.Status.Phase)
	assert.Contains(t, ro.Status.Message, "not found")
}

func TestStatefulSetRelease(t *testing.T) {
	s := fakecluster.NewStatefulSet("db", "v1", 4)
	ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db", fakecluster.Step("1", 0), fakecluster.Step("50%", 0), fakecluster.Step("100%", -1))
	e := newEnv(t, ro, s)
	e.settle()
	e.c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	got := e.c.StatefulSet("db")
	assert.Equal(t, s.Spec.UpdateStrategy, got.Spec.UpdateStrategy, "partition restored")
	assert.Equal(t, got.Status.UpdateRevision, got.Status.CurrentRevision)
	for _, reason := range []string{"PartitionSet", "WorkloadReleased", "Succeeded"} {
		assert.True(t, e.hadEvent(reason), reason)
	}
}

func TestDaemonSetRelease(t *testing.T) {
	ds := fakecluster.NewDaemonSet("agent", "v1", "1")
	ro := fakecluster.NewRollout("ro", v1beta1.KindDaemonSet, "agent", fakecluster.Step("1", -1), fakecluster.Step("100%", -1))
	e := newEnv(t, ro, ds)
	e.settle()
	e.c.SetImage(v1beta1.KindDaemonSet, "agent", "v2", true)
	e.settle()
	ro = e.ro()
	require.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, int32(1), ro.Status.CanaryStatus.CanaryReplicas)
	assert.Equal(t, int32(3), ro.Status.CanaryStatus.StableReplicas)
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, ds.Spec.UpdateStrategy, e.c.DaemonSet("agent").Spec.UpdateStrategy)
	pods := e.c.Pods(e.c.DaemonSet("agent").UID, appsv1.ControllerRevisionHashLabelKey)
	assert.Equal(t, int32(4), pods[ro.Status.CanaryStatus.CanaryRevision])
}

func TestExtraCanaryDeploymentRelease(t *testing.T) {
	d := webDeployment()
	ro := webRollout(fakecluster.Step("1", 0), fakecluster.Step("100%", -1))
	ro.Spec.Strategy.Canary.EnableExtraWorkloadForCanary = true
	e := newEnv(t, ro, d)
	e.settle()
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
	ro = e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, corev1.ConditionTrue, condition(ro, v1beta1.RolloutConditionSucceeded).Status)
	got := e.c.Deployment("web")
	assert.False(t, got.Spec.Paused)
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy)
	assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
	_, err := e.c.Kube.AppsV1().Deployments(fakecluster.Namespace).Get(context.Background(), deployment.CanaryName("web"), metav1.GetOptions{})
	assert.Error(t, err, "the canary Deployment is gone")
	assert.True(t, e.hadEvent("CanaryCreated"))
	assert.True(t, e.hadEvent("CanaryDeleted"))
}

func TestReleasedGuardsAgainstStaleWorkloadCaches(t *testing.T) {
	succeeded := []v1beta1.RolloutCondition{{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionTrue}}
	tests := []struct {
		name   string
		status v1beta1.RolloutStatus
		want   bool
	}{
		{"never released", v1beta1.RolloutStatus{}, false},
		{"this revision succeeded", v1beta1.RolloutStatus{Conditions: succeeded,
			CanaryStatus: &v1beta1.CanaryStatus{CanaryRevision: "v2"}}, true},
		{"another revision succeeded", v1beta1.RolloutStatus{Conditions: succeeded,
			CanaryStatus: &v1beta1.CanaryStatus{CanaryRevision: "v1"}}, false},
		{"this revision was aborted", v1beta1.RolloutStatus{Conditions: succeeded, Abort: &v1beta1.RolloutAbortStatus{},
			CanaryStatus: &v1beta1.CanaryStatus{CanaryRevision: "v2"}}, false},
		{"this revision is still in progress", v1beta1.RolloutStatus{
			CanaryStatus: &v1beta1.CanaryStatus{CanaryRevision: "v2"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, released(&tt.status, "v2"))
		})
	}
}

// A promote with toStepIndex (or Kruise's nextStepIndex patch, recorded the
// same way) moves the release to that step, forward or back, and the step
// starts over: its pods, then its pause.
func TestJumpToAStep(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("25%", -1), fakecluster.Step("50%", -1), fakecluster.Step("75%", -1), fakecluster.Step("100%", -1)), webDeployment())
	e.startRelease()
	require.Equal(t, int32(1), e.ro().Status.CurrentStepIndex)

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1, ToStepIndex: ptr.To[int32](3)})
	e.settle()
	ro := e.ro()
	assert.Nil(t, ro.Status.PendingAction)
	assert.Equal(t, int32(3), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Equal(t, int32(4), ro.Status.CanaryStatus.NextStepIndex)
	assert.Equal(t, int32(3), e.replicaSets()["v2"])
	assert.True(t, e.hadEvent("Promoted"))

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 3, ToStepIndex: ptr.To[int32](2)})
	e.settle()
	ro = e.ro()
	assert.Equal(t, int32(2), ro.Status.CurrentStepIndex, "a jump back")
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)

	// A jump recorded for a step that is no longer current is dropped.
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1, ToStepIndex: ptr.To[int32](4)})
	e.settle()
	assert.Equal(t, int32(2), e.ro().Status.CurrentStepIndex)
}

// Kruise waits at a last step short of 100% that says pause {}, even when its
// share rounds up to every pod (90% of 4); and after the release,
// observedWorkloadGeneration is the Deployment's generation.
func TestLastStepShortOf100WaitsForPromote(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("50%", -1), fakecluster.Step("90%", -1)), webDeployment())
	e.startRelease()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	e.settle()
	ro := e.ro()
	require.Equal(t, v1beta1.RolloutPhaseProgressing, ro.Status.Phase)
	assert.Equal(t, int32(2), ro.Status.CurrentStepIndex)
	assert.Equal(t, v1beta1.CanaryStepStatePaused, ro.Status.CurrentStepState)
	assert.Contains(t, ro.Status.Message, "waiting for promote")

	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 2})
	e.settle()
	ro = e.ro()
	require.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
	assert.Equal(t, e.c.Deployment("web").Generation, ro.Status.CanaryStatus.ObservedWorkloadGeneration)
}
