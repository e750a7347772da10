package rollout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

func TestTableColumns(t *testing.T) {
	table, err := tableConvertor{}.ConvertToTable(context.Background(), newRollout("web"), nil)
	require.NoError(t, err)

	type column struct {
		name     string
		priority int32
	}
	var got []column
	for _, c := range table.ColumnDefinitions {
		got = append(got, column{c.Name, c.Priority})
		assert.NotEmpty(t, c.Description, "column %s has a description", c.Name)
		assert.Equal(t, "string", c.Type, "column %s", c.Name)
	}
	assert.Equal(t, []column{
		{"Name", 0}, {"Status", 0}, {"Step", 0}, {"State", 0}, {"Message", 0}, {"Age", 0},
		{"Workload", 1}, {"Canary-Revision", 1}, {"Traffic", 1}, {"Analysis", 1},
	}, got, "kubectl get prints priority 0; -o wide adds priority 1")
	assert.Equal(t, "name", table.ColumnDefinitions[0].Format)
}

func TestTableRows(t *testing.T) {
	cases := []struct {
		name string
		r    func() *rollout.Rollout
		want []interface{}
	}{
		{
			name: "new Rollout, no status yet",
			r:    func() *rollout.Rollout { return newRollout("web") },
			want: []interface{}{"web", "Initial", "-", "-", "", "3d", "Deployment/web", "-", "-", "-"},
		},
		{
			name: "healthy",
			r: func() *rollout.Rollout {
				r := newRollout("web")
				r.Status.Phase = rollout.RolloutPhaseHealthy
				r.Status.Message = "workload is healthy"
				return r
			},
			want: []interface{}{"web", "Healthy", "-", "-", "workload is healthy", "3d", "Deployment/web", "-", "-", "-"},
		},
		{
			name: "progressing at step 1 with traffic",
			r: func() *rollout.Rollout {
				r := progressing(newRollout("web"), 1, rollout.CanaryStepStateTrafficRouting)
				r.Status.Message = "routing 20% of traffic"
				return r
			},
			want: []interface{}{"web", "Progressing", "1/3", "StepTrafficRouting", "routing 20% of traffic", "3d", "Deployment/web", "5d8f7c9b", "20%", "-"},
		},
		{
			name: "paused at step 2, routed by header matches",
			r:    func() *rollout.Rollout { return progressing(newRollout("web"), 2, rollout.CanaryStepStatePaused) },
			want: []interface{}{"web", "Progressing", "2/3", "StepPaused", "", "3d", "Deployment/web", "5d8f7c9b", "matches", "-"},
		},
		{
			name: "last step, no traffic of its own",
			r:    func() *rollout.Rollout { return progressing(newRollout("web"), 3, rollout.CanaryStepStateCompleted) },
			want: []interface{}{"web", "Progressing", "3/3", "Completed", "", "3d", "Deployment/web", "5d8f7c9b", "-", "-"},
		},
		{
			name: "step index beyond the steps (spec shrank): no traffic",
			r: func() *rollout.Rollout {
				r := progressing(newRollout("web"), 3, rollout.CanaryStepStateUpgrade)
				r.Spec.Strategy.Canary.Steps = r.Spec.Strategy.Canary.Steps[:2]
				return r
			},
			want: []interface{}{"web", "Progressing", "3/2", "StepUpgrade", "", "3d", "Deployment/web", "5d8f7c9b", "-", "-"},
		},
		{
			name: "blue-green shows the updated revision",
			r: func() *rollout.Rollout {
				r := newRollout("db")
				r.Spec.WorkloadRef = rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindStatefulSet, Name: "db"}
				r.Spec.Strategy = rollout.RolloutStrategy{BlueGreen: &rollout.BlueGreenStrategy{
					Steps: []rollout.CanaryStep{{TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{Traffic: ptr.To("50%")}}, {}},
				}}
				r.Status = rollout.RolloutStatus{
					Phase: rollout.RolloutPhaseProgressing, CurrentStepIndex: 1, CurrentStepState: rollout.CanaryStepStateReady,
					BlueGreenStatus: &rollout.BlueGreenStatus{UpdatedRevision: "abc123"},
				}
				return r
			},
			want: []interface{}{"db", "Progressing", "1/2", "StepReady", "", "3d", "StatefulSet/db", "abc123", "50%", "-"},
		},
		{
			name: "metric checks of the current step",
			r: func() *rollout.Rollout {
				r := progressing(newRollout("web"), 2, rollout.CanaryStepStateMetricsAnalysis)
				r.Status.AnalysisResults = []rollout.MetricCheckResult{
					{Name: "error-rate", StepIndex: 1, Phase: rollout.MetricCheckSuccessful, LastValue: "0"},
					{Name: "error-rate", StepIndex: 2, Phase: rollout.MetricCheckRunning, LastValue: "0.01"},
					{Name: "latency", StepIndex: 2, Phase: rollout.MetricCheckRunning},
				}
				return r
			},
			want: []interface{}{"web", "Progressing", "2/3", "StepMetricsAnalysis", "", "3d", "Deployment/web", "5d8f7c9b", "matches", "error-rate Running 0.01, latency Running"},
		},
		{
			name: "disabled",
			r: func() *rollout.Rollout {
				r := newRollout("web")
				r.Spec.Disabled = true
				r.Status.Phase = rollout.RolloutPhaseDisabled
				return r
			},
			want: []interface{}{"web", "Disabled", "-", "-", "", "3d", "Deployment/web", "-", "-", "-"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			table, err := tableConvertor{}.ConvertToTable(context.Background(), r, &metav1.TableOptions{})
			require.NoError(t, err)
			require.Len(t, table.Rows, 1)
			row := table.Rows[0]
			assert.Equal(t, tc.want, row.Cells)
			assert.Len(t, row.Cells, len(table.ColumnDefinitions), "one cell per column")
			assert.Equal(t, "7", table.ResourceVersion)
			require.NotNil(t, row.Object.Object, "the row carries the object for kubectl")
		})
	}
}

