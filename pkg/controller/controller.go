// Package controller is the embedded progressive-delivery controller: shared
// informers on Rollouts (through the aggregated API) and on the host
// cluster's workloads and pods, a rate-limited work queue, workers that run the
// step machine of package release, Events, and leader election on a Lease so
// that only one replica of the server acts at a time.
//
// Informers run on every replica, leader or not, so that a replica that takes
// over starts with warm caches and the workload webhook, which every replica
// serves, can read Rollouts from RolloutLister.
package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/dynamic"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/release"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/ingress"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/traffic/service"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/workload/releasers"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	rolloutscheme "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned/scheme"
	rolloutinformers "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/informers/externalversions"
	rolloutlisters "github.com/rollout-apiserver/rollout-apiserver/pkg/generated/listers/rollout/v1beta1"
)

// ComponentName is the source of the controller's Events and the default name
// of its Lease.
const ComponentName = "rollout-controller"

// Defaults of Config, and of the server's flags (cmd/apiserver/app uses
// these, so there is one set). Four workers: a reconcile mostly waits on the
// API servers, so more workers than cores keep both busy. The Lease lives in
// rollout-system, the namespace the deploy manifests run the server in and
// grant Lease access in.
const (
	DefaultWorkers       = 4
	DefaultLeaseName     = "rollout-apiserver-controller"
	DefaultLeaseNS       = "rollout-system"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	DefaultResyncPeriod  = 10 * time.Minute
	// DefaultKubeQPS and DefaultKubeBurst rate-limit the controller's client
	// of the host cluster (client-go's own default of 5/10 starves a release
	// of many workloads).
	DefaultKubeQPS   = 50
	DefaultKubeBurst = 100
	// DefaultRolloutQPS and DefaultRolloutBurst rate-limit the controller's
	// requests to its own server's Rollout API (finalizers, status writes),
	// which go through the loopback connection and load no other component:
	// at the host cluster's 50 QPS, taking 10,000 new Rollouts under control
	// (a finalizer and a first status each) took minutes.
	DefaultRolloutQPS   = 200
	DefaultRolloutBurst = 400
	// leaderHealthTolerance is how long past its Lease's expiry a leader that
	// has not renewed still reports healthy, as in kube-controller-manager.
	leaderHealthTolerance = 20 * time.Second
	// workerStopGrace bounds how long a replica that lost its Lease waits for
	// its workers to notice the cancelled context before Run returns anyway.
	workerStopGrace = 5 * time.Second
)

// ErrLeaderElectionLost is returned by Run when this replica stopped
// renewing its Lease: another replica may be acting already, so this one must
// stop at once and not campaign again while anything of its term might still
// run. The server exits on it and is restarted clean.
var ErrLeaderElectionLost = errors.New("controller: leader election lost")

// ErrDivergentStorage is returned by Run when the Lease is held by a replica
// that stores Rollouts elsewhere than this one: two replicas each on an
// embedded etcd of its own would serve two diverging copies of every
// Rollout. This replica stops, so the server exits and refuses to run.
var ErrDivergentStorage = errors.New("controller: another replica stores Rollouts in another etcd")

// storageIdentityMark separates a replica's identity from the storage it
// names, in a Lease holder identity.
const storageIdentityMark = "_embedded-etcd-"

// storageOf returns the storage an identity names, "" for none.
func storageOf(identity string) string {
	_, storage, _ := strings.Cut(identity, storageIdentityMark)
	return storage
}

