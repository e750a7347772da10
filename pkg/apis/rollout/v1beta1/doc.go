// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.kruise.rollout.v1beta1
// +groupName=rollout.kruise.io

// Package v1beta1 is the storage and preferred version of rollout.kruise.io,
// field-compatible with Kruise Rollout's rollouts.kruise.io/v1beta1.
package v1beta1
