package apiserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// getTable asks for rollouts (or one Rollout) as a Table, the way kubectl get does.
func getTable(ctx context.Context, t *testing.T, ns, name string, params map[string]string) metav1.Table {
	t.Helper()
	req := server.Client.RolloutV1beta1().RESTClient().Get().
		Namespace(ns).Resource("rollouts").
		SetHeader("Accept", tableAccept)
	if name != "" {
		req = req.Name(name)
	}
	for k, v := range params {
		req = req.Param(k, v)
	}
	raw, err := req.DoRaw(ctx)
	require.NoError(t, err, "%s", raw)
	var table metav1.Table
	require.NoError(t, json.Unmarshal(raw, &table))
	require.Equal(t, "Table", table.Kind)
	require.Equal(t, "meta.k8s.io/v1", table.APIVersion)
	return table
}

// kubectl get rollouts prints NAME, STATUS, STEP, STATE, MESSAGE, AGE, and
// -o wide adds the workload, the canary revision and the traffic; each
// Rollout is a row.
func TestTableOutput(t *testing.T) {
	ctx, ns := testContext(t), newNamespace(t)
	create(ctx, t, ns, newRollout("idle", "idle"))
	create(ctx, t, ns, newRollout("web", "web"))
	st := atStep(1, v1beta1.CanaryStepStatePaused)
	st.Message = "waiting for promote"
	setStatus(ctx, t, ns, "web", st)

	table := getTable(ctx, t, ns, "", nil)

	var columns, wide []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			columns = append(columns, strings.ToUpper(c.Name))
		} else {
			assert.Equal(t, int32(1), c.Priority, "column %s", c.Name)
			wide = append(wide, strings.ToUpper(c.Name))
		}
	}
	assert.Equal(t, []string{"NAME", "STATUS", "STEP", "STATE", "MESSAGE", "AGE"}, columns)
	assert.Equal(t, []string{"WORKLOAD", "CANARY-REVISION", "TRAFFIC", "ANALYSIS"}, wide)
	assert.NotEmpty(t, table.ResourceVersion)

	require.Len(t, table.Rows, 2, "one row per Rollout")
	rows := map[string][]interface{}{}
	for _, row := range table.Rows {
		require.Len(t, row.Cells, len(table.ColumnDefinitions))
		rows[row.Cells[0].(string)] = row.Cells
		assert.NotEmpty(t, row.Object.Raw, "rows carry the object's metadata for kubectl")
	}
	require.Contains(t, rows, "idle")
	require.Contains(t, rows, "web")
	assert.Equal(t, []interface{}{"idle", "Initial", "-", "-", ""}, rows["idle"][:5])
	assert.Equal(t, []interface{}{"Deployment/idle", "-", "-", "-"}, rows["idle"][6:])
	assert.Equal(t, []interface{}{"web", "Progressing", "1/3", "StepPaused", "waiting for promote"}, rows["web"][:5])
	assert.Equal(t, []interface{}{"Deployment/web", "5d8f7c9b", "20%", "-"}, rows["web"][6:])
	assert.NotEmpty(t, rows["web"][5], "AGE")

	// One Rollout is one row.
	one := getTable(ctx, t, ns, "web", nil)
	require.Len(t, one.Rows, 1)
	assert.Equal(t, "web", one.Rows[0].Cells[0])

	// includeObject=None drops the embedded objects (headers are kept).
	bare := getTable(ctx, t, ns, "", map[string]string{"includeObject": "None"})
	require.Len(t, bare.Rows, 2)
	assert.Empty(t, bare.Rows[0].Object.Raw, "includeObject=None leaves the object out")
}
