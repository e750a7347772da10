package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryLimit(t *testing.T) {
	gib := int64(1 << 30)
	for _, tc := range []struct {
		name       string
		flag, env  string
		cgroup     int64
		want       int64
		wantSource string
		wantErr    bool
	}{
		{name: "nothing set, no cgroup limit", want: 0, wantSource: ""},
		{name: "from the cgroup limit", cgroup: 1 << 30, want: int64(float64(gib) * memoryLimitShare), wantSource: "cgroup memory limit"},
		{name: "GOMEMLIMIT wins over the cgroup", env: "700MiB", cgroup: 1 << 30, wantSource: "GOMEMLIMIT"},
		{name: "the flag wins over both", flag: "512Mi", env: "700MiB", cgroup: 1 << 30, want: 512 << 20, wantSource: "--memory-limit"},
		{name: "flag 0 turns it off", flag: "0", cgroup: 1 << 30, want: 0, wantSource: "--memory-limit"},
		{name: "bad quantity", flag: "lots", wantErr: true},
		{name: "negative", flag: "-1Gi", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, source, err := memoryLimit(tc.flag, tc.env, tc.cgroup)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantSource, source)
		})
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cgroup string
		files  map[string]string
		want   int64
	}{
		{name: "v2 with a limit", cgroup: "0::/pod/c1\n", files: map[string]string{"pod/c1/memory.max": "1073741824\n"}, want: 1 << 30},
		{name: "v2 without a limit", cgroup: "0::/pod/c1\n", files: map[string]string{"pod/c1/memory.max": "max\n"}, want: 0},
		{name: "v2 namespaced at the mount", cgroup: "0::/\n", files: map[string]string{"memory.max": "536870912\n"}, want: 512 << 20},
		{name: "v1 with a limit", cgroup: "4:memory:/pod/c1\n1:cpu:/\n", files: map[string]string{"memory/pod/c1/memory.limit_in_bytes": "268435456\n"}, want: 256 << 20},
		{name: "v1 unlimited", cgroup: "4:memory:/x\n", files: map[string]string{"memory/x/memory.limit_in_bytes": "9223372036854771712\n"}, want: 0},
		{name: "nothing readable", cgroup: "", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				path := filepath.Join(root, "fs", name)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			}
			self := filepath.Join(root, "cgroup")
			require.NoError(t, os.WriteFile(self, []byte(tc.cgroup), 0o644))
			oldRoot, oldSelf := cgroupRoot, procSelfCgroup
			cgroupRoot, procSelfCgroup = filepath.Join(root, "fs"), self
			t.Cleanup(func() { cgroupRoot, procSelfCgroup = oldRoot, oldSelf })
			assert.Equal(t, tc.want, cgroupMemoryLimit())
		})
	}
}
