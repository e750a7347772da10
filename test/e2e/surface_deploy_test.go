package e2e

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const deployNamespace = "rollout-system"

var apiServicesGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// TestSurfaceDeployManifests: every manifest in artifacts/deploy, with CA_BUNDLE replaced as
// docs/install.md says, passes the kube-apiserver's validation and admission
// (`kubectl apply --dry-run=server`) without changing the cluster; the namespace, service
// account and RBAC files also apply for real.
// (The real APIServices and webhook are not applied: they would replace the local
// registration of the server these tests use.)
func TestSurfaceDeployManifests(t *testing.T) {
	e := newSurfaceEnv(t)
	dir := filepath.Join(e.c.RootDir, "artifacts", "deploy")
	manifests := readDeployManifests(t, dir)
	ca, err := os.ReadFile(e.server.CAFile) // the CA of our serving cert, as caBundle wants
	require.NoError(t, err)
	caBundle := base64.StdEncoding.EncodeToString(ca)
	before := e.registrationSnapshot()

	t.Run("every manifest passes a server-side dry run", func(t *testing.T) {
		e := e.in(t)
		for _, name := range sortedManifestNames(manifests) {
			rendered := strings.ReplaceAll(manifests[name], "CA_BUNDLE", caBundle)
			res := e.kubectl.apply(rendered, "--dry-run=server")
			if assert.Zero(t, res.ExitCode, "%s:\n%s", name, res) {
				assert.Contains(t, res.Output, "(server dry run)", "%s:\n%s", name, res)
			}
		}
	})

	t.Run("the caBundle placeholder matters", func(t *testing.T) {
		e := e.in(t)
		for _, name := range []string{"70-apiservice.yaml", "80-webhook.yaml"} {
			require.Contains(t, manifests[name], "caBundle: CA_BUNDLE", "%s has the placeholder docs/install.md replaces", name)
		}
		// Not replaced, the APIService is refused: the dry runs above really are checked.
		res := e.kubectl.apply(manifests["70-apiservice.yaml"], "--dry-run=server")
		assert.NotZero(t, res.ExitCode, "an APIService with caBundle: CA_BUNDLE must not pass:\n%s", res)
	})

	t.Run("the dry runs changed nothing", func(t *testing.T) {
		e := e.in(t)
		ctx := context.Background()
		_, err := e.c.Client.AppsV1().Deployments(deployNamespace).Get(ctx, "rollout-apiserver", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "Deployment created by a dry run? err=%v", err)
		_, err = e.c.Client.PolicyV1().PodDisruptionBudgets(deployNamespace).Get(ctx, "rollout-apiserver", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "PodDisruptionBudget created by a dry run? err=%v", err)
		// The local registration (ExternalName Service, APIServices and webhook pointing at
		// 127.0.0.1) is what the dry runs would have replaced.
		assert.Equal(t, before, e.registrationSnapshot(), "the local registration is untouched")
	})

	t.Run("namespace, service account and RBAC apply for real", func(t *testing.T) {
		e := e.in(t)
		for _, name := range []string{"00-namespace.yaml", "10-serviceaccount.yaml", "20-rbac-server.yaml", "25-admission-policy.yaml", "30-rbac-users.yaml"} {
			res := e.kubectl.run("apply", "-f", filepath.Join(dir, name))
			assert.Zero(t, res.ExitCode, "%s:\n%s", name, res)
		}
		ns, err := e.c.Client.CoreV1().Namespaces().Get(context.Background(), deployNamespace, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "rollout-apiserver", ns.Labels["app.kubernetes.io/name"])
		for _, role := range []string{"rollout-apiserver", "rollout-apiserver:webhook-caller", "rollout-viewer", "rollout-editor", "rollout-admin", "rollout-promoter"} {
			_, err := e.c.Client.RbacV1().ClusterRoles().Get(context.Background(), role, metav1.GetOptions{})
			assert.NoError(t, err, "ClusterRole %s", role)
		}
	})

	// What the server's ServiceAccount may do with these roles, verb by verb, is
	// TestSecurityLeastPrivilege's question.
}

// readDeployManifests reads every *.yaml of artifacts/deploy, by file name.
func readDeployManifests(t *testing.T, dir string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	manifests := map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		manifests[filepath.Base(p)] = string(data)
	}
	for _, want := range []string{"00-namespace.yaml", "10-serviceaccount.yaml", "20-rbac-server.yaml", "25-admission-policy.yaml",
		"30-rbac-users.yaml", "35-audit-policy.yaml", "40-deployment.yaml", "50-service.yaml", "60-poddisruptionbudget.yaml", "70-apiservice.yaml", "80-webhook.yaml"} {
		require.Contains(t, manifests, want, "artifacts/deploy/%s", want)
	}
	return manifests
}

func sortedManifestNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// registrationSnapshot describes how the local run registers rollout-apiserver: the
// Service, both APIServices and the workload webhook (if the run registers one), each with
// its resourceVersion, so that any write shows.
func (e *surfaceEnv) registrationSnapshot() map[string]any {
	e.t.Helper()
	ctx := context.Background()
	snap := map[string]any{}
	svc, err := e.c.Client.CoreV1().Services(deployNamespace).Get(ctx, "rollout-apiserver", metav1.GetOptions{})
	require.NoError(e.t, err)
	snap["service"] = []any{svc.ResourceVersion, svc.Spec.Type, svc.Spec.ExternalName, svc.Spec.Ports}
	for _, name := range []string{"v1beta1.rollout.kruise.io", "v1alpha1.rollout.kruise.io"} {
		obj, err := e.c.Dynamic.Resource(apiServicesGVR).Get(ctx, name, metav1.GetOptions{})
		require.NoError(e.t, err)
		spec, _, err := unstructured.NestedMap(obj.Object, "spec")
		require.NoError(e.t, err)
		snap[name] = []any{obj.GetResourceVersion(), spec}
	}
	wh, err := e.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "rollout-apiserver-workloads", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		snap["webhook"] = "absent"
	case err != nil:
		require.NoError(e.t, err)
	default:
		snap["webhook"] = []any{wh.ResourceVersion, wh.Webhooks}
	}
	return snap
}
