package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// StartShared starts a server outside of any one test, for a TestMain that
// shares one server among the tests of a package (each test then works in
// its own namespace). Its etcd data and certificates live in a new temporary
// directory. The returned stop shuts the server down and removes that
// directory; call it once m.Run has returned.
func StartShared() (s *Server, stop func(), err error) {
	root, err := os.MkdirTemp("", "rollout-apiserver-it-")
	if err != nil {
		return nil, nil, fmt.Errorf("temporary directory: %w", err)
	}
	removeRoot := func() { _ = os.RemoveAll(root) }
	certDir := filepath.Join(root, "certs")
	dataDir := filepath.Join(root, "etcd")
	o, err := standaloneOptions(certDir, dataDir)
	if err != nil {
		removeRoot()
		return nil, nil, fmt.Errorf("server options: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	instance, err := app.Prepare(ctx, o)
	if err != nil {
		cancel()
		removeRoot()
		return nil, nil, fmt.Errorf("preparing server: %w", err)
	}
	s = &Server{
		Config:      rest.CopyConfig(instance.Server.GenericAPIServer.LoopbackClientConfig),
		DataDir:     dataDir,
		EtcdServers: o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList,
		cancel:      cancel,
		done:        make(chan error, 1),
	}
	s.Config.QPS, s.Config.Burst = 1000, 2000
	go func() { s.done <- instance.Run(ctx) }()
	stop = func() {
		s.Stop()
		removeRoot()
	}
	if s.Client, err = versioned.NewForConfig(s.Config); err != nil {
		stop()
		return nil, nil, fmt.Errorf("clientset: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("server not ready: %w", err)
	}
	return s, stop, nil
}

// UnthrottledConfig is a copy of the server's client configuration with no
// client-side rate limit, for load tests that must measure the server.
func (s *Server) UnthrottledConfig() *rest.Config {
	c := rest.CopyConfig(s.Config)
	c.QPS, c.Burst = -1, 0
	return c
}