// Config is what the controller needs from the server that embeds it.
type Config struct {
	// RolloutClient reads and writes Rollouts (the server's loopback client).
	RolloutClient versioned.Interface
	// KubeClient reads and writes the host cluster: workloads, pods, Events.
	KubeClient kubernetes.Interface
	// LeaderElectionClient reads and renews the Lease. It should be a client of
	// its own, so that renewals never wait behind the workers' requests in
	// KubeClient's rate limiter; default KubeClient.
	LeaderElectionClient kubernetes.Interface
	// EventClient records Events. It should be a client of its own too: a
	// release of many workloads records thousands, and they must not delay
	// the workers' writes in KubeClient's rate limiter; default KubeClient.
	EventClient kubernetes.Interface
	// Workers is how many Rollouts are reconciled at once; default 4.
	Workers int
	// LeaderElection makes only one replica act at a time.
	LeaderElection LeaderElectionConfig
	// ResyncPeriod re-delivers every Rollout this often as a safety net;
	// default 10 minutes.
	ResyncPeriod time.Duration
	// GatewayClient reaches the host cluster's Gateway API HTTPRoutes; nil
	// reports Rollouts that route through an HTTPRoute as unroutable.
	GatewayClient gwclient.Interface
	// DynamicClient reaches routing objects without a typed client here
	// (Istio VirtualServices and DestinationRules); nil reports Rollouts that
	// route through them as unroutable.
	DynamicClient dynamic.Interface
	// TrafficRouter and Analyzer gate the traffic and metric states of each
	// step; a nil TrafficRouter is the traffic package's router, a nil
	// Analyzer the pass-through default until that issue lands.
	TrafficRouter release.TrafficRouter
	Analyzer      release.Analyzer
	// Observer, if set, is told about reconciles and status writes (the
	// controller's metrics).
	Observer release.Observer
}

// LeaderElectionConfig configures the Lease that elects the acting replica.
type LeaderElectionConfig struct {
	// Enabled turns leader election on; off, the controller acts at once.
	Enabled bool
	// Namespace and Name of the coordination.k8s.io Lease in the host cluster;
	// defaults rollout-system and rollout-apiserver-controller.
	Namespace, Name string
	// LeaseDuration, RenewDeadline and RetryPeriod as in kube-controller-manager;
	// defaults 15s, 10s and 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity of this replica; default hostname plus a random suffix.
	Identity string
	// StorageID names the storage this replica serves Rollouts from when no
	// other replica can share it (an embedded etcd: its cluster ID). It is
	// appended to Identity, and a leader whose identity names another
	// storage, or none, stops this replica with ErrDivergentStorage.
	StorageID string
}

// Controller is the embedded rollout controller.
type Controller struct {
	cfg Config

	rolloutFactory rolloutinformers.SharedInformerFactory
	kubeFactory    kubeinformers.SharedInformerFactory
	rolloutIndexer cache.Indexer
	rollouts       rolloutlisters.RolloutLister
	store          *rolloutStore
	synced         []cache.InformerSynced

	deps        *workload.Deps
	gatewayAPI  *traffic.GatewayAPI
	ingressAPI  *traffic.IngressAPI
	istioAPI    *traffic.DynamicAPI
	reconciler  *release.Reconciler
	broadcaster record.EventBroadcaster

	// leaderHealth fails /healthz when this replica leads but has not renewed
	// its Lease in time.
	leaderHealth *leaderelection.HealthzAdaptor
	// syncHandler reconciles one queue key; tests replace it.
	syncHandler func(ctx context.Context, key string) (time.Duration, error)

	queueMu sync.RWMutex
	// queue is the current term's queue; nil while not leading, when events
	// are dropped (a new term enqueues everything).
	queue workqueue.TypedRateLimitingInterface[string]
}

// workloadIndex indexes Rollouts by the workload they reference.
const workloadIndex = "workload"

// workloadKeyPrefix marks queue keys of workloads (for label and hold
// clean-up) apart from Rollout keys (namespace/name, which hold no colon).
const workloadKeyPrefix = "workload:"

// Kinds of routing objects in the workload index.
const (
	kindService   = "Service"
	kindHTTPRoute = "HTTPRoute"
	kindIngress   = "Ingress"
)

func workloadIndexKey(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
}

