package validation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

func TestParseAddressPolicy(t *testing.T) {
	_, err := ParseAddressPolicy("prometheus:9090", nil)
	require.ErrorContains(t, err, "default Prometheus address")
	_, err = ParseAddressPolicy("", []string{"http://user:pw@prom:9090"})
	require.ErrorContains(t, err, "must not contain credentials")
	_, err = ParseAddressPolicy("", []string{"prom*.monitoring"})
	require.ErrorContains(t, err, "must be a host name")
	p, err := ParseAddressPolicy("http://prom.monitoring:9090", []string{" ", "HTTP://Prom.Other:9090", "*.monitoring.svc", "thanos"})
	require.NoError(t, err)
	assert.Equal(t, []string{"http://prom.other:9090", "*.monitoring.svc", "thanos"}, p.Allowed)
}

func TestAddressPolicyAllows(t *testing.T) {
	p, err := ParseAddressPolicy("http://prom.monitoring:9090", []string{"http://prom.other:9090", "*.monitoring.svc", "thanos"})
	require.NoError(t, err)
	cases := map[string]bool{
		"http://prom.monitoring:9090":              true, // the default
		"http://prom.other:9090":                   true,
		"http://PROM.other:9090/prefix":            true,
		"https://prom.other:9090":                  false, // another scheme
		"http://prom.other:9091":                   false, // another port
		"http://a.monitoring.svc:9090":             true,
		"https://x.y.monitoring.svc":               true,
		"http://monitoring.svc":                    false, // the pattern needs a subdomain
		"http://evilmonitoring.svc":                false,
		"http://thanos:10902":                      true,
		"http://thanos.evil.com":                   false,
		"http://169.254.169.254/latest/meta-data/": false,
		"http://prom.monitoring.svc.evil.com":      false,
	}
	for address, want := range cases {
		assert.Equal(t, want, p.Allows(address), address)
	}
	assert.True(t, AddressPolicy{}.Allows("http://anything:1"), "no list allows everything")
}

func TestValidateAddresses(t *testing.T) {
	check := func(address string) rollout.MetricCheck {
		return rollout.MetricCheck{Name: "m", Provider: rollout.MetricProvider{Prometheus: &rollout.PrometheusMetric{Address: address, Query: "up"}}}
	}
	s := &rollout.RolloutStrategy{Canary: &rollout.CanaryStrategy{
		Analysis: &rollout.RolloutAnalysis{Metrics: []rollout.MetricCheck{check(""), check("http://ok.monitoring.svc")}},
		Steps:    []rollout.CanaryStep{{}, {Analysis: &rollout.RolloutAnalysis{Metrics: []rollout.MetricCheck{check("http://10.0.0.1:9090")}}}},
	}}
	path := field.NewPath("spec", "strategy")

	errs := AddressPolicy{}.ValidateAddresses(s, path)
	require.Len(t, errs, 1, "without a default, an empty address is refused")
	assert.Equal(t, field.ErrorTypeRequired, errs[0].Type)
	assert.Equal(t, "spec.strategy.canary.analysis.metrics[0].provider.prometheus.address", errs[0].Field)

	p, err := ParseAddressPolicy("http://prom:9090", []string{"*.monitoring.svc"})
	require.NoError(t, err)
	errs = p.ValidateAddresses(s, path)
	require.Len(t, errs, 1)
	assert.Equal(t, field.ErrorTypeForbidden, errs[0].Type)
	assert.Equal(t, "spec.strategy.canary.steps[1].analysis.metrics[0].provider.prometheus.address", errs[0].Field)
	assert.Contains(t, errs[0].Detail, `"http://10.0.0.1:9090" is not among the Prometheus addresses this server allows (*.monitoring.svc)`)
}
