package e2e

// Shared helpers of the release scenarios (release_*_test.go). Each scenario runs in its own
// namespace against the one rollout-apiserver that releaseEnvironment starts, and reads as a
// story:
//
//	s := newScenario(t)
//	s.givenDeployment("web", 10)
//	s.givenRollout([]v1beta1.CanaryStep{step("20%"), step("50%", 5), step("100%")})
//	s.updateImage("app:v2")
//	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
//	s.expectPods(pods{"app:v2": 2, "app:v1": 8})
//	s.promote()
//	...
//
// A podWatcher observes every pod of the namespace and the Rollout from the moment the
// workload is created until the scenario ends, and checks at every observed moment that the
// pods of the revision being released never exceed the target of the step the release may be
// at, and that the live pods (not being deleted) never exceed replicas + maxSurge (see
// podWatcher for the details). Its violations fail the test at the end.
//
// How a revision is identified differs by kind, and the helpers follow the workload
// controllers exactly:
//   - Deployment: a pod's pod-template-hash label names its ReplicaSet's template; the
//     revision of an image is the pod-template-hash label of the ReplicaSet (of the Deployment,
//     or of its extra canary Deployment) whose template runs that image;
//   - StatefulSet: a pod's controller-revision-hash label is the *name* of a ControllerRevision
//     of the StatefulSet;
//   - DaemonSet: a pod's controller-revision-hash label is the ControllerRevision's own
//     controller-revision-hash label (the hash alone, without the DaemonSet's name).
//
// Images are the test's names for revisions ("app:v1", "app:v2"): every helper resolves an
// image to its revision label through the workload's ReplicaSets or ControllerRevisions, and
// the watcher checks that all pods with one revision label run one image.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	rolloutinformers "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/informers/externalversions"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// Values the controller writes that the scenarios look for (pkg/controller/...; repeated
// here so the tests do not import the controller).
const (
	rolloutFinalizer     = "rollout.kruise.io/release"
	canaryWorkloadLabel  = "rollout.kruise.io/canary-workload"
	reasonCancelled      = "Cancelled"
	stableImage          = "app:v1"
	waitTimeout          = 2 * time.Minute
	pollInterval         = 150 * time.Millisecond
	serverStartupTimeout = 3 * time.Minute
)

// ---------------------------------------------------------------------------------------
// The server all release scenarios share.

type releaseEnv struct {
	c      *framework.Cluster
	server *framework.Server
	ro     versioned.Interface
}

var (
	relOnce sync.Once
	relEnv  *releaseEnv
	relErr  error
)

// releaseEnvironment starts rollout-apiserver (once per test process) registered through the
// APIServices and the workload webhook. One replica: leader election off, so a Lease left by a
// server killed in an earlier run never delays the controller.
func releaseEnvironment(t *testing.T) *releaseEnv {
	t.Helper()
	relOnce.Do(func() {
		c := framework.Get()
		ctx, cancel := context.WithTimeout(context.Background(), serverStartupTimeout)
		defer cancel()
		s, err := c.StartServer(ctx, framework.ServerOptions{ExtraArgs: []string{"--leader-elect=false", "--v=2"}})
		if err != nil {
			relErr = fmt.Errorf("start rollout-apiserver: %w", err)
			return
		}
		client, err := versioned.NewForConfig(c.Config) // through the aggregator, like kubectl
		if err != nil {
			relErr = err
			return
		}
		relEnv = &releaseEnv{c: c, server: s, ro: client}
	})
	if relErr != nil {
		t.Fatalf("release environment: %v", relErr)
	}
	if !relEnv.server.Running() {
		// A test that needs a server of its own (the surface and robustness
		// tests) may have stopped this one; start it again, registered.
		ctx, cancel := context.WithTimeout(context.Background(), serverStartupTimeout)
		defer cancel()
		if err := relEnv.server.Start(ctx); err != nil {
			t.Fatalf("rollout-apiserver is not running and did not start again: %v; log %s:\n%s", err, relEnv.server.LogPath(), relEnv.server.LogTail(40))
		}
	}
	return relEnv
}

// ---------------------------------------------------------------------------------------
// Scenario: one namespace, one workload, one Rollout, one watcher.

type scenario struct {
	t     *testing.T
	env   *releaseEnv
	ns    string
	start time.Time

	kind     string // v1beta1.KindDeployment, KindStatefulSet, KindDaemonSet
	name     string // workload and Rollout name
	replicas int32
	surge    int32
	// original is the workload's strategy as stored after creation (Deployment:
	// spec.strategy; StatefulSet/DaemonSet: spec.updateStrategy), compared at the end.
	original any
	extra    bool // enableExtraWorkloadForCanary

	w *podWatcher
}

// newScenario gives the scenario its namespace and the shared server.
func newScenario(t *testing.T) *scenario {
	return newScenarioOn(t, releaseEnvironment(t))
}

// newScenarioOn gives the scenario its namespace on env, a server some test started
// with flags of its own (the metric-gating tests).
func newScenarioOn(t *testing.T, env *releaseEnv) *scenario {
	s := &scenario{t: t, env: env, ns: env.c.NewNamespace(t), start: time.Now()}
	t.Logf("namespace %s", s.ns)
	t.Cleanup(func() { t.Logf("scenario took %s", time.Since(s.start).Round(100*time.Millisecond)) })
	return s
}

func (s *scenario) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (s *scenario) logf(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("+%5.1fs %s", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// eventually polls cond until it holds; on timeout it fails with the last state and the
// whole picture (Rollout status, workload, pods, events, server log).
func (s *scenario) eventually(timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := s.ctx()
		ok, state := cond(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s\nlast state: %s\n%s", timeout, what, state, s.describe())
		}
		time.Sleep(pollInterval)
	}
}

// consistently checks cond for the whole duration and fails at the first time it does not hold.
func (s *scenario) consistently(d time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	s.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		ctx, cancel := s.ctx()
		ok, state := cond(ctx)
		cancel()
		if !ok {
			s.t.Fatalf("expected %s for %s, but after %s: %s\n%s", what, d, d-time.Until(end).Round(100*time.Millisecond), state, s.describe())
		}
		time.Sleep(pollInterval)
	}
}

// ---------------------------------------------------------------------------------------
// Workloads.

func podTemplate(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			// kwok never pulls or runs images; the image only names the revision.
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
}

