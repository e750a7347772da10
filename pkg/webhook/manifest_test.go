package webhook

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the generated webhook manifests under artifacts/")

const generatedNote = "# Generated from pkg/webhook (MutatingWebhookConfiguration) by\n" +
	"#   go test ./pkg/webhook -run TestWebhookManifests -update\n# Do not edit.\n"

// webhookManifests are the files generated from MutatingWebhookConfiguration.
var webhookManifests = []struct {
	path, header, caBundle string
	clientConfig           admissionregistrationv1.WebhookClientConfig
}{
	{
		path: "artifacts/deploy/80-webhook.yaml",
		header: generatedNote +
			"# Holds a workload that a Rollout references when its pod template changes, so\n" +
			"# the controller can release it step by step. Only workloads labelled by the\n" +
			"# controller are sent here: everything else never depends on this server.\n" +
			"# The server answers only kube-apiserver's client certificate for the user\n" +
			"# rollout-apiserver:webhook-caller: configure kube-apiserver first\n" +
			"# (docs/install.md, step 4), or updates of those workloads are refused.\n",
		caBundle: "CA_BUNDLE",
		clientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: "rollout-system", Name: "rollout-apiserver", Port: ptr.To[int32](443), Path: ptr.To(Path),
		}},
	},
	{
		path: "artifacts/local/webhook.yaml.tmpl",
		header: generatedNote +
			"# The workload webhook of a local run (hack/local-register.sh), reached on loopback;\n" +
			"# kube-apiserver calls it with the client certificate hack/local-up.sh configured.\n",
		caBundle:     "${ROLLOUT_CA_BUNDLE}",
		clientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:${ROLLOUT_PORT}" + Path)},
	},
}

// TestWebhookManifests keeps the committed manifests identical to what
// MutatingWebhookConfiguration renders; -update rewrites them.
func TestWebhookManifests(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, m := range webhookManifests {
		t.Run(m.path, func(t *testing.T) {
			want, err := Manifest(m.header, m.clientConfig, m.caBundle)
			require.NoError(t, err)
			path := filepath.Join(root, m.path)
			if *update {
				require.NoError(t, os.WriteFile(path, want, 0o644))
			}
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "%s is stale: go test ./pkg/webhook -run TestWebhookManifests -update", m.path)

			var parsed admissionregistrationv1.MutatingWebhookConfiguration
			// The placeholder is not base64; parse with a CA that is.
			require.NoError(t, yaml.Unmarshal([]byte(strings.ReplaceAll(string(got), m.caBundle, "Cg==")), &parsed))
			require.Len(t, parsed.Webhooks, 1)
			assert.Equal(t, WebhookName, parsed.Webhooks[0].Name)
			assert.Equal(t, admissionregistrationv1.Fail, *parsed.Webhooks[0].FailurePolicy)
		})
	}
}
