package apiserver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// A Rollout's whole life in v1beta1, watched from before it is born: create,
// get, list, update, delete, and a watch that sees ADDED, MODIFIED and
// DELETED in that order with the resourceVersions the writes returned.
func TestRolloutLifecycle(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)

	initial, err := rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, initial.Items, "a fresh namespace has no Rollouts")
	w, err := rollouts(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: initial.ResourceVersion})
	require.NoError(t, err)
	defer w.Stop()

	// Create: the server fills metadata and drops any status a client sends.
	r := newRollout("web", "web")
	r.Status.Phase = v1beta1.RolloutPhaseHealthy
	created := create(ctx, t, ns, r)
	assert.Equal(t, ns, created.Namespace)
	assert.NotEmpty(t, created.UID)
	assert.NotEmpty(t, created.ResourceVersion)
	assert.False(t, created.CreationTimestamp.IsZero())
	assert.Equal(t, int64(1), created.Generation)
	assert.Equal(t, v1beta1.RolloutStatus{}, created.Status, "status is the controller's to write")
	assert.Equal(t, r.Spec, created.Spec)

	// A second create of the same name is refused.
	_, err = rollouts(ns).Create(ctx, newRollout("web", "web"), metav1.CreateOptions{})
	assert.True(t, apierrors.IsAlreadyExists(err), "got %v", err)

	// Get and list return what was stored.
	got, err := rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, created, got)
	list, err := rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	assert.Equal(t, created.UID, list.Items[0].UID)

	// Update the spec: the generation moves on.
	got.Spec.Strategy.Canary.Steps[0].Traffic = ptr.To("10%")
	got.Labels["tier"] = "frontend"
	updated, err := rollouts(ns).Update(ctx, got, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), updated.Generation)
	assert.Equal(t, ptr.To("10%"), updated.Spec.Strategy.Canary.Steps[0].Traffic)
	assert.Equal(t, "frontend", updated.Labels["tier"])
	assert.NotEqual(t, created.ResourceVersion, updated.ResourceVersion)

	// Delete: it is gone at once (no finalizers).
	require.NoError(t, rollouts(ns).Delete(ctx, "web", metav1.DeleteOptions{}))
	_, err = rollouts(ns).Get(ctx, "web", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "got %v", err)
	err = rollouts(ns).Delete(ctx, "web", metav1.DeleteOptions{})
	assert.True(t, apierrors.IsNotFound(err), "deleting twice: got %v", err)

	// The watch saw the three writes, in order.
	want := []struct {
		typ watch.EventType
		rv  string
	}{
		{watch.Added, created.ResourceVersion},
		{watch.Modified, updated.ResourceVersion},
		{watch.Deleted, ""},
	}
	for i, ev := range want {
		select {
		case e, ok := <-w.ResultChan():
			require.True(t, ok, "watch closed before event %d", i)
			require.Equal(t, ev.typ, e.Type, "event %d: %v", i, e.Object)
			obj, isRollout := e.Object.(*v1beta1.Rollout)
			require.True(t, isRollout, "event %d carries a %T", i, e.Object)
			assert.Equal(t, "web", obj.Name)
			if ev.rv != "" {
				assert.Equal(t, ev.rv, obj.ResourceVersion, "event %d", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event within 10s", ev.typ)
		}
	}
}

// Lists filter by label, across namespaces, and page with limit/continue.
func TestListSelectorsAndPaging(t *testing.T) {
	ctx := testContext(t)
	nsA, nsB := newNamespace(t), newNamespace(t)
	for _, name := range []string{"a1", "a2", "a3", "a4", "a5"} {
		create(ctx, t, nsA, newRollout(name, name))
	}
	create(ctx, t, nsB, newRollout("b1", "b1"))

	byLabel, err := rollouts(nsA).List(ctx, metav1.ListOptions{LabelSelector: "app in (a2,a4)"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a2", "a4"}, names(byLabel.Items))

	all, err := rollouts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	allNames := names(all.Items)
	assert.Subset(t, allNames, []string{"a1", "a5", "b1"}, "a cluster-wide list sees every namespace")

	var paged []string
	opts := metav1.ListOptions{Limit: 2}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5, "paging does not end")
		page, err := rollouts(nsA).List(ctx, opts)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page.Items), 2)
		paged = append(paged, names(page.Items)...)
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	assert.Equal(t, []string{"a1", "a2", "a3", "a4", "a5"}, paged, "pages cover the list once, in order")
}

