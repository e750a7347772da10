package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/analysis"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/controller/analysis/prometheus"
	controllermetrics "github.com/rollout-apiserver/rollout-apiserver/pkg/controller/metrics"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/embeddedetcd"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/webhook"
)

// NewCommand returns the server's command; it runs until ctx is done.
func NewCommand(ctx context.Context, o *ServerOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout-apiserver",
		Short: "Serve rollout.kruise.io as an aggregated API and release workloads in steps",
		Long: `rollout-apiserver serves the rollout.kruise.io API group (Rollouts and their
status, promote, pause, resume and abort subresources) behind a Kubernetes
APIService, stores it in etcd (its own embedded etcd unless --etcd-servers is
given), and runs the controller that releases workloads step by step.`,
		SilenceUsage: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return compatibility.DefaultComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return Run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	fs := cmd.Flags()
	o.AddFlags(fs)
	compatibility.DefaultComponentGlobalsRegistry.AddFlags(fs)
	return cmd
}

// Run starts the server with Prepare and serves until ctx is done.
func Run(ctx context.Context, o *ServerOptions) error {
	if _, err := applyMemoryLimit(o.MemoryLimit); err != nil {
		return err
	}
	instance, err := Prepare(ctx, o)
	if err != nil {
		return err
	}
	return instance.Run(ctx)
}

// Instance is a server ready to run, with its embedded etcd if it has one.
type Instance struct {
	Server *apiserver.Server
	etcd   *embeddedetcd.Server
	// failed receives the error of a background part (the controller) that
	// stopped on its own; the server then stops and Run returns the error.
	failed <-chan error
}

// Prepare starts the embedded etcd when no external one is configured, then
// builds the API server on it.
func Prepare(ctx context.Context, o *ServerOptions) (*Instance, error) {
	instance := &Instance{}
	if o.UsesEmbeddedEtcd() {
		etcd, err := embeddedetcd.Start(ctx, embeddedetcd.Config{DataDir: o.EtcdDataDir, DefragInterval: o.EtcdDefragInterval})
		if err != nil {
			return nil, err
		}
		instance.etcd = etcd
		o.embeddedEtcd = etcd
		o.embeddedStorageID = etcd.ClusterID()
		o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = []string{etcd.ClientURL}
	}
	server, failed, err := NewServer(o)
	if err != nil {
		instance.stopEtcd()
		return nil, err
	}
	instance.Server = server
	instance.failed = failed
	return instance, nil
}

// Run serves until ctx is done. On the way out the API server drains its
// requests before the embedded etcd stops, so nothing in flight is lost. The
// embedded etcd failing under the server, or the controller stopping (a lost
// Lease, caches that never sync, a panic), is fatal: the server shuts down
// and Run returns the error, so the process exits non-zero and its
// supervisor starts a clean one instead of a server that looks healthy and
// releases nothing.
func (i *Instance) Run(ctx context.Context) error {
	defer i.stopEtcd()
	fatal := make(chan error, 2)
	forward := func(errs <-chan error, what string) {
		go func() {
			select {
			case err, ok := <-errs:
				if ok && err != nil {
					fatal <- fmt.Errorf("%s: %w", what, err)
				}
			case <-ctx.Done():
			}
		}()
	}
	if i.etcd != nil {
		forward(i.etcd.Errors(), "embedded etcd failed")
	}
	if i.failed != nil {
		forward(i.failed, "rollout controller stopped")
	}
	return runUntilFatal(ctx, fatal, func(ctx context.Context) error {
		if err := i.Server.GenericAPIServer.PrepareRun().RunWithContext(ctx); err != nil {
			return fmt.Errorf("running API server: %w", err)
		}
		return nil
	})
}

// runUntilFatal runs serve until ctx is done or fatal reports an error. A
// fatal error shuts serve down and is returned, so the process exits non-zero
// and is restarted rather than report a clean stop that no supervisor would
// act on.
func runUntilFatal(ctx context.Context, fatal <-chan error, serve func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fatalErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case err, ok := <-fatal:
			if ok && err != nil {
				klog.ErrorS(err, "Fatal error; shutting down")
				fatalErr = err
				cancel()
			}
		case <-ctx.Done():
		}
	}()
	err := serve(ctx)
	cancel()
	<-done
	if fatalErr != nil {
		return fatalErr
	}
	return err
}

// stopEtcd stops the embedded etcd, if this instance started one.
func (i *Instance) stopEtcd() {
	if i.etcd != nil {
		i.etcd.Stop()
		i.etcd = nil
	}
}

