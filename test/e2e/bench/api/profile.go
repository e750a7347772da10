package main

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// profile runs, after the measured phases, each phase's workload for -pprof-window through
// ours (aggregated) and through the CRD while capturing CPU profiles of kube-apiserver and
// (for ours) rollout-apiserver from their /debug/pprof, then heap profiles of both. The
// measured numbers are not affected: profiling happens after them.
func (b *bench) profile(ctx context.Context) error {
	dir := b.o.pprofDir
	if !filepath.IsAbs(dir) {
		wd, _ := os.Getwd()
		dir = filepath.Join(wd, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	window := b.o.pprofWindow
	secs := int(window.Seconds())
	var nextObj int64 = 200000 // names of objects the create profile makes
	for _, phase := range strings.Split(b.o.pprofPhases, ",") {
		phase = strings.TrimSpace(phase)
		targets := []*target{b.ours, b.crd}
		if phase != "create" {
			targets = append(targets, b.direct)
		}
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("profiling %s through %s for %s", phase, t.label, window)
			var wg sync.WaitGroup
			var errs []error
			var mu sync.Mutex
			capture := func(base, name string, hc *target) {
				defer wg.Done()
				resp, err := hc.do(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil, "")
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%s.pprof", phase, t.key, name)), resp.body, 0o644)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s profile: %w", name, err))
					mu.Unlock()
				}
			}
			wg.Add(2)
			go capture(b.kas.base, "kube-apiserver", b.kas)
			go capture(b.direct.base, "rollout-apiserver", b.direct)
			time.Sleep(100 * time.Millisecond) // let the profilers start
			deadline := time.Now().Add(window - 200*time.Millisecond)
			ops, err := b.workload(ctx, phase, t, deadline, &nextObj)
			if err != nil {
				errs = append(errs, err)
			}
			wg.Wait()
			logf("  %d operations (%.0f/s)", ops, float64(ops)/window.Seconds())
			if len(errs) > 0 {
				return fmt.Errorf("%s/%s: %v", phase, t.key, errs)
			}
		}
	}
	for _, p := range []struct {
		base, name string
		t          *target
	}{{b.kas.base, "kube-apiserver", b.kas}, {b.direct.base, "rollout-apiserver", b.direct}} {
		resp, err := p.t.do(ctx, http.MethodGet, p.base+"/debug/pprof/heap", nil, "")
		if err != nil {
			return fmt.Errorf("%s heap profile: %w", p.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "heap-"+p.name+".pprof"), resp.body, 0o644); err != nil {
			return err
		}
	}
	logf("profiles in %s (go tool pprof -top FILE)", dir)
	return nil
}

// workload repeats one phase's operation through t until deadline.
func (b *bench) workload(ctx context.Context, phase string, t *target, deadline time.Time, nextObj *int64) (int64, error) {
	o := b.o
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r := &result{}
	var ops int64
	untilDone := func(workers int, fn func()) {
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					fn()
					atomic.AddInt64(&ops, 1)
				}
			}()
		}
		wg.Wait()
	}
	switch phase {
	case "create":
		ns := "bench-prof-" + t.key
		pad := objectPadding(t.apiVersion())
		untilDone(o.createWorkers, func() {
			i := int(atomic.AddInt64(nextObj, 1))
			if _, err := t.do(ctx, http.MethodPost, t.coll(ns), objectJSON(t.apiVersion(), ns, i, pad), jsonType); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
		})
	case "get":
		var mu sync.Mutex
		rng := rand.New(rand.NewSource(2))
		untilDone(o.getWorkers, func() {
			mu.Lock()
			i := rng.Intn(o.n)
			mu.Unlock()
			if _, err := t.do(ctx, http.MethodGet, t.item(benchNamespace(i, o.namespaces), objName(i)), nil, ""); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
		})
	case "list":
		untilDone(1, func() {
			if _, err := t.do(ctx, http.MethodGet, t.coll(""), nil, ""); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
		})
	case "watch":
		ns := benchNamespace(1, o.namespaces)
		w, err := openWatch(context.WithoutCancel(ctx), t, ns)
		if err != nil {
			return 0, err
		}
		defer w.close()
		k := 0
		perNS := o.n / o.namespaces
		for ctx.Err() == nil {
			name := objName((k%perNS)*o.namespaces + 1)
			if _, err := patchAndWait(ctx, t, w, ns, name, fmt.Sprintf("prof-%s-%d", t.key, k)); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
			k++
			ops++
		}
	default:
		return 0, fmt.Errorf("unknown phase %q in -pprof-phases", phase)
	}
	if r.errs > 0 {
		return ops, fmt.Errorf("%s through %s: %d errors, first: %s", phase, t.label, r.errs, r.firstErrs[0])
	}
	return ops, nil
}
