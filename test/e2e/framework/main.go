package framework

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

var current *Cluster

// Main is the body of an e2e package's TestMain: it brings the control plane up (or fails
// the whole package, with the reason, e.g. binaries missing), runs the tests and tears down.
// Ctrl-C/SIGTERM also tear down, so no control plane is left behind.
func Main(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := Setup(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup failed: %v\n", err)
		if c != nil {
			_ = c.Teardown(true)
		}
		os.Exit(1)
	}
	current = c

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		logf("%v: tearing down", sig)
		_ = c.Teardown(true)
		os.Exit(2)
	}()

	code := m.Run()
	signal.Stop(sigs)
	if err := c.Teardown(code != 0); err != nil {
		fmt.Fprintf(os.Stderr, "e2e teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Get returns the cluster Main set up.
func Get() *Cluster {
	if current == nil {
		panic("framework.Get: call framework.Main(m) from the package's TestMain")
	}
	return current
}