// NewServer builds the API server from options whose etcd servers are final.
// The channel receives the error of the embedded controller if it stops on
// its own (nil without a controller).
func NewServer(o *ServerOptions) (*apiserver.Server, <-chan error, error) {
	genericConfig, err := o.GenericConfig()
	if err != nil {
		return nil, nil, err
	}
	addresses, err := o.AddressPolicy()
	if err != nil {
		return nil, nil, err
	}
	cfg := &apiserver.Config{GenericConfig: genericConfig}
	cfg.ExtraConfig.MetricAddresses = addresses
	cfg.ExtraConfig.PostStartHooks = map[string]genericapiserver.PostStartHookFunc{
		"wait-for-authentication-config": waitForAuthenticationConfig(genericConfig),
	}
	var failed <-chan error
	if o.Controller.Enabled {
		if failed, err = addController(o, cfg); err != nil {
			return nil, nil, err
		}
	}
	server, err := cfg.Complete().New()
	return server, failed, err
}

// Rate limits of the clients that must not share the controller's: the
// Lease client sends about one request per retry period; the webhook's client
// makes a fresh read only for a labelled workload the cache cannot place.
const (
	leaderElectionQPS   = 5
	leaderElectionBurst = 10
	webhookQPS          = 100
	webhookBurst        = 200
	// A release records a handful of Events per step; a thousand releases at
	// once must not take the workers' budget for pods and status.
	eventQPS   = 50
	eventBurst = 200
)

// preferProtobuf makes a client of our own API, and the informers built on
// it, talk protobuf: the cheapest encoding to encode and decode (see
// docs/storage.md), with JSON accepted for errors from proxies on the way.
// The generated clientset already prefers protobuf when the config names no
// content type; this holds even if the loopback config comes to name one.
func preferProtobuf(c *rest.Config) *rest.Config {
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}

