package rollout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/install"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
)

func testStrategy() rolloutStrategy {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return NewStrategy(scheme, validation.AddressPolicy{})
}

func TestStrategyBasics(t *testing.T) {
	s := testStrategy()
	assert.True(t, s.NamespaceScoped())
	assert.False(t, s.AllowCreateOnUpdate(context.Background()), "an update must never create a Rollout")
	assert.True(t, s.AllowUnconditionalUpdate(context.Background()))
}

func TestPrepareForCreateClearsStatusAndSetsGeneration(t *testing.T) {
	r := progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused)
	r.Status.Message = "written by a client that should not"
	r.Status.PendingAction = &rollout.RolloutActionRequest{Type: rollout.RolloutActionAbort}
	r.Generation = 42
	spec := *r.Spec.DeepCopy()

	testStrategy().PrepareForCreate(context.Background(), r)

	assert.Equal(t, rollout.RolloutStatus{}, r.Status, "status is the controller's; a create cannot set it")
	assert.Equal(t, int64(1), r.Generation)
	assert.Equal(t, spec, r.Spec, "spec is kept as sent")
}

func TestPrepareForUpdate(t *testing.T) {
	cases := []struct {
		name           string
		change         func(r *rollout.Rollout)
		wantGeneration int64
	}{
		{name: "no change", change: func(*rollout.Rollout) {}, wantGeneration: 3},
		{name: "labels only", change: func(r *rollout.Rollout) { r.Labels["tier"] = "web" }, wantGeneration: 3},
		{name: "annotations only", change: func(r *rollout.Rollout) { r.Annotations["note"] = "x" }, wantGeneration: 3},
		{name: "status only (ignored)", change: func(r *rollout.Rollout) { r.Status.Message = "client-written" }, wantGeneration: 3},
		{name: "paused", change: func(r *rollout.Rollout) { r.Spec.Strategy.Paused = true }, wantGeneration: 4},
		{name: "disabled", change: func(r *rollout.Rollout) { r.Spec.Disabled = true }, wantGeneration: 4},
		{name: "progress deadline", change: func(r *rollout.Rollout) { r.Spec.ProgressDeadlineSeconds = ptr.To[int32](60) }, wantGeneration: 4},
		{name: "step traffic", change: func(r *rollout.Rollout) { r.Spec.Strategy.Canary.Steps[0].Traffic = ptr.To("30%") }, wantGeneration: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused)
			updated := old.DeepCopy()
			updated.Status = rollout.RolloutStatus{} // a client that PUTs without status
			tc.change(updated)

			testStrategy().PrepareForUpdate(context.Background(), updated, old)

			assert.Equal(t, old.Status, updated.Status, "the main resource keeps the stored status")
			assert.Equal(t, tc.wantGeneration, updated.Generation)
		})
	}
}

// The bumped generation derives from the stored one, never from what the
// client sent (rest.BeforeUpdate also resets it before the strategy runs).
func TestPrepareForUpdateGenerationFollowsOldOnSpecChange(t *testing.T) {
	old := newRollout("web")
	updated := old.DeepCopy()
	updated.Generation = 100
	updated.Spec.Disabled = true
	testStrategy().PrepareForUpdate(context.Background(), updated, old)
	assert.Equal(t, old.Generation+1, updated.Generation, "a spec change bumps the stored generation by one")
}

func TestStatusStrategyPrepareForUpdate(t *testing.T) {
	old := newRollout("web")
	old.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u1"}}
	updated := progressing(old.DeepCopy(), 1, rollout.CanaryStepStateUpgrade)
	// Everything a status writer must not be able to change:
	updated.Spec.Strategy.Paused = true
	updated.Spec.WorkloadRef.Name = "other"
	updated.Labels = map[string]string{"hijacked": "true"}
	updated.Annotations = nil
	updated.Finalizers = []string{"example.com/other"}
	updated.OwnerReferences = nil

	NewStatusStrategy(testStrategy()).PrepareForUpdate(controllerContext(), updated, old)

	assert.Equal(t, old.Spec, updated.Spec)
	assert.Equal(t, old.Labels, updated.Labels)
	assert.Equal(t, old.Annotations, updated.Annotations)
	assert.Equal(t, old.Finalizers, updated.Finalizers)
	assert.Equal(t, old.OwnerReferences, updated.OwnerReferences)
	assert.Equal(t, old.Generation, updated.Generation, "a status write never bumps the generation")
	assert.Equal(t, rollout.RolloutPhaseProgressing, updated.Status.Phase, "status is what the writer sent")
	assert.Equal(t, int32(1), updated.Status.CurrentStepIndex)
}

