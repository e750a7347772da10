package analysis

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRender(t *testing.T) {
	vars := map[string]string{
		VarNamespace: "shop", VarRollout: "web", VarWorkload: "web-app",
		VarCanaryRevision: "7d9f", VarStableRevision: "5c4b",
	}
	cases := []struct {
		name, query, want, err string
		vars                   map[string]string
	}{
		{name: "bare variables become string literals",
			query: `sum(rate(errors{namespace={{namespace}},revision={{ canaryRevision }}}[1m]))`,
			want:  `sum(rate(errors{namespace="shop",revision="7d9f"}[1m]))`},
		{name: "quoted variables keep one pair of quotes",
			query: `up{job="{{workload}}", rollout="{{rollout}}", stable="{{stableRevision}}"}`,
			want:  `up{job="web-app", rollout="web", stable="5c4b"}`},
		{name: "no variables", query: `vector(1)`, want: `vector(1)`},
		{name: "a value cannot end its string",
			query: `up{namespace={{namespace}}}`,
			vars:  map[string]string{VarNamespace: `a"} or vector(1) or up{x="`},
			want:  `up{namespace="a\"} or vector(1) or up{x=\""}`},
		{name: "backslashes and newlines are escaped",
			query: `up{namespace={{namespace}}}`,
			vars:  map[string]string{VarNamespace: "a\\b\nc"},
			want:  `up{namespace="a\\b\nc"}`},
		{name: "unknown variable is refused", query: `up{x={{revision}}}`, err: "unknown query variable {{revision}}"},
		{name: "a variable inside a longer string is refused", query: `up{job="{{rollout}}-canary"}`, err: "must stand alone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := vars
			if tc.vars != nil {
				v = tc.vars
			}
			got, err := Render(tc.query, v)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
