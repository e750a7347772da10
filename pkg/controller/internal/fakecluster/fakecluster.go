// Package fakecluster is a test double of a host cluster for the controller's
// unit tests: fake clientsets, listers filled from them on demand, and
// Settle, which plays kube-controller-manager (Deployment, ReplicaSet,
// StatefulSet and DaemonSet controllers) just far enough for releases to
// progress, with knobs to keep pods of a revision unready.
package fakecluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubefake "k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	rolloutfake "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/fake"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

// Namespace of every object the helpers build.
const Namespace = "default"

// Cluster is a fake host cluster plus a fake Rollout API.
type Cluster struct {
	t        testing.TB
	Kube     *kubefake.Clientset
	Rollouts *rolloutfake.Clientset
	Clock    *clocktesting.FakeClock
	Recorder *record.FakeRecorder
	Deps     *workload.Deps
	Store    *Store

	// Unready keeps up to this many pods of a revision (pod-template-hash or
	// controller-revision-hash value) unready.
	Unready map[string]int32
	// Nodes that DaemonSets run on.
	Nodes []string

	// StatusWrites is every Rollout status the fake API accepted, in order,
	// for tests that check invariants over the whole history of a release.
	StatusWrites []v1beta1.RolloutStatus

	deployments, replicaSets, statefulSets, daemonSets, revisions, pods, rollouts cache.Indexer

	rolloutVersion int
	faults         []Fault
}

// Fault is what the fake Rollout API does to one status write instead of
// answering it normally.
type Fault int

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// FaultConflict refuses the write with a 409, as if someone wrote first.
	FaultConflict
	// FaultDroppedResponse stores the write but answers with an error, as when
	// the connection breaks after the server committed: the writer does not
	// know that its write landed.
	FaultDroppedResponse
)

// FailStatusWrites queues faults for the next Rollout status writes, one
// each, in order.
func (c *Cluster) FailStatusWrites(faults ...Fault) {
	c.faults = append(c.faults, faults...)
}

// HoldFaults takes the queued faults away until the returned function puts
// them back, for a test's own writes, which the faults are not meant for.
func (c *Cluster) HoldFaults() (restore func()) {
	held := c.faults
	c.faults = nil
	return func() { c.faults = append(held, c.faults...) }
}

var rolloutResource = v1beta1.SchemeGroupVersion.WithResource("rollouts")

