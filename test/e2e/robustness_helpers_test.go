package e2e

// Helpers of the robustness tests (robustness_*_test.go). Everything here is prefixed
// with rob so it cannot collide with the helpers of other e2e files.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// robLeaseNamespace is where the server's leader-election Lease lives (--leader-elect-lease-namespace default).
const robLeaseNamespace = "rollout-system"

// robLeaseArgs are short leader-election settings on a Lease of the test's own, so a
// restarted (new identity) server takes over within seconds and tests don't share a Lease.
func robLeaseArgs(lease string) []string {
	return []string{
		"--leader-elect-lease-name=" + lease,
		"--leader-elect-lease-duration=4s",
		"--leader-elect-renew-deadline=3s",
		"--leader-elect-retry-period=1s",
		"-v=2", // "Scaled ReplicaSet" and other action lines, to tell who acted
	}
}

const robLeaseDuration = 4 * time.Second

func robRolloutClient(t testing.TB, cfg *rest.Config) versioned.Interface {
	t.Helper()
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("rollout clientset: %v", err)
	}
	return cs
}

func robDeployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("25%")
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers:                    []corev1.Container{{Name: "app", Image: image}},
				},
			},
		},
	}
}

// robStep is a canary step: replicas ("20%" or a number) and a pause (nil: wait for
// promote; a value: seconds).
func robStep(replicas string, pause *int32) v1beta1.CanaryStep {
	r := intstr.Parse(replicas)
	return v1beta1.CanaryStep{Replicas: &r, Pause: v1beta1.StepPause{Duration: pause}}
}

func robSeconds(s int32) *int32 { return &s }

func robRollout(ns, name, deployment string, steps ...v1beta1.CanaryStep) *v1beta1.Rollout {
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: deployment},
			Strategy:    v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{Steps: steps}},
		},
	}
}

// robDescribe is a one-line view of a Rollout for failure messages.
func robDescribe(ro *v1beta1.Rollout) string {
	if ro == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("phase=%s step=%d state=%s", ro.Status.Phase, ro.Status.CurrentStepIndex, ro.Status.CurrentStepState)
	if cs := ro.Status.CanaryStatus; cs != nil {
		s += fmt.Sprintf(" canary=%d/%d stable=%d/%d finalising=%q", cs.CanaryReadyReplicas, cs.CanaryReplicas, cs.StableReadyReplicas, cs.StableReplicas, cs.FinalisingStep)
	}
	if pa := ro.Status.PendingAction; pa != nil {
		s += fmt.Sprintf(" pending=%s@%d", pa.Type, pa.StepIndex)
	}
	return s + fmt.Sprintf(" message=%q", ro.Status.Message)
}

