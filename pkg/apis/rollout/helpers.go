package rollout

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseTrafficPercent reads a traffic value such as "20%" in its canonical form:
// a whole number from 0 to 100 without leading zeros, then "%". Only this form
// is admitted, so that traffic converts exactly to v1alpha1's integer weight.
func ParseTrafficPercent(traffic string) (int32, error) {
	digits, ok := strings.CutSuffix(traffic, "%")
	n, err := strconv.ParseInt(digits, 10, 32)
	if !ok || err != nil || n < 0 || n > 100 || strconv.FormatInt(n, 10) != digits {
		return 0, fmt.Errorf("%q is not a whole percentage from 0%% to 100%%", traffic)
	}
	return int32(n), nil
}

// Steps returns the steps of whichever strategy is set.
func (s *RolloutStrategy) Steps() []CanaryStep {
	switch {
	case s.Canary != nil:
		return s.Canary.Steps
	case s.BlueGreen != nil:
		return s.BlueGreen.Steps
	}
	return nil
}

// TrafficRoutings returns the traffic routings of whichever strategy is set.
func (s *RolloutStrategy) TrafficRoutings() []TrafficRoutingRef {
	switch {
	case s.Canary != nil:
		return s.Canary.TrafficRoutings
	case s.BlueGreen != nil:
		return s.BlueGreen.TrafficRoutings
	}
	return nil
}

// RollingStyle names how the workload is released: "BlueGreen", "Canary"
// (an extra canary workload) or "Partition" (in place).
func (s *RolloutStrategy) RollingStyle() string {
	switch {
	case s.BlueGreen != nil:
		return "BlueGreen"
	case s.Canary != nil && s.Canary.EnableExtraWorkloadForCanary:
		return "Canary"
	case s.Canary != nil:
		return "Partition"
	}
	return ""
}

// CommonStatus returns the release progress of whichever strategy status is set.
func (s *RolloutStatus) CommonStatus() *CommonStatus {
	switch {
	case s.CanaryStatus != nil:
		return &s.CanaryStatus.CommonStatus
	case s.BlueGreenStatus != nil:
		return &s.BlueGreenStatus.CommonStatus
	}
	return nil
}

// NewRevision is the revision the release in status brings in, or "".
func (s *RolloutStatus) NewRevision() string {
	switch {
	case s.CanaryStatus != nil:
		return s.CanaryStatus.CanaryRevision
	case s.BlueGreenStatus != nil:
		return s.BlueGreenStatus.UpdatedRevision
	}
	return ""
}

// SelectableFields are the field selectors rollouts support, in the internal
// (and v1beta1) spelling.
var SelectableFields = []string{
	"metadata.name", "metadata.namespace",
	"spec.workloadRef.name", "spec.workloadRef.kind", "status.phase",
}

// ConvertFieldLabel accepts the selectable fields as they are spelled in
// every version; aliases maps a version's own spelling to the internal one.
func ConvertFieldLabel(aliases map[string]string) func(label, value string) (string, string, error) {
	return func(label, value string) (string, string, error) {
		if internal, ok := aliases[label]; ok {
			return internal, value, nil
		}
		for _, f := range SelectableFields {
			if f == label {
				return label, value, nil
			}
		}
		return "", "", fmt.Errorf("field label %q is not supported for rollouts; use one of %v", label, SelectableFields)
	}
}