// givenDeployment creates a Deployment on stableImage with a RollingUpdate strategy of
// maxSurge 25% / maxUnavailable 0 and waits until all its pods are available.
func (s *scenario) givenDeployment(name string, replicas int32) *appsv1.Deployment {
	s.t.Helper()
	surge, unavailable := intstr.FromString("25%"), intstr.FromInt32(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, stableImage),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
		},
	}
	s.kind, s.name, s.replicas = v1beta1.KindDeployment, name, replicas
	n, _ := intstr.GetScaledValueFromIntOrPercent(&surge, int(replicas), true)
	s.surge = int32(n)
	s.w = startPodWatcher(s)
	ctx, cancel := s.ctx()
	defer cancel()
	created, err := s.env.c.Client.AppsV1().Deployments(s.ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create Deployment %s: %v", name, err)
	}
	s.original = *created.Spec.Strategy.DeepCopy()
	s.eventually(waitTimeout, fmt.Sprintf("Deployment %s available with %d pods", name, replicas), func(ctx context.Context) (bool, string) {
		d, err := s.env.c.Client.AppsV1().Deployments(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.Replicas == replicas && st.UpdatedReplicas == replicas && st.AvailableReplicas == replicas,
			fmt.Sprintf("%+v", st)
	})
	s.logf("Deployment %s: %d pods on %s", name, replicas, stableImage)
	return created
}

// givenStatefulSet creates a StatefulSet (parallel pod management, RollingUpdate partition 0)
// and waits until all its pods are ready on one revision.
func (s *scenario) givenStatefulSet(name string, replicas int32) *appsv1.StatefulSet {
	s.t.Helper()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:            podTemplate(name, stableImage),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)},
			},
		},
	}
	s.kind, s.name, s.replicas, s.surge = v1beta1.KindStatefulSet, name, replicas, 0
	s.w = startPodWatcher(s)
	ctx, cancel := s.ctx()
	defer cancel()
	created, err := s.env.c.Client.AppsV1().StatefulSets(s.ns).Create(ctx, sts, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create StatefulSet %s: %v", name, err)
	}
	s.original = *created.Spec.UpdateStrategy.DeepCopy()
	s.eventually(waitTimeout, fmt.Sprintf("StatefulSet %s ready with %d pods", name, replicas), func(ctx context.Context) (bool, string) {
		sts, err := s.env.c.Client.AppsV1().StatefulSets(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := sts.Status
		return st.ObservedGeneration >= sts.Generation && st.ReadyReplicas == replicas && st.AvailableReplicas == replicas &&
			st.UpdatedReplicas == replicas && st.CurrentRevision == st.UpdateRevision, fmt.Sprintf("%+v", st)
	})
	s.logf("StatefulSet %s: %d pods on %s", name, replicas, stableImage)
	return created
}

// givenDaemonSet creates a DaemonSet (RollingUpdate maxUnavailable 1, maxSurge 0) and waits
// until it runs an available pod on every one of the cluster's kwok nodes.
func (s *scenario) givenDaemonSet(name string) *appsv1.DaemonSet {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	nodes, err := s.env.c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
	if err != nil {
		s.t.Fatalf("list nodes: %v", err)
	}
	replicas := int32(len(nodes.Items))
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, stableImage),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero},
			},
		},
	}
	s.kind, s.name, s.replicas, s.surge = v1beta1.KindDaemonSet, name, replicas, 0
	s.w = startPodWatcher(s)
	created, err := s.env.c.Client.AppsV1().DaemonSets(s.ns).Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create DaemonSet %s: %v", name, err)
	}
	s.original = *created.Spec.UpdateStrategy.DeepCopy()
	s.eventually(waitTimeout, fmt.Sprintf("DaemonSet %s available on %d nodes", name, replicas), func(ctx context.Context) (bool, string) {
		ds, err := s.env.c.Client.AppsV1().DaemonSets(s.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := ds.Status
		return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled == replicas && st.NumberAvailable == replicas &&
			st.UpdatedNumberScheduled == replicas, fmt.Sprintf("%+v", st)
	})
	s.logf("DaemonSet %s: %d pods (one per kwok node) on %s", name, replicas, stableImage)
	return created
}

// ---------------------------------------------------------------------------------------
// Rollouts.

// step is a canary step of replicas ("20%"); with a pause in seconds it waits that long once
// ready, without one it waits for promote.
func step(replicas string, pauseSeconds ...int32) v1beta1.CanaryStep {
	r := intstr.Parse(replicas)
	st := v1beta1.CanaryStep{Replicas: &r}
	if len(pauseSeconds) > 0 {
		st.Pause.Duration = ptr.To(pauseSeconds[0])
	}
	return st
}

type rolloutOption func(*v1beta1.Rollout)

func withExtraCanaryWorkload() rolloutOption {
	return func(ro *v1beta1.Rollout) { ro.Spec.Strategy.Canary.EnableExtraWorkloadForCanary = true }
}

// withAbortRewritesTemplate opts into the abort that writes the stable template back.
func withAbortRewritesTemplate() rolloutOption {
	return func(ro *v1beta1.Rollout) { ro.Spec.Strategy.AbortRewritesTemplate = true }
}

func withProgressDeadline(seconds int32) rolloutOption {
	return func(ro *v1beta1.Rollout) { ro.Spec.ProgressDeadlineSeconds = ptr.To(seconds) }
}

// givenRollout creates the Rollout of the scenario's workload and waits until the controller
// has taken it on: finalizer, control label on the workload (so the webhook sees its
// updates), phase Healthy.
func (s *scenario) givenRollout(steps []v1beta1.CanaryStep, opts ...rolloutOption) *v1beta1.Rollout {
	s.t.Helper()
	ro := &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.ns},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: s.kind, Name: s.name},
			Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: steps}},
		},
	}
	for _, o := range opts {
		o(ro)
	}
	return s.adoptRollout(func(ctx context.Context) (*v1beta1.Rollout, error) {
		return s.env.ro.RolloutV1beta1().Rollouts(s.ns).Create(ctx, ro, metav1.CreateOptions{})
	})
}

// adoptRollout creates the scenario's Rollout with create (in whatever version
// and shape), tells the pod watcher the plan as the server stored it, and waits
// until the controller has taken the Rollout on.
func (s *scenario) adoptRollout(create func(ctx context.Context) (*v1beta1.Rollout, error)) *v1beta1.Rollout {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	created, err := create(ctx)
	if err != nil {
		s.t.Fatalf("create Rollout %s: %v", s.name, err)
	}
	var steps []v1beta1.CanaryStep
	if bg := created.Spec.Strategy.BlueGreen; bg != nil {
		steps = bg.Steps
		s.w.releasesBlueGreen()
	} else {
		steps = created.Spec.Strategy.Canary.Steps
		s.extra = created.Spec.Strategy.Canary.EnableExtraWorkloadForCanary
	}
	s.w.setSteps(steps, s.extra)
	s.eventually(waitTimeout, "the controller to take the Rollout on (finalizer, control label, phase Healthy)", func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		meta, err := s.workloadMeta(ctx)
		if err != nil {
			return false, err.Error()
		}
		labelled := meta.GetLabels()[v1beta1.WorkloadControlLabel] == "true"
		return hasString(ro.Finalizers, rolloutFinalizer) && labelled && ro.Status.Phase == v1beta1.RolloutPhaseHealthy,
			fmt.Sprintf("finalizers=%v phase=%s message=%q workload labelled=%v", ro.Finalizers, ro.Status.Phase, ro.Status.Message, labelled)
	})
	s.logf("Rollout %s Healthy: %s", s.name, stepsString(steps))
	return created
}