// New builds the controller. Nothing runs until Run.
func New(cfg Config) (*Controller, error) {
	if cfg.RolloutClient == nil || cfg.KubeClient == nil {
		return nil, errors.New("controller: RolloutClient and KubeClient are required")
	}
	if cfg.LeaderElectionClient == nil {
		cfg.LeaderElectionClient = cfg.KubeClient
	}
	if cfg.EventClient == nil {
		cfg.EventClient = cfg.KubeClient
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	if cfg.Analyzer == nil {
		cfg.Analyzer = release.NoopAnalyzer{}
	}
	le := &cfg.LeaderElection
	if le.Namespace == "" {
		le.Namespace = DefaultLeaseNS
	}
	if le.Name == "" {
		le.Name = DefaultLeaseName
	}
	if le.LeaseDuration <= 0 {
		le.LeaseDuration = DefaultLeaseDuration
	}
	if le.RenewDeadline <= 0 {
		le.RenewDeadline = DefaultRenewDeadline
	}
	if le.RetryPeriod <= 0 {
		le.RetryPeriod = DefaultRetryPeriod
	}
	if le.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("controller: leader election identity: %w", err)
		}
		le.Identity = host + "_" + string(uuid.NewUUID())
	}
	if le.StorageID != "" {
		le.Identity += storageIdentityMark + le.StorageID
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("controller: building event scheme: %w", err)
	}
	if err := rolloutscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("controller: building event scheme: %w", err)
	}
	// The default spam filter lets 25 events per object through and then one
	// per five minutes, which silences the second half of a release; a release
	// records a handful of events per step, so allow bursts and one a second.
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 200, QPS: 1}))
	recorder := broadcaster.NewRecorder(scheme, corev1.EventSource{Component: ComponentName})

	c := &Controller{
		cfg:            cfg,
		rolloutFactory: rolloutinformers.NewSharedInformerFactoryWithOptions(cfg.RolloutClient, cfg.ResyncPeriod, rolloutinformers.WithTransform(trimForCache)),
		kubeFactory:    kubeinformers.NewSharedInformerFactoryWithOptions(cfg.KubeClient, 0, kubeinformers.WithTransform(trimForCache)),
		broadcaster:    broadcaster,
		leaderHealth:   leaderelection.NewLeaderHealthzAdaptor(leaderHealthTolerance),
	}
	c.syncHandler = c.syncKey
	rolloutInformer := c.rolloutFactory.Rollout().V1beta1().Rollouts()
	if err := rolloutInformer.Informer().AddIndexers(cache.Indexers{workloadIndex: func(obj any) ([]string, error) {
		ro, ok := obj.(*v1beta1.Rollout)
		if !ok {
			return nil, nil
		}
		keys := []string{workloadIndexKey(ro.Namespace, ro.Spec.WorkloadRef.Kind, ro.Spec.WorkloadRef.Name)}
		// The routing objects are indexed beside the workload, so that a
		// change someone else makes to them during a release is seen.
		if c := ro.Spec.Strategy.Canary; c != nil {
			for _, ref := range c.TrafficRoutings {
				keys = append(keys,
					workloadIndexKey(ro.Namespace, kindService, ref.Service),
					workloadIndexKey(ro.Namespace, kindService, service.CanaryName(ref.Service)))
				if ref.Gateway != nil && ref.Gateway.HTTPRouteName != nil {
					keys = append(keys, workloadIndexKey(ro.Namespace, kindHTTPRoute, *ref.Gateway.HTTPRouteName))
				}
				if ref.Ingress != nil {
					keys = append(keys,
						workloadIndexKey(ro.Namespace, kindIngress, ref.Ingress.Name),
						workloadIndexKey(ro.Namespace, kindIngress, ingress.CanaryName(ref.Ingress.Name)))
				}
				for _, cn := range ref.CustomNetworkRefs {
					keys = append(keys, workloadIndexKey(ro.Namespace, cn.Kind, cn.Name))
				}
			}
		}
		return keys, nil
	}}); err != nil {
		return nil, fmt.Errorf("controller: indexing Rollouts: %w", err)
	}
	c.rolloutIndexer = rolloutInformer.Informer().GetIndexer()
	c.rollouts = rolloutInformer.Lister()
	c.store = newRolloutStore(c.rollouts, c.RolloutsOf)

	apps := c.kubeFactory.Apps().V1()
	pods := c.kubeFactory.Core().V1().Pods()
	for _, inf := range []cache.SharedIndexInformer{apps.ReplicaSets().Informer(), apps.ControllerRevisions().Informer()} {
		if err := inf.AddIndexers(cache.Indexers{workload.ControllerIndex: workload.ControllerIndexFunc}); err != nil {
			return nil, fmt.Errorf("controller: indexing by controller: %w", err)
		}
	}
	c.deps = &workload.Deps{
		Kube:                cfg.KubeClient,
		Deployments:         apps.Deployments().Lister(),
		ReplicaSets:         apps.ReplicaSets().Lister(),
		StatefulSets:        apps.StatefulSets().Lister(),
		DaemonSets:          apps.DaemonSets().Lister(),
		ControllerRevisions: apps.ControllerRevisions().Lister(),
		Pods:                pods.Lister(),
		Owned: workload.OwnerIndexers{
			ReplicaSets:         apps.ReplicaSets().Informer().GetIndexer(),
			ControllerRevisions: apps.ControllerRevisions().Informer().GetIndexer(),
		},
		Recorder:     recorder,
		Expectations: workload.NewExpectations(clock.RealClock{}),
		Clock:        clock.RealClock{},
	}
	services := c.kubeFactory.Core().V1().Services()
	if cfg.TrafficRouter == nil {
		c.gatewayAPI = &traffic.GatewayAPI{
			Client:    cfg.GatewayClient,
			Discovery: cfg.KubeClient.Discovery(),
			OnChange: func(namespace, name string) {
				c.enqueueReferencing(namespace, kindHTTPRoute, name)
			},
		}
		c.ingressAPI = &traffic.IngressAPI{
			Client: cfg.KubeClient,
			OnChange: func(namespace, name string) {
				c.enqueueReferencing(namespace, kindIngress, name)
			},
		}
		c.istioAPI = &traffic.DynamicAPI{
			Client:    cfg.DynamicClient,
			Discovery: cfg.KubeClient.Discovery(),
			OnChange:  c.enqueueReferencing,
		}
		cfg.TrafficRouter = &traffic.Router{
			Services: &service.Manager{Kube: cfg.KubeClient, Services: services.Lister()},
			Gateway:  c.gatewayAPI,
			Ingress:  c.ingressAPI,
			Istio:    c.istioAPI,
			Recorder: recorder,
			Clock:    clock.RealClock{},
		}
		c.cfg.TrafficRouter = cfg.TrafficRouter
	}
	c.reconciler = &release.Reconciler{
		Client:       cfg.RolloutClient,
		Kube:         cfg.KubeClient,
		Store:        c.store,
		Releasers:    releasers.For(c.deps),
		Router:       cfg.TrafficRouter,
		Analyzer:     cfg.Analyzer,
		Recorder:     recorder,
		Clock:        clock.RealClock{},
		Expectations: c.deps.Expectations,
		Observer:     cfg.Observer,

		ObservationInterval: release.DefaultObservationInterval,
	}

	handlers := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{rolloutInformer.Informer(), c.rolloutHandler()},
		{apps.Deployments().Informer(), c.workloadHandler(v1beta1.KindDeployment)},
		{apps.StatefulSets().Informer(), c.workloadHandler(v1beta1.KindStatefulSet)},
		{apps.DaemonSets().Informer(), c.workloadHandler(v1beta1.KindDaemonSet)},
		{apps.ReplicaSets().Informer(), c.ownedHandler()},
		{apps.ControllerRevisions().Informer(), c.ownedHandler()},
		{pods.Informer(), c.ownedHandler()},
		{services.Informer(), c.serviceHandler()},
	}
	for _, h := range handlers {
		if _, err := h.informer.AddEventHandler(h.handler); err != nil {
			return nil, fmt.Errorf("controller: adding event handler: %w", err)
		}
		c.synced = append(c.synced, h.informer.HasSynced)
	}
	return c, nil
}