// rolloutWrite makes the fake Rollout API answer updates like the real one:
// a write that carries another resourceVersion than the stored one is a 409,
// and every accepted write gets a new resourceVersion. It also plays the
// faults queued by FailStatusWrites.
func (c *Cluster) rolloutWrite(action k8stesting.Action) (bool, runtime.Object, error) {
	update, ok := action.(k8stesting.UpdateAction)
	if !ok {
		return false, nil, nil
	}
	ro, ok := update.GetObject().(*v1beta1.Rollout)
	if !ok {
		return false, nil, nil
	}
	gr := rolloutResource.GroupResource()
	existing, err := c.Rollouts.Tracker().Get(rolloutResource, ro.Namespace, ro.Name)
	if err != nil {
		return true, nil, err
	}
	if ro.ResourceVersion != existing.(*v1beta1.Rollout).ResourceVersion {
		return true, nil, apierrors.NewConflict(gr, ro.Name,
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	fault := FaultNone
	if action.GetSubresource() == "status" && len(c.faults) > 0 {
		fault, c.faults = c.faults[0], c.faults[1:]
	}
	if fault == FaultConflict {
		return true, nil, apierrors.NewConflict(gr, ro.Name, fmt.Errorf("injected conflict"))
	}
	stored := ro.DeepCopy()
	c.rolloutVersion++
	stored.ResourceVersion = strconv.Itoa(c.rolloutVersion)
	if err := c.Rollouts.Tracker().Update(rolloutResource, stored, ro.Namespace); err != nil {
		return true, nil, err
	}
	if action.GetSubresource() == "status" {
		c.StatusWrites = append(c.StatusWrites, *stored.Status.DeepCopy())
	}
	if fault == FaultDroppedResponse {
		return true, nil, fmt.Errorf("injected: connection reset after the write was stored")
	}
	return true, stored.DeepCopy(), nil
}

// New returns a cluster holding objs (workloads, pods, Rollouts).
func New(t testing.TB, objs ...runtime.Object) *Cluster {
	t.Helper()
	var kubeObjs, rolloutObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*v1beta1.Rollout); ok {
			rolloutObjs = append(rolloutObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	newIndexer := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
			cache.NamespaceIndex:     cache.MetaNamespaceIndexFunc,
			workload.ControllerIndex: workload.ControllerIndexFunc,
		})
	}
	c := &Cluster{
		t:            t,
		Kube:         kubefake.NewClientset(kubeObjs...),
		Rollouts:     rolloutfake.NewClientset(rolloutObjs...),
		Clock:        clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)),
		Recorder:     record.NewFakeRecorder(10000),
		Unready:      map[string]int32{},
		Nodes:        []string{"node-a", "node-b", "node-c", "node-d"},
		deployments:  newIndexer(),
		replicaSets:  newIndexer(),
		statefulSets: newIndexer(),
		daemonSets:   newIndexer(),
		revisions:    newIndexer(),
		pods:         newIndexer(),
		rollouts:     newIndexer(),
	}
	c.Kube.PrependReactor("update", "*", c.bumpGeneration)
	for _, o := range rolloutObjs {
		// Objects from the real API always carry a resourceVersion.
		ro := o.(*v1beta1.Rollout)
		if ro.ResourceVersion == "" {
			c.rolloutVersion++
			ro.ResourceVersion = strconv.Itoa(c.rolloutVersion)
			c.must(c.Rollouts.Tracker().Update(rolloutResource, ro, ro.Namespace))
		}
	}
	c.Rollouts.PrependReactor("update", "rollouts", c.rolloutWrite)
	c.Deps = &workload.Deps{
		Kube:                c.Kube,
		Deployments:         appslisters.NewDeploymentLister(c.deployments),
		ReplicaSets:         appslisters.NewReplicaSetLister(c.replicaSets),
		StatefulSets:        appslisters.NewStatefulSetLister(c.statefulSets),
		DaemonSets:          appslisters.NewDaemonSetLister(c.daemonSets),
		ControllerRevisions: appslisters.NewControllerRevisionLister(c.revisions),
		Pods:                corelisters.NewPodLister(c.pods),
		Owned:               workload.OwnerIndexers{ReplicaSets: c.replicaSets, ControllerRevisions: c.revisions},
		Recorder:            c.Recorder,
		Expectations:        workload.NewExpectations(c.Clock),
		Clock:               c.Clock,
	}
	c.Store = &Store{lister: rolloutlisters.NewRolloutLister(c.rollouts)}
	c.Refresh()
	return c
}

func (c *Cluster) ctx() context.Context { return context.Background() }

// bumpGeneration gives an update that changes an object's spec the next
// generation, as the API server does (the fake tracker does not), so that
// the controller's expectations see stale caches in tests too.
func (c *Cluster) bumpGeneration(action k8stesting.Action) (bool, runtime.Object, error) {
	update, ok := action.(k8stesting.UpdateAction)
	if !ok || action.GetSubresource() != "" {
		return false, nil, nil
	}
	obj, ok := update.GetObject().(metav1.Object)
	if !ok {
		return false, nil, nil
	}
	existing, err := c.Kube.Tracker().Get(action.GetResource(), action.GetNamespace(), obj.GetName())
	if err != nil {
		return false, nil, nil
	}
	old, ok := existing.(metav1.Object)
	if !ok {
		return false, nil, nil
	}
	spec := func(o any) string {
		raw, _ := json.Marshal(o)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		return string(m["spec"])
	}
	generation := old.GetGeneration()
	if spec(existing) != spec(update.GetObject()) {
		generation++
	}
	obj.SetGeneration(generation)
	return false, nil, nil
}

