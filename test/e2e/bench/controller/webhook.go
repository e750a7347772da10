package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// webhookName is the name of our workload webhook in its MutatingWebhookConfiguration, as
// kube-apiserver labels its admission metrics with it.
const webhookName = "workloads.rollout.kruise.io"

// metricFamilies is one scrape of a /metrics page, parsed.
type metricFamilies map[string]*dto.MetricFamily

// parseMetrics parses a /metrics page in the Prometheus text format.
func parseMetrics(data []byte) (metricFamilies, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	return fams, nil
}

// kubeMetrics scrapes kube-apiserver's /metrics.
func (b *bench) kubeMetrics(ctx context.Context) (metricFamilies, error) {
	data, err := b.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver /metrics: %w", err)
	}
	return parseMetrics(data)
}

// ourMetrics scrapes rollout-apiserver's /metrics.
func (b *bench) ourMetrics(ctx context.Context) (metricFamilies, error) {
	hc, err := rest.HTTPClientFor(b.s.RESTConfig())
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.s.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading rollout-apiserver /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading rollout-apiserver /metrics: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading rollout-apiserver /metrics: %w", err)
	}
	return parseMetrics(data)
}

// series are the samples of family name whose labels include match.
func (f metricFamilies) series(name string, match map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range f[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// histogram is one cumulative Prometheus histogram: upper bound → count; and its sum.
type histogram struct {
	buckets map[float64]float64
	sum     float64
}

// histogram sums the histograms of family name whose labels include match.
func (f metricFamilies) histogram(name string, match map[string]string) histogram {
	h := histogram{buckets: map[float64]float64{}}
	for _, m := range f.series(name, match) {
		hist := m.GetHistogram()
		for _, b := range hist.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the sample count, below, whether listed or not
				h.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		h.buckets[math.Inf(1)] += float64(hist.GetSampleCount())
		h.sum += hist.GetSampleSum()
	}
	return h
}

// webhookLatency reads kube-apiserver's histogram of the time its calls to our webhook took
// (apiserver_admission_webhook_admission_duration_seconds, summed over its other labels):
// the webhook's own latency as its caller sees it, without the rest of the update.
func (b *bench) webhookLatency(ctx context.Context) (histogram, error) {
	fams, err := b.kubeMetrics(ctx)
	if err != nil {
		return histogram{}, err
	}
	return fams.histogram("apiserver_admission_webhook_admission_duration_seconds", map[string]string{"name": webhookName}), nil
}

// webhookHandling reads our server's histogram of the time the webhook's handler took
// (rollout_webhook_admission_duration_seconds): the part of a call spent deciding, after the
// connection, the server's filters and waiting for a CPU.
func (b *bench) webhookHandling(ctx context.Context) (histogram, error) {
	fams, err := b.ourMetrics(ctx)
	if err != nil {
		return histogram{}, err
	}
	return fams.histogram("rollout_webhook_admission_duration_seconds", nil), nil
}

// minus is h without what before had counted: the calls of one phase.
func (h histogram) minus(before histogram) histogram {
	out := histogram{buckets: map[float64]float64{}, sum: h.sum - before.sum}
	for le, v := range h.buckets {
		out.buckets[le] = v - before.buckets[le]
	}
	return out
}

// count is how many calls h holds.
func (h histogram) count() float64 { return h.buckets[math.Inf(1)] }

// quantile estimates the q-quantile in seconds by linear interpolation inside its bucket, as
// PromQL's histogram_quantile does; NaN without calls.
func (h histogram) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h.buckets[le]
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
	return h.buckets[seconds] / h.count()
}
