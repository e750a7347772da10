//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the local
// cluster and the end-to-end tests run. Nothing here is compiled into the
// product; `make tools` builds these main packages into bin/.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
