// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.kruise.rollout.v1alpha1
// +groupName=rollout.kruise.io

// Package v1alpha1 is the older version of rollout.kruise.io, in the shape of
// Kruise Rollout's rollouts.kruise.io/v1alpha1, plus the fields v1beta1 added so
// that conversion between the versions loses nothing.
package v1alpha1
