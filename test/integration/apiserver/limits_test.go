package apiserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func manyMetrics(n int) *v1beta1.RolloutAnalysis {
	a := &v1beta1.RolloutAnalysis{}
	for i := 0; i < n; i++ {
		a.Metrics = append(a.Metrics, v1beta1.MetricCheck{
			Name:             fmt.Sprintf("m%d", i),
			Interval:         metav1.Duration{Duration: 30 * time.Second},
			Count:            3,
			Provider:         v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: "http://prom:9090", Query: "up"}},
			SuccessCondition: fmt.Sprintf("result < %d.5", i),
		})
	}
	return a
}

// TestOversizeSpecsAreRefused: a spec over a cost limit is refused with 422
// naming the field (dry runs too, so they cost no more), and a body over the
// request size limit with 413.
func TestOversizeSpecsAreRefused(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)

	for _, n := range []int{11, 1700} {
		t.Run(fmt.Sprintf("%d metrics", n), func(t *testing.T) {
			r := newRollout(fmt.Sprintf("metrics-%d", n), "web")
			r.Spec.Strategy.Canary.Analysis = manyMetrics(n)
			for _, dryRun := range [][]string{nil, {metav1.DryRunAll}} {
				_, err := rollouts(ns).Create(ctx, r, metav1.CreateOptions{DryRun: dryRun})
				require.Error(t, err)
				assert.True(t, apierrors.IsInvalid(err), "got %v", err)
				assert.Contains(t, causeFields(err), "spec.strategy.canary.analysis.metrics")
			}
		})
	}

	t.Run("header value with CRLF", func(t *testing.T) {
		r := newRollout("crlf", "web")
		r.Spec.Strategy.Canary.Steps[0].RequestHeaderModifier = &v1beta1.HTTPHeaderFilter{
			Set: []v1beta1.HTTPHeader{{Name: "X-Release", Value: "canary\r\nX-Injected: 1"}},
		}
		_, err := rollouts(ns).Create(ctx, r, metav1.CreateOptions{})
		require.Error(t, err)
		assert.True(t, apierrors.IsInvalid(err), "got %v", err)
		assert.Contains(t, causeFields(err), "spec.strategy.canary.steps[0].requestHeaderModifier.set[0].value")
	})

	t.Run("body over the request limit", func(t *testing.T) {
		body := fmt.Sprintf(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","metadata":{"name":"big","annotations":{"a":%q}}}`,
			strings.Repeat("x", 3584<<10))
		err := server.Client.RolloutV1beta1().RESTClient().Post().
			Namespace(ns).Resource("rollouts").
			SetHeader("Content-Type", "application/json").
			Body([]byte(body)).Do(ctx).Error()
		require.Error(t, err)
		assert.True(t, apierrors.IsRequestEntityTooLargeError(err), "got %v", err)
	})
}