// The field selector spec.workloadRef.name finds the Rollout of a workload;
// status.phase and spec.workloadRef.kind are selectable too, other fields are not.
func TestFieldSelectors(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("web", "frontend"))
	create(ctx, t, ns, newRollout("api", "backend"))
	db := newRollout("db", "postgres")
	db.Spec.WorkloadRef.Kind = "StatefulSet"
	create(ctx, t, ns, db)
	setStatus(ctx, t, ns, "api", atStep(1, v1beta1.CanaryStepStateUpgrade))

	cases := []struct {
		selector string
		want     []string
	}{
		{"spec.workloadRef.name=backend", []string{"api"}},
		{"spec.workloadRef.name=frontend", []string{"web"}},
		{"spec.workloadRef.name=nothing", nil},
		{"spec.workloadRef.name!=frontend", []string{"api", "db"}},
		{"spec.workloadRef.kind=StatefulSet", []string{"db"}},
		{"status.phase=Progressing", []string{"api"}},
		{"metadata.name=web", []string{"web"}},
		{fields.AndSelectors(
			fields.OneTermEqualSelector("spec.workloadRef.kind", "Deployment"),
			fields.OneTermNotEqualSelector("status.phase", "Progressing")).String(), []string{"web"}},
	}
	for _, tc := range cases {
		t.Run(tc.selector, func(t *testing.T) {
			list, err := rollouts(ns).List(ctx, metav1.ListOptions{FieldSelector: tc.selector})
			require.NoError(t, err)
			assert.ElementsMatch(t, tc.want, names(list.Items))
		})
	}

	_, err := rollouts(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.disabled=true"})
	assert.True(t, apierrors.IsBadRequest(err), "an unsupported field selector is a 400, got %v", err)
}

func names(items []v1beta1.Rollout) []string {
	out := make([]string, 0, len(items))
	for _, r := range items {
		out = append(out, r.Name)
	}
	return out
}

// A watch filtered by spec.workloadRef.name sees only the Rollout of that
// workload, and sees it leave (DELETED) when its workloadRef moves away and
// arrive (ADDED) in the watch of the new workload.
func TestWatchByWorkload(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	watchOf := func(workload string) watch.Interface {
		w, err := rollouts(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "spec.workloadRef.name=" + workload})
		require.NoError(t, err)
		t.Cleanup(w.Stop)
		return w
	}
	next := func(w watch.Interface) (watch.EventType, string) {
		select {
		case e := <-w.ResultChan():
			r, ok := e.Object.(*v1beta1.Rollout)
			require.True(t, ok, "event carries a %T: %v", e.Object, e.Object)
			return e.Type, r.Name
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return "", ""
		}
	}
	web, api := watchOf("web"), watchOf("api")

	create(ctx, t, ns, newRollout("other", "other"))
	r := create(ctx, t, ns, newRollout("canary", "web"))
	typ, name := next(web)
	assert.Equal(t, watch.Added, typ)
	assert.Equal(t, "canary", name, "the watch of web does not see other workloads")

	r.Spec.WorkloadRef.Name = "api"
	_, err := rollouts(ns).Update(ctx, r, metav1.UpdateOptions{})
	require.NoError(t, err)
	typ, name = next(web)
	assert.Equal(t, watch.Deleted, typ, "the Rollout left the selection of web")
	assert.Equal(t, "canary", name)
	typ, name = next(api)
	assert.Equal(t, watch.Added, typ, "and entered the selection of api")
	assert.Equal(t, "canary", name)
}

// DeleteCollection deletes what its selector matches and nothing else.
func TestDeleteCollection(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	for _, name := range []string{"a", "b", "c"} {
		create(ctx, t, ns, newRollout(name, name))
	}
	require.NoError(t, rollouts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app in (a,c)"}))
	list, err := rollouts(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"b"}, names(list.Items))
}
