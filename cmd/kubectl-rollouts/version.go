package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise it is the
// module version Go recorded, or "devel".
var version = "devel"

func init() {
	if version != "devel" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
}

func newVersionCommand(o *options) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and the rollout.kruise.io versions the cluster serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(o.streams.Out, "kubectl-rollouts %s\n", version)
			if clientOnly {
				return nil
			}
			ro, _, err := o.clients()
			if err != nil {
				return err
			}
			group := &metav1.APIGroup{}
			err = ro.Discovery().RESTClient().Get().AbsPath("/apis/rollout.kruise.io").Do(cmd.Context()).Into(group)
			if err != nil {
				return fmt.Errorf("the cluster does not serve rollout.kruise.io (is rollout-apiserver registered?): %w", err)
			}
			var versions []string
			for _, v := range group.Versions {
				versions = append(versions, v.Version)
			}
			fmt.Fprintf(o.streams.Out, "server: rollout.kruise.io %v (preferred %s)\n", versions, group.PreferredVersion.Version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the plugin's version")
	return cmd
}
