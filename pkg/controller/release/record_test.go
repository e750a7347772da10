package release

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

// These tests check the package's invariant, record then act, against a
// fake Rollout API that answers 409 on a stale resourceVersion: one status
// write of a release is made to fail (refused with a 409, or stored with
// its answer lost), at every position in turn, and after every pass the
// workload must not be ahead of what status records.

// trySync runs one reconcile like a worker does: an error is retried later.
func (e *env) trySync() error {
	e.t.Helper()
	_, err := e.r.Sync(context.Background(), fakecluster.Namespace+"/ro")
	e.c.Refresh()
	e.events = append(e.events, e.c.Events()...)
	return err
}

// settleThroughFaults reconciles and lets the workload controllers act until
// nothing moves, checking the invariants after every pass, and tolerating
// the errors that injected faults cause.
func (e *env) settleThroughFaults() {
	e.t.Helper()
	quiet := 0
	for range 120 {
		before, sizes := e.ro().Status.DeepCopy(), e.c.ReplicaSetSizes()
		err := e.trySync()
		if err != nil && !apierrors.IsConflict(err) {
			require.ErrorContains(e.t, err, "injected", "only injected faults may fail a pass")
		}
		e.checkWorkloadNotAhead()
		e.c.Settle()
		e.checkWorkloadNotAhead()
		if err == nil && equalStatus(before, &e.ro().Status) && maps.Equal(sizes, e.c.ReplicaSetSizes()) {
			if quiet++; quiet == 2 {
				return
			}
		} else {
			quiet = 0
		}
	}
	e.t.Fatalf("the Rollout never settled: %+v", e.ro().Status)
}

// checkWorkloadNotAhead asserts what status must always cover: the new
// revision's pods never exceed the step status records, and the workload's
// template is rolled back only once status records an abort (or a revert).
func (e *env) checkWorkloadNotAhead() {
	e.t.Helper()
	ro := releaseView(e.ro())
	st := &ro.Status
	canary := e.replicaSets()["v2"]
	if isBlueGreen(ro) {
		e.checkStableKept(st)
	}
	image := e.c.Deployment("web").Spec.Template.Spec.Containers[0].Image
	if image == "v1" && st.CanaryStatus != nil && st.CanaryStatus.CanaryRevision != "" && st.Phase == v1beta1.RolloutPhaseProgressing {
		require.NotNil(e.t, st.Abort, "the template was rolled back before status recorded an abort: %+v", st)
	}
	if st.Phase != v1beta1.RolloutPhaseProgressing || st.CanaryStatus == nil {
		return
	}
	switch progressingReason(st) {
	case v1beta1.ProgressingReasonFinalising, v1beta1.ProgressingReasonCancelling:
		return
	}
	steps := ro.Spec.Strategy.Canary.Steps
	i := st.CanaryStatus.CurrentStepIndex
	require.True(e.t, i >= 1 && int(i) <= len(steps), "step index %d", i)
	allowed, err := workload.StepReplicas(&steps[i-1], 4)
	require.NoError(e.t, err)
	require.LessOrEqual(e.t, canary, allowed,
		"revision v2 has %d pods while status records step %d (%s), which allows %d", canary, i, st.CanaryStatus.CurrentStepState, allowed)
}

// checkStableKept asserts what blue-green promises: the stable revision
// keeps every replica until status records that traffic has switched and
// the old revision may go.
func (e *env) checkStableKept(st *v1beta1.RolloutStatus) {
	e.t.Helper()
	if st.Phase != v1beta1.RolloutPhaseProgressing || st.CanaryStatus == nil {
		return
	}
	stages := stagesOf(finaliseSuccess, true)
	if progressingReason(st) == v1beta1.ProgressingReasonFinalising && st.Abort == nil &&
		slices.Index(stages, st.CanaryStatus.FinalisingStep) >= slices.Index(stages, v1beta1.FinalisingStepScaleDownStable) {
		return
	}
	require.Equal(e.t, int32(4), e.replicaSets()["v1"],
		"the stable revision lost replicas while status records %s/%s %s", progressingReason(st), st.CanaryStatus.CurrentStepState, st.CanaryStatus.FinalisingStep)
}

