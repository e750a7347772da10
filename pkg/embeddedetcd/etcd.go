// Package embeddedetcd runs a single-member etcd inside the server process,
// the storage of a one-replica install and of local runs. Its data directory
// persists, so objects survive restarts exactly as with an external etcd.
//
// Only the server's own process can reach it: etcd listens on a unix socket
// (mode 0600, in a directory of mode 0700) and on no TCP port, because etcd
// itself has no authentication here and anything that reached it would
// bypass the API server's authorization.
package embeddedetcd

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"
)

// startTimeout bounds how long a start may take; a healthy single member is
// ready in about a second, a large data directory takes longer to replay.
const startTimeout = 2 * time.Minute

// DefaultDefragInterval is how often the embedded etcd gives back the space
// that compaction freed: compaction only marks old revisions free, the
// database file keeps its size until a defragmentation rewrites it.
const DefaultDefragInterval = 24 * time.Hour

// Config is what an embedded etcd is started with.
type Config struct {
	// DataDir holds etcd's data; it is created (mode 0700) if missing.
	DataDir string
	// DefragInterval is how often the database is defragmented; 0 never.
	DefragInterval time.Duration
}

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
	// ClientURL is where clients reach this etcd: unix:///…/etcd.sock.
	ClientURL string
	// SocketPath is the client socket's file.
	SocketPath string

	socketDir  string
	stopDefrag context.CancelFunc
	defragDone chan struct{}
	stopOnce   sync.Once

	// inProcess is the stores' client (storage.go); compactMu guards its
	// compactor.
	inProcess inProcess
	compactMu sync.Mutex
}

// Start brings up etcd with its data in cfg.DataDir, listening on a unix
// socket in a new private directory under the temporary directory ($TMPDIR),
// and waits until it serves. The member name is fixed, so a restart on the
// same directory finds its data.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating etcd data directory %s: %w", cfg.DataDir, err)
	}
	// A socket path must fit in 108 bytes, which a data directory may not
	// leave room for; the temporary directory is short and private (0700).
	socketDir, err := os.MkdirTemp("", "rollout-apiserver-etcd-")
	if err != nil {
		return nil, fmt.Errorf("creating the embedded etcd's socket directory: %w", err)
	}
	s := &Server{socketDir: socketDir, SocketPath: filepath.Join(socketDir, "etcd.sock")}
	clientURL := socketURL(s.SocketPath)
	s.ClientURL = clientURL.String()

	e, err := startEtcd(ctx, newConfig(cfg.DataDir, clientURL, socketURL(filepath.Join(socketDir, "peer.sock"))))
	if err != nil {
		_ = os.RemoveAll(socketDir)
		return nil, err
	}
	s.etcd = e
	// The socket is made with the process's umask; only the owner may use
	// it (the directory is private already, this does not rely on that).
	if err := os.Chmod(s.SocketPath, 0o600); err != nil {
		s.Stop()
		return nil, fmt.Errorf("restricting the embedded etcd's socket %s: %w", s.SocketPath, err)
	}
	klog.InfoS("Embedded etcd is ready", "dataDir", cfg.DataDir, "socket", s.SocketPath)

	defragCtx, stop := context.WithCancel(context.Background())
	s.stopDefrag, s.defragDone = stop, make(chan struct{})
	go func() {
		defer close(s.defragDone)
		runEvery(defragCtx, cfg.DefragInterval, "Defragmenting the embedded etcd", s.defragment)
	}()
	return s, nil
}

func startEtcd(ctx context.Context, cfg *embed.Config) (*embed.Etcd, error) {
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
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
}

// socketURL is the unix:// URL of the socket at the absolute path:
// unix:///path, the form both etcd and its client read as a file path.
func socketURL(path string) *url.URL {
	return &url.URL{Scheme: "unix", Path: path}
}

// QuotaBackendBytes is the most the embedded etcd's database may grow to; past
// it etcd refuses writes (an alarm) instead of filling the volume it shares
// with nothing else. Size the data volume at about twice this (docs/install.md).
const QuotaBackendBytes = 2 << 30 // 2 GiB

// SnapshotCount is how many applied entries trigger a snapshot, after which
// etcd drops all but SnapshotCatchUpEntries of its in-memory raft log. Every
// entry holds a whole written object (a few KiB of JSON for a Rollout), so
// etcd's defaults (10,000 and 5,000) keep up to 15,000 writes, ~45 MB for
// 2 KiB Rollouts, on the heap. A single member has no follower to catch up,
// and its snapshots are cheap (the keys live in the bbolt file, a snapshot
// records only the raft state), so small values cost little.
const (
	SnapshotCount          = 2000
	SnapshotCatchUpEntries = 500
)

// newConfig is the embedded etcd's configuration: one member on unix
// sockets, no JSON gateway (a second, HTTP door to every key that bypasses
// the API server's authorization), and a bounded database.
func newConfig(dataDir string, clientURL, peerURL *url.URL) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "rollout-apiserver"
	cfg.Dir = filepath.Clean(dataDir)
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	// One member has no peers to talk to, so it listens for none; it still
	// advertises a peer URL because etcd names a member by it.
	cfg.ListenPeerUrls = nil
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.EnableGRPCGateway = false
	cfg.QuotaBackendBytes = QuotaBackendBytes
	cfg.SnapshotCount = SnapshotCount
	cfg.SnapshotCatchUpEntries = SnapshotCatchUpEntries
	// The generic server compacts every few minutes
	// (--etcd-compaction-interval); etcd's own compaction would only
	// duplicate that work.
	cfg.AutoCompactionRetention = "0"
	return cfg
}

// defragment rewrites the database file without the space that compaction
// freed. Writes wait while it runs; a database within QuotaBackendBytes takes
// seconds at most.
func (s *Server) defragment() error {
	be := s.etcd.Server.Backend()
	before, start := be.Size(), time.Now()
	if err := be.Defrag(); err != nil {
		return fmt.Errorf("defragmenting the embedded etcd: %w", err)
	}
	klog.InfoS("Defragmented the embedded etcd", "sizeBefore", before, "sizeAfter", be.Size(),
		"inUse", be.SizeInUse(), "took", time.Since(start))
	return nil
}

// runEvery calls do every interval until ctx is done (never when interval is
// not positive). An error or a panic in do is logged and the schedule goes
// on: a failed maintenance run must not stop the server.
func runEvery(ctx context.Context, interval time.Duration, what string, do func() error) {
	if interval <= 0 {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			runRecovered(what, do)
		}
	}
}

func runRecovered(what string, do func() error) {
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", r), what+" panicked")
		}
	}()
	if err := do(); err != nil {
		klog.ErrorS(err, what+" failed")
	}
}

// Stop shuts etcd down, waits until its data is flushed and closed, and
// removes its sockets.
// Stopping twice is harmless.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.stopDefrag != nil {
			s.stopDefrag()
			<-s.defragDone
		}
		s.compactMu.Lock()
		if s.inProcess.stop != nil {
			s.inProcess.stop()
		}
		s.compactMu.Unlock()
		s.etcd.Close()
		_ = os.RemoveAll(s.socketDir)
		klog.InfoS("Embedded etcd stopped")
	})
}

// ClusterID identifies this etcd's data: it is made when the data directory
// is first initialised and kept across restarts on it.
func (s *Server) ClusterID() string {
	return s.etcd.Server.Cluster().ID().String()
}

// Errors reports fatal errors of the running etcd.
func (s *Server) Errors() <-chan error {
	return s.etcd.Err()
}