// Refresh fills the listers from the fake clientsets, as informers would.
func (c *Cluster) Refresh() {
	c.t.Helper()
	ctx, opts := c.ctx(), metav1.ListOptions{}
	replace := func(idx cache.Indexer, items []any) {
		if err := idx.Replace(items, ""); err != nil {
			c.t.Fatalf("refreshing cache: %v", err)
		}
	}
	ds, err := c.Kube.AppsV1().Deployments("").List(ctx, opts)
	c.must(err)
	replace(c.deployments, ptrs(ds.Items))
	rss, err := c.Kube.AppsV1().ReplicaSets("").List(ctx, opts)
	c.must(err)
	replace(c.replicaSets, ptrs(rss.Items))
	sts, err := c.Kube.AppsV1().StatefulSets("").List(ctx, opts)
	c.must(err)
	replace(c.statefulSets, ptrs(sts.Items))
	dss, err := c.Kube.AppsV1().DaemonSets("").List(ctx, opts)
	c.must(err)
	replace(c.daemonSets, ptrs(dss.Items))
	crs, err := c.Kube.AppsV1().ControllerRevisions("").List(ctx, opts)
	c.must(err)
	replace(c.revisions, ptrs(crs.Items))
	pods, err := c.Kube.CoreV1().Pods("").List(ctx, opts)
	c.must(err)
	replace(c.pods, ptrs(pods.Items))
	ros, err := c.Rollouts.RolloutV1beta1().Rollouts("").List(ctx, opts)
	c.must(err)
	replace(c.rollouts, ptrs(ros.Items))
}

// RefreshRollouts fills only the Rollout lister, leaving the workload caches
// behind as a slow informer would.
func (c *Cluster) RefreshRollouts() {
	c.t.Helper()
	ros, err := c.Rollouts.RolloutV1beta1().Rollouts("").List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	if err := c.rollouts.Replace(ptrs(ros.Items), ""); err != nil {
		c.t.Fatalf("refreshing cache: %v", err)
	}
}

func ptrs[T any](items []T) []any {
	out := make([]any, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func (c *Cluster) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("fake cluster: %v", err)
	}
}

// Store implements the step machine's Rollout store over the fake lister.
type Store struct {
	lister rolloutlisters.RolloutLister
}

// Get returns a Rollout from the cache.
func (s *Store) Get(namespace, name string) (*v1beta1.Rollout, error) {
	return s.lister.Rollouts(namespace).Get(name)
}

// Referencing returns the Rollouts of a namespace from the cache (a
// superset, as release.Store allows).
func (s *Store) Referencing(namespace, kind, name string) ([]*v1beta1.Rollout, error) {
	return workload.ListerLookup(s.lister)(namespace, kind, name)
}

// Written is a no-op: tests Refresh after every reconcile.
func (s *Store) Written(*v1beta1.Rollout) {}

// Settled is a no-op: tests reconcile until nothing changes, echoes or not.
func (s *Store) Settled(*v1beta1.Rollout) {}

// Rollout reads a Rollout from the fake API.
func (c *Cluster) Rollout(name string) *v1beta1.Rollout {
	c.t.Helper()
	ro, err := c.Rollouts.RolloutV1beta1().Rollouts(Namespace).Get(c.ctx(), name, metav1.GetOptions{})
	c.must(err)
	return ro
}

// UpdateRollout writes a Rollout (spec and status) to the fake API.
func (c *Cluster) UpdateRollout(ro *v1beta1.Rollout) {
	c.t.Helper()
	_, err := c.Rollouts.RolloutV1beta1().Rollouts(ro.Namespace).Update(c.ctx(), ro, metav1.UpdateOptions{})
	c.must(err)
	c.Refresh()
}

// WorkloadFingerprint is a text that changes whenever a workload's spec,
// labels or annotations change, for tests that wait until nothing moves.
func (c *Cluster) WorkloadFingerprint() string {
	c.t.Helper()
	type shape struct {
		Meta metav1.ObjectMeta
		Spec any
	}
	var all []shape
	for _, d := range c.listDeployments() {
		all = append(all, shape{Meta: metav1.ObjectMeta{Name: d.Name, Labels: d.Labels, Annotations: d.Annotations}, Spec: d.Spec})
	}
	for _, s := range c.listStatefulSets() {
		all = append(all, shape{Meta: metav1.ObjectMeta{Name: s.Name, Labels: s.Labels, Annotations: s.Annotations}, Spec: s.Spec})
	}
	for _, ds := range c.listDaemonSets() {
		all = append(all, shape{Meta: metav1.ObjectMeta{Name: ds.Name, Labels: ds.Labels, Annotations: ds.Annotations}, Spec: ds.Spec})
	}
	raw, err := json.Marshal(all)
	c.must(err)
	return string(raw)
}

