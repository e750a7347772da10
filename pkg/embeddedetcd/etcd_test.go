package embeddedetcd

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestConfigIsLockedDown: no JSON gateway (an HTTP path to every key past
// authorization), a backend quota, clients on a unix socket and no peer
// listener at all.
func TestConfigIsLockedDown(t *testing.T) {
	cfg := newConfig(t.TempDir(), socketURL("/run/x/etcd.sock"), socketURL("/run/x/peer.sock"))
	assert.False(t, cfg.EnableGRPCGateway)
	assert.Equal(t, int64(QuotaBackendBytes), cfg.QuotaBackendBytes)
	require.Len(t, cfg.ListenClientUrls, 1)
	assert.Equal(t, "unix:///run/x/etcd.sock", cfg.ListenClientUrls[0].String())
	assert.Empty(t, cfg.ListenPeerUrls)
	// A short in-memory raft log: each entry holds a whole object.
	assert.Equal(t, uint64(SnapshotCount), cfg.SnapshotCount)
	assert.Equal(t, uint64(SnapshotCatchUpEntries), cfg.SnapshotCatchUpEntries)
}

// TestReachableOnlyThroughItsSocket starts the embedded etcd and checks what
// an attacker in the pod or on the host would find: a socket that only the
// server's user may open, in a private directory, and no TCP port at all.
// A client on the socket reads and writes.
func TestReachableOnlyThroughItsSocket(t *testing.T) {
	before := listeningTCPInodes(t)
	s, err := Start(context.Background(), Config{DataDir: filepath.Join(t.TempDir(), "etcd")})
	require.NoError(t, err)
	t.Cleanup(s.Stop)

	assert.Equal(t, "unix://"+s.SocketPath, s.ClientURL)
	info, err := os.Stat(s.SocketPath)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, info.Mode().Type(), "a socket")
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "socket mode")
	dir, err := os.Stat(filepath.Dir(s.SocketPath))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), dir.Mode().Perm(), "socket directory mode")

	opened := map[string]bool{}
	for inode := range listeningTCPInodes(t) {
		if !before[inode] {
			opened[inode] = true
		}
	}
	assert.Empty(t, opened, "the embedded etcd listens on TCP")

	client, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientURL}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.Put(ctx, "/probe", "ok")
	require.NoError(t, err)
	got, err := client.Get(ctx, "/probe")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.Equal(t, "ok", string(got.Kvs[0].Value))

	// A scheduled defragmentation runs on the live database.
	require.NoError(t, s.defragment())

	socketDir := filepath.Dir(s.SocketPath)
	s.Stop()
	_, err = os.Stat(socketDir)
	assert.True(t, os.IsNotExist(err), "the socket directory is removed at stop")
}

// TestMaintenanceFailuresAreContained: an error or a panic in a scheduled
// maintenance run is logged and the schedule goes on.
func TestMaintenanceFailuresAreContained(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		runEvery(ctx, 10*time.Millisecond, "test", func() error {
			runs++
			switch runs {
			case 1:
				return errors.New("injected")
			case 2:
				panic("injected")
			case 3:
				cancel()
			}
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the schedule stopped after a failure")
	}
	assert.GreaterOrEqual(t, runs, 3)
}

// listeningTCPInodes lists the socket inodes of this process's TCP sockets
// in LISTEN state (state 0A in /proc/net/tcp and tcp6).
func listeningTCPInodes(t *testing.T) map[string]bool {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			fields := strings.Fields(scanner.Text())
			if len(fields) > 9 && fields[3] == "0A" && mine[fields[9]] {
				out[fields[9]] = true
			}
		}
		require.NoError(t, f.Close())
	}
	return out
}
