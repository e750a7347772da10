package workload

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// expectationTTL bounds how long a write may stay unseen before the
// controller stops waiting for it and trusts the cache again; informers do not
// lose events, so this only matters if the object changed in a way the
// expectation did not foresee (for example, it was deleted).
const expectationTTL = 2 * time.Minute

// Expectations remembers writes the controller made whose effect the informer
// caches do not show yet, so that a reconcile does not compute the next batch
// from a cache that still shows the previous one (which could, for example,
// delete one pod too many). This is the kube-controller-manager way of waiting
// for its own writes, without sleeping.
type Expectations struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	items map[string]map[string]expectation
}

type expectation struct {
	// generation is the least generation the object must show; 0 means it
	// must merely exist.
	generation int64
	// gone means the object must be absent or being deleted; uid, when set,
	// names the instance, so a successor with the same name does not count.
	gone bool
	uid  types.UID
	at   time.Time
}

// NewExpectations returns empty expectations; c is the clock that ages them.
func NewExpectations(c clock.PassiveClock) *Expectations {
	if c == nil {
		c = clock.RealClock{}
	}
	return &Expectations{clock: c, items: map[string]map[string]expectation{}}
}

// ExpectGeneration records that object (a namespace/name key) of owner should
// show at least generation; generation 0 expects it to exist.
func (e *Expectations) ExpectGeneration(owner, object string, generation int64) {
	e.set(owner, object, expectation{generation: generation})
}

// ExpectGone records that object of owner, the instance uid (if not empty),
// should be deleted or deleting.
func (e *Expectations) ExpectGone(owner, object string, uid types.UID) {
	e.set(owner, object, expectation{gone: true, uid: uid})
}

func (e *Expectations) set(owner, object string, exp expectation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp.at = e.clock.Now()
	if e.items[owner] == nil {
		e.items[owner] = map[string]expectation{}
	}
	e.items[owner][object] = exp
}

// Lookup reports what the cache shows of an object: whether it exists (and is
// not being deleted), its generation and its uid.
type Lookup func(object string) (alive bool, generation int64, uid types.UID)

// Pending reports whether any expectation of owner is not met by the cache,
// forgetting those that are met or have expired.
func (e *Expectations) Pending(owner string, lookup Lookup) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	pending := false
	now := e.clock.Now()
	for object, exp := range e.items[owner] {
		alive, generation, uid := lookup(object)
		gone := !alive || (exp.uid != "" && uid != exp.uid)
		met := (exp.gone && gone) || (!exp.gone && alive && generation >= exp.generation)
		if met || now.Sub(exp.at) > expectationTTL {
			delete(e.items[owner], object)
			continue
		}
		pending = true
	}
	if len(e.items[owner]) == 0 {
		delete(e.items, owner)
	}
	return pending
}

// Forget drops every expectation of owner.
func (e *Expectations) Forget(owner string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.items, owner)
}