// robWaitRollout polls the Rollout until cond holds and returns it; it fails the test
// after timeout with the last state (and the server log tail, if a server is given).
func robWaitRollout(t testing.TB, rc versioned.Interface, ns, name string, timeout time.Duration, what string, s *framework.Server, cond func(*v1beta1.Rollout) bool) *v1beta1.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		ro, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if cond(ro) {
				return ro
			}
			last = robDescribe(ro)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("timed out after %s waiting for Rollout %s/%s: %s; last state: %s", timeout, ns, name, what, last)
			if s != nil {
				msg += fmt.Sprintf("\nserver log (%s) tail:\n%s", s.LogPath(), s.LogTail(40))
			}
			t.Fatal(msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func robAt(index int32, state v1beta1.CanaryStepState) func(*v1beta1.Rollout) bool {
	return func(ro *v1beta1.Rollout) bool {
		cs := ro.Status.CanaryStatus
		return ro.Status.Phase == v1beta1.RolloutPhaseProgressing && cs != nil && cs.CurrentStepIndex == index && cs.CurrentStepState == state
	}
}

func robSucceeded(ro *v1beta1.Rollout) bool {
	if ro.Status.Phase != v1beta1.RolloutPhaseHealthy {
		return false
	}
	for _, c := range ro.Status.Conditions {
		if c.Type == v1beta1.RolloutConditionSucceeded {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// robWaitDeploymentReady waits until the Deployment's pods all run image and are ready.
func robWaitDeploymentReady(t testing.TB, c *framework.Cluster, ns, name, image string, replicas int32, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, timeout, 200*time.Millisecond, fmt.Sprintf("Deployment %s/%s: %d ready pods of %s", ns, name, replicas, image),
		func(ctx context.Context) (bool, string) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			counts, err := robCountPods(ctx, c, ns, name, image)
			if err != nil {
				return false, err.Error()
			}
			st := d.Status
			ok := st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == replicas && st.Replicas == replicas &&
				st.AvailableReplicas == replicas && counts.NewReady == replicas && counts.OldPods == 0
			return ok, fmt.Sprintf("status=%+v pods=%+v", st, counts)
		})
}

// robPodCounts are the pods of one Deployment, split by image: the new revision runs
// newImage, anything else is old. Terminating pods are not counted as ready.
type robPodCounts struct {
	NewPods, NewReady, OldPods, OldReady int32
	NewRSSpec, OldRSSpec                 int32 // sum of spec.replicas of the ReplicaSets
}

func robCountPods(ctx context.Context, c *framework.Cluster, ns, app, newImage string) (robPodCounts, error) {
	var n robPodCounts
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return n, err
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		isNew := p.Spec.Containers[0].Image == newImage
		ready := podReady(p)
		switch {
		case isNew:
			n.NewPods++
			if ready {
				n.NewReady++
			}
		default:
			n.OldPods++
			if ready {
				n.OldReady++
			}
		}
	}
	rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return n, err
	}
	for _, rs := range rss.Items {
		r := int32(0)
		if rs.Spec.Replicas != nil {
			r = *rs.Spec.Replicas
		}
		if rs.Spec.Template.Spec.Containers[0].Image == newImage {
			n.NewRSSpec += r
		} else {
			n.OldRSSpec += r
		}
	}
	return n, nil
}

// robExpectPods waits (pods settle after a step turns ready: old pods terminate) until the
// Deployment has exactly newReady ready new pods and oldReady ready old ones, and its
// ReplicaSets ask for the same.
func robExpectPods(t testing.TB, c *framework.Cluster, ns, app, newImage string, newReady, oldReady int32, timeout time.Duration) robPodCounts {
	t.Helper()
	var got robPodCounts
	framework.Eventually(t, timeout, 200*time.Millisecond, fmt.Sprintf("%s/%s: %d ready pods of %s and %d old", ns, app, newReady, newImage, oldReady),
		func(ctx context.Context) (bool, string) {
			var err error
			got, err = robCountPods(ctx, c, ns, app, newImage)
			if err != nil {
				return false, err.Error()
			}
			ok := got.NewReady == newReady && got.NewPods == newReady && got.OldReady == oldReady && got.OldPods == oldReady &&
				got.NewRSSpec == newReady && got.OldRSSpec == oldReady
			return ok, fmt.Sprintf("%+v", got)
		})
	return got
}

func robSetImage(ctx context.Context, c *framework.Cluster, ns, name, image string) (*appsv1.Deployment, error) {
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		out, err = c.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	return out, err
}

// robWaitControlled waits until the controller has labelled the Deployment for the webhook
// (only then does an image change go through the webhook and get held).
func robWaitControlled(t testing.TB, c *framework.Cluster, ns, name string, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, timeout, 100*time.Millisecond, "Deployment "+ns+"/"+name+" labelled "+v1beta1.WorkloadControlLabel,
		func(ctx context.Context) (bool, string) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Labels[v1beta1.WorkloadControlLabel] == "true", fmt.Sprintf("labels=%v", d.Labels)
		})
}

// --- status history ----------------------------------------------------------------------

// robStepKey is one (currentStepIndex, currentStepState) of a release.
type robStepKey struct {
	Index int32
	State v1beta1.CanaryStepState
}

func (k robStepKey) String() string { return fmt.Sprintf("%d/%s", k.Index, k.State) }

var robStateRank = map[v1beta1.CanaryStepState]int{
	v1beta1.CanaryStepStateInit:            1,
	v1beta1.CanaryStepStateUpgrade:         2,
	v1beta1.CanaryStepStateTrafficRouting:  3,
	v1beta1.CanaryStepStateMetricsAnalysis: 4,
	v1beta1.CanaryStepStatePaused:          5,
	v1beta1.CanaryStepStateReady:           6,
	v1beta1.CanaryStepStateCompleted:       7,
}

