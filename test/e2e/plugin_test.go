package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestPlugin runs the kubectl plugin's scenarios at once, each in its own namespace against
// the shared rollout-apiserver (see TestRelease for why goroutines). Pick one with -run, e.g.
//
//	E2E_RUN_DIR=_output/e2e-rel go test ./test/e2e/ -run 'TestPlugin/Dashboard$' -v
func TestPlugin(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Commands", pluginCommands},
		{"AbortAndStatus", pluginAbortAndStatus},
		{"RBAC", pluginRBAC},
		{"WatchInTmux", pluginWatchInTmux},
		{"Dashboard", pluginDashboard},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}

// pausedAtStep1 creates Deployment web of 4 and a Rollout of 25% → 50% → 100% (each waiting
// for promote) and releases app:v2 to step 1.
func (s *scenario) pausedAtStep1() {
	s.t.Helper()
	s.givenDeployment("web", 4)
	s.givenRollout([]v1beta1.CanaryStep{step("25%"), step("50%"), step("100%")})
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 1, "app:v1": 3})
}

// pluginCommands: a whole release driven through the plugin, then undone through another.
func pluginCommands(t *testing.T) {
	s := newScenario(t)
	s.pausedAtStep1()

	res := s.expectPlugin(0, []string{"Rollout " + s.ns + "/web  Progressing", "step 1/3 StepPaused", "▶ 1  replicas 25%", "· 2  replicas 50%",
		"canary  app:v2", "stable  app:v1", "ReplicaSet web-", "1/1 ready", "Pod web-"}, "get", "web")
	if err := os.WriteFile(filepath.Join(s.outputDir(), "get-web.txt"), []byte(res.Stdout), 0o644); err != nil {
		t.Errorf("save the tree: %v", err)
	}
	s.expectPlugin(0, []string{"NAME", "PROGRESS", "web", "Progressing", "1/3", "StepPaused", "Deployment/web"}, "list")
	s.expectPlugin(2, []string{"step 1/3 StepPaused", "timed out after 3s"}, "status", "web", "--timeout", "3s")

	s.w.allowStep(2)
	s.expectPlugin(0, []string{"rollout " + s.ns + "/web promoted at step 1/3"}, "promote", "web")
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 2})

	s.expectPlugin(0, []string{"paused"}, "pause", "web")
	if !s.rollout().Spec.Strategy.Paused {
		t.Errorf("pause through the plugin did not set spec.strategy.paused")
	}
	s.expectPlugin(1, []string{"conflict", "the Rollout is paused; resume it before promoting"}, "promote", "web")
	s.expectPlugin(0, []string{"resumed"}, "resume", "web")
	if s.rollout().Spec.Strategy.Paused {
		t.Errorf("resume through the plugin left spec.strategy.paused set")
	}

	s.w.allowAll()
	s.expectPlugin(0, []string{"fully promoted at step 2/3"}, "promote", "web", "--full")
	s.expectPlugin(0, []string{"released: Revision"}, "status", "web", "--timeout", "2m")
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 4})
	s.expectPluginEventually(0, []string{"REVISION", "app:v1", "app:v2", "released"}, "history", "web")
	s.expectPlugin(1, []string{"conflict", "nothing to promote"}, "promote", "web")

	// undo writes app:v1's template back: the webhook makes that a release like any other.
	s.w.expectRelease(stableImage)
	s.expectPlugin(0, []string{"Deployment web set to the template of revision 1 (app:v1)"}, "undo", "web")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v1": 1, "app:v2": 3})
	s.w.allowAll()
	s.pluginMust("promote", "web", "--full")
	s.expectPlugin(0, []string{"released"}, "status", "web", "--timeout", "2m")
	s.expectSucceeded()
	s.expectPods(pods{"app:v1": 4})
	s.expectWorkloadOn(stableImage)
	s.w.expectRelease("app:v2")
	s.expectPlugin(0, []string{"Deployment web set to the template of revision 2 (app:v2)"}, "undo", "web", "--to-revision", "2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
}

// pluginAbortAndStatus: abort through the plugin; status then exits 1.
func pluginAbortAndStatus(t *testing.T) {
	s := newScenario(t)
	s.pausedAtStep1()
	s.expectPlugin(0, []string{"aborted at step 1/3"}, "abort", "web", "--reason", "e2e: bad build")
	s.expectPlugin(1, []string{"release failed (Aborted)", "e2e: bad build"}, "status", "web", "--timeout", "2m")
	ro := s.waitForPhase(v1beta1.RolloutPhaseAborted, v1beta1.ProgressingReasonAborted)
	if ro.Status.Abort == nil || !strings.Contains(ro.Status.Abort.Message, "e2e: bad build") {
		t.Errorf("the reason given to the plugin is not in status.abort: %+v", ro.Status.Abort)
	}
	s.expectPods(pods{"app:v1": 4})
	s.expectPlugin(0, []string{"✖ 1", "Aborted:"}, "get", "web")
	s.expectPlugin(0, []string{"Aborted"}, "list")
}

