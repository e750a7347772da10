package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	rolloutfake "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/fake"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

const namespace = "default"

func template(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image}}},
	}
}

func newRollout(name, kind, workloadName string) *v1beta1.Rollout {
	one := intstr.FromInt32(1)
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: kind, Name: workloadName},
			Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: []v1beta1.CanaryStep{{Replicas: &one}}}},
		},
	}
}

func newDeployment(name, image string, replicas int32, maxSurge, maxUnavailable string) *appsv1.Deployment {
	surge, unavailable := intstr.Parse(maxSurge), intstr.Parse(maxUnavailable)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{v1beta1.WorkloadControlLabel: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template(name, image),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
		},
	}
}

func newStatefulSet(name, image string, replicas int32) *appsv1.StatefulSet {
	zero := int32(0)
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template(name, image),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero},
			},
		},
	}
}

func newDaemonSet(name, image string, maxUnavailable string) *appsv1.DaemonSet {
	unavailable := intstr.Parse(maxUnavailable)
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template(name, image),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &unavailable},
			},
		},
	}
}

func listerOf(t *testing.T, rollouts ...*v1beta1.Rollout) workload.RolloutLookup {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, ro := range rollouts {
		require.NoError(t, idx.Add(ro))
	}
	return workload.ListerLookup(rolloutlisters.NewRolloutLister(idx))
}

func raw(t *testing.T, obj runtime.Object) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(obj)
	require.NoError(t, err)
	return runtime.RawExtension{Raw: b}
}

func request(t *testing.T, kind string, oldObj, newObj runtime.Object) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       types.UID("req-1"),
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: strings.ToLower(kind) + "s"},
		Namespace: namespace,
		Operation: admissionv1.Update,
		Object:    raw(t, newObj),
		OldObject: raw(t, oldObj),
	}
}

// apply runs the response's patch on the request's object.
func apply(t *testing.T, req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse, into runtime.Object) {
	t.Helper()
	require.True(t, resp.Allowed, "%+v", resp.Result)
	out := req.Object.Raw
	if len(resp.Patch) > 0 {
		require.NotNil(t, resp.PatchType)
		require.Equal(t, admissionv1.PatchTypeJSONPatch, *resp.PatchType)
		patch, err := jsonpatch.DecodePatch(resp.Patch)
		require.NoError(t, err)
		out, err = patch.Apply(req.Object.Raw)
		require.NoError(t, err)
	}
	require.NoError(t, json.Unmarshal(out, into))
}

func TestAdmitHoldsEachKind(t *testing.T) {
	rollout := func(kind, name string) *v1beta1.Rollout {
		return newRollout("ro-"+name, kind, name)
	}
	h := NewHandler(listerOf(t,
		rollout(v1beta1.KindDeployment, "web"),
		rollout(v1beta1.KindStatefulSet, "db"),
		rollout(v1beta1.KindDaemonSet, "agent"),
	), nil, nil)
	ctx := context.Background()

	t.Run("Deployment", func(t *testing.T) {
		old := newDeployment("web", "v1", 4, "25%", "0")
		updated := old.DeepCopy()
		updated.Spec.Template.Spec.Containers[0].Image = "v2"
		req := request(t, "Deployment", old, updated)
		resp := h.Admit(ctx, req)
		assert.NotEmpty(t, resp.Warnings)
		var got appsv1.Deployment
		apply(t, req, resp, &got)
		assert.True(t, got.Spec.Paused)
		assert.Equal(t, appsv1.RecreateDeploymentStrategyType, got.Spec.Strategy.Type)
		assert.Nil(t, got.Spec.Strategy.RollingUpdate)
		assert.Equal(t, "v2", got.Spec.Template.Spec.Containers[0].Image)
		orig := workload.OriginalOfDeployment(&got)
		assert.Equal(t, old.Spec.Strategy, orig.Strategy, "what the hold changed is recorded")
		assert.False(t, orig.Paused)
	})

	t.Run("StatefulSet", func(t *testing.T) {
		old := newStatefulSet("db", "v1", 5)
		old.Annotations = map[string]string{"other": "kept"}
		updated := old.DeepCopy()
		updated.Spec.Template.Spec.Containers[0].Image = "v2"
		req := request(t, "StatefulSet", old, updated)
		var got appsv1.StatefulSet
		apply(t, req, h.Admit(ctx, req), &got)
		assert.Equal(t, int32(5), workload.HeldPartition(&got), "partition = replicas")
		assert.Equal(t, "kept", got.Annotations["other"])
		assert.Equal(t, old.Spec.UpdateStrategy, workload.OriginalOfStatefulSet(&got).UpdateStrategy)
	})

	t.Run("DaemonSet", func(t *testing.T) {
		old := newDaemonSet("agent", "v1", "1")
		updated := old.DeepCopy()
		updated.Spec.Template.Spec.Containers[0].Image = "v2"
		req := request(t, "DaemonSet", old, updated)
		var got appsv1.DaemonSet
		apply(t, req, h.Admit(ctx, req), &got)
		assert.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, got.Spec.UpdateStrategy.Type)
		var saved workload.DaemonSetOriginal
		require.NoError(t, json.Unmarshal([]byte(got.Annotations[v1beta1.WorkloadOriginalStrategyAnnotation]), &saved))
		assert.Equal(t, old.Spec.UpdateStrategy, saved.UpdateStrategy, "the original strategy is saved in the annotation")
	})
}

