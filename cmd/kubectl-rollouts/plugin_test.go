package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	rofake "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/fake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

// fixtureRollout is a three-step canary Rollout of Deployment web, paused at step 2.
func fixtureRollout() *v1beta1.Rollout {
	r20, r50, r100 := intstr.FromString("20%"), intstr.FromString("50%"), intstr.FromString("100%")
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", Generation: 1, CreationTimestamp: metav1.NewTime(ago(time.Hour))},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{
					{Replicas: &r20},
					{Replicas: &r50, TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("50%")}, Pause: v1beta1.StepPause{Duration: ptr.To[int32](30)},
						Analysis: &v1beta1.RolloutAnalysis{Metrics: []v1beta1.MetricCheck{{Name: "error-rate", Count: 3}}}},
					{Replicas: &r100},
				},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{Service: "web", Ingress: &v1beta1.IngressTrafficRouting{Name: "web"}}},
			}},
		},
		Status: v1beta1.RolloutStatus{
			ObservedGeneration: 1,
			Phase:              v1beta1.RolloutPhaseProgressing,
			Message:            "Step 2/3 is ready; pausing 30s",
			Conditions:         []v1beta1.RolloutCondition{{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionTrue, Reason: v1beta1.ProgressingReasonInRolling}},
			CanaryStatus: &v1beta1.CanaryStatus{
				CommonStatus:   v1beta1.CommonStatus{StableRevision: "5d8f6", PodTemplateHash: "7c9d5", CurrentStepIndex: 2, NextStepIndex: 3, CurrentStepState: v1beta1.CanaryStepStatePaused},
				CanaryRevision: "7c9d5", CanaryReplicas: 2, CanaryReadyReplicas: 1,
			},
			AnalysisResults: []v1beta1.MetricCheckResult{{Name: "error-rate", StepIndex: 2, Phase: v1beta1.MetricCheckRunning, Count: 2, Successful: 2, LastValue: "0.01"}},
		},
	}
}

func pod(name string, ready bool, age time.Duration) podInfo {
	return podInfo{Name: name, Phase: "Running", Ready: ready, Created: ago(age)}
}

// fixtureRelease is the release around fixtureRollout, as collect would read it.
func fixtureRelease() *release {
	return &release{
		Rollout:  fixtureRollout(),
		Workload: &workloadInfo{Kind: "Deployment", Name: "web", Replicas: 4, Held: true},
		Revisions: []revisionInfo{
			{Number: 3, ID: "7c9d5", Kind: "ReplicaSet", Name: "web-7c9d5", Images: []string{"app:v2"}, Role: "canary", Created: ago(3 * time.Minute),
				Pods: []podInfo{pod("web-7c9d5-aaaaa", true, 3*time.Minute), pod("web-7c9d5-bbbbb", false, 20*time.Second)}},
			{Number: 2, ID: "5d8f6", Kind: "ReplicaSet", Name: "web-5d8f6", Images: []string{"app:v1"}, Role: "stable", Created: ago(2 * time.Hour),
				Pods: []podInfo{pod("web-5d8f6-ccccc", true, 2*time.Hour), pod("web-5d8f6-ddddd", true, 2*time.Hour)}},
			{Number: 1, ID: "4b7a2", Kind: "ReplicaSet", Name: "web-4b7a2", Images: []string{"app:v0"}, Created: ago(50 * time.Hour)},
			{Number: 0, ID: "39f01", Kind: "ReplicaSet", Name: "web-39f01", Images: []string{"app:v-1"}, Created: ago(60 * time.Hour)},
		},
		Now: now,
	}
}

