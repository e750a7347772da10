package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/bench/internal/prom"
)

// heapSnap is the Go heap in use (go_memstats_heap_inuse_bytes from /metrics) of
// kube-apiserver and of our server, in bytes; -1 when it could not be read. RSS alone mixes
// the live heap with the garbage collector's headroom and with memory the runtime freed but
// has not returned to the OS yet, which is what GOMEMLIMIT and the GC act on.
type heapSnap struct{ kas, ours int64 }

// heapInUse reads both servers' heap in use. Reading /metrics allocates a little in each
// server; that is the same for both APIs.
func (b *bench) heapInUse(ctx context.Context) heapSnap {
	return heapSnap{kas: metricBytes(ctx, b.kas, "go_memstats_heap_inuse_bytes"), ours: metricBytes(ctx, b.direct, "go_memstats_heap_inuse_bytes")}
}

// metricBytes is the value of the unlabelled gauge name on t's /metrics, -1 if absent.
func metricBytes(ctx context.Context, t *target, name string) int64 {
	resp, err := t.do(ctx, http.MethodGet, t.base+"/metrics", nil, "")
	if err != nil {
		logf("reading %s from %s/metrics: %v", name, t.base, err)
		return -1
	}
	fams, err := prom.Parse(resp.body)
	if err != nil {
		logf("reading %s from %s/metrics: %v", name, t.base, err)
		return -1
	}
	v, ok := fams.Gauge(name, nil)
	if !ok {
		return -1
	}
	return int64(v)
}

// fmtHeap is a heap reading in MiB, "?" when it was not read.
func fmtHeap(v int64) string {
	if v < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(v)/(1<<20))
}

// heapDetails is the heap-in-use table of the report, beside the RSS readings.
func (r *report) heapDetails() string {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\nGo heap in use (go_memstats_heap_inuse_bytes from /metrics, MiB; the live objects plus fragmentation, without the GC's headroom and the freed memory RSS still counts):\n\n")
	fmt.Fprintf(&buf, "| when | kube-apiserver | rollout-apiserver |\n|---|--:|--:|\n")
	for _, m := range []struct {
		name string
		s    heapSnap
	}{
		{"after warm-up", r.heap0}, {fmt.Sprintf("after both APIs' %d creates", r.b.o.n), r.heap1},
		{"after the LISTs", r.heap2}, {"at the end", r.heap3},
	} {
		fmt.Fprintf(&buf, "| %s | %s | %s |\n", m.name, fmtHeap(m.s.kas), fmtHeap(m.s.ours))
	}
	if r.heap0.ours >= 0 && r.heap1.ours >= 0 && r.heap2.ours >= 0 {
		fmt.Fprintf(&buf, "\nrollout-apiserver heap in use: %+.0f MiB over the creates, %+.0f MiB more after the LISTs.\n",
			float64(r.heap1.ours-r.heap0.ours)/(1<<20), float64(r.heap2.ours-r.heap1.ours)/(1<<20))
	}
	return buf.String()
}