// Deployment reads a Deployment.
func (c *Cluster) Deployment(name string) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.Kube.AppsV1().Deployments(Namespace).Get(c.ctx(), name, metav1.GetOptions{})
	c.must(err)
	return d
}

// StatefulSet reads a StatefulSet.
func (c *Cluster) StatefulSet(name string) *appsv1.StatefulSet {
	c.t.Helper()
	s, err := c.Kube.AppsV1().StatefulSets(Namespace).Get(c.ctx(), name, metav1.GetOptions{})
	c.must(err)
	return s
}

// DaemonSet reads a DaemonSet.
func (c *Cluster) DaemonSet(name string) *appsv1.DaemonSet {
	c.t.Helper()
	ds, err := c.Kube.AppsV1().DaemonSets(Namespace).Get(c.ctx(), name, metav1.GetOptions{})
	c.must(err)
	return ds
}

// ReplicaSets lists the ReplicaSets of Deployment name by revision hash.
func (c *Cluster) ReplicaSets(name string) map[string]*appsv1.ReplicaSet {
	c.t.Helper()
	d := c.Deployment(name)
	list, err := c.Kube.AppsV1().ReplicaSets(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := map[string]*appsv1.ReplicaSet{}
	for i := range list.Items {
		rs := &list.Items[i]
		if workload.IsControlledBy(rs, d.UID) {
			out[rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]] = rs
		}
	}
	return out
}

// ReplicaSetSizes is spec.replicas of every ReplicaSet by name, to tell
// whether a pass of the controller changed anything.
func (c *Cluster) ReplicaSetSizes() map[string]int32 {
	c.t.Helper()
	list, err := c.Kube.AppsV1().ReplicaSets(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := map[string]int32{}
	for i := range list.Items {
		if r := list.Items[i].Spec.Replicas; r != nil {
			out[list.Items[i].Name] = *r
		}
	}
	return out
}

// Pods lists live pods of a workload by revision label value.
func (c *Cluster) Pods(owner types.UID, label string) map[string]int32 {
	c.t.Helper()
	list, err := c.Kube.CoreV1().Pods(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := map[string]int32{}
	for i := range list.Items {
		if workload.IsControlledBy(&list.Items[i], owner) {
			out[list.Items[i].Labels[label]]++
		}
	}
	return out
}

// Events drains the recorded Events and returns their reasons in order.
func (c *Cluster) Events() []string {
	var reasons []string
	for {
		select {
		case e := <-c.Recorder.Events:
			// FakeRecorder formats "<type> <reason> <message>".
			parts := strings.SplitN(e, " ", 3)
			if len(parts) > 1 {
				reasons = append(reasons, parts[1])
			}
		default:
			return reasons
		}
	}
}

// ---- objects -------------------------------------------------------------

// Template is a pod template running image.
func Template(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image}}},
	}
}

// NewDeployment returns a Deployment with a RollingUpdate strategy.
func NewDeployment(name, image string, replicas int32, maxSurge, maxUnavailable string) *appsv1.Deployment {
	surge, unavailable := intstr.Parse(maxSurge), intstr.Parse(maxUnavailable)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: Template(name, image),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
		},
	}
}

// NewStatefulSet returns a StatefulSet with a RollingUpdate strategy.
func NewStatefulSet(name, image string, replicas int32) *appsv1.StatefulSet {
	zero := int32(0)
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: Template(name, image),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero},
			},
		},
	}
}

