package e2e

import (
	"sync"
	"testing"
)

// TestRelease runs every release scenario (release_*_test.go) at the same time, each as a
// subtest in its own namespace against one rollout-apiserver. They are started from
// goroutines rather than with t.Parallel so that all of them run at once whatever go test's
// -parallel is (it defaults to GOMAXPROCS, 2 on the machines this runs on, which would run
// them two by two and take several minutes). Pick scenarios with -run, e.g.
//
//	E2E_RUN_DIR=_output/e2e-rel go test ./test/e2e/ -run 'TestRelease/(Abort|PauseResume)$' -v
func TestRelease(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"DeploymentInPlace", releaseDeploymentInPlace},
		{"DeploymentExtraCanary", releaseDeploymentExtraCanary},
		{"StatefulSet", releaseStatefulSet},
		{"DaemonSet", releaseDaemonSet},
		{"Abort", releaseAbort},
		{"RevertToStable", releaseRevertToStable},
		{"NewRevisionMidRelease", releaseNewRevisionMidRelease},
		{"PauseResume", releasePauseResume},
		{"PromoteFull", releasePromoteFull},
		{"DisabledMidRelease", releaseDisabledMidRelease},
		{"DeletedMidRelease", releaseDeletedMidRelease},
		{"ProgressDeadline", releaseProgressDeadline},
	}
	releaseEnvironment(t)
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, sc.run) })
	}
	wg.Wait()
}
