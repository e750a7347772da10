package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestSurfaceDiscoveryAndVersions: through the aggregator, discovery lists rollout.kruise.io
// with v1beta1 (preferred) and v1alpha1, resource rollouts (short name ro) and its
// subresources; a Rollout written in one version reads back, converted, in the other.
func TestSurfaceDiscoveryAndVersions(t *testing.T) {
	e := newSurfaceEnv(t)

	t.Run("discovery lists the group, both versions and the subresources", func(t *testing.T) {
		e := e.in(t)
		e.expectGroupDiscovered()
		for _, version := range []string{"v1beta1", "v1alpha1"} {
			e.expectRolloutResources("rollout.kruise.io/" + version)
		}
	})

	t.Run("kubectl api-resources shows rollouts as ro", func(t *testing.T) {
		e := e.in(t)
		out := e.kubectl.must("api-resources", "--api-group=rollout.kruise.io", "--no-headers")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 1, "one resource in the group (subresources are not listed):\n%s", out)
		assert.Equal(t, []string{"rollouts", "ro", "rollout.kruise.io/v1beta1", "true", "Rollout"}, strings.Fields(lines[0]),
			"NAME SHORTNAMES APIVERSION NAMESPACED KIND")
	})

	ns := e.namespace()

	t.Run("written in v1alpha1, read in v1beta1", func(t *testing.T) {
		e := e.in(t)
		// Kruise's older shape, applied server-side: the field manager must know the
		// v1alpha1 schema too, or the managed fields are silently dropped.
		e.kubectl.mustApply(fmt.Sprintf(`apiVersion: rollout.kruise.io/v1alpha1
kind: Rollout
metadata: {name: from-alpha, namespace: %s}
spec:
  objectRef:
    workloadRef: {apiVersion: apps/v1, kind: Deployment, name: alpha-web}
  strategy:
    canary:
      trafficRoutings:
      - service: alpha-web
        ingress: {name: alpha-web, classType: nginx}
      steps:
      - {replicas: 1, weight: 20}
      - {replicas: 50%%, weight: 60, pause: {duration: 30}}
`, ns), "--server-side", "--field-manager=alpha-user")

		beta := e.kubectl.getJSON("rollouts.v1beta1.rollout.kruise.io", "-n", ns, "from-alpha")
		assert.Equal(t, "rollout.kruise.io/v1beta1", beta["apiVersion"])
		spec := objectAt(t, beta, "spec")
		assert.Equal(t, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "alpha-web"}, objectAt(t, spec, "workloadRef"))
		assert.NotContains(t, spec, "objectRef", "v1beta1 has no spec.objectRef")
		steps := canarySteps(t, beta)
		require.Len(t, steps, 2)
		assert.Equal(t, "20%", steps[0]["traffic"], "weight 20 reads as traffic 20%%")
		assert.Equal(t, "60%", steps[1]["traffic"], "weight 60 reads as traffic 60%%")
		assert.EqualValues(t, 30, objectAt(t, steps[1], "pause")["duration"])
		for i, s := range steps {
			assert.NotContains(t, s, "weight", "v1beta1 step %d has no weight", i)
		}

		// (kubectl hides managedFields; read them as a client does)
		managers := managedFieldsOf(t, e.rolloutAs(rolloutsV1beta1, ns, "from-alpha").Object)
		assert.Contains(t, managers, "alpha-user Apply rollout.kruise.io/v1alpha1",
			"server-side apply in v1alpha1 records its managed fields in v1alpha1")
	})

	t.Run("written in v1beta1, read and updated in v1alpha1, read back in v1beta1", func(t *testing.T) {
		e := e.in(t)
		e.kubectl.mustApply(canaryRolloutYAML(ns, "from-beta", "beta-web"))

		alpha := e.kubectl.getJSON("rollouts.v1alpha1.rollout.kruise.io", "-n", ns, "from-beta")
		assert.Equal(t, "rollout.kruise.io/v1alpha1", alpha["apiVersion"])
		spec := objectAt(t, alpha, "spec")
		assert.NotContains(t, spec, "workloadRef", "v1alpha1 keeps the workload under spec.objectRef")
		assert.Equal(t, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "beta-web"},
			objectAt(t, objectAt(t, spec, "objectRef"), "workloadRef"))
		steps := canarySteps(t, alpha)
		require.Len(t, steps, 3)
		assert.EqualValues(t, 10, steps[0]["weight"], "traffic 10%% reads as weight 10")
		assert.EqualValues(t, 50, steps[1]["weight"], "traffic 50%% reads as weight 50")
		assert.NotContains(t, steps[2], "weight", "a step without traffic has no weight")
		for i, s := range steps {
			assert.NotContains(t, s, "traffic", "v1alpha1 step %d has no traffic", i)
		}

		// A Kruise v1alpha1 user edits the weight; v1beta1 readers see the new traffic.
		e.kubectl.must("patch", "rollouts.v1alpha1.rollout.kruise.io", "-n", ns, "from-beta", "--type=json",
			"-p", `[{"op":"replace","path":"/spec/strategy/canary/steps/0/weight","value":30}]`)
		steps = canarySteps(t, e.rolloutAs(rolloutsV1beta1, ns, "from-beta").Object)
		assert.Equal(t, "30%", steps[0]["traffic"])
		assert.Equal(t, "50%", steps[1]["traffic"], "the other steps are unchanged")
	})
}

