package webhook

import (
	"encoding/json"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// Manifest renders MutatingWebhookConfiguration as YAML for a file: the one
// definition of the webhook's configuration, from which the deploy manifest
// (artifacts/deploy/80-webhook.yaml) and the local template
// (artifacts/local/webhook.yaml.tmpl) are generated (see manifest_test.go),
// and which the server's tests use directly. caBundle is written verbatim, a
// placeholder that the installer replaces, so it is set after encoding.
func Manifest(header string, clientConfig admissionregistrationv1.WebhookClientConfig, caBundle string) ([]byte, error) {
	cfg := MutatingWebhookConfiguration("", clientConfig)
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the webhook configuration: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decoding the webhook configuration: %w", err)
	}
	delete(doc["metadata"].(map[string]any), "creationTimestamp")
	for _, wh := range doc["webhooks"].([]any) {
		wh.(map[string]any)["clientConfig"].(map[string]any)["caBundle"] = caBundle
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("writing the webhook configuration as YAML: %w", err)
	}
	return append([]byte(header), out...), nil
}
