package main

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	rolloutinformers "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/informers/externalversions"
)

// watchChanges signals on the returned channel whenever a Rollout of ns ("" for all), or a
// pod, ReplicaSet, ControllerRevision or Event of ns, changes. It runs on watches (informers
// that list once, then follow the watch and re-list only when the watch breaks), so a
// redraw costs no polling. Related kinds the user may not list are left out, so a user with
// rollout-viewer alone still sees the Rollout change. The channel holds at most one pending
// signal: bursts of events collapse into one redraw.
func watchChanges(ctx context.Context, ro versioned.Interface, kube kubernetes.Interface, ns string) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	rf := rolloutinformers.NewSharedInformerFactoryWithOptions(ro, 0, rolloutinformers.WithNamespace(ns))
	roInformer := rf.Rollout().V1beta1().Rollouts().Informer()
	if _, err := roInformer.AddEventHandler(handler); err != nil {
		return nil, err
	}
	synced := []cache.InformerSynced{roInformer.HasSynced}
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithNamespace(ns))
	related := []struct {
		resource string
		informer func() cache.SharedIndexInformer
		list     func() error
	}{
		{"pods", kf.Core().V1().Pods().Informer, func() error {
			_, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
		{"replicasets", kf.Apps().V1().ReplicaSets().Informer, func() error {
			_, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
		{"controllerrevisions", kf.Apps().V1().ControllerRevisions().Informer, func() error {
			_, err := kube.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
		{"events", kf.Core().V1().Events().Informer, func() error {
			_, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
	}
	if _, err := ro.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, explain(err, "list", "rollouts", ns, "")
	}
	for _, rel := range related {
		if rel.list() != nil {
			continue // not allowed (or not there): the tree shows what it can
		}
		inf := rel.informer()
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("watching %s: %w", rel.resource, err)
		}
		synced = append(synced, inf.HasSynced)
	}
	rf.Start(ctx.Done())
	kf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil, fmt.Errorf("watches did not start: %w", context.Cause(ctx))
	}
	notify()
	return ch, nil
}