func stepsString(steps []v1beta1.CanaryStep) string {
	var parts []string
	for _, st := range steps {
		p := st.Replicas.String()
		if st.Pause.Duration != nil {
			p += fmt.Sprintf(" (pause %ds)", *st.Pause.Duration)
		} else {
			p += " (promote)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " → ")
}

func (s *scenario) getRollout(ctx context.Context) (*v1beta1.Rollout, error) {
	return s.env.ro.RolloutV1beta1().Rollouts(s.ns).Get(ctx, s.name, metav1.GetOptions{})
}

func (s *scenario) rollout() *v1beta1.Rollout {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	ro, err := s.getRollout(ctx)
	if err != nil {
		s.t.Fatalf("get Rollout %s: %v\n%s", s.name, err, s.describe())
	}
	return ro
}

// updateRollout changes the Rollout's spec (retrying conflicts with the controller's writes).
func (s *scenario) updateRollout(change func(*v1beta1.Rollout)) {
	s.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ctx, cancel := s.ctx()
		defer cancel()
		ro, err := s.getRollout(ctx)
		if err != nil {
			return err
		}
		change(ro)
		_, err = s.env.ro.RolloutV1beta1().Rollouts(s.ns).Update(ctx, ro, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		s.t.Fatalf("update Rollout %s: %v\n%s", s.name, err, s.describe())
	}
}

// ---------------------------------------------------------------------------------------
// Changing the workload.

// updateImage sets the workload's image, the change a user makes to release a new version
// (or, with the stable image, to take one back). The webhook must hold the workload.
func (s *scenario) updateImage(image string) {
	s.t.Helper()
	s.updatePodTemplate(image, nil)
}

// updatePodTemplate sets the image and applies mutate (if any) to the pod template.
func (s *scenario) updatePodTemplate(image string, mutate func(*corev1.PodTemplateSpec)) {
	s.t.Helper()
	if image != stableImage {
		// A new revision: the release (re)starts at step 1.
		s.w.expectRelease(image)
	}
	var held bool
	// A webhook call that timed out (this machine is shared and sometimes overloaded) left the
	// workload unchanged; the update is tried again, as a user would.
	retriable := func(err error) bool {
		if err != nil && strings.Contains(err.Error(), "failed calling webhook") {
			s.logf("update of %s %s failed, trying again: %v", s.kind, s.name, err)
			return true
		}
		return apierrors.IsConflict(err) // the controller labels the workload, for one
	}
	err := retry.OnError(wait.Backoff{Steps: 4, Duration: time.Second, Factor: 1}, retriable, func() error {
		return s.setTemplate(image, mutate, &held)
	})
	if err != nil {
		s.t.Fatalf("set image of %s %s to %s: %v\n%s", s.kind, s.name, image, err, s.describe())
	}
	s.logf("%s %s: image → %s (held by the webhook: %v)", s.kind, s.name, image, held)
	if !held {
		s.t.Errorf("the webhook did not hold %s %s when its image changed to %s", s.kind, s.name, image)
	}
}

// setTemplate reads the workload, sets its image (and mutate), writes it and reports in held
// whether the webhook held it.
func (s *scenario) setTemplate(image string, mutate func(*corev1.PodTemplateSpec), held *bool) error {
	ctx, cancel := s.ctx()
	defer cancel()
	apps := s.env.c.Client.AppsV1()
	switch s.kind {
	case v1beta1.KindDeployment:
		d, err := apps.Deployments(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setImage(&d.Spec.Template, image, mutate)
		d, err = apps.Deployments(s.ns).Update(ctx, d, metav1.UpdateOptions{})
		if err == nil {
			*held = d.Spec.Paused && isHeld(d)
		}
		return err
	case v1beta1.KindStatefulSet:
		sts, err := apps.StatefulSets(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setImage(&sts.Spec.Template, image, mutate)
		sts, err = apps.StatefulSets(s.ns).Update(ctx, sts, metav1.UpdateOptions{})
		if err == nil {
			*held = isHeld(sts)
		}
		return err
	default:
		ds, err := apps.DaemonSets(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setImage(&ds.Spec.Template, image, mutate)
		ds, err = apps.DaemonSets(s.ns).Update(ctx, ds, metav1.UpdateOptions{})
		if err == nil {
			*held = isHeld(ds) && ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
		}
		return err
	}
}

func setImage(tpl *corev1.PodTemplateSpec, image string, mutate func(*corev1.PodTemplateSpec)) {
	tpl.Spec.Containers[0].Image = image
	if mutate != nil {
		mutate(tpl)
	}
}

func isHeld(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[v1beta1.WorkloadOriginalStrategyAnnotation]
	return ok
}

func (s *scenario) workloadMeta(ctx context.Context) (metav1.Object, error) {
	apps := s.env.c.Client.AppsV1()
	switch s.kind {
	case v1beta1.KindDeployment:
		return apps.Deployments(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	case v1beta1.KindStatefulSet:
		return apps.StatefulSets(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	default:
		return apps.DaemonSets(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	}
}

// ---------------------------------------------------------------------------------------
// Actions.

// promote moves the release on from the step it waits at (full: past every remaining step).
// The watcher is told first, so the pods of the next step are never counted against the
// current one.
func (s *scenario) promote() { s.t.Helper(); s.promoteWith(false) }

func (s *scenario) promoteFull() { s.t.Helper(); s.promoteWith(true) }

func (s *scenario) promoteWith(full bool) {
	s.t.Helper()
	ro := s.rollout()
	at := int32(0)
	if cs := ro.Status.Progress(); cs != nil {
		at = cs.CurrentStepIndex
	}
	if full {
		s.w.allowAll()
	} else {
		s.w.allowStep(int(at) + 1)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Promote(ctx, s.name, &v1beta1.RolloutPromote{Full: full}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("promote (full=%v) at step %d: %v\n%s", full, at, err, s.describe())
	}
	if pa := got.Status.PendingAction; pa == nil || pa.Type != v1beta1.RolloutActionPromote || pa.StepIndex != at || pa.Full != full {
		s.t.Errorf("promote at step %d: expected status.pendingAction {Promote, stepIndex %d, full %v} in the response, got %+v", at, at, full, pa)
	}
	s.logf("promoted (full=%v) at step %d", full, at)
}

func (s *scenario) pause() {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Pause(ctx, s.name, &v1beta1.RolloutPause{}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("pause: %v\n%s", err, s.describe())
	}
	if !got.Spec.Strategy.Paused {
		s.t.Errorf("pause: the response does not show spec.strategy.paused=true")
	}
	s.logf("paused")
}

func (s *scenario) resume() {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Resume(ctx, s.name, &v1beta1.RolloutResume{}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("resume: %v\n%s", err, s.describe())
	}
	if got.Spec.Strategy.Paused {
		s.t.Errorf("resume: the response still shows spec.strategy.paused=true")
	}
	s.logf("resumed")
}

func (s *scenario) abort(reason string) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := s.env.ro.RolloutV1beta1().Rollouts(s.ns).Abort(ctx, s.name, &v1beta1.RolloutAbort{Reason: reason}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("abort: %v\n%s", err, s.describe())
	}
	if pa := got.Status.PendingAction; pa == nil || pa.Type != v1beta1.RolloutActionAbort {
		s.t.Errorf("abort: expected status.pendingAction {Abort} in the response, got %+v", pa)
	}
	s.logf("aborted (%q)", reason)
}

// ---------------------------------------------------------------------------------------
// Waiting for the Rollout.

// waitForStep waits until the release of the current new revision has been seen at step
// index (1-based) in state. The watcher records every status the Rollout went through, so a
// state that lasts less than a poll is not missed.
func (s *scenario) waitForStep(index int32, state v1beta1.CanaryStepState) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("step %d in state %s", index, state), func(ctx context.Context) (bool, string) {
		if at, ok := s.w.seenStep(index, state); ok {
			s.logf("step %d %s (observed at +%.1fs)", index, state, at.Sub(s.start).Seconds())
			return true, ""
		}
		return false, s.w.lastRolloutState()
	})
}

// waitForPhase waits until the Rollout's phase is phase and, if given, its Progressing
// condition has reason progressingReason.
func (s *scenario) waitForPhase(phase v1beta1.RolloutPhase, progressingReason string) *v1beta1.Rollout {
	s.t.Helper()
	var got *v1beta1.Rollout
	what := "phase " + string(phase)
	if progressingReason != "" {
		what += " with condition Progressing reason " + progressingReason
	}
	s.eventually(waitTimeout, what, func(ctx context.Context) (bool, string) {
		ro, err := s.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		got = ro
		c := condition(ro, v1beta1.RolloutConditionProgressing)
		ok := ro.Status.Phase == phase && (progressingReason == "" || (c != nil && c.Reason == progressingReason))
		return ok, rolloutSummary(ro)
	})
	s.logf("Rollout %s: %s", phase, got.Status.Message)
	return got
}

func condition(ro *v1beta1.Rollout, t v1beta1.RolloutConditionType) *v1beta1.RolloutCondition {
	for i := range ro.Status.Conditions {
		if ro.Status.Conditions[i].Type == t {
			return &ro.Status.Conditions[i]
		}
	}
	return nil
}

func progressingReasonOf(ro *v1beta1.Rollout) string {
	if c := condition(ro, v1beta1.RolloutConditionProgressing); c != nil {
		return c.Reason
	}
	return ""
}

// expectCondition checks a condition's status and reason.
func (s *scenario) expectCondition(ro *v1beta1.Rollout, t v1beta1.RolloutConditionType, status corev1.ConditionStatus, reason string) {
	s.t.Helper()
	c := condition(ro, t)
	if c == nil || c.Status != status || (reason != "" && c.Reason != reason) {
		s.t.Errorf("expected condition %s=%s (reason %q), got %+v\n%s", t, status, reason, c, rolloutSummary(ro))
	}
}

// expectSucceeded waits for the end of a successful release: Healthy, Succeeded=True,
// Progressing=False (Completed), step state Completed.
func (s *scenario) expectSucceeded() *v1beta1.Rollout {
	s.t.Helper()
	ro := s.waitForPhase(v1beta1.RolloutPhaseHealthy, v1beta1.ProgressingReasonCompleted)
	s.expectCondition(ro, v1beta1.RolloutConditionSucceeded, corev1.ConditionTrue, v1beta1.ProgressingReasonCompleted)
	s.expectCondition(ro, v1beta1.RolloutConditionProgressing, corev1.ConditionFalse, v1beta1.ProgressingReasonCompleted)
	if ro.Status.PendingAction != nil {
		s.t.Errorf("status.pendingAction left after the release: %+v", ro.Status.PendingAction)
	}
	if ro.Status.CurrentStepState != v1beta1.CanaryStepStateCompleted {
		s.t.Errorf("status.currentStepState = %s at the end of a successful release, want %s", ro.Status.CurrentStepState, v1beta1.CanaryStepStateCompleted)
	}
	return ro
}

// ---------------------------------------------------------------------------------------
// Revisions and pods.

type pods map[string]int // image → number of live, ready pods expected on its revision

// revisionsOf resolves each image to the revision label values its pods carry (see the
// package comment), from the workload's ReplicaSets or ControllerRevisions.
func (s *scenario) revisionsOf(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	apps := s.env.c.Client.AppsV1()
	switch s.kind {
	case v1beta1.KindDeployment:
		owners := map[string]bool{}
		for _, n := range []string{s.name, s.name + "-canary"} {
			d, err := apps.Deployments(s.ns).Get(ctx, n, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			owners[string(d.UID)] = true
		}
		rss, err := apps.ReplicaSets(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, rs := range rss.Items {
			if ref := metav1.GetControllerOf(&rs); ref == nil || !owners[string(ref.UID)] {
				continue
			}
			img := rs.Spec.Template.Spec.Containers[0].Image
			out[img] = append(out[img], rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey])
		}
	default:
		obj, err := s.workloadMeta(ctx)
		if err != nil {
			return nil, err
		}
		crs, err := apps.ControllerRevisions(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, cr := range crs.Items {
			if ref := metav1.GetControllerOf(&cr); ref == nil || ref.UID != obj.GetUID() {
				continue
			}
			var patch struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(cr.Data.Raw, &patch); err != nil || len(patch.Spec.Template.Spec.Containers) == 0 {
				return nil, fmt.Errorf("ControllerRevision %s: cannot read its template: %v", cr.Name, err)
			}
			img := patch.Spec.Template.Spec.Containers[0].Image
			label := cr.Name // StatefulSet pods: the ControllerRevision's name
			if s.kind == v1beta1.KindDaemonSet {
				label = cr.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] // DaemonSet pods: its hash label
			}
			out[img] = append(out[img], label)
		}
	}
	return out, nil
}

// revisionLabel is the label that names a pod's revision for kind.
func revisionLabel(kind string) string {
	if kind == v1beta1.KindDeployment {
		return appsv1.DefaultDeploymentUniqueLabelKey
	}
	return appsv1.ControllerRevisionHashLabelKey
}

func podAlive(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podDistribution counts live pods per image (through their revision label) and returns a
// description; filter (if set) picks the pods to count.
func (s *scenario) podDistribution(ctx context.Context, filter func(*corev1.Pod) bool) (live, ready map[string]int, desc string, err error) {
	revs, err := s.revisionsOf(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	imageOf := map[string]string{}
	for img, labels := range revs {
		for _, l := range labels {
			imageOf[l] = img
		}
	}
	list, err := s.env.c.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, "", err
	}
	live, ready = map[string]int{}, map[string]int{}
	deleting := map[string]int{}
	for i := range list.Items {
		p := &list.Items[i]
		if filter != nil && !filter(p) {
			continue
		}
		rev := p.Labels[revisionLabel(s.kind)]
		img, ok := imageOf[rev]
		if !ok {
			img = "unknown revision " + rev
		}
		if !podAlive(p) {
			deleting[img]++
			continue
		}
		live[img]++
		if podIsReady(p) {
			ready[img]++
		}
	}
	var parts []string
	for _, img := range sortedKeys(live, deleting) {
		parts = append(parts, fmt.Sprintf("%s %v: %d live (%d ready), %d deleting", img, revs[img], live[img], ready[img], deleting[img]))
	}
	return live, ready, strings.Join(parts, "; "), nil
}

// expectPods waits until the live pods are exactly want (image → count), all ready.
func (s *scenario) expectPods(want pods) { s.t.Helper(); s.expectPodsWhere(want, "", nil) }

// expectPodsOnRevision waits until exactly n live, ready pods run the revision of image
// (other revisions are not looked at).
func (s *scenario) expectPodsOnRevision(image string, n int) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("%d ready pods on the revision of %s", n, image), func(ctx context.Context) (bool, string) {
		live, ready, desc, err := s.podDistribution(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		return live[image] == n && ready[image] == n, desc
	})
	s.logf("%d pods on the revision of %s", n, image)
}

func (s *scenario) expectPodsWhere(want pods, which string, filter func(*corev1.Pod) bool) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("%spods exactly %v, all ready", which, map[string]int(want)), func(ctx context.Context) (bool, string) {
		live, ready, desc, err := s.podDistribution(ctx, filter)
		if err != nil {
			return false, err.Error()
		}
		for img, n := range want {
			if live[img] != n || ready[img] != n {
				return false, desc
			}
		}
		for img, n := range live {
			if _, ok := want[img]; !ok && n > 0 {
				return false, desc
			}
		}
		return true, desc
	})
	s.logf("%spods %v", which, map[string]int(want))
}

// expectWorkloadReleased checks that the workload is handed back: no hold, its own strategy
// exactly as created (Deployment also not paused), no control label unless keepLabel.
func (s *scenario) expectWorkloadReleased(keepLabel bool) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("%s %s handed back to its own strategy", s.kind, s.name), func(ctx context.Context) (bool, string) {
		obj, err := s.workloadMeta(ctx)
		if err != nil {
			return false, err.Error()
		}
		var strategy any
		paused := false
		switch o := obj.(type) {
		case *appsv1.Deployment:
			strategy, paused = o.Spec.Strategy, o.Spec.Paused
		case *appsv1.StatefulSet:
			strategy = o.Spec.UpdateStrategy
		case *appsv1.DaemonSet:
			strategy = o.Spec.UpdateStrategy
		}
		_, labelled := obj.GetLabels()[v1beta1.WorkloadControlLabel]
		ok := !isHeld(obj) && !paused && apiequality.Semantic.DeepEqual(strategy, s.original) && (keepLabel || !labelled)
		return ok, fmt.Sprintf("held=%v paused=%v labelled=%v strategy=%s (created with %s)", isHeld(obj), paused, labelled, jsonString(strategy), jsonString(s.original))
	})
}

// expectWorkloadOn waits until the workload's own status says every pod runs the revision of
// image and is available.
func (s *scenario) expectWorkloadOn(image string) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("%s %s fully on %s per its own status", s.kind, s.name, image), func(ctx context.Context) (bool, string) {
		obj, err := s.workloadMeta(ctx)
		if err != nil {
			return false, err.Error()
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			st := o.Status
			return o.Spec.Template.Spec.Containers[0].Image == image && st.ObservedGeneration >= o.Generation &&
				st.UpdatedReplicas == s.replicas && st.AvailableReplicas == s.replicas && st.Replicas == s.replicas, fmt.Sprintf("image %s, %+v", o.Spec.Template.Spec.Containers[0].Image, st)
		case *appsv1.StatefulSet:
			st := o.Status
			return o.Spec.Template.Spec.Containers[0].Image == image && st.ObservedGeneration >= o.Generation &&
				st.CurrentRevision == st.UpdateRevision && st.UpdatedReplicas == s.replicas && st.AvailableReplicas == s.replicas, fmt.Sprintf("image %s, %+v", o.Spec.Template.Spec.Containers[0].Image, st)
		case *appsv1.DaemonSet:
			st := o.Status
			return o.Spec.Template.Spec.Containers[0].Image == image && st.ObservedGeneration >= o.Generation &&
				st.UpdatedNumberScheduled == s.replicas && st.NumberAvailable == s.replicas, fmt.Sprintf("image %s, %+v", o.Spec.Template.Spec.Containers[0].Image, st)
		}
		return false, "unknown kind"
	})
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(maps ...map[string]int) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range maps {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// ---------------------------------------------------------------------------------------
// Failure context.

func rolloutSummary(ro *v1beta1.Rollout) string {
	st := ro.Status
	var b strings.Builder
	fmt.Fprintf(&b, "Rollout %s/%s gen=%d observed=%d paused=%v disabled=%v deleting=%v phase=%s step=%d state=%s\n  message: %s\n",
		ro.Namespace, ro.Name, ro.Generation, st.ObservedGeneration, ro.Spec.Strategy.Paused, ro.Spec.Disabled, ro.DeletionTimestamp != nil,
		st.Phase, st.CurrentStepIndex, st.CurrentStepState, st.Message)
	for _, c := range st.Conditions {
		fmt.Fprintf(&b, "  condition %s=%s reason=%s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	if cs := st.CanaryStatus; cs != nil {
		fmt.Fprintf(&b, "  canaryStatus: stable=%s canary=%s podTemplateHash=%s step=%d next=%d state=%s finalising=%q canary=%d/%d stable=%d/%d stepStart=%v lastUpdate=%v\n",
			cs.StableRevision, cs.CanaryRevision, cs.PodTemplateHash, cs.CurrentStepIndex, cs.NextStepIndex, cs.CurrentStepState, cs.FinalisingStep,
			cs.CanaryReadyReplicas, cs.CanaryReplicas, cs.StableReadyReplicas, cs.StableReplicas, cs.StepStartTime, cs.LastUpdateTime)
	}
	if st.PendingAction != nil {
		fmt.Fprintf(&b, "  pendingAction: %+v\n", *st.PendingAction)
	}
	if st.Abort != nil {
		fmt.Fprintf(&b, "  abort: %+v\n", *st.Abort)
	}
	return b.String()
}

// describe is everything one needs to see why a wait failed.
func (s *scenario) describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var b strings.Builder
	b.WriteString("----- state of the scenario -----\n")
	if ro, err := s.getRollout(ctx); err != nil {
		fmt.Fprintf(&b, "Rollout %s: %v\n", s.name, err)
	} else {
		b.WriteString(rolloutSummary(ro))
	}
	if s.kind != "" {
		if obj, err := s.workloadMeta(ctx); err != nil {
			fmt.Fprintf(&b, "%s %s: %v\n", s.kind, s.name, err)
		} else {
			fmt.Fprintf(&b, "%s %s: gen=%d labels=%v annotations=%v\n", s.kind, s.name, obj.GetGeneration(), obj.GetLabels(), obj.GetAnnotations())
			switch o := obj.(type) {
			case *appsv1.Deployment:
				fmt.Fprintf(&b, "  paused=%v strategy=%s image=%s status=%+v\n", o.Spec.Paused, jsonString(o.Spec.Strategy), o.Spec.Template.Spec.Containers[0].Image, o.Status)
				if rss, err := s.env.c.Client.AppsV1().ReplicaSets(s.ns).List(ctx, metav1.ListOptions{}); err == nil {
					for _, rs := range rss.Items {
						fmt.Fprintf(&b, "  ReplicaSet %s image=%s spec=%d status=%d available=%d revision=%s\n", rs.Name, rs.Spec.Template.Spec.Containers[0].Image,
							ptr.Deref(rs.Spec.Replicas, 1), rs.Status.Replicas, rs.Status.AvailableReplicas, rs.Annotations["deployment.kubernetes.io/revision"])
					}
				}
			case *appsv1.StatefulSet:
				fmt.Fprintf(&b, "  updateStrategy=%s image=%s status=%+v\n", jsonString(o.Spec.UpdateStrategy), o.Spec.Template.Spec.Containers[0].Image, o.Status)
			case *appsv1.DaemonSet:
				fmt.Fprintf(&b, "  updateStrategy=%s image=%s status=%+v\n", jsonString(o.Spec.UpdateStrategy), o.Spec.Template.Spec.Containers[0].Image, o.Status)
			}
		}
		if _, _, desc, err := s.podDistribution(ctx, nil); err != nil {
			fmt.Fprintf(&b, "pods: %v\n", err)
		} else {
			fmt.Fprintf(&b, "pods: %s\n", desc)
		}
	}
	if events, err := s.env.c.Client.CoreV1().Events(s.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Rollout"}); err == nil {
		items := events.Items
		sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
		if len(items) > 25 {
			items = items[len(items)-25:]
		}
		b.WriteString("Rollout events (last 25):\n")
		for _, e := range items {
			fmt.Fprintf(&b, "  %s %s %s: %s\n", eventTime(e).Format("15:04:05"), e.Type, e.Reason, e.Message)
		}
	}
	if s.w != nil {
		b.WriteString("Rollout states seen by the watcher:\n" + s.w.history(30))
	}
	b.WriteString(s.serverLog(25))
	return b.String()
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// serverLog returns the last n lines of the server log that mention the namespace.
func (s *scenario) serverLog(n int) string {
	path := s.env.server.LogPath()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("server log %s: %v\n", path, err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s.ns) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("server log %s, last %d lines about %s:\n  %s\n", path, len(lines), s.ns, strings.Join(lines, "\n  "))
}

// ---------------------------------------------------------------------------------------
// The watcher.

// podWatcher observes all pods of the scenario's namespace and its Rollout through informers
// and checks, at every observed state of the pods:
//
//   - the live pods of the revision being released (in place: the workload's pods on the new
//     image; with an extra canary Deployment: the canary Deployment's pods) never exceed the
//     target of the furthest step the release may be at;
//   - live pods of a revision that a newer one replaced mid-release never exceed the target
//     they had when it was replaced;
//   - the live pods never exceed replicas + maxSurge (with an extra canary Deployment: the
//     original Deployment's pods; its new-revision pods stay at 0 until the last step), for a
//     Deployment while the release controller holds it (see checkLocked);
//   - the ReplicaSets of a Deployment never ask for more than replicas + maxSurge pods;
//   - all live pods with one revision label run one image.
//
// "Live" is not being deleted and not finished. The furthest step the release may be at is
// the larger of what the test allowed (the new revision starts at step 1, promote moves one
// step, promote full/disable/delete lift the limit) and what the Rollout's status allows
// (its current step; the next one once the step's timed pause is running or the step is
// Ready; every step once it is Completed or finalising). Both are known before the
// controller can act on them, so a pod event that arrives before the Rollout event of the
// same step change is never miscounted.
type podWatcher struct {
	s    *scenario
	kind string
	stop chan struct{}
	pods cache.Store
	// workloads holds the scenario's workload kind, replicaSets (Deployments only) its
	// ReplicaSets.
	workloads, replicaSets cache.Store

	mu sync.Mutex
	// blueGreen: the new revision's pods come up beside every old pod, so
	// the live pods are bounded by replicas + the step's target instead of
	// replicas + maxSurge.
	blueGreen     bool
	replicas      int
	surge         int
	targets       []int
	timedPause    []bool
	extra         bool
	newImage      string
	testAllowed   int
	statusAllowed int
	staleRevision string         // canaryRevision of a release a newer revision replaced
	replaced      map[string]int // image of a replaced release → most pods it may keep
	revImage      map[string]string
	violations    []string
	seenViolation map[string]bool
	maxNew        int
	maxTotal      int
	lastRev       string // canaryRevision in the last Rollout status
	// finalising: the release's steps are done and finalisation brings every
	// pod to the new revision, whatever the last step's share was.
	finalising bool
	states     []roState
	pinned     int // states[:pinned] belong to earlier releases
}

type roState struct {
	at                         time.Time
	phase                      v1beta1.RolloutPhase
	reason                     string
	revision                   string
	step                       int32
	state                      v1beta1.CanaryStepState
	paused                     bool
	newPods, totalPods, allowd int
	// lastUpdate and stepStart are canaryStatus.lastUpdateTime and stepStartTime: the
	// controller's clock, in whole seconds.
	lastUpdate, stepStart time.Time
}

func (r roState) String(start time.Time) string {
	return fmt.Sprintf("+%5.1fs %-11s %-12s step %d %-19s rev=%s paused=%v (new pods %d, live %d, allowed step %d)",
		r.at.Sub(start).Seconds(), r.phase, r.reason, r.step, r.state, r.revision, r.paused, r.newPods, r.totalPods, r.allowd)
}

func startPodWatcher(s *scenario) *podWatcher {
	w := &podWatcher{
		s: s, kind: s.kind, stop: make(chan struct{}),
		replicas: int(s.replicas), surge: int(s.surge),
		replaced: map[string]int{}, revImage: map[string]string{}, seenViolation: map[string]bool{},
	}
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(s.env.c.Client, 0, kubeinformers.WithNamespace(s.ns))
	onChange := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.check() },
		UpdateFunc: func(any, any) { w.check() },
		DeleteFunc: func(any) { w.check() },
	}
	podInformer := kf.Core().V1().Pods().Informer()
	w.pods = podInformer.GetStore()
	_, _ = podInformer.AddEventHandler(onChange)
	var workloadInformer cache.SharedIndexInformer
	synced := []cache.InformerSynced{podInformer.HasSynced}
	switch s.kind {
	case v1beta1.KindDeployment:
		workloadInformer = kf.Apps().V1().Deployments().Informer()
		rsInformer := kf.Apps().V1().ReplicaSets().Informer()
		w.replicaSets = rsInformer.GetStore()
		_, _ = rsInformer.AddEventHandler(onChange)
		synced = append(synced, rsInformer.HasSynced)
	case v1beta1.KindStatefulSet:
		workloadInformer = kf.Apps().V1().StatefulSets().Informer()
	default:
		workloadInformer = kf.Apps().V1().DaemonSets().Informer()
	}
	w.workloads = workloadInformer.GetStore()
	_, _ = workloadInformer.AddEventHandler(onChange)
	rf := rolloutinformers.NewSharedInformerFactoryWithOptions(s.env.ro, 0, rolloutinformers.WithNamespace(s.ns))
	roInformer := rf.Rollout().V1beta1().Rollouts().Informer()
	_, _ = roInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observeRollout(obj) },
		UpdateFunc: func(_, obj any) { w.observeRollout(obj) },
	})
	kf.Start(w.stop)
	rf.Start(w.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	synced = append(synced, roInformer.HasSynced, workloadInformer.HasSynced)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		s.t.Fatalf("watcher: informers did not sync")
	}
	s.t.Cleanup(w.finish)
	return w
}