// NewDaemonSet returns a DaemonSet with a RollingUpdate strategy.
func NewDaemonSet(name, image string, maxUnavailable string) *appsv1.DaemonSet {
	unavailable := intstr.Parse(maxUnavailable)
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, UID: types.UID("uid-" + name), Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: Template(name, image),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &unavailable},
			},
		},
	}
}

// NewRollout returns a canary Rollout of a workload with the given steps.
func NewRollout(name, kind, workloadName string, steps ...v1beta1.CanaryStep) *v1beta1.Rollout {
	return &v1beta1.Rollout{
		TypeMeta: metav1.TypeMeta{APIVersion: "rollout.kruise.io/v1beta1", Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: Namespace, UID: types.UID("uid-rollout-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: kind, Name: workloadName},
			Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: steps}},
		},
	}
}

// Step is a step of replicas ("20%" or "3") with an optional pause in
// seconds (negative: wait for promote).
func Step(replicas string, pauseSeconds int32) v1beta1.CanaryStep {
	r := intstr.Parse(replicas)
	s := v1beta1.CanaryStep{Replicas: &r}
	if pauseSeconds >= 0 {
		s.Pause.Duration = &pauseSeconds
	}
	return s
}

// ---- what the API server and the webhook do on a workload update ----------

// SetImage changes a workload's image the way a user's update arrives after
// the workload webhook: held when hold is true (a Rollout references it).
func (c *Cluster) SetImage(kind, name, image string, hold bool) {
	c.t.Helper()
	ctx := c.ctx()
	switch kind {
	case v1beta1.KindDeployment:
		old := c.Deployment(name)
		d := old.DeepCopy()
		d.Spec.Template.Spec.Containers[0].Image = image
		d.Generation++
		if hold {
			_, err := workload.HoldDeployment(old, d)
			c.must(err)
		}
		_, err := c.Kube.AppsV1().Deployments(Namespace).Update(ctx, d, metav1.UpdateOptions{})
		c.must(err)
	case v1beta1.KindStatefulSet:
		old := c.StatefulSet(name)
		s := old.DeepCopy()
		s.Spec.Template.Spec.Containers[0].Image = image
		s.Generation++
		if hold {
			_, err := workload.HoldStatefulSet(old, s, true)
			c.must(err)
		}
		_, err := c.Kube.AppsV1().StatefulSets(Namespace).Update(ctx, s, metav1.UpdateOptions{})
		c.must(err)
	case v1beta1.KindDaemonSet:
		old := c.DaemonSet(name)
		ds := old.DeepCopy()
		ds.Spec.Template.Spec.Containers[0].Image = image
		ds.Generation++
		if hold {
			_, err := workload.HoldDaemonSet(old, ds)
			c.must(err)
		}
		_, err := c.Kube.AppsV1().DaemonSets(Namespace).Update(ctx, ds, metav1.UpdateOptions{})
		c.must(err)
	}
	c.Refresh()
}

// ---- kube-controller-manager --------------------------------------------

// Settle runs the simulated workload controllers until nothing changes.
func (c *Cluster) Settle() {
	c.t.Helper()
	for range 10 {
		changed := false
		for _, d := range c.listDeployments() {
			changed = c.syncDeployment(d) || changed
		}
		for _, s := range c.listStatefulSets() {
			changed = c.syncStatefulSet(s) || changed
		}
		for _, ds := range c.listDaemonSets() {
			changed = c.syncDaemonSet(ds) || changed
		}
		c.Refresh()
		if !changed {
			return
		}
	}
}

