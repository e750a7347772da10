package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newHistoryCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List the revisions of a Rollout's workload and how their releases ended",
		Long: `List the revisions of the workload (its ReplicaSets or ControllerRevisions), newest first:
the images, when the revision was created, its role in the release, and from the Rollout's
Events how its release ended, when, and who promoted it. Events are kept by the cluster for a
limited time (one hour by default), so older releases show only the revision.`,
		Args:              exactlyOneName("history"),
		ValidArgsFunction: o.completeRollouts,
		RunE: func(cmd *cobra.Command, args []string) error {
			ro, kube, ns, err := o.setup()
			if err != nil {
				return err
			}
			rel, err := collect(cmd.Context(), ro, kube, ns, args[0], true)
			if err != nil {
				return err
			}
			if rel.WorkloadError != "" {
				return fmt.Errorf("rollout %s/%s: %s", ns, args[0], rel.WorkloadError)
			}
			printHistory(o.streams.Out, rel)
			return nil
		},
	}
}

// releaseOutcome is how the release of one revision ended, from the Rollout's Events.
type releaseOutcome struct {
	result string
	at     time.Time
	by     []string
}

// outcomes reads, per revision id, the Events that name it. Event messages name revisions
// as "revision <id>".
func outcomes(rel *release) map[string]*releaseOutcome {
	out := map[string]*releaseOutcome{}
	for _, rev := range rel.Revisions {
		o := &releaseOutcome{}
		for _, e := range rel.allEvents { // newest first
			// "Revision X of … is released" starts a sentence; the rest say "revision X".
			if !strings.Contains(strings.ToLower(e.Message), "revision "+strings.ToLower(rev.ID)) {
				continue
			}
			switch e.Reason {
			case "Succeeded":
				if o.result == "" {
					o.result, o.at = "released", e.Last
				}
			case "RolledBack", "Aborted":
				if o.result == "" && strings.Contains(e.Message, "release of revision "+rev.ID) {
					o.result, o.at = "aborted", e.Last
				}
			case "ReleaseCancelled":
				if o.result == "" && strings.Contains(e.Message, "release of revision "+rev.ID) {
					o.result, o.at = "cancelled", e.Last
				}
			case "Promoted":
				if who, _, ok := strings.Cut(e.Message, " promoted"); ok && !contains(o.by, who) {
					o.by = append(o.by, who)
				}
			}
		}
		out[rev.ID] = o
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func printHistory(w io.Writer, rel *release) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tID\tIMAGES\tCREATED\tROLE\tRELEASE\tPROMOTED BY\tCHANGE-CAUSE")
	res := outcomes(rel)
	for _, rev := range rel.Revisions {
		o := res[rev.ID]
		result := "-"
		if o.result != "" {
			result = fmt.Sprintf("%s %s ago", o.result, age(o.at, rel.Now))
		}
		by := "-"
		if len(o.by) > 0 {
			by = strings.Join(o.by, ",")
		}
		cause := rev.ChangeCause
		if cause == "" {
			cause = "-"
		}
		role := rev.Role
		if role == "" {
			role = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s ago\t%s\t%s\t%s\t%s\n", rev.Number, rev.ID, strings.Join(rev.Images, ","), age(rev.Created, rel.Now), role, result, by, cause)
	}
	_ = tw.Flush()
}
