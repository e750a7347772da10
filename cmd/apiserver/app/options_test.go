package app

import (
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	netutils "k8s.io/utils/net"
)

// TestSelfSignedCertsStayInMemory runs the certificate defaulting from an
// empty working directory: nothing may be written there (a key pair written
// into a checkout was committed once) and nothing found there may be reused.
func TestSelfSignedCertsStayInMemory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	o := NewServerOptions()
	serving := o.RecommendedOptions.SecureServing
	require.NoError(t, serving.MaybeDefaultWithSelfSignedCerts(
		"localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}))

	assert.NotNil(t, serving.ServerCert.GeneratedCert, "the self-signed pair is served from memory")
	assert.Empty(t, serving.ServerCert.CertKey.CertFile)
	assert.Empty(t, serving.ServerCert.CertKey.KeyFile)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is written to the working directory")
}

// TestEmbeddedEtcdNeedsDataDir: without --etcd-servers the data directory
// must be named; there is no default relative to the working directory.
func TestEmbeddedEtcdNeedsDataDir(t *testing.T) {
	o := NewServerOptions()
	assert.Empty(t, o.EtcdDataDir)
	err := o.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--etcd-data-dir must be set")

	o.EtcdDataDir = t.TempDir()
	o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = nil
	err = o.Validate()
	if err != nil {
		assert.NotContains(t, err.Error(), "--etcd-data-dir")
	}
}
