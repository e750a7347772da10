package apiserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

// The operator decides where metric checks may connect: a server started
// with a default Prometheus address and an allow-list admits checks that name
// no address or an allowed one, and refuses any other address with a 422 on
// the exact field, on create and on update.
func TestMetricAddressesOutsideTheAllowListAreRejected(t *testing.T) {
	ctx := testContext(t)
	s := framework.StartServer(t, "", func(o *app.ServerOptions) {
		o.Metrics.DefaultPrometheusAddress = "http://prometheus.monitoring:9090"
		o.Metrics.AllowedPrometheusAddresses = []string{"*.monitoring.svc", "http://thanos:10902"}
	})
	client := s.Client.RolloutV1beta1().Rollouts("allow-list")
	withCheck := func(name, address string) *v1beta1.Rollout {
		r := newRollout(name, name)
		r.Spec.Strategy.Canary.Steps[1].Analysis = &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
			Name:             "error-rate",
			Provider:         v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: address, Query: "vector(0)"}},
			SuccessCondition: "result < 0.05",
		}}}
		return r
	}
	for _, address := range []string{"", "http://prometheus.monitoring:9090", "http://prom.monitoring.svc:9090", "http://thanos:10902"} {
		created, err := client.Create(ctx, withCheck("ok-"+nameOf(address), address), metav1.CreateOptions{})
		require.NoError(t, err, "address %q is allowed", address)
		assert.Equal(t, address, created.Spec.Strategy.Canary.Steps[1].Analysis.Metrics[0].Provider.Prometheus.Address,
			"an empty address stays empty: the default applies when the check runs")
		assert.Equal(t, ptr.To[int32](4), created.Spec.Strategy.Canary.Steps[1].Analysis.Metrics[0].ConsecutiveErrorLimit)
	}

	const field = "spec.strategy.canary.steps[1].analysis.metrics[0].provider.prometheus.address"
	for _, address := range []string{"http://169.254.169.254", "http://thanos:9090", "https://thanos:10902", "http://monitoring.svc.evil.example"} {
		_, err := client.Create(ctx, withCheck("bad", address), metav1.CreateOptions{})
		require.Error(t, err, address)
		require.True(t, apierrors.IsInvalid(err), "422 for %q, got %v", address, err)
		assertCause(t, err, field, "is not among the Prometheus addresses this server allows")
	}

	// An update cannot smuggle a disallowed address in either.
	r, err := client.Get(ctx, "ok-empty", metav1.GetOptions{})
	require.NoError(t, err)
	r.Spec.Strategy.Canary.Steps[1].Analysis.Metrics[0].Provider.Prometheus.Address = "http://10.0.0.1:9090"
	_, err = client.Update(ctx, r, metav1.UpdateOptions{})
	require.True(t, apierrors.IsInvalid(err), "422 on update, got %v", err)
	assertCause(t, err, field, "10.0.0.1")
}

// Without a default address, a check must name one.
func TestMetricCheckWithoutAddressNeedsADefault(t *testing.T) {
	ctx := testContext(t)
	r := newRollout("web", "web")
	r.Spec.Strategy.Canary.Analysis = &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
		Name:             "error-rate",
		Provider:         v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Query: "vector(0)"}},
		SuccessCondition: "result < 0.05",
	}}}
	_, err := rollouts(newNamespace(t)).Create(ctx, r, metav1.CreateOptions{})
	require.True(t, apierrors.IsInvalid(err), "422, got %v", err)
	assertCause(t, err, "spec.strategy.canary.analysis.metrics[0].provider.prometheus.address", "no default Prometheus address")
}

func nameOf(address string) string {
	if address == "" {
		return "empty"
	}
	return notDNS.ReplaceAllString(address[len("http://"):], "-")
}

func assertCause(t *testing.T, err error, field, detail string) {
	t.Helper()
	status, ok := err.(apierrors.APIStatus)
	require.True(t, ok, "an API status error: %v", err)
	require.NotNil(t, status.Status().Details)
	for _, c := range status.Status().Details.Causes {
		if c.Field == field {
			assert.Contains(t, c.Message, detail)
			return
		}
	}
	t.Fatalf("no cause on %s in %v", field, status.Status().Details.Causes)
}
