package prometheus_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/analysis"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/analysis/prometheus"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
)

// Bodies as Prometheus v3 answers GET /api/v1/query.
const (
	vectorBody    = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"revision":"new"},"value":[1767225600.000,"0.5"]}]}}`
	scalarBody    = `{"status":"success","data":{"resultType":"scalar","result":[1767225600.000,"0.995"]}}`
	emptyBody     = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	nanBody       = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767225600.000,"NaN"]}]}}`
	twoBody       = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1767225600,"1"]},{"metric":{"pod":"b"},"value":[1767225600,"0"]}]}}`
	matrixBody    = `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1767225600,"1"]]}]}}`
	badQueryBody  = `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:6: parse error: unexpected end of input"}`
	execErrorBody = `{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}`
)

type fakeProm struct {
	status int
	body   string
	query  string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.query = r.Form.Get("query")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func serve(t *testing.T, status int, body string) (*fakeProm, string) {
	f := &fakeProm{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestQueryReducesAnswers(t *testing.T) {
	cases := []struct {
		name         string
		status       int
		body         string
		value        float64
		inconclusive string
		err          string
	}{
		{name: "one-sample vector", status: 200, body: vectorBody, value: 0.5},
		{name: "scalar", status: 200, body: scalarBody, value: 0.995},
		{name: "empty vector is inconclusive", status: 200, body: emptyBody, inconclusive: "no data"},
		{name: "NaN is inconclusive", status: 200, body: nanBody, inconclusive: "NaN"},
		{name: "two series are inconclusive", status: 200, body: twoBody, inconclusive: "2 series where one is expected"},
		{name: "a matrix is an error", status: 200, body: matrixBody, err: "returned a matrix"},
		{name: "a bad query is an error", status: 400, body: badQueryBody, err: "parse error: unexpected end of input"},
		{name: "an execution error is an error", status: 422, body: execErrorBody, err: "too many samples"},
		{name: "a server error is an error", status: 503, body: "Service Unavailable", err: "503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, url := serve(t, tc.status, tc.body)
			v, err := prometheus.New(prometheus.Options{}).Query(context.Background(), url, "q", time.Now())
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.inconclusive != "" {
				assert.Contains(t, v.Inconclusive, tc.inconclusive)
				return
			}
			assert.Empty(t, v.Inconclusive)
			assert.InDelta(t, tc.value, v.Number, 1e-9)
		})
	}
}

func TestQueryLimits(t *testing.T) {
	t.Run("an answer above the size cap is an error", func(t *testing.T) {
		big := `{"status":"success","data":{"resultType":"vector","result":[` +
			strings.Repeat(`{"metric":{"pod":"aaaaaaaaaaaaaaaaaaaa"},"value":[1767225600,"1"]},`, 2000) +
			`{"metric":{},"value":[1767225600,"1"]}]}}`
		_, url := serve(t, 200, big)
		_, err := prometheus.New(prometheus.Options{MaxResponseBytes: 4096}).Query(context.Background(), url, "q", time.Now())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "limit")
	})
	t.Run("a slow server times out", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		start := time.Now()
		_, err := prometheus.New(prometheus.Options{QueryTimeout: 200 * time.Millisecond}).Query(context.Background(), srv.URL, "q", time.Now())
		require.Error(t, err)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		_, target := serve(t, 200, vectorBody)
		srv := httptest.NewServer(http.RedirectHandler(target+"/api/v1/query", http.StatusTemporaryRedirect))
		t.Cleanup(srv.Close)
		_, err := prometheus.New(prometheus.Options{}).Query(context.Background(), srv.URL, "q", time.Now())
		require.ErrorContains(t, err, "redirects are not followed")
	})
}

// TestAnalyzerAgainstPrometheusAnswers runs whole checks (templating,
// thresholdRange, CEL) against real answer bodies.
func TestAnalyzerAgainstPrometheusAnswers(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		status  int
		rng     *v1beta1.ThresholdRange
		cond    string
		verdict release.AnalysisVerdict
		value   string
		message string
	}{
		{name: "vector 0.5 against min 0.99 aborts", body: vectorBody, status: 200, rng: &v1beta1.ThresholdRange{Min: ptr.To(resource.MustParse("0.99"))},
			verdict: release.AnalysisFailed, value: "0.5", message: "check success-rate failed: value 0.5 is below the minimum 0.99"},
		{name: "scalar passes a CEL condition", body: scalarBody, status: 200, cond: "result >= 0.99",
			verdict: release.AnalysisPassed, value: "0.995"},
		{name: "scalar fails a CEL condition", body: scalarBody, status: 200, cond: "result > 0.999",
			verdict: release.AnalysisFailed, value: "0.995", message: `does not satisfy "result > 0.999"`},
		{name: "empty pauses", body: emptyBody, status: 200, cond: "result > 0",
			verdict: release.AnalysisPaused, message: "no data"},
		{name: "NaN pauses", body: nanBody, status: 200, cond: "result > 0",
			verdict: release.AnalysisPaused, value: "NaN", message: "NaN"},
		{name: "error JSON pauses", body: badQueryBody, status: 400, cond: "result > 0",
			verdict: release.AnalysisPaused, message: "parse error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, url := serve(t, tc.status, tc.body)
			m := v1beta1.MetricCheck{
				Name: "success-rate", Interval: metav1.Duration{Duration: time.Second}, Count: 1, ConsecutiveErrorLimit: ptr.To[int32](0),
				Provider:       v1beta1.MetricProvider{Prometheus: &v1beta1.PrometheusMetric{Address: url, Query: `ratio{namespace="{{namespace}}",revision={{canaryRevision}}}`}},
				ThresholdRange: tc.rng, SuccessCondition: tc.cond,
			}
			ro := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
				Status: v1beta1.RolloutStatus{CanaryStatus: &v1beta1.CanaryStatus{CanaryRevision: "new"}}}
			a := &analysis.Analyzer{Prometheus: prometheus.New(prometheus.Options{})}
			t0 := time.Now()
			ac := &release.AnalysisContext{Rollout: ro, Step: 1, Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{m}}, Now: t0}
			out, err := a.Analyze(context.Background(), ac)
			require.NoError(t, err)
			require.Equal(t, release.AnalysisRunning, out.Verdict)
			ac.Results, ac.Now = out.Results, t0.Add(time.Second)
			out, err = a.Analyze(context.Background(), ac)
			require.NoError(t, err)
			assert.Equal(t, `ratio{namespace="shop",revision="new"}`, f.query)
			assert.Equal(t, tc.verdict, out.Verdict)
			assert.Equal(t, tc.value, out.Results[0].LastValue)
			assert.Contains(t, out.Message, tc.message)
			require.Len(t, out.Results[0].Measurements, 1)
		})
	}
}
