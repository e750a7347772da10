package validation

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/install"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// TestExamplesAreValid: every Rollout in artifacts/examples passes validation, so
// that `make run`, which applies them, never meets a 422.
func TestExamplesAreValid(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "..", "artifacts", "examples", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	seen := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if err != nil {
				break
			}
			var meta struct{ APIVersion, Kind string }
			require.NoError(t, yaml.Unmarshal(doc, &meta))
			if meta.Kind != "Rollout" || meta.APIVersion != v1beta1.SchemeGroupVersion.String() {
				continue
			}
			var ro v1beta1.Rollout
			require.NoError(t, yaml.UnmarshalStrict(doc, &ro), f)
			scheme.Default(&ro)
			var internal rollout.Rollout
			require.NoError(t, scheme.Convert(&ro, &internal, nil))
			assert.Empty(t, ValidateRollout(&internal), "%s: Rollout %s", filepath.Base(f), ro.Name)
			seen++
		}
	}
	assert.Positive(t, seen)
	t.Logf("%d example Rollouts valid", seen)
}
