package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// redrawDelay collects the burst of events one change causes (a Rollout status write, a pod
// created, its ReplicaSet's status) into one redraw.
const redrawDelay = 150 * time.Millisecond

func newGetCommand(o *options) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "Show a Rollout as a tree of steps, revisions and pods (-w: live)",
		Long: `Show a Rollout as a tree: its phase and step, each step (replicas, traffic, pause, metric
checks; the current one marked ▶), the traffic routing, and each revision of the workload with
its ReplicaSet or ControllerRevision and pods. Without NAME, every Rollout of the namespace.

With -w the tree is redrawn in place whenever the Rollout, its pods or revisions change
(from watches, not polling). When the output is not a terminal, -w prints one line per change
of the Rollout's state instead.`,
		Example: `  kubectl rollouts get web
  kubectl rollouts get web -w`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: o.completeRollouts,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if watch && name == "" {
				return fmt.Errorf("get -w needs the name of one Rollout")
			}
			if watch {
				return o.watchTree(cmd.Context(), name)
			}
			return o.printTrees(cmd.Context(), o.streams.Out, name)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw the tree whenever the release changes")
	return cmd
}

// printTrees prints the tree of one Rollout, or of every Rollout in the namespace.
func (o *options) printTrees(ctx context.Context, out io.Writer, name string) error {
	ro, kube, ns, err := o.setup()
	if err != nil {
		return err
	}
	names := []string{name}
	if name == "" {
		list, err := ro.RolloutV1beta1().Rollouts(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return explain(err, "list", "rollouts", ns, "")
		}
		if len(list.Items) == 0 {
			fmt.Fprintf(o.streams.ErrOut, "No Rollouts in namespace %s.\n", ns)
			return nil
		}
		names = names[:0]
		for _, r := range list.Items {
			names = append(names, r.Name)
		}
	}
	for i, n := range names {
		rel, err := collect(ctx, ro, kube, ns, n, false)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		renderTree(out, rel)
	}
	return nil
}

// isTerminal reports whether w is a terminal (redraw in place) or a pipe/file (plain lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// watchTree redraws the tree of one Rollout at every change until interrupted.
func (o *options) watchTree(ctx context.Context, name string) error {
	ro, kube, ns, err := o.setup()
	if err != nil {
		return err
	}
	changes, err := watchChanges(ctx, ro, kube, ns)
	if err != nil {
		return err
	}
	tty := isTerminal(o.streams.Out)
	var last string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
		// Let the rest of a burst arrive, then draw once.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(redrawDelay):
		}
		rel, err := collect(ctx, ro, kube, ns, name, false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if tty {
			var buf bytes.Buffer
			renderTree(&buf, rel)
			if buf.String() != last {
				last = buf.String()
				// Home, draw, clear what is left of the previous frame below.
				fmt.Fprint(o.streams.Out, "\x1b[H\x1b[2J"+last)
			}
			continue
		}
		line := summary(rel.Rollout)
		if msg := rel.Rollout.Status.Message; msg != "" {
			line += "  " + msg
		}
		if line != last {
			last = line
			fmt.Fprintf(o.streams.Out, "%s %s/%s  %s\n", time.Now().Format("15:04:05"), ns, name, line)
		}
	}
}
