package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// release is everything the plugin shows about one Rollout: the Rollout itself, its
// workload, the workload's revisions with their pods, and the Rollout's recent Events.
type release struct {
	Rollout  *v1beta1.Rollout `json:"rollout"`
	Workload *workloadInfo    `json:"workload,omitempty"`
	// WorkloadError says why the workload could not be read (missing, forbidden).
	WorkloadError string         `json:"workloadError,omitempty"`
	Revisions     []revisionInfo `json:"revisions"`
	Events        []eventInfo    `json:"events,omitempty"`
	// allEvents are every Event the cluster still keeps about the Rollout,
	// newest first; Events shows the most recent of them, history reads all:
	// a fast release writes more Events in its last seconds than Events shows.
	allEvents []eventInfo
	// Now is the time ages are computed from (fixed in golden tests).
	Now time.Time `json:"now"`
}

// workloadInfo is the part of a Deployment, StatefulSet or DaemonSet the plugin needs.
type workloadInfo struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Replicas   int32  `json:"replicas"`
	Generation int64  `json:"generation"`
	// Held: the webhook holds the workload for the release controller.
	Held     bool                    `json:"held"`
	Template *corev1.PodTemplateSpec `json:"-"`
	selector labels.Selector
	uid      types.UID
}

// revisionInfo is one revision of the workload: a ReplicaSet (Deployment) or a
// ControllerRevision (StatefulSet, DaemonSet).
type revisionInfo struct {
	// Number is the workload's own revision number (deployment.kubernetes.io/revision, or
	// the ControllerRevision's revision).
	Number int64 `json:"number"`
	// ID is the revision as the Rollout's status names it (pod-template-hash, or the
	// ControllerRevision's name / hash).
	ID     string   `json:"id"`
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Images []string `json:"images"`
	// Role is "stable", "canary" or "".
	Role        string                  `json:"role,omitempty"`
	Created     time.Time               `json:"created"`
	ChangeCause string                  `json:"changeCause,omitempty"`
	Pods        []podInfo               `json:"pods"`
	Template    *corev1.PodTemplateSpec `json:"-"`
}

// podInfo is one pod of a revision.
type podInfo struct {
	Name     string    `json:"name"`
	Phase    string    `json:"phase"`
	Ready    bool      `json:"ready"`
	Deleting bool      `json:"deleting"`
	Restarts int32     `json:"restarts"`
	Created  time.Time `json:"created"`
}

// eventInfo is one Event about the Rollout.
type eventInfo struct {
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
	Last    time.Time `json:"last"`
}

const (
	revisionAnnotation    = "deployment.kubernetes.io/revision"
	changeCauseAnnotation = "kubernetes.io/change-cause"
	maxEvents             = 10
)

// collect reads a Rollout and everything around it with a few GETs and LISTs.
func collect(ctx context.Context, ro versioned.Interface, kube kubernetes.Interface, ns, name string, withEvents bool) (*release, error) {
	r, err := ro.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, explain(err, "get", "rollouts", ns, name)
	}
	rel := &release{Rollout: r, Now: time.Now()}
	w, revs, err := readWorkload(ctx, kube, ns, r.Spec.WorkloadRef)
	if err != nil {
		rel.WorkloadError = err.Error()
	} else {
		rel.Workload, rel.Revisions = w, revs
		if err := attachPods(ctx, kube, ns, w, rel.Revisions); err != nil {
			rel.WorkloadError = err.Error()
		}
	}
	assignRoles(r, rel.Revisions)
	if withEvents {
		rel.allEvents = readEvents(ctx, kube, r)
		rel.Events = rel.allEvents[:min(len(rel.allEvents), maxEvents)]
	}
	return rel, nil
}

// readWorkload reads the workload a Rollout references and its revisions, newest first.
func readWorkload(ctx context.Context, kube kubernetes.Interface, ns string, ref v1beta1.ObjectRef) (*workloadInfo, []revisionInfo, error) {
	w, err := getWorkload(ctx, kube, ns, ref)
	if err != nil {
		return nil, nil, err
	}
	revs, err := readRevisions(ctx, kube, ns, w)
	return w, revs, err
}

