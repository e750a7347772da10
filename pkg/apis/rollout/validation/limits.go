package validation

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// Request cost limits. Every create, update and dry run validates the whole
// spec, and some of that work (compiling CEL and regular expressions) costs
// far more CPU than decoding the bytes, so the amount of it one object may ask
// for is bounded before any of it is done. The figures leave generous room for
// real releases (a handful of steps, a few metrics and matches each) and keep
// the worst spec they admit under the budget measured by
// BenchmarkValidateWorstAdmittedRollout.
const (
	// MaxMetricsPerAnalysis is the most metric checks one analysis may list.
	MaxMetricsPerAnalysis = 10
	// MaxMetricChecksPerRollout is the most metric checks a whole Rollout may
	// hold across its steps and its rollout-wide analysis.
	MaxMetricChecksPerRollout = 30
	// MaxMatchesPerStep is the most route matches one step may list.
	MaxMatchesPerStep = 8
	// MaxHeadersPerMatch is the most header (and, separately, query parameter)
	// matches one route match may list, Gateway API's own limit.
	MaxHeadersPerMatch = 16
	// MaxHeaderModifierEntries is the most set, add or remove entries a step's
	// requestHeaderModifier may list each, Gateway API's own limit.
	MaxHeaderModifierEntries = 16
	// MaxRegexpsPerRollout is the most regular expressions (in path, header
	// and query parameter matches) a whole Rollout may hold.
	MaxRegexpsPerRollout = 32

	// MaxHeaderNameLength is the longest header or query parameter name, as
	// Gateway API allows.
	MaxHeaderNameLength = 256
	// MaxHeaderValueLength is the longest header or query parameter value,
	// as Gateway API allows.
	MaxHeaderValueLength = 4096
	// MaxRegexpLength is the longest regular expression in a match.
	MaxRegexpLength = 256
	// MaxPathLength is the longest path in a match, as Gateway API allows.
	MaxPathLength = 1024
	// MaxPrometheusQueryLength is the longest Prometheus query.
	MaxPrometheusQueryLength = 8192
	// MaxAddressLength is the longest metric provider address.
	MaxAddressLength = 2048
	// MaxTotalSuccessConditionLength bounds the bytes of CEL a whole Rollout
	// may hold: compiling is the costly part of validating a condition.
	MaxTotalSuccessConditionLength = 4 * 1024
	// MaxTotalSuccessConditionCost is the whole-object budget of estimated
	// CEL cost, summed over every successCondition, like the budget
	// CustomResourceDefinitions put on their validation rules.
	MaxTotalSuccessConditionCost = 5 * SuccessConditionCostLimit
)

// validateRequestCost checks the counts and lengths bounded above, before any
// expensive validation runs. When it reports errors, the rest of the spec is
// not validated: the caller learns what to shrink first, and an oversize spec
// costs no more than this pass.
func validateRequestCost(spec *rollout.RolloutSpec, fldPath *field.Path) field.ErrorList {
	c := costCounter{}
	strategyPath := fldPath.Child("strategy")
	if s := spec.Strategy.Canary; s != nil {
		c.strategy(s.Steps, s.Analysis, strategyPath.Child("canary"))
	}
	if s := spec.Strategy.BlueGreen; s != nil {
		c.strategy(s.Steps, s.Analysis, strategyPath.Child("blueGreen"))
	}
	if c.metricChecks > MaxMetricChecksPerRollout {
		c.errs = append(c.errs, field.Forbidden(strategyPath, fmt.Sprintf(
			"the analyses of the strategy and its steps hold %d metric checks, more than the limit %d", c.metricChecks, MaxMetricChecksPerRollout)))
	}
	if c.conditionBytes > MaxTotalSuccessConditionLength {
		c.errs = append(c.errs, field.Forbidden(strategyPath, fmt.Sprintf(
			"the successConditions of all metric checks total %d bytes, more than the limit %d", c.conditionBytes, MaxTotalSuccessConditionLength)))
	}
	if c.regexps > MaxRegexpsPerRollout {
		c.errs = append(c.errs, field.Forbidden(strategyPath, fmt.Sprintf(
			"the matches of all steps hold %d regular expressions, more than the limit %d", c.regexps, MaxRegexpsPerRollout)))
	}
	return c.errs
}