func TestAdmitDecisions(t *testing.T) {
	ctx := context.Background()
	active := newRollout("ro", v1beta1.KindDeployment, "web")
	disabled := active.DeepCopy()
	disabled.Spec.Disabled = true
	deleting := active.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	otherName := newRollout("ro", v1beta1.KindDeployment, "api")
	otherGroup := active.DeepCopy()
	otherGroup.Spec.WorkloadRef.APIVersion = "apps.kruise.io/v1alpha1"

	old := newDeployment("web", "v1", 4, "25%", "25%")
	newImage := old.DeepCopy()
	newImage.Spec.Template.Spec.Containers[0].Image = "v2"
	newID := old.DeepCopy()
	newID.Annotations = map[string]string{v1beta1.RolloutIDAnnotation: "r2"}
	scaled := old.DeepCopy()
	five := int32(5)
	scaled.Spec.Replicas = &five

	tests := []struct {
		name     string
		rollouts []*v1beta1.Rollout
		old, new *appsv1.Deployment
		wantHold bool
	}{
		{name: "image change with a Rollout", rollouts: []*v1beta1.Rollout{active}, old: old, new: newImage, wantHold: true},
		{name: "rollout-id change with a Rollout", rollouts: []*v1beta1.Rollout{active}, old: old, new: newID, wantHold: true},
		{name: "scale only", rollouts: []*v1beta1.Rollout{active}, old: old, new: scaled},
		{name: "no Rollout", old: old, new: newImage},
		{name: "disabled Rollout", rollouts: []*v1beta1.Rollout{disabled}, old: old, new: newImage},
		{name: "deleting Rollout", rollouts: []*v1beta1.Rollout{deleting}, old: old, new: newImage},
		{name: "Rollout of another workload", rollouts: []*v1beta1.Rollout{otherName}, old: old, new: newImage},
		{name: "Rollout of another API group", rollouts: []*v1beta1.Rollout{otherGroup}, old: old, new: newImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := make([]runtime.Object, 0, len(tt.rollouts))
			for _, ro := range tt.rollouts {
				objs = append(objs, ro.DeepCopy())
			}
			h := NewHandler(listerOf(t, tt.rollouts...), func() bool { return true }, rolloutfake.NewClientset(objs...))
			req := request(t, "Deployment", tt.old, tt.new)
			resp := h.Admit(ctx, req)
			require.True(t, resp.Allowed)
			if !tt.wantHold {
				assert.Empty(t, resp.Patch)
				return
			}
			var got appsv1.Deployment
			apply(t, req, resp, &got)
			assert.True(t, got.Spec.Paused)
		})
	}
}

