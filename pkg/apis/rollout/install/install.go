// Package install registers the rollout.kruise.io group, all its versions
// and their priority, in a scheme.
package install

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Install registers the group's internal and versioned types; v1beta1 is preferred.
// It panics only on programmer error (a broken scheme), as the registration
// functions are static.
func Install(scheme *runtime.Scheme) {
	utilruntime.Must(rollout.AddToScheme(scheme))
	utilruntime.Must(v1beta1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(scheme.SetVersionPriority(v1beta1.SchemeGroupVersion, v1alpha1.SchemeGroupVersion))
}
