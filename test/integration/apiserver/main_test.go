// Package apiserver tests the rollout API server as clients see it: the real
// server runs in the test process on its embedded etcd and is reached over
// HTTPS with the generated clientset. The tests share one server; each works
// in a namespace of its own.
package apiserver

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	rolloutv1beta1 "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/typed/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

// server is the API server every test of this package talks to.
var server *framework.Server

func TestMain(m *testing.M) {
	s, stop, err := framework.StartShared()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the rollout API server: %v\n", err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	stop()
	os.Exit(code)
}

var namespaceSeq atomic.Int32

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// newNamespace returns a namespace no other test uses. The server has no
// namespace admission, so Rollouts can live in it without creating it.
func newNamespace(t *testing.T) string {
	name := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = name[len(name)-50:]
	}
	return fmt.Sprintf("%s-%d", strings.Trim(name, "-"), namespaceSeq.Add(1))
}

// testContext bounds a test so that a hung server fails it instead of the run.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rollouts(ns string) rolloutv1beta1.RolloutInterface {
	return server.Client.RolloutV1beta1().Rollouts(ns)
}

func percent(s string) *intstr.IntOrString { return ptr.To(intstr.FromString(s)) }

// newRollout is a valid three-step canary Rollout of Deployment workload,
// routed through an Ingress: step 1 sends 20% of the traffic, step 2 waits
// for a promote, step 3 finishes.
func newRollout(name, workload string) *v1beta1.Rollout {
	return &v1beta1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": workload}},
		Spec: v1beta1.RolloutSpec{
			WorkloadRef: v1beta1.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Name: workload},
			Strategy: v1beta1.RolloutStrategy{Canary: &v1beta1.CanaryStrategy{
				Steps: []v1beta1.CanaryStep{
					{Replicas: percent("20%"), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("20%")}},
					{Replicas: percent("50%"), TrafficRoutingStrategy: v1beta1.TrafficRoutingStrategy{Traffic: ptr.To("50%")}},
					{Replicas: percent("100%")},
				},
				TrafficRoutings: []v1beta1.TrafficRoutingRef{{
					Service: workload,
					Ingress: &v1beta1.IngressTrafficRouting{Name: workload},
				}},
			}},
		},
	}
}

// create stores r in ns and fails the test on an error.
func create(ctx context.Context, t *testing.T, ns string, r *v1beta1.Rollout) *v1beta1.Rollout {
	t.Helper()
	created, err := rollouts(ns).Create(ctx, r, metav1.CreateOptions{})
	require.NoError(t, err, "creating Rollout %s/%s", ns, r.Name)
	return created
}

// setStatus writes status through the status subresource, the way the
// controller does, starting from the stored object.
func setStatus(ctx context.Context, t *testing.T, ns, name string, status v1beta1.RolloutStatus) *v1beta1.Rollout {
	t.Helper()
	r, err := rollouts(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	r.Status = status
	updated, err := rollouts(ns).UpdateStatus(ctx, r, metav1.UpdateOptions{})
	require.NoError(t, err, "writing status of %s/%s", ns, name)
	return updated
}

// atStep is the status of a release at step (1-based) in state.
func atStep(step int32, state v1beta1.CanaryStepState) v1beta1.RolloutStatus {
	return v1beta1.RolloutStatus{
		ObservedGeneration: 1,
		Phase:              v1beta1.RolloutPhaseProgressing,
		Message:            fmt.Sprintf("step %d is %s", step, state),
		CurrentStepIndex:   step,
		CurrentStepState:   state,
		CanaryStatus: &v1beta1.CanaryStatus{
			CommonStatus: v1beta1.CommonStatus{
				CurrentStepIndex: step, NextStepIndex: step + 1, CurrentStepState: state,
				PodTemplateHash: "5d8f7c9b",
			},
			CanaryRevision: "5d8f7c9b",
		},
	}
}

// causeFields are the field paths an API error names.
func causeFields(err error) []string {
	var out []string
	if status, ok := err.(interface{ Status() metav1.Status }); ok {
		if d := status.Status().Details; d != nil {
			for _, c := range d.Causes {
				out = append(out, c.Field)
			}
		}
	}
	return out
}
