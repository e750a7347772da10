package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// objectSize is the size of a create body the objects are padded to (JSON bytes).
const objectSize = 2048

// objName / workloadName: every Rollout references its own Deployment (our API allows one
// Rollout per workload, so both sides get unique references).
func objName(i int) string      { return fmt.Sprintf("ro-%05d", i) }
func workloadName(i int) string { return fmt.Sprintf("web-%05d", i) }

// benchNamespace spreads object i over n namespaces.
func benchNamespace(i, n int) string { return fmt.Sprintf("bench-%d", i%n) }

const loremText = "Canary release of the web tier: twenty percent of the pods first, then half for a minute, then all of them, " +
	"with traffic shifted through the NGINX ingress in the same proportions. Owned by the payments team; page the on-call " +
	"engineer before promoting outside business hours. "

// rolloutObject is the ~2 KiB Rollout both APIs get: a workloadRef to a Deployment, three
// canary steps, one traffic routing (Service + NGINX Ingress), labels and annotations. Only
// fields that exist, with the same meaning, in Kruise's v1beta1 schema and in ours.
func rolloutObject(apiVersion, ns string, i int, padding int) map[string]any {
	name, wl := objName(i), workloadName(i)
	return map[string]any{
		"apiVersion": apiVersion,
		"kind":       "Rollout",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels": map[string]any{
				"app.kubernetes.io/name":      wl,
				"app.kubernetes.io/part-of":   "storefront",
				"app.kubernetes.io/component": "frontend",
				"app.kubernetes.io/version":   "1.27.3",
				"team":                        "payments",
				"environment":                 "production",
				"region":                      "eu-west-1",
				"bench":                       "api",
			},
			"annotations": map[string]any{
				"example.com/owner":       "payments-oncall@example.com",
				"example.com/runbook":     "https://runbooks.example.com/storefront/" + wl + "/canary-release",
				"example.com/change-id":   fmt.Sprintf("CHG-%08d", 40000000+i),
				"example.com/description": padText(padding),
			},
		},
		"spec": map[string]any{
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": wl},
			"strategy": map[string]any{
				"canary": map[string]any{
					"steps": []any{
						map[string]any{"replicas": "20%", "traffic": "20%", "pause": map[string]any{}},
						map[string]any{"replicas": "50%", "traffic": "50%", "pause": map[string]any{"duration": 60}},
						map[string]any{"replicas": "100%", "traffic": "100%"},
					},
					"trafficRoutings": []any{
						map[string]any{
							"service":            wl,
							"gracePeriodSeconds": 5,
							"ingress":            map[string]any{"name": wl, "classType": "nginx"},
						},
					},
				},
			},
		},
	}
}

// padText is padding bytes of readable text.
func padText(padding int) string {
	if padding <= 0 {
		return ""
	}
	return strings.Repeat(loremText, padding/len(loremText)+1)[:padding]
}

// objectPadding is the description length that makes object 0 of apiVersion exactly
// objectSize bytes of JSON (all names have fixed width, so every object is that size, give
// or take the digits of the change id).
func objectPadding(apiVersion string) int {
	base, _ := json.Marshal(rolloutObject(apiVersion, "bench-0", 0, 0))
	return max(0, objectSize-len(base))
}

func objectJSON(apiVersion, ns string, i, padding int) []byte {
	b, err := json.Marshal(rolloutObject(apiVersion, ns, i, padding))
	if err != nil {
		panic(err) // a static map of strings and ints
	}
	return b
}
