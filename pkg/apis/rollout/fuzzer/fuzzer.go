// Package fuzzer holds the randfill functions that keep randomly filled
// rollout.kruise.io objects within what survives a round trip through every
// served version, JSON and defaulting. Anything they constrain is a place where
// the API is deliberately not lossless, so each rule says which one.
package fuzzer

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/randfill"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// Funcs returns the fuzzer functions of the rollout.kruise.io group, for
// k8s.io/apimachinery/pkg/api/apitesting/roundtrip; merge them with
// k8s.io/apimachinery/pkg/apis/meta/fuzzer.Funcs for object metadata.
func Funcs(_ runtimeserializer.CodecFactory) []interface{} {
	return []interface{}{
		// Traffic converts to v1alpha1's integer weight, which only the
		// canonical "N%" with N in [0, 100] can do without loss.
		func(s *rollout.TrafficRoutingStrategy, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Traffic != nil {
				s.Traffic = trafficPercent(c)
			}
		},
		func(s *v1beta1.TrafficRoutingStrategy, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Traffic != nil {
				s.Traffic = trafficPercent(c)
			}
		},
		// The reverse: weight N becomes "N%", which only parses back for N in [0, 100].
		func(s *v1alpha1.TrafficRoutingStrategy, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Weight != nil {
				w := c.Int31n(101)
				s.Weight = &w
			}
		},
		// Decoding v1alpha1 gives a weight-only step replicas "<weight>%"
		// (Kruise's rule), so a step with traffic and no replicas never reads back.
		func(s *rollout.CanaryStep, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Replicas == nil && s.Traffic != nil {
				v := intstr.FromInt32(c.Int31n(10) + 1)
				s.Replicas = &v
			}
		},
		func(s *v1alpha1.CanaryStep, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.Replicas == nil && s.Weight != nil {
				v := intstr.FromInt32(c.Int31n(10) + 1)
				s.Replicas = &v
			}
		},
		// Decoding v1alpha1 fills an unset enableExtraWorkloadForCanary from
		// Kruise's rolling-style rule, and every conversion writes it.
		func(s *v1alpha1.CanaryStrategy, c randfill.Continue) {
			c.FillNoCustom(s)
			if s.EnableExtraWorkloadForCanary == nil {
				extra := c.Bool()
				s.EnableExtraWorkloadForCanary = &extra
			}
		},
		// v1alpha1 wraps the workload reference in objectRef.workloadRef; the
		// hub has no pointer, so an empty hub reference is written as an absent
		// workloadRef, and a present but empty workloadRef reads back as absent.
		func(r *v1alpha1.ObjectRef, c randfill.Continue) {
			c.FillNoCustom(r)
			if r.WorkloadRef != nil && *r.WorkloadRef == (v1alpha1.WorkloadRef{}) {
				r.WorkloadRef.Name = "w" + c.String(8)
			}
		},
		// Decoding defaults a zero interval and count and a nil consecutive-error
		// limit, so those never read back.
		func(m *rollout.MetricCheck, c randfill.Continue) {
			c.FillNoCustom(m)
			m.Interval.Duration, m.Count = nonZeroInterval(c, m.Interval.Duration), nonZeroCount(c, m.Count)
			if m.ConsecutiveErrorLimit == nil {
				m.ConsecutiveErrorLimit = ptr.To(c.Int31())
			}
		},
		func(m *v1beta1.MetricCheck, c randfill.Continue) {
			c.FillNoCustom(m)
			m.Interval.Duration, m.Count = nonZeroInterval(c, m.Interval.Duration), nonZeroCount(c, m.Count)
			if m.ConsecutiveErrorLimit == nil {
				m.ConsecutiveErrorLimit = ptr.To(c.Int31())
			}
		},
		func(m *v1alpha1.MetricCheck, c randfill.Continue) {
			c.FillNoCustom(m)
			m.Interval.Duration, m.Count = nonZeroInterval(c, m.Interval.Duration), nonZeroCount(c, m.Count)
			if m.ConsecutiveErrorLimit == nil {
				m.ConsecutiveErrorLimit = ptr.To(c.Int31())
			}
		},
		// A Quantity is only equal to itself after a round trip in its
		// canonical form; thresholds are typically small fractions such as 0.05.
		func(r *rollout.ThresholdRange, c randfill.Continue) {
			r.Min, r.Max = thresholdQuantity(c), thresholdQuantity(c)
		},
		func(r *v1beta1.ThresholdRange, c randfill.Continue) {
			r.Min, r.Max = thresholdQuantity(c), thresholdQuantity(c)
		},
		func(r *v1alpha1.ThresholdRange, c randfill.Continue) {
			r.Min, r.Max = thresholdQuantity(c), thresholdQuantity(c)
		},
	}
}

// trafficPercent is a canonical traffic value from 0% to 100%.
func trafficPercent(c randfill.Continue) *string {
	t := fmt.Sprintf("%d%%", c.Intn(101))
	return &t
}

func nonZeroInterval(c randfill.Continue, d time.Duration) time.Duration {
	if d != 0 {
		return d
	}
	return time.Duration(1 + c.Int63n(int64(time.Hour)))
}

func nonZeroCount(c randfill.Continue, n int32) int32 {
	if n != 0 {
		return n
	}
	return 1 + c.Int31n(100)
}

// thresholdQuantity is nil or a canonical decimal quantity, negative or
// positive, whole or in thousandths.
func thresholdQuantity(c randfill.Continue) *resource.Quantity {
	if c.Bool() {
		return nil
	}
	q := resource.NewMilliQuantity(c.Int63n(2_000_000)-1_000_000, resource.DecimalSI)
	return q
}
