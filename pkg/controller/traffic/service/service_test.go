package service

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

func TestPinAndRestore(t *testing.T) {
	rev := route.Revision{Key: "pod-template-hash", Stable: "old", Canary: "new"}
	tests := []struct {
		name string
		in   *corev1.Service
		want map[string]string
	}{
		{
			name: "selector and annotations",
			in: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"a": "b"}},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}},
			want: map[string]string{"app": "web", "pod-template-hash": "old"},
		},
		{
			name: "no annotations",
			in:   &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}},
			want: map[string]string{"app": "web", "pod-template-hash": "old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pinned, err := PinnedStable(tt.in, rev)
			require.NoError(t, err)
			assert.Equal(t, tt.want, pinned.Spec.Selector)
			again, err := PinnedStable(pinned, rev)
			require.NoError(t, err)
			assert.Equal(t, pinned, again, "pinning is idempotent")
			restored, ok, err := RestoredStable(pinned)
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, tt.in, restored, "restored exactly")
		})
	}
}

func TestCanary(t *testing.T) {
	ctx := context.Background()
	ro := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "uid-1"}}
	stable := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080}},
		},
	}
	kube := fake.NewClientset(stable)
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	require.NoError(t, indexer.Add(stable))
	m := &Manager{Kube: kube, Services: corelisters.NewServiceLister(indexer)}
	rev := route.Revision{Key: "pod-template-hash", Stable: "old", Canary: "new"}

	changed, err := m.EnsureCanary(ctx, ro, "web", rev)
	require.NoError(t, err)
	assert.True(t, changed)
	canary, err := kube.CoreV1().Services("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web", "pod-template-hash": "new"}, canary.Spec.Selector)
	assert.Equal(t, corev1.ServiceTypeClusterIP, canary.Spec.Type)
	assert.Equal(t, int32(0), canary.Spec.Ports[0].NodePort)
	assert.True(t, metav1.IsControlledBy(canary, ro))

	require.NoError(t, indexer.Add(canary))
	changed, err = m.EnsureCanary(ctx, ro, "web", rev)
	require.NoError(t, err)
	assert.False(t, changed)

	other := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop", UID: "uid-2"}}
	_, err = m.EnsureCanary(ctx, other, "web", rev)
	require.ErrorContains(t, err, "is not the canary Service of Rollout other")

	removed, err := m.RemoveCanary(ctx, ro, "web")
	require.NoError(t, err)
	assert.True(t, removed)
	_, err = kube.CoreV1().Services("shop").Get(ctx, "web-canary", metav1.GetOptions{})
	require.Error(t, err)
}
