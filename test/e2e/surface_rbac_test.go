package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSurfaceRBAC: the roles of artifacts/deploy/30-rbac-users.yaml, bound in a namespace,
// decide what impersonated users may do with rollouts through the aggregator: a viewer reads,
// an editor writes, a promoter drives a release without editing it, a stranger gets nothing;
// and the roles are aggregated into the cluster's view/edit/admin.
func TestSurfaceRBAC(t *testing.T) {
	e := newSurfaceEnv(t)
	e.kubectl.must("apply", "-f", filepath.Join(e.c.RootDir, "artifacts", "deploy", "30-rbac-users.yaml"))

	ns := e.namespace()
	e.kubectl.mustApply(canaryRolloutYAML(ns, "web", "web"))
	for user, role := range map[string]string{
		"alice": "rollout-viewer",
		"ed":    "rollout-editor",
		"pat":   "rollout-promoter",
		"vera":  "view", // the built-in role, which rollout-viewer is aggregated into
	} {
		e.kubectl.must("create", "rolebinding", user, "-n", ns, "--clusterrole="+role, "--user="+user)
	}
	promoteURL := fmt.Sprintf("/apis/rollout.kruise.io/v1beta1/namespaces/%s/rollouts/web/promote", ns)
	promoteBody := filepath.Join(t.TempDir(), "promote.json")
	require.NoError(t, os.WriteFile(promoteBody, []byte(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote","full":false}`), 0o644))
	edited := strings.Replace(canaryRolloutYAML(ns, "web", "web"), "replicas: 1,", "replicas: 2,", 1)
	editedFile := filepath.Join(t.TempDir(), "web.yaml")
	require.NoError(t, os.WriteFile(editedFile, []byte(edited), 0o644))

	t.Run("the user roles are aggregated into view, edit and admin", func(t *testing.T) {
		e := e.in(t)
		// kube-controller-manager's clusterrole-aggregation controller fills them in.
		e.eventually("view/edit/admin to include rollout.kruise.io rules", func(ctx context.Context) (bool, string) {
			var missing []string
			for role, rules := range map[string][]string{
				"view":  {"get rollouts", "list rollouts", "watch rollouts", "get rollouts/status"},
				"edit":  {"get rollouts", "create rollouts", "update rollouts", "delete rollouts", "create rollouts/promote", "create rollouts/abort", "create rollouts/retry"},
				"admin": {"create rollouts", "create rollouts/resume"},
			} {
				cr, err := e.c.Client.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				for _, r := range rules {
					verb, resource, _ := strings.Cut(r, " ")
					if !rulesAllow(cr.Rules, verb, resource) {
						missing = append(missing, role+": "+r)
					}
				}
			}
			return len(missing) == 0, "missing " + strings.Join(missing, ", ")
		})
		// ... and view stays read-only, edit does not touch status.
		ctx := context.Background()
		view, err := e.c.Client.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		require.NoError(t, err)
		for _, r := range []string{"create rollouts", "update rollouts", "create rollouts/promote", "update rollouts/status"} {
			verb, resource, _ := strings.Cut(r, " ")
			assert.False(t, rulesAllow(view.Rules, verb, resource), "view must not allow %s", r)
		}
		edit, err := e.c.Client.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
		require.NoError(t, err)
		assert.False(t, rulesAllow(edit.Rules, "update", "rollouts/status"), "edit must not allow update rollouts/status")
		// Status carries pendingAction and phase, which the server acts on:
		// not even a namespace admin may forge it.
		admin, err := e.c.Client.RbacV1().ClusterRoles().Get(ctx, "admin", metav1.GetOptions{})
		require.NoError(t, err)
		for _, verb := range []string{"update", "patch"} {
			assert.False(t, rulesAllow(admin.Rules, verb, "rollouts/status"), "admin must not allow %s rollouts/status", verb)
		}
	})

	// RoleBindings take effect when the authorizer's informers see them.
	e.eventually("alice's RoleBinding to take effect", func(context.Context) (bool, string) {
		res := e.kubectl.as("alice").run("get", "rollout", "web", "-n", ns)
		return res.ExitCode == 0, res.String()
	})

	t.Run("viewer reads, but cannot create, update or promote", func(t *testing.T) {
		e := e.in(t)
		alice := e.kubectl.as("alice")
		assert.Contains(t, alice.must("get", "rollouts", "-n", ns), "web")
		assert.Contains(t, alice.must("get", "rollout", "web", "-n", ns, "-o", "yaml"), "name: web")

		res := alice.runWithStdin(canaryRolloutYAML(ns, "alices", "alices"), "create", "-f", "-")
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "alice" cannot create resource "rollouts"`, "%s", res)

		res = alice.run("replace", "-f", editedFile)
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "alice" cannot update resource "rollouts"`, "%s", res)

		res = alice.run("create", "--raw", promoteURL, "-f", promoteBody)
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "alice" cannot create resource "rollouts/promote"`, "%s", res)
		e.expectNoRollout(ns, "alices")
	})

	t.Run("editor creates and updates", func(t *testing.T) {
		e := e.in(t)
		ed := e.kubectl.as("ed")
		// (kubectl create, not apply: rollout-editor alone grants no get, see the report.)
		res := ed.runWithStdin(canaryRolloutYAML(ns, "eds", "eds"), "create", "-f", "-")
		require.Zero(t, res.ExitCode, "%s", res)
		assert.Contains(t, res.Output, "rollout.rollout.kruise.io/eds created")
		e.rolloutAs(rolloutsV1beta1, ns, "eds")

		ed.must("replace", "-f", editedFile)
		assert.EqualValues(t, 2, canarySteps(t, e.rolloutAs(rolloutsV1beta1, ns, "web").Object)[0]["replicas"], "ed's update is stored")
	})

	t.Run("promoter may promote but not edit the spec", func(t *testing.T) {
		e := e.in(t)
		pat := e.kubectl.as("pat")
		// Authorized: our server itself answers, 409 because nothing is being released.
		res := pat.run("create", "--raw", promoteURL, "-f", promoteBody)
		require.NotZero(t, res.ExitCode, "web is not Progressing, so promote must be refused:\n%s", res)
		assert.Contains(t, res.Output, "(Conflict)", "409 Conflict from our server, past authorization:\n%s", res)
		assert.Contains(t, res.Output, "nothing to promote", "%s", res)
		assert.NotContains(t, res.Output, "Forbidden", "%s", res)

		res = pat.run("patch", "rollout", "web", "-n", ns, "--type=merge", "-p", `{"spec":{"disabled":true}}`)
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "pat" cannot patch resource "rollouts"`, "%s", res)
		res = pat.run("replace", "-f", editedFile)
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "pat" cannot update resource "rollouts"`, "%s", res)
	})

	t.Run("a user without a role cannot even read", func(t *testing.T) {
		e := e.in(t)
		res := e.kubectl.as("nobody").run("get", "rollout", "web", "-n", ns)
		expectForbidden(t, res)
		assert.Contains(t, res.Output, `User "nobody" cannot get resource "rollouts"`, "%s", res)
	})

	t.Run("the built-in view role is enough to list rollouts", func(t *testing.T) {
		e := e.in(t)
		vera := e.kubectl.as("vera")
		var names []string
		for _, row := range parseKubectlTable(t, vera.must("get", "rollouts", "-n", ns)).Rows {
			names = append(names, row["NAME"])
		}
		assert.ElementsMatch(t, []string{"web", "eds"}, names)
		expectForbidden(t, vera.run("delete", "rollout", "web", "-n", ns))
	})
}

// rulesAllow reports whether rules grant verb on resource (a "rollouts/sub" subresource
// included) of rollout.kruise.io.
func rulesAllow(rules []rbacv1.PolicyRule, verb, resource string) bool {
	for _, r := range rules {
		if (slices.Contains(r.APIGroups, "rollout.kruise.io") || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}
