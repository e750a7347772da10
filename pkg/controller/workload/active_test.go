package workload

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func TestActiveRollout(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ro := func(name, apiVersion, kind, workload string, age int, mutate ...func(*v1beta1.Rollout)) *v1beta1.Rollout {
		r := &v1beta1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(base.Add(-time.Duration(age) * time.Minute))}}
		r.Spec.WorkloadRef = v1beta1.ObjectRef{APIVersion: apiVersion, Kind: kind, Name: workload}
		for _, m := range mutate {
			m(r)
		}
		return r
	}
	disabled := func(r *v1beta1.Rollout) { r.Spec.Disabled = true }
	deleting := func(r *v1beta1.Rollout) { now := metav1.NewTime(base); r.DeletionTimestamp = &now }

	tests := []struct {
		name     string
		rollouts []*v1beta1.Rollout
		want     string
	}{
		{"none", nil, ""},
		{"one", []*v1beta1.Rollout{ro("a", "apps/v1", "Deployment", "web", 1)}, "a"},
		{"other workload", []*v1beta1.Rollout{ro("a", "apps/v1", "Deployment", "db", 1)}, ""},
		{"other kind", []*v1beta1.Rollout{ro("a", "apps/v1", "StatefulSet", "web", 1)}, ""},
		{"other group", []*v1beta1.Rollout{ro("a", "apps.kruise.io/v1alpha1", "Deployment", "web", 1)}, ""},
		{"bad apiVersion", []*v1beta1.Rollout{ro("a", "a/b/c", "Deployment", "web", 1)}, ""},
		{"disabled", []*v1beta1.Rollout{ro("a", "apps/v1", "Deployment", "web", 1, disabled)}, ""},
		{"deleting", []*v1beta1.Rollout{ro("a", "apps/v1", "Deployment", "web", 1, deleting)}, ""},
		{"oldest wins", []*v1beta1.Rollout{ro("young", "apps/v1", "Deployment", "web", 1), ro("old", "apps/v1", "Deployment", "web", 5)}, "old"},
		{"tie by name", []*v1beta1.Rollout{ro("b", "apps/v1", "Deployment", "web", 1), ro("a", "apps/v1", "Deployment", "web", 1)}, "a"},
		{"inactive older skipped", []*v1beta1.Rollout{ro("old", "apps/v1", "Deployment", "web", 5, disabled), ro("young", "apps/v1", "Deployment", "web", 1)}, "young"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ActiveRollout(tt.rollouts, "Deployment", "web")
			if tt.want == "" {
				assert.Nil(t, got)
				return
			}
			if assert.NotNil(t, got) {
				assert.Equal(t, tt.want, got.Name)
			}
		})
	}
}
