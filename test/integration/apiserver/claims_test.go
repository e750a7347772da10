package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
	rolloutapiserver "github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	rolloutregistry "github.com/rollout-apiserver/rollout-apiserver/pkg/registry/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

// Two replicas of the server on one etcd, as an HA install runs them, each
// get half of 50 concurrent creates of different Rollouts for the same
// workload. Exactly one create wins; every other one is refused with 422 on
// spec.workloadRef.name naming the winner. Deleting the winner through one
// replica frees the workload for a create through the other.
func TestOneRolloutPerWorkloadAcrossReplicas(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	second := framework.StartServer(t, "", framework.WithEtcdServers(server.EtcdServers))
	replicas := []*framework.Server{server, second}

	for round := range 2 {
		workload := fmt.Sprintf("web-%d", round)
		start := make(chan struct{})
		errs := make([]error, 50)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := replicas[i%2].Client.RolloutV1beta1().Rollouts(ns)
				<-start
				_, errs[i] = client.Create(ctx, newRollout(fmt.Sprintf("%s-r%02d", workload, i), workload), metav1.CreateOptions{})
			}()
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: creates %d and %d both won", round, winner, i)
				winner = i
				continue
			}
			require.True(t, apierrors.IsInvalid(err), "round %d, create %d (replica %d): want 422, got %v", round, i, i%2, err)
			assert.Equal(t, []string{"spec.workloadRef.name"}, causeFields(err), "round %d, create %d", round, i)
			msg := err.Error()
			assert.True(t, strings.Contains(msg, "is already released by Rollout") || strings.Contains(msg, "is being claimed by Rollout"),
				"round %d, create %d: the refusal names the holder: %s", round, i, msg)
		}
		require.NotEqual(t, -1, winner, "round %d: no create won", round)
		t.Logf("round %d: create %d (replica %d) won, 49 refused", round, winner, winner%2)

		for r, replica := range replicas {
			list, err := replica.Client.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.workloadRef.name=" + workload})
			require.NoError(t, err)
			assert.Len(t, list.Items, 1, "round %d: replica %d stores one Rollout for the workload", round, r)
		}

		// The claim is released through either replica and seen by the other.
		winnerName := fmt.Sprintf("%s-r%02d", workload, winner)
		require.NoError(t, replicas[(winner+1)%2].Client.RolloutV1beta1().Rollouts(ns).Delete(ctx, winnerName, metav1.DeleteOptions{}))
		_, err := replicas[winner%2].Client.RolloutV1beta1().Rollouts(ns).Create(ctx, newRollout(workload+"-after", workload), metav1.CreateOptions{})
		require.NoError(t, err, "round %d: the workload is free once its Rollout is deleted", round)
	}
}

// A server that dies at the wrong moment leaves a claim behind. The claim of
// a Rollout that is gone (its server died before releasing it) is taken over
// by the next create. A claim of a write still in flight is never taken over;
// if that write's server died, the claim's lease ends it and the workload is
// free again.
func TestLeftoverWorkloadClaims(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	s := framework.StartServer(t, "") // its own etcd: the test edits keys in it
	etcd := etcdClient(t, s)
	client := s.Client.RolloutV1beta1().Rollouts(ns)
	claimKey := app.EtcdPathPrefix + rolloutregistry.ClaimsResourcePrefix + "/" + ns + "/Deployment/web"
	rolloutKey := func(name string) string {
		return app.EtcdPathPrefix + "/rollout.kruise.io/rollouts/" + ns + "/" + name
	}

	// A held claim whose Rollout vanished without releasing it.
	_, err := client.Create(ctx, newRollout("first", "web"), metav1.CreateOptions{})
	require.NoError(t, err)
	held := etcdValue(ctx, t, etcd, claimKey)
	require.Contains(t, held, `"held"`, "a stored Rollout's claim is held")
	_, err = etcd.Delete(ctx, rolloutKey("first"))
	require.NoError(t, err)
	waitGone(ctx, t, s, ns, "first")
	_, err = client.Create(ctx, newRollout("second", "web"), metav1.CreateOptions{})
	require.NoError(t, err, "the stale claim of a deleted Rollout is taken over")
	assert.Contains(t, etcdValue(ctx, t, etcd, claimKey), `"second"`)

	// A pending claim (a create in flight elsewhere) of a Rollout that does
	// not exist yet: refused, not taken over.
	require.NoError(t, client.Delete(ctx, "second", metav1.DeleteOptions{}))
	lease, err := etcd.Grant(ctx, 3)
	require.NoError(t, err)
	pending := strings.Replace(strings.Replace(held, `"held"`, `"pending"`, 1), `"first"`, `"in-flight"`, 1)
	_, err = etcd.Put(ctx, claimKey, pending, clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	_, err = client.Create(ctx, newRollout("third", "web"), metav1.CreateOptions{})
	require.True(t, apierrors.IsInvalid(err), "want 422 while another write holds the claim, got %v", err)
	assert.Contains(t, err.Error(), `Deployment "web" is being claimed by Rollout "in-flight"`)

	// Its server died: the lease ends the claim.
	require.Eventually(t, func() bool {
		_, err := client.Create(ctx, newRollout("third", "web"), metav1.CreateOptions{})
		return err == nil
	}, 20*time.Second, 250*time.Millisecond, "the workload is free once the pending claim's lease ends")
}

// etcdClient connects to the etcd a server stores in.
func etcdClient(t *testing.T, s *framework.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.EtcdServers, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// etcdValue is the object stored at key, as JSON whatever the storage
// encoding (protobuf by default): written back, a JSON value is read too.
func etcdValue(ctx context.Context, t *testing.T, c *clientv3.Client, key string) string {
	t.Helper()
	resp, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1, "key %s", key)
	obj, gvk, err := rolloutapiserver.Codecs.UniversalDeserializer().Decode(resp.Kvs[0].Value, nil, nil)
	require.NoError(t, err, "decoding %s", key)
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	var out bytes.Buffer
	require.NoError(t, jsonserializer.NewSerializerWithOptions(jsonserializer.DefaultMetaFactory, rolloutapiserver.Scheme, rolloutapiserver.Scheme, jsonserializer.SerializerOptions{}).Encode(obj, &out))
	return out.String()
}

// waitGone waits until the server no longer serves the Rollout.
func waitGone(ctx context.Context, t *testing.T, s *framework.Server, ns, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := s.Client.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 10*time.Second, 100*time.Millisecond, "Rollout %s/%s gone", ns, name)
}
