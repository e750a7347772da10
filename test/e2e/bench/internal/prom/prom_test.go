package prom

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const page = `# HELP webhook_seconds x
# TYPE webhook_seconds histogram
webhook_seconds_bucket{name="ours",op="UPDATE",le="0.005"} 10
webhook_seconds_bucket{name="ours",op="UPDATE",le="0.025"} 90
webhook_seconds_bucket{name="ours",op="UPDATE",le="0.1"} 99
webhook_seconds_bucket{name="ours",op="UPDATE",le="+Inf"} 100
webhook_seconds_sum{name="ours",op="UPDATE"} 2.5
webhook_seconds_count{name="ours",op="UPDATE"} 100
webhook_seconds_bucket{name="other",op="UPDATE",le="+Inf"} 7
webhook_seconds_sum{name="other",op="UPDATE"} 1
webhook_seconds_count{name="other",op="UPDATE"} 7
# HELP heap_bytes x
# TYPE heap_bytes gauge
heap_bytes 1.2345e+08
# HELP heap_bytes_total x
# TYPE heap_bytes_total counter
heap_bytes_total 7
`

func TestHistogram(t *testing.T) {
	fams, err := Parse([]byte(page))
	require.NoError(t, err)
	h := fams.Histogram("webhook_seconds", map[string]string{"name": "ours"})
	assert.Equal(t, 100.0, h.Count())
	assert.InDelta(t, 2.5, h.Sum, 1e-9)
	assert.InDelta(t, 0.99, h.Within(0.1), 1e-9)
	assert.InDelta(t, 0.1, h.Quantile(0.99), 1e-9, "the 99th observation is the last of the 0.1 bucket")
	assert.InDelta(t, 0.015, h.Quantile(0.5), 1e-9, "interpolated inside (0.005, 0.025]")
	assert.Equal(t, 107.0, fams.Histogram("webhook_seconds", nil).Count(), "no filter: every series")
	assert.Equal(t, 0.0, h.Minus(h).Count())
	assert.True(t, math.IsNaN(Histogram{}.Quantile(0.99)))
	assert.True(t, math.IsNaN(Histogram{}.Within(0.1)))
}

func TestGauge(t *testing.T) {
	fams, err := Parse([]byte(page))
	require.NoError(t, err)
	v, ok := fams.Gauge("heap_bytes", nil)
	assert.True(t, ok)
	assert.InDelta(t, 1.2345e8, v, 1)
	_, ok = fams.Gauge("heap_bytes_total", nil)
	assert.False(t, ok, "a counter is no gauge")
	_, ok = fams.Gauge("absent", nil)
	assert.False(t, ok)
}

func TestParseRefusesWhatIsNoMetricPage(t *testing.T) {
	_, err := Parse([]byte("not a metric page {"))
	assert.Error(t, err)
}
