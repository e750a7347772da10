package app

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apiserver/pkg/server/healthz"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/webhook"
)

// TestFatalEtcdErrorIsReturned: an embedded etcd failing under the server
// stops it with an error (a non-zero exit), not as a clean shutdown.
func TestFatalEtcdErrorIsReturned(t *testing.T) {
	fatal := make(chan error, 1)
	fatal <- errors.New("disk full")
	err := runUntilFatal(context.Background(), fatal, func(ctx context.Context) error {
		<-ctx.Done() // the server stops when its context ends, cleanly
		return nil
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.NoError(t, runUntilFatal(ctx, make(chan error), func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}), "a requested stop is clean")
}

// TestControllerPanicIsFatal: a panic in the controller's post-start
// goroutine is recovered and reported, so the process stops cleanly and
// exits non-zero instead of crashing the API and the embedded etcd with it.
func TestControllerPanicIsFatal(t *testing.T) {
	failed := make(chan error, 1)
	runController(context.Background(), func(context.Context) error { panic("injected") }, failed)
	select {
	case err := <-failed:
		assert.ErrorContains(t, err, "panic: injected")
	case <-time.After(10 * time.Second):
		t.Fatal("the panic was not reported")
	}
	failed = make(chan error, 1)
	runController(context.Background(), func(context.Context) error { return nil }, failed)
	assert.Empty(t, failed, "a clean stop reports nothing")
}

// TestAlwaysAllowPathsAreAdditive: an operator's
// --authorization-always-allow-paths adds to the paths the server needs.
func TestAlwaysAllowPathsAreAdditive(t *testing.T) {
	o := NewServerOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	require.NoError(t, fs.Parse([]string{"--authorization-always-allow-paths=/metrics"}))
	require.Equal(t, []string{"/metrics"}, o.RecommendedOptions.Authorization.AlwaysAllowPaths, "the flag replaces its default")

	got := withRequiredAlwaysAllowPaths(o.RecommendedOptions.Authorization.AlwaysAllowPaths)
	assert.ElementsMatch(t, []string{"/metrics", "/healthz", "/readyz", "/livez"}, got)
	assert.NotContains(t, NewServerOptions().RecommendedOptions.Authorization.AlwaysAllowPaths, webhook.Path,
		"the webhook is authorized like any other path: only kube-apiserver's identity may call it")
}

// TestLivezWithoutEtcd: the etcd check leaves /livez, other checks stay.
func TestLivezWithoutEtcd(t *testing.T) {
	check := func(name string) healthz.HealthChecker {
		return healthz.NamedCheck(name, func(*http.Request) error { return nil })
	}
	got := withoutHealthChecks([]healthz.HealthChecker{check("ping"), check("etcd"), check("log")}, "etcd")
	names := make([]string, 0, len(got))
	for _, c := range got {
		names = append(names, c.Name())
	}
	assert.Equal(t, []string{"ping", "log"}, names)
}

func TestShutdownDelayFlag(t *testing.T) {
	o := NewServerOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	require.NoError(t, fs.Parse([]string{"--shutdown-delay-duration=10s"}))
	assert.Equal(t, 10*time.Second, o.ShutdownDelay)
	o.ShutdownDelay = -time.Second
	o.EtcdDataDir = t.TempDir()
	err := o.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--shutdown-delay-duration")
}
