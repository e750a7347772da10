// Package embeddedetcd runs a single-member etcd inside the server process,
// the storage of a one-replica install and of local runs. Its data directory
// persists, so objects survive restarts exactly as with an external etcd.
package embeddedetcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"
)

// startTimeout bounds how long a start may take; a healthy single member is
// ready in about a second, a large data directory takes longer to replay.
const startTimeout = 2 * time.Minute

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
	// ClientURL is where clients reach this etcd, on 127.0.0.1.
	ClientURL string
}

// Start brings up etcd with its data in dataDir, listening on free loopback
// ports, and waits until it serves. The member name is fixed, so a restart on
// the same directory finds its data.
func Start(ctx context.Context, dataDir string) (*Server, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating etcd data directory %s: %w", dataDir, err)
	}
	clientURL, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}
	peerURL, err := freeLoopbackURL()
	if err != nil {
		return nil, err
	}

	cfg := newConfig(dataDir, clientURL, peerURL)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", dataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-time.After(startTimeout):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after %s", startTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	klog.InfoS("Embedded etcd is ready", "dataDir", dataDir, "clientURL", clientURL.String())
	return &Server{etcd: e, ClientURL: clientURL.String()}, nil
}

// QuotaBackendBytes is the most the embedded etcd's database may grow to; past
// it etcd refuses writes (an alarm) instead of filling the volume it shares
// with nothing else. Size the data volume at about twice this (docs/install.md).
const QuotaBackendBytes = 2 << 30 // 2 GiB

// newConfig is the embedded etcd's configuration: one member on loopback,
// no JSON gateway (a second, HTTP door to every key that bypasses the API
// server's authorization), and a bounded database.
func newConfig(dataDir string, clientURL, peerURL *url.URL) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "rollout-apiserver"
	cfg.Dir = filepath.Clean(dataDir)
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.EnableGRPCGateway = false
	cfg.QuotaBackendBytes = QuotaBackendBytes
	// The generic server compacts every few minutes; etcd's own compaction
	// would only duplicate that work.
	cfg.AutoCompactionRetention = "0"
	return cfg
}

// Stop shuts etcd down and waits until its data is flushed and closed.
func (s *Server) Stop() {
	s.etcd.Close()
	klog.InfoS("Embedded etcd stopped")
}

// Errors reports fatal errors of the running etcd.
func (s *Server) Errors() <-chan error {
	return s.etcd.Err()
}

// freeLoopbackURL finds a port no one listens on. The port is released before
// etcd binds it; on a loopback address that race is not worth a retry loop.
func freeLoopbackURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port for embedded etcd: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("releasing port %s: %w", addr, err)
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}
