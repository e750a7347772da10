package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

// newTestDashboard serves the dashboard's routes over fake clients.
func newTestDashboard(t *testing.T, h *harness) (*dashboard, *httptest.Server) {
	d := &dashboard{ro: h.ro, kube: h.kube, ns: "demo", clients: map[chan []byte]struct{}{}}
	srv := httptest.NewServer(d.routes())
	t.Cleanup(srv.Close)
	return d, srv
}

func post(t *testing.T, url string, withHeader bool, body string) (int, actionResult) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if withHeader {
		req.Header.Set(csrfHeader, "1")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out actionResult
	data, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(data, &out)
	return res.StatusCode, out
}

func TestDashboardAPI(t *testing.T) {
	h := newHarness(t, []runtime.Object{fixtureRollout()}, deployment(true))
	_, srv := newTestDashboard(t, h)

	res, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, string(page), `<script src="/static/app.js">`, "the embedded page")
	res, err = http.Get(srv.URL + "/static/app.js")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode, "the embedded script")

	var items []listItem
	res, err = http.Get(srv.URL + "/api/rollouts")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&items))
	res.Body.Close()
	require.Len(t, items, 1)
	assert.Equal(t, listItem{Namespace: "demo", Name: "web", Status: "Progressing", Step: 2, Steps: 3, State: "StepPaused",
		Message: "Step 2/3 is ready; pausing 30s", Workload: "Deployment/web", Progress: "[■□□]"}, items[0])

	var det map[string]any
	res, err = http.Get(srv.URL + "/api/rollouts/demo/web")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&det))
	res.Body.Close()
	assert.Equal(t, "Progressing", det["status"])
	assert.Contains(t, det["tree"], "▶ 2  replicas 50%")
	steps := det["steps"].([]any)
	require.Len(t, steps, 3)
	assert.Equal(t, "current", steps[1].(map[string]any)["mark"])
	assert.Equal(t, "replicas 50%  traffic 50%  pause 30s  checks error-rate Running 2/3 last=0.01  ← StepPaused", steps[1].(map[string]any)["text"])

	res, err = http.Get(srv.URL + "/api/rollouts/demo/nope")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
}

func TestDashboardActions(t *testing.T) {
	h := newHarness(t, []runtime.Object{fixtureRollout()})
	_, srv := newTestDashboard(t, h)
	url := srv.URL + "/api/rollouts/demo/web/promote"

	code, _ := post(t, url, false, `{}`)
	assert.Equal(t, http.StatusForbidden, code, "a POST without the dashboard's header (another origin) is refused")

	h.ro.PrependReactor("create", "rollouts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "rollout.kruise.io", Resource: "rollouts/promote"}, "web", nil)
	})
	code, out := post(t, url, true, `{"full":true}`)
	assert.Equal(t, http.StatusForbidden, code)
	assert.False(t, out.OK)
	assert.Equal(t, http.StatusForbidden, out.Code)
	assert.Contains(t, out.Message, "forbidden: you may not create rollouts/promote web")

	code, out = post(t, srv.URL+"/api/rollouts/demo/web/explode", true, `{}`)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, out.Message, "unknown action explode")
	code, _ = post(t, srv.URL+"/api/rollouts/demo/web/abort", true, `{"reason":`)
	assert.Equal(t, http.StatusBadRequest, code)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/rollouts", nil)
	req.Host = "evil.example:3100"
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusForbidden, res.StatusCode, "a Host other than loopback (DNS rebinding) is refused")
}

func TestDashboardPushesChanges(t *testing.T) {
	h := newHarness(t, []runtime.Object{fixtureRollout()})
	d, srv := newTestDashboard(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changes := make(chan struct{}, 1)
	go d.broadcast(ctx, changes)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	changes <- struct{}{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var msg struct{ Rollouts []listItem }
			require.NoError(t, json.Unmarshal([]byte(data), &msg))
			require.Len(t, msg.Rollouts, 1)
			assert.Equal(t, int32(2), msg.Rollouts[0].Step)
			return
		}
	}
	t.Fatalf("no event pushed: %v", sc.Err())
}
