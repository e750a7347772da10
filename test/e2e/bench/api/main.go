// Command api benchmarks the rollout.kruise.io API against OpenKruise's own Rollout CRD
// (rollouts.kruise.io), side by side through one kube-apiserver, on a real local control
// plane (test/e2e/framework). `make bench-api` runs it.
//
// Phases, each measured for both APIs with the same ~2 KiB objects and the same raw REST
// calls (JSON bodies, client-go's TLS/HTTP2 transport, no client-side rate limit):
//
//	create  -n objects over -namespaces namespaces, -create-workers in parallel
//	get     -gets random GETs, -get-workers in parallel
//	list    all objects across namespaces, -lists times, unpaginated and with limit=-page
//	watch   -patches merge patches one by one, patch sent → watch event received
//	memory  RSS growth of kube-apiserver / etcd (CRD) and of our server (embedded etcd)
//
// Our server is also measured directly on its own port (GET, LIST, watch, and a small tail of
// creates), which shows what the aggregator's proxy hop costs. The run prints one table and
// rewrites the generated part of docs/benchmarks.md. Flags can also come from the environment:
// BENCH_API_FLAGS="-nice -10 -pprof _output/pprof" make bench-api.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

type options struct {
	n, namespaces, createWorkers int
	gets, getWorkers             int
	lists, page                  int
	patches                      int
	tail, warmup                 int
	timeout, settle              time.Duration
	crdPath, docsPath            string
	pprofDir                     string
	pprofWindow                  time.Duration
	pprofPhases                  string
	controller                   bool
	oursEtcd                     string
	etcdFsync                    bool
	oursArgs                     string
	keep                         bool
	nice                         int
	stopGrace                    time.Duration
}

