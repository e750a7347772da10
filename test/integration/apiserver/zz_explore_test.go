package apiserver

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestZZExplore(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	for i := range 30 {
		create(ctx, t, ns, newRollout(fmt.Sprintf("r%d", i), fmt.Sprintf("w%d", i)))
	}
	metrics := func() map[string]string {
		raw, _ := server.Client.RolloutV1beta1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		out := map[string]string{}
		for _, l := range strings.Split(string(raw), "\n") {
			if (strings.HasPrefix(l, "apiserver_cache_list_total") || strings.HasPrefix(l, "etcd_requests_total") || strings.HasPrefix(l, "apiserver_storage_list_total")) && strings.Contains(l, "rollout") {
				i := strings.LastIndex(l, " ")
				out[l[:i]] = l[i+1:]
			}
		}
		return out
	}
	before := metrics()
	opts := metav1.ListOptions{Limit: 10}
	for {
		l, err := rollouts(ns).List(ctx, opts)
		if err != nil { t.Fatal(err) }
		t.Logf("page %d remaining=%v", len(l.Items), l.RemainingItemCount)
		if l.Continue == "" { break }
		opts.Continue = l.Continue
	}
	after := metrics()
	for k, v := range after {
		if before[k] != v { t.Logf("%s: %s -> %s", k, before[k], v) }
	}
}
