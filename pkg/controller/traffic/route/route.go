// Package route holds what the router and every traffic provider share: the
// routing a step asks for and the way a provider keeps the original of an
// object it changes, so that it can put it back exactly.
package route

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// OriginalAnnotation holds, on a routing object the controller changed, the
// JSON of the part it changed as it was before the release. Its presence
// also marks the object as changed by a release; restoring removes it.
const OriginalAnnotation = "rollout.kruise.io/original-spec"

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

// SaveOriginal records v as the original in annotations unless one is
// recorded already (the first change of a release keeps what was there
// before it), and returns the original to build from.
func SaveOriginal[T any](annotations map[string]string, current T) (map[string]string, T, error) {
	var original T
	if raw, ok := annotations[OriginalAnnotation]; ok {
		if err := json.Unmarshal([]byte(raw), &original); err != nil {
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
	if err := json.Unmarshal([]byte(raw), &original); err != nil {
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
