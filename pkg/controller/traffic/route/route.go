// Package route holds what the router and every traffic provider share: the
// routing a step asks for and the way a provider keeps the original of an
// object it changes, so that it can put it back exactly.
package route

import (
	"context"
	"encoding/json"
	"fmt"

	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// OriginalAnnotation holds, on a routing object the controller changed, the
// JSON of the part it changed as it was before the release. Its presence
// also marks the object as changed by a release; restoring removes it.
const OriginalAnnotation = "rollout.kruise.io/original-spec"

// Revision says which pods belong to each revision: both carry the label
// Key, with the values Stable and Canary (pod-template-hash for a
// Deployment, controller-revision-hash for the other kinds).
type Revision struct {
	Key, Stable, Canary string
}

// Desired is the routing one step asks for.
type Desired struct {
	// StableService selects the stable revision's pods; CanaryService the new
	// revision's.
	StableService, CanaryService string
	// Weight is the percentage of requests sent to the new revision; nil sends
	// none by weight (a step with matches only).
	Weight *int32
	// Matches send every matching request to the new revision.
	Matches []v1beta1.HttpRouteMatch
	// HeaderModifier changes the headers of requests sent to the new revision.
	HeaderModifier *v1beta1.HTTPHeaderFilter
	// Revision tells the two revisions' pods apart, for providers that select
	// pods themselves (Istio DestinationRule subsets).
	Revision Revision
}

// Provider changes one routing object for a release and puts it back.
type Provider interface {
	// Object names the routing object for messages, e.g. "HTTPRoute ns/name".
	Object() string
	// Apply makes the object route as d says and reports whether it wrote.
	Apply(ctx context.Context, d Desired) (changed bool, err error)
	// Restore puts the object back as it was before the release and reports
	// whether it wrote; an object never changed is left alone.
	Restore(ctx context.Context) (changed bool, err error)
}

// StablePinner is a Provider that may tell the revisions apart itself (an
// Istio VirtualService that routes by DestinationRule subset): while it does,
// the stable Service must keep selecting the pods of both revisions, or the
// canary subset of its host has no endpoints.
type StablePinner interface {
	// PinsStable reports whether the provider pins the stable revision itself.
	PinsStable() (bool, error)
}

// Differs reports whether writing want would change have. The objects read
// back from the API server carry what it adds on write (defaults of a CRD's
// schema, pruning) and what is built here does not, so an object that
// differs here is written with a dry run first and compared as stored; same
// compares the parts the provider owns. A failed dry run counts as a
// difference: the real write then reports the error.
func Differs[T any](ctx context.Context, have, want T, same func(a, b T) bool, dryRun func(context.Context, T) (T, error)) bool {
	if same(have, want) {
		return false
	}
	stored, err := dryRun(ctx, want)
	return err != nil || !same(have, stored)
}

// HeaderMatchType is the type of a step's header or query parameter match
// with the API's default (Exact) filled in.
func HeaderMatchType(t *string) string {
	if t == nil || *t == "" {
		return MatchExact
	}
	return *t
}

// PathMatchType is the type of a step's path match with the API's default
// (PathPrefix) filled in.
func PathMatchType(p *v1beta1.HTTPPathMatch) string {
	if p == nil || p.Type == nil || *p.Type == "" {
		return MatchPathPrefix
	}
	return *p.Type
}

// Match types of the API (Gateway API names).
const (
	MatchExact             = "Exact"
	MatchRegularExpression = "RegularExpression"
	MatchPathPrefix        = "PathPrefix"
)

// SaveOriginal records current as the original in annotations unless one is
// recorded already (the first change of a release keeps what was there
// before it), and returns the original to build from. Whole numbers of an
// untyped original (an Istio spec) read back as int64, as an informer decodes
// them, so that an original compares equal to the object it came from.
func SaveOriginal[T any](annotations map[string]string, current T) (map[string]string, T, error) {
	var original T
	if raw, ok := annotations[OriginalAnnotation]; ok {
		if err := utiljson.Unmarshal([]byte(raw), &original); err != nil {
			return nil, original, fmt.Errorf("reading annotation %s: %w", OriginalAnnotation, err)
		}
		return annotations, original, nil
	}
	raw, err := json.Marshal(current)
	if err != nil {
		return nil, original, fmt.Errorf("writing annotation %s: %w", OriginalAnnotation, err)
	}
	out := make(map[string]string, len(annotations)+1)
	for k, v := range annotations {
		out[k] = v
	}
	out[OriginalAnnotation] = string(raw)
	return out, current, nil
}

// TakeOriginal returns the recorded original and the annotations without it;
// ok is false when nothing was recorded.
func TakeOriginal[T any](annotations map[string]string) (rest map[string]string, original T, ok bool, err error) {
	raw, found := annotations[OriginalAnnotation]
	if !found {
		return annotations, original, false, nil
	}
	if err := utiljson.Unmarshal([]byte(raw), &original); err != nil {
		return nil, original, false, fmt.Errorf("reading annotation %s: %w", OriginalAnnotation, err)
	}
	rest = make(map[string]string, len(annotations))
	for k, v := range annotations {
		if k != OriginalAnnotation {
			rest[k] = v
		}
	}
	if len(rest) == 0 {
		rest = nil
	}
	return rest, original, true, nil
}