// RolloutLister reads Rollouts from the controller's cache; the workload
// webhook uses it on every replica.
func (c *Controller) RolloutLister() rolloutlisters.RolloutLister {
	return c.rollouts
}

// HasSynced reports whether the Rollout cache has been filled.
func (c *Controller) HasSynced() bool {
	return c.synced[0]()
}

// Run starts the informers and, once this replica leads (at once when leader
// election is off), the workers. It blocks until ctx is done and returns nil
// then, after the workers have stopped and the Lease was released. A replica
// that stops renewing its Lease cancels its workers at once and returns
// ErrLeaderElectionLost without campaigning again, as kube-controller-manager
// exits: the caller must stop the process (a new one starts from a clean
// state), never call Run again.
func (c *Controller) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	c.broadcaster.StartStructuredLogging(3)
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.cfg.EventClient.CoreV1().Events("")})
	defer c.broadcaster.Shutdown()

	if c.gatewayAPI != nil {
		c.gatewayAPI.Ctx, c.ingressAPI.Ctx, c.istioAPI.Ctx = ctx, ctx, ctx
	}
	c.rolloutFactory.Start(ctx.Done())
	c.kubeFactory.Start(ctx.Done())
	defer c.kubeFactory.Shutdown()
	defer c.rolloutFactory.Shutdown()
	// Runs first: the informers stop, so the Shutdowns above can return
	// when Run ends on its own (a lost Lease) while parent goes on.
	defer cancel()
	if !cache.WaitForNamedCacheSync(ComponentName, ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("controller: caches did not sync")
	}

	if !c.cfg.LeaderElection.Enabled {
		c.lead(ctx)
		return nil
	}
	return c.runElected(ctx)
}

