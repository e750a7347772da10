// Package apiserver assembles the rollout.kruise.io API server: the scheme,
// the generic server configuration, the API group and the post-start hooks.
package apiserver

import (
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/managedfields"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
	rolloutregistry "github.com/rollout-apiserver/rollout-apiserver/pkg/registry/rollout"
)

// Config is the generic server configuration plus what this server adds.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	ExtraConfig   ExtraConfig
}

// ExtraConfig is what this server adds to the generic configuration.
type ExtraConfig struct {
	// PostStartHooks run once the server is serving, e.g. the controller.
	PostStartHooks map[string]genericapiserver.PostStartHookFunc
	// NonAPIHandlers are served beside the API on the same port, keyed by
	// path, e.g. the workload admission webhook.
	NonAPIHandlers map[string]http.Handler
	// MetricAddresses is where metric checks may connect (server flags).
	MetricAddresses validation.AddressPolicy
}

// CompletedConfig is a Config with every default filled in.
type CompletedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	ExtraConfig   *ExtraConfig
}

// Server is the running rollout.kruise.io API server.
type Server struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
}

// Complete fills in the defaults of the generic configuration.
func (c *Config) Complete() CompletedConfig {
	return CompletedConfig{GenericConfig: c.GenericConfig.Complete(), ExtraConfig: &c.ExtraConfig}
}

// New builds the server: the storage of rollouts in both versions and the
// post-start hooks.
func (c CompletedConfig) New() (*Server, error) {
	generic, err := c.GenericConfig.New("rollout-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("building generic API server: %w", err)
	}

	storage, err := rolloutregistry.NewStorage(Scheme, c.GenericConfig.RESTOptionsGetter, c.GenericConfig.AdmissionControl, c.ExtraConfig.MetricAddresses)
	if err != nil {
		return nil, fmt.Errorf("building rollout storage: %w", err)
	}
	group := genericapiserver.NewDefaultAPIGroupInfo(rollout.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[v1beta1.SchemeGroupVersion.Version] = storage.Map(&v1beta1.Rollout{})
	group.VersionedResourcesStorageMap[v1alpha1.SchemeGroupVersion.Version] = storage.Map(&v1alpha1.Rollout{})
	if err := generic.InstallAPIGroup(&group); err != nil {
		return nil, fmt.Errorf("installing API group %s: %w", rollout.GroupName, err)
	}
	// The actions' writes get managedFields from the same OpenAPI models
	// that the installed handlers use for theirs.
	typeConverter, err := managedfields.NewTypeConverter(group.StaticOpenAPISpec, false)
	if err != nil {
		return nil, fmt.Errorf("building the type converter of %s: %w", rollout.GroupName, err)
	}
	if err := storage.EnableFieldManagement(typeConverter, Scheme, v1beta1.SchemeGroupVersion.Version, v1alpha1.SchemeGroupVersion.Version); err != nil {
		return nil, err
	}

	for path, handler := range c.ExtraConfig.NonAPIHandlers {
		generic.Handler.NonGoRestfulMux.Handle(path, handler)
	}
	for name, hook := range c.ExtraConfig.PostStartHooks {
		if err := generic.AddPostStartHook(name, hook); err != nil {
			return nil, fmt.Errorf("adding post-start hook %s: %w", name, err)
		}
	}
	return &Server{GenericAPIServer: generic}, nil
}