func TestRenderTreeGolden(t *testing.T) {
	cases := map[string]func(*release){
		"paused-at-step-2": func(*release) {},
		"released": func(rel *release) {
			r := rel.Rollout
			r.Status.Phase = v1beta1.RolloutPhaseHealthy
			r.Status.Message = "Revision 7c9d5 of Deployment web is released"
			r.Status.CanaryStatus.CurrentStepIndex, r.Status.CanaryStatus.CurrentStepState = 3, v1beta1.CanaryStepStateCompleted
			r.Status.Conditions = []v1beta1.RolloutCondition{
				{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionFalse, Reason: v1beta1.ProgressingReasonCompleted},
				{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionTrue, Reason: v1beta1.ProgressingReasonCompleted},
			}
			rel.Workload.Held = false
			rel.Revisions[0].Role, rel.Revisions[1].Role, rel.Revisions[1].Pods = "stable", "", nil
			rel.Revisions[0].Pods = append(rel.Revisions[0].Pods, pod("web-7c9d5-eeeee", true, time.Minute), pod("web-7c9d5-fffff", true, time.Minute))
			rel.Revisions[0].Pods[1].Ready = true
		},
		"aborted-at-step-2": func(rel *release) {
			r := rel.Rollout
			r.Status.Phase = v1beta1.RolloutPhaseHealthy
			r.Status.Message = "The release of revision 7c9d5 was aborted (UserAbort: bad build); Deployment web is back on revision 5d8f6"
			r.Status.Abort = &v1beta1.RolloutAbortStatus{Reason: v1beta1.AbortReasonUser, Message: "bad build", Revision: "7c9d5", StepIndex: 2}
			r.Status.Conditions = []v1beta1.RolloutCondition{
				{Type: v1beta1.RolloutConditionProgressing, Status: corev1.ConditionFalse, Reason: v1beta1.ProgressingReasonAborted},
				{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionFalse, Reason: v1beta1.ProgressingReasonAborted},
			}
			rel.Workload.Held = false
			rel.Revisions[0].Role, rel.Revisions[0].Pods = "", []podInfo{{Name: "web-7c9d5-aaaaa", Phase: "Running", Deleting: true, Created: ago(3 * time.Minute)}}
			rel.Revisions[1].Role = "stable"
		},
		"promote-pending-and-paused": func(rel *release) {
			r := rel.Rollout
			r.Spec.Strategy.Paused = true
			r.Status.PendingAction = &v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 2, Full: true, RequestedBy: "alice"}
		},
		"workload-missing": func(rel *release) {
			rel.Workload, rel.Revisions = nil, nil
			rel.WorkloadError = `not found: deployments web in namespace demo (deployments.apps "web" not found)`
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			rel := fixtureRelease()
			mutate(rel)
			var buf bytes.Buffer
			renderTree(&buf, rel)
			golden := filepath.Join("testdata", "tree-"+name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./cmd/kubectl-rollouts -run TestRenderTreeGolden -update to create it")
			assert.Equal(t, string(want), buf.String())
		})
	}
}

// harness runs command lines against fake clients.
type harness struct {
	t    *testing.T
	ro   *rofake.Clientset
	kube *kubefake.Clientset
}

func newHarness(t *testing.T, ro []runtime.Object, kube ...runtime.Object) *harness {
	return &harness{t: t, ro: rofake.NewSimpleClientset(ro...), kube: kubefake.NewClientset(kube...)}
}

// run executes args and returns the exit code, stdout and stderr.
func (h *harness) run(args ...string) (int, string, string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	o := newOptions(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	o.ro, o.kube = h.ro, h.kube
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := execute(ctx, o, append(args, "-n", "demo"))
	return code, out.String(), errOut.String()
}

func TestArgumentValidation(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"promote"}, "promote needs the name of a Rollout: kubectl rollouts promote NAME"},
		{[]string{"abort", "a", "b"}, "abort takes one Rollout name, got 2"},
		{[]string{"status"}, "status needs the name of a Rollout"},
		{[]string{"status", "web", "--timeout", "-1s"}, "--timeout must not be negative"},
		{[]string{"status", "web", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"get", "-w"}, "get -w needs the name of one Rollout"},
		{[]string{"get", "a", "b"}, "accepts at most 1 arg(s)"},
		{[]string{"undo", "web", "--to-revision", "-1"}, "--to-revision must be a revision number"},
		{[]string{"dashboard", "--port", "70000"}, "--port must be 0-65535"},
		{[]string{"list", "extra"}, `unknown command "extra"`},
		{[]string{"promote", "web", "--reason", "x"}, "unknown flag: --reason"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, errOut := h.run(c.args...)
			assert.Equal(t, exitFailed, code)
			assert.Contains(t, errOut, c.want)
		})
	}
}

func deployment(held bool) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", Generation: 2},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v2"}}}},
		},
	}
	if held {
		d.Annotations = map[string]string{v1beta1.WorkloadOriginalStrategyAnnotation: "{}"}
	}
	return d
}

