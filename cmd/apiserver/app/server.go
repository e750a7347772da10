package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

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
}

// Prepare starts the embedded etcd when no external one is configured, then
// builds the API server on it.
func Prepare(ctx context.Context, o *ServerOptions) (*Instance, error) {
	instance := &Instance{}
	if o.UsesEmbeddedEtcd() {
		etcd, err := embeddedetcd.Start(ctx, o.EtcdDataDir)
		if err != nil {
			return nil, err
		}
		instance.etcd = etcd
		o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = []string{etcd.ClientURL}
	}
	server, err := NewServer(o)
	if err != nil {
		instance.stopEtcd()
		return nil, err
	}
	instance.Server = server
	return instance, nil
}

// Run serves until ctx is done. On the way out the API server drains its
// requests before the embedded etcd stops, so nothing in flight is lost.
func (i *Instance) Run(ctx context.Context) error {
	defer i.stopEtcd()
	var etcdErrors <-chan error
	if i.etcd != nil {
		etcdErrors = i.etcd.Errors()
	}
	return runUntilFatal(ctx, etcdErrors, func(ctx context.Context) error {
		if err := i.Server.GenericAPIServer.PrepareRun().RunWithContext(ctx); err != nil {
			return fmt.Errorf("running API server: %w", err)
		}
		return nil
	})
}

// runUntilFatal runs serve until ctx is done or fatal reports an error. A
// fatal error (the embedded etcd failing under the server) shuts serve down
// and is returned, so the process exits non-zero and is restarted rather than
// report a clean stop that no supervisor would act on.
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
				klog.ErrorS(err, "Embedded etcd failed; shutting down")
				fatalErr = fmt.Errorf("embedded etcd failed: %w", err)
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

func (i *Instance) stopEtcd() {
	if i.etcd != nil {
		i.etcd.Stop()
		i.etcd = nil
	}
}

// NewServer builds the API server from options whose etcd servers are final.
func NewServer(o *ServerOptions) (*apiserver.Server, error) {
	genericConfig, err := o.GenericConfig()
	if err != nil {
		return nil, err
	}
	addresses, err := o.AddressPolicy()
	if err != nil {
		return nil, err
	}
	cfg := &apiserver.Config{GenericConfig: genericConfig}
	cfg.ExtraConfig.MetricAddresses = addresses
	cfg.ExtraConfig.PostStartHooks = map[string]genericapiserver.PostStartHookFunc{
		"wait-for-authentication-config": waitForAuthenticationConfig(genericConfig),
	}
	if o.Controller.Enabled {
		if err := addController(o, cfg); err != nil {
			return nil, err
		}
	}
	return cfg.Complete().New()
}

// addController builds the release controller and the workload webhook, and
// adds them to the server: the controller starts from a post-start hook, once
// the server serves the Rollouts it watches through the loopback client.
func addController(o *ServerOptions, cfg *apiserver.Config) error {
	hostConfig := cfg.GenericConfig.ClientConfig
	if hostConfig == nil {
		return fmt.Errorf("the controller needs the host cluster: set --kubeconfig, run in a cluster, or pass --enable-controller=false")
	}
	kubeClient, err := kubernetes.NewForConfig(rest.CopyConfig(hostConfig))
	if err != nil {
		return fmt.Errorf("building host cluster client: %w", err)
	}
	loopback := rest.CopyConfig(cfg.GenericConfig.LoopbackClientConfig)
	rolloutClient, err := versioned.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("building loopback rollout client: %w", err)
	}
	gatewayClient, err := gwclient.NewForConfig(rest.CopyConfig(hostConfig))
	if err != nil {
		return fmt.Errorf("building Gateway API client: %w", err)
	}
	identity, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("reading hostname for the leader election identity: %w", err)
	}
	recorder := controllermetrics.NewRecorder()
	ctrl, err := controller.New(controller.Config{
		RolloutClient: rolloutClient,
		KubeClient:    kubeClient,
		GatewayClient: gatewayClient,
		Workers:       o.Controller.Workers,
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
		},
	})
	if err != nil {
		return fmt.Errorf("building the rollout controller: %w", err)
	}
	extra := &cfg.ExtraConfig
	extra.NonAPIHandlers = map[string]http.Handler{
		webhook.Path: webhook.NewHandler(ctrl.RolloutLister(), ctrl.HasSynced, rolloutClient),
	}
	extra.PostStartHooks["start-rollout-controller"] = func(hookCtx genericapiserver.PostStartHookContext) error {
		go runRecovered(hookCtx, "rollout controller", controllerRestartDelay, ctrl.Run)
		return nil
	}
	return nil
}

// controllerRestartDelay is how long a controller that panicked waits before
// it runs again.
const controllerRestartDelay = 5 * time.Second

// runRecovered runs fn until ctx is done, and again after delay whenever it
// panics. A post-start goroutine's panic would otherwise end the process, and
// with it the API, the webhook and the embedded etcd that share it.
func runRecovered(ctx context.Context, name string, delay time.Duration, fn func(context.Context) error) {
	for {
		panicked := func() (panicked bool) {
			defer func() {
				if r := recover(); r != nil {
					klog.ErrorS(fmt.Errorf("panic: %v", r), "Recovered a panic; restarting", "component", name, "delay", delay)
					panicked = true
				}
			}()
			if err := fn(ctx); err != nil {
				klog.ErrorS(err, "Stopped", "component", name)
			}
			return false
		}()
		if !panicked {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
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
