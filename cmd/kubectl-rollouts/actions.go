package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/generated/clientset/versioned"
)

// actionOptions send every action as the plugin's field manager, so the
// Rollout's managedFields say that kubectl-rollouts paused it (the server
// cannot read the user agent where it records the write).
var actionOptions = metav1.CreateOptions{FieldManager: "kubectl-rollouts"}

// action is one of the Rollout's action subresources.
type action struct {
	name  string // promote, pause, resume, abort
	short string
	long  string
	// post sends the action; full and reason are the flags of promote and abort.
	post func(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (*v1beta1.Rollout, error)
	// done says in words what the response shows.
	done func(after *v1beta1.Rollout, p actionParams) string
}

// actionParams are the options of an action, from flags or the dashboard's request body.
type actionParams struct {
	Full   bool   `json:"full,omitempty"`
	Reason string `json:"reason,omitempty"`
	// StepIndex and CanaryRevision are what the user saw (the dashboard sends
	// the step it showed); when StepIndex is unset, do reads the Rollout just
	// before the action. Either way they travel as the action's preconditions,
	// so a promote meant for one step can never move the release past another.
	StepIndex      *int32 `json:"stepIndex,omitempty"`
	CanaryRevision string `json:"canaryRevision,omitempty"`
}

// preconditions are the action's preconditions from what the user saw.
func (p actionParams) preconditions() *v1beta1.ActionPreconditions {
	if p.StepIndex == nil && p.CanaryRevision == "" {
		return nil
	}
	return &v1beta1.ActionPreconditions{StepIndex: p.StepIndex, CanaryRevision: p.CanaryRevision}
}

// actions are the four subresources, shared by the commands and the dashboard.
var actions = map[string]action{
	"promote": {
		name:  "promote",
		short: "Move a release on to its next step (--full: finish every remaining step)",
		long: `Move the release on from the step it waits at to the next one; with --full, finish every
remaining step. This is POST rollouts/NAME/promote: it needs RBAC verb "create" on
"rollouts/promote" (role rollout-promoter), not the right to edit the Rollout.`,
		post: func(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (*v1beta1.Rollout, error) {
			return c.RolloutV1beta1().Rollouts(ns).Promote(ctx, name, &v1beta1.RolloutPromote{Full: p.Full, Preconditions: p.preconditions()}, actionOptions)
		},
		done: func(after *v1beta1.Rollout, p actionParams) string {
			what := "promoted"
			if p.Full {
				what = "fully promoted"
			}
			if pa := after.Status.PendingAction; pa != nil {
				return fmt.Sprintf("%s at step %d/%d", what, pa.StepIndex, len(stepsOf(after)))
			}
			return what
		},
	},
	"pause": {
		name:  "pause",
		short: "Stop a release where it is",
		long:  `Stop the release where it is (sets spec.strategy.paused through POST rollouts/NAME/pause).`,
		post: func(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (*v1beta1.Rollout, error) {
			return c.RolloutV1beta1().Rollouts(ns).Pause(ctx, name, &v1beta1.RolloutPause{Preconditions: p.preconditions()}, actionOptions)
		},
		done: func(_ *v1beta1.Rollout, _ actionParams) string { return "paused" },
	},
	"resume": {
		name:  "resume",
		short: "Resume a paused release",
		long:  `Resume a release stopped by pause (POST rollouts/NAME/resume).`,
		post: func(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (*v1beta1.Rollout, error) {
			return c.RolloutV1beta1().Rollouts(ns).Resume(ctx, name, &v1beta1.RolloutResume{Preconditions: p.preconditions()}, actionOptions)
		},
		done: func(_ *v1beta1.Rollout, _ actionParams) string { return "resumed" },
	},
	"abort": {
		name:  "abort",
		short: "Abort a release: traffic back to stable, then the workload back to the stable revision",
		long: `Abort the release in progress: traffic goes back to the stable revision first, then the
workload. The reason is recorded in status.abort.message (POST rollouts/NAME/abort).`,
		post: func(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (*v1beta1.Rollout, error) {
			return c.RolloutV1beta1().Rollouts(ns).Abort(ctx, name, &v1beta1.RolloutAbort{Reason: p.Reason, Preconditions: p.preconditions()}, actionOptions)
		},
		done: func(after *v1beta1.Rollout, _ actionParams) string {
			if pa := after.Status.PendingAction; pa != nil {
				return fmt.Sprintf("aborted at step %d/%d", pa.StepIndex, len(stepsOf(after)))
			}
			return "aborted"
		},
	},
}

// do sends the action and returns the sentence to print, or an explained error.
func (a action) do(ctx context.Context, c versioned.Interface, ns, name string, p actionParams) (string, *v1beta1.Rollout, error) {
	if p.StepIndex == nil && (a.name == "promote" || a.name == "abort") {
		// Promote and abort act on a step: name the one the user is looking at.
		seen, err := c.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", nil, explain(err, "get", "rollouts", ns, name)
		}
		if i := seen.Status.CurrentStepIndex; i > 0 {
			p.StepIndex = &i
		}
	}
	after, err := a.post(ctx, c, ns, name, p)
	if err != nil {
		// Every action is RBAC verb "create" on its subresource.
		return "", nil, explain(err, "create", "rollouts/"+a.name, ns, name)
	}
	return fmt.Sprintf("rollout %s/%s %s", ns, name, a.done(after, p)), after, nil
}

func newActionCommand(o *options, a action, bind func(cmd *cobra.Command, p *actionParams)) *cobra.Command {
	var p actionParams
	cmd := &cobra.Command{
		Use:               a.name + " NAME",
		Short:             a.short,
		Long:              a.long,
		Args:              exactlyOneName(a.name),
		ValidArgsFunction: o.completeRollouts,
		RunE: func(cmd *cobra.Command, args []string) error {
			ro, _, ns, err := o.setup()
			if err != nil {
				return err
			}
			msg, _, err := a.do(cmd.Context(), ro, ns, args[0], p)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.streams.Out, msg)
			return nil
		},
	}
	if bind != nil {
		bind(cmd, &p)
	}
	return cmd
}

// exactlyOneName is cobra.ExactArgs(1) with a message that names what is missing.
func exactlyOneName(command string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("%s needs the name of a Rollout: kubectl rollouts %s NAME", command, command)
		case len(args) > 1:
			return fmt.Errorf("%s takes one Rollout name, got %d: %v", command, len(args), args)
		}
		return nil
	}
}

func newPromoteCommand(o *options) *cobra.Command {
	return newActionCommand(o, actions["promote"], func(cmd *cobra.Command, p *actionParams) {
		cmd.Flags().BoolVar(&p.Full, "full", false, "finish every remaining step")
	})
}

func newPauseCommand(o *options) *cobra.Command  { return newActionCommand(o, actions["pause"], nil) }
func newResumeCommand(o *options) *cobra.Command { return newActionCommand(o, actions["resume"], nil) }

func newAbortCommand(o *options) *cobra.Command {
	return newActionCommand(o, actions["abort"], func(cmd *cobra.Command, p *actionParams) {
		cmd.Flags().StringVar(&p.Reason, "reason", "", "why the release is aborted (recorded in status.abort.message)")
	})
}
