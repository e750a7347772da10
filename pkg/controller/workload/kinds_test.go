package workload

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestKindAdapters drives every kind's adapter through what the controller's
// clean-up does with it: read from the cache, release the hold on a copy,
// write it back, patch a label.
func TestKindAdapters(t *testing.T) {
	ctx := context.Background()
	d := rollingDeployment()
	held := d.DeepCopy()
	_, err := HoldDeployment(d, held)
	require.NoError(t, err)
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "ns"}}
	kube := kubefake.NewClientset(held, sts, ds)
	factory := informers.NewSharedInformerFactory(kube, 0)
	apps := factory.Apps().V1()
	deps := &Deps{Deployments: apps.Deployments().Lister(), StatefulSets: apps.StatefulSets().Lister(), DaemonSets: apps.DaemonSets().Lister()}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	names := map[string]string{v1beta1.KindDeployment: "web", v1beta1.KindStatefulSet: "db", v1beta1.KindDaemonSet: "agent"}
	require.Len(t, Kinds(), len(names))
	for _, k := range Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			got, err := KindOf(k.Name)
			require.NoError(t, err)
			assert.Same(t, k, got)
			obj, err := k.Get(deps, "ns", names[k.Name])
			require.NoError(t, err)
			assert.Equal(t, names[k.Name], obj.GetName())
			all, err := k.List(deps)
			require.NoError(t, err)
			assert.Len(t, all, 1)

			released, changed := k.Release(obj)
			assert.Equal(t, IsHeld(obj), changed)
			assert.False(t, IsHeld(released))
			require.NoError(t, k.Update(ctx, kube, released))
			require.NoError(t, k.Patch(ctx, kube, "ns", names[k.Name], types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`)))
		})
	}
	got, err := kube.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.False(t, IsHeld(got))
	assert.Equal(t, d.Spec.Strategy, got.Spec.Strategy, "the hold was undone")
	assert.Equal(t, "y", got.Labels["x"])

	_, err = KindOf("CloneSet")
	assert.ErrorContains(t, err, "not supported")
}
