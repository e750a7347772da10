package release

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestPodCountsAreWrittenAtMostEveryInterval: a change of pod counts alone
// waits until ObservationInterval after the last write, and is written then;
// a decision is written at once, counts included.
func TestPodCountsAreWrittenAtMostEveryInterval(t *testing.T) {
	e := newEnv(t, webRollout(), webDeployment())
	e.r.ObservationInterval = 2 * time.Second
	e.startRelease()
	require.Equal(t, v1beta1.CanaryStepStatePaused, e.ro().Status.CurrentStepState)
	require.Equal(t, int32(3), e.ro().Status.CanaryStatus.StableReadyReplicas)
	version := e.ro().ResourceVersion

	// The stable ReplicaSet's pod 3 turns unready: counts only.
	stable := e.ro().Status.CanaryStatus.StableRevision
	e.c.Unready[stable] = 1
	e.c.Settle()
	requeue := e.sync()
	assert.Equal(t, version, e.ro().ResourceVersion, "counts alone are not written within the interval")
	assert.Equal(t, int32(3), e.ro().Status.CanaryStatus.StableReadyReplicas)
	assert.Greater(t, requeue, time.Duration(0))
	assert.LessOrEqual(t, requeue, 2*time.Second, "looked at again when the interval is over")

	e.c.Clock.Step(time.Second)
	e.sync()
	assert.Equal(t, version, e.ro().ResourceVersion, "still within the interval")

	e.c.Clock.Step(time.Second)
	e.sync()
	assert.NotEqual(t, version, e.ro().ResourceVersion, "written once the interval is over")
	assert.Equal(t, int32(2), e.ro().Status.CanaryStatus.StableReadyReplicas)

	// Right after that write, a count change and a promote: the decision
	// does not wait, and the counts go with it.
	delete(e.c.Unready, stable)
	e.c.Settle()
	e.request(v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 1})
	version = e.ro().ResourceVersion
	e.sync()
	assert.NotEqual(t, version, e.ro().ResourceVersion, "a decision is written at once")
	assert.Nil(t, e.ro().Status.PendingAction)
	// The write that applies the promote enters step 2 and observes.
	assert.Equal(t, int32(2), e.ro().Status.CurrentStepIndex)
	assert.Equal(t, int32(3), e.ro().Status.CanaryStatus.StableReadyReplicas, "the counts ride along with the next step")
}

func TestOnlyObservations(t *testing.T) {
	read := &v1beta1.RolloutStatus{Message: "a", CanaryStatus: &v1beta1.CanaryStatus{}}
	read.CanaryStatus.CurrentStepIndex = 1
	counts := read.DeepCopy()
	counts.Message = "b"
	counts.CanaryStatus.CanaryReadyReplicas = 2
	counts.CanaryStatus.StableReplicas = 3
	step := counts.DeepCopy()
	step.CanaryStatus.CurrentStepIndex = 2
	assert.True(t, onlyObservations(read, counts))
	assert.False(t, onlyObservations(read, step))
	assert.False(t, onlyObservations(&v1beta1.RolloutStatus{}, counts), "no release recorded yet")
}
