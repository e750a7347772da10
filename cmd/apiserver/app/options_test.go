package app

import (
	"net"
	"os"
	"testing"

	"github.com/spf13/pflag"
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

// TestControllerClientLimits: the controller's two client limits (host cluster,
// its own Rollout API over loopback) are separate flags with separate
// defaults, and a limit that would stop the controller is refused by name.
func TestControllerClientLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o *ServerOptions)
	}{
		{name: "defaults", check: func(t *testing.T, o *ServerOptions) {
			assert.Equal(t, float32(50), o.Controller.KubeAPIQPS)
			assert.Equal(t, 100, o.Controller.KubeAPIBurst)
			assert.Equal(t, float32(200), o.Controller.RolloutAPIQPS)
			assert.Equal(t, 400, o.Controller.RolloutAPIBurst)
		}},
		{name: "set apart", args: []string{"--controller-kube-api-qps=20", "--controller-rollout-api-qps=500", "--controller-rollout-api-burst=900"},
			check: func(t *testing.T, o *ServerOptions) {
				assert.Equal(t, float32(20), o.Controller.KubeAPIQPS)
				assert.Equal(t, float32(500), o.Controller.RolloutAPIQPS)
				assert.Equal(t, 900, o.Controller.RolloutAPIBurst)
			}},
		{name: "zero rollout qps", args: []string{"--controller-rollout-api-qps=0"}, wantErr: "--controller-rollout-api-qps must be positive"},
		{name: "zero rollout burst", args: []string{"--controller-rollout-api-burst=0"}, wantErr: "--controller-rollout-api-burst at least 1"},
		{name: "negative kube qps", args: []string{"--controller-kube-api-qps=-1"}, wantErr: "--controller-kube-api-qps must be positive"},
		{name: "controller off: no limits needed", args: []string{"--enable-controller=false", "--controller-rollout-api-qps=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewServerOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			require.NoError(t, fs.Parse(tc.args))
			if tc.check != nil {
				tc.check(t, o)
			}
			err := o.Validate()
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			if err != nil {
				assert.NotContains(t, err.Error(), "--controller-")
			}
		})
	}
}
