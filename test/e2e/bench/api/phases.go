package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	jsonType      = "application/json"
	mergePatch    = "application/merge-patch+json"
	reqTimeout    = 60 * time.Second
	listTimeout   = 3 * time.Minute
	eventTimeout  = 15 * time.Second
	maxErrorsKept = 5
)

// result is what one measured block of work produced, for one target.
type result struct {
	lat       samples
	ops       int64         // operations that succeeded
	errs      int64         // operations that failed
	firstErrs []string      // a few of the errors, for the report
	wall      time.Duration // summed wall time of the blocks
	cpu       cpuSnap       // server-side CPU charged to the blocks
	wire      int64         // response body bytes on the wire (LIST), summed
	json      int64         // response body bytes after gunzip (LIST), summed
	gzipped   bool          // some response was gzip-encoded
	items     int           // items counted in a checked LIST
	mu        sync.Mutex
}

func (r *result) fail(err error) {
	atomic.AddInt64(&r.errs, 1)
	r.mu.Lock()
	if len(r.firstErrs) < maxErrorsKept {
		r.firstErrs = append(r.firstErrs, err.Error())
	}
	r.mu.Unlock()
}

// block runs fn, charging its wall time and the servers' CPU time to r.
func block(r *result, procs procSet, fn func()) {
	c0 := procs.snap()
	start := time.Now()
	fn()
	r.wall += time.Since(start)
	r.cpu = r.cpu.add(procs.snap().sub(c0))
}

// parallel runs work(i) for i in [0,n) on w goroutines; stops early when ctx ends.
func parallel(ctx context.Context, n, w int, work func(i int)) {
	var next int64 = -1
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n {
					return
				}
				work(i)
			}
		}()
	}
	wg.Wait()
}

// --- create -------------------------------------------------------------------------------

// createObjects creates objects idx[...] (object i in benchNamespace(i, namespaces)) with
// workers goroutines, recording each POST's latency.
func createObjects(ctx context.Context, t *target, r *result, idx []int, namespaces, workers int, nsOverride string) {
	pad := objectPadding(t.apiVersion())
	parallel(ctx, len(idx), workers, func(k int) {
		i := idx[k]
		ns := benchNamespace(i, namespaces)
		if nsOverride != "" {
			ns = nsOverride
		}
		body := objectJSON(t.apiVersion(), ns, i, pad)
		_, d, err := t.timed(ctx, http.MethodPost, t.coll(ns), body, jsonType, reqTimeout)
		if err != nil {
			r.fail(err)
			return
		}
		r.lat.add(d)
		atomic.AddInt64(&r.ops, 1)
	})
}

// --- get ----------------------------------------------------------------------------------

func getObjects(ctx context.Context, t *target, r *result, idx []int, namespaces, workers int) {
	parallel(ctx, len(idx), workers, func(k int) {
		i := idx[k]
		_, d, err := t.timed(ctx, http.MethodGet, t.item(benchNamespace(i, namespaces), objName(i)), nil, "", reqTimeout)
		if err != nil {
			r.fail(err)
			return
		}
		r.lat.add(d)
		atomic.AddInt64(&r.ops, 1)
	})
}

// --- list ---------------------------------------------------------------------------------

// listAll lists every rollout in every namespace; with limit > 0 it follows continue tokens
// and the latency is that of the whole walk. count=true also counts the items (decoding
// them, after the clock stopped).
func listAll(ctx context.Context, t *target, r *result, limit int, count bool) {
	var pages [][]byte
	var wire, js int64
	var gz bool
	start := time.Now()
	cont := ""
	for {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
			if cont != "" {
				q.Set("continue", cont)
			}
		}
		resp, _, err := t.timed(ctx, http.MethodGet, withQuery(t.coll(""), q), nil, "", listTimeout)
		if err != nil {
			r.fail(err)
			return
		}
		wire += resp.wire
		js += int64(len(resp.body))
		gz = gz || resp.gzip
		if count {
			pages = append(pages, resp.body)
		}
		if limit <= 0 {
			break
		}
		m, err := t.listMeta(resp.body)
		if err != nil {
			r.fail(err)
			return
		}
		if m.Continue == "" {
			break
		}
		cont = m.Continue
	}
	r.lat.add(time.Since(start))
	atomic.AddInt64(&r.ops, 1)
	r.wire += wire
	r.json += js
	r.gzipped = r.gzipped || gz
	if count {
		n := 0
		for _, p := range pages {
			items, err := t.countItems(p)
			if err != nil {
				r.fail(err)
				return
			}
			n += items
		}
		r.items = n
	}
}

