package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// The page, its script and style, built into the binary: the dashboard needs no network
// beyond the cluster, and no build step.
//
//go:embed web
var webFiles embed.FS

// csrfHeader must be on every POST: a page from another origin cannot add it without a CORS
// preflight, which the dashboard never answers, so no other site can drive a release
// through the user's credentials.
const csrfHeader = "X-Rollouts-Dashboard"

func newDashboardCommand(o *options) *cobra.Command {
	var port int
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a live web page of the Rollouts on 127.0.0.1",
		Long: `Serve a local web page of the Rollouts of the namespace (-A: all namespaces): a list, and a
page per Rollout with its step bar, pods per revision, traffic, metric checks and Events, and
buttons for promote, promote full, pause, resume and abort. The page updates live: the plugin
follows watches and pushes each change to the page (server-sent events).

Every request runs with your own kubeconfig, so RBAC is yours: a button you may not use
answers with the 403 the cluster gave. The server listens on 127.0.0.1 only.`,
		Example: `  kubectl rollouts dashboard            # http://127.0.0.1:3100/
  kubectl rollouts dashboard -A --port 0  # any free port, printed on start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port must be 0-65535, got %d", port)
			}
			return o.serveDashboard(cmd.Context(), port)
		},
	}
	cmd.Flags().IntVar(&port, "port", 3100, "port on 127.0.0.1 (0: any free port)")
	return cmd
}

// dashboard serves the page and its JSON API and fans the watch signal out to the pages.
type dashboard struct {
	ro   versioned.Interface
	kube kubernetes.Interface
	ns   string // "" = all namespaces

	mu      sync.Mutex
	clients map[chan []byte]struct{}
	latest  []byte // the last list pushed, sent to a page when it connects
}

func (o *options) serveDashboard(ctx context.Context, port int) error {
	ro, kube, err := o.clients()
	if err != nil {
		return err
	}
	ns, err := o.listNamespace()
	if err != nil {
		return err
	}
	d := &dashboard{ro: ro, kube: kube, ns: ns, clients: map[chan []byte]struct{}{}}
	changes, err := watchChanges(ctx, ro, kube, ns)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%d: %w (another dashboard running? try --port 0)", port, err)
	}
	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	go d.broadcast(ctx, changes)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	scope := "namespace " + ns
	if ns == "" {
		scope = "all namespaces"
	}
	fmt.Fprintf(o.streams.Out, "Dashboard of Rollouts in %s: http://%s/\n", scope, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (d *dashboard) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page, _ := webFiles.ReadFile("web/index.html")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /api/rollouts", d.handleList)
	mux.HandleFunc("GET /api/rollouts/{ns}/{name}", d.handleDetail)
	mux.HandleFunc("POST /api/rollouts/{ns}/{name}/{action}", d.handleAction)
	mux.HandleFunc("GET /api/events", d.handleEvents)
	return localOnly(mux)
}

// localOnly refuses requests whose Host is not this machine's loopback, so a web page
// cannot reach the dashboard through a DNS name that resolves to 127.0.0.1.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if host != "127.0.0.1" && host != "localhost" && host != "::1" {
			http.Error(w, "the dashboard answers only on 127.0.0.1", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// listItem is one row of the list.
type listItem struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Step      int32  `json:"step"`
	Steps     int    `json:"steps"`
	State     string `json:"state"`
	Message   string `json:"message"`
	Workload  string `json:"workload"`
	Paused    bool   `json:"paused"`
	Progress  string `json:"progress"`
}

func (d *dashboard) list(ctx context.Context) ([]listItem, error) {
	list, err := d.ro.RolloutV1beta1().Rollouts(d.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, explain(err, "list", "rollouts", d.ns, "")
	}
	items := make([]listItem, 0, len(list.Items))
	for i := range list.Items {
		r := &list.Items[i]
		it := listItem{
			Namespace: r.Namespace, Name: r.Name, Status: statusWord(r), Steps: len(stepsOf(r)), State: stateColumn(r),
			Message: r.Status.Message, Workload: r.Spec.WorkloadRef.Kind + "/" + r.Spec.WorkloadRef.Name,
			Paused: r.Spec.Strategy.Paused, Progress: progressBar(r),
		}
		if cs := r.Status.Progress(); cs != nil {
			it.Step = cs.CurrentStepIndex
		}
		items = append(items, it)
	}
	return items, nil
}

func (d *dashboard) handleList(w http.ResponseWriter, r *http.Request) {
	items, err := d.list(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

// detail is the page of one Rollout: the release plus what the tree computes.
type detail struct {
	*release
	Summary  string                      `json:"summary"`
	Status   string                      `json:"status"`
	Steps    []stepDetail                `json:"steps"`
	Routing  string                      `json:"routing"`
	Pending  string                      `json:"pending,omitempty"`
	Tree     string                      `json:"tree"`
	Analysis []v1beta1.MetricCheckResult `json:"analysis"`
}

// stepDetail is one step of the step bar.
type stepDetail struct {
	Index int    `json:"index"`
	Mark  string `json:"mark"` // done, current, pending, failed
	Text  string `json:"text"`
}

var markNames = map[string]string{markDone: "done", markCurrent: "current", markPending: "pending", markFailed: "failed"}

func (d *dashboard) handleDetail(w http.ResponseWriter, r *http.Request) {
	rel, err := collect(r.Context(), d.ro, d.kube, r.PathValue("ns"), r.PathValue("name"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	ro := rel.Rollout
	det := detail{release: rel, Summary: summary(ro), Status: statusWord(ro), Routing: routingString(ro), Analysis: ro.Status.AnalysisResults}
	if pa := ro.Status.PendingAction; pa != nil {
		det.Pending = pendingString(pa)
	}
	steps := stepsOf(ro)
	for i := range steps {
		line := stepLine(ro, steps, i)
		_, text, _ := strings.Cut(line, "  ") // drop "mark N"; the page draws its own
		det.Steps = append(det.Steps, stepDetail{Index: i + 1, Mark: markNames[stepStatus(ro, i)], Text: text})
	}
	var tree strings.Builder
	renderTree(&tree, rel)
	det.Tree = tree.String()
	writeJSON(w, http.StatusOK, det)
}

// actionResult is the answer to a button: the server's own words.
type actionResult struct {
	OK      bool   `json:"ok"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (d *dashboard) handleAction(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(csrfHeader) == "" {
		http.Error(w, "missing "+csrfHeader+" header", http.StatusForbidden)
		return
	}
	a, ok := actions[r.PathValue("action")]
	if !ok {
		writeJSON(w, http.StatusNotFound, actionResult{Code: http.StatusNotFound, Message: "unknown action " + r.PathValue("action")})
		return
	}
	var p actionParams
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, &p)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, actionResult{Code: http.StatusBadRequest, Message: "bad request body: " + err.Error()})
		return
	}
	msg, _, err := a.do(r.Context(), d.ro, r.PathValue("ns"), r.PathValue("name"), p)
	if err != nil {
		code := http.StatusInternalServerError
		var st apierrors.APIStatus
		if errors.As(err, &st) {
			code = int(st.Status().Code)
		}
		writeJSON(w, code, actionResult{Code: code, Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, actionResult{OK: true, Code: http.StatusOK, Message: msg})
}

// handleEvents streams a "change" event with the list at every change (server-sent events).
func (d *dashboard) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	// Send the headers now: the page's EventSource counts as connected only then.
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	ch := make(chan []byte, 8)
	d.mu.Lock()
	d.clients[ch] = struct{}{}
	latest := d.latest
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.clients, ch)
		d.mu.Unlock()
	}()
	send := func(data []byte) bool {
		if _, err := fmt.Fprintf(w, "event: change\ndata: %s\n\n", data); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if latest != nil && !send(latest) {
		return
	}
	keepAlive := time.NewTicker(20 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case data := <-ch:
			if !send(data) {
				return
			}
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// broadcast turns each watch signal into the current list and sends it to every page.
func (d *dashboard) broadcast(ctx context.Context, changes <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(redrawDelay):
		}
		items, err := d.list(ctx)
		var data []byte
		if err != nil {
			data, _ = json.Marshal(map[string]string{"error": err.Error()})
		} else {
			data, _ = json.Marshal(map[string]any{"rollouts": items, "at": time.Now().Format(time.RFC3339Nano)})
		}
		d.mu.Lock()
		d.latest = data
		for ch := range d.clients {
			select {
			case ch <- data:
			default: // a slow page skips a frame; the next one has the whole state
			}
		}
		d.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		code = int(st.Status().Code)
	}
	writeJSON(w, code, actionResult{Code: code, Message: err.Error()})
}
