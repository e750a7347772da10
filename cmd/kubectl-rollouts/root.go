package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// Exit codes. status uses all of them; every other command exits 0 or exitFailed.
const (
	exitOK      = 0
	exitFailed  = 1 // an error, or (status) a release that was aborted or cancelled
	exitTimeout = 2 // (status) the release did not finish within --timeout
)

// exitError carries an exit code other than exitFailed out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode makes err end the process with code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// options are what every command shares: kubeconfig flags, the IO streams and the clients
// built from them on first use.
type options struct {
	flags         *genericclioptions.ConfigFlags
	streams       genericiooptions.IOStreams
	allNamespaces bool

	config *rest.Config
	ro     versioned.Interface
	kube   kubernetes.Interface
}

// clients builds the Rollout and Kubernetes clients once, from the user's own kubeconfig (so
// every request runs with the user's own rights).
func (o *options) clients() (versioned.Interface, kubernetes.Interface, error) {
	if o.ro != nil {
		return o.ro, o.kube, nil
	}
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-rollouts/" + version
	o.config = cfg
	if o.ro, err = versioned.NewForConfig(cfg); err != nil {
		return nil, nil, err
	}
	if o.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, nil, err
	}
	return o.ro, o.kube, nil
}

// setup is clients() and namespace(), what most commands start with.
func (o *options) setup() (versioned.Interface, kubernetes.Interface, string, error) {
	ro, kube, err := o.clients()
	if err != nil {
		return nil, nil, "", err
	}
	ns, err := o.namespace()
	return ro, kube, ns, err
}

// namespace is -n, else the kubeconfig context's namespace, else "default".
func (o *options) namespace() (string, error) {
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

// listNamespace is "" (all) with -A, else namespace().
func (o *options) listNamespace() (string, error) {
	if o.allNamespaces {
		return "", nil
	}
	return o.namespace()
}

func newOptions(streams genericiooptions.IOStreams) *options {
	return &options{flags: genericclioptions.NewConfigFlags(true), streams: streams}
}

// newRootCommand builds the command tree around o; tests give o fake clients.
func newRootCommand(o *options) *cobra.Command {
	streams := o.streams
	root := &cobra.Command{
		Use:   "kubectl-rollouts",
		Short: "Watch and drive rollout.kruise.io Rollouts",
		Long: `Watch and drive the releases of rollout.kruise.io Rollouts.

Every action is one POST to a subresource of the Rollout (rollouts/promote, rollouts/pause,
rollouts/resume, rollouts/abort), checked by RBAC like any other request: the plugin never
needs more rights than the action itself.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl rollouts",
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.flags.AddFlags(root.PersistentFlags())
	root.PersistentFlags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list and watch Rollouts in all namespaces")
	_ = root.RegisterFlagCompletionFunc("namespace", o.completeNamespaces)

	root.AddCommand(
		newGetCommand(o),
		newListCommand(o),
		newPromoteCommand(o),
		newPauseCommand(o),
		newResumeCommand(o),
		newAbortCommand(o),
		newUndoCommand(o),
		newHistoryCommand(o),
		newStatusCommand(o),
		newDashboardCommand(o),
		newVersionCommand(o),
	)
	return root
}

// run executes the command line and returns the process exit code.
func run(args []string, streams genericiooptions.IOStreams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return execute(ctx, newOptions(streams), args)
}

// execute runs one command line with o and returns the exit code.
func execute(ctx context.Context, o *options, args []string) int {
	streams := o.streams
	root := newRootCommand(o)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(streams.ErrOut, "error: "+err.Error())
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}