// --- watch --------------------------------------------------------------------------------

type watchEvent struct {
	typ, name, mark string
	at              time.Time
}

// watcher is one open watch on a namespace's rollouts.
type watcher struct {
	t      *target
	events chan watchEvent
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

const watchLabel = "bench-watch"

// openWatch lists the namespace (limit=1) for a resourceVersion and watches from there, so
// no synthetic ADDED events arrive. Events are decoded and timestamped as they arrive.
func openWatch(ctx context.Context, t *target, ns string) (*watcher, error) {
	resp, err := t.do(ctx, http.MethodGet, withQuery(t.coll(ns), url.Values{"limit": {"1"}}), nil, "")
	if err != nil {
		return nil, err
	}
	m, err := t.listMeta(resp.body)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(wctx, http.MethodGet,
		withQuery(t.coll(ns), url.Values{"watch": {"true"}, "resourceVersion": {m.ResourceVersion}}), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", t.acceptHeader())
	req.Header.Set("User-Agent", "rollout-bench-api")
	hresp, err := t.hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if hresp.StatusCode != http.StatusOK {
		hresp.Body.Close()
		cancel()
		return nil, fmt.Errorf("watch %s: HTTP %d", t.coll(ns), hresp.StatusCode)
	}
	w := &watcher{t: t, events: make(chan watchEvent, 100000), cancel: cancel, done: make(chan struct{})}
	if t.protobuf() {
		go w.readProtobufWatch(func() bool { return wctx.Err() != nil }, hresp.Body)
		return w, nil
	}
	go func() {
		defer close(w.done)
		defer hresp.Body.Close()
		dec := json.NewDecoder(hresp.Body)
		for {
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Metadata struct {
						Name   string            `json:"name"`
						Labels map[string]string `json:"labels"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				if wctx.Err() == nil {
					w.err = err
				}
				close(w.events)
				return
			}
			w.events <- watchEvent{typ: ev.Type, name: ev.Object.Metadata.Name, mark: ev.Object.Metadata.Labels[watchLabel], at: time.Now()}
		}
	}()
	return w, nil
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}

// patchAndWait sends a merge patch that sets the watch label on ns/name to mark, through
// pt, and waits for w to deliver the MODIFIED event carrying it. Latency: patch sent → event
// received. Events for other marks (other targets' patches seen by this watch) are skipped.
func patchAndWait(ctx context.Context, pt *target, w *watcher, ns, name, mark string) (time.Duration, error) {
	body := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, watchLabel, mark)
	start := time.Now()
	if _, _, err := pt.timed(ctx, http.MethodPatch, pt.item(ns, name), body, mergePatch, reqTimeout); err != nil {
		return 0, err
	}
	timeout := time.NewTimer(eventTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				return 0, fmt.Errorf("watch of %s closed: %v", w.t.label, w.err)
			}
			if ev.typ == "ERROR" {
				return 0, fmt.Errorf("watch of %s: ERROR event", w.t.label)
			}
			if ev.name == name && ev.mark == mark {
				return ev.at.Sub(start), nil
			}
		case <-timeout.C:
			return 0, fmt.Errorf("no watch event for %s %s/%s=%s within %s", w.t.label, ns, name, mark, eventTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// --- helpers ------------------------------------------------------------------------------

// rotate returns ts rotated left by k: per round, a different target goes first.
func rotate[T any](ts []T, k int) []T {
	out := make([]T, 0, len(ts))
	for i := range ts {
		out = append(out, ts[(i+k)%len(ts)])
	}
	return out
}

// randomIndexes are n indexes in [0,max) from a fixed seed: every target gets the same ones.
func randomIndexes(seed int64, n, maxIdx int) []int {
	rng := rand.New(rand.NewSource(seed))
	out := make([]int, n)
	for i := range out {
		out[i] = rng.Intn(maxIdx)
	}
	return out
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// retry calls fn until it succeeds or timeout passes (the CRD's endpoint can 404 for a moment
// after Established; the namespace informer of our server can lag a new namespace).
func retry(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// jsonItems counts the items of a JSON list page.
func jsonItems(page []byte) (int, error) {
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(page, &l); err != nil {
		return 0, fmt.Errorf("decoding list page: %w", err)
	}
	return len(l.Items), nil
}
