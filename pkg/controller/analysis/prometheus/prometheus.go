// Package prometheus is the Prometheus metric provider of the analysis
// package: instant queries through client_golang's HTTP API client, with a
// time limit per query, a cap on the size of an answer, and no redirects (a
// redirect could lead the controller to an address the server does not allow).
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/analysis"
)

// Defaults of Options.
const (
	DefaultQueryTimeout     = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Options bound what one query may cost the controller.
type Options struct {
	// QueryTimeout bounds one query, connection included; it is also sent to
	// Prometheus as the query's own timeout.
	QueryTimeout time.Duration
	// MaxResponseBytes caps the body of an answer; a longer one is an error.
	MaxResponseBytes int64
}

// Provider queries Prometheus servers. It keeps one API client per address.
type Provider struct {
	opts   Options
	client *http.Client

	mu   sync.Mutex
	apis map[string]promv1.API
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a Provider; zero options take the defaults.
func New(opts Options) *Provider {
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: opts.QueryTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: opts.QueryTimeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Provider{
		opts: opts,
		client: &http.Client{
			Transport: &limitedTransport{next: transport, limit: opts.MaxResponseBytes},
			Timeout:   opts.QueryTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("redirects are not followed")
			},
		},
		apis: map[string]promv1.API{},
	}
}

func (p *Provider) api(address string) (promv1.API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.apis[address]; ok {
		return a, nil
	}
	c, err := api.NewClient(api.Config{Address: address, Client: p.client})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", address, err)
	}
	a := promv1.NewAPI(c)
	// Addresses come from Rollouts; bound the cache so a stream of distinct
	// addresses cannot grow it without end.
	if len(p.apis) >= 64 {
		clear(p.apis)
	}
	p.apis[address] = a
	return a, nil
}

// Query runs an instant query at time at and reduces its answer to one
// number: a scalar, or an instant vector of exactly one sample. No sample,
// more than one, or NaN make the value inconclusive; a range vector or a
// string, a refused query or an unreachable server are errors.
func (p *Provider) Query(ctx context.Context, address, query string, at time.Time) (analysis.Value, error) {
	a, err := p.api(address)
	if err != nil {
		return analysis.Value{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	result, warnings, err := a.Query(ctx, query, at, promv1.WithTimeout(p.opts.QueryTimeout))
	if err != nil {
		return analysis.Value{}, fmt.Errorf("querying %s: %w", address, err)
	}
	if len(warnings) > 0 {
		klog.V(2).InfoS("Prometheus warned about a query", "address", address, "warnings", warnings)
	}
	return reduce(result)
}

func reduce(result model.Value) (analysis.Value, error) {
	var v float64
	switch r := result.(type) {
	case *model.Scalar:
		v = float64(r.Value)
	case model.Vector:
		switch len(r) {
		case 0:
			return analysis.Value{Inconclusive: "the query returned no data"}, nil
		case 1:
			v = float64(r[0].Value)
		default:
			return analysis.Value{Inconclusive: fmt.Sprintf("the query returned %d series where one is expected; aggregate it, e.g. with sum()", len(r))}, nil
		}
	default:
		return analysis.Value{}, fmt.Errorf("the query returned a %s; it must yield a scalar or an instant vector", result.Type())
	}
	if math.IsNaN(v) {
		return analysis.Value{Number: v, Inconclusive: "the query returned NaN (for example a ratio with no requests)"}, nil
	}
	return analysis.Value{Number: v}, nil
}

// limitedTransport fails a response whose body is longer than limit, so a
// misbehaving server cannot make the controller read without end.
type limitedTransport struct {
	next  http.RoundTripper
	limit int64
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.limit {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("the answer is %d bytes, more than the limit of %d", resp.ContentLength, t.limit)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.limit}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

// errTooLarge is returned by a body read past the limit.
var errTooLarge = errors.New("the answer is larger than the response size limit")

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
