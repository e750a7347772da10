package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestSurfaceKubectl: what kubectl shows of rollouts — the table columns (and -o wide), the
// short name, `kubectl explain` — and server-side apply by two field managers.
func TestSurfaceKubectl(t *testing.T) {
	e := newSurfaceEnv(t)
	ns := e.namespace()
	e.kubectl.mustApply(canaryRolloutYAML(ns, "web", "web"))

	t.Run("kubectl get rollouts prints the rollout columns", func(t *testing.T) {
		e := e.in(t)
		tbl := parseKubectlTable(t, e.kubectl.must("get", "rollouts", "-n", ns))
		assert.Equal(t, []string{"NAME", "STATUS", "STEP", "STATE", "MESSAGE", "AGE"}, tbl.Header)
		require.Len(t, tbl.Rows, 1)
		row := tbl.row(t, "web")
		// Not released yet: phase Initial (or empty, printed as Initial), no current step.
		assert.Equal(t, "Initial", row["STATUS"])
		assert.Equal(t, "-", row["STEP"])
		assert.Regexp(t, `^\d+s$`, row["AGE"])
	})

	t.Run("-o wide adds workload, canary revision, traffic and analysis", func(t *testing.T) {
		e := e.in(t)
		tbl := parseKubectlTable(t, e.kubectl.must("get", "rollouts", "-n", ns, "-o", "wide"))
		assert.Equal(t, []string{"NAME", "STATUS", "STEP", "STATE", "MESSAGE", "AGE", "WORKLOAD", "CANARY-REVISION", "TRAFFIC", "ANALYSIS"}, tbl.Header)
		row := tbl.row(t, "web")
		assert.Equal(t, "Deployment/web", row["WORKLOAD"])
		assert.Equal(t, "-", row["CANARY-REVISION"], "no release yet")
		assert.Equal(t, "-", row["TRAFFIC"], "no current step yet")
		assert.Equal(t, "-", row["ANALYSIS"], "no metric checks running")
	})

	t.Run("kubectl get ro is the same resource", func(t *testing.T) {
		e := e.in(t)
		tbl := parseKubectlTable(t, e.kubectl.must("get", "ro", "-n", ns))
		assert.Equal(t, "Initial", tbl.row(t, "web")["STATUS"])
		named := e.kubectl.must("get", "ro/web", "-n", ns, "-o", "name")
		assert.Equal(t, "rollout.rollout.kruise.io/web", strings.TrimSpace(named))
	})

	t.Run("kubectl explain describes the step fields", func(t *testing.T) {
		e := e.in(t)
		out := e.kubectl.must("explain", "rollouts.spec.strategy.canary.steps")
		assert.Regexp(t, `(?m)^GROUP:\s+rollout\.kruise\.io$`, out)
		assert.Regexp(t, `(?m)^KIND:\s+Rollout$`, out)
		assert.Regexp(t, `(?m)^VERSION:\s+v1beta1$`, out, "explain uses the preferred version")
		for field, typ := range map[string]string{
			"replicas": "<IntOrString>",
			"traffic":  "<string>",
			"pause":    "<StepPause>",
			"matches":  "<[]HttpRouteMatch>",
		} {
			assert.Regexp(t, fmt.Sprintf(`(?m)^  %s\s+%s$`, field, regexp.QuoteMeta(typ)), out, "field %s", field)
		}
		// Each field is documented, not only listed.
		assert.Regexp(t, `(?m)^  traffic\s+<string>\n\s+\S+`, out, "traffic has a description")
		assert.Contains(t, out, `"20%"`, "the docs show the percentage form")

		// The same steps in Kruise's v1alpha1 shape have a weight instead.
		alpha := e.kubectl.must("explain", "rollouts.spec.strategy.canary.steps", "--api-version=rollout.kruise.io/v1alpha1")
		assert.Regexp(t, `(?m)^  weight\s+<integer>$`, alpha)
		assert.NotRegexp(t, `(?m)^  traffic\s`, alpha)
	})

	t.Run("server-side apply: two managers conflict, --force-conflicts wins", func(t *testing.T) {
		e := e.in(t)
		manifest := func(replicas string) string {
			return fmt.Sprintf(`apiVersion: rollout.kruise.io/v1beta1
kind: Rollout
metadata: {name: shared, namespace: %s}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: shared}
  strategy:
    canary:
      steps:
      - replicas: %s
`, ns, replicas)
		}
		e.kubectl.mustApply(manifest("1"), "--server-side", "--field-manager=a")

		res := e.kubectl.apply(manifest("2"), "--server-side", "--field-manager=b")
		require.NotZero(t, res.ExitCode, "b's apply of a field a owns must fail:\n%s", res)
		assert.Contains(t, res.Output, `conflict with "a"`, "the conflict names the other manager:\n%s", res)
		assert.Contains(t, res.Output, ".spec.strategy.canary.steps", "and the field:\n%s", res)
		steps := canarySteps(t, e.rolloutAs(rolloutsV1beta1, ns, "shared").Object)
		assert.EqualValues(t, 1, steps[0]["replicas"], "a conflicting apply changes nothing")

		e.kubectl.mustApply(manifest("2"), "--server-side", "--field-manager=b", "--force-conflicts")
		ro := e.rolloutAs(rolloutsV1beta1, ns, "shared").Object
		assert.EqualValues(t, 2, canarySteps(t, ro)[0]["replicas"], "b forced its value")
		owners := stepOwners(t, ro)
		assert.Equal(t, []string{"b"}, owners, "b now owns the steps alone")
	})
}

