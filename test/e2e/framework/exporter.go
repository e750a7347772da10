package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// ExporterMetric is the counter the Exporter serves: requests answered by the pods of a
// tracked workload, by revision and status code, the way a service mesh or an ingress
// reports them. Labels: namespace, rollout, revision (the pods' pod-template-hash, or
// controller-revision-hash for StatefulSets and DaemonSets), code ("200" or "500").
const ExporterMetric = "e2e_http_requests_total"

// ExporterErrorRatioQuery is the PromQL of a metric check on the Exporter: the share of the
// canary revision's requests that failed over the last two scrapes (irate), so a change of
// the error rate shows in the first scrape after it; or, for a revision scraped only once so
// far (irate needs two samples), the share since its pods started. It uses the query
// variables of docs/api.md, so the controller fills in the Rollout and revision.
const ExporterErrorRatioQuery = `sum(irate(` + exporterFailed + `[1m])) / sum(irate(` + exporterAll + `[1m]))` +
	` or sum(` + exporterFailed + `) / sum(` + exporterAll + `)`

const (
	exporterAll    = ExporterMetric + `{namespace={{namespace}},rollout={{rollout}},revision={{canaryRevision}}}`
	exporterFailed = ExporterMetric + `{namespace={{namespace}},rollout={{rollout}},revision={{canaryRevision}},code="500"}`
)

// Exporter is an HTTP server in the test process, on a free loopback port, that exposes
// ExporterMetric (client_golang) for Prometheus to scrape. At every scrape it lists the
// live pods of each tracked workload and counts RequestsPerPod requests a second for each
// since the previous scrape; the share that failed is the error rate the test set for the
// pod's image (SetErrorRate), so the test decides whether a revision is healthy.
type Exporter struct {
	// Addr is 127.0.0.1:PORT, a Prometheus scrape target.
	Addr string
	// RequestsPerPod is the request rate of one live pod, per second.
	RequestsPerPod float64

	kube kubernetes.Interface
	srv  *http.Server
	desc *prometheus.Desc

	mu      sync.Mutex
	targets map[string]exporterTarget  // namespace/rollout →
	rates   map[string]float64         // namespace/image → error rate
	series  map[exporterSeries]*served // what each revision has served
	last    time.Time                  // when the counts were last advanced
}

type exporterTarget struct {
	namespace, rollout string
	selector           labels.Selector
}

type exporterSeries struct {
	namespace, rollout, revision string
}

// served is what one revision's pods answered so far, and how many pods (per image) ran
// it at the last look, which is the rate until the next look.
type served struct {
	ok, failed float64
	pods       map[string]int // image → live pods
}

// StartExporter starts an Exporter that reads pods through c.Client. It is stopped at
// Teardown at the latest.
func (c *Cluster) StartExporter() (*Exporter, error) {
	return StartExporter(c.Client, c)
}

// StartExporter starts an Exporter reading pods with kube; c (if not nil) stops it at its
// Teardown.
func StartExporter(kube kubernetes.Interface, c *Cluster) (*Exporter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("exporter listener: %w", err)
	}
	e := &Exporter{
		Addr:           l.Addr().String(),
		RequestsPerPod: 10,
		kube:           kube,
		desc: prometheus.NewDesc(ExporterMetric, "Requests answered by the pods of a tracked workload, by revision and code.",
			[]string{"namespace", "rollout", "revision", "code"}, nil),
		targets: map[string]exporterTarget{},
		rates:   map[string]float64{},
		series:  map[exporterSeries]*served{},
		last:    time.Now(),
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(e); err != nil {
		l.Close()
		return nil, fmt.Errorf("exporter registry: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := e.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("exporter %s: %v", e.Addr, err)
		}
	}()
	if c != nil {
		c.onTeardown(e.Close)
	}
	logf("exporter serving %s on http://%s/metrics", ExporterMetric, e.Addr)
	return e, nil
}

// Close stops the HTTP server.
func (e *Exporter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.srv.Shutdown(ctx)
}

// Track counts the requests of the pods in namespace that match selector, as the
// workload of Rollout rollout.
func (e *Exporter) Track(namespace, rollout string, selector map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.targets[namespace+"/"+rollout] = exporterTarget{namespace: namespace, rollout: rollout, selector: labels.SelectorFromSet(selector)}
}

// SetErrorRate makes the pods running image in namespace fail rate (0 to 1) of their
// requests from now on. What was served until now is counted at the previous rate.
func (e *Exporter) SetErrorRate(namespace, image string, rate float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceLocked(time.Now())
	e.rates[namespace+"/"+image] = rate
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

// Collect implements prometheus.Collector: it counts what was served since the last
// scrape, looks at the pods again, and reports every revision seen so far.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	pods := e.listPods()
	e.mu.Lock()
	defer e.mu.Unlock()
	// A revision seen for the first time is counted since the last look too: its pods
	// started in between, and its first sample then already says how they fare.
	for k, counts := range pods {
		if _, ok := e.series[k]; !ok {
			e.series[k] = &served{pods: counts}
		}
	}
	e.advanceLocked(time.Now())
	for k, s := range e.series {
		s.pods = pods[k] // nil: no pods left; the counters stay as they are
	}
	for k, s := range e.series {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, s.ok, k.namespace, k.rollout, k.revision, "200")
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, s.failed, k.namespace, k.rollout, k.revision, "500")
	}
}

// advanceLocked counts what every revision served since e.last at the current pod counts
// and error rates.
func (e *Exporter) advanceLocked(now time.Time) {
	dt := now.Sub(e.last).Seconds()
	e.last = now
	if dt <= 0 {
		return
	}
	for k, s := range e.series {
		for image, n := range s.pods {
			requests := float64(n) * e.RequestsPerPod * dt
			failed := requests * e.rates[k.namespace+"/"+image]
			s.ok += requests - failed
			s.failed += failed
		}
	}
}

// listPods returns, per series, the live pods of each image of the tracked workloads. A
// namespace that cannot be listed (say, deleted) contributes nothing.
func (e *Exporter) listPods() map[exporterSeries]map[string]int {
	e.mu.Lock()
	targets := make([]exporterTarget, 0, len(e.targets))
	for _, t := range e.targets {
		targets = append(targets, t)
	}
	e.mu.Unlock()
	out := map[exporterSeries]map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, t := range targets {
		list, err := e.kube.CoreV1().Pods(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: t.selector.String()})
		if err != nil {
			continue
		}
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || len(p.Spec.Containers) == 0 {
				continue
			}
			rev := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			if rev == "" {
				rev = p.Labels[appsv1.ControllerRevisionHashLabelKey]
			}
			k := exporterSeries{namespace: t.namespace, rollout: t.rollout, revision: rev}
			if out[k] == nil {
				out[k] = map[string]int{}
			}
			out[k][p.Spec.Containers[0].Image]++
		}
	}
	return out
}
