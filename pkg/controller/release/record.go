package release

import (
	"time"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// recordPoll is how soon a pass that recorded a decision looks again to act
// on it when it could not act at once (Sync runs the acting pass right after
// a successful write; see maxChainedPasses).
const recordPoll = 500 * time.Millisecond

// The predicates below compare what a pass has decided (p.status) with what
// the status it read records (p.ro.Status). A side effect may run only when
// they agree: see the package comment.

// stepRecorded reports whether the status this pass read records the release
// at the current step and step state of p.status, for the same revision and
// the same plan, with no ending (cancel, abort, finalisation) recorded.
func (p *pass) stepRecorded() bool {
	read, cs := &p.ro.Status, p.status.CanaryStatus
	rcs := read.CanaryStatus
	if rcs == nil || cs == nil || read.Phase != v1beta1.RolloutPhaseProgressing || read.Abort != nil {
		return false
	}
	switch progressingReason(read) {
	case v1beta1.ProgressingReasonCancelling, v1beta1.ProgressingReasonFinalising:
		return false
	}
	return rcs.CanaryRevision == cs.CanaryRevision && rcs.CurrentStepIndex == cs.CurrentStepIndex &&
		rcs.CurrentStepState == cs.CurrentStepState && rcs.RolloutHash == cs.RolloutHash
}

// stageRecorded reports whether the status this pass read records the same
// ending (phase, Progressing reason, abort or not, revision) at stage.
func (p *pass) stageRecorded(stage v1beta1.FinalisingStepType) bool {
	read, cs := &p.ro.Status, p.status.CanaryStatus
	rcs := read.CanaryStatus
	if rcs == nil || cs == nil {
		return false
	}
	return p.endingRecorded() && rcs.FinalisingStep == stage && rcs.CanaryRevision == cs.CanaryRevision
}

// endingRecorded reports whether the status this pass read records the same
// phase, Progressing reason and abort as p.status: the ending (or teardown)
// that p.status is running was decided by an earlier, written pass.
func (p *pass) endingRecorded() bool {
	read := &p.ro.Status
	return read.Phase == p.status.Phase && progressingReason(read) == progressingReason(p.status) &&
		(read.Abort == nil) == (p.status.Abort == nil)
}

// recorded notes that this pass decided something that a later pass acts
// on once the decision is written.
func (p *pass) recorded() {
	p.decided = true
	p.after(recordPoll)
}