func parseFlags() *options {
	// `make bench-api` takes no arguments; BENCH_API_FLAGS="-nice -10" passes some.
	if extra := strings.Fields(os.Getenv("BENCH_API_FLAGS")); len(extra) > 0 {
		os.Args = append(append([]string{os.Args[0]}, extra...), os.Args[1:]...)
	}
	o := &options{}
	flag.IntVar(&o.n, "n", 10000, "objects created per API")
	flag.IntVar(&o.namespaces, "namespaces", 10, "namespaces the objects are spread over")
	flag.IntVar(&o.createWorkers, "create-workers", 16, "parallel creates")
	flag.IntVar(&o.gets, "gets", 2000, "random GETs per API")
	flag.IntVar(&o.getWorkers, "get-workers", 8, "parallel GETs")
	flag.IntVar(&o.lists, "lists", 20, "LISTs of all objects per API and mode")
	flag.IntVar(&o.page, "page", 500, "page size of the paginated LIST")
	flag.IntVar(&o.patches, "patches", 500, "one-by-one patches for the watch latency")
	flag.IntVar(&o.tail, "tail", 1000, "creates through the aggregator and directly to our server after the main phases (proxy-hop cost of a write)")
	flag.IntVar(&o.warmup, "warmup", 200, "objects created, read and deleted per API before measuring")
	flag.DurationVar(&o.timeout, "timeout", 12*time.Minute, "bound on control plane start and the measurement (teardown, about a minute at most, comes after)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "pause before each memory reading")
	flag.StringVar(&o.crdPath, "crd", "", "Kruise's Rollout CRD (default: ../shared/crds/rollouts.kruise.io_rollouts.yaml from the repository root)")
	flag.StringVar(&o.docsPath, "docs", "docs/benchmarks.md", "markdown file whose generated section gets this run (relative to the repository root; empty: don't write)")
	flag.StringVar(&o.pprofDir, "pprof", "", "after the measured phases, capture CPU profiles of our server and kube-apiserver per phase (and heap profiles) into this folder")
	flag.DurationVar(&o.pprofWindow, "pprof-window", 10*time.Second, "length of each profiled workload")
	flag.StringVar(&o.pprofPhases, "pprof-phases", "create,get,list,watch", "phases to profile, comma separated")
	flag.BoolVar(&o.controller, "controller", false, "keep our server's embedded release controller on (off by default: the CRD side has no controller either)")
	flag.StringVar(&o.oursEtcd, "ours-etcd", "embedded", "our server's storage: embedded (its own in-process etcd, the default install) or external (the control plane's etcd)")
	flag.BoolVar(&o.etcdFsync, "etcd-fsync", true, "the control plane's etcd fsyncs every commit, as production etcd and our embedded one do; false runs it with --unsafe-no-fsync as the e2e tests do, which favours the CRD's writes")
	flag.StringVar(&o.oursArgs, "ours-args", "", "extra flags for our server, space separated (e.g. \"--etcd-in-process-client=false\" or \"--memory-limit=300Mi\" to compare settings); named in the report")
	flag.DurationVar(&o.stopGrace, "stop-grace", 20*time.Second, "how long our server gets to exit after SIGTERM at the end (then SIGKILL)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run folder (logs) after the run")
	flag.IntVar(&o.nice, "nice", 0, "set this nice value (-20..19; below 0 needs root) on this process before anything starts, so the control plane, our server and the client all inherit it: on a machine busy with other work, a negative value keeps the run's processes from being starved (all of them equally, so the comparison stays fair)")
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	os.Exit(run(o))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-api: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(o *options) int {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		logf("%v: stopping and tearing down (again to exit at once)", sig)
		cancel()
		<-sigs
		os.Exit(2)
	}()

	if o.nice != 0 {
		if err := setNice(o.nice); err != nil {
			logf("-nice %d: %v", o.nice, err)
			return 1
		}
		if err := setAutogroupNice(0, o.nice); err != nil {
			logf("-nice %d: autogroup: %v", o.nice, err)
			return 1
		}
		logf("running at nice %d (children inherit it; each daemon's session gets it too)", o.nice)
	}
	// Our own run folder, always: never someone's E2E_RUN_DIR control plane.
	os.Unsetenv("E2E_RUN_DIR")
	if o.keep {
		os.Setenv("E2E_KEEP", "1")
	}
	fsync := "0"
	if o.etcdFsync {
		fsync = "1"
	}
	if err := os.Setenv("ETCD_FSYNC", fsync); err != nil {
		logf("setting ETCD_FSYNC: %v", err)
		return 1
	}
	c, err := framework.Setup(ctx)
	if c == nil {
		logf("setup: %v", err)
		return 1
	}
	failed := true
	tornDown := false
	teardown := func() {
		if tornDown {
			return
		}
		tornDown = true
		logf("tearing down the control plane")
		if err := c.Teardown(failed); err != nil {
			logf("teardown: %v", err)
		}
	}
	defer teardown()
	if err != nil {
		logf("setup: %v", err)
		return 1
	}

	b, err := newBench(ctx, o, c)
	if err != nil {
		logf("%v", err)
		return 1
	}
	rep, err := b.measure(ctx)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if o.pprofDir != "" {
		if err := b.profile(ctx); err != nil {
			logf("profiling: %v", err) // the measurement stands; report it anyway
		}
	}
	failed = false
	if b.sess != nil {
		d, ok := b.sess.stop(o.stopGrace)
		rep.stopTime, rep.stopOK = d, ok
		logf("rollout-apiserver: SIGTERM → exit %s (graceful: %v)", d.Round(100*time.Millisecond), ok)
	}
	teardown()
	rep.runTime = time.Since(began)

	table := rep.markdown()
	fmt.Println()
	fmt.Println(table)
	fmt.Printf("run time: %s (control plane start to teardown)\n", rep.runTime.Round(time.Second))
	if o.docsPath != "" {
		path := o.docsPath
		if !filepath.IsAbs(path) {
			path = filepath.Join(c.RootDir, path)
		}
		if err := writeDocs(path, rep); err != nil {
			logf("writing %s: %v", path, err)
			return 1
		}
		logf("wrote %s", path)
	}
	return 0
}

// bench holds the environment of a run.
type bench struct {
	o      *options
	c      *framework.Cluster
	srv    *framework.Server
	sess   *sessionServer
	procs  procSet
	kas    *target // any target on the kube-apiserver, for core calls
	ours   *target
	crd    *target
	direct *target
	oursPB *target // ours through the aggregator, read in protobuf (protobuf.go)
	k8sVer string
}

func newBench(ctx context.Context, o *options, c *framework.Cluster) (*bench, error) {
	b := &bench{o: o, c: c}
	var err error
	if b.procs.kas, err = readPidFile(filepath.Join(c.RunDir, "pids", "kube-apiserver.pid")); err != nil {
		return nil, err
	}
	if b.procs.etcd, err = readPidFile(filepath.Join(c.RunDir, "pids", "etcd.pid")); err != nil {
		return nil, err
	}

	var extra []string
	if !o.controller {
		extra = append(extra, "--enable-controller=false")
	}
	switch o.oursEtcd {
	case "embedded":
	case "external":
		extra = append(extra, "--etcd-servers="+c.Env["ETCD_URL"])
	default:
		return nil, fmt.Errorf("-ours-etcd must be embedded or external, not %q", o.oursEtcd)
	}
	extra = append(extra, strings.Fields(o.oursArgs)...)
	logf("starting rollout-apiserver %s", strings.Join(extra, " "))
	if b.srv, err = c.StartServer(ctx, framework.ServerOptions{ExtraArgs: extra}); err != nil {
		return nil, err
	}
	if b.sess, err = restartInOwnSession(ctx, c, b.srv); err != nil {
		return nil, fmt.Errorf("restarting rollout-apiserver in its own session: %w", err)
	}
	b.procs.ours = b.sess.pid()
	if o.nice != 0 {
		for _, pid := range append(runPids(c.RunDir), b.procs.ours) {
			if err := setAutogroupNice(pid, o.nice); err != nil {
				return nil, fmt.Errorf("-nice: pid %d: %w", pid, err)
			}
		}
	}

	kasHC, err := newHTTPClient(c.Config)
	if err != nil {
		return nil, err
	}
	directHC, err := newHTTPClient(b.srv.RESTConfig())
	if err != nil {
		return nil, err
	}
	host := strings.TrimRight(c.Config.Host, "/")
	b.ours = &target{key: "ours", label: "ours (aggregated)", base: host, group: "rollout.kruise.io", version: "v1beta1", hc: kasHC}
	b.crd = &target{key: "crd", label: "Kruise CRD", base: host, group: "rollouts.kruise.io", version: "v1beta1", hc: kasHC}
	b.direct = &target{key: "direct", label: "ours direct", base: b.srv.URL, group: "rollout.kruise.io", version: "v1beta1", hc: directHC}
	b.oursPB = protobufTarget(b.ours)
	b.kas = b.crd

	if resp, err := b.kas.do(ctx, http.MethodGet, host+"/version", nil, ""); err == nil {
		b.k8sVer = jsonField(resp.body, "gitVersion")
	}
	if err := b.installCRD(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// measure runs every phase and returns the report.
func (b *bench) measure(ctx context.Context) (*report, error) {
	o := b.o
	rep := newReport(b)
	rep.loadStart = loadAvg()

	namespaces := []string{"bench-warmup", "bench-tail-agg", "bench-tail-direct", "bench-prof-ours", "bench-prof-crd"}
	for i := range o.namespaces {
		namespaces = append(namespaces, benchNamespace(i, o.namespaces))
	}
	for _, ns := range namespaces {
		if err := b.createNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}

	// --- warm-up: both paths, both servers, then remove what it made ---------------------
	logf("warm-up: %d objects per API created, read, listed and deleted", o.warmup)
	if err := b.warm(ctx); err != nil {
		return nil, err
	}
	rep.idleSample(b.procs, o.settle)
	rep.mem0 = b.procs.mem()
	rep.heap0 = b.heapInUse(ctx)

	// --- create: ABBA halves (CRD, ours, ours, CRD). Each block is bracketed by memory
	// readings, so a process's growth is charged to the API whose objects it took in. ------
	half := o.n / 2
	halves := [][]int{seq(0, half), seq(half, o.n)}
	for bi, step := range []struct {
		t    *target
		part int
	}{{b.crd, 0}, {b.ours, 0}, {b.ours, 1}, {b.crd, 1}} {
		t := step.t
		logf("create %d/4: %d %s objects, %d workers", bi+1, len(halves[step.part]), t.label, o.createWorkers)
		r := rep.res("create", t)
		before := b.procs.mem()
		block(r, b.procs, func() { createObjects(ctx, t, r, halves[step.part], o.namespaces, o.createWorkers, "") })
		if err := tooManyErrors(r, "create "+t.label); err != nil {
			return nil, err
		}
		time.Sleep(o.settle)
		rep.addGrowth(t, b.procs.mem().sub(before))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	for _, t := range []*target{b.ours, b.crd} {
		r := rep.res("create", t)
		logf("  %-18s %.0f objects/s, p50 %s, p99 %s, errors %d", t.label, float64(r.ops)/r.wall.Seconds(), r.lat.pct(50), r.lat.pct(99), r.errs)
	}
	rep.mem1 = b.procs.mem()
	rep.heap1 = b.heapInUse(ctx)
	rep.objBytes = b.objectSizes(ctx)

	// --- get: 4 rounds, the first target rotating per round ------------------------------
	order := []*target{b.ours, b.crd, b.direct, b.oursPB}
	idx := randomIndexes(1, o.gets, o.n)
	const rounds = 4
	logf("get: %d random GETs per path, %d workers, %d interleaved rounds", o.gets, o.getWorkers, rounds)
	for rd := range rounds {
		part := idx[rd*len(idx)/rounds : (rd+1)*len(idx)/rounds]
		for _, t := range rotate(order, rd) {
			r := rep.res("get", t)
			block(r, b.procs, func() { getObjects(ctx, t, r, part, o.namespaces, o.getWorkers) })
		}
	}
	for _, t := range order {
		r := rep.res("get", t)
		logf("  %-18s p50 %s, p99 %s, errors %d", t.label, r.lat.pct(50), r.lat.pct(99), r.errs)
		if err := tooManyErrors(r, "get "+t.label); err != nil {
			return nil, err
		}
	}

	// --- list: per iteration, the first target rotates; CRD first in iteration 0 --------
	order = []*target{b.crd, b.ours, b.direct, b.oursPB}
	logf("list: all %d objects, %d times per path, unpaginated and limit=%d", o.n, o.lists, o.page)
	for i := range o.lists {
		for _, t := range rotate(order, i) {
			r := rep.res("list", t)
			block(r, b.procs, func() { listAll(ctx, t, r, 0, i == 0) })
		}
		for _, t := range rotate(order, i) {
			r := rep.res("listpage", t)
			block(r, b.procs, func() { listAll(ctx, t, r, o.page, i == 0) })
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	for _, t := range order {
		for _, ph := range []string{"list", "listpage"} {
			r := rep.res(ph, t)
			logf("  %-8s %-18s p50 %s, p99 %s, items %d, errors %d", ph, t.label, r.lat.pct(50), r.lat.pct(99), r.items, r.errs)
			if err := tooManyErrors(r, ph+" "+t.label); err != nil {
				return nil, err
			}
			if r.items != o.n {
				return nil, fmt.Errorf("%s %s: listed %d items, want %d", ph, t.label, r.items, o.n)
			}
		}
	}
	rep.idleSample(b.procs, o.settle)
	rep.mem2 = b.procs.mem()
	rep.heap2 = b.heapInUse(ctx)

	// --- watch: ours first in patch 0, then rotating -------------------------------------
	order = []*target{b.ours, b.crd, b.direct, b.oursPB}
	ns := benchNamespace(0, o.namespaces)
	perNS := o.n / o.namespaces
	watchers := map[*target]*watcher{}
	for _, t := range order {
		w, err := openWatch(ctx, t, ns)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", t.label, err)
		}
		watchers[t] = w
		defer w.close()
	}
	logf("watch: %d one-by-one patches per path, patch sent → event received", o.patches)
	for k := range o.patches {
		name := objName((k % perNS) * o.namespaces)
		for _, t := range rotate(order, k) {
			r := rep.res("watch", t)
			block(r, b.procs, func() {
				d, err := patchAndWait(ctx, t, watchers[t], ns, name, fmt.Sprintf("%s-%d", t.key, k))
				if err != nil {
					r.fail(err)
					return
				}
				r.lat.add(d)
				r.ops++
			})
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	for _, t := range order {
		r := rep.res("watch", t)
		logf("  %-18s p50 %s, p99 %s, errors %d", t.label, r.lat.pct(50), r.lat.pct(99), r.errs)
		if err := tooManyErrors(r, "watch "+t.label); err != nil {
			return nil, err
		}
	}

	// --- tail: creates through the aggregator vs directly, ABBA halves --------------------
	if o.tail > 0 {
		logf("tail: %d creates through the aggregator and %d directly to our server", o.tail, o.tail)
		half := o.tail / 2
		halves := [][]int{seq(0, half), seq(half, o.tail)}
		for h, ts := range [][]*target{{b.ours, b.direct}, {b.direct, b.ours}} {
			for _, t := range ts {
				r := rep.res("tail", t)
				nsName := "bench-tail-agg"
				if t == b.direct {
					nsName = "bench-tail-direct"
				}
				block(r, b.procs, func() { createObjects(ctx, t, r, halves[h], o.namespaces, o.createWorkers, nsName) })
			}
		}
		for _, t := range []*target{b.ours, b.direct} {
			r := rep.res("tail", t)
			logf("  %-18s %.0f objects/s, p50 %s, p99 %s, errors %d", t.label, float64(r.ops)/r.wall.Seconds(), r.lat.pct(50), r.lat.pct(99), r.errs)
			if err := tooManyErrors(r, "tail create "+t.label); err != nil {
				return nil, err
			}
		}
	}
	time.Sleep(o.settle)
	rep.mem3 = b.procs.mem()
	rep.heap3 = b.heapInUse(ctx)
	rep.loadEnd = loadAvg()
	return rep, nil
}

// tooManyErrors fails a phase when more than 1% of its operations failed.
func tooManyErrors(r *result, what string) error {
	if r.errs == 0 || r.errs*100 <= r.ops {
		return nil
	}
	return fmt.Errorf("%s: %d of %d operations failed; first errors:\n  %s", what, r.errs, r.errs+r.ops, strings.Join(r.firstErrs, "\n  "))
}