// setSteps gives the watcher the release plan: each step's target out of replicas.
func (w *podWatcher) setSteps(steps []v1beta1.CanaryStep, extra bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.extra = extra
	w.targets, w.timedPause = nil, nil
	for _, st := range steps {
		n, err := intstr.GetScaledValueFromIntOrPercent(st.Replicas, w.replicas, true)
		if err != nil {
			w.s.t.Fatalf("step replicas %s: %v", st.Replicas, err)
		}
		w.targets = append(w.targets, min(n, w.replicas))
		w.timedPause = append(w.timedPause, st.Pause.Duration != nil)
	}
}

// releasesBlueGreen tells the watcher the Rollout is blue-green.
func (w *podWatcher) releasesBlueGreen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blueGreen = true
}

// expectRelease: image is (about to be) the new revision; the release starts at step 1.
func (w *podWatcher) expectRelease(image string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.newImage != "" && w.newImage != image {
		w.replaced[w.newImage] = w.boundLocked()
		w.staleRevision = w.lastRev
	}
	w.newImage = image
	w.finalising = false
	w.testAllowed, w.statusAllowed = 1, 0
	w.pinned = len(w.states)
}

func (w *podWatcher) allowStep(step int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.testAllowed = max(w.testAllowed, min(step, len(w.targets)))
}

