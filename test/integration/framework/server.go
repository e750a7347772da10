// Package framework runs the real rollout API server in the test process, on
// its embedded etcd, and hands out clients that reach it over HTTPS.
package framework

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// Server is an in-process rollout API server.
type Server struct {
	// Config reaches the server as a member of system:masters over HTTPS.
	Config *rest.Config
	// Client is the generated clientset on Config.
	Client versioned.Interface
	// DataDir is the embedded etcd's data directory; a new Server on the same
	// directory sees the same objects.
	DataDir string
	// EtcdServers is the etcd this server stores in (its embedded etcd's
	// unix socket, unless --etcd-servers was given): a second server with
	// these as --etcd-servers is another replica of the same installation.
	EtcdServers []string

	cancel context.CancelFunc
	done   chan error
}

// StartServer starts a server with its embedded etcd in dataDir (a new
// temporary directory when empty) and waits until it is ready. It stops when
// the test ends, unless Stop was called first. Options, if given, change the
// server's options (flags) before it starts.
func StartServer(t testing.TB, dataDir string, options ...func(*app.ServerOptions)) *Server {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "etcd")
	}
	o, err := standaloneOptions(t.TempDir(), dataDir)
	if err != nil {
		t.Fatalf("server options: %v", err)
	}
	for _, option := range options {
		option(o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("server options: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	instance, err := app.Prepare(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("preparing server: %v", err)
	}
	s := &Server{
		Config:      rest.CopyConfig(instance.Server.GenericAPIServer.LoopbackClientConfig),
		DataDir:     dataDir,
		EtcdServers: o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList,
		cancel:      cancel,
		done:        make(chan error, 1),
	}
	s.Config.QPS, s.Config.Burst = 1000, 2000
	go func() { s.done <- instance.Run(ctx) }()
	t.Cleanup(s.Stop)

	s.Client, err = versioned.NewForConfig(s.Config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	if err := s.waitReady(ctx); err != nil {
		t.Fatalf("server not ready: %v", err)
	}
	return s
}

// WithEtcdServers makes a server store in the given etcd instead of starting
// an embedded one, e.g. another server's EtcdServers.
func WithEtcdServers(servers []string) func(*app.ServerOptions) {
	return func(o *app.ServerOptions) {
		o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = servers
	}
}

// Stop shuts the server down (draining requests) and its etcd, and waits.
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	<-s.done
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("server exited: %w", err)
		default:
		}
		body, err := s.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%w: %s", err, body)
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// standaloneOptions configure a server with no host cluster: no delegated
// authentication or authorization lookups (the loopback identity is in
// system:masters, which is always allowed), no admission plugins that need
// the core API, no controller.
func standaloneOptions(certDir, dataDir string) (*app.ServerOptions, error) {
	o := app.NewServerOptions()
	ro := o.RecommendedOptions
	ro.CoreAPI = nil
	ro.Admission = nil
	ro.Features.EnablePriorityAndFairness = false
	ro.Authentication.RemoteKubeConfigFileOptional = true
	ro.Authorization.RemoteKubeConfigFileOptional = true
	ro.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	ro.SecureServing.ServerCert.CertDirectory = certDir
	listener, port, err := genericoptions.CreateListener("tcp", "127.0.0.1:0", net.ListenConfig{})
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}
	ro.SecureServing.Listener, ro.SecureServing.BindPort = listener, port
	o.EtcdDataDir = dataDir
	o.Controller.Enabled = false
	return o, o.Validate()
}
