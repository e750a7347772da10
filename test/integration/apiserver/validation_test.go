package apiserver

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// An invalid Rollout is refused with 422 Unprocessable Entity, and the error
// names the exact field that is wrong, so kubectl can show it.
func TestInvalidRolloutsAreRejected(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	steps := func(r *v1beta1.Rollout) []v1beta1.CanaryStep { return r.Spec.Strategy.Canary.Steps }
	cases := []struct {
		name      string
		mutate    func(r *v1beta1.Rollout)
		wantField string
	}{
		{"zero replicas", func(r *v1beta1.Rollout) { steps(r)[0].Replicas = ptr.To(intstr.FromInt32(0)) },
			"spec.strategy.canary.steps[0].replicas"},
		{"replicas above 100%", func(r *v1beta1.Rollout) { steps(r)[2].Replicas = percent("150%") },
			"spec.strategy.canary.steps[2].replicas"},
		{"replicas decrease", func(r *v1beta1.Rollout) { steps(r)[1].Replicas = percent("10%") },
			"spec.strategy.canary.steps[1].replicas"},
		{"traffic is not a percentage", func(r *v1beta1.Rollout) { steps(r)[0].Traffic = ptr.To("lots") },
			"spec.strategy.canary.steps[0].traffic"},
		{"negative pause", func(r *v1beta1.Rollout) { steps(r)[0].Pause.Duration = ptr.To[int32](-1) },
			"spec.strategy.canary.steps[0].pause.duration"},
		{"no steps", func(r *v1beta1.Rollout) { r.Spec.Strategy.Canary.Steps = nil },
			"spec.strategy.canary.steps"},
		{"no strategy", func(r *v1beta1.Rollout) { r.Spec.Strategy.Canary = nil },
			"spec.strategy"},
		{"canary and blue-green", func(r *v1beta1.Rollout) {
			r.Spec.Strategy.BlueGreen = &v1beta1.BlueGreenStrategy{Steps: []v1beta1.CanaryStep{{Replicas: percent("100%")}}}
		}, "spec.strategy"},
		{"unsupported workload kind", func(r *v1beta1.Rollout) { r.Spec.WorkloadRef.Kind = "Pod" },
			"spec.workloadRef.kind"},
		{"no workload name", func(r *v1beta1.Rollout) { r.Spec.WorkloadRef.Name = "" },
			"spec.workloadRef.name"},
		{"zero progress deadline", func(r *v1beta1.Rollout) { r.Spec.ProgressDeadlineSeconds = ptr.To[int32](0) },
			"spec.progressDeadlineSeconds"},
		{"two traffic routings", func(r *v1beta1.Rollout) {
			c := r.Spec.Strategy.Canary
			c.TrafficRoutings = append(c.TrafficRoutings, c.TrafficRoutings[0])
		}, "spec.strategy.canary.trafficRoutings"},
		{"metric condition is not CEL", func(r *v1beta1.Rollout) {
			r.Spec.Strategy.Canary.Analysis = &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
				Name:             "errors",
				Provider:         v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: "http://prom:9090", Query: "up"}},
				SuccessCondition: "result <",
			}}}
		}, "spec.strategy.canary.analysis.metrics[0].successCondition"},
		{"metric address has credentials", func(r *v1beta1.Rollout) {
			r.Spec.Strategy.Canary.Analysis = &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
				Name:             "errors",
				Provider:         v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: "http://u:p@prom:9090", Query: "up"}},
				SuccessCondition: "result > 0",
			}}}
		}, "spec.strategy.canary.analysis.metrics[0].provider.prometheus.address"},
		{"bad name", func(r *v1beta1.Rollout) { r.Name = "Web_1" }, "metadata.name"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRollout(fmt.Sprintf("r%d", i), fmt.Sprintf("w%d", i))
			tc.mutate(r)
			_, err := rollouts(ns).Create(ctx, r, metav1.CreateOptions{})
			require.Error(t, err)
			assert.True(t, apierrors.IsInvalid(err), "want 422 Invalid, got %v", err)
			assert.Equal(t, int32(http.StatusUnprocessableEntity), apiStatusCode(err))
			assert.Contains(t, causeFields(err), tc.wantField, "error: %v", err)
		})
	}

	list, err := rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, list.Items, "nothing invalid was stored")
}