// scaled tells the watcher the workload's new replica count (a user's scale):
// its bounds follow, as the workload controller's do.
func (w *podWatcher) scaled(replicas int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, t := range w.targets {
		w.targets[i] = t * replicas / max(w.replicas, 1)
	}
	w.replicas = replicas
}

// allowAll lifts the step limit: promote full, or the workload handed back to its own strategy.
func (w *podWatcher) allowAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.testAllowed = len(w.targets)
}

func (w *podWatcher) allowedLocked() int {
	return min(max(w.testAllowed, w.statusAllowed), len(w.targets))
}

func (w *podWatcher) boundLocked() int {
	a := w.allowedLocked()
	if a == 0 {
		return 0
	}
	if w.finalising {
		return w.replicas
	}
	return w.targets[a-1]
}

func (w *podWatcher) observeRollout(obj any) {
	ro, ok := obj.(*v1beta1.Rollout)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := ro.Status
	cs := st.Progress()
	rec := roState{at: time.Now(), phase: st.Phase, reason: progressingReasonOf(ro), paused: ro.Spec.Strategy.Paused}
	if cs != nil {
		rec.revision, rec.step, rec.state = cs.CanaryRevision, cs.CurrentStepIndex, cs.CurrentStepState
		if cs.LastUpdateTime != nil {
			rec.lastUpdate = cs.LastUpdateTime.Time
		}
		if cs.StepStartTime != nil {
			rec.stepStart = cs.StepStartTime.Time
		}
		w.lastRev = cs.CanaryRevision
	}
	n := len(w.targets)
	if st.Phase == v1beta1.RolloutPhaseProgressing && cs != nil && n > 0 && cs.CanaryRevision != w.staleRevision && w.newImage != "" {
		k := int(cs.CurrentStepIndex)
		a := k
		switch cs.CurrentStepState {
		case v1beta1.CanaryStepStatePaused:
			if k >= 1 && k <= n && w.timedPause[k-1] {
				a = k + 1
			}
		case v1beta1.CanaryStepStateReady:
			a = k + 1
		case v1beta1.CanaryStepStateCompleted:
			a = n
		}
		if rec.reason == v1beta1.ProgressingReasonFinalising {
			a = n
			w.finalising = true
		}
		w.statusAllowed = max(w.statusAllowed, min(a, n))
	}
	newPods, total := w.checkLocked()
	rec.newPods, rec.totalPods, rec.allowd = newPods, total, w.allowedLocked()
	if last := len(w.states) - 1; last < 0 || !sameState(w.states[last], rec) {
		w.states = append(w.states, rec)
	}
}

