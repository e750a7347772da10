package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"time"
)

// report is everything a run measured.
type report struct {
	b       *bench
	results map[string]*result // phase/target key
	// memory readings: after warm-up, after the creates, after the LISTs, at the end
	mem0, mem1, mem2, mem3 memSnap
	// Go heap in use of kube-apiserver and our server at the same four points (heap.go)
	heap0, heap1, heap2, heap3 heapSnap
	// RSS growth over each API's create blocks (kube-apiserver, etcd, rollout-apiserver)
	growth             map[string]memSnap
	objBytes           objectSizes
	loadStart, loadEnd string
	runTime            time.Duration
	idle               cpuSnap       // server CPU seconds while nothing ran...
	idleWall           time.Duration // ...over this long
	stopTime           time.Duration // our server: SIGTERM → exit
	stopOK             bool          // it exited by itself within -stop-grace
	date               time.Time
}

func newReport(b *bench) *report {
	return &report{b: b, results: map[string]*result{}, growth: map[string]memSnap{}, date: time.Now()}
}

func (r *report) res(phase string, t *target) *result {
	k := phase + "/" + t.key
	if r.results[k] == nil {
		r.results[k] = &result{}
	}
	return r.results[k]
}

// idleSample sleeps d and records the servers' CPU meanwhile: their background rate
// (controller-manager informers, leases, compaction...), subtracted from each block.
func (r *report) idleSample(p procSet, d time.Duration) {
	c0 := p.snap()
	time.Sleep(d)
	r.idle = r.idle.add(p.snap().sub(c0))
	r.idleWall += d
}

// busyCPU is a block's server CPU minus the background rate over its wall time.
func (r *report) busyCPU(x *result) cpuSnap {
	if r.idleWall <= 0 {
		return x.cpu
	}
	f := x.wall.Seconds() / r.idleWall.Seconds()
	c := x.cpu.sub(cpuSnap{r.idle.kas * f, r.idle.etcd * f, r.idle.ours * f})
	c.kas, c.etcd, c.ours = max(c.kas, 0), max(c.etcd, 0), max(c.ours, 0)
	return c
}

func (r *report) addGrowth(t *target, d memSnap) { r.growth[t.key] = r.growth[t.key].add(d) }

func (r *report) get(phase string, t *target) *result { return r.results[phase+"/"+t.key] }

// --- formatting ---------------------------------------------------------------------------

func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "—"
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.1f s", ms/1000)
	}
}

