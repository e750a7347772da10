package framework

import (
	"context"
	"path/filepath"
	"sync"
)

var shared struct {
	mu     sync.Mutex
	server *Server // the server SharedServer started itself, if it had to
}

// SharedServer returns a running rollout-apiserver behind the APIServices, for tests that
// need the API served but do not care how the server was started:
//
//   - the registered server some test started through StartServer, if it is still running
//     (one release test leaves its server up for the next; reusing it spares a restart);
//   - otherwise the one SharedServer started earlier, started again if a test stopped it
//     (or another StartServer replaced it);
//   - otherwise a new one with default options.
//
// A test that stops the returned server must start it again (Server.Start) before it ends,
// so that the next test finds the API served.
func (c *Cluster) SharedServer(ctx context.Context) (*Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()

	if s := c.runningRegisteredServer(); s != nil {
		return s, nil
	}
	if shared.server != nil {
		return shared.server, shared.server.Start(ctx)
	}
	s, err := c.StartServer(ctx, ServerOptions{})
	if err != nil {
		return nil, err
	}
	shared.server = s
	return s, nil
}

// runningRegisteredServer is the newest running server started through StartServer whose
// URL is the one the APIServices point at (replicas started with StartCandidate serve on
// ports of their own and do not count).
func (c *Cluster) runningRegisteredServer() *Server {
	renv, err := readEnvFile(filepath.Join(c.RunDir, "rollout", "env"))
	if err != nil {
		return nil // nothing registered yet
	}
	c.mu.Lock()
	servers := append([]*Server(nil), c.servers...)
	c.mu.Unlock()
	for i := len(servers) - 1; i >= 0; i-- {
		if s := servers[i]; s.URL == renv["ROLLOUT_URL"] && s.Running() {
			return s
		}
	}
	return nil
}