func sameState(a, b roState) bool {
	return a.phase == b.phase && a.reason == b.reason && a.revision == b.revision && a.step == b.step && a.state == b.state && a.paused == b.paused
}

func (w *podWatcher) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkLocked()
}

// checkLocked evaluates the invariants on the pods as the informer holds them now (one
// consistent state of the watch stream) and returns the new-revision and live pod counts.
func (w *podWatcher) checkLocked() (int, int) {
	var total, newPods, origNew, canary, orig int
	perRev := map[string]int{}
	replaced := map[string]int{}
	for _, obj := range w.pods.List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || !podAlive(p) {
			continue
		}
		rev := p.Labels[revisionLabel(w.kind)]
		img := p.Spec.Containers[0].Image
		if prev, ok := w.revImage[rev]; ok && prev != img {
			w.violate(fmt.Sprintf("revision-image:%s", rev), "pods with %s=%s run two images: %s and %s", revisionLabel(w.kind), rev, prev, img)
		} else {
			w.revImage[rev] = img
		}
		perRev[img+"@"+rev]++
		total++
		isCanary := p.Labels[canaryWorkloadLabel] == "true"
		if isCanary {
			canary++
		} else {
			orig++
		}
		if img == w.newImage && w.newImage != "" {
			newPods++
			if !isCanary {
				origNew++
			}
		}
		if _, ok := w.replaced[img]; ok {
			replaced[img]++
		}
	}
	bound := w.boundLocked()
	allowed := w.allowedLocked()
	limit, limitWhy := w.replicas+w.surge, fmt.Sprintf("replicas %d + maxSurge %d", w.replicas, w.surge)
	if w.blueGreen {
		limit, limitWhy = w.replicas+bound, fmt.Sprintf("replicas %d + the step's %d new pods beside them (blue-green)", w.replicas, bound)
	}
	held, owner := w.workloadLocked()
	where := fmt.Sprintf("(allowed step %d/%d, workload held: %v, pods by image@revision: %v)", allowed, len(w.targets), held, perRev)
	// Live pods are the release controller's to bound while it holds the workload. Handed back,
	// a Deployment is rolled by the Deployment controller, which bounds only the sizes of its
	// ReplicaSets (below): its ReplicaSet controller may create the pods of a grown ReplicaSet
	// before it has marked those of a shrunk one for deletion, so the live pods of a plain
	// Deployment rollout can pass replicas + maxSurge for a moment. StatefulSets and DaemonSets
	// never surge, so their live pods are bounded throughout.
	checkLive := held || w.kind != v1beta1.KindDeployment
	if w.replicaSets != nil && owner != "" {
		sum := 0
		var sizes []string
		for _, obj := range w.replicaSets.List() {
			rs, ok := obj.(*appsv1.ReplicaSet)
			if !ok || rs.DeletionTimestamp != nil {
				continue
			}
			if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != owner {
				continue
			}
			n := int(ptr.Deref(rs.Spec.Replicas, 1))
			sum += n
			sizes = append(sizes, fmt.Sprintf("%s=%d", rs.Name, n))
		}
		if sum > limit {
			w.violate(fmt.Sprintf("rs-sum:%d>%d", sum, limit), "the ReplicaSets of Deployment %s ask for %d pods in total (%s), above %s %s",
				w.s.name, sum, strings.Join(sizes, ", "), limitWhy, where)
		}
	}
	if w.extra {
		if canary > bound {
			w.violate(fmt.Sprintf("canary:%d>%d", canary, bound), "%d pods of the canary Deployment, above the target %d of step %d %s", canary, bound, allowed, where)
		}
		origBound := 0
		if allowed >= len(w.targets) && len(w.targets) > 0 {
			origBound = w.replicas
		}
		if origNew > origBound {
			w.violate(fmt.Sprintf("orignew:%d>%d", origNew, origBound), "%d pods of the original Deployment on the new revision %s before the last step %s", origNew, w.newImage, where)
		}
		if orig > limit && checkLive {
			w.violate(fmt.Sprintf("total:%d>%d", orig, limit), "%d live pods of the original Deployment, above %s %s", orig, limitWhy, where)
		}
	} else {
		if newPods > bound {
			w.violate(fmt.Sprintf("new:%s:%d>%d", w.newImage, newPods, bound), "%d live pods on the new revision %s, above the target %d of step %d %s", newPods, w.newImage, bound, allowed, where)
		}
		if total > limit && checkLive {
			w.violate(fmt.Sprintf("total:%d>%d", total, limit), "%d live pods, above %s %s", total, limitWhy, where)
		}
	}
	for img, n := range replaced {
		if max := w.replaced[img]; n > max {
			w.violate(fmt.Sprintf("replaced:%s:%d>%d", img, n, max), "%d live pods on %s, a revision replaced mid-release when it had at most %d %s", n, img, max, where)
		}
	}
	w.maxNew = max(w.maxNew, newPods)
	w.maxTotal = max(w.maxTotal, total)
	return newPods, total
}

