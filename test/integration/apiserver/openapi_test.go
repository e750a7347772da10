package apiserver

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getJSON fetches a server-relative URL (path and query) and decodes its JSON.
func getJSON(ctx context.Context, t *testing.T, path string, into interface{}) {
	t.Helper()
	u, err := url.Parse(path)
	require.NoError(t, err)
	req := server.Client.RolloutV1beta1().RESTClient().Get().AbsPath(u.Path).
		SetHeader("Accept", "application/json")
	for k, vs := range u.Query() {
		req = req.Param(k, vs[0])
	}
	raw, err := req.DoRaw(ctx)
	require.NoError(t, err, "GET %s: %s", path, raw)
	require.NoError(t, json.Unmarshal(raw, into), "GET %s", path)
}

// schema is a JSON schema as OpenAPI v3 serves it.
type schema map[string]interface{}

// openAPIDoc is one group-version document of /openapi/v3.
type openAPIDoc struct {
	Paths      map[string]map[string]interface{} `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

// resolve follows a $ref, directly or through the allOf wrapper that
// kube-openapi puts around references that carry a description.
func (d *openAPIDoc) resolve(t *testing.T, s schema) schema {
	t.Helper()
	ref, _ := s["$ref"].(string)
	if ref == "" {
		if all, ok := s["allOf"].([]interface{}); ok && len(all) == 1 {
			ref, _ = all[0].(map[string]interface{})["$ref"].(string)
		}
	}
	if ref == "" {
		return s
	}
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	target, ok := d.Components.Schemas[name]
	require.True(t, ok, "dangling reference %s", ref)
	return target
}

// property walks down the properties of s, resolving references on the way.
func (d *openAPIDoc) property(t *testing.T, s schema, path ...string) schema {
	t.Helper()
	for _, p := range path {
		props, ok := d.resolve(t, s)["properties"].(map[string]interface{})
		require.True(t, ok, "no properties on the way to %s", p)
		next, ok := props[p].(map[string]interface{})
		require.True(t, ok, "no property %s", p)
		s = next
	}
	return d.resolve(t, s)
}

// byKind finds the schema with x-kubernetes-group-version-kind of kind in group/version.
func (d *openAPIDoc) byKind(t *testing.T, version, kind string) (string, schema) {
	t.Helper()
	for name, s := range d.Components.Schemas {
		gvks, _ := s["x-kubernetes-group-version-kind"].([]interface{})
		for _, g := range gvks {
			gvk := g.(map[string]interface{})
			if gvk["group"] == "rollout.kruise.io" && gvk["version"] == version && gvk["kind"] == kind {
				return name, s
			}
		}
	}
	t.Fatalf("no schema of rollout.kruise.io/%s %s", version, kind)
	return "", nil
}

// Clients (kubectl explain, kubectl apply's schema checks, generators) find
// the Rollout schema in OpenAPI v3 for both versions, with the fields of
// each version's shape and the action request kinds; OpenAPI v2 is served too.
func TestOpenAPI(t *testing.T) {
	ctx := testContext(t)

	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	getJSON(ctx, t, "/openapi/v3", &index)
	require.Contains(t, index.Paths, "apis/rollout.kruise.io/v1beta1")
	require.Contains(t, index.Paths, "apis/rollout.kruise.io/v1alpha1")

	t.Run("v1beta1", func(t *testing.T) {
		var doc openAPIDoc
		getJSON(ctx, t, index.Paths["apis/rollout.kruise.io/v1beta1"].ServerRelativeURL, &doc)

		_, r := doc.byKind(t, "v1beta1", "Rollout")
		steps := doc.property(t, r, "spec", "strategy", "canary", "steps")
		assert.Equal(t, "array", steps["type"])
		assert.Equal(t, "atomic", steps["x-kubernetes-list-type"])
		step := doc.resolve(t, schema(steps["items"].(map[string]interface{})))
		for _, field := range []string{"replicas", "traffic", "pause", "matches", "requestHeaderModifier", "analysis"} {
			assert.Contains(t, step["properties"], field, "steps[] has %s", field)
		}
		workloadRef := doc.property(t, r, "spec", "workloadRef")
		assert.Contains(t, workloadRef["properties"], "name")
		assert.Contains(t, doc.property(t, r, "spec")["properties"], "progressDeadlineSeconds")
		assert.Contains(t, doc.property(t, r, "status")["properties"], "pendingAction")

		promoteName, promote := doc.byKind(t, "v1beta1", "RolloutPromote")
		assert.Contains(t, promote["properties"], "full")
		for _, kind := range []string{"RolloutPause", "RolloutResume", "RolloutAbort", "RolloutRetry", "RolloutList"} {
			doc.byKind(t, "v1beta1", kind)
		}

		// POST .../promote takes a RolloutPromote.
		path := "/apis/rollout.kruise.io/v1beta1/namespaces/{namespace}/rollouts/{name}/promote"
		require.Contains(t, doc.Paths, path)
		post, ok := doc.Paths[path]["post"].(map[string]interface{})
		require.True(t, ok, "promote is a POST")
		body, err := json.Marshal(post["requestBody"])
		require.NoError(t, err)
		assert.Contains(t, string(body), "#/components/schemas/"+promoteName)
		for _, sub := range []string{"status", "pause", "resume", "abort", "retry"} {
			assert.Contains(t, doc.Paths, "/apis/rollout.kruise.io/v1beta1/namespaces/{namespace}/rollouts/{name}/"+sub)
		}

		t.Run("action responses are documented as Rollout", func(t *testing.T) {
			responses, err := json.Marshal(post["responses"])
			require.NoError(t, err)
			rolloutName, _ := doc.byKind(t, "v1beta1", "Rollout")
			assert.Contains(t, string(responses), "#/components/schemas/"+rolloutName+`"`)
		})
	})

	t.Run("v1alpha1", func(t *testing.T) {
		var doc openAPIDoc
		getJSON(ctx, t, index.Paths["apis/rollout.kruise.io/v1alpha1"].ServerRelativeURL, &doc)
		_, r := doc.byKind(t, "v1alpha1", "Rollout")
		ref := doc.property(t, r, "spec", "objectRef", "workloadRef")
		assert.Contains(t, ref["properties"], "name", "v1alpha1 has spec.objectRef.workloadRef")
		steps := doc.property(t, r, "spec", "strategy", "canary", "steps")
		step := doc.resolve(t, schema(steps["items"].(map[string]interface{})))
		assert.Contains(t, step["properties"], "weight", "v1alpha1 steps have weight")
		assert.NotContains(t, step["properties"], "traffic")
		assert.Contains(t, doc.property(t, r, "spec")["properties"], "progressDeadlineSeconds", "extensions exist in v1alpha1 too")
		doc.byKind(t, "v1alpha1", "RolloutPromote")
	})

	t.Run("v2", func(t *testing.T) {
		var v2 struct {
			Swagger     string                            `json:"swagger"`
			Paths       map[string]interface{}            `json:"paths"`
			Definitions map[string]map[string]interface{} `json:"definitions"`
		}
		getJSON(ctx, t, "/openapi/v2", &v2)
		assert.Equal(t, "2.0", v2.Swagger)
		assert.Contains(t, v2.Paths, "/apis/rollout.kruise.io/v1beta1/namespaces/{namespace}/rollouts")
		var kinds []string
		for _, d := range v2.Definitions {
			gvks, _ := d["x-kubernetes-group-version-kind"].([]interface{})
			for _, g := range gvks {
				gvk := g.(map[string]interface{})
				if gvk["group"] == "rollout.kruise.io" {
					kinds = append(kinds, gvk["version"].(string)+"/"+gvk["kind"].(string))
				}
			}
		}
		assert.Subset(t, kinds, []string{"v1beta1/Rollout", "v1alpha1/Rollout", "v1beta1/RolloutPromote"})
	})
}