// runElected campaigns for the Lease once and leads until ctx is done or the
// Lease is lost.
func (c *Controller) runElected(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	le := c.cfg.LeaderElection
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name,
		c.cfg.LeaderElectionClient.CoreV1(), c.cfg.LeaderElectionClient.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return fmt.Errorf("controller: building the Lease lock %s/%s: %w", le.Namespace, le.Name, err)
	}
	// The elector runs on a context of its own, cancelled only once the
	// workers have stopped: it releases the Lease on cancel, and a released
	// Lease must never be held by a replica whose workers still act.
	electorCtx, stopElector := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElector()
	termDone := make(chan struct{})
	divergent := make(chan error, 1)
	var started atomic.Bool
	var elector *leaderelection.LeaderElector
	elector, err = leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		WatchDog:        c.leaderHealth,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaseCtx context.Context) {
				started.Store(true)
				defer close(termDone)
				// Workers stop when the server stops or the Lease is lost,
				// whichever comes first.
				workCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				stop := context.AfterFunc(leaseCtx, cancel)
				defer stop()
				c.lead(workCtx)
			},
			OnStoppedLeading: func() {
				logger.Info("Stopped leading", "lease", klog.KRef(le.Namespace, le.Name), "identity", le.Identity)
			},
			OnNewLeader: func(identity string) {
				logger.Info("Rollout controller leader", "lease", klog.KRef(le.Namespace, le.Name), "leader", identity)
				if le.StorageID != "" && identity != le.Identity && storageOf(identity) != le.StorageID {
					// A Lease left by a replica that is gone (the data
					// directory was replaced, or etcd moved out) expires
					// and this replica takes it over; only a leader that
					// keeps renewing past a lease duration is another
					// replica that runs now.
					time.AfterFunc(le.LeaseDuration+2*le.RetryPeriod, func() {
						if elector.GetLeader() != identity {
							return
						}
						select {
						case divergent <- fmt.Errorf("%w: the leader %q of Lease %s/%s does not use this replica's embedded etcd (cluster %s); "+
							"an embedded etcd serves one replica only: run one replica, or give every replica --etcd-servers",
							ErrDivergentStorage, identity, le.Namespace, le.Name, le.StorageID):
						default:
						}
					})
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("controller: leader election: %w", err)
	}
	electorDone := make(chan struct{})
	go func() {
		defer close(electorDone)
		elector.Run(electorCtx)
	}()

	waitTerm := func() bool {
		if !started.Load() {
			return true
		}
		select {
		case <-termDone:
			return true
		case <-time.After(workerStopGrace):
			return false
		}
	}
	select {
	case err := <-divergent:
		// This replica does not lead (another one does), so no worker of
		// its own runs; stop campaigning and report why.
		stopElector()
		<-electorDone
		if started.Load() {
			<-termDone
		}
		return err
	case <-ctx.Done():
		// Shutting down: the workers' context is done; let them finish the
		// key in hand, then hand the Lease over.
		<-ctx.Done()
		if started.Load() {
			<-termDone
		}
		stopElector()
		<-electorDone
		return nil
	case <-electorDone:
		// The elector only returns before its context ends when the Lease
		// was lost (or could not be renewed in time).
		if ctx.Err() != nil {
			if started.Load() {
				<-termDone
			}
			return nil
		}
		if !waitTerm() {
			logger.Info("Workers still running after the Lease was lost; exiting without them", "grace", workerStopGrace)
		}
		return fmt.Errorf("%w: Lease %s/%s, identity %s", ErrLeaderElectionLost, le.Namespace, le.Name, le.Identity)
	}
}