// pluginRBAC: a viewer gets a 403 that names what is missing; a promoter may promote but
// not edit the Rollout.
func pluginRBAC(t *testing.T) {
	s := newScenario(t)
	s.pausedAtStep1()
	s.bindRole("alice", "rollout-viewer")
	s.bindRole("pat", "rollout-promoter")

	res := s.pluginAs("alice", "get", "web")
	s.checkResult(res, 0, []string{"step 1/3 StepPaused", "forbidden: you may not get deployments web"})
	res = s.pluginAs("alice", "promote", "web")
	s.checkResult(res, 1, []string{
		"forbidden: you may not create rollouts/promote web in namespace " + s.ns,
		`RBAC verb "create" on resource "rollouts/promote" in API group "rollout.kruise.io"`,
		"rollout-promoter",
		`User "alice" cannot create resource "rollouts/promote"`,
	})
	if ro := s.rollout(); ro.Status.PendingAction != nil || ro.Status.CanaryStatus.CurrentStepIndex != 1 {
		t.Errorf("alice's refused promote changed the Rollout: %s", rolloutSummary(ro))
	}

	s.w.allowStep(2)
	res = s.pluginAs("pat", "promote", "web")
	s.checkResult(res, 0, []string{"promoted at step 1/3"})
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	ctx, cancel := s.ctx()
	defer cancel()
	out, err := s.env.c.KubectlCmd(ctx, "patch", "rollout", "web", "-n", s.ns, "--as", "pat", "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	if err == nil || !strings.Contains(out, `cannot patch resource "rollouts"`) {
		t.Errorf("pat (rollout-promoter) could edit the Rollout, or the refusal is unclear: %v\n%s", err, out)
	}
}

// pluginWatchInTmux: `get -w` in a real terminal redraws the tree when a promote moves the
// release to the next step.
func pluginWatchInTmux(t *testing.T) {
	s := newScenario(t)
	requireBrowserTools(t, s.env.c.RootDir)
	s.pausedAtStep1()
	bin := pluginBinary(t, s.env.c.RootDir)
	socket := "rollouts-e2e-" + rand.String(6)
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := tmux("new-session", "-d", "-s", "w", "-x", "160", "-y", "50", "-e", "KUBECONFIG="+s.env.c.Kubeconfig,
		bin, "get", "web", "-w", "-n", s.ns); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = tmux("kill-server") })
	screen := func(want ...string) string {
		var last string
		s.eventually(waitTimeout, fmt.Sprintf("the terminal to show %q", want), func(context.Context) (bool, string) {
			out, err := tmux("capture-pane", "-p", "-t", "w")
			if err != nil {
				return false, err.Error() + out
			}
			last = out
			for _, w := range want {
				if !strings.Contains(out, w) {
					return false, "screen:\n" + out
				}
			}
			return true, ""
		})
		return last
	}
	screen("step 1/3 StepPaused", "▶ 1  replicas 25%")
	s.promote()
	got := screen("step 2/3 StepPaused", "✔ 1  replicas 25%", "▶ 2  replicas 50%")
	if strings.Contains(got, "step 1/3") {
		t.Errorf("the redraw left the old frame on the screen:\n%s", got)
	}
	path := filepath.Join(s.outputDir(), "get-w-tmux.txt")
	if err := os.WriteFile(path, []byte(strings.TrimRight(got, "\n")+"\n"), 0o644); err != nil {
		t.Errorf("save the screen: %v", err)
	}
	s.logf("get -w screen after the promote (saved in %s):\n%s", path, got)
}

// startDashboard runs `kubectl rollouts dashboard --port 0` (as user, if given) and returns
// its URL.
func (s *scenario) startDashboard(user string) string {
	s.t.Helper()
	args := []string{"dashboard", "--port", "0", "-n", s.ns}
	if user != "" {
		args = append(args, "--as", user)
	}
	cmd := exec.Command(pluginBinary(s.t, s.env.c.RootDir), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.env.c.Kubeconfig)
	logPath := filepath.Join(s.outputDir(), "dashboard-"+s.ns+"-"+user+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		s.t.Fatalf("dashboard log: %v", err)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatalf("dashboard stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start the dashboard: %v", err)
	}
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(sc.Text()); m != "" {
				urls <- m
			}
		}
	}()
	select {
	case u := <-urls:
		s.logf("dashboard (user %q) at %s", user, u)
		return u
	case <-time.After(time.Minute):
		log, _ := os.ReadFile(logPath)
		s.t.Fatalf("the dashboard did not print its address within a minute; stderr:\n%s", log)
	}
	return ""
}