func (k robStepKey) less(o robStepKey) bool {
	if k.Index != o.Index {
		return k.Index < o.Index
	}
	return robStateRank[k.State] < robStateRank[o.State]
}

// robObservation is a distinct (step, state) the history saw, with when it first saw it.
type robObservation struct {
	Key    robStepKey
	At     time.Time
	RV     string
	Status v1beta1.RolloutStatus
}

// robHistory records every distinct (currentStepIndex, currentStepState) of a Rollout's
// canary release, in the order seen, from a watch that reconnects (and re-reads the
// object) whenever the server goes away. A release that neither skips nor repeats a step
// gives a strictly increasing sequence.
type robHistory struct {
	mu  sync.Mutex
	obs []robObservation
}

// robWatchHistory starts recording; it stops at the end of the test. cfg is the server's
// direct REST config (the port survives restarts).
func robWatchHistory(t testing.TB, cfg *rest.Config, ns, name string) *robHistory {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 0
	rc := robRolloutClient(t, cfg)
	h := &robHistory{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		selector := fields.OneTermEqualSelector("metadata.name", name).String()
		for ctx.Err() == nil {
			getCtx, getCancel := context.WithTimeout(ctx, 2*time.Second)
			ro, err := rc.RolloutV1beta1().Rollouts(ns).Get(getCtx, name, metav1.GetOptions{})
			getCancel()
			if err != nil {
				robSleep(ctx, 50*time.Millisecond)
				continue
			}
			h.record(ro)
			w, err := rc.RolloutV1beta1().Rollouts(ns).Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: ro.ResourceVersion})
			if err != nil {
				robSleep(ctx, 50*time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					break
				}
				if ro, ok := ev.Object.(*v1beta1.Rollout); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					h.record(ro)
				}
			}
			w.Stop()
		}
	}()
	return h
}

func robSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (h *robHistory) record(ro *v1beta1.Rollout) {
	cs := ro.Status.CanaryStatus
	if cs == nil {
		return
	}
	key := robStepKey{Index: cs.CurrentStepIndex, State: cs.CurrentStepState}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.obs); n > 0 && h.obs[n-1].Key == key {
		return
	}
	h.obs = append(h.obs, robObservation{Key: key, At: time.Now(), RV: ro.ResourceVersion, Status: *ro.Status.DeepCopy()})
}

func (h *robHistory) snapshot() []robObservation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.obs)
}

func (h *robHistory) String() string {
	var parts []string
	for _, o := range h.snapshot() {
		parts = append(parts, fmt.Sprintf("%s@%s", o.Key, o.At.Format("15:04:05.000")))
	}
	return strings.Join(parts, " -> ")
}

// first returns the first observation matching cond.
func (h *robHistory) first(cond func(robStepKey) bool) (robObservation, bool) {
	for _, o := range h.snapshot() {
		if cond(o.Key) {
			return o, true
		}
	}
	return robObservation{}, false
}

// check fails the test unless the history is strictly increasing (no step or state seen
// twice, none gone back) and every step 1..steps was seen.
func (h *robHistory) check(t testing.TB, steps int32) {
	t.Helper()
	obs := h.snapshot()
	for i := 1; i < len(obs); i++ {
		if !obs[i-1].Key.less(obs[i].Key) {
			t.Errorf("status history is not monotonic: %s (rv %s) came after %s (rv %s); whole history: %s",
				obs[i].Key, obs[i].RV, obs[i-1].Key, obs[i-1].RV, h)
		}
	}
	for i := int32(1); i <= steps; i++ {
		if _, ok := h.first(func(k robStepKey) bool { return k.Index == i }); !ok {
			t.Errorf("status history never showed step %d: %s", i, h)
		}
	}
}

// --- Events ------------------------------------------------------------------------------

// robEvents sums the counts of the Rollout's Events by reason and message.
func robEvents(ctx context.Context, c *framework.Cluster, ns, name string) (map[string]int32, []string, error) {
	list, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Rollout", "involvedObject.name": name}.String(),
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return robEventTime(&list.Items[i]).Before(robEventTime(&list.Items[j]))
	})
	counts := map[string]int32{}
	var lines []string
	for _, e := range list.Items {
		n := max(e.Count, 1)
		counts[e.Reason+": "+e.Message] += n
		lines = append(lines, fmt.Sprintf("%s x%d %s: %s (source %s/%s, reporting %s/%s)", robEventTime(&e).Format("15:04:05"), n, e.Reason, e.Message,
			e.Source.Component, e.Source.Host, e.ReportingController, e.ReportingInstance))
	}
	return counts, lines, nil
}

func robEventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// robCountReason sums the Events whose "reason: message" starts with prefix.
func robCountReason(counts map[string]int32, prefix string) int32 {
	var n int32
	for k, v := range counts {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// --- Lease -------------------------------------------------------------------------------

func robLeaseHolder(ctx context.Context, c *framework.Cluster, name string) (string, *coordinationv1.Lease, error) {
	l, err := c.Client.CoordinationV1().Leases(robLeaseNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", nil, err
	}
	if l.Spec.HolderIdentity == nil {
		return "", l, nil
	}
	return *l.Spec.HolderIdentity, l, nil
}

// robHoldLease makes the test itself hold the controller's Lease (as an identity no server
// has), renewing it until the returned stop is called; stop deletes the Lease so that a
// server acquires it at once. While the test holds it, no server's controller acts.
func robHoldLease(t testing.TB, c *framework.Cluster, name string) (stop func()) {
	t.Helper()
	identity := "e2e-test-holds-the-lease"
	write := func(ctx context.Context) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			now := metav1.NewMicroTime(time.Now())
			secs := int32(30)
			l, err := c.Client.CoordinationV1().Leases(robLeaseNamespace).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				_, err = c.Client.CoordinationV1().Leases(robLeaseNamespace).Create(ctx, &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: robLeaseNamespace},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &identity, LeaseDurationSeconds: &secs,
						AcquireTime: &now, RenewTime: &now},
				}, metav1.CreateOptions{})
				return err
			}
			if err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != identity {
				l.Spec.AcquireTime = &now
				transitions := int32(1)
				if l.Spec.LeaseTransitions != nil {
					transitions = *l.Spec.LeaseTransitions + 1
				}
				l.Spec.LeaseTransitions = &transitions
			}
			l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &identity, &secs, &now
			_, err = c.Client.CoordinationV1().Leases(robLeaseNamespace).Update(ctx, l, metav1.UpdateOptions{})
			return err
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := write(ctx); err != nil {
		t.Fatalf("taking Lease %s/%s: %v", robLeaseNamespace, name, err)
	}
	renewCtx, renewCancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-time.After(time.Second):
				wctx, wcancel := context.WithTimeout(renewCtx, 5*time.Second)
				if err := write(wctx); err != nil && renewCtx.Err() == nil {
					fmt.Fprintf(os.Stderr, "renewing the test's Lease %s: %v\n", name, err)
				}
				wcancel()
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			renewCancel()
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Client.CoordinationV1().Leases(robLeaseNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting Lease %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// robLogSince returns what the log file at path holds after offset (see robLogSize).
func robLogSince(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return ""
	}
	return string(data[offset:])
}

func robLogSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// robGrep returns the lines of text that contain every one of words.
func robGrep(text string, words ...string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// robWaitFast polls every 20ms (a state that lasts about a second must not slip by);
// cond may end the wait early with an error, which fails the test.
func robWaitFast(t testing.TB, rc versioned.Interface, ns, name string, timeout time.Duration, what string, s *framework.Server, cond func(*v1beta1.Rollout) (bool, error)) *v1beta1.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		ro, err := rc.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			ok, cerr := cond(ro)
			if cerr != nil {
				t.Fatalf("waiting for %s: %v", what, cerr)
			}
			if ok {
				return ro
			}
			last = robDescribe(ro)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for Rollout %s/%s: %s; last state: %s\nserver log tail:\n%s", timeout, ns, name, what, last, s.LogTail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// robWaitNewLeader waits until the Lease has a holder other than old (and not the test's)
// and returns it.
func robWaitNewLeader(t testing.TB, c *framework.Cluster, lease, old string, timeout time.Duration) string {
	t.Helper()
	var holder string
	framework.Eventually(t, timeout, 100*time.Millisecond, fmt.Sprintf("Lease %s/%s held by a new identity (not %q)", robLeaseNamespace, lease, old),
		func(ctx context.Context) (bool, string) {
			h, _, err := robLeaseHolder(ctx, c, lease)
			if err != nil {
				return false, err.Error()
			}
			holder = h
			return h != "" && h != old && h != "e2e-test-holds-the-lease", "holder " + h
		})
	return holder
}

// robScaleEvents counts the Deployment's ScalingReplicaSet Events (the Deployment
// controller's) by message.
func robScaleEvents(t testing.TB, c *framework.Cluster, ns, name string) map[string]int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Deployment", "involvedObject.name": name}.String(),
	})
	if err != nil {
		t.Fatalf("listing the Events of Deployment %s/%s: %v", ns, name, err)
	}
	out := map[string]int32{}
	for _, e := range list.Items {
		if e.Reason == "ScalingReplicaSet" {
			out[e.Message+" ("+e.Source.Component+")"] += max(e.Count, 1)
		}
	}
	return out
}

