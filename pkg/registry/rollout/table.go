package rollout

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// tableColumns are what `kubectl get rollouts` prints; priority 1 columns
// appear with -o wide.
var tableColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]},
	{Name: "Status", Type: "string", Description: "The phase of the Rollout: Initial, Healthy, Progressing, Terminating, Disabled or Disabling."},
	{Name: "Step", Type: "string", Description: "The current step of the release and the number of steps."},
	{Name: "State", Type: "string", Description: "The state of the current step."},
	{Name: "Message", Type: "string", Description: "What is happening, in words."},
	{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]},
	{Name: "Workload", Type: "string", Priority: 1, Description: "The kind and name of the released workload."},
	{Name: "Canary-Revision", Type: "string", Priority: 1, Description: "The revision being released."},
	{Name: "Traffic", Type: "string", Priority: 1, Description: "The traffic the current step sends to the new revision."},
	{Name: "Analysis", Type: "string", Priority: 1, Description: "The metric checks of the current step: name, phase and last value."},
}

// tableConvertor prints Rollouts for kubectl.
type tableConvertor struct{}

// ConvertToTable turns a Rollout or a RolloutList into rows.
func (tableConvertor) ConvertToTable(_ context.Context, obj runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{}
	if opts, ok := tableOptions.(*metav1.TableOptions); !ok || !opts.NoHeaders {
		table.ColumnDefinitions = tableColumns
	}
	var err error
	table.Rows, err = metatable.MetaToTableRow(obj, func(obj runtime.Object, _ metav1.Object, name, age string) ([]interface{}, error) {
		r, ok := obj.(*rollout.Rollout)
		if !ok {
			return nil, fmt.Errorf("cannot print %T as a Rollout", obj)
		}
		return rolloutRow(r, name, age), nil
	})
	if err != nil {
		return nil, err
	}
	if m, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
		table.Continue = m.GetContinue()
		table.RemainingItemCount = m.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table, nil
}

func rolloutRow(r *rollout.Rollout, name, age string) []interface{} {
	steps := r.Spec.Strategy.Steps()
	step, state, traffic := "-", "-", "-"
	if idx := int(r.Status.CurrentStepIndex); idx > 0 && len(steps) > 0 {
		step = fmt.Sprintf("%d/%d", idx, len(steps))
		if idx <= len(steps) {
			traffic = stepTraffic(steps[idx-1])
		}
	}
	if r.Status.CurrentStepState != "" {
		state = string(r.Status.CurrentStepState)
	}
	phase := string(r.Status.Phase)
	if phase == "" {
		phase = string(rollout.RolloutPhaseInitial)
	}
	canaryRevision := r.Status.NewRevision()
	if canaryRevision == "" {
		canaryRevision = "-"
	}
	// What the routing objects carry now wins over what the step asks for.
	if t := currentTraffic(r.Status); t != "" {
		traffic = t
	}
	workload := r.Spec.WorkloadRef.Kind + "/" + r.Spec.WorkloadRef.Name
	return []interface{}{name, phase, step, state, r.Status.Message, age, workload, canaryRevision, traffic, analysisCell(&r.Status)}
}

// analysisCell summarises the current step's metric checks, e.g.
// "error-rate Running 0.01, latency Successful 0.2".
func analysisCell(st *rollout.RolloutStatus) string {
	var parts []string
	for _, res := range st.AnalysisResults {
		if res.StepIndex != st.CurrentStepIndex {
			continue
		}
		part := res.Name + " " + string(res.Phase)
		if res.LastValue != "" {
			part += " " + res.LastValue
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func stepTraffic(s rollout.CanaryStep) string {
	switch {
	case s.Traffic != nil:
		return *s.Traffic
	case len(s.Matches) > 0:
		return "matches"
	}
	return "-"
}

// currentTraffic describes the routing status records as applied, e.g. "5%"
// or "5%+matches"; empty when status records none.
func currentTraffic(st rollout.RolloutStatus) string {
	var t *rollout.TrafficStatus
	switch {
	case st.CanaryStatus != nil:
		t = st.CanaryStatus.Traffic
	case st.BlueGreenStatus != nil:
		t = st.BlueGreenStatus.Traffic
	}
	if t == nil {
		return ""
	}
	var parts []string
	if t.Weight != nil {
		parts = append(parts, fmt.Sprintf("%d%%", *t.Weight))
	}
	if len(t.Matches) > 0 {
		parts = append(parts, "matches")
	}
	return strings.Join(parts, "+")
}