func (c *Cluster) listDeployments() []*appsv1.Deployment {
	list, err := c.Kube.AppsV1().Deployments(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := make([]*appsv1.Deployment, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

func (c *Cluster) listStatefulSets() []*appsv1.StatefulSet {
	list, err := c.Kube.AppsV1().StatefulSets(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := make([]*appsv1.StatefulSet, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

func (c *Cluster) listDaemonSets() []*appsv1.DaemonSet {
	list, err := c.Kube.AppsV1().DaemonSets(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := make([]*appsv1.DaemonSet, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

func (c *Cluster) unready(revision string, n int32) int32 {
	return min(c.Unready[revision], n)
}

// syncDeployment plays the Deployment and ReplicaSet controllers: an
// unpaused Deployment rolls out at once; a paused one only has a single
// active ReplicaSet scaled to spec.replicas (as the real one does); every
// ReplicaSet's pods appear at once and are ready unless Unready says so.
func (c *Cluster) syncDeployment(d *appsv1.Deployment) bool {
	ctx := c.ctx()
	changed := false
	rss := c.ReplicaSets(d.Name)
	replicas := *d.Spec.Replicas
	var current *appsv1.ReplicaSet
	for _, rs := range rss {
		if workload.EqualIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			current = rs
		}
	}
	if !d.Spec.Paused {
		if current == nil {
			hash := workload.ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
			tmpl := d.Spec.Template.DeepCopy()
			tmpl.Labels = maps.Clone(tmpl.Labels)
			tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
			sel := d.Spec.Selector.DeepCopy()
			sel.MatchLabels = maps.Clone(sel.MatchLabels)
			sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
			zero := int32(0)
			rs := &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{
					Name: d.Name + "-" + hash, Namespace: Namespace, UID: types.UID("uid-rs-" + d.Name + "-" + hash),
					Labels:          tmpl.Labels,
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
					Annotations:     map[string]string{"deployment.kubernetes.io/revision": strconv.Itoa(len(rss) + 1)},
				},
				Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: sel, Template: *tmpl},
			}
			created, err := c.Kube.AppsV1().ReplicaSets(Namespace).Create(ctx, rs, metav1.CreateOptions{})
			c.must(err)
			rss[hash], current, changed = created, created, true
		}
		for _, rs := range rss {
			want := int32(0)
			if rs.Name == current.Name {
				want = replicas
			}
			if *rs.Spec.Replicas != want {
				rs.Spec.Replicas = &want
				_, err := c.Kube.AppsV1().ReplicaSets(Namespace).Update(ctx, rs, metav1.UpdateOptions{})
				c.must(err)
				changed = true
			}
		}
	} else {
		var active []*appsv1.ReplicaSet
		for _, rs := range rss {
			if *rs.Spec.Replicas > 0 {
				active = append(active, rs)
			}
		}
		if len(active) == 1 && *active[0].Spec.Replicas != replicas {
			active[0].Spec.Replicas = &replicas
			_, err := c.Kube.AppsV1().ReplicaSets(Namespace).Update(ctx, active[0], metav1.UpdateOptions{})
			c.must(err)
			changed = true
		}
		// As the real one does for a paused Deployment too: a saturated new
		// ReplicaSet (every replica, available, and its desired-replicas
		// annotation saying so) scales every other one to 0.
		if current != nil && len(active) > 1 && *current.Spec.Replicas == replicas &&
			current.Annotations["deployment.kubernetes.io/desired-replicas"] == strconv.Itoa(int(replicas)) &&
			current.Status.AvailableReplicas == replicas {
			for _, rs := range active {
				if rs.Name != current.Name {
					zero := int32(0)
					rs.Spec.Replicas = &zero
					_, err := c.Kube.AppsV1().ReplicaSets(Namespace).Update(ctx, rs, metav1.UpdateOptions{})
					c.must(err)
					changed = true
				}
			}
		}
	}
	// ReplicaSet controller: status follows spec.
	var updated, available, total int32
	for _, rs := range c.ReplicaSets(d.Name) {
		spec := *rs.Spec.Replicas
		avail := spec - c.unready(rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey], spec)
		if rs.Status.Replicas != spec || rs.Status.AvailableReplicas != avail || rs.Status.ReadyReplicas != avail || rs.Status.ObservedGeneration != rs.Generation {
			rs.Status = appsv1.ReplicaSetStatus{Replicas: spec, ReadyReplicas: avail, AvailableReplicas: avail, ObservedGeneration: rs.Generation}
			_, err := c.Kube.AppsV1().ReplicaSets(Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
			c.must(err)
			changed = true
		}
		total += spec
		available += avail
		if current != nil && rs.Name == current.Name {
			updated = spec
		}
	}
	status := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available, ReadyReplicas: available}
	if d.Status.ObservedGeneration != status.ObservedGeneration || d.Status.Replicas != total || d.Status.UpdatedReplicas != updated || d.Status.AvailableReplicas != available {
		d.Status = status
		_, err := c.Kube.AppsV1().Deployments(Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		c.must(err)
		changed = true
	}
	return changed
}

// revisionData is a ControllerRevision's data: the template as a strategic
// merge patch, as the StatefulSet and DaemonSet controllers store it.
func revisionData(template corev1.PodTemplateSpec) runtime.RawExtension {
	raw, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": template}})
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["spec"].(map[string]any)["template"].(map[string]any)["$patch"] = "replace"
	raw, _ = json.Marshal(m)
	return runtime.RawExtension{Raw: raw}
}

// ensureRevision returns the ControllerRevision of template for owner,
// creating it, or making an older equal one the newest (as a revert does).
func (c *Cluster) ensureRevision(owner metav1.Object, kind string, template corev1.PodTemplateSpec) (*appsv1.ControllerRevision, bool) {
	ctx := c.ctx()
	hash := workload.ComputeHash(&template, nil)
	list, err := c.Kube.AppsV1().ControllerRevisions(Namespace).List(ctx, metav1.ListOptions{})
	c.must(err)
	var mine []*appsv1.ControllerRevision
	var maxRevision int64
	for i := range list.Items {
		if workload.IsControlledBy(&list.Items[i], owner.GetUID()) {
			mine = append(mine, &list.Items[i])
			maxRevision = max(maxRevision, list.Items[i].Revision)
		}
	}
	for _, cr := range mine {
		if cr.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
			if cr.Revision == maxRevision {
				return cr, false
			}
			cr.Revision = maxRevision + 1
			updated, err := c.Kube.AppsV1().ControllerRevisions(Namespace).Update(ctx, cr, metav1.UpdateOptions{})
			c.must(err)
			return updated, true
		}
	}
	gvk := appsv1.SchemeGroupVersion.WithKind(kind)
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: owner.GetName() + "-" + hash, Namespace: Namespace,
			Labels:          map[string]string{appsv1.ControllerRevisionHashLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)},
		},
		Data:     revisionData(template),
		Revision: maxRevision + 1,
	}
	created, err := c.Kube.AppsV1().ControllerRevisions(Namespace).Create(ctx, cr, metav1.CreateOptions{})
	c.must(err)
	return created, true
}

func (c *Cluster) ownedPods(uid types.UID) map[string]*corev1.Pod {
	list, err := c.Kube.CoreV1().Pods(Namespace).List(c.ctx(), metav1.ListOptions{})
	c.must(err)
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		if workload.IsControlledBy(&list.Items[i], uid) {
			out[list.Items[i].Name] = &list.Items[i]
		}
	}
	return out
}

// putPod creates or relabels a pod onto revision, ready unless Unready holds it back.
func (c *Cluster) putPod(owner metav1.Object, kind string, pod *corev1.Pod, name, node string, labels map[string]string, revision string, readySoFar map[string]int32) bool {
	ready := readySoFar[revision] >= c.Unready[revision]
	readySoFar[revision]++
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	want := maps.Clone(labels)
	want[appsv1.ControllerRevisionHashLabelKey] = revision
	if pod != nil && pod.Labels[appsv1.ControllerRevisionHashLabelKey] == revision &&
		len(pod.Status.Conditions) == 1 && pod.Status.Conditions[0].Status == status {
		return false
	}
	newPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: Namespace, UID: types.UID("uid-pod-" + name + "-" + revision), Labels: want,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind(kind))},
		},
		Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(c.Clock.Now().Add(-time.Hour)),
		}}},
	}
	if pod != nil {
		c.must(c.Kube.CoreV1().Pods(Namespace).Delete(c.ctx(), name, metav1.DeleteOptions{}))
	}
	_, err := c.Kube.CoreV1().Pods(Namespace).Create(c.ctx(), newPod, metav1.CreateOptions{})
	c.must(err)
	return true
}

