// Package bench measures the rollout API server as clients see it: the real
// server runs in the test process on its embedded etcd and is reached over
// loopback HTTPS with the generated clientset, with no client-side rate limit.
//
// Run with `make bench` (go test -run '^$' -bench . -benchtime 1x). Every
// benchmark does a fixed amount of work per iteration, measures the latency
// of each request itself, reports p50/p99 and throughput with
// b.ReportMetric, and adds a line to the table printed at the end.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

var (
	serverOnce sync.Once
	server     *framework.Server
	client     versioned.Interface
	stopServer func()
	serverErr  error
)

// benchServer starts the one server all benchmarks share, on first use, so
// that `go test` without -bench starts nothing.
func benchServer(b *testing.B) versioned.Interface {
	b.Helper()
	serverOnce.Do(func() {
		server, stopServer, serverErr = framework.StartShared()
		if serverErr == nil {
			client, serverErr = versioned.NewForConfig(server.UnthrottledConfig())
		}
	})
	if serverErr != nil {
		b.Fatalf("starting the rollout API server: %v", serverErr)
	}
	return client
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if stopServer != nil {
		stopServer()
	}
	printTable(os.Stdout)
	os.Exit(code)
}

// result is one line of the final table.
type result struct {
	name      string
	requests  int
	p50, p99  time.Duration
	perSecond float64
	unit      string // what perSecond counts
}

var (
	resultsMu sync.Mutex
	results   []result
	order     = map[string]int{}
)

// report computes the percentiles of latencies, reports them and the
// throughput (items in elapsed) to the benchmark, and keeps a table line.
// A benchmark that runs more than once keeps its last line.
func report(b *testing.B, latencies []time.Duration, items int, elapsed time.Duration, unit string) {
	b.Helper()
	if len(latencies) == 0 {
		b.Fatal("no latencies measured")
	}
	sorted := append([]time.Duration(nil), latencies...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	pct := func(p float64) time.Duration { return sorted[int(p*float64(len(sorted)-1)+0.5)] }
	r := result{
		name:      strings.TrimPrefix(b.Name(), "Benchmark"),
		requests:  len(latencies),
		p50:       pct(0.50),
		p99:       pct(0.99),
		perSecond: float64(items) / elapsed.Seconds(),
		unit:      unit,
	}
	b.ReportMetric(ms(r.p50), "p50-ms")
	b.ReportMetric(ms(r.p99), "p99-ms")
	b.ReportMetric(r.perSecond, unit+"/s")

	resultsMu.Lock()
	defer resultsMu.Unlock()
	if i, ok := order[r.name]; ok {
		results[i] = r
		return
	}
	order[r.name] = len(results)
	results = append(results, r)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printTable(out *os.File) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(out, "\nrollout-apiserver API benchmarks: in-process server, embedded etcd, loopback HTTPS, JSON, GOMAXPROCS=%d, %s/%s\n\n",
		runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "benchmark\trequests\tp50 ms\tp99 ms\tthroughput\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%.2f\t%.0f %s/s\t\n", r.name, r.requests, ms(r.p50), ms(r.p99), r.perSecond, r.unit)
	}
	_ = w.Flush()
	fmt.Fprintln(out)
}

// newRollout is a realistic Rollout: three canary steps, Ingress routing, a
// metric check.
func newRollout(name string) *v1beta1.Rollout {
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name, "team": "bench"}},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef:             v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			ProgressDeadlineSeconds: ptr.To[int32](600),
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{
					{Replicas: ptr.To(intstr.FromString("20%")), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("20%")}},
					{Replicas: ptr.To(intstr.FromString("50%")), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("50%")}},
					{Replicas: ptr.To(intstr.FromString("100%"))},
				},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{
					Service: name,
					Ingress: &v1beta1.IngressTrafficRouting{Name: name},
				}},
				Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{
					Name: "error-rate",
					Provider: v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{
						Address: "http://prometheus.monitoring:9090",
						Query:   `sum(rate(http_requests_total{code=~"5..",app="` + name + `"}[1m])) / sum(rate(http_requests_total{app="` + name + `"}[1m]))`,
					}},
					SuccessCondition: "result < 0.05",
				}}},
			}},
		},
	}
}

// createMany creates count Rollouts named prefix-N in ns with workers
// clients in parallel, and returns each request's latency and the wall time.
func createMany(ctx context.Context, c versioned.Interface, ns, prefix string, count, workers int) ([]time.Duration, time.Duration, error) {
	latencies := make([]time.Duration, count)
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				_, err := c.RolloutV1beta1().Rollouts(ns).Create(ctx, newRollout(fmt.Sprintf("%s-%05d", prefix, i)), metav1.CreateOptions{})
				latencies[i] = time.Since(t0)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var firstErr error
feed:
	for i := range count {
		select {
		case next <- i:
		case firstErr = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	return latencies, elapsed, firstErr
}

// populated are the namespaces already filled for list and get benchmarks.
var (
	populatedMu sync.Mutex
	populated   = map[string]bool{}
)

// populate fills ns with count Rollouts once per process.
func populate(ctx context.Context, b *testing.B, c versioned.Interface, ns string, count int) {
	b.Helper()
	populatedMu.Lock()
	defer populatedMu.Unlock()
	if populated[ns] {
		return
	}
	start := time.Now()
	if _, _, err := createMany(ctx, c, ns, "ro", count, 16); err != nil {
		b.Fatalf("populating %s: %v", ns, err)
	}
	b.Logf("populated %s with %d Rollouts in %s", ns, count, time.Since(start).Round(time.Millisecond))
	populated[ns] = true
}

func benchContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}
