package statefulset

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/internal/fakecluster"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
)

func TestRevertKeepsTemplateAndHold(t *testing.T) {
	for _, tc := range []struct {
		name    string
		unready int32
		// most is the most pods of the aborted revision deleted in one pass.
		most int32
	}{
		{name: "ready pods go one at a time", most: 1},
		{name: "unready pods go at once", unready: 3, most: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ro := fakecluster.NewRollout("ro", v1beta1.KindStatefulSet, "db")
			c := fakecluster.New(t, fakecluster.NewStatefulSet("db", "v1", 5), ro)
			c.Settle()
			c.SetImage(v1beta1.KindStatefulSet, "db", "v2", true)
			c.Settle()
			r := New(c.Deps)
			info := upgradeUntilReady(t, c, r, ro, 3)
			stable, canary := info.StableRevision, info.CanaryRevision
			c.Unready[canary] = tc.unready
			c.Settle()
			ro.Status.Phase = v1beta1.RolloutPhaseAborted
			ro.Status.CanaryStatus = &v1beta1.CanaryStatus{CommonStatus: v1beta1.CommonStatus{StableRevision: stable}, CanaryRevision: canary}

			var done bool
			for range 20 {
				info, err := r.Observe(ctx, ro)
				require.NoError(t, err)
				before := c.Pods(c.StatefulSet("db").UID, appsv1.ControllerRevisionHashLabelKey)[canary]
				done, err = r.Revert(ctx, ro, info)
				require.NoError(t, err)
				if done {
					break
				}
				c.Refresh()
				after := c.Pods(c.StatefulSet("db").UID, appsv1.ControllerRevisionHashLabelKey)[canary]
				assert.LessOrEqual(t, before-after, tc.most, "deleted at once")
				c.Settle()
			}
			require.True(t, done)
			s := c.StatefulSet("db")
			assert.Equal(t, int32(5), workload.HeldPartition(s), "partition = replicas: no ordinal is updated")
			assert.Equal(t, "v2", s.Spec.Template.Spec.Containers[0].Image, "the template stays as the user wrote it")
			assert.True(t, workload.IsHeld(s))
			pods := c.Pods(s.UID, appsv1.ControllerRevisionHashLabelKey)
			assert.Equal(t, map[string]int32{stable: 5}, pods, "every pod is back on the stable revision")
		})
	}
}
