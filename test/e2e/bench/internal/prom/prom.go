// Package prom reads Prometheus /metrics pages for the benchmarks: one parser (the
// Prometheus text format, through prometheus/common's expfmt) and the few readings the
// benchmarks take from it (a gauge, a histogram's buckets and its quantiles).
package prom

import (
	"bytes"
	"fmt"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is one scrape of a /metrics page, parsed.
type Families map[string]*dto.MetricFamily

// Parse parses a /metrics page in the Prometheus text format.
func Parse(page []byte) (Families, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	return fams, nil
}

// Series are the samples of family name whose labels include match (nil: all of them).
func (f Families) Series(name string, match map[string]string) []*dto.Metric {
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

// Gauge is the value of the one gauge series of name whose labels include match; false when
// there is not exactly one.
func (f Families) Gauge(name string, match map[string]string) (float64, bool) {
	s := f.Series(name, match)
	if len(s) != 1 || s[0].GetGauge() == nil {
		return 0, false
	}
	return s[0].GetGauge().GetValue(), true
}

// Histogram is one cumulative Prometheus histogram: upper bound → count, and its sum.
type Histogram struct {
	Buckets map[float64]float64
	Sum     float64
}

// Histogram sums the histograms of family name whose labels include match (nil: all).
func (f Families) Histogram(name string, match map[string]string) Histogram {
	h := Histogram{Buckets: map[float64]float64{}}
	for _, m := range f.Series(name, match) {
		hist := m.GetHistogram()
		for _, b := range hist.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the sample count, below, whether listed or not
				h.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		h.Buckets[math.Inf(1)] += float64(hist.GetSampleCount())
		h.Sum += hist.GetSampleSum()
	}
	return h
}

// Minus is h without what before had counted: the observations of one phase.
func (h Histogram) Minus(before Histogram) Histogram {
	out := Histogram{Buckets: map[float64]float64{}, Sum: h.Sum - before.Sum}
	for le, v := range h.Buckets {
		out.Buckets[le] = v - before.Buckets[le]
	}
	return out
}

// Count is how many observations h holds.
func (h Histogram) Count() float64 { return h.Buckets[math.Inf(1)] }

// Quantile estimates the q-quantile by linear interpolation inside its bucket, as PromQL's
// histogram_quantile does; NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for le := range h.Buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h.Buckets[le]
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

// Within is the share of observations of at most v (exact when v is a bucket bound).
func (h Histogram) Within(v float64) float64 {
	if h.Count() == 0 {
		return math.NaN()
	}
	return h.Buckets[v] / h.Count()
}
