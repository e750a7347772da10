package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Marks of the tree. Plain Unicode, no colours: the tree reads the same in a terminal, a
// CI log and a golden file.
const (
	markDone    = "✔"
	markCurrent = "▶"
	markPending = "·"
	markFailed  = "✖"
)

// olderRevisions is how many revisions without pods or role are shown before the rest are
// summarised (history lists them all).
const olderRevisions = 1

// renderTree writes the release as a tree: the Rollout, its steps, the traffic, then each
// revision with its ReplicaSet or ControllerRevision and pods.
func renderTree(out io.Writer, rel *release) {
	r := rel.Rollout
	t := &treeWriter{out: out}
	fmt.Fprintf(out, "Rollout %s/%s  %s\n", r.Namespace, r.Name, summary(r))
	if msg := r.Status.Message; msg != "" {
		fmt.Fprintf(out, "  Message:  %s\n", msg)
	}
	if rel.Workload != nil {
		held := ""
		if rel.Workload.Held {
			held = ", held for the release"
		}
		fmt.Fprintf(out, "  Workload: %s %s (%d replicas%s)\n", rel.Workload.Kind, rel.Workload.Name, rel.Workload.Replicas, held)
	} else {
		fmt.Fprintf(out, "  Workload: %s %s (%s)\n", r.Spec.WorkloadRef.Kind, r.Spec.WorkloadRef.Name, rel.WorkloadError)
	}
	if pa := r.Status.PendingAction; pa != nil {
		fmt.Fprintf(out, "  Pending:  %s\n", pendingString(pa))
	}
	if a := r.Status.Abort; a != nil {
		fmt.Fprintf(out, "  Aborted:  %s at step %d: %s\n", a.Reason, a.StepIndex, a.Message)
	}

	steps := stepsOf(r)
	var sections []func(prefix string)
	if len(steps) > 0 {
		sections = append(sections, func(prefix string) { t.steps(prefix, r, steps) })
	}
	if routing := routingString(r); routing != "" {
		sections = append(sections, func(prefix string) { t.line(prefix, true, "Traffic  "+routing) })
	}
	shown, hidden := visibleRevisions(rel.Revisions)
	for i := range shown {
		rev := shown[i]
		sections = append(sections, func(prefix string) { t.revision(prefix, rev, rel.Now) })
	}
	if hidden > 0 {
		sections = append(sections, func(prefix string) {
			t.line(prefix, true, fmt.Sprintf("%d older revisions (kubectl rollouts history %s)", hidden, r.Name))
		})
	}
	for i, s := range sections {
		t.last = i == len(sections)-1
		s("")
	}
}

// treeWriter draws the branches.
type treeWriter struct {
	out  io.Writer
	last bool
}

// line writes one node under prefix; last is whether it is its parent's last child.
func (t *treeWriter) line(prefix string, _ bool, text string) string {
	branch, next := "├── ", "│   "
	if t.last {
		branch, next = "└── ", "    "
	}
	fmt.Fprintf(t.out, "%s%s%s\n", prefix, branch, text)
	return prefix + next
}

func (t *treeWriter) children(prefix string, lines []string) {
	for i, l := range lines {
		branch := "├── "
		if i == len(lines)-1 {
			branch = "└── "
		}
		fmt.Fprintf(t.out, "%s%s%s\n", prefix, branch, l)
	}
}

func (t *treeWriter) steps(prefix string, r *v1beta1.Rollout, steps []v1beta1.CanaryStep) {
	next := t.line(prefix, t.last, fmt.Sprintf("Steps (%d)", len(steps)))
	var lines []string
	for i := range steps {
		lines = append(lines, stepLine(r, steps, i))
	}
	t.children(next, lines)
}

func (t *treeWriter) revision(prefix string, rev revisionInfo, now time.Time) {
	role := ""
	if rev.Role != "" {
		role = " " + rev.Role
	}
	head := fmt.Sprintf("Revision %d%s  %s", rev.Number, role, strings.Join(rev.Images, ","))
	next := t.line(prefix, t.last, head)
	ready := 0
	for _, p := range rev.Pods {
		if p.Ready && !p.Deleting {
			ready++
		}
	}
	owner := fmt.Sprintf("%s %s  %d/%d ready  %s", rev.Kind, rev.Name, ready, len(rev.Pods), age(rev.Created, now))
	fmt.Fprintf(t.out, "%s└── %s\n", next, owner)
	var lines []string
	for _, p := range rev.Pods {
		lines = append(lines, podLine(p, now))
	}
	t.children(next+"    ", lines)
}

