package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"
)

const crdName = "rollouts.rollouts.kruise.io"

// installCRD creates Kruise's Rollout CRD and waits until it is Established and serving.
func (b *bench) installCRD(ctx context.Context) error {
	path := b.o.crdPath
	if path == "" {
		path = filepath.Join(b.c.RootDir, "..", "shared", "crds", "rollouts.kruise.io_rollouts.yaml")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the Kruise CRD: %w", err)
	}
	body, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	crds := b.kas.base + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
	if _, err := b.kas.do(ctx, http.MethodPost, crds, body, jsonType); err != nil {
		return fmt.Errorf("creating CRD %s: %w", crdName, err)
	}
	start := time.Now()
	err = retry(ctx, 60*time.Second, func() error {
		resp, err := b.kas.do(ctx, http.MethodGet, crds+"/"+crdName, nil, "")
		if err != nil {
			return err
		}
		var crd struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		if err := json.Unmarshal(resp.body, &crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				return nil
			}
		}
		return fmt.Errorf("CRD %s not Established yet", crdName)
	})
	if err != nil {
		return err
	}
	// Established can precede the handler serving the new resource by a moment.
	err = retry(ctx, 60*time.Second, func() error {
		_, err := b.crd.do(ctx, http.MethodGet, b.crd.coll("")+"?limit=1", nil, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("CRD %s Established but not serving: %w", crdName, err)
	}
	logf("CRD %s Established and serving in %s", crdName, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (b *bench) createNamespace(ctx context.Context, ns string) error {
	body := fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, ns)
	if _, err := b.kas.do(ctx, http.MethodPost, b.kas.base+"/api/v1/namespaces", body, jsonType); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

// warm creates, reads, lists and deletes o.warmup objects through each API (and reads ours
// directly), so connections, caches, decoders and the Go heaps are warm for both, and our
// server's namespace informer knows the bench namespaces.
func (b *bench) warm(ctx context.Context) error {
	o := b.o
	const ns = "bench-warmup"
	idx := seq(0, o.warmup)
	for _, t := range []*target{b.ours, b.crd} {
		// The first create retries: our server's NamespaceLifecycle admission may not
		// have seen the new namespace yet.
		pad := objectPadding(t.apiVersion())
		err := retry(ctx, 60*time.Second, func() error {
			_, err := t.do(ctx, http.MethodPost, t.coll(ns), objectJSON(t.apiVersion(), ns, 0, pad), jsonType)
			return err
		})
		if err != nil {
			return fmt.Errorf("warm-up create through %s: %w", t.label, err)
		}
		// And one create per bench namespace, deleted at once, for the same reason.
		for i := range o.namespaces {
			bns := benchNamespace(i, o.namespaces)
			err := retry(ctx, 60*time.Second, func() error {
				if _, err := t.do(ctx, http.MethodPost, t.coll(bns), objectJSON(t.apiVersion(), bns, 99999, pad), jsonType); err != nil {
					return err
				}
				_, err := t.do(ctx, http.MethodDelete, t.item(bns, objName(99999)), nil, "")
				return err
			})
			if err != nil {
				return fmt.Errorf("warm-up create in %s through %s: %w", bns, t.label, err)
			}
		}
		r := &result{}
		createObjects(ctx, t, r, idx[1:], 1, o.createWorkers, ns)
		if err := tooManyErrors(r, "warm-up create "+t.label); err != nil {
			return err
		}
	}
	for _, t := range []*target{b.ours, b.crd, b.direct} {
		r := &result{}
		parallel(ctx, len(idx), o.getWorkers, func(k int) {
			if _, err := t.do(ctx, http.MethodGet, t.item(ns, objName(idx[k])), nil, ""); err != nil {
				r.fail(err)
			}
		})
		for range 3 {
			if _, err := t.do(ctx, http.MethodGet, t.coll(ns), nil, ""); err != nil {
				r.fail(err)
			}
			if _, err := t.do(ctx, http.MethodGet, t.coll("")+"?limit=100", nil, ""); err != nil {
				r.fail(err)
			}
		}
		if r.errs > 0 {
			return fmt.Errorf("warm-up reads through %s: %s", t.label, r.firstErrs[0])
		}
	}
	for _, t := range []*target{b.ours, b.crd} {
		r := &result{}
		parallel(ctx, len(idx), o.createWorkers, func(k int) {
			if _, err := t.do(ctx, http.MethodDelete, t.item(ns, objName(idx[k])), nil, ""); err != nil {
				r.fail(err)
			}
		})
		if r.errs > 0 {
			return fmt.Errorf("warm-up delete through %s: %s", t.label, r.firstErrs[0])
		}
	}
	return ctx.Err()
}

// objectSizes: the create body and the stored object as a GET returns it, per API.
type objectSizes struct {
	body, oursGet, crdGet int
}

func (b *bench) objectSizes(ctx context.Context) objectSizes {
	s := objectSizes{body: len(objectJSON(b.ours.apiVersion(), "bench-0", 0, objectPadding(b.ours.apiVersion())))}
	if r, err := b.ours.do(ctx, http.MethodGet, b.ours.item("bench-0", objName(0)), nil, ""); err == nil {
		s.oursGet = len(r.body)
	}
	if r, err := b.crd.do(ctx, http.MethodGet, b.crd.item("bench-0", objName(0)), nil, ""); err == nil {
		s.crdGet = len(r.body)
	}
	return s
}

// jsonField is a top-level string field of a JSON object, or "".
func jsonField(body []byte, key string) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}
