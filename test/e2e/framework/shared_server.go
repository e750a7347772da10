package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
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

	s := c.runningRegisteredServer()
	switch {
	case s != nil:
	case shared.server != nil:
		s = shared.server
		if err := s.Start(ctx); err != nil {
			return nil, err
		}
	default:
		var err error
		if s, err = c.StartServer(ctx, ServerOptions{}); err != nil {
			return nil, err
		}
		shared.server = s
	}
	// A server that earlier tests killed and restarted can be ready before
	// the aggregator has marked both APIServices Available again, and until
	// then discovery lists only some versions of the group.
	return s, c.WaitGroupServed(ctx)
}

// WaitGroupServed waits until both APIServices are Available and discovery
// lists every version of rollout.kruise.io with v1beta1 preferred.
func (c *Cluster) WaitGroupServed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.WaitAPIServiceAvailable(ctx); err != nil {
		return err
	}
	var last string
	err := pollUntil(ctx, 200*time.Millisecond, func(context.Context) (bool, error) {
		groups, err := c.Client.Discovery().ServerGroups()
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, g := range groups.Groups {
			if g.Name == "rollout.kruise.io" {
				last = fmt.Sprintf("versions %v, preferred %s", g.Versions, g.PreferredVersion.Version)
				return len(g.Versions) == 2 && g.PreferredVersion.Version == "v1beta1", nil
			}
		}
		last = "group not in discovery"
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("rollout.kruise.io not fully served: %w (last: %s)", err, last)
	}
	return nil
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
