package rollout

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// isController says whether the request comes from the embedded controller:
// it writes through the server's loopback client, whose identity no other
// client can present.
func isController(ctx context.Context) bool {
	u, ok := genericapirequest.UserFrom(ctx)
	return ok && u.GetName() == user.APIServerUser
}

// kruiseStatusAction turns the two status writes that Kruise Rollout's tools
// make into the promote action that our promote subresource records, so the
// controller has one path for both:
//
//   - canaryStatus.currentStepState (or status.currentStepState) set to
//     StepReady: Kruise's approve (kubectl-kruise rollout approve);
//   - canaryStatus.nextStepIndex set to N: Kruise's jump, forward or back.
//
// It returns nil unless newR differs from oldR in these fields and nothing else.
func kruiseStatusAction(newR, oldR *rollout.Rollout, by string) *rollout.RolloutActionRequest {
	oldCS, newCS := oldR.Status.CanaryStatus, newR.Status.CanaryStatus
	if oldR.Status.Phase != rollout.RolloutPhaseProgressing || oldCS == nil || newCS == nil || oldR.Spec.Strategy.Paused {
		return nil
	}
	rest := newR.Status.DeepCopy()
	rest.CurrentStepState = oldR.Status.CurrentStepState
	rest.CanaryStatus.CurrentStepState = oldCS.CurrentStepState
	rest.CanaryStatus.NextStepIndex = oldCS.NextStepIndex
	if !equality.Semantic.DeepEqual(rest, &oldR.Status) {
		return nil
	}
	step := oldCS.CurrentStepIndex
	action := &rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: step,
		RequestedBy: by, RequestedAt: metav1.Now()}
	switch {
	case newCS.NextStepIndex != oldCS.NextStepIndex:
		if newCS.NextStepIndex < 1 || int(newCS.NextStepIndex) > len(newR.Spec.Strategy.Steps()) {
			return nil
		}
		action.ToStepIndex = &newCS.NextStepIndex
	case approved(&newR.Status) && !approved(&oldR.Status):
		if oldCS.CurrentStepState != rollout.CanaryStepStatePaused {
			return nil
		}
	default:
		return nil
	}
	if oldR.Status.PendingAction != nil {
		return nil
	}
	return action
}

func approved(s *rollout.RolloutStatus) bool {
	return s.CurrentStepState == rollout.CanaryStepStateReady ||
		(s.CanaryStatus != nil && s.CanaryStatus.CurrentStepState == rollout.CanaryStepStateReady)
}

// validateUserStatusUpdate refuses a status write by anyone but the
// controller unless it was one of Kruise's two status actions, which
// PrepareForUpdate has already turned into status.pendingAction: the only
// change left may be a new promote of the current step, by this user, that
// an approve or a jump would have recorded.
func validateUserStatusUpdate(newR, oldR *rollout.Rollout, by string) field.ErrorList {
	rest := newR.Status.DeepCopy()
	rest.PendingAction = oldR.Status.PendingAction
	same := equality.Semantic.DeepEqual(rest, &oldR.Status)
	if same && equality.Semantic.DeepEqual(newR.Status.PendingAction, oldR.Status.PendingAction) {
		return nil // nothing changed
	}
	if p := newR.Status.PendingAction; same && oldR.Status.PendingAction == nil && p != nil && oldR.Status.CanaryStatus != nil &&
		p.Type == rollout.RolloutActionPromote && p.StepIndex == oldR.Status.CanaryStatus.CurrentStepIndex &&
		!p.Full && p.Reason == "" && p.RequestedBy == by &&
		(p.ToStepIndex != nil || oldR.Status.CanaryStatus.CurrentStepState == rollout.CanaryStepStatePaused) {
		return nil // Kruise's approve or jump, as PrepareForUpdate recorded it
	}
	return field.ErrorList{field.Forbidden(field.NewPath("status"),
		"status is written by the controller; a user may only approve the current paused step "+
			"(canaryStatus.currentStepState: StepReady) or jump to an existing step (canaryStatus.nextStepIndex: N), "+
			"both while a release is Progressing, not paused, with no other action pending; "+
			"or use the promote subresource")}
}

// userName is the name of the request's user, or "".
func userName(ctx context.Context) string {
	if u, ok := genericapirequest.UserFrom(ctx); ok {
		return u.GetName()
	}
	return ""
}
