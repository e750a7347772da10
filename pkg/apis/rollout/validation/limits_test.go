package validation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

func metrics(n int) []rollout.MetricCheck {
	out := make([]rollout.MetricCheck, n)
	for i := range out {
		out[i] = validMetric(fmt.Sprintf("m%d", i))
	}
	return out
}

func TestValidateRequestCost(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"metrics per analysis at the limit", func(r *rollout.Rollout) {
			canary(r).Analysis.Metrics = metrics(MaxMetricsPerAnalysis)
		}, nil},
		{"too many metrics in one analysis", func(r *rollout.Rollout) {
			canary(r).Analysis.Metrics = metrics(MaxMetricsPerAnalysis + 1)
		}, []string{want(tooMany, canaryPath+".analysis.metrics")}},
		{"too many metric checks in the whole rollout", func(r *rollout.Rollout) {
			steps := make([]rollout.CanaryStep, MaxSteps)
			for i := range steps {
				steps[i] = rollout.CanaryStep{Replicas: percent("100%"),
					Analysis: &rollout.RolloutAnalysis{Metrics: metrics(3)}}
			}
			canary(r).Steps = steps
		}, []string{want(forbidden, "spec.strategy")}},
		{"too many steps stops before walking them", func(r *rollout.Rollout) {
			steps := make([]rollout.CanaryStep, MaxSteps+1)
			for i := range steps {
				steps[i] = rollout.CanaryStep{Replicas: percent("100%"),
					Analysis: &rollout.RolloutAnalysis{Metrics: metrics(MaxMetricsPerAnalysis + 1)}}
			}
			canary(r).Steps = steps
		}, []string{want(tooMany, stepsPath)}},
		{"too many matches", func(r *rollout.Rollout) {
			step(r, 1).Matches = make([]rollout.HttpRouteMatch, MaxMatchesPerStep+1)
		}, []string{want(tooMany, stepsPath+"[1].matches")}},
		{"too many headers", func(r *rollout.Rollout) {
			match(r).Headers = make([]rollout.HTTPHeaderMatch, MaxHeadersPerMatch+1)
		}, []string{want(tooMany, matchPath+".headers")}},
		{"too many query params", func(r *rollout.Rollout) {
			match(r).QueryParams = make([]rollout.HTTPQueryParamMatch, MaxHeadersPerMatch+1)
		}, []string{want(tooMany, matchPath+".queryParams")}},
		{"too many header modifier entries", func(r *rollout.Rollout) {
			step(r, 1).RequestHeaderModifier.Remove = make([]string, MaxHeaderModifierEntries+1)
		}, []string{want(tooMany, modPath+".remove")}},
		{"query too long", func(r *rollout.Rollout) {
			metric(r).Provider.Prometheus.Query = strings.Repeat("x", MaxPrometheusQueryLength+1)
		}, []string{want(tooLong, metricPath+".provider.prometheus.query")}},
		{"address too long", func(r *rollout.Rollout) {
			metric(r).Provider.Prometheus.Address = "http://p/" + strings.Repeat("x", MaxAddressLength)
		}, []string{want(tooLong, metricPath+".provider.prometheus.address")}},
		{"header value too long", func(r *rollout.Rollout) {
			match(r).Headers[0].Value = strings.Repeat("x", MaxHeaderValueLength+1)
		}, []string{want(tooLong, matchPath+".headers[0].value")}},
		{"header name too long", func(r *rollout.Rollout) {
			match(r).Headers[0].Name = strings.Repeat("x", MaxHeaderNameLength+1)
		}, []string{want(tooLong, matchPath+".headers[0].name")}},
		{"regular expression too long", func(r *rollout.Rollout) {
			match(r).Headers[0].Type = ptr.To(MatchTypeRegularExpression)
			match(r).Headers[0].Value = strings.Repeat("a", MaxRegexpLength+1)
		}, []string{want(tooLong, matchPath+".headers[0].value")}},
		{"path too long", func(r *rollout.Rollout) {
			match(r).Path.Value = ptr.To("/" + strings.Repeat("a", MaxPathLength))
		}, []string{want(tooLong, matchPath+".path.value")}},
		{"too many regular expressions", func(r *rollout.Rollout) {
			steps := make([]rollout.CanaryStep, 0, MaxSteps)
			for i := 0; i < MaxSteps; i++ {
				s := rollout.CanaryStep{Replicas: percent("100%")}
				s.Matches = []rollout.HttpRouteMatch{{Headers: make([]rollout.HTTPHeaderMatch, 6)}}
				for j := range s.Matches[0].Headers {
					s.Matches[0].Headers[j] = rollout.HTTPHeaderMatch{Type: ptr.To(MatchTypeRegularExpression), Name: "X-A", Value: "a+"}
				}
				steps = append(steps, s)
			}
			canary(r).Steps = steps
		}, []string{want(forbidden, "spec.strategy")}},
		{"successConditions over the byte budget", func(r *rollout.Rollout) {
			ms := metrics(MaxMetricsPerAnalysis)
			for i := range ms {
				ms[i].SuccessCondition = "result < 1.0" + strings.Repeat(" ", MaxSuccessConditionLength-12)
			}
			canary(r).Analysis.Metrics = ms
			step(r, 1).Analysis.Metrics = metrics(MaxMetricsPerAnalysis)
			for i := range step(r, 1).Analysis.Metrics {
				step(r, 1).Analysis.Metrics[i].SuccessCondition = ms[i].SuccessCondition
			}
		}, []string{want(forbidden, "spec.strategy")}},
	})
}

