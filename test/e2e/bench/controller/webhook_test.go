package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWebhookHistogram(t *testing.T) {
	metrics := `# HELP apiserver_admission_webhook_admission_duration_seconds x
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.005"} 10
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.025"} 90
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="0.1"} 99
apiserver_admission_webhook_admission_duration_seconds_bucket{name="workloads.rollout.kruise.io",operation="UPDATE",rejected="false",type="admit",le="+Inf"} 100
apiserver_admission_webhook_admission_duration_seconds_bucket{name="other",operation="UPDATE",rejected="false",type="admit",le="+Inf"} 7
`
	h := parseWebhookHistogram(metrics, webhookName)
	assert.Equal(t, 100.0, h.count())
	assert.InDelta(t, 0.99, h.within(0.1), 1e-9)
	assert.InDelta(t, 0.1, h.quantile(0.99), 1e-9, "the 99th call is the last of the 0.1 bucket")
	assert.InDelta(t, 0.015, h.quantile(0.5), 1e-9, "interpolated inside (0.005, 0.025]")

	before := parseWebhookHistogram(metrics, webhookName)
	assert.Equal(t, 0.0, h.minus(before).count())
	assert.True(t, math.IsNaN(histogram{}.quantile(0.99)))
}
