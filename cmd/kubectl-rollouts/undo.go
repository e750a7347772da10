package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

func newUndoCommand(o *options) *cobra.Command {
	var toRevision int64
	cmd := &cobra.Command{
		Use:   "undo NAME",
		Short: "Write an earlier pod template back into the Rollout's workload",
		Long: `Write the pod template of an earlier revision of the workload back into it: by default the
revision before the one the workload has now, or --to-revision N (the REVISION column of
"kubectl rollouts history"). The workload admission webhook turns the change into a new release
through the Rollout's steps, or, in the middle of a release, back to its stable revision, into a
fast rollback. Needs the right to update the workload (like kubectl rollout undo).`,
		Example: `  kubectl rollouts undo web
  kubectl rollouts undo web --to-revision 2`,
		Args:              exactlyOneName("undo"),
		ValidArgsFunction: o.completeRollouts,
		RunE: func(cmd *cobra.Command, args []string) error {
			if toRevision < 0 {
				return fmt.Errorf("--to-revision must be a revision number (see kubectl rollouts history %s), got %d", args[0], toRevision)
			}
			ro, kube, ns, err := o.setup()
			if err != nil {
				return err
			}
			r, err := ro.RolloutV1beta1().Rollouts(ns).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return explain(err, "get", "rollouts", ns, args[0])
			}
			w, revs, err := readWorkload(cmd.Context(), kube, ns, r.Spec.WorkloadRef)
			if err != nil {
				return err
			}
			target, err := undoTarget(w, revs, toRevision)
			if err != nil {
				return fmt.Errorf("rollout %s/%s: %w", ns, r.Name, err)
			}
			if err := setTemplate(cmd.Context(), kube, ns, w, target.Template); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "rollout %s/%s: %s %s set to the template of revision %d (%s); the webhook and the release controller take it from here\n",
				ns, r.Name, w.Kind, w.Name, target.Number, strings.Join(target.Images, ","))
			return nil
		},
	}
	cmd.Flags().Int64Var(&toRevision, "to-revision", 0, "revision to go back to; 0 means the one before the current")
	return cmd
}

// undoTarget picks the revision undo writes back: toRevision, or (0) the newest revision
// whose template differs from the workload's.
func undoTarget(w *workloadInfo, revs []revisionInfo, toRevision int64) (*revisionInfo, error) {
	cur := currentRevision(w, revs)
	if toRevision > 0 {
		for i := range revs {
			if revs[i].Number == toRevision {
				if cur != nil && cur.Number == toRevision {
					return nil, fmt.Errorf("%s %s already runs the template of revision %d", w.Kind, w.Name, toRevision)
				}
				return &revs[i], nil
			}
		}
		var have []string
		for _, r := range revs {
			have = append(have, fmt.Sprint(r.Number))
		}
		return nil, fmt.Errorf("%s %s has no revision %d (it has: %s)", w.Kind, w.Name, toRevision, strings.Join(have, ", "))
	}
	for i := range revs {
		if !sameTemplate(revs[i].Template, w.Template) {
			return &revs[i], nil
		}
	}
	return nil, fmt.Errorf("%s %s has no earlier revision to go back to", w.Kind, w.Name)
}

// setTemplate writes tpl into the workload, retrying conflicts with the controllers.
func setTemplate(ctx context.Context, kube kubernetes.Interface, ns string, w *workloadInfo, tpl *corev1.PodTemplateSpec) error {
	tpl = withoutHashLabels(tpl)
	apps := kube.AppsV1()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		switch w.Kind {
		case v1beta1.KindDeployment:
			d, err := apps.Deployments(ns).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Spec.Template = *merged(d.Spec.Template, tpl)
			_, err = apps.Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		case v1beta1.KindStatefulSet:
			s, err := apps.StatefulSets(ns).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Template = *merged(s.Spec.Template, tpl)
			_, err = apps.StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return err
		default:
			d, err := apps.DaemonSets(ns).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Spec.Template = *merged(d.Spec.Template, tpl)
			_, err = apps.DaemonSets(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		}
	})
	if err != nil {
		return explain(err, "update", strings.ToLower(w.Kind)+"s", ns, w.Name)
	}
	return nil
}

// merged is tpl, keeping the annotations of cur under the rollout.kruise.io/ prefix: they
// belong to the release controller, not to the revision.
func merged(cur corev1.PodTemplateSpec, tpl *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	out := tpl.DeepCopy()
	for k, v := range cur.Annotations {
		if strings.HasPrefix(k, "rollout.kruise.io/") {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	delete(out.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return out
}