// syncStatefulSet plays the StatefulSet controller: ordinals at or above the
// partition run the update revision, the others keep theirs.
func (c *Cluster) syncStatefulSet(s *appsv1.StatefulSet) bool {
	cr, changed := c.ensureRevision(s, "StatefulSet", s.Spec.Template)
	update := cr.Name
	current := s.Status.CurrentRevision
	if current == "" {
		current = update
	}
	replicas := workload.StatefulSetReplicas(s)
	partition := workload.HeldPartition(s)
	onDelete := s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType
	pods := c.ownedPods(s.UID)
	readySoFar := map[string]int32{}
	var updated, ready int32
	allUpdated := true
	for i := int32(0); i < replicas; i++ {
		name := fmt.Sprintf("%s-%d", s.Name, i)
		pod := pods[name]
		rev := current
		if pod != nil {
			rev = pod.Labels[appsv1.ControllerRevisionHashLabelKey]
		}
		if !onDelete && i >= partition {
			rev = update
		}
		if pod == nil && onDelete {
			rev = update
		}
		changed = c.putPod(s, "StatefulSet", pod, name, "", s.Spec.Template.Labels, rev, readySoFar) || changed
		if rev == update {
			updated++
		} else {
			allUpdated = false
		}
		if readySoFar[rev] > c.Unready[rev] {
			ready++
		}
	}
	for name, pod := range pods {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, s.Name+"-")); err == nil && int32(n) >= replicas {
			c.must(c.Kube.CoreV1().Pods(Namespace).Delete(c.ctx(), pod.Name, metav1.DeleteOptions{}))
			changed = true
		}
	}
	if allUpdated {
		current = update
	}
	status := appsv1.StatefulSetStatus{
		ObservedGeneration: s.Generation, Replicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready,
		UpdatedReplicas: updated, CurrentRevision: current, UpdateRevision: update,
	}
	if !apiequality.Semantic.DeepEqual(s.Status, status) {
		s.Status = status
		_, err := c.Kube.AppsV1().StatefulSets(Namespace).UpdateStatus(c.ctx(), s, metav1.UpdateOptions{})
		c.must(err)
		changed = true
	}
	return changed
}

