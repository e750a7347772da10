package e2e

// Security tests (issue 10, items 3, 4 and 9): who may call the workload webhook, what the
// server's own identity may do in the host cluster, and what the audit log records.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

const (
	// serverServiceAccount is the identity of the installed server (artifacts/deploy/10-*).
	serverServiceAccount = "system:serviceaccount:rollout-system:rollout-apiserver"
	// webhookCaller is the user kube-apiserver's webhook client certificate names
	// (hack/local-up.sh; artifacts/deploy/20-rbac-server.yaml allows it).
	webhookCaller = "rollout-apiserver:webhook-caller"
	webhookPath   = "/webhooks/workloads"
)

var serverGroups = []string{"system:serviceaccounts", "system:serviceaccounts:rollout-system", "system:authenticated"}

// TestSecurityWebhookCallers: the workload webhook answers kube-apiserver, which presents
// the client certificate its admission configuration names, and refuses everybody else:
// an anonymous caller (any pod that reaches the port) and a caller with a valid cluster
// certificate of another identity get 403 before their body is read. kube-apiserver's own
// calls keep working: a labelled Deployment's image change is still held.
func TestSecurityWebhookCallers(t *testing.T) {
	s := newScenario(t)
	s.givenDeployment("web", 2)
	s.givenRollout([]v1beta1.CanaryStep{step("50%"), step("100%")})
	pki := s.env.c.Env["PKI_DIR"]
	server := s.env.server

	// kube-apiserver's call is accepted: the image change is held (updateImage fails the
	// test otherwise) and released step by step.
	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)

	review := secAdmissionReview(t, s.ns, "web")
	for _, tc := range []struct {
		name       string
		cert, key  string
		wantStatus int
		wantUser   string
	}{
		{name: "an anonymous call is refused", wantStatus: http.StatusForbidden, wantUser: "system:anonymous"},
		{name: "another cluster identity is refused", cert: "controller-manager.crt", key: "controller-manager.key",
			wantStatus: http.StatusForbidden, wantUser: "system:kube-controller-manager"},
		{name: "kube-apiserver's webhook identity is answered", cert: "webhook-caller.crt", key: "webhook-caller.key",
			wantStatus: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &rest.Config{Host: server.URL, TLSClientConfig: rest.TLSClientConfig{CAFile: server.CAFile}}
			if tc.cert != "" {
				cfg.CertFile, cfg.KeyFile = filepath.Join(pki, tc.cert), filepath.Join(pki, tc.key)
			}
			status, body := secPost(t, cfg, webhookPath, review)
			require.Equal(t, tc.wantStatus, status, "POST %s answered:\n%s", webhookPath, body)
			if tc.wantUser != "" {
				var st metav1.Status
				require.NoError(t, json.Unmarshal([]byte(body), &st), body)
				assert.Contains(t, st.Message, fmt.Sprintf("User %q cannot post path %q", tc.wantUser, webhookPath))
				return
			}
			var answer admissionv1.AdmissionReview
			require.NoError(t, json.Unmarshal([]byte(body), &answer), body)
			require.NotNil(t, answer.Response, body)
			assert.Equal(t, types.UID("sec-review"), answer.Response.UID)
			assert.True(t, answer.Response.Allowed, body)
		})
	}

}

