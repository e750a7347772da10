package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// webhookName is the name of our workload webhook in its MutatingWebhookConfiguration, as
// kube-apiserver labels its admission metrics with it.
const webhookName = "workloads.rollout.kruise.io"

// histogram is one cumulative Prometheus histogram: upper bound → count.
type histogram map[float64]float64

// webhookLatency reads kube-apiserver's histogram of the time its calls to our webhook took
// (apiserver_admission_webhook_admission_duration_seconds, summed over its other labels):
// the webhook's own latency as its caller sees it, without the rest of the update.
func (b *bench) webhookLatency(ctx context.Context) (histogram, error) {
	data, err := b.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver /metrics: %w", err)
	}
	return parseWebhookHistogram(string(data), webhookName), nil
}

func parseWebhookHistogram(metrics, name string) histogram {
	h := histogram{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_bucket{") ||
			!strings.Contains(line, `name="`+name+`"`) {
			continue
		}
		_, rest, ok := strings.Cut(line, `le="`)
		if !ok {
			continue
		}
		le, rest, ok := strings.Cut(rest, `"`)
		if !ok {
			continue
		}
		bound := math.Inf(1)
		if le != "+Inf" {
			v, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			bound = v
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		h[bound] += v
	}
	return h
}

// minus is h without what before had counted: the calls of one phase.
func (h histogram) minus(before histogram) histogram {
	out := histogram{}
	for le, v := range h {
		out[le] = v - before[le]
	}
	return out
}

// count is how many calls h holds.
func (h histogram) count() float64 { return h[math.Inf(1)] }

// quantile estimates the q-quantile in seconds by linear interpolation inside its bucket, as
// PromQL's histogram_quantile does; NaN without calls.
func (h histogram) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevBound
			}
			if c == prevCount {
				return le
			}
			return prevBound + (le-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = le, c
	}
	return prevBound
}

// within is the share of calls that took at most seconds (exact when seconds is a bucket
// bound).
func (h histogram) within(seconds float64) float64 {
	if h.count() == 0 {
		return math.NaN()
	}
	return h[seconds] / h.count()
}
