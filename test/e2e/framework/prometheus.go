package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PrometheusOptions tune StartPrometheus.
type PrometheusOptions struct {
	// Name names the log, pid file and data folder (default "prometheus").
	Name string
	// ScrapeInterval is how often every target is scraped (default 1s).
	ScrapeInterval time.Duration
	// Targets are host:port addresses whose /metrics Prometheus scrapes, all in the job
	// PrometheusJob.
	Targets []string
}

// PrometheusJob is the job name of the targets of StartPrometheus.
const PrometheusJob = "e2e"

// Prometheus is a real Prometheus server (bin/prometheus, built by hack/build-prometheus.sh)
// on a free loopback port, scraping the given targets with a short interval. Its port,
// configuration and TSDB folder stay the same across Stop/Start, like a restarted pod, so
// a metric check pointed at URL reaches it again once it is back.
type Prometheus struct {
	// URL is http://127.0.0.1:PORT, for a metric check's provider.prometheus.address.
	URL string
	// ScrapeInterval is the configured scrape interval.
	ScrapeInterval time.Duration

	Process
	api promv1.API
}

// StartPrometheus writes a configuration for opts, starts bin/prometheus with its data in
// RUN_DIR/<name>/ and waits until it is ready. It is stopped at Teardown at the latest.
func (c *Cluster) StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.Name == "" {
		opts.Name = "prometheus"
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	bin := filepath.Join(c.RootDir, "bin", "prometheus")
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%s is missing: build it with hack/build-prometheus.sh (part of `make tools`)", bin)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.RunDir, opts.Name)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(prometheusConfig(opts)), 0o644); err != nil {
		return nil, err
	}
	p := &Prometheus{
		URL:            fmt.Sprintf("http://127.0.0.1:%d", port),
		ScrapeInterval: opts.ScrapeInterval,
		Process: Process{
			Binary: bin,
			Args: []string{
				"--config.file=" + config,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
				"--log.level=warn",
			},
			dir:     dir,
			logPath: filepath.Join(c.RunDir, "logs", opts.Name+".log"),
			pidPath: filepath.Join(c.RunDir, "pids", opts.Name+".pid"),
		},
	}
	client, err := promapi.NewClient(promapi.Config{Address: p.URL})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", p.URL, err)
	}
	p.api = promv1.NewAPI(client)
	c.onTeardown(p.Stop)
	return p, p.Start(ctx)
}

// prometheusConfig is a configuration that scrapes opts.Targets every opts.ScrapeInterval.
func prometheusConfig(opts PrometheusOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", model.Duration(opts.ScrapeInterval), model.Duration(opts.ScrapeInterval))
	fmt.Fprintf(&b, "scrape_configs:\n- job_name: %s\n  static_configs:\n  - targets: [", PrometheusJob)
	for i, t := range opts.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", t)
	}
	b.WriteString("]\n")
	return b.String()
}

// Start starts the process (if it is not running) and waits until /-/ready answers.
func (p *Prometheus) Start(ctx context.Context) error {
	if err := p.spawn(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	last, err := p.waitHTTPOK(ctx, p.URL+"/-/ready")
	if err != nil {
		return fmt.Errorf("prometheus %s not ready (last: %s): %w", p.URL, last, err)
	}
	logf("prometheus %s (pid %d) ready in %s", p.URL, p.Pid(), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 20s). Its data stays for Start.
func (p *Prometheus) Stop() error {
	if err := p.signalAndWait(syscall.SIGTERM, 20*time.Second); err != nil {
		return p.Kill()
	}
	return nil
}

// Query evaluates an instant PromQL query now.
func (p *Prometheus) Query(ctx context.Context, query string) (model.Value, error) {
	v, _, err := p.api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %q on %s: %w", query, p.URL, err)
	}
	return v, nil
}

// WaitTargetsUp waits until every target of PrometheusJob has been scraped successfully
// (up == 1), so queries over them have data.
func (p *Prometheus) WaitTargetsUp(ctx context.Context, n int) error {
	var last string
	err := pollUntil(ctx, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		v, err := p.Query(ctx, fmt.Sprintf("count(up{job=%q} == 1)", PrometheusJob))
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = v.String()
		vec, ok := v.(model.Vector)
		return ok && len(vec) == 1 && int(vec[0].Value) >= n, nil
	})
	if err != nil {
		return fmt.Errorf("prometheus %s: %d targets of job %s not up (last: %s): %w", p.URL, n, PrometheusJob, last, err)
	}
	return nil
}
