package workload

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Kind adapts one apps/v1 workload kind for the code that handles every kind
// alike (the controller's wiring and clean-up, expectations, the control
// label), so no switch on the kind is needed outside this file and the
// per-kind packages. Releasing a kind step by step is its Releaser's job.
type Kind struct {
	// Name is the kind, as in a Rollout's workloadRef.
	Name string
	// Get reads a workload of this kind from the caches.
	Get func(d *Deps, namespace, name string) (metav1.Object, error)
	// List reads every workload of this kind from the caches.
	List func(d *Deps) ([]metav1.Object, error)
	// Release undoes the hold on a copy of obj and returns it, with whether
	// anything changed.
	Release func(obj metav1.Object) (metav1.Object, bool)
	// Update writes obj (of this kind) to the cluster.
	Update func(ctx context.Context, kube kubernetes.Interface, obj metav1.Object) error
	// Patch patches the named workload of this kind.
	Patch func(ctx context.Context, kube kubernetes.Interface, namespace, name string, pt types.PatchType, data []byte) error
}

// kinds are the workload kinds a Rollout can reference.
var kinds = map[string]*Kind{
	v1beta1.KindDeployment: adapter(v1beta1.KindDeployment,
		func(d *Deps, ns string) getter[*appsv1.Deployment] { return d.Deployments.Deployments(ns) },
		func(d *Deps) ([]*appsv1.Deployment, error) { return d.Deployments.List(labels.Everything()) },
		(*appsv1.Deployment).DeepCopy, ReleaseDeployment,
		func(kube kubernetes.Interface, ns string) writer[*appsv1.Deployment] {
			return kube.AppsV1().Deployments(ns)
		}),
	v1beta1.KindStatefulSet: adapter(v1beta1.KindStatefulSet,
		func(d *Deps, ns string) getter[*appsv1.StatefulSet] { return d.StatefulSets.StatefulSets(ns) },
		func(d *Deps) ([]*appsv1.StatefulSet, error) { return d.StatefulSets.List(labels.Everything()) },
		(*appsv1.StatefulSet).DeepCopy, ReleaseStatefulSet,
		func(kube kubernetes.Interface, ns string) writer[*appsv1.StatefulSet] {
			return kube.AppsV1().StatefulSets(ns)
		}),
	v1beta1.KindDaemonSet: adapter(v1beta1.KindDaemonSet,
		func(d *Deps, ns string) getter[*appsv1.DaemonSet] { return d.DaemonSets.DaemonSets(ns) },
		func(d *Deps) ([]*appsv1.DaemonSet, error) { return d.DaemonSets.List(labels.Everything()) },
		(*appsv1.DaemonSet).DeepCopy, ReleaseDaemonSet,
		func(kube kubernetes.Interface, ns string) writer[*appsv1.DaemonSet] {
			return kube.AppsV1().DaemonSets(ns)
		}),
}

// getter is a namespaced lister of one kind.
type getter[T any] interface {
	Get(name string) (T, error)
}

// writer is a namespaced typed client of one kind.
type writer[T any] interface {
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// adapter builds a Kind from one kind's typed lister, client and hold release.
func adapter[T metav1.Object](name string,
	lister func(d *Deps, namespace string) getter[T],
	list func(d *Deps) ([]T, error),
	deepCopy func(T) T,
	release func(T) bool,
	client func(kube kubernetes.Interface, namespace string) writer[T],
) *Kind {
	return &Kind{
		Name: name,
		Get: func(d *Deps, namespace, name string) (metav1.Object, error) {
			return lister(d, namespace).Get(name)
		},
		List: func(d *Deps) ([]metav1.Object, error) {
			items, err := list(d)
			if err != nil {
				return nil, err
			}
			out := make([]metav1.Object, len(items))
			for i, item := range items {
				out[i] = item
			}
			return out, nil
		},
		Release: func(obj metav1.Object) (metav1.Object, bool) {
			c := deepCopy(obj.(T))
			return c, release(c)
		},
		Update: func(ctx context.Context, kube kubernetes.Interface, obj metav1.Object) error {
			_, err := client(kube, obj.GetNamespace()).Update(ctx, obj.(T), metav1.UpdateOptions{})
			return err
		},
		Patch: func(ctx context.Context, kube kubernetes.Interface, namespace, name string, pt types.PatchType, data []byte) error {
			_, err := client(kube, namespace).Patch(ctx, name, pt, data, metav1.PatchOptions{})
			return err
		},
	}
}

// KindOf returns the adapter of a workload kind, or an error naming the
// supported kinds.
func KindOf(name string) (*Kind, error) {
	if k, ok := kinds[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("workload kind %q is not supported: only Deployment, StatefulSet and DaemonSet are", name)
}

// Kinds returns the adapters of every supported workload kind.
func Kinds() []*Kind {
	return []*Kind{kinds[v1beta1.KindDeployment], kinds[v1beta1.KindStatefulSet], kinds[v1beta1.KindDaemonSet]}
}
