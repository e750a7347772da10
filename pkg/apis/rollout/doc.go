// +k8s:deepcopy-gen=package
// +groupName=rollout.kruise.io

// Package rollout holds the internal (hub) types of the rollout.kruise.io API
// group. Every served version converts to and from these types, which is what
// makes multi-version serving work without a conversion webhook.
package rollout
