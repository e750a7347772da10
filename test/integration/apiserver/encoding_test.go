package apiserver

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/watch"
	genericfeatures "k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/rest"
	featuregatetesting "k8s.io/component-base/featuregate/testing"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	rolloutapiserver "github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

// encodings are the media types the server serves for Rollouts.
var encodings = []string{
	runtime.ContentTypeProtobuf,
	runtime.ContentTypeJSON,
	runtime.ContentTypeCBOR,
}

// clientFor is a REST client of rollout.kruise.io/v1beta1 that sends and
// asks for contentType only, with no fallback to another encoding.
func clientFor(t *testing.T, s *framework.Server, contentType string) *rest.RESTClient {
	t.Helper()
	cfg := rest.CopyConfig(s.Config)
	cfg.GroupVersion = &v1beta1.SchemeGroupVersion
	cfg.APIPath = "/apis"
	cfg.ContentType = contentType
	cfg.AcceptContentTypes = contentType
	codecs := serializer.NewCodecFactory(rolloutapiserver.Scheme, serializer.WithSerializer(cbor.NewSerializerInfo))
	cfg.NegotiatedSerializer = codecs.WithoutConversion()
	c, err := rest.RESTClientFor(cfg)
	require.NoError(t, err)
	return c
}

// comparable drops what an encoding does not carry (the kind of list
// items) so that objects read in different encodings compare equal.
func comparable(r v1beta1.Rollout) v1beta1.Rollout {
	r.TypeMeta = metav1.TypeMeta{}
	return r
}

// Rollouts created, read, listed and watched in protobuf, JSON and CBOR are
// the same objects whichever encoding wrote them and whichever reads them.
func TestEncodingsServeTheSameObjects(t *testing.T) {
	// CBOR is an alpha feature of the generic server and of client-go;
	// protobuf and JSON are always served.
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, genericfeatures.CBORServingAndStorage, true)
	clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.ClientsAllowCBOR, true)
	s := framework.StartServer(t, "")
	ctx, ns := testContext(t), newNamespace(t)

	start, err := s.Client.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)

	// Create: one Rollout through each encoding.
	names := map[string]string{}
	for i, ct := range encodings {
		r := newRollout("enc-"+string(rune('a'+i)), "web-"+string(rune('a'+i)))
		r.Annotations = map[string]string{"example.com/written-as": ct}
		created := &v1beta1.Rollout{}
		require.NoError(t, clientFor(t, s, ct).Post().Namespace(ns).Resource("rollouts").Body(r).Do(ctx).Into(created), "create in %s", ct)
		assert.Equal(t, ct, created.Annotations["example.com/written-as"])
		names[ct] = created.Name
	}

	// Get: every Rollout in every encoding, compared with the JSON read.
	for _, name := range names {
		want := &v1beta1.Rollout{}
		require.NoError(t, clientFor(t, s, runtime.ContentTypeJSON).Get().Namespace(ns).Resource("rollouts").Name(name).Do(ctx).Into(want))
		for _, ct := range encodings {
			got := &v1beta1.Rollout{}
			require.NoError(t, clientFor(t, s, ct).Get().Namespace(ns).Resource("rollouts").Name(name).Do(ctx).Into(got), "get in %s", ct)
			require.True(t, apiequality.Semantic.DeepEqual(comparable(*want), comparable(*got)), "%s read in %s differs: %s", name, ct, cmp.Diff(comparable(*want), comparable(*got)))
		}
	}

	// List: the same items in every encoding, unpaginated and paginated.
	var wantItems []v1beta1.Rollout
	for _, ct := range encodings {
		for _, limit := range []int64{0, 1} {
			var items []v1beta1.Rollout
			cont := ""
			for {
				list := &v1beta1.RolloutList{}
				req := clientFor(t, s, ct).Get().Namespace(ns).Resource("rollouts").Param("continue", cont)
				if limit > 0 {
					req = req.Param("limit", "1")
				}
				require.NoError(t, req.Do(ctx).Into(list), "list in %s", ct)
				for _, item := range list.Items {
					items = append(items, comparable(item))
				}
				if cont = list.Continue; cont == "" {
					break
				}
			}
			require.Len(t, items, len(encodings), "list in %s, limit %d", ct, limit)
			if wantItems == nil {
				wantItems = items
			}
			require.True(t, apiequality.Semantic.DeepEqual(wantItems, items), "list in %s, limit %d differs: %s", ct, limit, cmp.Diff(wantItems, items))
		}
	}

	// Watch: from before the creates, each encoding sees the three ADDED
	// events with the listed objects.
	for _, ct := range encodings {
		w, err := clientFor(t, s, ct).Get().Namespace(ns).Resource("rollouts").
			Param("watch", "true").Param("resourceVersion", start.ResourceVersion).Watch(ctx)
		require.NoError(t, err, "watch in %s", ct)
		var seen []v1beta1.Rollout
		timeout := time.After(20 * time.Second)
		for len(seen) < len(encodings) {
			select {
			case ev, ok := <-w.ResultChan():
				require.True(t, ok, "watch in %s closed early", ct)
				require.Equal(t, watch.Added, ev.Type, "watch in %s: %v", ct, ev.Object)
				r, isRollout := ev.Object.(*v1beta1.Rollout)
				require.True(t, isRollout, "watch in %s sent %T", ct, ev.Object)
				seen = append(seen, comparable(*r))
			case <-timeout:
				t.Fatalf("watch in %s: %d of %d events", ct, len(seen), len(encodings))
			}
		}
		w.Stop()
		require.ElementsMatch(t, wantItems, seen, "watch in %s", ct)
	}
}

