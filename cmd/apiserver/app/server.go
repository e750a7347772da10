package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/klog/v2"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apiserver"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/embeddedetcd"
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer i.stopEtcd()
	if i.etcd != nil {
		go func() {
			// etcd failing under us is fatal: shut the API server down
			// rather than serve errors.
			if err, ok := <-i.etcd.Errors(); ok && err != nil {
				klog.ErrorS(err, "Embedded etcd failed; shutting down")
				cancel()
			}
		}()
	}
	if err := i.Server.GenericAPIServer.PrepareRun().RunWithContext(ctx); err != nil {
		return fmt.Errorf("running API server: %w", err)
	}
	return nil
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
	cfg := &apiserver.Config{GenericConfig: genericConfig}
	return cfg.Complete().New()
}
