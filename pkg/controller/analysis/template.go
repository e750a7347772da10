package analysis

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Variables of a query template, by name. Each is written {{name}} (spaces
// inside the braces allowed) and expands to a complete PromQL string literal,
// quotes included, so a value can never end the string it sits in:
//
//	rate(http_requests_total{namespace={{namespace}}, revision={{canaryRevision}}}[1m])
//
// A variable already wrapped in double quotes ("{{namespace}}") is expanded
// the same way, quotes replaced, so queries written for other tools work too.
const (
	VarNamespace      = "namespace"
	VarRollout        = "rollout"
	VarWorkload       = "workload"
	VarCanaryRevision = "canaryRevision"
	VarStableRevision = "stableRevision"
)

// placeholder matches {{ name }}, optionally wrapped in double quotes.
var placeholder = regexp.MustCompile(`"?\{\{\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}"?`)

// Render expands the variables of a query. An unknown variable is an error
// naming the known ones, so a typo is never sent to Prometheus as text.
func Render(query string, vars map[string]string) (string, error) {
	var unknown, embedded []string
	out := placeholder.ReplaceAllStringFunc(query, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		value, ok := vars[name]
		if !ok {
			unknown = append(unknown, name)
			return m
		}
		if strings.HasPrefix(m, `"`) != strings.HasSuffix(m, `"`) {
			// Part of a longer string ("{{rollout}}-canary"): quoting the value
			// alone cannot make that safe.
			embedded = append(embedded, name)
			return m
		}
		return QuoteLabelValue(value)
	})
	if len(embedded) > 0 {
		return "", fmt.Errorf("query variable {{%s}} must stand alone or alone in its own quotes, not inside a longer string", embedded[0])
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(vars))
		for k := range vars {
			known = append(known, "{{"+k+"}}")
		}
		sort.Strings(known)
		return "", fmt.Errorf("unknown query variable {{%s}}; known: %s", unknown[0], strings.Join(known, ", "))
	}
	return out, nil
}

// QuoteLabelValue returns value as a PromQL double-quoted string literal.
// PromQL strings follow Go's escaping rules, so strconv.Quote's output (which
// escapes quotes, backslashes and control characters) is a valid literal
// whose value is exactly value.
func QuoteLabelValue(value string) string {
	return strconv.Quote(value)
}