// browser starts headless Chromium for the test with a fresh profile.
func (s *scenario) browser() context.Context {
	s.t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		s.t.Fatalf("no chromium on PATH after hack/install-browser-tools.sh")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(s.t.TempDir()), chromedp.WindowSize(1280, 1100),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	s.t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, which lives as long as that run's context: this one,
	// without a deadline; later actions get their own deadlines from it.
	if err := chromedp.Do(ctx); err != nil {
		s.t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page runs browser actions with a deadline.
func (s *scenario) page(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		s.t.Fatalf("browser: %s: %v", what, err)
	}
}

// evaluate runs JavaScript on the page and returns its string result.
func (s *scenario) evaluate(ctx context.Context, js string) string {
	s.t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[string](js))
	if err != nil {
		s.t.Fatalf("browser: evaluate %s: %v", js, err)
	}
	return v
}

// screenshot takes a PNG of the whole page.
func (s *scenario) screenshot(ctx context.Context) []byte {
	s.t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("browser: screenshot: %v", err)
	}
	return png
}

// pageText waits until the text of selector contains want and returns it.
func (s *scenario) pageText(ctx context.Context, selector, want string) string {
	s.t.Helper()
	var text string
	s.eventually(waitTimeout, fmt.Sprintf("%s on the page to show %q", selector, want), func(context.Context) (bool, string) {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		text, err = chromedp.Run(c, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, selector)))
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(text, want), fmt.Sprintf("%q", text)
	})
	return text
}

// pluginDashboard: the dashboard in a real browser lists the Rollout, its promote button
// moves the release on and the page follows without a reload; a viewer's promote shows the
// cluster's 403.
func pluginDashboard(t *testing.T) {
	s := newScenario(t)
	requireBrowserTools(t, s.env.c.RootDir)
	s.pausedAtStep1()
	s.bindRole("alice", "rollout-viewer")
	adminURL := s.startDashboard("")
	viewerURL := s.startDashboard("alice")

	ctx := s.browser()
	row := fmt.Sprintf(`tr[data-rollout="%s/web"]`, s.ns)
	s.page(ctx, "open the list", chromedp.Navigate(adminURL), chromedp.WaitVisible(chromedp.CSS(row)))
	s.pageText(ctx, row, "1/3")
	s.page(ctx, "open the Rollout", chromedp.Click(chromedp.CSS(row+" a")), chromedp.WaitVisible(chromedp.CSS("#detail-view")))
	s.pageText(ctx, "#step", "1/3")
	s.pageText(ctx, "#stepbar li.current", "Step 1")
	s.pageText(ctx, "#revisions", "app:v2")

	// A marker the page keeps only as long as it is not reloaded.
	s.evaluate(ctx, `window.e2eMarker = "not reloaded"`)
	s.w.allowStep(2)
	s.page(ctx, "click promote", chromedp.Click(chromedp.CSS("#btn-promote")))
	s.pageText(ctx, "#result", "promoted at step 1/3")
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.pageText(ctx, "#step", "2/3")
	s.pageText(ctx, "#state", string(v1beta1.CanaryStepStatePaused))
	s.pageText(ctx, "#stepbar li.current", "Step 2")
	if marker := s.evaluate(ctx, `window.e2eMarker || ""`); marker != "not reloaded" {
		t.Errorf("the page was reloaded to show the new step (marker %q)", marker)
	}
	s.expectPods(pods{"app:v2": 2, "app:v1": 2})
	png := s.screenshot(ctx)
	shot := filepath.Join(s.outputDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Errorf("save the screenshot: %v", err)
	}
	s.logf("dashboard screenshot: %s", shot)

	// alice may look, not promote: the page shows the 403 the cluster gave.
	s.page(ctx, "open the viewer's dashboard", chromedp.Navigate(viewerURL+"#/"+s.ns+"/web"), chromedp.WaitVisible(chromedp.CSS("#detail-view")))
	s.pageText(ctx, "#step", "2/3")
	s.page(ctx, "click promote as alice", chromedp.Click(chromedp.CSS("#btn-promote")))
	text := s.pageText(ctx, "#result", "403")
	for _, want := range []string{"forbidden", "rollouts/promote", "rollout-promoter"} {
		if !strings.Contains(text, want) {
			t.Errorf("the viewer's refused promote shows %q, want it to mention %q", text, want)
		}
	}
	_ = os.WriteFile(filepath.Join(s.outputDir(), "dashboard-viewer-403.png"), s.screenshot(ctx), 0o644)
	if ro := s.rollout(); ro.Status.CanaryStatus.CurrentStepIndex != 2 || ro.Status.PendingAction != nil {
		t.Errorf("alice's refused promote changed the Rollout: %s", rolloutSummary(ro))
	}
}
