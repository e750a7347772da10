package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// releaseStatefulSet: a StatefulSet of 5 released through its partition in three steps,
// 40% → 60% → 100%, each waiting for promote. The highest ordinals move first; at the end
// every pod runs the new revision and the update strategy (partition 0) is what it was.
func releaseStatefulSet(t *testing.T) {
	s := newScenario(t)
	s.givenStatefulSet("db", 5)
	s.givenRollout([]v1beta1.CanaryStep{step("40%"), step("60%"), step("100%")})

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 3})
	s.expectPartition(3)
	s.expectNewOrdinals("app:v2", "db-3", "db-4")

	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 3, "app:v1": 2})
	s.expectPartition(2)
	s.expectNewOrdinals("app:v2", "db-2", "db-3", "db-4")

	s.promote()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 5})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
}

// releaseDaemonSet: a DaemonSet on the 5 kwok nodes released in three steps, 40% → 60% →
// 100%, each waiting for promote, by deleting old pods under OnDelete; at the end every node
// runs the new revision and the RollingUpdate strategy is what it was.
func releaseDaemonSet(t *testing.T) {
	s := newScenario(t)
	s.givenDaemonSet("agent")
	if s.replicas != 5 {
		t.Fatalf("expected 5 kwok nodes, found %d", s.replicas)
	}
	s.givenRollout([]v1beta1.CanaryStep{step("40%"), step("60%"), step("100%")})

	s.updateImage("app:v2")
	s.waitForStep(1, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 2, "app:v1": 3})

	s.promote()
	s.waitForStep(2, v1beta1.CanaryStepStatePaused)
	s.expectPods(pods{"app:v2": 3, "app:v1": 2})

	s.promote()
	s.expectSucceeded()
	s.expectPods(pods{"app:v2": 5})
	s.expectWorkloadReleased(true)
	s.expectWorkloadOn("app:v2")
	s.expectOnePodPerNode()
}

// expectPartition checks the StatefulSet's RollingUpdate partition during the release.
func (s *scenario) expectPartition(partition int32) {
	s.t.Helper()
	s.eventually(waitTimeout, fmt.Sprintf("StatefulSet %s partition %d", s.name, partition), func(ctx context.Context) (bool, string) {
		sts, err := s.env.c.Client.AppsV1().StatefulSets(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		us := sts.Spec.UpdateStrategy
		ok := us.Type == appsv1.RollingUpdateStatefulSetStrategyType && us.RollingUpdate != nil && us.RollingUpdate.Partition != nil && *us.RollingUpdate.Partition == partition
		return ok, jsonString(us)
	})
}

// expectNewOrdinals checks which StatefulSet pods run the revision of image.
func (s *scenario) expectNewOrdinals(image string, names ...string) {
	s.t.Helper()
	want := strings.Join(names, ",")
	s.eventually(waitTimeout, fmt.Sprintf("pods %s (and only they) on %s", want, image), func(ctx context.Context) (bool, string) {
		revs, err := s.revisionsOf(ctx)
		if err != nil {
			return false, err.Error()
		}
		onImage := map[string]bool{}
		for _, r := range revs[image] {
			onImage[r] = true
		}
		list, err := s.env.c.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for i := range list.Items {
			p := &list.Items[i]
			if podAlive(p) && onImage[p.Labels[appsv1.ControllerRevisionHashLabelKey]] {
				got = append(got, p.Name)
			}
		}
		sort.Strings(got)
		return strings.Join(got, ",") == want, strings.Join(got, ",")
	})
}

// expectOnePodPerNode: every node runs exactly one live pod of the DaemonSet.
func (s *scenario) expectOnePodPerNode() {
	s.t.Helper()
	s.eventually(waitTimeout, "one live pod per node", func(ctx context.Context) (bool, string) {
		list, err := s.env.c.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		perNode := map[string]int{}
		for i := range list.Items {
			if p := &list.Items[i]; podAlive(p) {
				perNode[p.Spec.NodeName]++
			}
		}
		ok := len(perNode) == int(s.replicas)
		for _, n := range perNode {
			ok = ok && n == 1
		}
		return ok, fmt.Sprintf("%v", perNode)
	})
}