// TestSurfaceKubectlRejectsInvalidRollouts: kubectl apply of an invalid Rollout fails with
// the server's 422 naming the field path, and a second Rollout for the same workload is
// refused on spec.workloadRef.name.
func TestSurfaceKubectlRejectsInvalidRollouts(t *testing.T) {
	e := newSurfaceEnv(t)
	ns := e.namespace()

	for _, tc := range []struct {
		name  string
		steps string   // YAML of spec.strategy.canary.steps
		want  []string // in kubectl's message
	}{{
		name:  "zero replicas",
		steps: "[{replicas: 0}]",
		want:  []string{"spec.strategy.canary.steps[0].replicas", "must be greater than 0"},
	}, {
		name:  "more than 100%",
		steps: "[{replicas: 10%}, {replicas: 150%}]",
		want:  []string{"spec.strategy.canary.steps[1].replicas", `"150%"`},
	}, {
		name:  "decreasing replicas",
		steps: "[{replicas: 50%}, {replicas: 20%}]",
		want:  []string{"spec.strategy.canary.steps[1].replicas"},
	}, {
		name:  "traffic without a traffic routing",
		steps: "[{replicas: 1, traffic: 20%}]",
		want:  []string{"spec.strategy.canary.steps[0].traffic"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			name := "bad-" + strings.ReplaceAll(tc.name, " ", "-")
			name = strings.ReplaceAll(name, "%", "pct")
			res := e.kubectl.apply(fmt.Sprintf(`apiVersion: rollout.kruise.io/v1beta1
kind: Rollout
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: %[1]s}
  strategy:
    canary:
      steps: %[3]s
`, name, ns, tc.steps))
			require.NotZero(t, res.ExitCode, "an invalid Rollout must be rejected:\n%s", res)
			assert.Contains(t, res.Output, fmt.Sprintf(`The Rollout %q is invalid`, name), "a 422 Invalid:\n%s", res)
			for _, w := range tc.want {
				assert.Contains(t, res.Output, w, "kubectl's message:\n%s", res)
			}
			e.expectNoRollout(ns, name)
		})
	}

	t.Run("one Rollout per workload", func(t *testing.T) {
		e := e.in(t)
		e.kubectl.mustApply(canaryRolloutYAML(ns, "first", "web"))

		res := e.kubectl.apply(canaryRolloutYAML(ns, "second", "web"))
		require.NotZero(t, res.ExitCode, "a second Rollout of Deployment web must be rejected:\n%s", res)
		assert.Contains(t, res.Output, `The Rollout "second" is invalid`, "a 422 Invalid:\n%s", res)
		assert.Contains(t, res.Output, `spec.workloadRef.name: Invalid value: "web"`, "names the field:\n%s", res)
		assert.Contains(t, res.Output, `"first"`, "names the Rollout that holds the workload:\n%s", res)
		e.expectNoRollout(ns, "second")

		// The check is about the workload, not about a second Rollout as such.
		e.kubectl.mustApply(canaryRolloutYAML(ns, "second", "api"))
	})
}

// stepOwners lists the field managers that own spec.strategy.canary.steps.
func stepOwners(t *testing.T, ro map[string]any) []string {
	t.Helper()
	var owners []string
	entries, _, _ := unstructured.NestedSlice(ro, "metadata", "managedFields")
	for _, m := range entries {
		mf := m.(map[string]any)
		fields, _ := mf["fieldsV1"].(map[string]any)
		spec, _ := fields["f:spec"].(map[string]any)
		strategy, _ := spec["f:strategy"].(map[string]any)
		canary, _ := strategy["f:canary"].(map[string]any)
		if _, ok := canary["f:steps"]; ok {
			owners = append(owners, fmt.Sprint(mf["manager"]))
		}
	}
	return owners
}