// getWorkload reads the workload a Rollout references.
func getWorkload(ctx context.Context, kube kubernetes.Interface, ns string, ref v1beta1.ObjectRef) (*workloadInfo, error) {
	apps := kube.AppsV1()
	w := &workloadInfo{Kind: ref.Kind, Name: ref.Name}
	var sel *metav1.LabelSelector
	switch ref.Kind {
	case v1beta1.KindDeployment:
		d, err := apps.Deployments(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, explain(err, "get", "deployments", ns, ref.Name)
		}
		w.Replicas, w.Generation, w.uid, w.Template, sel = replicas(d.Spec.Replicas), d.Generation, d.UID, &d.Spec.Template, d.Spec.Selector
		w.Held = isHeld(d)
	case v1beta1.KindStatefulSet:
		s, err := apps.StatefulSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, explain(err, "get", "statefulsets", ns, ref.Name)
		}
		w.Replicas, w.Generation, w.uid, w.Template, sel = replicas(s.Spec.Replicas), s.Generation, s.UID, &s.Spec.Template, s.Spec.Selector
		w.Held = isHeld(s)
	case v1beta1.KindDaemonSet:
		d, err := apps.DaemonSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, explain(err, "get", "daemonsets", ns, ref.Name)
		}
		w.Replicas, w.Generation, w.uid, w.Template, sel = d.Status.DesiredNumberScheduled, d.Generation, d.UID, &d.Spec.Template, d.Spec.Selector
		w.Held = isHeld(d)
	default:
		return nil, fmt.Errorf("workload kind %q is not supported by this plugin", ref.Kind)
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("selector of %s %s: %w", ref.Kind, ref.Name, err)
	}
	w.selector = selector
	return w, nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func isHeld(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[v1beta1.WorkloadOriginalStrategyAnnotation]
	return ok
}

// readRevisions lists the ReplicaSets or ControllerRevisions the workload controls.
func readRevisions(ctx context.Context, kube kubernetes.Interface, ns string, w *workloadInfo) ([]revisionInfo, error) {
	opts := metav1.ListOptions{LabelSelector: w.selector.String()}
	var revs []revisionInfo
	if w.Kind == v1beta1.KindDeployment {
		list, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
		if err != nil {
			return nil, explain(err, "list", "replicasets", ns, "")
		}
		for i := range list.Items {
			rs := &list.Items[i]
			if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != w.uid {
				continue
			}
			n, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
			revs = append(revs, revisionInfo{
				Number: n, ID: rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey], Kind: "ReplicaSet", Name: rs.Name,
				Images: images(&rs.Spec.Template), Created: rs.CreationTimestamp.Time,
				ChangeCause: rs.Annotations[changeCauseAnnotation], Template: rs.Spec.Template.DeepCopy(),
			})
		}
	} else {
		list, err := kube.AppsV1().ControllerRevisions(ns).List(ctx, opts)
		if err != nil {
			return nil, explain(err, "list", "controllerrevisions", ns, "")
		}
		for i := range list.Items {
			cr := &list.Items[i]
			if ref := metav1.GetControllerOf(cr); ref == nil || ref.UID != w.uid {
				continue
			}
			tpl, err := templateOf(cr)
			if err != nil {
				return nil, err
			}
			id := cr.Name // a StatefulSet's pods name the ControllerRevision
			if w.Kind == v1beta1.KindDaemonSet {
				id = cr.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] // a DaemonSet's pods carry its hash
			}
			revs = append(revs, revisionInfo{
				Number: cr.Revision, ID: id, Kind: "ControllerRevision", Name: cr.Name,
				Images: images(tpl), Created: cr.CreationTimestamp.Time,
				ChangeCause: cr.Annotations[changeCauseAnnotation], Template: tpl,
			})
		}
	}
	sort.SliceStable(revs, func(i, j int) bool {
		if revs[i].Number != revs[j].Number {
			return revs[i].Number > revs[j].Number
		}
		return revs[i].Created.After(revs[j].Created)
	})
	return revs, nil
}

