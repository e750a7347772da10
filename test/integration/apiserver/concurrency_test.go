package apiserver

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Two users read the same Rollout and both write it back, each with a
// different change, at the same moment. Optimistic concurrency lets exactly
// one win; the other gets 409 Conflict and its change is not stored.
func TestConcurrentUpdatesWithOneResourceVersion(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	base := create(ctx, t, ns, newRollout("web", "web"))

	for round := range 5 {
		read, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)

		traffic := []string{fmt.Sprintf("%d%%", 21+round), fmt.Sprintf("%d%%", 31+round)}
		errs := make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := read.DeepCopy()
				mine.Spec.Strategy.Canary.Steps[0].Traffic = ptr.To(traffic[i])
				<-start
				_, errs[i] = rollouts(ns).Update(ctx, mine, metav1.UpdateOptions{})
			}()
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: both updates won", round)
				winner = i
				continue
			}
			assert.True(t, apierrors.IsConflict(err), "round %d, writer %d: want 409, got %v", round, i, err)
		}
		require.NotEqual(t, -1, winner, "round %d: neither update won", round)

		stored, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, traffic[winner], *stored.Spec.Strategy.Canary.Steps[0].Traffic, "round %d: the winner's change is stored", round)
		assert.Equal(t, read.Generation+1, stored.Generation, "round %d: one write, one generation", round)
	}

	// The status subresource is just as strict.
	stale := base.DeepCopy()
	stale.Status = atStep(1, v1beta1.CanaryStepStateUpgrade)
	_, err := rollouts(ns).UpdateStatus(ctx, stale, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsConflict(err), "a status write from a stale copy: got %v", err)
}
