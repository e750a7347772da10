// Package e2e holds the end-to-end tests: they run against a real control plane on this
// machine (see test/e2e/framework). `make tools` first; then `go test ./test/e2e/...`.
package e2e

import (
	"testing"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