// lead runs the workers for one leadership term, until ctx is done.
func (c *Controller) lead(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	logger := klog.FromContext(ctx)
	logger.Info("Starting rollout controller workers", "workers", c.cfg.Workers)
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: ComponentName},
	)
	c.queueMu.Lock()
	c.queue = queue
	c.queueMu.Unlock()
	c.enqueueEverything()

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx, queue) {
			}
		})
	}
	<-ctx.Done()
	c.queueMu.Lock()
	c.queue = nil
	c.queueMu.Unlock()
	queue.ShutDown()
	wg.Wait()
	logger.Info("Stopped rollout controller workers")
}

// HealthChecks are the controller's checks for the server: for /healthz
// (and /livez), that a leader still renews its Lease; for /readyz, that the
// informer caches have synced, since the webhook and the workers answer from
// them.
func (c *Controller) HealthChecks() (live, ready []healthz.HealthChecker) {
	live = []healthz.HealthChecker{healthz.NamedCheck("rollout-controller-leader-election", c.leaderHealth.Check)}
	ready = []healthz.HealthChecker{healthz.NamedCheck("rollout-controller-caches", func(*http.Request) error {
		for _, synced := range c.synced {
			if !synced() {
				return errors.New("informer caches have not synced")
			}
		}
		return nil
	})}
	return live, ready
}

// enqueueEverything starts a term from scratch: every Rollout, and every
// workload that carries our label or hold, in case its Rollout went away
// while nobody led.
func (c *Controller) enqueueEverything() {
	for _, obj := range c.rolloutIndexer.List() {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.enqueue(key)
		}
	}
	for _, k := range workload.Kinds() {
		objs, err := k.List(c.deps)
		if err != nil {
			utilruntime.HandleError(fmt.Errorf("listing %ss from cache: %w", k.Name, err))
			continue
		}
		for _, obj := range objs {
			c.checkWorkload(k.Name, obj)
		}
	}
}

func (c *Controller) enqueue(key string) {
	c.queueMu.RLock()
	defer c.queueMu.RUnlock()
	if c.queue != nil {
		c.queue.Add(key)
	}
}

func (c *Controller) processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	requeue, err := c.syncRecovering(ctx, key)
	switch {
	case err != nil && apierrors.IsConflict(err):
		// Someone wrote the object since the cache showed it; the fresh copy is on its way.
		klog.FromContext(ctx).V(4).Info("Conflict, retrying", "key", key, "err", err)
		queue.AddRateLimited(key)
	case err != nil:
		utilruntime.HandleErrorWithContext(ctx, err, "Reconciling failed", "key", key)
		queue.AddRateLimited(key)
	default:
		queue.Forget(key)
		if requeue > 0 {
			queue.AddAfter(key, requeue)
		}
	}
	return true
}

// syncRecovering runs syncHandler and turns a panic into an error, so one bad
// object is retried with backoff instead of taking the server (and the
// webhook it serves) down.
func (c *Controller) syncRecovering(ctx context.Context, key string) (requeue time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic reconciling %q: %v\n%s", key, r, debug.Stack())
		}
	}()
	return c.syncHandler(ctx, key)
}

func (c *Controller) syncKey(ctx context.Context, key string) (time.Duration, error) {
	if rest, ok := strings.CutPrefix(key, workloadKeyPrefix); ok {
		return 0, c.syncWorkload(ctx, rest)
	}
	return c.reconciler.Sync(ctx, key)
}
