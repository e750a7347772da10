package workload

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Referenced reads the workload a Rollout references through a lister's Get,
// telling a missing workload (ErrNotFound) apart from a failed read.
func Referenced[T any](ro *v1beta1.Rollout, get func(name string) (T, error)) (T, error) {
	ref := ro.Spec.WorkloadRef
	obj, err := get(ref.Name)
	if apierrors.IsNotFound(err) {
		return obj, fmt.Errorf("%s %s/%s: %w", ref.Kind, ro.Namespace, ref.Name, ErrNotFound)
	}
	if err != nil {
		return obj, fmt.Errorf("reading %s %s/%s from cache: %w", ref.Kind, ro.Namespace, ref.Name, err)
	}
	return obj, nil
}