// workloadLocked reports whether the scenario's workload carries the hold, and its UID.
func (w *podWatcher) workloadLocked() (bool, types.UID) {
	if w.workloads == nil {
		return false, ""
	}
	obj, ok, err := w.workloads.GetByKey(w.s.ns + "/" + w.s.name)
	if err != nil || !ok {
		return false, ""
	}
	meta, ok := obj.(metav1.Object)
	if !ok {
		return false, ""
	}
	return isHeld(meta), meta.GetUID()
}

func (w *podWatcher) violate(key, format string, args ...any) {
	if w.seenViolation[key] {
		return
	}
	w.seenViolation[key] = true
	msg := fmt.Sprintf("+%.1fs ", time.Since(w.s.start).Seconds()) + fmt.Sprintf(format, args...)
	w.violations = append(w.violations, msg)
}

// seenStep reports when the Rollout was first seen at step index in state for the current
// new revision.
func (w *podWatcher) seenStep(index int32, state v1beta1.CanaryStepState) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.states[w.pinned:] {
		if r.phase == v1beta1.RolloutPhaseProgressing && r.step == index && r.state == state && r.revision != w.staleRevision {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// firstState returns when the first status matching f was seen for the current new revision.
func (w *podWatcher) firstState(f func(roState) bool) (time.Time, bool) {
	r, ok := w.first(f)
	return r.at, ok
}

// first returns the first status matching f seen for the current new revision.
func (w *podWatcher) first(f func(roState) bool) (roState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.states[w.pinned:] {
		if f(r) {
			return r, true
		}
	}
	return roState{}, false
}

func (w *podWatcher) lastRolloutState() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.states) == 0 {
		return "no Rollout status seen"
	}
	return w.states[len(w.states)-1].String(w.s.start)
}

func (w *podWatcher) history(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	states := w.states
	if len(states) > n {
		states = states[len(states)-n:]
	}
	var b strings.Builder
	for _, r := range states {
		b.WriteString("  " + r.String(w.s.start) + "\n")
	}
	return b.String()
}

// finish stops the informers and fails the test with every violation seen.
func (w *podWatcher) finish() {
	close(w.stop)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.s.t.Logf("watcher: at most %d pods on the new revision and %d live pods at once (replicas %d, maxSurge %d); Rollout states:\n%s",
		w.maxNew, w.maxTotal, w.replicas, w.surge, func() string {
			var b strings.Builder
			for _, r := range w.states {
				b.WriteString("  " + r.String(w.s.start) + "\n")
			}
			return b.String()
		}())
	if len(w.violations) > 0 {
		w.s.t.Errorf("watcher: %d invariant violations:\n  %s", len(w.violations), strings.Join(w.violations, "\n  "))
	}
}
