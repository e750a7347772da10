// Command kubectl-rollouts is the kubectl plugin for rollout.kruise.io Rollouts: it shows a
// release as a tree of steps, revisions and pods, drives it through the action subresources
// (promote, pause, resume, abort), waits for it in CI (status), and serves a local dashboard.
// With this binary on PATH, `kubectl rollouts ...` runs it.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(run(os.Args[1:], streams))
}
