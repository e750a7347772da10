package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWebhookHistogram(t *testing.T) {
	page := `# HELP apiserver_admission_webhook_admission_duration_seconds x
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.005"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.025"} 90
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.1"} 99
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="+Inf"} 100
apiserver_admission_webhook_admission_duration_seconds_sum{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit"} 2.5
apiserver_admission_webhook_admission_duration_seconds_count{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit"} 100
apiserver_admission_webhook_admission_duration_seconds_bucket{name="other",operation="UPDATE",rejected="false",type="admit",le="+Inf"} 7
apiserver_admission_webhook_admission_duration_seconds_sum{name="other",operation="UPDATE",rejected="false",type="admit"} 1
apiserver_admission_webhook_admission_duration_seconds_count{name="other",operation="UPDATE",rejected="false",type="admit"} 7
`
	fams, err := parseMetrics([]byte(page))
	require.NoError(t, err)
	name := "apiserver_admission_webhook_admission_duration_seconds"
	h := fams.histogram(name, map[string]string{"name": webhookName})
	assert.Equal(t, 100.0, h.count())
	assert.InDelta(t, 2.5, h.sum, 1e-9)
	assert.InDelta(t, 0.99, h.within(0.1), 1e-9)
	assert.InDelta(t, 0.1, h.quantile(0.99), 1e-9, "the 99th call is the last of the 0.1 bucket")
	assert.InDelta(t, 0.015, h.quantile(0.5), 1e-9, "interpolated inside (0.005, 0.025]")
	assert.Equal(t, 107.0, fams.histogram(name, nil).count(), "no filter: every series")

	assert.Equal(t, 0.0, h.minus(h).count())
	assert.True(t, math.IsNaN(histogram{}.quantile(0.99)))

	_, err = parseMetrics([]byte("not a metric page {"))
	assert.Error(t, err)
}
