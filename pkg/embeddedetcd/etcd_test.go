package embeddedetcd

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestConfigIsLockedDown: no JSON gateway (an HTTP path to every key past
// authorization) and a backend quota, on loopback only.
func TestConfigIsLockedDown(t *testing.T) {
	client := &url.URL{Scheme: "http", Host: "127.0.0.1:2379"}
	peer := &url.URL{Scheme: "http", Host: "127.0.0.1:2380"}
	cfg := newConfig(t.TempDir(), client, peer)
	assert.False(t, cfg.EnableGRPCGateway)
	assert.Equal(t, int64(QuotaBackendBytes), cfg.QuotaBackendBytes)
	for _, u := range append(cfg.ListenClientUrls, cfg.ListenPeerUrls...) {
		assert.Equal(t, "127.0.0.1", u.Hostname())
	}
}
