package v1alpha1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// SetDefaults_MetricCheck fills the measurement interval, count and consecutive-error limit, so that a
// check written as just a query and a condition measures once, after 30s.
func SetDefaults_MetricCheck(obj *MetricCheck) { //nolint:revive // name required by defaulter-gen
	if obj.Interval.Duration == 0 {
		obj.Interval.Duration = rollout.DefaultMetricCheckInterval
	}
	if obj.Count == 0 {
		obj.Count = rollout.DefaultMetricCheckCount
	}
	if obj.ConsecutiveErrorLimit == nil {
		limit := int32(rollout.DefaultConsecutiveErrorLimit)
		obj.ConsecutiveErrorLimit = &limit
	}
}

// Kruise's annotation that picks the rolling style of a v1alpha1 Rollout, and
// the same name under our group's prefix for users who renamed every prefix.
const (
	KruiseRollingStyleAnnotation = "rollouts.kruise.io/rolling-style"
	RollingStyleAnnotation       = "rollout.kruise.io/rolling-style"
	// PartitionRollingStyle is the annotation value that means in place.
	PartitionRollingStyle = "partition"
)

// SetDefaults_Rollout applies Kruise's v1alpha1 rolling-style rule (Kruise's
// v1alpha1 Rollout.ConvertTo sets enableExtraWorkloadForCanary unless the
// rolling-style annotation says "partition", case-insensitively): a Deployment
// Rollout written in v1alpha1 without that annotation is released through an
// extra canary Deployment. Only Deployments have that style, so other kinds
// stay in place. An explicit field, as every v1alpha1 read returns it, wins.
func SetDefaults_Rollout(obj *Rollout) { //nolint:revive // name required by defaulter-gen
	c := obj.Spec.Strategy.Canary
	if c == nil || c.EnableExtraWorkloadForCanary != nil {
		return
	}
	ref := obj.Spec.ObjectRef.WorkloadRef
	partition := strings.EqualFold(obj.Annotations[KruiseRollingStyleAnnotation], PartitionRollingStyle) ||
		strings.EqualFold(obj.Annotations[RollingStyleAnnotation], PartitionRollingStyle)
	extra := ref != nil && ref.Kind == rollout.KindDeployment && !partition
	c.EnableExtraWorkloadForCanary = &extra
}

// SetDefaults_CanaryStep applies Kruise's v1alpha1 rule for a step that gives
// only a weight (Kruise's v1alpha1 Rollout.ConvertTo: replicas unset and weight
// set ⇒ replicas "<weight>%"): the step releases that share of the pods.
func SetDefaults_CanaryStep(obj *CanaryStep) { //nolint:revive // name required by defaulter-gen
	if obj.Replicas == nil && obj.Weight != nil {
		v := intstr.FromString(fmt.Sprintf("%d%%", *obj.Weight))
		obj.Replicas = &v
	}
}
