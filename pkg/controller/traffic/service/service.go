// Package service manages the Services of a release: the canary Service
// that selects only the new revision's pods, and the stable Service pinned
// to the stable revision while the release runs and restored exactly after.
package service

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/route"
)

// CanaryName is the name of the canary Service of a stable Service.
func CanaryName(stable string) string {
	return stable + "-canary"
}

// Manager creates, pins and restores the Services of releases.
type Manager struct {
	Kube     kubernetes.Interface
	Services corelisters.ServiceLister
}

// stable reads the stable Service from the cache.
func (m *Manager) stable(namespace, name string) (*corev1.Service, error) {
	svc, err := m.Services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("Service %s/%s named in trafficRoutings does not exist", namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	return svc, nil
}

// Pin makes the stable Service select only the stable revision's pods and
// keeps its original selector in an annotation; it reports whether it wrote.
func (m *Manager) Pin(ctx context.Context, namespace, name string, rev route.Revision) (bool, error) {
	svc, err := m.stable(namespace, name)
	if err != nil {
		return false, err
	}
	want, err := PinnedStable(svc, rev)
	if err != nil {
		return false, fmt.Errorf("Service %s/%s: %w", namespace, name, err)
	}
	if apiequality.Semantic.DeepEqual(want, svc) {
		return false, nil
	}
	if _, err := m.Kube.CoreV1().Services(namespace).Update(ctx, want, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("pinning Service %s/%s to revision %s: %w", namespace, name, rev.Stable, err)
	}
	return true, nil
}

// PinnedStable is svc selecting only the stable revision, with its original
// selector recorded.
func PinnedStable(svc *corev1.Service, rev route.Revision) (*corev1.Service, error) {
	out := svc.DeepCopy()
	annotations, original, err := route.SaveOriginal(svc.Annotations, svc.Spec.Selector)
	if err != nil {
		return nil, err
	}
	out.Annotations = annotations
	out.Spec.Selector = maps.Clone(original)
	if out.Spec.Selector == nil {
		out.Spec.Selector = map[string]string{}
	}
	out.Spec.Selector[rev.Key] = rev.Stable
	return out, nil
}

// Restore gives the stable Service back its original selector; it reports
// whether it wrote. A missing Service has nothing to restore.
func (m *Manager) Restore(ctx context.Context, namespace, name string) (bool, error) {
	svc, err := m.Services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	want, ok, err := RestoredStable(svc)
	if err != nil {
		return false, fmt.Errorf("Service %s/%s: %w", namespace, name, err)
	}
	if !ok {
		return false, nil
	}
	if _, err := m.Kube.CoreV1().Services(namespace).Update(ctx, want, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("restoring the selector of Service %s/%s: %w", namespace, name, err)
	}
	return true, nil
}

// RestoredStable is svc with its recorded selector back; ok is false when
// nothing was recorded.
func RestoredStable(svc *corev1.Service) (*corev1.Service, bool, error) {
	annotations, original, ok, err := route.TakeOriginal[map[string]string](svc.Annotations)
	if err != nil || !ok {
		return nil, false, err
	}
	out := svc.DeepCopy()
	out.Annotations = annotations
	out.Spec.Selector = original
	return out, true, nil
}

// EnsureCanary creates or corrects the canary Service of the stable Service
// name, owned by ro; it reports whether it wrote.
func (m *Manager) EnsureCanary(ctx context.Context, ro *v1beta1.Rollout, name string, rev route.Revision) (bool, error) {
	stable, err := m.stable(ro.Namespace, name)
	if err != nil {
		return false, err
	}
	want, err := Canary(stable, ro, rev)
	if err != nil {
		return false, fmt.Errorf("Service %s/%s: %w", ro.Namespace, name, err)
	}
	have, err := m.Services.Services(ro.Namespace).Get(want.Name)
	switch {
	case apierrors.IsNotFound(err):
		if _, err := m.Kube.CoreV1().Services(ro.Namespace).Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating the canary Service %s/%s: %w", ro.Namespace, want.Name, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading Service %s/%s: %w", ro.Namespace, want.Name, err)
	}
	if !metav1.IsControlledBy(have, ro) {
		return false, fmt.Errorf("Service %s/%s exists and is not the canary Service of Rollout %s; rename it or set disableGenerateCanaryService", ro.Namespace, want.Name, ro.Name)
	}
	if apiequality.Semantic.DeepEqual(have.Spec.Selector, want.Spec.Selector) && apiequality.Semantic.DeepEqual(have.Spec.Ports, want.Spec.Ports) {
		return false, nil
	}
	update := have.DeepCopy()
	update.Spec.Selector, update.Spec.Ports = want.Spec.Selector, want.Spec.Ports
	if _, err := m.Kube.CoreV1().Services(ro.Namespace).Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("updating the canary Service %s/%s: %w", ro.Namespace, want.Name, err)
	}
	return true, nil
}

// Canary is the canary Service of stable: the same ports and the original
// selector narrowed to the new revision, owned by ro so that it goes away
// with the Rollout.
func Canary(stable *corev1.Service, ro *v1beta1.Rollout, rev route.Revision) (*corev1.Service, error) {
	selector := stable.Spec.Selector
	if _, original, ok, err := route.TakeOriginal[map[string]string](stable.Annotations); err != nil {
		return nil, err
	} else if ok {
		selector = original
	}
	if len(selector) == 0 {
		return nil, fmt.Errorf("the stable Service has no selector, so no canary Service can select the new revision's pods")
	}
	selector = maps.Clone(selector)
	selector[rev.Key] = rev.Canary
	ports := make([]corev1.ServicePort, 0, len(stable.Spec.Ports))
	for _, p := range stable.Spec.Ports {
		p.NodePort = 0
		ports = append(ports, p)
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            CanaryName(stable.Name),
			Namespace:       stable.Namespace,
			Labels:          map[string]string{v1beta1.GroupName + "/rollout": ro.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ro, v1beta1.SchemeGroupVersion.WithKind("Rollout"))},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports:    ports,
		},
	}, nil
}

// RemoveCanary deletes the canary Service of the stable Service name if ro
// owns it; it reports whether it deleted.
func (m *Manager) RemoveCanary(ctx context.Context, ro *v1beta1.Rollout, name string) (bool, error) {
	canary := CanaryName(name)
	have, err := m.Services.Services(ro.Namespace).Get(canary)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Service %s/%s: %w", ro.Namespace, canary, err)
	}
	if !metav1.IsControlledBy(have, ro) {
		return false, nil
	}
	uid := have.UID
	err = m.Kube.CoreV1().Services(ro.Namespace).Delete(ctx, canary, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting the canary Service %s/%s: %w", ro.Namespace, canary, err)
	}
	return true, nil
}
