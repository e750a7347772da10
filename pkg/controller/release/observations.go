package release

import (
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// DefaultObservationInterval spaces out status writes of one Rollout that only
// report what its pods are doing (replica counts and the message that quotes
// them). Every pod that is created, scheduled and turns ready changed them,
// and each write is an fsync'd etcd write, a watch event to every client and
// a reconcile; a release of a thousand workloads spent more on these than on
// its steps. A decision is never delayed: a status that records anything
// else is written at once, and the counts ride along.
const DefaultObservationInterval = 2 * time.Second

// onlyObservations reports whether built differs from read only in pod
// counts and the message.
func onlyObservations(read, built *v1beta1.RolloutStatus) bool {
	if read.CanaryStatus == nil || built.CanaryStatus == nil {
		return false
	}
	b := built.DeepCopy()
	b.Message = read.Message
	bc, rc := b.CanaryStatus, read.CanaryStatus
	bc.CanaryReplicas, bc.CanaryReadyReplicas = rc.CanaryReplicas, rc.CanaryReadyReplicas
	bc.StableReplicas, bc.StableReadyReplicas = rc.StableReplicas, rc.StableReadyReplicas
	return apiequality.Semantic.DeepEqual(read, b)
}

// lastWrites is when each Rollout's status was last written by this
// replica; a Rollout that is gone is forgotten.
type lastWrites struct {
	mu sync.Mutex
	at map[string]time.Time
}

// wait returns how long an observation-only write of key must wait to be
// interval after the last write.
func (l *lastWrites) wait(key string, now time.Time, interval time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, ok := l.at[key]
	if !ok {
		return 0
	}
	return max(0, interval-now.Sub(last))
}

func (l *lastWrites) wrote(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = map[string]time.Time{}
	}
	l.at[key] = now
}

func (l *lastWrites) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.at, key)
}