// TestSecurityLeastPrivilege: the server reaches the host cluster as its ServiceAccount,
// bound to exactly the shipped artifacts/deploy/20-rbac-server.yaml (every e2e test runs the
// server that way; TestRelease and TestTrafficGateway are the full proof that the role
// suffices). Each verb the code does not call is denied, and so is calling the webhook.
func TestSecurityLeastPrivilege(t *testing.T) {
	e := newSurfaceEnv(t)

	t.Run("the server's host identity is its ServiceAccount", func(t *testing.T) {
		require.NotEmpty(t, e.server.HostKubeconfig, "hack/local-register.sh wrote no host kubeconfig")
		require.NotEqual(t, e.c.Kubeconfig, e.server.HostKubeconfig, "the server must not run as the admin (ROLLOUT_HOST_IDENTITY=admin?)")
		cfg, err := clientcmd.BuildConfigFromFlags("", e.server.HostKubeconfig)
		require.NoError(t, err)
		client, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), surfaceWait)
		defer cancel()
		review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.Equal(t, serverServiceAccount, review.Status.UserInfo.Username)
		assert.NotContains(t, review.Status.UserInfo.Groups, "system:masters")
	})

	t.Run("each verb the server does not call is denied", func(t *testing.T) {
		for _, q := range []struct {
			verb, group, resource, namespace string
			want                             bool
			name                             string // one object, if set
		}{
			// delegated authentication and authorization, the client CA
			{"create", "authentication.k8s.io", "tokenreviews", "", true, ""},
			{"create", "authorization.k8s.io", "subjectaccessreviews", "", true, ""},
			{"get", "", "configmaps", "kube-system", true, "extension-apiserver-authentication"},
			{"get", "", "configmaps", "kube-system", false, "other"},
			// the generic server: admission and flow control
			{"watch", "", "namespaces", "", true, ""},
			{"list", "admissionregistration.k8s.io", "validatingadmissionpolicies", "", true, ""},
			{"watch", "flowcontrol.apiserver.k8s.io", "flowschemas", "", true, ""},
			// what the controller calls
			{"update", "apps", "deployments", "", true, ""},
			{"patch", "apps", "deployments", "", true, ""},
			{"create", "apps", "deployments", "", true, ""}, // the extra canary Deployment
			{"delete", "apps", "deployments", "", true, ""}, // ... and its removal
			{"update", "apps", "statefulsets", "", true, ""},
			{"patch", "apps", "daemonsets", "", true, ""},
			{"create", "apps", "replicasets", "", true, ""}, // the new revision of an in-place release
			{"update", "apps", "replicasets", "", true, ""},
			{"delete", "", "pods", "", true, ""},
			{"create", "", "events", "", true, ""},
			{"patch", "", "events", "", true, ""},
			{"create", "", "services", "", true, ""},
			{"update", "gateway.networking.k8s.io", "httproutes", "", true, ""},
			{"create", "networking.k8s.io", "ingresses", "", true, ""}, // the canary Ingress
			{"delete", "networking.k8s.io", "ingresses", "", true, ""},
			{"update", "networking.istio.io", "virtualservices", "", true, ""},
			{"update", "networking.istio.io", "destinationrules", "", true, ""},
			{"update", "coordination.k8s.io", "leases", deployNamespace, true, ""},
			// removed: verbs the code never calls
			{"create", "apps", "statefulsets", "", false, ""},
			{"delete", "apps", "statefulsets", "", false, ""},
			{"create", "apps", "daemonsets", "", false, ""},
			{"delete", "apps", "daemonsets", "", false, ""},
			{"patch", "apps", "replicasets", "", false, ""},
			{"delete", "apps", "replicasets", "", false, ""},
			{"deletecollection", "apps", "deployments", "", false, ""},
			{"get", "apps", "controllerrevisions", "", false, ""},
			{"create", "apps", "controllerrevisions", "", false, ""},
			{"create", "", "pods", "", false, ""},
			{"update", "", "pods", "", false, ""},
			{"update", "", "events", "", false, ""},
			{"create", "events.k8s.io", "events", "", false, ""},
			{"patch", "", "services", "", false, ""},
			{"create", "gateway.networking.k8s.io", "httproutes", "", false, ""},
			{"delete", "gateway.networking.k8s.io", "httproutes", "", false, ""},
			{"patch", "networking.k8s.io", "ingresses", "", false, ""},
			{"create", "networking.istio.io", "virtualservices", "", false, ""},
			{"delete", "networking.istio.io", "destinationrules", "", false, ""},
			{"get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", false, ""},
			{"update", "coordination.k8s.io", "leases", "default", false, ""},
			{"delete", "coordination.k8s.io", "leases", deployNamespace, false, ""},
			// never had it, must never get it
			{"get", "", "secrets", "", false, ""},
			{"create", "", "serviceaccounts/token", "", false, ""},
			{"update", "rbac.authorization.k8s.io", "clusterroles", "", false, ""},
			{"update", "rollout.kruise.io", "rollouts/status", "", false, ""},
		} {
			resource, subresource, _ := strings.Cut(q.resource, "/") // as kubectl auth can-i writes it
			allowed, reason := secCan(t, e.c, serverServiceAccount, serverGroups, &authorizationv1.ResourceAttributes{
				Verb: q.verb, Group: q.group, Resource: resource, Subresource: subresource, Namespace: q.namespace, Name: q.name,
			}, nil)
			assert.Equal(t, q.want, allowed, "%s may %s %s.%s (namespace %q)? %s", serverServiceAccount, q.verb, q.resource, q.group, q.namespace, reason)
		}
	})

	t.Run("only kube-apiserver's webhook identity may call the webhook", func(t *testing.T) {
		for user, want := range map[string]bool{
			webhookCaller:           true,
			"system:anonymous":      false,
			serverServiceAccount:    false,
			"system:kube-scheduler": false,
		} {
			allowed, reason := secCan(t, e.c, user, nil, nil, &authorizationv1.NonResourceAttributes{Verb: "post", Path: webhookPath})
			assert.Equal(t, want, allowed, "%s may POST %s? %s", user, webhookPath, reason)
		}
	})
}

