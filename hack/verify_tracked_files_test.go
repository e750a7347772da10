package hack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifyTrackedFiles runs hack/verify-tracked-files.sh on throwaway
// repositories: each forbidden kind of file makes it fail, naming the file.
func TestVerifyTrackedFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	script, err := filepath.Abs("verify-tracked-files.sh")
	require.NoError(t, err)
	// Split so that this file itself holds no key marker.
	keyPEM := "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"

	cases := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{name: "clean", files: map[string]string{"main.go": "package main\n", "testdata/big.bin": strings.Repeat("x", 2<<20)}},
		{name: "private key", files: map[string]string{"apiserver.local.config/certificates/apiserver.key": keyPEM}, wantErr: "private key"},
		{name: "etcd data", files: map[string]string{"rollout-apiserver.etcd/member/wal/0.wal": "x"}, wantErr: "etcd data directory"},
		{name: "member dir anywhere", files: map[string]string{"data/member/snap/db": "x"}, wantErr: "etcd data directory"},
		{name: "big file", files: map[string]string{"artifacts/blob.bin": strings.Repeat("x", 1<<20+1)}, wantErr: "over 1 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			git(t, repo, "init", "-q")
			for name, content := range tc.files {
				path := filepath.Join(repo, name)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			}
			git(t, repo, "add", "-A")

			out, err := exec.Command(script, repo).CombinedOutput()
			if tc.wantErr == "" {
				require.NoError(t, err, string(out))
				return
			}
			require.Error(t, err)
			assert.Contains(t, string(out), tc.wantErr)
		})
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}
