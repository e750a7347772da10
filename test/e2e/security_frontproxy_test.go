package e2e

// --trust-front-proxy-authorization (issue 11, item 2): requests the aggregator authorized and
// forwarded skip our SubjectAccessReview; every other caller is still authorized.

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestSecurityTrustFrontProxyAuthorization runs the server with the option on. Through the
// aggregator, a user whom the cluster lets read Rollouts in one namespace is served there
// and refused (by kube-apiserver) elsewhere. Straight to our port, a caller with a valid
// cluster certificate but no rights gets 403, also when it sends the front proxy's identity
// headers (only the front-proxy certificate makes them count), and the admin is served.
func TestSecurityTrustFrontProxyAuthorization(t *testing.T) {
	c := framework.Get()
	robBuild(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: append(robLeaseArgs("trust-front-proxy-"+rand.String(5)),
		"--trust-front-proxy-authorization")})
	require.NoError(t, err, "start rollout-apiserver with --trust-front-proxy-authorization")
	t.Cleanup(func() { _ = s.Kill() })

	readable, other := c.NewNamespace(t), c.NewNamespace(t)
	// A cluster identity of its own (a client certificate, no impersonation), bound to
	// rollout-viewer in one namespace only. The role comes from the deploy manifests; the
	// control plane does not have it unless an earlier test applied them, and a binding to
	// a missing ClusterRole grants nothing (kube-apiserver answers 403 "clusterrole not found").
	const viewer = webhookCaller
	_, err = c.KubectlCmd(ctx, "apply", "-f", filepath.Join(c.RootDir, "artifacts", "deploy", "30-rbac-users.yaml"))
	require.NoError(t, err, "apply the user roles")
	kc, err := kubernetes.NewForConfig(c.Config)
	require.NoError(t, err)
	_, err = kc.RbacV1().RoleBindings(readable).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "trust-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "rollout-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: viewer}},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "bind rollout-viewer in %s", readable)
	framework.Eventually(t, 30*time.Second, 500*time.Millisecond, "the viewer's binding to take effect", func(ctx context.Context) (bool, string) {
		out, err := c.KubectlCmd(ctx, "auth", "can-i", "list", "rollouts.rollout.kruise.io", "-n", readable, "--as", viewer)
		return err == nil && strings.TrimSpace(out) == "yes", out
	})

	rollouts := func(ns string) string { return "/apis/rollout.kruise.io/v1beta1/namespaces/" + ns + "/rollouts" }
	pki := c.Env["PKI_DIR"]
	asViewer := rest.CopyConfig(c.Config)
	asViewer.CertData, asViewer.KeyData = nil, nil
	asViewer.CertFile, asViewer.KeyFile = filepath.Join(pki, "webhook-caller.crt"), filepath.Join(pki, "webhook-caller.key")
	noRights := &rest.Config{Host: s.URL, TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile,
		CertFile: filepath.Join(pki, "webhook-caller.crt"), KeyFile: filepath.Join(pki, "webhook-caller.key")}}
	forged := http.Header{"X-Remote-User": {"kubernetes-admin"}, "X-Remote-Group": {"system:masters"}}

	for _, tc := range []struct {
		name    string
		cfg     *rest.Config
		path    string
		headers http.Header
		want    int
	}{
		{name: "through the aggregator, the admin is served", cfg: c.Config, path: rollouts(readable), want: http.StatusOK},
		{name: "through the aggregator, a user allowed by the cluster is served", cfg: asViewer, path: rollouts(readable), want: http.StatusOK},
		{name: "through the aggregator, the same user elsewhere is refused by kube-apiserver", cfg: asViewer, path: rollouts(other), want: http.StatusForbidden},
		{name: "directly, a cluster identity without rights there gets 403", cfg: noRights, path: rollouts(other), want: http.StatusForbidden},
		{name: "directly, front-proxy headers without the front-proxy certificate count for nothing", cfg: noRights, path: rollouts(other), headers: forged, want: http.StatusForbidden},
		{name: "directly, the same identity is served where the cluster allows it", cfg: noRights, path: rollouts(readable), want: http.StatusOK},
		{name: "directly, the admin is served", cfg: s.RESTConfig(), path: rollouts(readable), want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The binding reaches kube-apiserver's RBAC cache within moments.
			framework.Eventually(t, 30*time.Second, 500*time.Millisecond, tc.name, func(ctx context.Context) (bool, string) {
				// Each attempt has its own deadline, so the last state reported on failure
				// is the last answer, not the overall deadline cutting an attempt short.
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				status, body := trustGet(ctx, t, tc.cfg, tc.path, tc.headers)
				return status == tc.want, body
			})
		})
	}
}

// trustGet sends GET path to cfg's host with extra headers and returns the status and the
// start of the body.
func trustGet(ctx context.Context, t *testing.T, cfg *rest.Config, path string, headers http.Header) (int, string) {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+path, nil)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, resp.Status + ": " + string(out)
}