// TestSecurityAdmissionPolicy: the shipped ValidatingAdmissionPolicy
// (artifacts/deploy/25-admission-policy.yaml, applied with the server's RBAC) lets the
// server's ServiceAccount change workloads labelled for a Rollout, and refuses it an
// unlabelled one, a ReplicaSet no Deployment owns and a pod no controller owns.
func TestSecurityAdmissionPolicy(t *testing.T) {
	s := newScenario(t)
	ctx := context.Background()
	c := s.env.c

	t.Run("the policy type-checks and is bound", func(t *testing.T) {
		framework.Eventually(t, surfaceWait, surfacePoll, "the policy's type check", func(ctx context.Context) (bool, string) {
			p, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "rollout-apiserver-writes", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if p.Status.TypeChecking == nil || p.Status.ObservedGeneration < p.Generation {
				return false, "not type-checked yet"
			}
			require.Empty(t, p.Status.TypeChecking.ExpressionWarnings, "the policy's expressions must type-check")
			return true, ""
		})
		_, err := c.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "rollout-apiserver-writes", metav1.GetOptions{})
		require.NoError(t, err)
	})

	// A Deployment a Rollout references: the server labels it (through the policy already).
	s.givenDeployment("web", 1)
	s.givenRollout([]v1beta1.CanaryStep{step("100%")}) // waits for the control label
	plain, err := c.Client.AppsV1().Deployments(s.ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "plain"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
			Template: podTemplate("plain", stableImage),
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	asServer := rest.CopyConfig(c.Config)
	asServer.Impersonate = rest.ImpersonationConfig{UserName: serverServiceAccount, Groups: serverGroups}
	server, err := kubernetes.NewForConfig(asServer)
	require.NoError(t, err)
	setImage := func(name, image string) error {
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
		_, err := server.AppsV1().Deployments(s.ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}

	t.Run("the server may not change an unlabelled Deployment", func(t *testing.T) {
		err := setImage(plain.Name, "evil:v1")
		require.Error(t, err, "the server's identity changed the pod template of an unlabelled Deployment")
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
		assert.Contains(t, err.Error(), "rollout-apiserver-writes")
		assert.Contains(t, err.Error(), "labelled rollout.kruise.io/controlled=true")
		_, err = server.AppsV1().Deployments(s.ns).Patch(ctx, plain.Name, types.MergePatchType,
			[]byte(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"00000000-0000-0000-0000-000000000000"}]}}`), metav1.PatchOptions{})
		assert.True(t, apierrors.IsForbidden(err), "an owner reference on an unlabelled Deployment (the garbage collector would delete it): %v", err)
		_, err = server.AppsV1().Deployments(s.ns).Patch(ctx, plain.Name, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"rollout.kruise.io/controlled":null}}}`), metav1.PatchOptions{})
		assert.NoError(t, err, "taking off a control label that is not there changes nothing (a controller with a lagging cache does it)")
	})

	t.Run("the server may change a labelled Deployment", func(t *testing.T) {
		patch := `{"metadata":{"annotations":{"security.test/touched":"yes"}}}`
		_, err := server.AppsV1().Deployments(s.ns).Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err, "the server's identity may write a workload labelled for its Rollout")
	})

	t.Run("the server may create only a ReplicaSet a Deployment owns", func(t *testing.T) {
		_, err := server.AppsV1().ReplicaSets(s.ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "loose"},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: new(int32),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "loose"}},
				Template: podTemplate("loose", stableImage),
			},
		}, metav1.CreateOptions{})
		require.Error(t, err)
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
		assert.Contains(t, err.Error(), "owned by that Deployment")
	})

	t.Run("the server may not delete a pod no controller owns", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: podTemplate("bare", stableImage).Spec}
		_, err := c.Client.CoreV1().Pods(s.ns).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		err = server.CoreV1().Pods(s.ns).Delete(ctx, "bare", metav1.DeleteOptions{})
		require.Error(t, err)
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
		assert.Contains(t, err.Error(), "pods that a ReplicaSet, StatefulSet or DaemonSet owns")
	})

	t.Run("nobody else is fenced in", func(t *testing.T) {
		_, err := c.Client.AppsV1().Deployments(s.ns).Patch(ctx, plain.Name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"security.test/touched":"yes"}}}`), metav1.PatchOptions{})
		require.NoError(t, err, "the admin is not matched by the server's policy")
	})
}

// TestSecurityAudit: with the shipped audit policy (artifacts/deploy/35-audit-policy.yaml,
// the ConfigMap the Deployment mounts), a promote sent by a user through the aggregator is
// recorded with that user, the promote subresource and the request body; a read with
// metadata only.
func TestSecurityAudit(t *testing.T) {
	c := framework.Get()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(secAuditPolicy(t, c.RootDir)), 0o600))
	auditLog := filepath.Join(dir, "audit.log")

	ctx, cancel := context.WithTimeout(context.Background(), surfaceServerTimeout)
	defer cancel()
	server, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: []string{
		"--leader-elect=false", "--audit-policy-file=" + policy, "--audit-log-path=" + auditLog, "--audit-log-maxage=0",
	}})
	require.NoError(t, err)
	// Stopped before the temp dir goes; the next test that needs a server starts its own.
	t.Cleanup(func() { _ = server.Stop() })
	require.NoError(t, c.WaitGroupServed(ctx))

	e := &surfaceEnv{t: t, c: c, server: server, kubectl: kubectlAs{t: t, c: c}}
	e.kubectl.must("apply", "-f", filepath.Join(c.RootDir, "artifacts", "deploy", "30-rbac-users.yaml"))
	ns := e.namespace()
	e.kubectl.mustApply(canaryRolloutYAML(ns, "web", "web"))
	e.kubectl.must("create", "rolebinding", "auditee", "-n", ns, "--clusterrole=rollout-promoter", "--user=auditee")
	promoteURL := fmt.Sprintf("/apis/rollout.kruise.io/v1beta1/namespaces/%s/rollouts/web/promote", ns)
	body := filepath.Join(dir, "promote.json")
	require.NoError(t, os.WriteFile(body, []byte(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote","full":true}`), 0o600))
	// Whether the server accepts this promote (the Rollout may not be paused) does not
	// matter: the attempt is what the audit records.
	res := e.kubectl.as("auditee").run("create", "--raw", promoteURL, "-f", body)
	t.Logf("promote as auditee: %s", res)
	e.kubectl.as("auditee").must("get", "rollouts.v1beta1.rollout.kruise.io", "web", "-n", ns)

	var promote, read *auditv1.Event
	framework.Eventually(t, surfaceWait, surfacePoll, "the audit events of auditee's promote and get", func(context.Context) (bool, string) {
		events, err := secReadAudit(auditLog)
		if err != nil {
			return false, err.Error()
		}
		for i := range events {
			ev := &events[i]
			if ev.User.Username != "auditee" || ev.ObjectRef == nil || ev.ObjectRef.Namespace != ns || ev.Stage != auditv1.StageResponseComplete {
				continue
			}
			switch {
			case ev.ObjectRef.Subresource == "promote":
				promote = ev
			case ev.Verb == "get" && ev.ObjectRef.Subresource == "":
				read = ev
			}
		}
		return promote != nil && read != nil, fmt.Sprintf("%d events, promote found %v, get found %v", len(events), promote != nil, read != nil)
	})
	assert.Equal(t, "create", promote.Verb)
	assert.Equal(t, "rollouts", promote.ObjectRef.Resource)
	assert.Equal(t, "web", promote.ObjectRef.Name)
	assert.Equal(t, auditv1.LevelRequestResponse, promote.Level)
	require.NotNil(t, promote.RequestObject, "the promote's body is recorded")
	assert.Contains(t, string(promote.RequestObject.Raw), `"full":true`)
	assert.Equal(t, auditv1.LevelMetadata, read.Level)
	assert.Nil(t, read.ResponseObject, "reads are recorded without bodies")
}

