// Package webhook is the workload admission webhook. On an update of an apps/v1
// Deployment, StatefulSet or DaemonSet that changes its pod template (or its
// rollout.kruise.io/rollout-id annotation) while an active Rollout references
// it, the webhook returns a JSON patch that holds the workload, so its own
// controller does not roll it out and the Rollout controller can release it in
// steps. The hold itself, and how it is undone, is defined in package
// controller/workload; this package only decides when to apply it.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	rolloutregistry "github.com/rollout-apiserver/rollout-apiserver/pkg/registry/rollout"
)

// Path is where the server should serve Handler. It is served behind the
// generic server's authentication and authorization like every other path:
// kube-apiserver presents a client certificate for a user that RBAC allows to
// POST here (artifacts/deploy/20-rbac-server.yaml), and every other caller,
// anonymous or not, gets 403 before its body is read.
const Path = "/webhooks/workloads"

// WebhookName is the name of the webhook inside its configuration.
const WebhookName = "workloads.rollout.kruise.io"

// DefaultConfigurationName is a name for the MutatingWebhookConfiguration.
const DefaultConfigurationName = "rollout-apiserver-workloads"

// maxBodyBytes bounds a review's size. kube-apiserver stores objects of at
// most about 1.5 MiB (etcd's request limit) and a review carries the object
// twice; a larger body is no real review and is refused with 413 before it
// is buffered, so a flood of them cannot exhaust the server's memory.
const maxBodyBytes = 3584 << 10 // 3.5 MiB

// ServerNamespace is where the install runs the server. Workloads there and
// in kube-system are never sent to the webhook: the server must not depend
// on itself to update its own Deployment, and the control plane must not
// depend on it at all.
const ServerNamespace = "rollout-system"

// Handler serves AdmissionReviews (admission.k8s.io/v1) for workload updates.
type Handler struct {
	rollouts  workload.RolloutLookup
	hasSynced func() bool
	client    versioned.Interface
}

// NewHandler returns the webhook handler. rollouts and hasSynced come from a
// Rollout informer that runs on every replica (Controller.RolloutsOf and
// Controller.HasSynced); until it has synced, client (if not nil) is asked
// directly, and without it an update of a labelled workload is refused with
// a message to retry, rather than let a release slip past the Rollout.
func NewHandler(rollouts workload.RolloutLookup, hasSynced func() bool, client versioned.Interface) *Handler {
	registerMetrics()
	return &Handler{rollouts: rollouts, hasSynced: hasSynced, client: client}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := resultInvalid
	defer func() { admissionDuration.WithLabelValues(result).Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST is served", http.StatusMethodNotAllowed)
		return
	}
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "AdmissionReview too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "decoding the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "the AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	if gvk := review.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		http.Error(w, fmt.Sprintf("expected an admission.k8s.io/v1 AdmissionReview, got %s", gvk), http.StatusBadRequest)
		return
	}
	response := h.Admit(r.Context(), review.Request)
	response.UID = review.Request.UID
	result = resultOf(response)
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: response})
	if err != nil {
		http.Error(w, "encoding the AdmissionReview: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(out); err != nil {
		klog.V(2).InfoS("Writing an admission response failed", "uid", review.Request.UID, "err", err)
	}
}

// allow admits without change.
func allow() *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

// deny refuses with an HTTP-like code and a message for the user.
func deny(code int32, format string, args ...any) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    code,
		Reason:  metav1.StatusReasonBadRequest,
		Message: fmt.Sprintf(format, args...),
	}}
}

var workloadKinds = map[string]bool{
	v1beta1.KindDeployment:  true,
	v1beta1.KindStatefulSet: true,
	v1beta1.KindDaemonSet:   true,
}

// Admit decides one admission request. Anything that is not an update of an
// apps/v1 workload's main resource is admitted unchanged.
func (h *Handler) Admit(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Operation != admissionv1.Update || req.SubResource != "" ||
		req.Kind.Group != appsv1.GroupName || req.Kind.Version != "v1" || !workloadKinds[req.Kind.Kind] {
		return allow()
	}
	w, err := decode(req)
	if err != nil {
		return deny(400, "rollout.kruise.io workload webhook: %v", err)
	}
	if !w.triggers() {
		return allow()
	}
	meta := w.meta()
	rollout, err := h.activeRollout(ctx, req.Namespace, req.Kind.Kind, meta)
	if err != nil {
		klog.InfoS("Refusing a workload update: cannot read Rollouts", "kind", req.Kind.Kind, "workload", klog.KRef(req.Namespace, meta.GetName()), "err", err)
		return deny(503, "rollout.kruise.io workload webhook cannot tell whether a Rollout releases %s %s yet (%v); retry", req.Kind.Kind, meta.GetName(), err)
	}
	if rollout == "" {
		return allow()
	}
	patch, err := w.hold()
	if err != nil {
		return deny(500, "rollout.kruise.io workload webhook: holding %s %s: %v", req.Kind.Kind, meta.GetName(), err)
	}
	if len(patch) == 0 {
		return allow()
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		return deny(500, "rollout.kruise.io workload webhook: encoding the patch: %v", err)
	}
	patchType := admissionv1.PatchTypeJSONPatch
	klog.V(2).InfoS("Holding workload for its Rollout", "kind", req.Kind.Kind, "workload", klog.KRef(req.Namespace, meta.GetName()), "rollout", rollout, "dryRun", req.DryRun != nil && *req.DryRun)
	return &admissionv1.AdmissionResponse{
		Allowed:   true,
		PatchType: &patchType,
		Patch:     raw,
		Warnings:  []string{fmt.Sprintf("%s %s is released step by step by Rollout %s", req.Kind.Kind, meta.GetName(), rollout)},
	}
}