// templateOf decodes the pod template a StatefulSet's or DaemonSet's ControllerRevision
// stores: a patch of the form {"spec":{"template":{...}}}.
func templateOf(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var patch struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("decoding ControllerRevision %s: %w", cr.Name, err)
	}
	return &patch.Spec.Template, nil
}

func images(tpl *corev1.PodTemplateSpec) []string {
	var out []string
	for _, c := range tpl.Spec.Containers {
		out = append(out, c.Image)
	}
	return out
}

// podRevisionLabel is the pod label that names its revision for the workload kind.
func podRevisionLabel(kind string) string {
	if kind == v1beta1.KindDeployment {
		return appsv1.DefaultDeploymentUniqueLabelKey
	}
	return appsv1.ControllerRevisionHashLabelKey
}

// attachPods lists the workload's pods and files each under its revision.
func attachPods(ctx context.Context, kube kubernetes.Interface, ns string, w *workloadInfo, revs []revisionInfo) error {
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: w.selector.String()})
	if err != nil {
		return explain(err, "list", "pods", ns, "")
	}
	byID := map[string]int{}
	for i := range revs {
		byID[revs[i].ID] = i
	}
	label := podRevisionLabel(w.Kind)
	for i := range list.Items {
		p := &list.Items[i]
		idx, ok := byID[p.Labels[label]]
		if !ok {
			continue
		}
		revs[idx].Pods = append(revs[idx].Pods, podOf(p))
	}
	for i := range revs {
		sort.Slice(revs[i].Pods, func(a, b int) bool { return revs[i].Pods[a].Name < revs[i].Pods[b].Name })
	}
	return nil
}

func podOf(p *corev1.Pod) podInfo {
	info := podInfo{Name: p.Name, Phase: string(p.Status.Phase), Created: p.CreationTimestamp.Time, Deleting: p.DeletionTimestamp != nil}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			info.Ready = true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		info.Restarts += cs.RestartCount
	}
	return info
}

// assignRoles marks the stable and canary revisions: during a release as the Rollout's
// status names them, otherwise the newest revision is the one running (stable).
func assignRoles(r *v1beta1.Rollout, revs []revisionInfo) {
	cs := r.Status.Progress()
	if cs != nil && r.Status.Phase == v1beta1.RolloutPhaseProgressing {
		for i := range revs {
			switch revs[i].ID {
			case cs.CanaryRevision:
				revs[i].Role = "canary"
			case cs.StableRevision:
				revs[i].Role = "stable"
			}
		}
		return
	}
	if len(revs) > 0 {
		revs[0].Role = "stable"
	}
}

// currentRevision is the revision whose template the workload has now (nil if none).
func currentRevision(w *workloadInfo, revs []revisionInfo) *revisionInfo {
	for i := range revs {
		if sameTemplate(revs[i].Template, w.Template) {
			return &revs[i]
		}
	}
	return nil
}

// sameTemplate compares pod templates ignoring the labels the workload controllers add.
func sameTemplate(a, b *corev1.PodTemplateSpec) bool {
	if a == nil || b == nil {
		return false
	}
	return apiequality.Semantic.DeepEqual(withoutHashLabels(a), withoutHashLabels(b))
}

func withoutHashLabels(t *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	c := t.DeepCopy()
	delete(c.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(c.Labels, appsv1.ControllerRevisionHashLabelKey)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	return c
}

// readEvents returns the latest Events about the Rollout, newest first. Events are extra:
// a user who may not list them still sees the rest.
func readEvents(ctx context.Context, kube kubernetes.Interface, r *v1beta1.Rollout) []eventInfo {
	sel := fields.Set{"involvedObject.name": r.Name, "involvedObject.uid": string(r.UID)}.AsSelector().String()
	list, err := kube.CoreV1().Events(r.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil
	}
	var out []eventInfo
	for _, e := range list.Items {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		if last.IsZero() {
			last = e.CreationTimestamp.Time
		}
		out = append(out, eventInfo{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: max(e.Count, 1), Last: last})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out
}