func TestActionStrategyPrepareForUpdateKeepsSpecAndStatus(t *testing.T) {
	cases := []struct {
		name           string
		change         func(r *rollout.Rollout)
		wantGeneration int64
	}{
		{name: "status only", change: func(r *rollout.Rollout) {
			r.Status.PendingAction = &rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 2}
		}, wantGeneration: 3},
		{name: "spec only", change: func(r *rollout.Rollout) { r.Spec.Strategy.Paused = true }, wantGeneration: 4},
		{name: "spec and status", change: func(r *rollout.Rollout) {
			r.Spec.Strategy.Paused = true
			r.Status.Message = "paused by alice"
		}, wantGeneration: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused)
			updated := old.DeepCopy()
			tc.change(updated)
			want := updated.DeepCopy()

			actionStrategy{testStrategy()}.PrepareForUpdate(context.Background(), updated, old)

			assert.Equal(t, want.Spec, updated.Spec, "the action's spec change is kept")
			assert.Equal(t, want.Status, updated.Status, "the action's status change is kept")
			assert.Equal(t, tc.wantGeneration, updated.Generation)
		})
	}
}

func TestValidateUpdateOfEachStrategy(t *testing.T) {
	s := testStrategy()
	old := progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused)

	t.Run("main: workloadRef cannot change while progressing", func(t *testing.T) {
		updated := old.DeepCopy()
		updated.Spec.WorkloadRef.Name = "other"
		errs := s.ValidateUpdate(context.Background(), updated, old)
		require.Len(t, errs, 1)
		assert.Equal(t, "spec.workloadRef", errs[0].Field)
	})
	t.Run("status: an unknown phase is refused", func(t *testing.T) {
		updated := old.DeepCopy()
		updated.Status.Phase = "Exploding"
		errs := NewStatusStrategy(s).ValidateUpdate(controllerContext(), updated, old)
		require.Len(t, errs, 1)
		assert.Equal(t, "status.phase", errs[0].Field)
	})
	t.Run("action: checks both spec and status", func(t *testing.T) {
		updated := old.DeepCopy()
		updated.Spec.WorkloadRef.Name = "other"
		updated.Status.PendingAction = &rollout.RolloutActionRequest{Type: "Explode"}
		errs := actionStrategy{s}.ValidateUpdate(context.Background(), updated, old)
		var paths []string
		for _, e := range errs {
			paths = append(paths, e.Field)
		}
		assert.ElementsMatch(t, []string{"spec.workloadRef", "status.pendingAction.type"}, paths)
	})
	t.Run("create: a valid Rollout passes", func(t *testing.T) {
		assert.Empty(t, s.Validate(context.Background(), newRollout("web")))
	})
}

func TestGetResetFields(t *testing.T) {
	s := testStrategy()
	versions := []fieldpath.APIVersion{"rollout.kruise.io/v1beta1", "rollout.kruise.io/v1alpha1"}
	cases := []struct {
		name string
		got  map[fieldpath.APIVersion]*fieldpath.Set
		want *fieldpath.Set
	}{
		{
			name: "main resource resets status",
			got:  s.GetResetFields(),
			want: fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
		},
		{
			name: "status resets spec and user-owned metadata",
			got:  NewStatusStrategy(s).GetResetFields(),
			want: fieldpath.NewSet(
				fieldpath.MakePathOrDie("spec"),
				fieldpath.MakePathOrDie("metadata", "labels"),
				fieldpath.MakePathOrDie("metadata", "annotations"),
				fieldpath.MakePathOrDie("metadata", "finalizers"),
				fieldpath.MakePathOrDie("metadata", "ownerReferences"),
			),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, tc.got, len(versions))
			for _, v := range versions {
				require.Contains(t, tc.got, v)
				assert.True(t, tc.want.Equals(tc.got[v]), "%s: got %s, want %s", v, tc.got[v], tc.want)
			}
		})
	}
	t.Run("actions reset nothing", func(t *testing.T) {
		assert.Empty(t, actionStrategy{s}.GetResetFields())
	})
}

func TestGetAttrs(t *testing.T) {
	r := progressing(newRollout("web"), 1, rollout.CanaryStepStateUpgrade)
	r.Spec.WorkloadRef = rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindStatefulSet, Name: "db"}

	ls, fs, err := GetAttrs(r)
	require.NoError(t, err)
	assert.Equal(t, labels.Set{"app": "web"}, ls)
	assert.Equal(t, fields.Set{
		"metadata.name":         "web",
		"metadata.namespace":    "default",
		"spec.workloadRef.name": "db",
		"spec.workloadRef.kind": "StatefulSet",
		"status.phase":          "Progressing",
	}, fs)

	_, _, err = GetAttrs(&rollout.RolloutList{})
	assert.Error(t, err, "only Rollouts have attributes")
}