func TestAdmitKeepsHoldDuringRelease(t *testing.T) {
	ctx := context.Background()
	h := NewHandler(listerOf(t, newRollout("ro", v1beta1.KindDeployment, "web")), nil, nil)
	original := newDeployment("web", "v1", 4, "25%", "25%")
	held := original.DeepCopy()
	held.Spec.Template.Spec.Containers[0].Image = "v2"
	_, err := workload.HoldDeployment(original, held)
	require.NoError(t, err)

	// Already held and nothing changes: no patch.
	same := held.DeepCopy()
	same.Labels = map[string]string{"team": "a"}
	resp := h.Admit(ctx, request(t, "Deployment", held, same))
	require.True(t, resp.Allowed)
	assert.Empty(t, resp.Patch)

	// A v3 mid-release keeps the recorded original, not the held values.
	v3 := held.DeepCopy()
	v3.Spec.Template.Spec.Containers[0].Image = "v3"
	req := request(t, "Deployment", held, v3)
	resp = h.Admit(ctx, req)
	var got appsv1.Deployment
	apply(t, req, resp, &got)
	assert.Equal(t, original.Spec.Strategy, workload.OriginalOfDeployment(&got).Strategy)

	// A user's apply that unpauses the held Deployment is held back.
	unpaused := held.DeepCopy()
	unpaused.Spec.Paused = false
	surge := intstr.FromInt32(2)
	unpaused.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}}
	req = request(t, "Deployment", held, unpaused)
	resp = h.Admit(ctx, req)
	apply(t, req, resp, &got)
	assert.True(t, got.Spec.Paused)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, got.Spec.Strategy.Type)
	assert.Equal(t, int32(2), workload.OriginalOfDeployment(&got).Strategy.RollingUpdate.MaxSurge.IntVal, "the user's new strategy is what gets restored")

	// The controller's release (annotation removed, strategy restored) passes untouched.
	released := held.DeepCopy()
	workload.ReleaseDeployment(released)
	resp = h.Admit(ctx, request(t, "Deployment", held, released))
	require.True(t, resp.Allowed)
	assert.Empty(t, resp.Patch)
}

func TestAdmitLeavesControllerPartitionAlone(t *testing.T) {
	ctx := context.Background()
	h := NewHandler(listerOf(t, newRollout("ro", v1beta1.KindStatefulSet, "db")), nil, nil)
	original := newStatefulSet("db", "v1", 5)
	held := original.DeepCopy()
	held.Spec.Template.Spec.Containers[0].Image = "v2"
	_, err := workload.HoldStatefulSet(original, held, true)
	require.NoError(t, err)
	lowered := held.DeepCopy()
	three := int32(3)
	lowered.Spec.UpdateStrategy.RollingUpdate.Partition = &three
	resp := h.Admit(ctx, request(t, "StatefulSet", held, lowered))
	require.True(t, resp.Allowed)
	assert.Empty(t, resp.Patch, "the controller lowering the partition is not undone")
}

func TestAdmitCacheNotSynced(t *testing.T) {
	ctx := context.Background()
	old := newDeployment("web", "v1", 4, "25%", "25%")
	updated := old.DeepCopy()
	updated.Spec.Template.Spec.Containers[0].Image = "v2"

	h := NewHandler(listerOf(t), func() bool { return false }, nil)
	resp := h.Admit(ctx, request(t, "Deployment", old, updated))
	assert.False(t, resp.Allowed, "unknown is refused, not let through")
	require.NotNil(t, resp.Result)
	assert.Equal(t, int32(503), resp.Result.Code)

	client := rolloutfake.NewClientset(newRollout("ro", v1beta1.KindDeployment, "web"))
	h = NewHandler(listerOf(t), func() bool { return false }, client)
	req := request(t, "Deployment", old, updated)
	var got appsv1.Deployment
	apply(t, req, h.Admit(ctx, req), &got)
	assert.True(t, got.Spec.Paused, "falls back to asking the API")
}