// secAdmissionReview is an AdmissionReview of an update of Deployment ns/name that no
// Rollout holds (its template unchanged).
func secAdmissionReview(t *testing.T, ns, name string) []byte {
	t.Helper()
	d := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name + "-other", Namespace: ns, UID: uuid.NewUUID()},
		Spec:       appsv1.DeploymentSpec{Template: podTemplate(name, stableImage)},
	}
	raw, err := json.Marshal(d)
	require.NoError(t, err)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "sec-review",
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			Name:      d.Name,
			Namespace: ns,
			Operation: admissionv1.Update,
			Object:    runtime.RawExtension{Raw: raw},
			OldObject: runtime.RawExtension{Raw: raw},
		},
	}
	out, err := json.Marshal(review)
	require.NoError(t, err)
	return out
}

// secPost POSTs body as JSON to path on the server of cfg (its TLS settings and client
// certificate, no other credentials) and returns the status and the body.
func secPost(t *testing.T, cfg *rest.Config, path string, body []byte) (int, string) {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), surfaceWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Host+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(out)
}

// secCan asks the host cluster (a SubjectAccessReview, as `kubectl auth can-i --as` does)
// whether user may do what res or nonRes describes.
func secCan(t *testing.T, c *framework.Cluster, user string, groups []string, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), surfaceWait)
	defer cancel()
	review, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: res, NonResourceAttributes: nonRes},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return review.Status.Allowed, review.Status.Reason
}

// secAuditPolicy is the audit policy the shipped ConfigMap carries.
func secAuditPolicy(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "artifacts", "deploy", "35-audit-policy.yaml"))
	require.NoError(t, err)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.Unmarshal(data, &cm))
	policy := cm.Data["policy.yaml"]
	require.NotEmpty(t, policy, "35-audit-policy.yaml has no data.policy.yaml")
	return policy
}

// secReadAudit reads the JSON lines of an audit log.
func secReadAudit(path string) ([]auditv1.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []auditv1.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var ev auditv1.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", line, err)
		}
		events = append(events, ev)
	}
	return events, sc.Err()
}
