package validation

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// worstAdmittedRollout is the most expensive spec to validate that the limits
// in limits.go admit: every count at its limit, the CEL byte and cost budgets
// nearly spent on distinct conditions (salted so no cache helps), every
// regular expression at its length limit, and as many header matches as fit
// in a request body. It must validate without errors, or it is not admitted.
func worstAdmittedRollout(salt int) *rollout.Rollout {
	r := validRollout()
	c := canary(r)
	items := strings.TrimSuffix(strings.Repeat("1.0,", 30), ",")
	expensive := func(i int) string { // about 8,500 estimated cost, 290 bytes
		return fmt.Sprintf("[%s].all(x, [%s].all(y, x + y < result + %d.%d))", items, items, salt, i)
	}
	cheap := func(i int) string { // a linear condition, about 80 bytes
		return fmt.Sprintf("result >= 0.0 && result < %d.%d && result != 7.25 && (result < 1.0 || result > 2.0)", salt, i)
	}
	checks := 0
	condition := func() string {
		defer func() { checks++ }()
		if checks < MaxTotalSuccessConditionCost/9000 {
			return expensive(checks)
		}
		return cheap(checks)
	}
	analysis := func() *rollout.RolloutAnalysis {
		a := &rollout.RolloutAnalysis{Metrics: metrics(MaxMetricsPerAnalysis)}
		for i := range a.Metrics {
			a.Metrics[i].SuccessCondition = condition()
			a.Metrics[i].Provider.Prometheus.Query = strings.Repeat("x", MaxPrometheusQueryLength/8)
		}
		return a
	}
	c.Analysis = analysis()

	regexp := "^(" + strings.Repeat("[a-z0-9]{1,8}-", (MaxRegexpLength-4)/14) + ")$"
	regexps := 0
	steps := make([]rollout.CanaryStep, MaxSteps)
	for i := range steps {
		s := &steps[i]
		s.Replicas = percent("100%")
		s.Traffic = ptr.To("100%")
		if len(c.Analysis.Metrics)+i*MaxMetricsPerAnalysis < MaxMetricChecksPerRollout {
			s.Analysis = analysis()
		}
		s.Matches = make([]rollout.HttpRouteMatch, MaxMatchesPerStep)
		for j := range s.Matches {
			m := &s.Matches[j]
			m.Headers = make([]rollout.HTTPHeaderMatch, MaxHeadersPerMatch)
			m.QueryParams = make([]rollout.HTTPQueryParamMatch, MaxHeadersPerMatch)
			for k := range m.Headers {
				m.Headers[k] = rollout.HTTPHeaderMatch{Name: fmt.Sprintf("X-H%d", k), Value: strings.Repeat("v", 200)}
				m.QueryParams[k] = rollout.HTTPQueryParamMatch{Name: fmt.Sprintf("q%d", k), Value: strings.Repeat("v", 200)}
				if regexps < MaxRegexpsPerRollout {
					m.Headers[k].Type = ptr.To(MatchTypeRegularExpression)
					m.Headers[k].Value = regexp
					regexps++
				}
			}
		}
		s.RequestHeaderModifier = &rollout.HTTPHeaderFilter{}
		for k := 0; k < MaxHeaderModifierEntries; k++ {
			h := rollout.HTTPHeader{Name: fmt.Sprintf("X-M%d", k), Value: strings.Repeat("v", 200)}
			s.RequestHeaderModifier.Set = append(s.RequestHeaderModifier.Set, h)
			s.RequestHeaderModifier.Add = append(s.RequestHeaderModifier.Add, h)
			s.RequestHeaderModifier.Remove = append(s.RequestHeaderModifier.Remove, h.Name)
		}
	}
	c.Steps = steps
	return r
}

func TestWorstAdmittedRolloutIsAdmitted(t *testing.T) {
	r := worstAdmittedRollout(1)
	require.Empty(t, ValidateRollout(r))
	require.Equal(t, MaxMetricChecksPerRollout, countChecks(r))
}

func countChecks(r *rollout.Rollout) int {
	n := len(canary(r).Analysis.Metrics)
	for _, s := range canary(r).Steps {
		if s.Analysis != nil {
			n += len(s.Analysis.Metrics)
		}
	}
	return n
}

// BenchmarkValidateWorstAdmittedRollout measures create and update
// validation of the worst admitted spec next to the typical one (the
// baseline), with the compiled-condition cache defeated by a fresh salt on
// every iteration. Goal: under 50 ms of CPU per create or update.
func BenchmarkValidateWorstAdmittedRollout(b *testing.B) {
	var typical, worst time.Duration
	b.Run("typical/create", func(b *testing.B) {
		r := validRollout()
		start, cpuStart := time.Now(), processCPU()
		for i := 0; i < b.N; i++ {
			canary(r).Analysis.Metrics[0].SuccessCondition = fmt.Sprintf("result < %d.5", i)
			if errs := ValidateRollout(r); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
		typical = time.Since(start) / time.Duration(b.N)
		b.ReportMetric(float64((processCPU()-cpuStart).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
	salt := int(time.Now().UnixNano() % 1e6)
	b.Run("worst/create", func(b *testing.B) {
		objs := make([]*rollout.Rollout, b.N)
		for i := range objs {
			salt++
			objs[i] = worstAdmittedRollout(salt)
		}
		b.ResetTimer()
		start, cpuStart := time.Now(), processCPU()
		for i := 0; i < b.N; i++ {
			if errs := ValidateRollout(objs[i]); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
		worst = time.Since(start) / time.Duration(b.N)
		// CPU time, not wall time: the goal is about CPU, and a loaded
		// machine stretches wall time without changing the work.
		b.ReportMetric(float64((processCPU()-cpuStart).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
	b.Run("worst/update", func(b *testing.B) {
		old := worstAdmittedRollout(0)
		objs := make([]*rollout.Rollout, b.N)
		for i := range objs {
			salt++
			objs[i] = worstAdmittedRollout(salt)
		}
		b.ResetTimer()
		cpuStart := processCPU()
		for i := 0; i < b.N; i++ {
			if errs := ValidateRolloutUpdate(objs[i], old); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
		b.ReportMetric(float64((processCPU()-cpuStart).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
	if typical > 0 && worst > 0 {
		b.Logf("validate: typical %s, worst admitted %s (%.0fx the typical; goal under 50ms)", typical, worst, float64(worst)/float64(typical))
	}
}

// processCPU is the user and system CPU time this process has used; it
// includes the garbage collector's work that validation causes.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