// costCounter walks a spec once, adding up what validateRequestCost bounds.
type costCounter struct {
	errs           field.ErrorList
	metricChecks   int
	conditionBytes int
	regexps        int
}

func (c *costCounter) strategy(steps []rollout.CanaryStep, analysis *rollout.RolloutAnalysis, fldPath *field.Path) {
	stepsPath := fldPath.Child("steps")
	if len(steps) > MaxSteps {
		// validateSteps reports it too, but the steps are not walked here:
		// their number is what makes them costly.
		c.errs = append(c.errs, field.TooMany(stepsPath, len(steps), MaxSteps))
		return
	}
	c.analysis(analysis, fldPath.Child("analysis"))
	for i := range steps {
		stepPath := stepsPath.Index(i)
		c.analysis(steps[i].Analysis, stepPath.Child("analysis"))
		c.traffic(&steps[i].TrafficRoutingStrategy, stepPath)
	}
}

func (c *costCounter) analysis(a *rollout.RolloutAnalysis, fldPath *field.Path) {
	if a == nil {
		return
	}
	metricsPath := fldPath.Child("metrics")
	if len(a.Metrics) > MaxMetricsPerAnalysis {
		c.errs = append(c.errs, field.TooMany(metricsPath, len(a.Metrics), MaxMetricsPerAnalysis))
		return
	}
	c.metricChecks += len(a.Metrics)
	for i := range a.Metrics {
		m := &a.Metrics[i]
		c.conditionBytes += len(m.SuccessCondition)
		if p := m.Provider.Prometheus; p != nil {
			promPath := metricsPath.Index(i).Child("provider", "prometheus")
			c.maxLen(p.Address, MaxAddressLength, promPath.Child("address"))
			c.maxLen(p.Query, MaxPrometheusQueryLength, promPath.Child("query"))
		}
	}
}

func (c *costCounter) traffic(t *rollout.TrafficRoutingStrategy, stepPath *field.Path) {
	matchesPath := stepPath.Child("matches")
	if len(t.Matches) > MaxMatchesPerStep {
		c.errs = append(c.errs, field.TooMany(matchesPath, len(t.Matches), MaxMatchesPerStep))
		return
	}
	for i := range t.Matches {
		m := &t.Matches[i]
		matchPath := matchesPath.Index(i)
		if p := m.Path; p != nil && p.Value != nil {
			limit := MaxPathLength
			if p.Type != nil && *p.Type == MatchTypeRegularExpression {
				limit = MaxRegexpLength
				c.regexps++
			}
			c.maxLen(*p.Value, limit, matchPath.Child("path", "value"))
		}
		headersPath := matchPath.Child("headers")
		if len(m.Headers) > MaxHeadersPerMatch {
			c.errs = append(c.errs, field.TooMany(headersPath, len(m.Headers), MaxHeadersPerMatch))
		} else {
			for j := range m.Headers {
				h := &m.Headers[j]
				c.valueMatch(h.Type, h.Name, h.Value, headersPath.Index(j))
			}
		}
		queryPath := matchPath.Child("queryParams")
		if len(m.QueryParams) > MaxHeadersPerMatch {
			c.errs = append(c.errs, field.TooMany(queryPath, len(m.QueryParams), MaxHeadersPerMatch))
		} else {
			for j := range m.QueryParams {
				q := &m.QueryParams[j]
				c.valueMatch(q.Type, q.Name, q.Value, queryPath.Index(j))
			}
		}
	}
	if mod := t.RequestHeaderModifier; mod != nil {
		modPath := stepPath.Child("requestHeaderModifier")
		for _, list := range []struct {
			name string
			n    int
		}{{"set", len(mod.Set)}, {"add", len(mod.Add)}, {"remove", len(mod.Remove)}} {
			if list.n > MaxHeaderModifierEntries {
				c.errs = append(c.errs, field.TooMany(modPath.Child(list.name), list.n, MaxHeaderModifierEntries))
			}
		}
		for i := range mod.Set {
			c.maxLen(mod.Set[i].Name, MaxHeaderNameLength, modPath.Child("set").Index(i).Child("name"))
			c.headerValue(mod.Set[i].Value, modPath.Child("set").Index(i).Child("value"))
		}
		for i := range mod.Add {
			c.maxLen(mod.Add[i].Name, MaxHeaderNameLength, modPath.Child("add").Index(i).Child("name"))
			c.headerValue(mod.Add[i].Value, modPath.Child("add").Index(i).Child("value"))
		}
		for i, name := range mod.Remove {
			c.maxLen(name, MaxHeaderNameLength, modPath.Child("remove").Index(i))
		}
	}
}

