package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func newListCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List Rollouts with their progress",
		Example: `  kubectl rollouts list
  kubectl rollouts list -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ro, _, err := o.clients()
			if err != nil {
				return err
			}
			ns, err := o.listNamespace()
			if err != nil {
				return err
			}
			list, err := ro.RolloutV1beta1().Rollouts(ns).List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return explain(err, "list", "rollouts", ns, "")
			}
			if len(list.Items) == 0 {
				fmt.Fprintf(o.streams.ErrOut, "No Rollouts found%s.\n", map[bool]string{true: "", false: " in namespace " + ns}[ns == ""])
				return nil
			}
			printList(o.streams.Out, list.Items, ns == "", time.Now())
			return nil
		},
	}
}

// printList writes the table of `list`: like `kubectl get ro` with a progress column.
func printList(out io.Writer, items []v1beta1.Rollout, withNamespace bool, now time.Time) {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "NAME\tSTATUS\tSTEP\tSTATE\tPROGRESS\tWORKLOAD\tAGE"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for i := range items {
		r := &items[i]
		row := []string{r.Name, statusWord(r), stepColumn(r), stateColumn(r), progressBar(r), r.Spec.WorkloadRef.Kind + "/" + r.Spec.WorkloadRef.Name, age(r.CreationTimestamp.Time, now)}
		if withNamespace {
			row = append([]string{r.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}

// statusWord is the phase, "Paused" for a paused release, "Aborted" for an aborted one.
func statusWord(r *v1beta1.Rollout) string {
	switch {
	case r.Spec.Strategy.Paused && r.Status.Phase == v1beta1.RolloutPhaseProgressing:
		return "Paused"
	case r.Status.Phase == v1beta1.RolloutPhaseHealthy && r.Status.Abort != nil:
		return "Aborted"
	case r.Status.Phase == "":
		return "Unknown"
	}
	return string(r.Status.Phase)
}

func stepColumn(r *v1beta1.Rollout) string {
	n := len(stepsOf(r))
	if cs := r.Status.Progress(); cs != nil && n > 0 {
		return fmt.Sprintf("%d/%d", cs.CurrentStepIndex, n)
	}
	return fmt.Sprintf("-/%d", n)
}

func stateColumn(r *v1beta1.Rollout) string {
	if cs := r.Status.Progress(); cs != nil && cs.CurrentStepState != "" {
		return string(cs.CurrentStepState)
	}
	return "-"
}

// progressBar draws the finished steps of the current release, e.g. "[■■□] 2/3".
func progressBar(r *v1beta1.Rollout) string {
	steps := stepsOf(r)
	if len(steps) == 0 {
		return "-"
	}
	done := 0
	for i := range steps {
		if stepStatus(r, i) == markDone {
			done++
		}
	}
	return "[" + strings.Repeat("■", done) + strings.Repeat("□", len(steps)-done) + "]"
}