func TestValidateHeaderValues(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"CRLF in an exact header match", func(r *rollout.Rollout) {
			match(r).Headers[0].Value = "a\r\nX-Injected: 1"
		}, []string{want(invalid, matchPath+".headers[0].value")}},
		{"control character in a query value", func(r *rollout.Rollout) {
			match(r).QueryParams[0].Value = "a\x00b"
		}, []string{want(invalid, matchPath+".queryParams[0].value")}},
		{"newline in a set header", func(r *rollout.Rollout) {
			step(r, 1).RequestHeaderModifier.Set[0].Value = "canary\n"
		}, []string{want(invalid, modPath+".set[0].value")}},
		{"leading space in an added header", func(r *rollout.Rollout) {
			step(r, 1).RequestHeaderModifier.Add[0].Value = " 1"
		}, []string{want(invalid, modPath+".add[0].value")}},
		{"non-ASCII header value", func(r *rollout.Rollout) {
			match(r).Headers[0].Value = "café"
		}, []string{want(invalid, matchPath+".headers[0].value")}},
		{"inner spaces and tabs are fine", func(r *rollout.Rollout) {
			match(r).Headers[0].Value = "a b\tc"
		}, nil},
	})
}

func TestSuccessConditionCostBudget(t *testing.T) {
	// An expression near the per-condition limit (about 8,500): two nested
	// macros over 30-item lists, distinct per i so nothing is shared.
	expensive := func(i int) string {
		items := strings.TrimSuffix(strings.Repeat("1.0,", 30), ",")
		return fmt.Sprintf("[%s].all(x, [%s].all(y, x + y < result + %d.0))", items, items, i)
	}
	c := compileSuccessConditionCached(expensive(0))
	require.NoError(t, c.err)
	require.Greater(t, c.estimatedCost, uint64(MaxTotalSuccessConditionCost/MaxMetricsPerAnalysis/2),
		"the test needs conditions whose cost adds up past the budget")

	r := validRollout()
	ms := metrics(MaxMetricsPerAnalysis)
	for i := range ms {
		ms[i].SuccessCondition = expensive(i)
	}
	canary(r).Analysis.Metrics = ms
	step(r, 1).Analysis.Metrics = metrics(MaxMetricsPerAnalysis)
	for i := range step(r, 1).Analysis.Metrics {
		step(r, 1).Analysis.Metrics[i].SuccessCondition = expensive(100 + i)
	}
	got := ValidateRollout(r)
	assert.Equal(t, []string{want(forbidden, "spec.strategy")}, errorsOf(got), "errors: %v", got)
}

func TestCompileSuccessConditionIsCached(t *testing.T) {
	expr := fmt.Sprintf("result < %d.5", time.Now().UnixNano())
	first, err := CompileSuccessCondition(expr)
	require.NoError(t, err)
	second, err := CompileSuccessCondition(expr)
	require.NoError(t, err)
	assert.Same(t, first, second, "a second compile of the same expression reuses the program")
	allocs := testing.AllocsPerRun(10, func() { _, _ = CompileSuccessCondition(expr) })
	assert.Less(t, allocs, 5.0, "a cached compile does no CEL work")
}