func fmtMiB(kib float64) string {
	m := kib / 1024
	if math.Abs(m) < 10 {
		return fmt.Sprintf("%+.1f MiB", m)
	}
	return fmt.Sprintf("%+.0f MiB", m)
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// row is one line of the table. Numbers are kept for the ratio; text is what is shown.
type row struct {
	name                 string
	ours, crd, direct    float64
	oursS, crdS, directS string
	hasCRD, hasDirect    bool
	higherBetter         bool
	hop                  string // cost of the aggregator hop (ours − direct)
	note                 string
}

func (w row) ratio() (string, string) {
	if !w.hasCRD || w.crd == 0 || w.ours == 0 {
		return "—", "—"
	}
	q := w.ours / w.crd
	if w.crd < 0 || w.ours < 0 { // a negative memory growth: don't pretend a ratio
		return "—", "—"
	}
	better := "even"
	factor := q
	if !w.higherBetter {
		factor = 1 / q
	}
	fx := func(f float64) string {
		if f > 20 {
			return ">20×"
		}
		return fmt.Sprintf("%.1f×", f)
	}
	switch {
	case factor >= 1.05:
		better = "ours (" + fx(factor) + ")"
	case factor <= 1/1.05:
		better = "CRD (" + fx(1/factor) + ")"
	}
	return fmt.Sprintf("%.2f", q), better
}

func latRow(name string, rs []*result, p float64) row {
	w := row{name: name}
	v := func(r *result) (float64, string) {
		if r == nil || r.lat.n() == 0 {
			return 0, "—"
		}
		d := r.lat.pct(p)
		return float64(d), fmtDur(d)
	}
	w.ours, w.oursS = v(rs[0])
	w.crd, w.crdS = v(rs[1])
	w.hasCRD = rs[1] != nil
	if len(rs) > 2 && rs[2] != nil {
		w.direct, w.directS = v(rs[2])
		w.hasDirect = true
		if w.ours > 0 && w.direct > 0 {
			d := time.Duration(w.ours - w.direct)
			sign := "+"
			if d < 0 {
				sign, d = "−", -d
			}
			w.hop = fmt.Sprintf("%s%s (%+.0f%%)", sign, fmtDur(d), (w.ours/w.direct-1)*100)
		}
	}
	return w
}

// --- the table ----------------------------------------------------------------------------

func (r *report) rows() []row {
	b := r.b
	o, c, d := b.ours, b.crd, b.direct
	g := r.get
	var rows []row

	// create
	cr := row{name: fmt.Sprintf("create %d (%d workers): objects/s", b.o.n, b.o.createWorkers), higherBetter: true, hasCRD: true}
	if x := g("create", o); x != nil && x.wall > 0 {
		cr.ours = float64(x.ops) / x.wall.Seconds()
		cr.oursS = fmt.Sprintf("%.0f", cr.ours)
	}
	if x := g("create", c); x != nil && x.wall > 0 {
		cr.crd = float64(x.ops) / x.wall.Seconds()
		cr.crdS = fmt.Sprintf("%.0f", cr.crd)
	}
	rows = append(rows, cr)
	rows = append(rows, latRow("create p50", []*result{g("create", o), g("create", c)}, 50))
	rows = append(rows, latRow("create p99", []*result{g("create", o), g("create", c)}, 99))
	if b.o.tail > 0 {
		tr := row{name: fmt.Sprintf("create %d more, after the run (ours only): objects/s", b.o.tail), higherBetter: true, hasDirect: true}
		if x := g("tail", o); x != nil && x.wall > 0 {
			tr.ours = float64(x.ops) / x.wall.Seconds()
			tr.oursS = fmt.Sprintf("%.0f", tr.ours)
		}
		if x := g("tail", d); x != nil && x.wall > 0 {
			tr.direct = float64(x.ops) / x.wall.Seconds()
			tr.directS = fmt.Sprintf("%.0f", tr.direct)
		}
		if tr.direct > 0 {
			tr.hop = fmt.Sprintf("%+.0f%% objects/s", (tr.ours/tr.direct-1)*100)
		}
		tr.crdS = "—"
		rows = append(rows, tr)
		t50 := latRow("… its create p50", []*result{g("tail", o), nil, g("tail", d)}, 50)
		t99 := latRow("… its create p99", []*result{g("tail", o), nil, g("tail", d)}, 99)
		t50.crdS, t99.crdS = "—", "—"
		rows = append(rows, t50, t99)
	}

	// get
	gr := []*result{g("get", o), g("get", c), g("get", d)}
	rows = append(rows, latRow(fmt.Sprintf("GET (%d random, %d workers) p50", b.o.gets, b.o.getWorkers), gr, 50))
	rows = append(rows, latRow("GET p99", gr, 99))

	// list
	for _, ph := range []struct{ key, name string }{
		{"list", fmt.Sprintf("LIST all %d, unpaginated", b.o.n)},
		{"listpage", fmt.Sprintf("LIST all %d, limit=%d", b.o.n, b.o.page)},
	} {
		lr := []*result{g(ph.key, o), g(ph.key, c), g(ph.key, d)}
		rows = append(rows, latRow(fmt.Sprintf("%s (×%d) p50", ph.name, b.o.lists), lr, 50))
		rows = append(rows, latRow("… p99", lr, 99))
		bw := row{name: "… bytes on the wire per LIST (gzip)", hasCRD: true, hasDirect: true}
		bj := row{name: "… JSON bytes per LIST (decompressed)", hasCRD: true, hasDirect: true}
		for i, x := range lr {
			if x == nil || x.ops == 0 {
				continue
			}
			wv, jv := float64(x.wire)/float64(x.ops), float64(x.json)/float64(x.ops)
			switch i {
			case 0:
				bw.ours, bw.oursS, bj.ours, bj.oursS = wv, fmtBytes(wv), jv, fmtBytes(jv)
			case 1:
				bw.crd, bw.crdS, bj.crd, bj.crdS = wv, fmtBytes(wv), jv, fmtBytes(jv)
			case 2:
				bw.direct, bw.directS, bj.direct, bj.directS = wv, fmtBytes(wv), jv, fmtBytes(jv)
			}
		}
		rows = append(rows, bw, bj)
	}

	// watch
	wr := []*result{g("watch", o), g("watch", c), g("watch", d)}
	rows = append(rows, latRow(fmt.Sprintf("watch: patch → event (%d one by one) p50", b.o.patches), wr, 50))
	rows = append(rows, latRow("watch p99", wr, 99))

	// server CPU per operation (all server processes: kube-apiserver + etcd + ours)
	for _, ph := range []struct{ key, name string }{
		{"create", "server CPU per create"},
		{"get", "server CPU per GET"},
		{"list", "server CPU per unpaginated LIST"},
		{"watch", "server CPU per patch + event"},
	} {
		cw := row{name: ph.name + " (kube-apiserver + etcd + ours)", hasCRD: true}
		set := func(x *result) (float64, string) {
			if x == nil || x.ops == 0 {
				return 0, "—"
			}
			v := r.busyCPU(x).total() / float64(x.ops) * 1000 // ms
			if v < 10 {
				return v, fmt.Sprintf("%.2f ms", v)
			}
			return v, fmt.Sprintf("%.0f ms", v)
		}
		cw.ours, cw.oursS = set(g(ph.key, o))
		cw.crd, cw.crdS = set(g(ph.key, c))
		if ph.key != "create" {
			cw.direct, cw.directS = set(g(ph.key, d))
			cw.hasDirect = true
		}
		rows = append(rows, cw)
	}

	// memory
	gO, gC := r.growth[o.key], r.growth[c.key]
	kasOurs := float64(gO.kasRSS)
	kasCRD := float64(gC.kasRSS)
	ownOurs := float64(gO.oursRSS)
	if b.o.oursEtcd == "external" {
		ownOurs += float64(gO.etcdRSS)
	}
	etcdCRD := float64(gC.etcdRSS)
	n := b.o.n
	rows = append(rows,
		row{name: fmt.Sprintf("kube-apiserver RSS growth for %d objects", n), ours: kasOurs, crd: kasCRD, oursS: fmtMiB(kasOurs), crdS: fmtMiB(kasCRD), hasCRD: true,
			note: "ours: what proxying our creates left behind"},
		row{name: ownStorageName(b.o.oursEtcd), ours: ownOurs, crd: etcdCRD, oursS: fmtMiB(ownOurs), crdS: fmtMiB(etcdCRD), hasCRD: true},
		row{name: "total RSS growth", ours: kasOurs + ownOurs, crd: kasCRD + etcdCRD, oursS: fmtMiB(kasOurs + ownOurs), crdS: fmtMiB(kasCRD + etcdCRD), hasCRD: true},
	)
	return rows
}

func ownStorageName(mode string) string {
	if mode == "external" {
		return "own RSS growth (ours: rollout-apiserver + shared etcd; CRD: etcd)"
	}
	return "own RSS growth (ours: rollout-apiserver incl. embedded etcd; CRD: etcd)"
}

func (r *report) table() string {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "| measurement | ours (aggregated) | Kruise CRD | ours / CRD | better | ours direct | aggregator hop |\n")
	fmt.Fprintf(&buf, "|---|--:|--:|--:|---|--:|--:|\n")
	for _, w := range r.rows() {
		q, better := w.ratio()
		ds := "—"
		if w.hasDirect && w.directS != "" {
			ds = w.directS
		}
		hop := w.hop
		if hop == "" {
			hop = "—"
		}
		cs := w.crdS
		if cs == "" {
			cs = "—"
		}
		ours := w.oursS
		if ours == "" {
			ours = "—"
		}
		name := w.name
		if w.note != "" {
			name += " (" + w.note + ")"
		}
		fmt.Fprintf(&buf, "| %s | %s | %s | %s | %s | %s | %s |\n", name, ours, cs, q, better, ds, hop)
	}
	return buf.String()
}