// activeRollout names the active canary Rollout (workload.ActiveRollout) of
// the workload, "" if there is none. It answers from the Rollout cache; a
// workload that carries the control label but whose Rollout the cache does
// not show (a Rollout created a moment ago, or a cache that has not synced)
// is looked up fresh: a consistent read of the spec.workloadRef index of the
// registry, so a release is never let past its Rollout by a stale cache.
func (h *Handler) activeRollout(ctx context.Context, namespace, kind string, meta metav1.Object) (string, error) {
	name := meta.GetName()
	if h.rollouts != nil && (h.hasSynced == nil || h.hasSynced()) {
		list, err := h.rollouts(namespace, kind, name)
		if err != nil {
			return "", fmt.Errorf("listing Rollouts from cache: %w", err)
		}
		if ro := workload.ActiveRollout(list, kind, name); ro != nil {
			return releasingName(ro), nil
		}
		if _, labelled := meta.GetLabels()[v1beta1.WorkloadControlLabel]; !labelled {
			return "", nil
		}
	}
	if h.client == nil {
		return "", errors.New("the Rollout cache has not synced, or does not show the Rollout of a labelled workload, and there is no client to ask")
	}
	selector := fields.Set{
		rolloutregistry.FieldWorkloadKind: kind,
		rolloutregistry.FieldWorkloadName: name,
	}.AsSelector().String()
	// No resourceVersion: a quorum read, newer than anything cached.
	list, err := h.client.RolloutV1beta1().Rollouts(namespace).List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		return "", fmt.Errorf("listing Rollouts of %s %s: %w", kind, name, err)
	}
	rollouts := make([]*v1beta1.Rollout, 0, len(list.Items))
	for i := range list.Items {
		rollouts = append(rollouts, &list.Items[i])
	}
	if ro := workload.ActiveRollout(rollouts, kind, name); ro != nil {
		klog.V(2).InfoS("Rollout of a labelled workload found by a fresh read, not yet in the cache", "kind", kind, "workload", klog.KRef(namespace, name), "rollout", ro.Name)
		return releasingName(ro), nil
	}
	return "", nil
}

// releasingName is the name of a Rollout whose releases the webhook holds
// for; a workload held for a Rollout the step machine does not release
// would stay held.
func releasingName(ro *v1beta1.Rollout) string {
	if !workload.Releasable(ro) {
		return ""
	}
	return ro.Name
}

// MutatingWebhookConfiguration returns the configuration that sends workload
// updates to this webhook at clientConfig (a Service with Path, or a URL).
// Only workloads labelled rollout.kruise.io/controlled=true, which the
// controller puts on referenced workloads alone, are sent, so with
// failurePolicy Fail no other workload ever depends on this server.
func MutatingWebhookConfiguration(name string, clientConfig admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.MutatingWebhookConfiguration {
	if name == "" {
		name = DefaultConfigurationName
	}
	failurePolicy := admissionregistrationv1.Fail
	matchPolicy := admissionregistrationv1.Equivalent
	sideEffects := admissionregistrationv1.SideEffectClassNone
	reinvocation := admissionregistrationv1.IfNeededReinvocationPolicy
	scope := admissionregistrationv1.NamespacedScope
	timeout := int32(5)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         WebhookName,
			ClientConfig: clientConfig,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{appsv1.GroupName},
					APIVersions: []string{"v1"},
					Resources:   []string{"deployments", "statefulsets", "daemonsets"},
					Scope:       &scope,
				},
			}},
			FailurePolicy:           &failurePolicy,
			MatchPolicy:             &matchPolicy,
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{v1beta1.WorkloadControlLabel: "true"}},
			NamespaceSelector:       ExcludedNamespacesSelector(serverNamespace(clientConfig)),
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			// The hold is idempotent; being called again after a later webhook
			// changed the template keeps the hold in place.
			ReinvocationPolicy: &reinvocation,
		}},
	}
}

// ExcludedNamespacesSelector selects every namespace but kube-system and the
// server's own (see ServerNamespace).
func ExcludedNamespacesSelector(serverNamespace string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key:      corev1.LabelMetadataName,
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   []string{metav1.NamespaceSystem, serverNamespace},
	}}}
}

// serverNamespace is the namespace of the webhook's Service, or the
// install's default when it is called through a URL.
func serverNamespace(cfg admissionregistrationv1.WebhookClientConfig) string {
	if cfg.Service != nil && cfg.Service.Namespace != "" {
		return cfg.Service.Namespace
	}
	return ServerNamespace
}

// templateOrIDChanged reports whether an update starts a release.
func templateOrIDChanged(oldMeta, newMeta metav1.Object, oldTemplate, newTemplate any) bool {
	return oldMeta.GetAnnotations()[v1beta1.RolloutIDAnnotation] != newMeta.GetAnnotations()[v1beta1.RolloutIDAnnotation] ||
		!apiequality.Semantic.DeepEqual(oldTemplate, newTemplate)
}

// heldHere reports whether an update concerns a workload already held: the
// new object carries the hold, so its held fields must stay held.
func heldHere(newMeta metav1.Object) bool {
	return workload.IsHeld(newMeta)
}