func TestTableList(t *testing.T) {
	list := &rollout.RolloutList{
		ListMeta: metav1.ListMeta{ResourceVersion: "99", Continue: "next-page", RemainingItemCount: ptr.To[int64](5)},
		Items: []rollout.Rollout{
			*newRollout("a"),
			*progressing(newRollout("b"), 1, rollout.CanaryStepStatePaused),
		},
	}
	table, err := tableConvertor{}.ConvertToTable(context.Background(), list, nil)
	require.NoError(t, err)
	require.Len(t, table.Rows, 2)
	assert.Equal(t, "a", table.Rows[0].Cells[0])
	assert.Equal(t, "Initial", table.Rows[0].Cells[1])
	assert.Equal(t, "b", table.Rows[1].Cells[0])
	assert.Equal(t, "StepPaused", table.Rows[1].Cells[3])
	assert.Equal(t, "99", table.ResourceVersion)
	assert.Equal(t, "next-page", table.Continue)
	assert.Equal(t, ptr.To[int64](5), table.RemainingItemCount)

	empty, err := tableConvertor{}.ConvertToTable(context.Background(), &rollout.RolloutList{}, nil)
	require.NoError(t, err)
	assert.Empty(t, empty.Rows)
	assert.NotEmpty(t, empty.ColumnDefinitions, "an empty list still has headers")
}

func TestTableNoHeaders(t *testing.T) {
	table, err := tableConvertor{}.ConvertToTable(context.Background(), newRollout("web"), &metav1.TableOptions{NoHeaders: true})
	require.NoError(t, err)
	assert.Empty(t, table.ColumnDefinitions)
	require.Len(t, table.Rows, 1)
	assert.Equal(t, "web", table.Rows[0].Cells[0])
}

func TestTableRejectsOtherObjects(t *testing.T) {
	_, err := tableConvertor{}.ConvertToTable(context.Background(), &rollout.RolloutPromote{}, nil)
	assert.Error(t, err)
}
