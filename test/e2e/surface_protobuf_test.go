package e2e

import (
	"context"
	"strings"
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
// protobuf as its discovery says it does — to kubectl
// (--kube-api-content-type), to the generated clientset, and to the metadata
// requests of the namespace controller — while both APIServices stay
// Available. (Namespace deletion itself: TestSurfaceNamespaceDeletionAndOutage.)
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

	t.Run("kubectl with --kube-api-content-type protobuf gets, lists and applies", func(t *testing.T) {
		e := e.in(t)
		pb := "--kube-api-content-type=" + runtime.ContentTypeProtobuf
		tbl := parseKubectlTable(t, e.kubectl.must(pb, "get", "rollouts", "-n", ns))
		assert.Len(t, tbl.Rows, 2)
		assert.Equal(t, "Initial", tbl.row(t, "web")["STATUS"])
		named := e.kubectl.must(pb, "get", "ro/api", "-n", ns, "-o", "name")
		assert.Equal(t, "rollout.rollout.kruise.io/api", strings.TrimSpace(named))
		ro := e.kubectl.getJSON("ro/web", "-n", ns, pb)
		assert.Equal(t, "web", objectAt(t, ro, "spec")["workloadRef"].(map[string]any)["name"])
		e.kubectl.must(pb, "label", "ro/web", "-n", ns, "proto=yes")
		e.kubectl.mustApply(canaryRolloutYAML(ns, "db", "db"), pb)
		assert.Len(t, parseKubectlTable(t, e.kubectl.must(pb, "get", "ro", "-n", ns, "-l", "proto=yes")).Rows, 1)
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