// Updates are validated too: a valid Rollout cannot be made invalid, and a
// status write with an unknown phase is refused.
func TestInvalidUpdatesAreRejected(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	r := create(ctx, t, ns, newRollout("web", "web"))

	r.Spec.Strategy.Canary.Steps[0].Replicas = ptr.To(intstr.FromInt32(0))
	_, err := rollouts(ns).Update(ctx, r, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "spec.strategy.canary.steps[0].replicas")

	fresh, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	fresh.Status.Phase = "Exploding"
	_, err = rollouts(ns).UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "status.phase")

	fresh.Status = v1beta1.RolloutStatus{CurrentStepIndex: 7}
	_, err = rollouts(ns).UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "a step index beyond the 3 steps: got %v", err)
	assert.Contains(t, causeFields(err), "status.currentStepIndex")

	// While a release is in progress, the workload it releases cannot change.
	setStatus(ctx, t, ns, "web", atStep(1, v1beta1.CanaryStepStateUpgrade))
	inRelease, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	inRelease.Spec.WorkloadRef.Name = "other"
	_, err = rollouts(ns).Update(ctx, inRelease, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "spec.workloadRef")
}

// v1alpha1 objects are validated by the same rules.
func TestInvalidV1alpha1RolloutIsRejected(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	_, err := server.Client.RolloutV1alpha1().Rollouts(ns).Create(ctx, &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.RolloutSpec{
			ObjectRef: v1alpha1.ObjectRef{WorkloadRef: &v1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
			Strategy: v1alpha1.RolloutStrategy{Canary: &v1alpha1.CanaryStrategy{
				Steps: []v1alpha1.CanaryStep{{Replicas: ptr.To(intstr.FromInt32(-1))}},
			}},
		},
	}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Contains(t, causeFields(err), "spec.strategy.canary.steps[0].replicas")
}

// One workload, one Rollout: a second Rollout of the same workload in the
// same namespace is refused on spec.workloadRef.name; the same name in
// another namespace, or a workload of another kind, is a different workload.
func TestOneRolloutPerWorkload(t *testing.T) {
	ctx := testContext(t)
	ns, otherNS := newNamespace(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web-canary", "web"))

	_, err := rollouts(ns).Create(ctx, newRollout("web-again", "web"), metav1.CreateOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err), "want 422, got %v", err)
	assert.Equal(t, []string{"spec.workloadRef.name"}, causeFields(err))
	assert.Contains(t, err.Error(), `already released by Rollout "web-canary"`)

	create(ctx, t, otherNS, newRollout("web-again", "web"))

	statefulSet := newRollout("web-sts", "web")
	statefulSet.Spec.WorkloadRef.Kind = "StatefulSet"
	create(ctx, t, ns, statefulSet)

	// An update that points another Rollout at the workload is refused too.
	api := create(ctx, t, ns, newRollout("api", "api"))
	api.Spec.WorkloadRef.Name = "web"
	_, err = rollouts(ns).Update(ctx, api, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsInvalid(err), "got %v", err)
	assert.Equal(t, []string{"spec.workloadRef.name"}, causeFields(err))

	// Once the first Rollout is gone, the workload is free again.
	require.NoError(t, rollouts(ns).Delete(ctx, "web-canary", metav1.DeleteOptions{}))
	create(ctx, t, ns, newRollout("web-again", "web"))
}

// Ten clients race to create a Rollout for the same workload: exactly one
// wins, the other nine get 422 on spec.workloadRef.name. Repeated on a few
// workloads so a lucky interleaving cannot pass it.
func TestConcurrentCreatesForOneWorkload(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	for round := range 3 {
		workload := fmt.Sprintf("web-%d", round)
		start := make(chan struct{})
		errs := make([]error, 10)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = rollouts(ns).Create(ctx, newRollout(fmt.Sprintf("%s-r%d", workload, i), workload), metav1.CreateOptions{})
			}()
		}
		close(start)
		wg.Wait()

		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				continue
			}
			assert.True(t, apierrors.IsInvalid(err), "client %d: want 422, got %v", i, err)
			assert.Equal(t, []string{"spec.workloadRef.name"}, causeFields(err), "client %d", i)
		}
		assert.Equal(t, 1, won, "round %d: exactly one create wins", round)

		list, err := rollouts(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.workloadRef.name=" + workload})
		require.NoError(t, err)
		assert.Len(t, list.Items, 1, "round %d: one Rollout stored for the workload", round)
	}
}

func apiStatusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}
