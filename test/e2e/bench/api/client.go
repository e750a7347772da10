package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// target is one way to reach a Rollout API: ours through the kube-apiserver (aggregated), the
// Kruise CRD through the kube-apiserver, or ours directly on its own port. All three are driven
// by the same raw REST calls with JSON bodies over client-go's TLS transport (HTTP/2, gzip
// accepted, like client-go), so the client side costs the same for each.
type target struct {
	key     string // short id, used in object labels and profile file names
	label   string // column heading
	base    string // https://127.0.0.1:PORT
	group   string
	version string
	hc      *http.Client
	accept  string // Accept of reads; empty: JSON (protobuf.go)
}

func (t *target) apiVersion() string { return t.group + "/" + t.version }

// coll is the collection URL: all namespaces when ns is empty.
func (t *target) coll(ns string) string {
	if ns == "" {
		return fmt.Sprintf("%s/apis/%s/%s/rollouts", t.base, t.group, t.version)
	}
	return fmt.Sprintf("%s/apis/%s/%s/namespaces/%s/rollouts", t.base, t.group, t.version, ns)
}

func (t *target) item(ns, name string) string { return t.coll(ns) + "/" + name }

// newHTTPClient is client-go's transport for cfg (TLS client cert, HTTP/2) without any
// client-side rate limiting: raw http.Client calls never pass through client-go's token
// bucket, so QPS/Burst can't be the bottleneck.
func newHTTPClient(cfg *rest.Config) (*http.Client, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	c.Timeout = 0
	return rest.HTTPClientFor(c)
}

// response is what came back: status, the decoded body, and how many body bytes crossed the
// wire (gzip-compressed size when the server compressed it).
type response struct {
	status int
	body   []byte
	wire   int64
	gzip   bool
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// httpError is a non-2xx answer.
type httpError struct {
	method, url string
	status      int
	body        string
}

func (e *httpError) Error() string {
	b := e.body
	if len(b) > 300 {
		b = b[:300] + "..."
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.url, e.status, strings.TrimSpace(b))
}

// do sends one request and reads the whole answer. Accept-Encoding: gzip is set explicitly
// (client-go's transport would otherwise add it and decompress invisibly), so the wire size
// of the body can be counted; the body is then decompressed here.
func (t *target) do(ctx context.Context, method, u string, body []byte, contentType string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Accept", t.acceptHeader())
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "rollout-bench-api")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	cr := &countingReader{r: resp.Body}
	var r io.Reader = cr
	gz := resp.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return response{}, fmt.Errorf("%s %s: gzip: %w", method, u, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading body: %w", method, u, err)
	}
	out := response{status: resp.StatusCode, body: data, wire: cr.n, gzip: gz}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, &httpError{method: method, url: u, status: resp.StatusCode, body: string(data)}
	}
	return out, nil
}

// timed runs do under a per-request timeout and returns the latency.
func (t *target) timed(ctx context.Context, method, u string, body []byte, contentType string, timeout time.Duration) (response, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r, err := t.do(ctx, method, u, body, contentType)
	return r, time.Since(start), err
}

// listMeta is the list-level metadata.
type listMeta struct {
	ResourceVersion string `json:"resourceVersion"`
	Continue        string `json:"continue"`
}

var (
	metadataKey = []byte(`"metadata":`)
	itemsKey    = []byte(`"items":[`)
)

// topLevelListMeta finds a list's own metadata without decoding its items: typed lists put
// "metadata" before "items", unstructured ones (sorted keys) after. A key `"metadata":` can't
// occur inside a string value (its quotes would be escaped), so the top-level one is the first
// occurrence when it comes before "items", else the last.
func topLevelListMeta(body []byte) (listMeta, error) {
	var m listMeta
	first := bytes.Index(body, metadataKey)
	if first < 0 {
		return m, fmt.Errorf("no metadata in list (%d bytes)", len(body))
	}
	at := first
	if items := bytes.Index(body, itemsKey); items >= 0 && items < first {
		at = bytes.LastIndex(body, metadataKey)
	}
	dec := json.NewDecoder(bytes.NewReader(body[at+len(metadataKey):]))
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("decoding list metadata: %w", err)
	}
	return m, nil
}

func withQuery(u string, q url.Values) string {
	if len(q) == 0 {
		return u
	}
	return u + "?" + q.Encode()
}