// details: raw memory readings, CPU split, sizes, errors.
func (r *report) details() string {
	var buf bytes.Buffer
	b := r.b
	fmt.Fprintf(&buf, "Memory readings: VmRSS in MiB; in brackets its file-backed part (RssFile: mapped files such as etcd's bbolt database, which the kernel can reclaim) and the peak (VmHWM):\n\n")
	fmt.Fprintf(&buf, "| when | kube-apiserver | etcd | rollout-apiserver |\n|---|--:|--:|--:|\n")
	for _, m := range []struct {
		name string
		s    memSnap
	}{
		{"after warm-up", r.mem0}, {fmt.Sprintf("after both APIs' %d creates", b.o.n), r.mem1},
		{"after the LISTs", r.mem2}, {"at the end", r.mem3},
	} {
		fmt.Fprintf(&buf, "| %s | %.0f (file %.0f, peak %.0f) | %.0f (file %.0f, peak %.0f) | %.0f (file %.0f, peak %.0f) |\n", m.name,
			mib(m.s.kasRSS), mib(m.s.kasFile), mib(m.s.kasHWM), mib(m.s.etcdRSS), mib(m.s.etcdFile), mib(m.s.etcdHWM),
			mib(m.s.oursRSS), mib(m.s.oursFile), mib(m.s.oursHWM))
	}
	buf.WriteString(r.heapDetails())
	gO, gC := r.growth["ours"], r.growth["crd"]
	fmt.Fprintf(&buf, "\nRSS growth over each API's create blocks (file-backed part in brackets): ours: kube-apiserver %s, etcd %s, rollout-apiserver %s (%s); CRD: kube-apiserver %s (%s), etcd %s (%s), rollout-apiserver %s.\n",
		fmtMiB(float64(gO.kasRSS)), fmtMiB(float64(gO.etcdRSS)), fmtMiB(float64(gO.oursRSS)), fmtMiB(float64(gO.oursFile)),
		fmtMiB(float64(gC.kasRSS)), fmtMiB(float64(gC.kasFile)), fmtMiB(float64(gC.etcdRSS)), fmtMiB(float64(gC.etcdFile)), fmtMiB(float64(gC.oursRSS)))
	idle := "not measured"
	if r.idleWall > 0 {
		w := r.idleWall.Seconds()
		idle = fmt.Sprintf("%.2f / %.2f / %.2f cores", r.idle.kas/w, r.idle.etcd/w, r.idle.ours/w)
	}
	fmt.Fprintf(&buf, "\nServer CPU charged to each phase (seconds: kube-apiserver / etcd / rollout-apiserver, minus the background rate measured while idle: %s), wall time:\n\n", idle)
	fmt.Fprintf(&buf, "| phase | ours (aggregated) | Kruise CRD | ours direct |\n|---|---|---|---|\n")
	for _, ph := range []string{"create", "tail", "get", "list", "listpage", "watch"} {
		fmt.Fprintf(&buf, "| %s |", ph)
		for _, t := range []*target{b.ours, b.crd, b.direct} {
			x := r.get(ph, t)
			if x == nil {
				fmt.Fprintf(&buf, " — |")
				continue
			}
			c := r.busyCPU(x)
			fmt.Fprintf(&buf, " %.1f / %.1f / %.1f, %s |", c.kas, c.etcd, c.ours, x.wall.Round(100*time.Millisecond))
		}
		fmt.Fprintln(&buf)
	}
	fmt.Fprintf(&buf, "\nObject size: create body %d B; as a GET returns it (with managedFields): ours %d B, CRD %d B.\n",
		r.objBytes.body, r.objBytes.oursGet, r.objBytes.crdGet)
	if r.stopTime > 0 {
		if r.stopOK {
			fmt.Fprintf(&buf, "\nOur server exited %s after SIGTERM.\n", r.stopTime.Round(100*time.Millisecond))
		} else {
			fmt.Fprintf(&buf, "\nOur server had not exited %s after SIGTERM (killed then).\n", b.o.stopGrace)
		}
	}
	var errs []string
	for k, x := range r.results {
		if x.errs > 0 {
			errs = append(errs, fmt.Sprintf("%s: %d errors (first: %s)", k, x.errs, x.firstErrs[0]))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&buf, "\nErrors (under 1%% of a phase, so the run counted):\n\n")
		for _, e := range errs {
			fmt.Fprintf(&buf, "- %s\n", e)
		}
	}
	return buf.String()
}

