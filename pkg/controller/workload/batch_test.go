package workload

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func intOrStr(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

func TestStepReplicas(t *testing.T) {
	traffic := func(s string) *string { return &s }
	tests := []struct {
		name    string
		step    v1beta1.CanaryStep
		total   int32
		want    int32
		wantErr bool
	}{
		{name: "count", step: v1beta1.CanaryStep{Replicas: intOrStr("3")}, total: 10, want: 3},
		{name: "count above total is capped", step: v1beta1.CanaryStep{Replicas: intOrStr("30")}, total: 10, want: 10},
		{name: "percentage", step: v1beta1.CanaryStep{Replicas: intOrStr("20%")}, total: 10, want: 2},
		{name: "percentage rounds up", step: v1beta1.CanaryStep{Replicas: intOrStr("1%")}, total: 10, want: 1},
		{name: "half of an odd count rounds up", step: v1beta1.CanaryStep{Replicas: intOrStr("50%")}, total: 3, want: 2},
		{name: "100%", step: v1beta1.CanaryStep{Replicas: intOrStr("100%")}, total: 7, want: 7},
		{name: "zero workload", step: v1beta1.CanaryStep{Replicas: intOrStr("50%")}, total: 0, want: 0},
		{name: "no replicas follows traffic", step: v1beta1.CanaryStep{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: traffic("30%")}}, total: 10, want: 3},
		{name: "no replicas nor traffic is everything", step: v1beta1.CanaryStep{}, total: 10, want: 10},
		{name: "bad traffic", step: v1beta1.CanaryStep{TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: traffic("x")}}, total: 10, wantErr: true},
		{name: "bad percentage", step: v1beta1.CanaryStep{Replicas: intOrStr("1.5%")}, total: 10, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StepReplicas(&tt.step, tt.total)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSurgeAndUnavailable(t *testing.T) {
	tests := []struct {
		name                      string
		surge, unavailable        *intstr.IntOrString
		replicas                  int32
		wantSurge, wantUnavailabe int32
	}{
		{name: "defaults 25%/25% of 10", replicas: 10, wantSurge: 3, wantUnavailabe: 2},
		{name: "surge rounds up, unavailable down", surge: intOrStr("10%"), unavailable: intOrStr("10%"), replicas: 15, wantSurge: 2, wantUnavailabe: 1},
		{name: "counts", surge: intOrStr("2"), unavailable: intOrStr("0"), replicas: 5, wantSurge: 2, wantUnavailabe: 0},
		{name: "both zero makes unavailable 1", surge: intOrStr("0"), unavailable: intOrStr("0%"), replicas: 5, wantSurge: 0, wantUnavailabe: 1},
		{name: "rounding to zero both", surge: intOrStr("0%"), unavailable: intOrStr("10%"), replicas: 3, wantSurge: 0, wantUnavailabe: 1},
		{name: "unavailable capped at replicas", surge: intOrStr("0"), unavailable: intOrStr("9"), replicas: 4, wantSurge: 0, wantUnavailabe: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, u, err := SurgeAndUnavailable(tt.surge, tt.unavailable, tt.replicas)
			require.NoError(t, err)
			assert.Equal(t, tt.wantSurge, s, "surge")
			assert.Equal(t, tt.wantUnavailabe, u, "unavailable")
		})
	}
	_, _, err := SurgeAndUnavailable(intOrStr("x%"), nil, 3)
	require.Error(t, err)
}

func TestFailureToleranceAndBatchReady(t *testing.T) {
	assert.Equal(t, int32(0), FailureTolerance(nil, 10))
	assert.Equal(t, int32(2), FailureTolerance(intOrStr("2"), 10))
	assert.Equal(t, int32(1), FailureTolerance(intOrStr("10%"), 5), "10% of 5 rounds up to 1")
	assert.Equal(t, int32(0), FailureTolerance(intOrStr("bad%"), 5))

	tests := []struct {
		name                               string
		desired, updated, ready, tolerance int32
		want                               bool
	}{
		{name: "all ready", desired: 3, updated: 3, ready: 3, want: true},
		{name: "not all created", desired: 3, updated: 2, ready: 2, want: false},
		{name: "one unready, none tolerated", desired: 3, updated: 3, ready: 2, want: false},
		{name: "one unready, one tolerated", desired: 3, updated: 3, ready: 2, tolerance: 1, want: true},
		{name: "nothing ready never passes", desired: 2, updated: 2, ready: 0, tolerance: 2, want: false},
		{name: "nothing wanted", desired: 0, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, BatchReady(tt.desired, tt.updated, tt.ready, tt.tolerance))
		})
	}
}

func TestExpectations(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	e := NewExpectations(clock)
	state := map[string]struct {
		alive bool
		gen   int64
	}{"rs": {true, 1}, "pod": {true, 1}}
	lookup := func(obj string) (bool, int64, types.UID) {
		return state[obj].alive, state[obj].gen, "uid-" + types.UID(obj)
	}

	assert.False(t, e.Pending("owner", lookup), "nothing expected")
	e.ExpectGeneration("owner", "rs", 2)
	e.ExpectGone("owner", "pod", "uid-pod")
	assert.True(t, e.Pending("owner", lookup))

	state["rs"] = struct {
		alive bool
		gen   int64
	}{true, 2}
	assert.True(t, e.Pending("owner", lookup), "the pod is still there")
	state["pod"] = struct {
		alive bool
		gen   int64
	}{false, 0}
	assert.False(t, e.Pending("owner", lookup))

	e.ExpectGeneration("owner", "rs", 5)
	clock.Step(3 * time.Minute)
	assert.False(t, e.Pending("owner", lookup), "expired expectations stop blocking")

	e.ExpectGone("owner", "rs", "")
	e.Forget("owner")
	assert.False(t, e.Pending("owner", lookup))

	e.ExpectGone("owner", "rs", "uid-of-an-older-rs")
	assert.False(t, e.Pending("owner", lookup), "a successor with the same name is not the deleted instance")
	assert.False(t, e.Pending("owner", lookup))
}
