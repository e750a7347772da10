// Command apiserver serves the rollout.kruise.io API group as a Kubernetes
// aggregated API server, with its own storage and the release controller.
package main

import (
	"os"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"

	"github.com/rollout-apiserver/rollout-apiserver/cmd/apiserver/app"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	cmd := app.NewCommand(ctx, app.NewServerOptions())
	os.Exit(cli.Run(cmd))
}