// valueMatch bounds a header or query parameter match. An exact value is sent
// as a header value (NGINX annotations, Gateway API routes), so it must be one.
func (c *costCounter) valueMatch(matchType *string, name, value string, fldPath *field.Path) {
	c.maxLen(name, MaxHeaderNameLength, fldPath.Child("name"))
	if matchType != nil && *matchType == MatchTypeRegularExpression {
		c.regexps++
		c.maxLen(value, MaxRegexpLength, fldPath.Child("value"))
		return
	}
	c.headerValue(value, fldPath.Child("value"))
}

// headerValue requires what RFC 9110 allows in a field value: visible ASCII,
// spaces and tabs (no control characters, so no CR or LF that could split a
// header or an annotation), no leading or trailing whitespace, bounded length.
func (c *costCounter) headerValue(value string, fldPath *field.Path) {
	if !c.maxLen(value, MaxHeaderValueLength, fldPath) {
		return
	}
	if msg := headerValueProblem(value); msg != "" {
		c.errs = append(c.errs, field.Invalid(fldPath, value, msg))
	}
}

func headerValueProblem(value string) string {
	for i := 0; i < len(value); i++ {
		b := value[i]
		if b == '\t' || b == ' ' || (b >= 0x21 && b <= 0x7e) {
			continue
		}
		return fmt.Sprintf("must be a valid HTTP header value: byte %d (0x%02x) is not a visible ASCII character, space or tab", i, b)
	}
	if value != "" && (isSpaceOrTab(value[0]) || isSpaceOrTab(value[len(value)-1])) {
		return "must be a valid HTTP header value: no leading or trailing whitespace"
	}
	return ""
}

func isSpaceOrTab(b byte) bool { return b == ' ' || b == '\t' }

// maxLen reports a value longer than limit (or not UTF-8), and whether it was fine.
func (c *costCounter) maxLen(value string, limit int, fldPath *field.Path) bool {
	if len(value) > limit {
		// The value itself is left out: echoing megabytes back would make
		// the error as costly as the request.
		c.errs = append(c.errs, field.TooLong(fldPath, "", limit))
		return false
	}
	if !utf8.ValidString(value) {
		c.errs = append(c.errs, field.Invalid(fldPath, "", "must be valid UTF-8"))
		return false
	}
	return true
}

// validateSuccessConditionBudget sums the estimated cost of every
// successCondition of the spec against MaxTotalSuccessConditionCost. The
// conditions were compiled by validateMetricCheck already; this reads the cache.
func validateSuccessConditionBudget(spec *rollout.RolloutSpec, fldPath *field.Path) field.ErrorList {
	var total uint64
	add := func(a *rollout.RolloutAnalysis) {
		if a == nil {
			return
		}
		for i := range a.Metrics {
			if expr := a.Metrics[i].SuccessCondition; expr != "" && len(expr) <= MaxSuccessConditionLength {
				if c := compileSuccessConditionCached(expr); c.err == nil {
					total += c.estimatedCost
				}
			}
		}
	}
	if c := spec.Strategy.Canary; c != nil {
		add(c.Analysis)
		for i := range c.Steps {
			add(c.Steps[i].Analysis)
		}
	}
	if b := spec.Strategy.BlueGreen; b != nil {
		add(b.Analysis)
		for i := range b.Steps {
			add(b.Steps[i].Analysis)
		}
	}
	if total > MaxTotalSuccessConditionCost {
		return field.ErrorList{field.Forbidden(fldPath.Child("strategy"), fmt.Sprintf(
			"the successConditions of all metric checks have an estimated cost of %d, more than the budget %d", total, MaxTotalSuccessConditionCost))}
	}
	return nil
}
