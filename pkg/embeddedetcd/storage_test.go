package embeddedetcd

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/apis/example"
	exampleinstall "k8s.io/apiserver/pkg/apis/example/install"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"

	rolloutregistry "github.com/rollout-apiserver/rollout-apiserver/pkg/registry/rollout"
)

// fixedGetter hands out one storage configuration, as the generic server's
// getter does per resource.
type fixedGetter struct {
	config *storagebackend.ConfigForResource
}

func (g fixedGetter) GetRESTOptions(schema.GroupResource, runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{StorageConfig: g.config, ResourcePrefix: "pods"}, nil
}

// TestInProcessStorage: the stores built on the in-process client write,
// read and list through etcd, with and without the watch cache on top.
func TestInProcessStorage(t *testing.T) {
	s, config := startWithPods(t)
	gr := config.GroupResource

	for _, tc := range []struct {
		name      string
		withCache bool
	}{{"raw", false}, {"with the watch cache", true}} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := s.RESTOptionsGetter(fixedGetter{config}, tc.withCache).GetRESTOptions(gr, &example.Pod{})
			require.NoError(t, err)
			st, destroy, err := opts.Decorator(opts.StorageConfig, "/pods",
				func(obj runtime.Object) (string, error) { return storage.NamespaceKeyFunc("/pods/", obj) },
				func() runtime.Object { return &example.Pod{} }, func() runtime.Object { return &example.PodList{} },
				func(runtime.Object) (labels.Set, fields.Set, error) { return nil, nil, nil }, nil, nil)
			require.NoError(t, err)
			t.Cleanup(destroy)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			key := "/pods/ns/" + map[bool]string{false: "raw", true: "cached"}[tc.withCache]
			in := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: filepath.Base(key), Namespace: "ns"}, Spec: example.PodSpec{NodeName: "n1"}}
			out := &example.Pod{}
			require.NoError(t, st.Create(ctx, key, in, out, 0))
			assert.NotEmpty(t, out.ResourceVersion)

			got := &example.Pod{}
			require.NoError(t, st.Get(ctx, key, storage.GetOptions{}, got))
			assert.Equal(t, "n1", got.Spec.NodeName)

			var last string
			t.Cleanup(func() {
				if t.Failed() {
					t.Log("last list: " + last)
				}
			})
			require.Eventually(t, func() bool {
				list := &example.PodList{}
				err := st.GetList(ctx, "/pods/ns/", storage.ListOptions{ResourceVersion: "0", Predicate: storage.Everything, Recursive: true}, list)
				last = fmt.Sprintf("%d items, error %v", len(list.Items), err)
				for _, p := range list.Items {
					if p.Name == in.Name {
						return err == nil
					}
				}
				return false
			}, 20*time.Second, 100*time.Millisecond, "listing what was written")
		})
	}
}

// TestRawStorageForTheClaims: the getter also makes stores with no watch
// cache on the in-process client (rolloutregistry.RawStorageFactory), even
// when its stores have the cache, for what must read etcd itself: the
// workload claims.
func TestRawStorageForTheClaims(t *testing.T) {
	s, config := startWithPods(t)

	factory, ok := s.RESTOptionsGetter(fixedGetter{config}, true).(rolloutregistry.RawStorageFactory)
	require.True(t, ok, "the embedded etcd's getter makes raw stores")
	st, destroy, err := factory.NewRawStorage(config, func() runtime.Object { return &example.Pod{} }, func() runtime.Object { return &example.PodList{} }, "/claims")
	require.NoError(t, err)
	t.Cleanup(destroy)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Spec: example.PodSpec{NodeName: "n1"}}
	require.NoError(t, st.Create(ctx, "/claims/ns/c", in, &example.Pod{}, 0))
	got := &example.Pod{}
	require.NoError(t, st.Get(ctx, "/claims/ns/c", storage.GetOptions{}, got), "read from etcd at once: no cache in between")
	assert.Equal(t, "n1", got.Spec.NodeName)
	err = st.Create(ctx, "/claims/ns/c", in, &example.Pod{}, 0)
	assert.True(t, storage.IsExist(err), "create-if-absent, as the claims need: %v", err)
}

// startWithPods starts an embedded etcd for the test and returns it with a
// storage configuration for the example API's pods.
func startWithPods(t *testing.T) (*Server, *storagebackend.ConfigForResource) {
	t.Helper()
	s, err := Start(context.Background(), Config{DataDir: filepath.Join(t.TempDir(), "etcd")})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	scheme := runtime.NewScheme()
	exampleinstall.Install(scheme)
	codec := serializer.NewCodecFactory(scheme).LegacyCodec(examplev1.SchemeGroupVersion)
	return s, &storagebackend.ConfigForResource{Config: storagebackend.Config{Codec: codec, Prefix: "/test",
		CompactionInterval: time.Minute, EventsHistoryWindow: 75 * time.Second},
		GroupResource: schema.GroupResource{Group: example.GroupName, Resource: "pods"}}
}
