package embeddedetcd

import (
	"fmt"
	"sync"

	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	cacherstorage "k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	"k8s.io/client-go/tools/cache"
)

// The API server's stores reach the embedded etcd in-process: etcd's
// v3client calls the server's gRPC handlers as plain functions, so a read or
// a write is not marshalled into protobuf, framed by HTTP/2, sent over the
// socket and unmarshalled again on both sides. Profiles of a GET served from
// etcd put that path at ~20% of our server's CPU (docs/benchmarks.md). The
// socket stays for what builds its own client from the server list: the
// health checks.

// inProcess is the shared in-process client and compactor of one Server.
type inProcess struct {
	once      sync.Once
	client    *kubernetes.Client
	compactor etcd3.Compactor
	stop      func()
}

// kubernetesClient returns the in-process client, made on first use.
func (s *Server) kubernetesClient() *kubernetes.Client {
	s.inProcess.once.Do(func() {
		c := v3client.New(s.etcd.Server)
		kc := &kubernetes.Client{Client: c}
		kc.Kubernetes = kc
		// The same latency metrics as the socket client's.
		kc.KV = etcd3.NewETCDLatencyTracker(kc.KV)
		s.inProcess.client = kc
		s.inProcess.stop = func() { _ = c.Close() }
	})
	return s.inProcess.client
}

// RESTOptionsGetter wraps the generic server's getter so that every store
// it describes is built on the in-process client, with the watch cache on
// top when withWatchCache is set (--watch-cache).
func (s *Server) RESTOptionsGetter(delegate generic.RESTOptionsGetter, withWatchCache bool) generic.RESTOptionsGetter {
	return restOptionsGetter{delegate: delegate, server: s, withWatchCache: withWatchCache}
}

type restOptionsGetter struct {
	delegate       generic.RESTOptionsGetter
	server         *Server
	withWatchCache bool
}

// GetRESTOptions implements generic.RESTOptionsGetter.
func (g restOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.delegate.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	if g.withWatchCache {
		opts.Decorator = g.server.storageWithCacher
	} else {
		opts.Decorator = func(config *storagebackend.ConfigForResource, resourcePrefix string, _ func(runtime.Object) (string, error),
			newFunc, newListFunc func() runtime.Object, _ storage.AttrFunc, _ storage.IndexerFuncs, _ *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
			return g.server.newRawStorage(config, newFunc, newListFunc, resourcePrefix)
		}
	}
	return opts, nil
}

// NewRawStorage implements rollout.RawStorageFactory: a store straight on
// the embedded etcd through the in-process client, with no watch cache, for
// what must read etcd itself (the workload claims).
func (g restOptionsGetter) NewRawStorage(config *storagebackend.ConfigForResource, newFunc, newListFunc func() runtime.Object, resourcePrefix string) (storage.Interface, factory.DestroyFunc, error) {
	return g.server.newRawStorage(config, newFunc, newListFunc, resourcePrefix)
}

// compactorOnce starts one compactor on the in-process client, as the
// storage factory starts one per etcd transport; every store on the embedded
// etcd, the workload claims' included, shares it.
func (s *Server) compactorOnce(config *storagebackend.ConfigForResource) etcd3.Compactor {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.inProcess.compactor == nil && config.CompactionInterval > 0 {
		c := etcd3.StartCompactorPerEndpoint(s.inProcess.client.Client, config.CompactionInterval)
		s.inProcess.compactor = c
		stopClient := s.inProcess.stop
		s.inProcess.stop = func() { c.Stop(); stopClient() }
	}
	return s.inProcess.compactor
}

// newRawStorage is factory.Create's etcd3 store on the in-process client.
func (s *Server) newRawStorage(config *storagebackend.ConfigForResource, newFunc, newListFunc func() runtime.Object, resourcePrefix string) (storage.Interface, factory.DestroyFunc, error) {
	client := s.kubernetesClient()
	compactor := s.compactorOnce(config)
	transformer := config.Transformer
	if transformer == nil {
		transformer = identity.NewEncryptCheckTransformer()
	}
	versioner := storage.APIObjectVersioner{}
	decoder := etcd3.NewDefaultDecoder(config.Codec, versioner)
	store, err := etcd3.New(client, compactor, config.Codec, newFunc, newListFunc, config.Prefix, resourcePrefix,
		config.GroupResource, transformer, config.LeaseManagerConfig, decoder, versioner)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd3 store of %s on the embedded etcd: %w", config.GroupResource, err)
	}
	var once sync.Once
	// The client is shared and closed by Stop.
	return store, func() { once.Do(store.Close) }, nil
}

// storageWithCacher is genericregistry.StorageWithCacher over newRawStorage.
func (s *Server) storageWithCacher(config *storagebackend.ConfigForResource, resourcePrefix string, keyFunc func(runtime.Object) (string, error),
	newFunc, newListFunc func() runtime.Object, getAttrs storage.AttrFunc, triggers storage.IndexerFuncs, indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
	raw, destroyRaw, err := s.newRawStorage(config, newFunc, newListFunc, resourcePrefix)
	if err != nil {
		return nil, nil, err
	}
	cacher, err := cacherstorage.NewCacherFromConfig(cacherstorage.Config{
		Storage:             raw,
		Versioner:           storage.APIObjectVersioner{},
		GroupResource:       config.GroupResource,
		EventsHistoryWindow: config.EventsHistoryWindow,
		ResourcePrefix:      resourcePrefix,
		KeyFunc:             keyFunc,
		NewFunc:             newFunc,
		NewListFunc:         newListFunc,
		GetAttrsFunc:        getAttrs,
		IndexerFuncs:        triggers,
		Indexers:            indexers,
		Codec:               config.Codec,
	})
	if err != nil {
		destroyRaw()
		return nil, nil, fmt.Errorf("watch cache of %s: %w", config.GroupResource, err)
	}
	delegator := cacherstorage.NewCacheDelegator(cacher, raw)
	var once sync.Once
	return delegator, func() {
		once.Do(func() {
			delegator.Stop()
			cacher.Stop()
			destroyRaw()
		})
	}, nil
}