// markdown is the console output: machine line, the table and the details.
func (r *report) markdown() string {
	return r.header() + "\n" + r.table() + "\n" + r.protobufTable() + "\n" + r.details()
}

func (r *report) header() string {
	b := r.b
	return fmt.Sprintf("Run %s on %s; load average %s at the start, %s at the end. kube-apiserver %s; our server: %s etcd, controller %s.\n",
		r.date.Format("2006-01-02 15:04 MST"), machine(), r.loadStart, r.loadEnd, b.k8sVer, b.o.oursEtcd, onOff(b.o.controller))
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// machine: cores, memory, CPU model, kernel, Go version.
func machine() string {
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				var kib float64
				fmt.Sscan(f[1], &kib)
				mem = fmt.Sprintf("%.1f GiB", kib/(1<<20))
			}
		}
	}
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(data))
	}
	return fmt.Sprintf("%d cores (nproc), %s memory, %s, Linux %s, %s", runtime.NumCPU(), mem, cpu, kernel, runtime.Version())
}

// --- docs ---------------------------------------------------------------------------------

const (
	docsBegin = "<!-- BEGIN bench-api: generated by `make bench-api` (test/e2e/bench/api); edits inside are overwritten -->"
	docsEnd   = "<!-- END bench-api -->"
)