func TestStatusExitCodes(t *testing.T) {
	released := func() *v1beta1.Rollout {
		r := fixtureRollout()
		r.Status.Phase = v1beta1.RolloutPhaseHealthy
		r.Status.Message = "Revision 7c9d5 of Deployment web is released"
		r.Status.Conditions = []v1beta1.RolloutCondition{{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Completed"}}
		return r
	}
	aborted := released()
	aborted.Status.Conditions = []v1beta1.RolloutCondition{{Type: v1beta1.RolloutConditionSucceeded, Status: corev1.ConditionFalse, Reason: "Aborted", Message: "UserAbort: bad build"}}
	staleSpec := released()
	staleSpec.Generation = 2
	cases := []struct {
		name     string
		rollout  *v1beta1.Rollout
		held     bool
		wantCode int
		wantOut  string
	}{
		{"released", released(), false, exitOK, "released: Revision 7c9d5 of Deployment web is released"},
		{"aborted", aborted, false, exitFailed, "release failed (Aborted): UserAbort: bad build"},
		{"in progress", fixtureRollout(), true, exitTimeout, "timed out after 300ms"},
		{"healthy but the workload is held for a new release", released(), true, exitTimeout, "timed out"},
		{"spec not yet observed", staleSpec, false, exitTimeout, "timed out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, []runtime.Object{c.rollout}, deployment(c.held))
			code, out, errOut := h.run("status", "web", "--timeout", "300ms")
			assert.Equal(t, c.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			assert.Contains(t, out+errOut, c.wantOut)
			assert.Contains(t, out, summary(c.rollout), "status prints the state it saw")
		})
	}
}

func TestActionErrorsSayWhatToDo(t *testing.T) {
	gr := schema.GroupResource{Group: "rollout.kruise.io", Resource: "rollouts/promote"}
	cases := []struct {
		name   string
		err    error
		expect []string
	}{
		{"forbidden", apierrors.NewForbidden(gr, "web", nil), []string{
			`forbidden: you may not create rollouts/promote web in namespace demo (RBAC verb "create" on resource "rollouts/promote" in API group "rollout.kruise.io")`,
			"rollout-promoter", "kubectl create rolebinding"}},
		{"conflict", apierrors.NewConflict(gr, "web", errFromString("no release is in progress")), []string{
			"conflict: create rollouts/promote web in namespace demo was refused", "no release is in progress"}},
		{"not found", apierrors.NewNotFound(gr, "web"), []string{"not found: rollouts/promote web in namespace demo"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, []runtime.Object{fixtureRollout()})
			h.ro.PrependReactor("create", "rollouts", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, c.err })
			code, _, errOut := h.run("promote", "web")
			assert.Equal(t, exitFailed, code)
			for _, e := range c.expect {
				assert.Contains(t, errOut, e)
			}
		})
	}
}

type errFromString string

func (e errFromString) Error() string { return string(e) }

func TestPromoteSendsFullAndPrintsTheStep(t *testing.T) {
	h := newHarness(t, []runtime.Object{fixtureRollout()})
	var got *v1beta1.RolloutPromote
	h.ro.PrependReactor("create", "rollouts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		require.Equal(t, "promote", ca.GetSubresource())
		got = ca.GetObject().(*v1beta1.RolloutPromote)
		r := fixtureRollout()
		r.Status.PendingAction = &v1beta1.RolloutActionRequest{Type: v1beta1.RolloutActionPromote, StepIndex: 2, Full: true}
		return true, r, nil
	})
	code, out, errOut := h.run("promote", "web", "--full")
	require.Equal(t, exitOK, code, errOut)
	assert.True(t, got.Full)
	assert.Equal(t, "rollout demo/web fully promoted at step 2/3\n", out)
}

func TestUndoTarget(t *testing.T) {
	tpl := func(image string) *corev1.PodTemplateSpec {
		return &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	}
	withHash := tpl("app:v2")
	withHash.Labels["pod-template-hash"] = "7c9d5"
	revs := []revisionInfo{{Number: 3, Template: withHash}, {Number: 2, Template: tpl("app:v1")}, {Number: 1, Template: tpl("app:v0")}}
	w := &workloadInfo{Kind: "Deployment", Name: "web", Template: tpl("app:v2")}

	got, err := undoTarget(w, revs, 0)
	require.NoError(t, err)
	assert.EqualValues(t, 2, got.Number, "the revision before the current one")
	got, err = undoTarget(w, revs, 1)
	require.NoError(t, err)
	assert.EqualValues(t, 1, got.Number)
	_, err = undoTarget(w, revs, 3)
	assert.ErrorContains(t, err, "already runs the template of revision 3")
	_, err = undoTarget(w, revs, 9)
	assert.ErrorContains(t, err, "has no revision 9 (it has: 3, 2, 1)")
	_, err = undoTarget(w, revs[:1], 0)
	assert.ErrorContains(t, err, "no earlier revision")
}
