package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/test/e2e/framework"
)

// TestControlPlaneRunsPods proves the harness itself: the Deployment controller makes a
// ReplicaSet and pods, the scheduler binds them to kwok's fake nodes, and kwok's Stages make
// them Running and Ready with pod IPs. Everything the rollout e2e tests do rests on this.
func TestControlPlaneRunsPods(t *testing.T) {
	c := framework.Get()
	ns := c.NewNamespace(t)
	ctx := context.Background()

	labels := map[string]string{"app": "smoke"}
	replicas := int32(3)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// kwok never pulls or runs images; any name will do.
					Containers: []corev1.Container{{Name: "app", Image: "fake-image:v1"}},
				},
			},
		},
	}
	start := time.Now()
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Deployment: %v", err)
	}

	framework.Eventually(t, 60*time.Second, 200*time.Millisecond, "3 Ready pods on kwok nodes",
		func(ctx context.Context) (bool, string) {
			pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=smoke"})
			if err != nil {
				return false, err.Error()
			}
			var ready []string
			var states []string
			for _, p := range pods.Items {
				states = append(states, fmt.Sprintf("%s node=%q phase=%s ip=%q ready=%v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, podReady(&p)))
				if podReady(&p) && strings.HasPrefix(p.Spec.NodeName, "kwok-node-") && p.Status.PodIP != "" {
					ready = append(ready, p.Name)
				}
			}
			return len(ready) == 3, strings.Join(states, "; ")
		})
	t.Logf("3 pods Ready on kwok nodes %s after creating the Deployment", time.Since(start).Round(10*time.Millisecond))

	framework.Eventually(t, 30*time.Second, 200*time.Millisecond, "Deployment status readyReplicas=3",
		func(ctx context.Context) (bool, string) {
			d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "smoke", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ReadyReplicas == 3 && d.Status.AvailableReplicas == 3, fmt.Sprintf("%+v", d.Status)
		})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