// syncDaemonSet plays the DaemonSet controller: one pod per node; a missing
// pod is created on the newest revision; RollingUpdate replaces old pods at
// once, OnDelete never does.
func (c *Cluster) syncDaemonSet(ds *appsv1.DaemonSet) bool {
	cr, changed := c.ensureRevision(ds, "DaemonSet", ds.Spec.Template)
	update := cr.Labels[appsv1.ControllerRevisionHashLabelKey]
	pods := c.ownedPods(ds.UID)
	byNode := map[string]*corev1.Pod{}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = p
	}
	readySoFar := map[string]int32{}
	nodes := append([]string(nil), c.Nodes...)
	sort.Strings(nodes)
	var updated, available int32
	for _, node := range nodes {
		pod := byNode[node]
		rev := update
		if pod != nil && ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			rev = pod.Labels[appsv1.ControllerRevisionHashLabelKey]
		}
		changed = c.putPod(ds, "DaemonSet", pod, ds.Name+"-"+node, node, ds.Spec.Template.Labels, rev, readySoFar) || changed
		if rev == update {
			updated++
		}
		if readySoFar[rev] > c.Unready[rev] {
			available++
		}
	}
	n := int32(len(nodes))
	status := appsv1.DaemonSetStatus{
		ObservedGeneration: ds.Generation, DesiredNumberScheduled: n, CurrentNumberScheduled: n,
		UpdatedNumberScheduled: updated, NumberAvailable: available, NumberReady: available,
	}
	if !apiequality.Semantic.DeepEqual(ds.Status, status) {
		ds.Status = status
		_, err := c.Kube.AppsV1().DaemonSets(Namespace).UpdateStatus(c.ctx(), ds, metav1.UpdateOptions{})
		c.must(err)
		changed = true
	}
	return changed
}

// DeletePodOfNode removes a DaemonSet pod outright (as if evicted).
func (c *Cluster) DeletePodOfNode(ds, node string) {
	err := c.Kube.CoreV1().Pods(Namespace).Delete(c.ctx(), ds+"-"+node, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		c.must(err)
	}
	c.Refresh()
}