// robCheckNoScaleFight fails the test when kube-controller-manager's Deployment controller
// scaled a ReplicaSet of the Deployment since before was taken (robScaleEvents), i.e.
// while the Rollout held it: only the Rollout controller may size a held Deployment's
// ReplicaSets. (A paused Deployment with exactly one active ReplicaSet is scaled by the
// Deployment controller to spec.replicas, so shrinking the old ReplicaSet while the new
// one has no replicas starts a tug of war that deletes and recreates old pods.)
func robCheckNoScaleFight(t testing.TB, c *framework.Cluster, ns, name string, before map[string]int32) {
	t.Helper()
	var fights []string
	for msg, n := range robScaleEvents(t, c, ns, name) {
		// Once the release hands the Deployment back, its own controller
		// removes the old ReplicaSet's last pods: that finishes the release
		// rather than undoing it (the tests check the new revision runs every
		// pod), and event times are too coarse to tell it from the hold.
		if strings.HasPrefix(msg, "Scaled down replica set ") && strings.Contains(msg, " to 0 ") {
			continue
		}
		if n > before[msg] {
			fights = append(fights, fmt.Sprintf("x%d %s", n-before[msg], msg))
		}
	}
	sort.Strings(fights)
	if len(fights) > 0 {
		t.Errorf("kube-controller-manager scaled ReplicaSets of Deployment %s/%s while the Rollout held it (undoing the Rollout controller's batch):\n  %s",
			ns, name, strings.Join(fights, "\n  "))
	}
}

// robCleanupRollouts deletes the namespace's Rollouts at the end of the test, and waits for
// their finalizer, while the server still runs (register it after NewNamespace and after
// the server's own cleanup, so it runs before both).
func robCleanupRollouts(t testing.TB, rc versioned.Interface, ns string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rc.RolloutV1beta1().Rollouts(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Logf("cleanup: deleting the Rollouts of %s: %v", ns, err)
			return
		}
		for ctx.Err() == nil {
			list, err := rc.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
			if err == nil && len(list.Items) == 0 {
				return
			}
			robSleep(ctx, 200*time.Millisecond)
		}
		t.Logf("cleanup: the Rollouts of %s were not gone after 30s", ns)
	})
}

// robBuild builds the server binary (once per test process) before a test starts its
// clock, so a cold build does not eat the test's own deadline, and kills servers earlier
// tests left running.
func robBuild(t testing.TB, c *framework.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.BuildServer(ctx); err != nil {
		t.Fatalf("build rollout-apiserver: %v", err)
	}
	// A server an earlier test left running (SharedServer starts it again when needed)
	// would otherwise be stopped with SIGTERM by StartServer, which can take 20s+.
	c.KillRunningServers()
}

// robWaitAuthenticated waits until the server accepts the admin client certificate (a
// LIST of Rollouts in ns succeeds). A server that just became ready may still treat client
// certificates as anonymous for a moment (TestRobustnessReadyMeansAuthenticated checks
// that on its own); scenarios that are about something else wait it out here.
func robWaitAuthenticated(t testing.TB, rc versioned.Interface, ns string) {
	t.Helper()
	framework.Eventually(t, 20*time.Second, 20*time.Millisecond, "the restarted server to authenticate the admin client certificate",
		func(ctx context.Context) (bool, string) {
			_, err := rc.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{Limit: 1})
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
}
