package rollout

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/validation"
)

// Storage holds the REST storage of rollouts and each of its subresources.
type Storage struct {
	fields *actionFieldManagers

	Rollout *REST
	Status  *StatusREST
	Promote *ActionREST
	Pause   *ActionREST
	Resume  *ActionREST
	Abort   *ActionREST
	Retry   *ActionREST
}

// Map returns the storage of one served version keyed by resource path.
// versionedRollout is that version's (empty) Rollout: the actions answer with
// it, and OpenAPI documents their responses by its type.
func (s *Storage) Map(versionedRollout runtime.Object) map[string]rest.Storage {
	return map[string]rest.Storage{
		"rollouts":         s.Rollout,
		"rollouts/status":  s.Status,
		"rollouts/promote": s.Promote.producing(versionedRollout),
		"rollouts/pause":   s.Pause.producing(versionedRollout),
		"rollouts/resume":  s.Resume.producing(versionedRollout),
		"rollouts/abort":   s.Abort.producing(versionedRollout),
		"rollouts/retry":   s.Retry.producing(versionedRollout),
	}
}

// REST is the storage of the rollouts resource.
type REST struct {
	*genericregistry.Store
}

var _ rest.ShortNamesProvider = &REST{}
var _ rest.CategoriesProvider = &REST{}

// ShortNames lets `kubectl get ro` work.
func (*REST) ShortNames() []string { return []string{"ro"} }

// Categories puts rollouts in `kubectl get all`.
func (*REST) Categories() []string { return []string{"all"} }

// NewStorage builds the etcd-backed storage of rollouts and its subresources.
// admit is the server's admission chain, which the action subresources run on
// the Rollout writes they make (nil skips that, in unit tests); addresses is
// the server's policy for metric check addresses.
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, admit admission.Interface, addresses validation.AddressPolicy) (*Storage, error) {
	strategy := NewStrategy(scheme, addresses)

	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &rollout.Rollout{} },
		NewListFunc:               func() runtime.Object { return &rollout.RolloutList{} },
		PredicateFunc:             Match,
		DefaultQualifiedResource:  rollout.Resource("rollouts"),
		SingularQualifiedResource: rollout.Resource("rollout"),

		CreateStrategy:      strategy,
		UpdateStrategy:      strategy,
		DeleteStrategy:      strategy,
		ResetFieldsStrategy: strategy,

		TableConvertor: tableConvertor{},
	}
	options := &generic.StoreOptions{
		RESTOptions: optsGetter,
		AttrFunc:    GetAttrs,
		TriggerFunc: map[string]storage.IndexerFunc{FieldWorkloadName: workloadNameTrigger},
		Indexers: &cache.Indexers{
			storage.FieldIndex(FieldWorkloadName): workloadNameIndex,
		},
	}
	if err := store.CompleteWithOptions(options); err != nil {
		return nil, fmt.Errorf("completing rollouts storage: %w", err)
	}
	if err := addWorkloadClaims(store, optsGetter); err != nil {
		return nil, err
	}

	statusStore := *store
	statusStore.UpdateStrategy = NewStatusStrategy(strategy)
	statusStore.ResetFieldsStrategy = NewStatusStrategy(strategy)
	statusStore.BeginCreate, statusStore.BeginUpdate, statusStore.AfterDelete = nil, nil, nil

	actionStore := *store
	actionStore.UpdateStrategy = actionStrategy{strategy}
	actionStore.ResetFieldsStrategy = actionStrategy{strategy}
	actionStore.BeginCreate, actionStore.BeginUpdate, actionStore.AfterDelete = nil, nil, nil

	interfaces := admission.NewObjectInterfacesFromScheme(scheme)
	fields := &actionFieldManagers{}
	action := func(name string, a action) *ActionREST {
		fields.actions = append(fields.actions, name)
		return newActionREST(&actionStore, name, a, fields, admit, interfaces)
	}
	return &Storage{
		fields:  fields,
		Rollout: &REST{store},
		Status:  &StatusREST{store: &statusStore},
		Promote: action("promote", promoteAction{}),
		Pause:   action("pause", pauseAction{}),
		Resume:  action("resume", resumeAction{}),
		Abort:   action("abort", abortAction{}),
		Retry:   action("retry", retryAction{}),
	}, nil
}

