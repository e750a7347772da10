package rollout

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// The lock of one workload admits one writer at a time, and the map of locks
// is empty again once every writer has finished.
func TestWorkloadClaimLock(t *testing.T) {
	w := newWorkloadClaims()
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := w.lock("default/Deployment/web")
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), maxInside.Load(), "one writer per workload at a time")
	assert.Empty(t, w.locks, "unused locks are dropped")
}

// Locks of different workloads are independent: holding one does not block another.
func TestWorkloadClaimLocksAreIndependent(t *testing.T) {
	w := newWorkloadClaims()
	unlockWeb := w.lock("default/Deployment/web")
	unlockDB := w.lock("default/Deployment/db") // would deadlock if shared
	unlockOther := w.lock("other/Deployment/web")
	assert.Len(t, w.locks, 3)
	unlockWeb()
	unlockDB()
	unlockOther()
	assert.Empty(t, w.locks)
}

func TestSameWorkload(t *testing.T) {
	web := rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "web"}
	cases := []struct {
		name string
		b    rollout.ObjectRef
		want bool
	}{
		{"identical", web, true},
		{"other apiVersion", rollout.ObjectRef{APIVersion: "apps/v1beta1", Kind: rollout.KindDeployment, Name: "web"}, true},
		{"other kind", rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindStatefulSet, Name: "web"}, false},
		{"other name", rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "api"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sameWorkload(web, tc.b))
		})
	}
}