// addController builds the release controller and the workload webhook, and
// adds them to the server: the controller starts from a post-start hook, once
// the server serves the Rollouts it watches through the loopback client. Its
// checks join /healthz and /readyz; the channel receives its error if it
// stops on its own.
func addController(o *ServerOptions, cfg *apiserver.Config) (<-chan error, error) {
	hostConfig := cfg.GenericConfig.ClientConfig
	if hostConfig == nil {
		return nil, fmt.Errorf("the controller needs the host cluster: set --kubeconfig, run in a cluster, or pass --enable-controller=false")
	}
	limited := func(base *rest.Config, qps float32, burst int, agent string) *rest.Config {
		c := rest.CopyConfig(base)
		c.QPS, c.Burst = qps, burst
		c.RateLimiter = nil
		c.UserAgent = rest.DefaultKubernetesUserAgent() + "/" + agent
		return c
	}
	kubeClient, err := kubernetes.NewForConfig(limited(hostConfig, o.Controller.KubeAPIQPS, o.Controller.KubeAPIBurst, "rollout-controller"))
	if err != nil {
		return nil, fmt.Errorf("building host cluster client: %w", err)
	}
	electionClient, err := kubernetes.NewForConfig(limited(hostConfig, leaderElectionQPS, leaderElectionBurst, "rollout-controller-leader-election"))
	if err != nil {
		return nil, fmt.Errorf("building host cluster client for leader election: %w", err)
	}
	eventClient, err := kubernetes.NewForConfig(limited(hostConfig, eventQPS, eventBurst, "rollout-controller-events"))
	if err != nil {
		return nil, fmt.Errorf("building host cluster client for Events: %w", err)
	}
	loopback := preferProtobuf(limited(cfg.GenericConfig.LoopbackClientConfig, o.Controller.RolloutAPIQPS, o.Controller.RolloutAPIBurst, "rollout-controller"))
	rolloutClient, err := versioned.NewForConfig(loopback)
	if err != nil {
		return nil, fmt.Errorf("building loopback rollout client: %w", err)
	}
	// The webhook's fresh reads must not wait behind the controller's
	// requests: its caller, kube-apiserver, gives it a few seconds.
	webhookClient, err := versioned.NewForConfig(preferProtobuf(limited(cfg.GenericConfig.LoopbackClientConfig, webhookQPS, webhookBurst, "rollout-workload-webhook")))
	if err != nil {
		return nil, fmt.Errorf("building loopback rollout client for the webhook: %w", err)
	}
	gatewayClient, err := gwclient.NewForConfig(limited(hostConfig, o.Controller.KubeAPIQPS, o.Controller.KubeAPIBurst, "rollout-controller"))
	if err != nil {
		return nil, fmt.Errorf("building Gateway API client: %w", err)
	}
	// Istio's routing objects have no typed client here; the same limits as
	// the controller's other requests to the host cluster.
	dynamicClient, err := dynamic.NewForConfig(limited(hostConfig, o.Controller.KubeAPIQPS, o.Controller.KubeAPIBurst, "rollout-controller"))
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	identity, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("reading hostname for the leader election identity: %w", err)
	}
	recorder := controllermetrics.NewRecorder()
	ctrl, err := controller.New(controller.Config{
		RolloutClient:        rolloutClient,
		KubeClient:           kubeClient,
		LeaderElectionClient: electionClient,
		EventClient:          eventClient,
		GatewayClient:        gatewayClient,
		DynamicClient:        dynamicClient,
		Workers:              o.Controller.Workers,
		Analyzer: &analysis.Analyzer{
			Prometheus: prometheus.New(prometheus.Options{QueryTimeout: o.Metrics.QueryTimeout, MaxResponseBytes: o.Metrics.MaxResponseBytes}),
			Addresses:  cfg.ExtraConfig.MetricAddresses,
			Recorder:   recorder,
		},
		Observer: recorder,
		LeaderElection: controller.LeaderElectionConfig{
			Enabled:       o.Controller.LeaderElect,
			Namespace:     o.Controller.LeaseNS,
			Name:          o.Controller.LeaseName,
			LeaseDuration: o.Controller.LeaseDuration,
			RenewDeadline: o.Controller.RenewDeadline,
			RetryPeriod:   o.Controller.RetryPeriod,
			Identity:      identity + "_" + string(uuid.NewUUID()),
			// A second replica on an embedded etcd of its own would serve
			// a diverging copy of every Rollout: naming the embedded etcd
			// in the Lease lets such a replica find out and refuse to run.
			StorageID: o.embeddedStorageID,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building the rollout controller: %w", err)
	}
	controllermetrics.ServeRolloutGauges(func() ([]*v1beta1.Rollout, error) {
		return ctrl.RolloutLister().List(labels.Everything())
	})
	live, ready := ctrl.HealthChecks()
	cfg.GenericConfig.HealthzChecks = append(cfg.GenericConfig.HealthzChecks, live...)
	cfg.GenericConfig.LivezChecks = append(cfg.GenericConfig.LivezChecks, live...)
	cfg.GenericConfig.ReadyzChecks = append(cfg.GenericConfig.ReadyzChecks, ready...)
	failed := make(chan error, 1)
	extra := &cfg.ExtraConfig
	extra.NonAPIHandlers = map[string]http.Handler{
		webhook.Path: webhook.NewHandler(ctrl.RolloutsOf, ctrl.HasSynced, webhookClient),
	}
	extra.PostStartHooks["start-rollout-controller"] = func(hookCtx genericapiserver.PostStartHookContext) error {
		go runController(hookCtx, ctrl.Run, failed)
		return nil
	}
	return failed, nil
}

// runController runs the controller and reports on failed why it stopped: an
// error, or a panic, recovered here because it would otherwise take the API,
// the webhook and the embedded etcd down with it uncleanly. Instance.Run
// turns either into a clean shutdown and a non-zero exit.
func runController(ctx context.Context, run func(context.Context) error, failed chan<- error) {
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", r), "Rollout controller panicked")
			failed <- fmt.Errorf("panic: %v", r)
		}
	}()
	if err := run(ctx); err != nil {
		failed <- err
	}
}

// authConfigWait bounds how long readiness waits for the cluster's client
// and front-proxy CAs; past it the server turns ready and logs why.
const authConfigWait = time.Minute

// waitForAuthenticationConfig keeps /readyz false until the client CA and
// the front-proxy (request header) CA, read from the cluster's
// extension-apiserver-authentication ConfigMap, are loaded. Ready before that,
// requests the aggregator proxies would be served as system:anonymous and
// refused with 403 right after every restart.
func waitForAuthenticationConfig(cfg *genericapiserver.RecommendedConfig) genericapiserver.PostStartHookFunc {
	var providers []dynamiccertificates.CAContentProvider
	if cfg.SecureServing != nil && cfg.SecureServing.ClientCA != nil {
		providers = append(providers, cfg.SecureServing.ClientCA)
	}
	if rh := cfg.Authentication.RequestHeaderConfig; rh != nil && rh.CAContentProvider != nil {
		providers = append(providers, rh.CAContentProvider)
	}
	return func(ctx genericapiserver.PostStartHookContext) error {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, authConfigWait, true, func(context.Context) (bool, error) {
			for _, p := range providers {
				if len(p.CurrentCABundleContent()) == 0 {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			klog.ErrorS(err, "Client or front-proxy CA not loaded; requests may be served as anonymous until it is")
		}
		return nil
	}
}