// TestAdmitStaleCache: a labelled workload whose Rollout the synced cache
// does not show yet is looked up fresh before it is admitted unheld; a
// failed lookup refuses the update, and an unlabelled workload is not looked
// up at all.
func TestAdmitStaleCache(t *testing.T) {
	ctx := context.Background()
	old := newDeployment("web", "v1", 4, "25%", "25%")
	updated := old.DeepCopy()
	updated.Spec.Template.Spec.Containers[0].Image = "v2"
	synced := func() bool { return true }

	client := rolloutfake.NewClientset(newRollout("ro", v1beta1.KindDeployment, "web"))
	h := NewHandler(listerOf(t), synced, client)
	req := request(t, "Deployment", old, updated)
	var got appsv1.Deployment
	apply(t, req, h.Admit(ctx, req), &got)
	assert.True(t, got.Spec.Paused, "the Rollout found by the fresh read holds the workload")
	require.NotEmpty(t, client.Actions())
	assert.Equal(t, "list", client.Actions()[0].GetVerb())

	failing := rolloutfake.NewClientset()
	failing.PrependReactor("list", "rollouts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("injected: server unavailable")
	})
	resp := NewHandler(listerOf(t), synced, failing).Admit(ctx, request(t, "Deployment", old, updated))
	assert.False(t, resp.Allowed, "a labelled workload is never admitted unheld on a failed lookup")
	require.NotNil(t, resp.Result)
	assert.Equal(t, int32(503), resp.Result.Code)

	unlabelled, unlabelledNew := old.DeepCopy(), updated.DeepCopy()
	unlabelled.Labels, unlabelledNew.Labels = nil, nil
	resp = NewHandler(listerOf(t), synced, failing).Admit(ctx, request(t, "Deployment", unlabelled, unlabelledNew))
	assert.True(t, resp.Allowed)
	assert.Empty(t, resp.Patch)
}

func TestAdmitIgnoresOtherRequests(t *testing.T) {
	h := NewHandler(listerOf(t), nil, nil)
	ctx := context.Background()
	for _, req := range []*admissionv1.AdmissionRequest{
		{Operation: admissionv1.Create, Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}},
		{Operation: admissionv1.Update, SubResource: "status", Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}},
		{Operation: admissionv1.Update, Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}},
		{Operation: admissionv1.Update, Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}},
	} {
		resp := h.Admit(ctx, req)
		assert.True(t, resp.Allowed)
		assert.Empty(t, resp.Patch)
	}
}

func TestServeHTTP(t *testing.T) {
	h := NewHandler(listerOf(t, newRollout("ro", v1beta1.KindDeployment, "web")), nil, nil)
	old := newDeployment("web", "v1", 4, "25%", "25%")
	updated := old.DeepCopy()
	updated.Spec.Template.Spec.Containers[0].Image = "v2"
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  request(t, "Deployment", old, updated),
	}
	body, err := json.Marshal(review)
	require.NoError(t, err)

	post := func(contentType string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	heldBefore, invalidBefore := timed(t, resultHeld), timed(t, resultInvalid)
	w := post("application/json", body)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, heldBefore+1, timed(t, resultHeld), "the review is timed as held")
	var out admissionv1.AdmissionReview
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
	require.NotNil(t, out.Response)
	assert.Equal(t, types.UID("req-1"), out.Response.UID)
	assert.Equal(t, "AdmissionReview", out.Kind)
	assert.True(t, out.Response.Allowed)
	assert.NotEmpty(t, out.Response.Patch)

	malformed := []struct {
		name        string
		contentType string
		body        string
		code        int
	}{
		{name: "not json", contentType: "application/json", body: "{", code: http.StatusBadRequest},
		{name: "no request", contentType: "application/json", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, code: http.StatusBadRequest},
		{name: "wrong version", contentType: "application/json", body: `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`, code: http.StatusBadRequest},
		{name: "wrong content type", contentType: "text/plain", body: string(body), code: http.StatusUnsupportedMediaType},
		{name: "null", contentType: "application/json", body: "null", code: http.StatusBadRequest},
		{name: "array", contentType: "application/json", body: "[]", code: http.StatusBadRequest},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.code, post(tt.contentType, []byte(tt.body)).Code)
		})
	}
	assert.Equal(t, invalidBefore+uint64(len(malformed)), timed(t, resultInvalid), "a body that is no review is timed as invalid")

	t.Run("undecodable object", func(t *testing.T) {
		bad := review.DeepCopy()
		bad.Request.Object.Raw = []byte(`{"spec":{"replicas":"many"}}`)
		b, err := json.Marshal(bad)
		require.NoError(t, err)
		w := post("application/json", b)
		require.Equal(t, http.StatusOK, w.Code)
		var out admissionv1.AdmissionReview
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
		assert.False(t, out.Response.Allowed)
		assert.Equal(t, int32(400), out.Response.Result.Code)
	})

	t.Run("missing old object", func(t *testing.T) {
		bad := review.DeepCopy()
		bad.Request.OldObject.Raw = nil
		b, err := json.Marshal(bad)
		require.NoError(t, err)
		w := post("application/json", b)
		var out admissionv1.AdmissionReview
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
		assert.False(t, out.Response.Allowed)
	})

	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, Path, nil))
		assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
	})
}

