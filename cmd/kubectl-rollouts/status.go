package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func newStatusCommand(o *options) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait for a release to finish; exit 0 released, 1 aborted, 2 timed out",
		Long: `Wait until the Rollout has no release in progress and say how the last one ended, printing
one line per step change. Made for CI pipelines:

  exit 0  the release finished (Healthy), or there was none to wait for
  exit 1  the release was aborted (by a user, a failed metric check or the progress
          deadline) or cancelled (the workload was reverted), or the status could not be read
  exit 2  --timeout passed first

A workload the webhook still holds (its change was just admitted) counts as a release in
progress, so "kubectl set image ... && kubectl rollouts status NAME" waits for the new release.`,
		Example:           `  kubectl rollouts status web --timeout 10m`,
		Args:              exactlyOneName("status"),
		ValidArgsFunction: o.completeRollouts,
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return fmt.Errorf("--timeout must not be negative, got %s", timeout)
			}
			return o.waitStatus(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up (exit 2) after this long, e.g. 10m; 0 waits forever")
	return cmd
}

// verdict is what status concludes from one observation.
type verdict struct {
	done bool
	code int
	text string
}

// judge decides from the Rollout and its workload whether the release is over and how.
func judge(r *v1beta1.Rollout, w *workloadInfo) verdict {
	st := r.Status
	switch {
	case st.Phase == v1beta1.RolloutPhaseDisabled:
		return verdict{true, exitOK, "the Rollout is disabled; the workload's own strategy releases it"}
	case st.Phase == v1beta1.RolloutPhaseAborted && st.ObservedGeneration >= r.Generation && st.PendingAction == nil:
		// Aborted holds the workload on its stable revision until the template
		// changes or the release is retried: for CI the release has failed.
		return verdict{true, exitFailed, fmt.Sprintf("release failed (Aborted): %s", st.Message)}
	case st.Phase != v1beta1.RolloutPhaseHealthy:
		return verdict{}
	case st.ObservedGeneration < r.Generation:
		return verdict{} // the controller has not seen the latest spec yet
	case w != nil && w.Held:
		return verdict{} // a release is about to start (or finishing its hand-back)
	case st.PendingAction != nil:
		return verdict{}
	}
	c := condition(r, v1beta1.RolloutConditionSucceeded)
	switch {
	case c != nil && c.Status == corev1.ConditionFalse:
		return verdict{true, exitFailed, fmt.Sprintf("release failed (%s): %s", c.Reason, c.Message)}
	case c != nil && c.Status == corev1.ConditionTrue && c.Message != "":
		// The condition keeps how the last release ended; the message moves on
		// to the idle state as soon as the controller looks again.
		return verdict{true, exitOK, "released: " + c.Message}
	}
	return verdict{true, exitOK, "released: " + st.Message}
}

// progressLine is the line status prints when the step or state changes.
func progressLine(r *v1beta1.Rollout) string {
	line := summary(r)
	if msg := r.Status.Message; msg != "" {
		line += ": " + msg
	}
	return line
}

// waitStatus follows the Rollout until judge says it is done, or the timeout.
func (o *options) waitStatus(ctx context.Context, name string, timeout time.Duration) error {
	ro, kube, ns, err := o.setup()
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimedOut)
		defer cancel()
	}
	fail := func(err error) error {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return withCode(exitTimeout, fmt.Errorf("rollout %s/%s: timed out after %s waiting for the release to finish", ns, name, timeout))
		}
		return err
	}
	changes, err := watchChanges(ctx, ro, kube, ns)
	if err != nil {
		return fail(err)
	}
	last := ""
	for {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-changes:
		}
		r, err := ro.RolloutV1beta1().Rollouts(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fail(explain(err, "get", "rollouts", ns, name))
		}
		w, err := getWorkload(ctx, kube, ns, r.Spec.WorkloadRef)
		if err != nil {
			w = nil // judge from the Rollout alone
		}
		if line := progressLine(r); line != last {
			last = line
			fmt.Fprintf(o.streams.Out, "%s %s\n", time.Now().Format("15:04:05"), line)
		}
		if v := judge(r, w); v.done {
			if v.code != exitOK {
				return withCode(v.code, fmt.Errorf("rollout %s/%s: %s", ns, name, v.text))
			}
			fmt.Fprintf(o.streams.Out, "rollout %s/%s %s\n", ns, name, v.text)
			return nil
		}
	}
}

var errTimedOut = errors.New("status timed out")