// EnableFieldManagement makes the actions record, in metadata.managedFields,
// the fields they write (spec.strategy.paused, status.pendingAction) as an
// update by the request's field manager on the action's subresource, the
// way the generic handlers record a PUT or PATCH. typeConverter is the
// installed API group's (built from its OpenAPI models); versions are the
// served versions. Call it after the group is installed, before serving.
func (s *Storage) EnableFieldManagement(typeConverter managedfields.TypeConverter, scheme *runtime.Scheme, versions ...string) error {
	return s.fields.enable(typeConverter, scheme, versions)
}

// RawStorageFactory is implemented by a RESTOptionsGetter that makes its
// own stores without a watch cache (the embedded etcd's, on its in-process
// client); without it the workload claims get generic.NewRawStorage, a client
// of their own over the etcd servers' socket.
type RawStorageFactory interface {
	NewRawStorage(config *storagebackend.ConfigForResource, newFunc, newListFunc func() runtime.Object, resourcePrefix string) (storage.Interface, factory.DestroyFunc, error)
}

// addWorkloadClaims gives the store the hooks that keep one Rollout per
// workload: its claims live in the same etcd, read and written directly (not
// through the watch cache), so every replica of the server sees each claim.
// A create writes its claim twice (pending, then held) beside the Rollout,
// so on the embedded etcd the claims take the in-process client too.
func addWorkloadClaims(store *genericregistry.Store, optsGetter generic.RESTOptionsGetter) error {
	opts, err := optsGetter.GetRESTOptions(rollout.Resource("rollouts"), &rollout.Rollout{})
	if err != nil {
		return fmt.Errorf("storage options of workload claims: %w", err)
	}
	newRaw := generic.NewRawStorage
	if f, ok := optsGetter.(RawStorageFactory); ok {
		newRaw = f.NewRawStorage
	}
	claimStorage, destroy, err := newRaw(opts.StorageConfig,
		func() runtime.Object { return &rollout.Rollout{} }, func() runtime.Object { return &rollout.RolloutList{} }, ClaimsResourcePrefix)
	if err != nil {
		return fmt.Errorf("storage of workload claims: %w", err)
	}
	claims := newWorkloadClaims(claimStorage, store)
	store.BeginCreate = claims.beginCreate
	store.BeginUpdate = claims.beginUpdate
	store.AfterDelete = claims.afterDelete
	destroyStore := store.DestroyFunc
	store.DestroyFunc = func() {
		destroy()
		if destroyStore != nil {
			destroyStore()
		}
	}
	return nil
}

func workloadNameTrigger(obj runtime.Object) string {
	return obj.(*rollout.Rollout).Spec.WorkloadRef.Name
}

func workloadNameIndex(obj interface{}) ([]string, error) {
	r, ok := obj.(*rollout.Rollout)
	if !ok {
		return nil, fmt.Errorf("not a Rollout: %T", obj)
	}
	return []string{r.Spec.WorkloadRef.Name}, nil
}

// StatusREST is the storage of rollouts/status.
type StatusREST struct {
	store *genericregistry.Store
}

var _ rest.Patcher = &StatusREST{}

// New returns an empty Rollout.
func (r *StatusREST) New() runtime.Object { return &rollout.Rollout{} }

// Destroy does nothing: the store is shared with the main resource, which
// shuts it down.
func (r *StatusREST) Destroy() {}

// Get returns the Rollout, so that clients can read what they patch.
func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update writes the status of a Rollout. It never creates one.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

// GetResetFields returns the fields the status strategy resets.
func (r *StatusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// ConvertToTable prints a Rollout as kubectl's table.
func (r *StatusREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}