func TestMutatingWebhookConfiguration(t *testing.T) {
	path := Path
	cfg := MutatingWebhookConfiguration("", admissionregistrationv1.WebhookClientConfig{
		Service:  &admissionregistrationv1.ServiceReference{Namespace: "rollout-system", Name: "rollout-apiserver", Path: &path},
		CABundle: []byte("ca"),
	})
	assert.Equal(t, DefaultConfigurationName, cfg.Name)
	require.Len(t, cfg.Webhooks, 1)
	w := cfg.Webhooks[0]
	assert.Equal(t, WebhookName, w.Name)
	assert.Equal(t, admissionregistrationv1.Fail, *w.FailurePolicy)
	assert.Equal(t, admissionregistrationv1.SideEffectClassNone, *w.SideEffects)
	assert.Equal(t, int32(5), *w.TimeoutSeconds)
	assert.Equal(t, map[string]string{v1beta1.WorkloadControlLabel: "true"}, w.ObjectSelector.MatchLabels)
	assert.Equal(t, []string{"v1"}, w.AdmissionReviewVersions)
	require.Len(t, w.Rules, 1)
	assert.Equal(t, []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, w.Rules[0].Operations)
	assert.ElementsMatch(t, []string{"deployments", "statefulsets", "daemonsets"}, w.Rules[0].Resources)
	assert.Equal(t, []string{"apps"}, w.Rules[0].APIGroups)
	assert.Equal(t, "rollout-apiserver", w.ClientConfig.Service.Name)
	require.NotNil(t, w.NamespaceSelector, "kube-system and the server's namespace never depend on the webhook")
	assert.Equal(t, []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "rollout-system"},
	}}, w.NamespaceSelector.MatchExpressions)
}

// TestServeHTTPBodyCap: a body over 3.5 MiB is refused with 413 before it is
// read whole; one just under is read (and refused only as a bad review).
func TestServeHTTPBodyCap(t *testing.T) {
	h := NewHandler(listerOf(t), nil, nil)
	post := func(n int) int {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(bytes.Repeat([]byte(" "), n)))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(3584<<10+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(8<<20))
	assert.Equal(t, http.StatusBadRequest, post(3584<<10))
}

func TestReleasingName(t *testing.T) {
	canary := &v1beta1.CanaryStrategy{}
	blueGreen := &v1beta1.BlueGreenStrategy{}
	tests := []struct {
		name     string
		kind     string
		strategy v1beta1.RolloutStrategy
		want     string
	}{
		{"canary Deployment", v1beta1.KindDeployment, v1beta1.RolloutStrategy{Canary: canary}, "ro"},
		{"canary StatefulSet", v1beta1.KindStatefulSet, v1beta1.RolloutStrategy{Canary: canary}, "ro"},
		{"blue-green Deployment", v1beta1.KindDeployment, v1beta1.RolloutStrategy{BlueGreen: blueGreen}, "ro"},
		{"blue-green StatefulSet is never released, so never held", v1beta1.KindStatefulSet, v1beta1.RolloutStrategy{BlueGreen: blueGreen}, ""},
		{"no strategy", v1beta1.KindDeployment, v1beta1.RolloutStrategy{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "ro"}}
			ro.Spec.WorkloadRef.Kind = tt.kind
			ro.Spec.Strategy = tt.strategy
			assert.Equal(t, tt.want, releasingName(ro))
		})
	}
}

// timed is how many reviews admissionDuration counted with result.
func timed(t *testing.T, result string) uint64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "rollout_webhook_admission_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