func podLine(p podInfo, now time.Time) string {
	state := p.Phase
	switch {
	case p.Deleting:
		state = "Terminating"
	case p.Ready:
		state += ", ready"
	default:
		state += ", not ready"
	}
	restarts := ""
	if p.Restarts > 0 {
		restarts = fmt.Sprintf("  %d restarts", p.Restarts)
	}
	return fmt.Sprintf("Pod %s  %s  %s%s", p.Name, state, age(p.Created, now), restarts)
}

// visibleRevisions keeps the revisions with pods or a role, and the newest olderRevisions
// of the others; it returns how many it left out.
func visibleRevisions(revs []revisionInfo) ([]revisionInfo, int) {
	var shown []revisionInfo
	extra, hidden := 0, 0
	for _, rev := range revs {
		switch {
		case len(rev.Pods) > 0 || rev.Role != "":
			shown = append(shown, rev)
		case extra < olderRevisions:
			shown = append(shown, rev)
			extra++
		default:
			hidden++
		}
	}
	return shown, hidden
}

// summary is the one-line state of a Rollout: phase, step i/n and its state, paused.
func summary(r *v1beta1.Rollout) string {
	st := r.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "Unknown"
	}
	parts := []string{phase}
	if c := condition(r, v1beta1.RolloutConditionProgressing); c != nil && c.Reason != "" && c.Reason != phase {
		parts[0] += " (" + c.Reason + ")"
	}
	if n, cs := len(stepsOf(r)), st.Progress(); n > 0 && cs != nil {
		parts = append(parts, fmt.Sprintf("step %d/%d %s", cs.CurrentStepIndex, n, cs.CurrentStepState))
	}
	if r.Spec.Strategy.Paused {
		parts = append(parts, "paused")
	}
	if r.Spec.Disabled {
		parts = append(parts, "disabled")
	}
	return strings.Join(parts, "  ")
}

func condition(r *v1beta1.Rollout, t v1beta1.RolloutConditionType) *v1beta1.RolloutCondition {
	for i := range r.Status.Conditions {
		if r.Status.Conditions[i].Type == t {
			return &r.Status.Conditions[i]
		}
	}
	return nil
}

// stepsOf is the release plan of either strategy.
func stepsOf(r *v1beta1.Rollout) []v1beta1.CanaryStep {
	switch {
	case r.Spec.Strategy.Canary != nil:
		return r.Spec.Strategy.Canary.Steps
	case r.Spec.Strategy.BlueGreen != nil:
		return r.Spec.Strategy.BlueGreen.Steps
	}
	return nil
}

// stepStatus is whether step i (0-based) is done, current, failed or still to come.
func stepStatus(r *v1beta1.Rollout, i int) string {
	cs := r.Status.Progress()
	if cs == nil {
		return markPending
	}
	cur := int(cs.CurrentStepIndex) - 1
	progressing := r.Status.Phase == v1beta1.RolloutPhaseProgressing
	switch {
	case !progressing && cs.CurrentStepState == v1beta1.CanaryStepStateCompleted && r.Status.Abort == nil:
		if c := condition(r, v1beta1.RolloutConditionSucceeded); c != nil && c.Status == "True" {
			return markDone
		}
		return markPending
	case !progressing && r.Status.Abort != nil && i == int(r.Status.Abort.StepIndex)-1:
		return markFailed
	case !progressing:
		if i < cur {
			return markDone
		}
		return markPending
	case i < cur:
		return markDone
	case i == cur:
		if cs.CurrentStepState == v1beta1.CanaryStepStateCompleted {
			return markDone
		}
		return markCurrent
	}
	return markPending
}