// writeDocs replaces the generated section of path (creating the file or the section if
// needed) and leaves everything outside the markers alone.
func writeDocs(path string, r *report) error {
	section := docsBegin + "\n" + r.docsSection() + docsEnd + "\n"
	old, err := os.ReadFile(path)
	var out string
	switch {
	case os.IsNotExist(err):
		out = "# Benchmarks\n\n" + section
	case err != nil:
		return err
	default:
		s := string(old)
		i, j := strings.Index(s, docsBegin), strings.Index(s, docsEnd)
		if i >= 0 && j > i {
			out = s[:i] + section + strings.TrimPrefix(s[j+len(docsEnd):], "\n")
		} else {
			out = strings.TrimRight(s, "\n") + "\n\n" + section
		}
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func (r *report) docsSection() string {
	b := r.b
	o := b.o
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "## Our API vs the Kruise Rollout CRD, through one kube-apiserver (latest run)\n\n")
	fmt.Fprintf(&buf, "- **Date**: %s; whole run %s (control plane start to teardown).\n", r.date.Format("2006-01-02 15:04 MST"), r.runTime.Round(time.Second))
	fmt.Fprintf(&buf, "- **Machine**: %s. Load average %s at the start, %s at the end (other work shares this machine; the ratios, taken from interleaved blocks, are steadier than the absolute times).\n", machine(), r.loadStart, r.loadEnd)
	fmt.Fprintf(&buf, "- **Kubernetes**: %s (kube-apiserver, etcd, controller-manager, scheduler, kwok from `make tools`), all on 127.0.0.1.\n", b.k8sVer)
	fmt.Fprintf(&buf, "- **Our server**: `bin/rollout-apiserver`, %s etcd, release controller %s", o.oursEtcd, onOff(o.controller))
	if o.oursArgs != "" {
		fmt.Fprintf(&buf, ", extra flags `%s`", o.oursArgs)
	}
	if !o.controller {
		fmt.Fprintf(&buf, " (the CRD side has no controller either)")
	}
	fmt.Fprintf(&buf, ". Reproduce: `make bench-api`")
	if o.nice != 0 {
		fmt.Fprintf(&buf, " (this run: `BENCH_API_FLAGS=\"-nice %d\" make bench-api`: every process of the run, the control plane, our server and the client, at nice %d, each daemon's scheduling autogroup too, because other work kept the machine busy)", o.nice, o.nice)
	}
	fmt.Fprintf(&buf, ".\n\n")

	fmt.Fprintf(&buf, "### Method\n\n")
	fmt.Fprintf(&buf, "One run brings up a fresh control plane (test/e2e/framework), starts our server registered through its APIServices, installs OpenKruise's own Rollout CRD (`rollouts.kruise.io`, v1alpha1 and v1beta1 served) and waits for it to be Established. Both APIs then get the same work from the same client: raw REST calls with JSON bodies over client-go's TLS transport (HTTP/2, one connection per server, `Accept-Encoding: gzip` as client-go sends it, no client-side rate limiter), so the client costs the same for each.\n\n")
	fmt.Fprintf(&buf, "- **Objects**: %d B of JSON each: a workloadRef to its own Deployment, three canary steps (20%%/50%%/100%% replicas and traffic, one paused until promoted, one for 60 s), one traffic routing (Service + NGINX Ingress), 8 labels, 4 annotations. The same spec under `rollout.kruise.io/v1beta1` (ours) and `rollouts.kruise.io/v1beta1` (CRD).\n", r.objBytes.body)
	fmt.Fprintf(&buf, "- **Warm-up**: %d objects per API created, read (also directly), listed and deleted before anything is measured.\n", o.warmup)
	fmt.Fprintf(&buf, "- **create**: %d objects per API over %d namespaces, %d workers; objects/s = objects / wall time; p50/p99 of each POST. In ABBA halves (CRD, ours, ours, CRD) so neither API always goes first.\n", o.n, o.namespaces, o.createWorkers)
	fmt.Fprintf(&buf, "- **GET**: %d random objects (the same sequence for every path), %d workers, in 4 interleaved rounds whose first path rotates.\n", o.gets, o.getWorkers)
	fmt.Fprintf(&buf, "- **LIST**: all %d objects across namespaces, %d times per path, unpaginated and with limit=%d following continue tokens (latency of the whole walk); the first path rotates per iteration. Bytes: response bodies as received (gzip, which the servers apply above 128 KiB) and decompressed. Each path's first LIST is checked to return exactly %d items.\n", o.n, o.lists, o.page, o.n)
	fmt.Fprintf(&buf, "- **watch**: one watch per path on one namespace (%d objects); %d merge patches of a label, one at a time, rotating the first path; latency from sending the PATCH to receiving the MODIFIED event that carries the new label.\n", o.n/o.namespaces, o.patches)
	fmt.Fprintf(&buf, "- **memory**: VmRSS from /proc (pids from the run folder's pid files) after a %s pause, before and after each create block: each process's growth is charged to the API whose objects it took in. CRD: kube-apiserver + etcd; ours: rollout-apiserver (its embedded etcd is in-process) + whatever kube-apiserver kept from proxying.\n", o.settle)
	fmt.Fprintf(&buf, "- **ours direct**: our server on its own port with the framework's RESTConfig (admin client cert), bypassing the aggregator: GET, LIST and watch interleaved with the other two paths, plus %d creates through the aggregator vs %d direct (ABBA halves) after the main phases. *aggregator hop* = ours through kube-apiserver − ours direct.\n", o.tail, o.tail)
	fmt.Fprintf(&buf, "- **server CPU**: utime+stime of kube-apiserver, etcd and rollout-apiserver over each measured block, minus their background rate (measured over the idle pauses), divided by the block's operations: a view of cost that other load on the machine barely moves.\n\n")

	fmt.Fprintf(&buf, "### Results\n\n")
	buf.WriteString(r.table())
	fmt.Fprintf(&buf, "\nRatios are ours / CRD; for times, bytes, CPU and memory lower is better, for objects/s higher.\n\n")
	if pb := r.protobufTable(); pb != "" {
		buf.WriteString(pb + "\n")
	}
	buf.WriteString(r.details())
	fmt.Fprintf(&buf, "\n### Reading it\n\n")
	buf.WriteString(r.interpretation())
	fmt.Fprintln(&buf)
	return buf.String()
}

// interpretation: one line per area, from the numbers.
func (r *report) interpretation() string {
	var buf bytes.Buffer
	rows := r.rows()
	find := func(prefix string) *row {
		for i := range rows {
			if strings.HasPrefix(rows[i].name, prefix) {
				return &rows[i]
			}
		}
		return nil
	}
	say := func(area string, w *row) {
		if w == nil {
			return
		}
		q, better := w.ratio()
		fmt.Fprintf(&buf, "- **%s**: ours %s vs CRD %s (ours/CRD %s; better: %s).", area, w.oursS, w.crdS, q, better)
		switch {
		case w.hop == "":
		case w.ours <= w.direct:
			fmt.Fprintf(&buf, " Directly on our port %s: no measurable cost of the aggregator hop here (%s is noise).", w.directS, w.hop)
		default:
			fmt.Fprintf(&buf, " Directly on our port %s, so the aggregator hop costs %s.", w.directS, w.hop)
		}
		fmt.Fprintln(&buf)
	}
	say("Create throughput", find("create "+fmt.Sprint(r.b.o.n)))
	say("Create p50", find("create p50"))
	say("GET p50", find("GET "))
	say("LIST unpaginated p50", find(fmt.Sprintf("LIST all %d, unpaginated", r.b.o.n)))
	say("LIST paginated p50", find(fmt.Sprintf("LIST all %d, limit", r.b.o.n)))
	say("Watch p50", find("watch: patch"))
	say("Total memory growth", find("total RSS growth"))
	if w := find("create " + fmt.Sprint(r.b.o.tail) + " more"); w != nil && w.directS != "" {
		fmt.Fprintf(&buf, "- **Writes through the hop**: %s objects/s through the aggregator vs %s directly (%s).\n", w.oursS, w.directS, w.hop)
	}
	switch {
	case r.b.o.etcdFsync:
		fmt.Fprintf(&buf, "- **Storage**: both sides fsync every commit, as in production: the control plane's etcd (holding the CRD's objects) runs without the e2e tests' `--unsafe-no-fsync` (`-etcd-fsync`, the default), our embedded etcd always fsyncs its WAL.\n")
	case r.b.o.oursEtcd == "embedded":
		fmt.Fprintf(&buf, "- **Storage caveat**: this run's control-plane etcd ran with `--unsafe-no-fsync` (`-etcd-fsync=false`); our embedded etcd fsyncs its WAL on every commit, as it should in production, so write latency on our side includes a fsync the CRD's writes skip.\n")
	}
	return buf.String()
}