// stepHistory is the sequence of steps that status went through, without repeats.
func stepHistory(writes []v1beta1.RolloutStatus) []int32 {
	var out []int32
	for _, st := range writes {
		if st.BlueGreenStatus != nil {
			st.CanaryStatus = &v1beta1.CanaryStatus{CommonStatus: st.BlueGreenStatus.CommonStatus}
		}
		if st.CanaryStatus == nil || st.Phase != v1beta1.RolloutPhaseProgressing {
			continue
		}
		if i := st.CanaryStatus.CurrentStepIndex; len(out) == 0 || out[len(out)-1] != i {
			out = append(out, i)
		}
	}
	return out
}

// scenario drives one release; it returns how many status writes it took.
type scenario struct {
	name    string
	rollout func() *v1beta1.Rollout
	// drive plays the release after the env settled on v1.
	drive func(e *env)
	// check asserts the end state.
	check func(t *testing.T, e *env)
}

func faultScenarios() []scenario {
	deadline := int32(30)
	return []scenario{{
		name:    "release with a promote and a timed pause",
		rollout: func() *v1beta1.Rollout { return webRollout() },
		drive: func(e *env) {
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.settleThroughFaults()
			e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
			e.settleThroughFaults()
			e.c.Clock.Step(61 * time.Second)
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			ro := e.ro()
			assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
			assert.Equal(t, v1beta1.ProgressingReasonCompleted, progressingReason(&ro.Status))
			assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
			assert.Equal(t, []int32{1, 2, 3}, stepHistory(e.c.StatusWrites), "each step once, in order")
		},
	}, {
		name:    "user pause right after a promote",
		rollout: func() *v1beta1.Rollout { return webRollout() },
		drive: func(e *env) {
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.settleThroughFaults()
			e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
			_ = e.trySync() // applies the promote
			_ = e.trySync() // enters step 2
			e.updateSpec(func(ro *v1beta1.Rollout) { ro.Spec.Strategy.Paused = true })
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			ro := e.ro()
			assert.Equal(t, v1beta1.ProgressingReasonPaused, progressingReason(&ro.Status))
			assert.Contains(t, ro.Status.Message, fmt.Sprintf("Paused at step %d/3", ro.Status.CurrentStepIndex))
		},
	}, {
		name: "progress deadline",
		rollout: func() *v1beta1.Rollout {
			ro := webRollout()
			ro.Spec.ProgressDeadlineSeconds = &deadline
			return ro
		},
		drive: func(e *env) {
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.c.Unready[workload.ComputeHash(&e.c.Deployment("web").Spec.Template, nil)] = 10
			e.settleThroughFaults()
			e.c.Clock.Step(31 * time.Second)
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			ro := e.ro()
			require.NotNil(t, ro.Status.Abort, "the abort reason is never lost")
			assert.Equal(t, v1beta1.AbortReasonProgressDeadline, ro.Status.Abort.Reason)
			assertAbortedOnStable(t, e)
		},
	}, {
		name:    "failed metric check",
		rollout: func() *v1beta1.Rollout { return webRollout() },
		drive: func(e *env) {
			e.analyzer.verdict = AnalysisFailed
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			ro := e.ro()
			require.NotNil(t, ro.Status.Abort, "the abort reason is never lost")
			assert.Equal(t, v1beta1.AbortReasonMetricCheck, ro.Status.Abort.Reason)
			assertAbortedOnStable(t, e)
		},
	}, {
		name:    "blue-green release with a promote",
		rollout: blueGreenRollout,
		drive: func(e *env) {
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.settleThroughFaults()
			e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			ro := e.ro()
			assert.Equal(t, v1beta1.RolloutPhaseHealthy, ro.Status.Phase)
			assert.Equal(t, v1beta1.ProgressingReasonCompleted, progressingReason(&ro.Status))
			assert.Equal(t, map[string]int32{"v1": 0, "v2": 4}, e.replicaSets())
			assert.Equal(t, []int32{1, 2}, stepHistory(e.c.StatusWrites), "each step once, in order")
		},
	}, {
		name:    "blue-green abort",
		rollout: blueGreenRollout,
		drive: func(e *env) {
			e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
			e.settleThroughFaults()
			e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionAbort, Reason: "bad build"})
			e.settleThroughFaults()
		},
		check: func(t *testing.T, e *env) {
			require.NotNil(t, e.ro().Status.Abort, "the abort reason is never lost")
			assertAbortedOnStable(t, e)
		},
	}}
}

