//go:build tools

// Package hack pins code-generator in go.mod, so hack/update-codegen.sh runs
// the same generators on every machine.
package hack

import _ "k8s.io/code-generator"
