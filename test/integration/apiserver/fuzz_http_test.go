package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// FuzzHTTPHandler sends random bodies, valid-shaped Rollouts with random
// values among them, through the whole HTTP handler chain of the running
// server (authentication, decoding, admission, validation, storage) to every
// writing endpoint: whatever arrives, the answer is never a 5xx and nothing
// panics (a panic would be a 500 from the generic server's recovery).
func FuzzHTTPHandler(f *testing.F) {
	valid, err := json.Marshal(newRollout("fuzz", "web"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), valid)
	f.Add(uint8(1), valid)
	f.Add(uint8(2), []byte(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote","full":true}`))
	f.Add(uint8(3), []byte(`[{"op":"replace","path":"/spec/strategy/canary/steps","value":null}]`))
	f.Add(uint8(4), []byte(`{"spec":{"strategy":{"canary":{"steps":[{"replicas":"1e9%"}]}}}}`))
	f.Add(uint8(0), []byte(`{"apiVersion":"rollout.kruise.io/v1beta1","kind":"Rollout","metadata":{"name":"x"},"spec":{"strategy":{"canary":{"steps":[{"matches":[{"headers":[{"type":"RegularExpression","name":"a","value":"(("}]}]}]}}}}`))
	f.Add(uint8(5), []byte("\x00\xff{"))
	f.Add(uint8(0), []byte(`{"apiVersion":"rollout.kruise.io/v1alpha1","kind":"Rollout","metadata":{"name":"y"},"spec":{"objectRef":{"workloadRef":{"kind":"Deployment"}}}}`))

	ns := "fuzz-http"
	ctx := context.Background()
	setup := newRollout("target", "web")
	if _, err := rollouts(ns).Create(ctx, setup, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		f.Fatalf("creating the target rollout: %v", err)
	}
	transport, err := rest.TransportFor(server.Config)
	if err != nil {
		f.Fatal(err)
	}
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	base := server.Config.Host + "/apis/rollout.kruise.io/v1beta1/namespaces/" + ns + "/rollouts"
	type endpoint struct{ method, path, contentType string }
	endpoints := []endpoint{
		{http.MethodPost, base, "application/json"},
		{http.MethodPut, base + "/target", "application/json"},
		{http.MethodPost, base + "/target/promote", "application/json"},
		{http.MethodPatch, base + "/target", "application/json-patch+json"},
		{http.MethodPatch, base + "/target", "application/merge-patch+json"},
		{http.MethodPut, base + "/target/status", "application/json"},
		{http.MethodPost, base + "/target/abort?dryRun=All", "application/json"},
		{http.MethodPatch, base + "/target?fieldManager=fuzz", "application/apply-patch+yaml"},
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := endpoints[int(which)%len(endpoints)]
		req, err := http.NewRequest(e.method, e.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", e.contentType)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", e.method, e.path, err)
		}
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", e.method, e.path, truncate(body), resp.StatusCode, out)
		}
	})
}

func truncate(b []byte) string {
	if len(b) > 512 {
		return fmt.Sprintf("%s... (%d bytes)", b[:512], len(b))
	}
	return string(b)
}
