package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// SetDefaults_MetricCheck fills the measurement interval, count and consecutive-error limit, so that a
// check written as just a query and a condition measures once, after 30s.
func SetDefaults_MetricCheck(obj *MetricCheck) { //nolint:revive // name required by defaulter-gen
	if obj.Interval.Duration == 0 {
		obj.Interval.Duration = rollout.DefaultMetricCheckInterval
	}
	if obj.Count == 0 {
		obj.Count = rollout.DefaultMetricCheckCount
	}
	if obj.ConsecutiveErrorLimit == nil {
		limit := int32(rollout.DefaultConsecutiveErrorLimit)
		obj.ConsecutiveErrorLimit = &limit
	}
}