// Rollouts that a server before protobuf storage wrote to etcd as JSON are
// still served, and are stored as protobuf at their next write.
func TestJSONStoredRolloutsStillRead(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	etcd := etcdClient(t, server)
	key := app.EtcdPathPrefix + "/rollout.kruise.io/rollouts/" + ns + "/legacy"

	legacy := newRollout("legacy", "web")
	legacy.TypeMeta = metav1.TypeMeta{APIVersion: v1beta1.SchemeGroupVersion.String(), Kind: "Rollout"}
	legacy.Namespace = ns
	legacy.UID = "0b7e6a5c-1d2e-4f30-8a9b-0c1d2e3f4a5b"
	legacy.CreationTimestamp = metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	legacy.Generation = 1
	var stored bytes.Buffer
	require.NoError(t, jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, rolloutapiserver.Scheme, rolloutapiserver.Scheme, jsonserializer.SerializerOptions{}).Encode(legacy, &stored))
	_, err := etcd.Put(ctx, key, stored.String())
	require.NoError(t, err)

	var got *v1beta1.Rollout
	require.Eventually(t, func() bool {
		got, err = rollouts(ns).Get(ctx, "legacy", metav1.GetOptions{})
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "the JSON object is served: %v", err)
	assert.Equal(t, legacy.Spec, got.Spec)
	assert.Equal(t, legacy.UID, got.UID)

	got.Labels["migrated"] = "true"
	_, err = rollouts(ns).Update(ctx, got, metav1.UpdateOptions{})
	require.NoError(t, err)
	resp, err := etcd.Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.True(t, bytes.HasPrefix(resp.Kvs[0].Value, []byte("k8s\x00")), "rewritten as protobuf, got %q", resp.Kvs[0].Value[:min(16, len(resp.Kvs[0].Value))])
	again, err := rollouts(ns).Get(ctx, "legacy", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "true", again.Labels["migrated"])
	assert.Equal(t, legacy.Spec, again.Spec)
}

// recordContentTypes is a transport that records the Content-Type of each
// response.
type recordContentTypes struct {
	next  http.RoundTripper
	mu    sync.Mutex
	types []string
}

// RoundTrip records the response's Content-Type.
func (r *recordContentTypes) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.types = append(r.types, resp.Header.Get("Content-Type"))
		r.mu.Unlock()
	}
	return resp, err
}

// The generated clientset, as the controller builds it (no content type
// in its rest.Config), gets, lists and runs actions in protobuf.
func TestClientsetUsesProtobuf(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("pb", "web"))
	rec := &recordContentTypes{}
	cfg := rest.CopyConfig(server.Config)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper { rec.next = next; return rec })
	client, err := versioned.NewForConfig(cfg)
	require.NoError(t, err)
	got, err := client.RolloutV1beta1().Rollouts(ns).Get(ctx, "pb", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "pb", got.Name)
	list, err := client.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, list.Items, 1)
	_, err = client.RolloutV1beta1().Rollouts(ns).Pause(ctx, "pb", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	require.NoError(t, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.types, 3)
	for _, ct := range rec.types {
		assert.Equal(t, runtime.ContentTypeProtobuf, ct)
	}
}
