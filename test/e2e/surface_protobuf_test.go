package e2e

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// protobufWithJSON is what a client that prefers protobuf sends as Accept.
const protobufWithJSON = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON

// TestSurfaceProtobuf: through the aggregator, rollout.kruise.io serves
// protobuf as its discovery says it does — to raw protobuf GETs and LISTs, to
// the generated clientset, and to the metadata requests of the namespace
// controller — while both APIServices stay Available and kubectl (JSON) works
// as before. (Namespace deletion itself, by kube-controller-manager with
// --kube-api-content-type=protobuf: TestSurfaceNamespaceDeletionAndOutage.)
func TestSurfaceProtobuf(t *testing.T) {
	e := newSurfaceEnv(t)
	ns := e.namespace()
	e.kubectl.mustApply(canaryRolloutYAML(ns, "web", "web") + "---\n" + canaryRolloutYAML(ns, "api", "api"))

	t.Run("both APIServices are Available", func(t *testing.T) {
		for _, name := range []string{"v1beta1.rollout.kruise.io", "v1alpha1.rollout.kruise.io"} {
			ok, msg, err := e.c.APIServiceAvailable(context.Background(), name)
			require.NoError(t, err)
			assert.True(t, ok, "%s: %s", name, msg)
		}
	})

	t.Run("kubectl still reads and writes them", func(t *testing.T) {
		// kubectl (v1.37) has no --kube-api-content-type; it reads JSON and tables. The
		// flag is kube-controller-manager's, set to protobuf by hack/local-up.sh, whose
		// namespace controller TestSurfaceNamespaceDeletionAndOutage exercises.
		e := e.in(t)
		tbl := parseKubectlTable(t, e.kubectl.must("get", "rollouts", "-n", ns))
		assert.Len(t, tbl.Rows, 2)
		e.kubectl.must("label", "ro/web", "-n", ns, "proto=yes")
		e.kubectl.mustApply(canaryRolloutYAML(ns, "db", "db"))
		assert.Len(t, parseKubectlTable(t, e.kubectl.must("get", "ro", "-n", ns, "-l", "proto=yes")).Rows, 1)
	})

	t.Run("a protobuf GET and LIST through the aggregator answer protobuf", func(t *testing.T) {
		client, err := rest.UnversionedRESTClientFor(aggregatorRaw(e))
		require.NoError(t, err)
		s := protobuf.NewSerializer(apiserver.Scheme, apiserver.Scheme)
		for _, tc := range []struct {
			path string
			into runtime.Object
		}{
			{"/apis/rollout.kruise.io/v1beta1/namespaces/" + ns + "/rollouts/web", &v1beta1.Rollout{}},
			{"/apis/rollout.kruise.io/v1beta1/namespaces/" + ns + "/rollouts", &v1beta1.RolloutList{}},
		} {
			res := client.Get().AbsPath(tc.path).SetHeader("Accept", protobufWithJSON).Do(context.Background())
			body, err := res.Raw()
			require.NoError(t, err, tc.path)
			var ct string
			res.ContentType(&ct)
			require.Equal(t, runtime.ContentTypeProtobuf, ct, tc.path)
			_, _, err = s.Decode(body, nil, tc.into)
			require.NoError(t, err, tc.path)
		}
	})

	t.Run("the namespace controller's metadata LIST is served in protobuf", func(t *testing.T) {
		client, err := rest.UnversionedRESTClientFor(aggregatorRaw(e))
		require.NoError(t, err)
		res := client.Get().AbsPath("/apis/rollout.kruise.io/v1beta1/namespaces/"+ns+"/rollouts").
			SetHeader("Accept", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json").
			Do(context.Background())
		body, err := res.Raw()
		require.NoError(t, err)
		var ct string
		res.ContentType(&ct)
		require.Equal(t, runtime.ContentTypeProtobuf, ct)
		list := &metav1.PartialObjectMetadataList{}
		require.NoError(t, decodeMetaProtobuf(body, list))
		assert.Len(t, list.Items, 3)
	})

	t.Run("the generated clientset talks protobuf through the aggregator", func(t *testing.T) {
		client, err := versioned.NewForConfig(rest.CopyConfig(e.c.Config))
		require.NoError(t, err)
		list, err := client.RolloutV1beta1().Rollouts(ns).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, list.Items, 3)
		_, err = client.RolloutV1beta1().Rollouts(ns).Pause(context.Background(), "web", &v1beta1.RolloutPause{}, metav1.CreateOptions{})
		require.NoError(t, err, "an action body in protobuf")
	})
}

// aggregatorRaw is the admin's config for raw requests to kube-apiserver.
func aggregatorRaw(e *surfaceEnv) *rest.Config {
	cfg := rest.CopyConfig(e.c.Config)
	cfg.NegotiatedSerializer = apiserver.Codecs.WithoutConversion()
	return cfg
}

// decodeMetaProtobuf decodes a meta.k8s.io/v1 list from protobuf.
func decodeMetaProtobuf(body []byte, into runtime.Object) error {
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		return err
	}
	_, _, err := protobuf.NewSerializer(scheme, scheme).Decode(body, nil, into)
	return err
}