// assertAbortedOnStable: an abort keeps the workload's template as its owner
// wrote it and every pod on the stable revision.
func assertAbortedOnStable(t *testing.T, e *env) {
	t.Helper()
	ro := e.ro()
	assert.Equal(t, v1beta1.RolloutPhaseAborted, ro.Status.Phase)
	assert.Equal(t, v1beta1.ProgressingReasonAborted, progressingReason(&ro.Status))
	assert.Equal(t, "v2", e.c.Deployment("web").Spec.Template.Spec.Containers[0].Image, "the template stays as written")
	assert.Equal(t, map[string]int32{"v1": 4, "v2": 0}, e.replicaSets())
}

// TestOneFailedStatusWriteAtEveryPosition fails the n-th status write of each
// scenario, for every n the scenario has, with each kind of fault.
func TestOneFailedStatusWriteAtEveryPosition(t *testing.T) {
	for _, sc := range faultScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			clean := newEnv(t, sc.rollout(), webDeployment())
			clean.settleThroughFaults()
			start := len(clean.c.StatusWrites)
			sc.drive(clean)
			sc.check(t, clean)
			writes := len(clean.c.StatusWrites) - start
			require.Positive(t, writes)

			for _, fault := range []fakecluster.Fault{fakecluster.FaultConflict, fakecluster.FaultDroppedResponse} {
				for n := range writes {
					t.Run(fmt.Sprintf("fault %d at write %d of %d", fault, n+1, writes), func(t *testing.T) {
						e := newEnv(t, sc.rollout(), webDeployment())
						e.settleThroughFaults()
						e.c.FailStatusWrites(append(make([]fakecluster.Fault, n), fault)...)
						sc.drive(e)
						sc.check(t, e)
					})
				}
			}
		})
	}
}

// TestDeadlineAbortIsRecordedBeforeRollback is the case from the field: a
// progress deadline used to roll the workload back in the pass that decided
// the abort, so a 409 on that pass's status write lost the reason and the
// next pass took the rolled-back template for a revert.
func TestDeadlineAbortIsRecordedBeforeRollback(t *testing.T) {
	ro := webRollout()
	deadline := int32(30)
	ro.Spec.ProgressDeadlineSeconds = &deadline
	e := newEnv(t, ro, webDeployment())
	e.settle()
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.c.Unready[workload.ComputeHash(&e.c.Deployment("web").Spec.Template, nil)] = 10
	e.settle()
	e.c.Clock.Step(31 * time.Second)

	before := e.replicaSets()
	e.c.FailStatusWrites(fakecluster.FaultConflict)
	require.Error(t, e.trySync())
	e.c.Settle()
	assert.Equal(t, before, e.replicaSets(), "nothing rolled back by a pass whose record failed")

	// The abort is recorded first; the rollback runs from a pass that reads
	// the record (chained in the same Sync once the write succeeded; the
	// write-fault matrix checks every write position).
	e.c.FailStatusWrites(fakecluster.FaultNone, fakecluster.FaultConflict)
	require.Error(t, e.trySync())
	got := e.ro()
	require.NotNil(t, got.Status.Abort)
	assert.Equal(t, v1beta1.AbortReasonProgressDeadline, got.Status.Abort.Reason)

	e.settle()
	got = e.ro()
	assert.Contains(t, got.Status.Message, "ProgressDeadlineExceeded")
	assertAbortedOnStable(t, e)
}

// TestTimedPauseNeverEndsEarly: status keeps whole seconds, so a pause
// counted from a truncated time would end up to a second early.
func TestTimedPauseNeverEndsEarly(t *testing.T) {
	e := newEnv(t, webRollout(fakecluster.Step("1", 10), fakecluster.Step("100%", -1)), webDeployment())
	e.settle()
	e.c.Clock.Step(900 * time.Millisecond) // now is 12:00:00.9
	e.c.SetImage(v1beta1.KindDeployment, "web", "v2", true)
	e.settle()
	require.Equal(t, v1beta1.CanaryStepStatePaused, e.ro().Status.CurrentStepState)
	paused := e.c.Clock.Now()

	e.c.Clock.SetTime(paused.Add(9950 * time.Millisecond))
	e.settle()
	assert.Equal(t, int32(1), e.ro().Status.CurrentStepIndex, "9.95 s into a 10 s pause")
	e.c.Clock.SetTime(paused.Add(11 * time.Second))
	e.settle()
	assert.Equal(t, v1beta1.RolloutPhaseHealthy, e.ro().Status.Phase)
}