// stepLine describes step i (0-based): target, traffic, pause, checks and their verdicts.
func stepLine(r *v1beta1.Rollout, steps []v1beta1.CanaryStep, i int) string {
	st := steps[i]
	mark := stepStatus(r, i)
	parts := []string{fmt.Sprintf("%s %d", mark, i+1)}
	if st.Replicas != nil {
		parts = append(parts, "replicas "+st.Replicas.String())
	}
	if st.Traffic != nil {
		parts = append(parts, "traffic "+*st.Traffic)
	}
	if len(st.Matches) > 0 {
		parts = append(parts, fmt.Sprintf("%d request matches", len(st.Matches)))
	}
	if st.Pause.Duration != nil {
		parts = append(parts, fmt.Sprintf("pause %ds", *st.Pause.Duration))
	} else if i < len(steps)-1 {
		parts = append(parts, "pause until promote")
	}
	if a := analysisOf(r, st); a != nil {
		parts = append(parts, "checks "+analysisString(r, a, int32(i+1)))
	}
	if mark == markCurrent {
		parts = append(parts, "← "+string(r.Status.Progress().CurrentStepState))
	}
	return strings.Join(parts, "  ")
}

func analysisOf(r *v1beta1.Rollout, st v1beta1.CanaryStep) *v1beta1.RolloutAnalysis {
	if st.Analysis != nil {
		return st.Analysis
	}
	if c := r.Spec.Strategy.Canary; c != nil {
		return c.Analysis
	}
	if b := r.Spec.Strategy.BlueGreen; b != nil {
		return b.Analysis
	}
	return nil
}

// analysisString lists a step's metric checks with the latest verdict recorded for them.
func analysisString(r *v1beta1.Rollout, a *v1beta1.RolloutAnalysis, step int32) string {
	var out []string
	for _, m := range a.Metrics {
		s := m.Name
		for _, res := range r.Status.AnalysisResults {
			if res.Name == m.Name && res.StepIndex == step {
				s += fmt.Sprintf(" %s %d/%d", res.Phase, res.Successful, max(m.Count, res.Count))
				if res.LastValue != "" {
					s += " last=" + res.LastValue
				}
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// routingString describes the traffic routing and the share the canary gets now.
func routingString(r *v1beta1.Rollout) string {
	var refs []v1beta1.TrafficRoutingRef
	if c := r.Spec.Strategy.Canary; c != nil {
		refs = c.TrafficRoutings
	} else if b := r.Spec.Strategy.BlueGreen; b != nil {
		refs = b.TrafficRoutings
	}
	if len(refs) == 0 {
		return ""
	}
	ref := refs[0]
	via := []string{"service " + ref.Service}
	if ref.Ingress != nil {
		via = append(via, "ingress "+ref.Ingress.Name)
	}
	if ref.Gateway != nil && ref.Gateway.HTTPRouteName != nil {
		via = append(via, "httproute "+*ref.Gateway.HTTPRouteName)
	}
	for _, c := range ref.CustomNetworkRefs {
		via = append(via, strings.ToLower(c.Kind)+" "+c.Name)
	}
	share := "all to stable"
	if w := currentTraffic(r); w != "" {
		share = "canary " + w
	}
	return strings.Join(via, ", ") + ": " + share
}

// currentTraffic is the traffic the current step routes to the canary once routed.
func currentTraffic(r *v1beta1.Rollout) string {
	cs := r.Status.Progress()
	steps := stepsOf(r)
	if cs == nil || r.Status.Phase != v1beta1.RolloutPhaseProgressing || cs.CurrentStepIndex < 1 || int(cs.CurrentStepIndex) > len(steps) {
		return ""
	}
	switch cs.CurrentStepState {
	case v1beta1.CanaryStepStateInit, v1beta1.CanaryStepStateUpgrade:
		// Routing of this step not done yet: the previous step's share still holds.
		if cs.CurrentStepIndex == 1 {
			return ""
		}
		return trafficOf(steps[cs.CurrentStepIndex-2])
	}
	return trafficOf(steps[cs.CurrentStepIndex-1])
}

func trafficOf(st v1beta1.CanaryStep) string {
	switch {
	case st.Traffic != nil:
		return *st.Traffic
	case len(st.Matches) > 0:
		return "matching requests"
	}
	return ""
}

func pendingString(pa *v1beta1.RolloutActionRequest) string {
	s := fmt.Sprintf("%s at step %d", pa.Type, pa.StepIndex)
	if pa.Full {
		s += " (full)"
	}
	if pa.RequestedBy != "" {
		s += " by " + pa.RequestedBy
	}
	return s
}

// age is a kubectl-style age ("5m", "2d3h").
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}
