package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/bench/internal/prom"
)

// webhookName is the name of our workload webhook in its MutatingWebhookConfiguration, as
// kube-apiserver labels its admission metrics with it.
const webhookName = "workloads.rollout.kruise.io"

// kubeMetrics scrapes kube-apiserver's /metrics.
func (b *bench) kubeMetrics(ctx context.Context) (prom.Families, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	data, err := b.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver /metrics: %w", err)
	}
	return prom.Parse(data)
}

// scrapeTimeout bounds one /metrics read, so that a stalled server cannot hold a wait that
// has its own bound.
const scrapeTimeout = 10 * time.Second

// ourMetrics scrapes rollout-apiserver's /metrics.
func (b *bench) ourMetrics(ctx context.Context) (prom.Families, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
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
	return prom.Parse(data)
}

// webhookLatency reads kube-apiserver's histogram of the time its calls to our webhook took
// (apiserver_admission_webhook_admission_duration_seconds, summed over its other labels):
// the webhook's own latency as its caller sees it, without the rest of the update.
func (b *bench) webhookLatency(ctx context.Context) (prom.Histogram, error) {
	fams, err := b.kubeMetrics(ctx)
	if err != nil {
		return prom.Histogram{}, err
	}
	return fams.Histogram("apiserver_admission_webhook_admission_duration_seconds", map[string]string{"name": webhookName}), nil
}

// webhookHandling reads our server's histogram of the time the webhook's handler took
// (rollout_webhook_admission_duration_seconds): the part of a call spent deciding, after the
// connection, the server's filters and waiting for a CPU.
func (b *bench) webhookHandling(ctx context.Context) (prom.Histogram, error) {
	fams, err := b.ourMetrics(ctx)
	if err != nil {
		return prom.Histogram{}, err
	}
	return fams.Histogram("rollout_webhook_admission_duration_seconds", nil), nil
}