// expectGroupDiscovered checks /apis as the aggregator serves it (it may take a moment to
// pick up a server that just started).
func (e *surfaceEnv) expectGroupDiscovered() {
	t := e.t
	t.Helper()
	var group *metav1.APIGroup
	e.eventually("rollout.kruise.io in the aggregated discovery", func(context.Context) (bool, string) {
		groups, err := e.c.Client.Discovery().ServerGroups()
		if err != nil {
			return false, err.Error()
		}
		for i := range groups.Groups {
			if groups.Groups[i].Name == "rollout.kruise.io" {
				group = &groups.Groups[i]
				return true, ""
			}
		}
		return false, "group not listed"
	})
	var versions []string
	for _, v := range group.Versions {
		versions = append(versions, v.GroupVersion)
	}
	assert.Equal(t, []string{"rollout.kruise.io/v1beta1", "rollout.kruise.io/v1alpha1"}, versions, "served versions, preferred first")
	assert.Equal(t, "rollout.kruise.io/v1beta1", group.PreferredVersion.GroupVersion, "preferred version")
}

// expectRolloutResources checks the resource list of one group version.
func (e *surfaceEnv) expectRolloutResources(groupVersion string) {
	t := e.t
	t.Helper()
	list, err := e.c.Client.Discovery().ServerResourcesForGroupVersion(groupVersion)
	require.NoError(t, err, "discovery of %s", groupVersion)

	verbs := map[string][]string{}
	var rollouts *metav1.APIResource
	for i, r := range list.APIResources {
		v := append([]string(nil), r.Verbs...)
		slices.Sort(v)
		verbs[r.Name] = v
		if r.Name == "rollouts" {
			rollouts = &list.APIResources[i]
		}
	}
	require.NotNil(t, rollouts, "%s lists rollouts: %v", groupVersion, verbs)
	assert.True(t, rollouts.Namespaced, "%s rollouts are namespaced", groupVersion)
	assert.Equal(t, "Rollout", rollouts.Kind)
	assert.Equal(t, []string{"ro"}, rollouts.ShortNames, "%s short names", groupVersion)
	assert.Contains(t, rollouts.Categories, "all", "%s categories", groupVersion)

	want := map[string][]string{
		"rollouts":         {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
		"rollouts/status":  {"get", "patch", "update"},
		"rollouts/promote": {"create"},
		"rollouts/pause":   {"create"},
		"rollouts/resume":  {"create"},
		"rollouts/abort":   {"create"},
		"rollouts/retry":   {"create"},
	}
	assert.Equal(t, want, verbs, "%s resources and their verbs", groupVersion)
}

// objectAt returns obj[key] as an object, failing the test if it is not one.
func objectAt(t *testing.T, obj map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := obj[key].(map[string]any)
	require.Truef(t, ok, "%q is not an object in %v", key, obj)
	return v
}

// canarySteps returns spec.strategy.canary.steps of a Rollout in either version.
func canarySteps(t *testing.T, ro map[string]any) []map[string]any {
	t.Helper()
	raw, found, err := unstructured.NestedSlice(ro, "spec", "strategy", "canary", "steps")
	require.NoError(t, err)
	require.True(t, found, "no spec.strategy.canary.steps in %v", ro["spec"])
	steps := make([]map[string]any, len(raw))
	for i, s := range raw {
		steps[i] = s.(map[string]any)
	}
	return steps
}

// managedFieldsOf lists a Rollout's managed-field entries as "manager operation apiVersion".
func managedFieldsOf(t *testing.T, ro map[string]any) []string {
	t.Helper()
	entries, _, err := unstructured.NestedSlice(ro, "metadata", "managedFields")
	require.NoError(t, err)
	var out []string
	for _, m := range entries {
		mf := m.(map[string]any)
		out = append(out, fmt.Sprintf("%v %v %v", mf["manager"], mf["operation"], mf["apiVersion"]))
	}
	return out
}