func TestMatch(t *testing.T) {
	web := newRollout("web")
	db := progressing(newRollout("db"), 1, rollout.CanaryStepStateUpgrade)
	cases := []struct {
		name     string
		label    string
		field    string
		wantWeb  bool
		wantDB   bool
		indexKey string
	}{
		{name: "everything", wantWeb: true, wantDB: true},
		{name: "by workload name", field: "spec.workloadRef.name=db", wantDB: true},
		{name: "by workload kind", field: "spec.workloadRef.kind=Deployment", wantWeb: true, wantDB: true},
		{name: "by phase", field: "status.phase=Progressing", wantDB: true},
		{name: "by name", field: "metadata.name=web", wantWeb: true},
		{name: "by label", label: "app=web", wantWeb: true},
		{name: "by label and field", label: "app=web", field: "spec.workloadRef.name=db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls, err := labels.Parse(tc.label)
			require.NoError(t, err)
			fs, err := fields.ParseSelector(tc.field)
			require.NoError(t, err)
			p := Match(ls, fs)
			assert.Equal(t, []string{FieldWorkloadName}, p.IndexFields, "the workload name is indexed")

			got, err := p.Matches(web)
			require.NoError(t, err)
			assert.Equal(t, tc.wantWeb, got, "web")
			got, err = p.Matches(db)
			require.NoError(t, err)
			assert.Equal(t, tc.wantDB, got, "db")
		})
	}
}

func TestWorkloadIndexAndTrigger(t *testing.T) {
	r := newRollout("web")
	r.Spec.WorkloadRef.Name = "frontend"
	assert.Equal(t, "frontend", workloadNameTrigger(r))
	keys, err := workloadNameIndex(r)
	require.NoError(t, err)
	assert.Equal(t, []string{"frontend"}, keys)
	_, err = workloadNameIndex("not a rollout")
	assert.Error(t, err)
}

// Validation errors name the fields a v1alpha1 client sent.
func TestV1alpha1FieldPath(t *testing.T) {
	for hub, want := range map[string]string{
		"spec.workloadRef":                                "spec.objectRef.workloadRef",
		"spec.workloadRef.name":                           "spec.objectRef.workloadRef.name",
		"spec.workloadRef.kind":                           "spec.objectRef.workloadRef.kind",
		"spec.strategy.canary.steps[0].traffic":           "spec.strategy.canary.steps[0].weight",
		"spec.strategy.blueGreen.steps[12].traffic":       "spec.strategy.blueGreen.steps[12].weight",
		"spec.strategy.canary.steps[0].replicas":          "spec.strategy.canary.steps[0].replicas",
		"spec.strategy.canary.trafficRoutings[0].service": "spec.strategy.canary.trafficRoutings[0].service",
		"status.currentStepIndex":                         "status.currentStepIndex",
	} {
		assert.Equal(t, want, V1alpha1FieldPath(hub), hub)
	}
}

// controllerContext is a request by the embedded controller (the loopback identity).
func controllerContext() context.Context {
	return genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: user.APIServerUser})
}

// A user's status write other than Kruise's approve or jump is refused; the
// approve of a paused step becomes a pending promote.
func TestUserStatusWrites(t *testing.T) {
	s := NewStatusStrategy(testStrategy())
	bob := genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: "bob"})
	old := progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused)

	forged := old.DeepCopy()
	forged.Status.Phase = rollout.RolloutPhaseHealthy
	s.PrepareForUpdate(bob, forged, old)
	errs := s.ValidateUpdate(bob, forged, old)
	require.Len(t, errs, 1)
	assert.Equal(t, "status", errs[0].Field)
	assert.Contains(t, errs[0].Detail, "status is written by the controller")

	approve := old.DeepCopy()
	approve.Status.CanaryStatus.CurrentStepState = rollout.CanaryStepStateReady
	s.PrepareForUpdate(bob, approve, old)
	assert.Empty(t, s.ValidateUpdate(bob, approve, old))
	require.NotNil(t, approve.Status.PendingAction)
	assert.Equal(t, rollout.RolloutActionPromote, approve.Status.PendingAction.Type)
	assert.Equal(t, int32(2), approve.Status.PendingAction.StepIndex)
	assert.Equal(t, "bob", approve.Status.PendingAction.RequestedBy)
	assert.Equal(t, rollout.CanaryStepStatePaused, approve.Status.CanaryStatus.CurrentStepState)

	jump := old.DeepCopy()
	jump.Status.CanaryStatus.NextStepIndex = 3
	s.PrepareForUpdate(bob, jump, old)
	assert.Empty(t, s.ValidateUpdate(bob, jump, old))
	require.NotNil(t, jump.Status.PendingAction)
	assert.Equal(t, ptr.To[int32](3), jump.Status.PendingAction.ToStepIndex)

	forgedAction := old.DeepCopy()
	forgedAction.Status.PendingAction = &rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 2, Full: true, RequestedBy: "bob"}
	s.PrepareForUpdate(bob, forgedAction, old)
	assert.Len(t, s.ValidateUpdate(bob, forgedAction, old), 1, "a forged full promote is refused")
}
