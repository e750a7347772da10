package validation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
)

// validMetric is a metric check that passes validation.
func validMetric(name string) rollout.MetricCheck {
	return rollout.MetricCheck{
		Name:         name,
		Interval:     metav1.Duration{Duration: 30 * time.Second},
		Count:        3,
		FailureLimit: 1,
		Provider: rollout.MetricProvider{Prometheus: &rollout.PrometheusMetric{
			Address: "http://prometheus.monitoring:9090",
			Query:   `sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`,
		}},
		SuccessCondition: "result < 0.05",
	}
}

// validRollout is a canary Rollout that uses most of the API and passes
// validation; every test case changes one thing about it.
func validRollout() *rollout.Rollout {
	return &rollout.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: rollout.RolloutSpec{
			WorkloadRef:             rollout.ObjectRef{APIVersion: "apps/v1", Kind: rollout.KindDeployment, Name: "web"},
			ProgressDeadlineSeconds: ptr.To[int32](600),
			Strategy: rollout.RolloutStrategy{Canary: &rollout.CanaryStrategy{
				Steps: []rollout.CanaryStep{
					{
						Replicas:               percent("20%"),
						TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{Traffic: ptr.To("10%")},
						Pause:                  rollout.StepPause{Duration: ptr.To[int32](60)},
					},
					{
						Replicas: percent("50%"),
						TrafficRoutingStrategy: rollout.TrafficRoutingStrategy{
							Traffic: ptr.To("50%"),
							Matches: []rollout.HttpRouteMatch{{
								Path:        &rollout.HTTPPathMatch{Type: ptr.To("PathPrefix"), Value: ptr.To("/api")},
								Headers:     []rollout.HTTPHeaderMatch{{Name: "X-Canary", Value: "always"}},
								QueryParams: []rollout.HTTPQueryParamMatch{{Type: ptr.To("Exact"), Name: "canary", Value: "1"}},
							}},
							RequestHeaderModifier: &rollout.HTTPHeaderFilter{
								Set:    []rollout.HTTPHeader{{Name: "X-Release", Value: "canary"}},
								Add:    []rollout.HTTPHeader{{Name: "X-Added", Value: "1"}},
								Remove: []string{"X-Debug"},
							},
						},
						Analysis: &rollout.RolloutAnalysis{Metrics: []rollout.MetricCheck{validMetric("latency")}},
					},
					{Replicas: percent("100%")},
				},
				TrafficRoutings: []rollout.TrafficRoutingRef{{
					Service:            "web",
					GracePeriodSeconds: 5,
					Gateway:            &rollout.GatewayTrafficRouting{HTTPRouteName: ptr.To("web")},
				}},
				FailureThreshold: percent("10%"),
				PatchPodTemplateMetadata: &rollout.PatchPodTemplateMetadata{
					Labels:      map[string]string{"track": "canary"},
					Annotations: map[string]string{"example.com/release": "canary"},
				},
				Analysis: &rollout.RolloutAnalysis{Metrics: []rollout.MetricCheck{validMetric("error-rate")}},
			}},
		},
	}
}

// validBlueGreen turns r into a blue-green Rollout with the same steps and routing.
func validBlueGreen(r *rollout.Rollout) {
	c := r.Spec.Strategy.Canary
	r.Spec.Strategy.Canary = nil
	r.Spec.Strategy.BlueGreen = &rollout.BlueGreenStrategy{
		Steps:            c.Steps,
		TrafficRoutings:  c.TrafficRoutings,
		FailureThreshold: c.FailureThreshold,
		Analysis:         c.Analysis,
	}
}

func percent(s string) *intstr.IntOrString { return ptr.To(intstr.FromString(s)) }
func count(n int32) *intstr.IntOrString    { return ptr.To(intstr.FromInt32(n)) }

// Mutators, so that a table row says what it changes in a few words.
func canary(r *rollout.Rollout) *rollout.CanaryStrategy { return r.Spec.Strategy.Canary }
func step(r *rollout.Rollout, i int) *rollout.CanaryStep {
	return &r.Spec.Strategy.Canary.Steps[i]
}
func routing(r *rollout.Rollout) *rollout.TrafficRoutingRef {
	return &r.Spec.Strategy.Canary.TrafficRoutings[0]
}
func metric(r *rollout.Rollout) *rollout.MetricCheck {
	return &r.Spec.Strategy.Canary.Analysis.Metrics[0]
}
func match(r *rollout.Rollout) *rollout.HttpRouteMatch { return &step(r, 1).Matches[0] }

// setReplicas gives the canary steps these replicas, one step per value.
func setReplicas(values ...*intstr.IntOrString) func(*rollout.Rollout) {
	return func(r *rollout.Rollout) {
		steps := make([]rollout.CanaryStep, len(values))
		for i, v := range values {
			steps[i] = rollout.CanaryStep{Replicas: v}
		}
		canary(r).Steps = steps
	}
}

// errorsOf renders errors as "Type path" so that a failure shows every error at once.
func errorsOf(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, fmt.Sprintf("%s %s", e.Type, e.Field))
	}
	return out
}

func want(t field.ErrorType, path string) string { return fmt.Sprintf("%s %s", t, path) }

const (
	required     = field.ErrorTypeRequired
	invalid      = field.ErrorTypeInvalid
	notSupported = field.ErrorTypeNotSupported
	forbidden    = field.ErrorTypeForbidden
	tooMany      = field.ErrorTypeTooMany
	tooLong      = field.ErrorTypeTooLong
	duplicate    = field.ErrorTypeDuplicate
)

// Paths used by many rows.
const (
	canaryPath  = "spec.strategy.canary"
	stepsPath   = canaryPath + ".steps"
	routingPath = canaryPath + ".trafficRoutings[0]"
	metricPath  = canaryPath + ".analysis.metrics[0]"
	matchPath   = stepsPath + "[1].matches[0]"
	modPath     = stepsPath + "[1].requestHeaderModifier"
)

type rolloutCase struct {
	name   string
	mutate func(r *rollout.Rollout)
	want   []string // empty: valid
}

func runRolloutCases(t *testing.T, cases []rolloutCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRollout()
			tc.mutate(r)
			got := ValidateRollout(r)
			assert.ElementsMatch(t, tc.want, errorsOf(got), "errors: %v", got)
		})
	}
}

func TestValidRolloutIsValid(t *testing.T) {
	require.Empty(t, ValidateRollout(validRollout()))
	bg := validRollout()
	validBlueGreen(bg)
	require.Empty(t, ValidateRollout(bg))
}

func TestValidateRolloutMetadata(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"name missing", func(r *rollout.Rollout) { r.Name = "" }, []string{want(required, "metadata.name")}},
		{"name not a DNS subdomain", func(r *rollout.Rollout) { r.Name = "Web_1" }, []string{want(invalid, "metadata.name")}},
		{"dotted name is a DNS subdomain", func(r *rollout.Rollout) { r.Name = "web.v1" }, nil},
		{"namespace missing", func(r *rollout.Rollout) { r.Namespace = "" }, []string{want(required, "metadata.namespace")}},
	})
}

func TestValidateWorkloadRef(t *testing.T) {
	const p = "spec.workloadRef"
	runRolloutCases(t, []rolloutCase{
		{"apiVersion missing", func(r *rollout.Rollout) { r.Spec.WorkloadRef.APIVersion = "" }, []string{want(required, p+".apiVersion")}},
		{"apiVersion unsupported", func(r *rollout.Rollout) { r.Spec.WorkloadRef.APIVersion = "apps/v1beta1" }, []string{want(notSupported, p+".apiVersion")}},
		{"kind missing", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Kind = "" }, []string{want(required, p+".kind")}},
		{"kind unsupported", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Kind = "CloneSet" }, []string{want(notSupported, p+".kind")}},
		{"StatefulSet", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Kind = rollout.KindStatefulSet }, nil},
		{"DaemonSet", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Kind = rollout.KindDaemonSet }, nil},
		{"name missing", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Name = "" }, []string{want(required, p+".name")}},
		{"name not a DNS subdomain", func(r *rollout.Rollout) { r.Spec.WorkloadRef.Name = "Web" }, []string{want(invalid, p+".name")}},
		{"everything missing", func(r *rollout.Rollout) { r.Spec.WorkloadRef = rollout.ObjectRef{} }, []string{
			want(required, p+".apiVersion"), want(required, p+".kind"), want(required, p+".name"),
		}},
	})
}

func TestValidateStrategy(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"neither canary nor blueGreen", func(r *rollout.Rollout) { r.Spec.Strategy.Canary = nil }, []string{want(required, "spec.strategy")}},
		{"both canary and blueGreen", func(r *rollout.Rollout) {
			c := r.Spec.Strategy.Canary
			validBlueGreen(r)
			r.Spec.Strategy.Canary = c
		}, []string{want(forbidden, "spec.strategy")}},
		{"blueGreen only", validBlueGreen, nil},
		{"blueGreen with DestinationRule subsets", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.TrafficRoutings = []rollout.TrafficRoutingRef{{Service: "web", CustomNetworkRefs: []rollout.ObjectRef{
				{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"},
				{APIVersion: "networking.istio.io/v1", Kind: "DestinationRule", Name: "web"},
			}}}
		}, []string{want(forbidden, "spec.strategy.blueGreen.trafficRoutings[0].customNetworkRefs[1]")}},
		{"blueGreen of a StatefulSet", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.WorkloadRef.Kind = rollout.KindStatefulSet
		}, []string{want(forbidden, "spec.strategy.blueGreen")}},
		{"blueGreen of a DaemonSet", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.WorkloadRef.Kind = rollout.KindDaemonSet
		}, []string{want(forbidden, "spec.strategy.blueGreen")}},
		{"errors of both strategies are reported", func(r *rollout.Rollout) {
			c := r.Spec.Strategy.Canary
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen = r.Spec.Strategy.BlueGreen.DeepCopy()
			r.Spec.Strategy.BlueGreen.Steps = nil
			r.Spec.Strategy.Canary = c
			c.Steps = nil
		}, []string{
			want(forbidden, "spec.strategy"),
			want(required, stepsPath),
			want(required, "spec.strategy.blueGreen.steps"),
		}},
	})
}

func TestValidateStepCount(t *testing.T) {
	steps := func(n int) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) {
			values := make([]*intstr.IntOrString, n)
			for i := range values {
				values[i] = count(int32(i + 1))
			}
			setReplicas(values...)(r)
		}
	}
	runRolloutCases(t, []rolloutCase{
		{"no steps", func(r *rollout.Rollout) { canary(r).Steps = nil }, []string{want(required, stepsPath)}},
		{"one step", steps(1), nil},
		{"50 steps", steps(MaxSteps), nil},
		{"51 steps", steps(MaxSteps + 1), []string{want(tooMany, stepsPath)}},
		{"no blueGreen steps", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.Steps = nil
		}, []string{want(required, "spec.strategy.blueGreen.steps")}},
	})
}

func TestValidateStepReplicas(t *testing.T) {
	p1 := stepsPath + "[1].replicas"
	runRolloutCases(t, []rolloutCase{
		{"missing", func(r *rollout.Rollout) { step(r, 1).Replicas = nil }, []string{want(required, p1)}},
		{"count 1", setReplicas(count(1)), nil},
		{"count without upper bound", setReplicas(count(1), count(100000)), nil},
		{"count 0", setReplicas(count(1), count(0)), []string{want(invalid, p1)}},
		{"count negative", setReplicas(count(1), count(-3)), []string{want(invalid, p1)}},
		{"1%", setReplicas(count(1), percent("1%")), nil},
		{"100%", setReplicas(count(1), percent("100%")), nil},
		{"0%", setReplicas(count(1), percent("0%")), []string{want(invalid, p1)}},
		{"101%", setReplicas(count(1), percent("101%")), []string{want(invalid, p1)}},
		{"number as a string", setReplicas(count(1), percent("5")), []string{want(invalid, p1)}},
		{"signed percentage", setReplicas(count(1), percent("+5%")), []string{want(invalid, p1)}},
		{"fractional percentage", setReplicas(count(1), percent("1.5%")), []string{want(invalid, p1)}},
		{"spaced percentage", setReplicas(count(1), percent(" 5%")), []string{want(invalid, p1)}},
		{"huge percentage", setReplicas(count(1), percent("99999999999999999999999%")), []string{want(invalid, p1)}},
		{"not a number", setReplicas(count(1), percent("half")), []string{want(invalid, p1)}},
		{"empty string", setReplicas(count(1), percent("")), []string{want(invalid, p1)}},
		{"unknown intstr type", setReplicas(count(1), &intstr.IntOrString{Type: 7}), []string{want(invalid, p1)}},
	})
}

func TestValidateStepReplicasNonDecreasing(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"increasing counts", setReplicas(count(1), count(2), count(5)), nil},
		{"equal counts", setReplicas(count(2), count(2)), nil},
		{"decreasing counts", setReplicas(count(5), count(3)), []string{want(invalid, stepsPath+"[1].replicas")}},
		{"increasing percentages", setReplicas(percent("5%"), percent("50%"), percent("100%")), nil},
		{"decreasing percentages", setReplicas(percent("50%"), percent("20%")), []string{want(invalid, stepsPath+"[1].replicas")}},
		// A count and a percentage are not comparable without the workload's replicas.
		{"percentage then smaller count", setReplicas(percent("50%"), count(1)), nil},
		{"count then smaller percentage", setReplicas(count(50), percent("1%")), nil},
		// Each step is compared with the last earlier step of its own kind.
		{"count, percentage, smaller count", setReplicas(count(5), percent("50%"), count(3)), []string{want(invalid, stepsPath+"[2].replicas")}},
		{"invalid step is skipped in comparisons", setReplicas(count(5), count(0), count(6)), []string{want(invalid, stepsPath+"[1].replicas")}},
	})
}

func TestValidateStepTraffic(t *testing.T) {
	p0 := stepsPath + "[0].traffic"
	noRouting := func(r *rollout.Rollout) { canary(r).TrafficRoutings = nil }
	runRolloutCases(t, []rolloutCase{
		{"1%", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("1%") }, nil},
		{"100%", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("100%") }, nil},
		{"unset", func(r *rollout.Rollout) { step(r, 0).Traffic = nil }, nil},
		{"0% in a canary step", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("0%") }, []string{want(invalid, p0)}},
		{"101%", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("101%") }, []string{want(invalid, p0)}},
		{"without percent sign", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("20") }, []string{want(invalid, p0)}},
		{"leading zero", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("020%") }, []string{want(invalid, p0)}},
		{"negative", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("-1%") }, []string{want(invalid, p0)}},
		{"empty", func(r *rollout.Rollout) { step(r, 0).Traffic = ptr.To("") }, []string{want(invalid, p0)}},
		{"0% in a blueGreen step", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.Steps[0].Traffic = ptr.To("0%")
		}, nil},
		{"101% in a blueGreen step", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.Steps[0].Traffic = ptr.To("101%")
		}, []string{want(invalid, "spec.strategy.blueGreen.steps[0].traffic")}},
		{"steps without traffic need no routing", func(r *rollout.Rollout) {
			noRouting(r)
			setReplicas(count(1), count(2))(r)
		}, nil},
		{"traffic, matches and header changes need a routing", noRouting, []string{
			want(invalid, p0),
			want(invalid, stepsPath+"[1].traffic"),
			want(forbidden, stepsPath+"[1].matches"),
			want(forbidden, modPath),
		}},
	})
}

func TestValidateStepPause(t *testing.T) {
	p := stepsPath + "[0].pause.duration"
	runRolloutCases(t, []rolloutCase{
		{"zero", func(r *rollout.Rollout) { step(r, 0).Pause.Duration = ptr.To[int32](0) }, nil},
		{"unset waits for promote", func(r *rollout.Rollout) { step(r, 0).Pause.Duration = nil }, nil},
		{"negative", func(r *rollout.Rollout) { step(r, 0).Pause.Duration = ptr.To[int32](-1) }, []string{want(invalid, p)}},
	})
}

func TestValidateMatches(t *testing.T) {
	runRolloutCases(t, []rolloutCase{
		{"header name missing", func(r *rollout.Rollout) { match(r).Headers[0].Name = "" }, []string{want(required, matchPath+".headers[0].name")}},
		{"header name with a space", func(r *rollout.Rollout) { match(r).Headers[0].Name = "X Canary" }, []string{want(invalid, matchPath+".headers[0].name")}},
		{"header type Exact", func(r *rollout.Rollout) { match(r).Headers[0].Type = ptr.To("Exact") }, nil},
		{"header type unsupported", func(r *rollout.Rollout) { match(r).Headers[0].Type = ptr.To("Prefix") }, []string{want(notSupported, matchPath+".headers[0].type")}},
		{"header regular expression", func(r *rollout.Rollout) {
			match(r).Headers[0].Type = ptr.To("RegularExpression")
			match(r).Headers[0].Value = "^(a|b)+$"
		}, nil},
		{"header regular expression broken", func(r *rollout.Rollout) {
			match(r).Headers[0].Type = ptr.To("RegularExpression")
			match(r).Headers[0].Value = "(a"
		}, []string{want(invalid, matchPath+".headers[0].value")}},
		{"broken expression with Exact type is a literal", func(r *rollout.Rollout) { match(r).Headers[0].Value = "(a" }, nil},
		{"query param name missing", func(r *rollout.Rollout) { match(r).QueryParams[0].Name = "" }, []string{want(required, matchPath+".queryParams[0].name")}},
		{"query param type unsupported", func(r *rollout.Rollout) { match(r).QueryParams[0].Type = ptr.To("Prefix") }, []string{want(notSupported, matchPath+".queryParams[0].type")}},
		{"query param regular expression broken", func(r *rollout.Rollout) {
			match(r).QueryParams[0].Type = ptr.To("RegularExpression")
			match(r).QueryParams[0].Value = "a{2,1}"
		}, []string{want(invalid, matchPath+".queryParams[0].value")}},
		{"path type Exact", func(r *rollout.Rollout) { match(r).Path.Type = ptr.To("Exact") }, nil},
		{"path type unset means PathPrefix", func(r *rollout.Rollout) { match(r).Path.Type = nil }, nil},
		{"path type unsupported", func(r *rollout.Rollout) { match(r).Path.Type = ptr.To("Prefix") }, []string{want(notSupported, matchPath+".path.type")}},
		{"path prefix not absolute", func(r *rollout.Rollout) { match(r).Path.Value = ptr.To("api") }, []string{want(invalid, matchPath+".path.value")}},
		{"path regular expression", func(r *rollout.Rollout) {
			match(r).Path = &rollout.HTTPPathMatch{Type: ptr.To("RegularExpression"), Value: ptr.To(`^/api/v[0-9]+/.*`)}
		}, nil},
		{"path regular expression broken", func(r *rollout.Rollout) {
			match(r).Path = &rollout.HTTPPathMatch{Type: ptr.To("RegularExpression"), Value: ptr.To("[")}
		}, []string{want(invalid, matchPath+".path.value")}},
		{"path value unset", func(r *rollout.Rollout) { match(r).Path.Value = nil }, nil},
	})
}

func TestValidateRequestHeaderModifier(t *testing.T) {
	mod := func(r *rollout.Rollout) *rollout.HTTPHeaderFilter { return step(r, 1).RequestHeaderModifier }
	runRolloutCases(t, []rolloutCase{
		{"empty modifier", func(r *rollout.Rollout) { step(r, 1).RequestHeaderModifier = &rollout.HTTPHeaderFilter{} }, nil},
		{"set name missing", func(r *rollout.Rollout) { mod(r).Set[0].Name = "" }, []string{want(required, modPath+".set[0].name")}},
		{"add name missing", func(r *rollout.Rollout) { mod(r).Add[0].Name = "" }, []string{want(required, modPath+".add[0].name")}},
		{"remove name missing", func(r *rollout.Rollout) { mod(r).Remove[0] = "" }, []string{want(required, modPath+".remove[0]")}},
		{"set name invalid", func(r *rollout.Rollout) { mod(r).Set[0].Name = "X:Release" }, []string{want(invalid, modPath+".set[0].name")}},
	})
}

func TestValidateTrafficRoutings(t *testing.T) {
	ingressOnly := func(r *rollout.Rollout) {
		routing(r).Gateway = nil
		routing(r).Ingress = &rollout.IngressTrafficRouting{Name: "web", ClassType: "nginx"}
		// NGINX canary annotations match one header (or cookie) per match.
		step(r, 1).Matches = []rollout.HttpRouteMatch{
			{Headers: []rollout.HTTPHeaderMatch{{Name: "x-canary", Value: "on"}}},
			{Headers: []rollout.HTTPHeaderMatch{{Name: "canary-by-cookie", Value: "beta"}}},
		}
		step(r, 1).RequestHeaderModifier = nil
	}
	customOnly := func(r *rollout.Rollout) {
		routing(r).Gateway = nil
		routing(r).CustomNetworkRefs = []rollout.ObjectRef{{APIVersion: "networking.istio.io/v1", Kind: "VirtualService", Name: "web"}}
	}
	runRolloutCases(t, []rolloutCase{
		{"two routings", func(r *rollout.Rollout) {
			canary(r).TrafficRoutings = append(canary(r).TrafficRoutings, canary(r).TrafficRoutings[0])
		}, []string{want(tooMany, canaryPath+".trafficRoutings")}},
		{"service missing", func(r *rollout.Rollout) { routing(r).Service = "" }, []string{want(required, routingPath+".service")}},
		{"service not a DNS-1035 label", func(r *rollout.Rollout) { routing(r).Service = "1web" }, []string{want(invalid, routingPath+".service")}},
		{"service with a dot", func(r *rollout.Rollout) { routing(r).Service = "web.v1" }, []string{want(invalid, routingPath+".service")}},
		{"grace period zero", func(r *rollout.Rollout) { routing(r).GracePeriodSeconds = 0 }, nil},
		{"grace period negative", func(r *rollout.Rollout) { routing(r).GracePeriodSeconds = -1 }, []string{want(invalid, routingPath+".gracePeriodSeconds")}},
		{"no provider", func(r *rollout.Rollout) { routing(r).Gateway = nil }, []string{want(required, routingPath)}},
		{"two providers", func(r *rollout.Rollout) {
			routing(r).Ingress = &rollout.IngressTrafficRouting{Name: "web"}
		}, []string{want(forbidden, routingPath)}},
		{"ingress", ingressOnly, nil},
		{"ingress name missing", func(r *rollout.Rollout) {
			ingressOnly(r)
			routing(r).Ingress.Name = ""
		}, []string{want(required, routingPath+".ingress.name")}},
		{"ingress class other than nginx", func(r *rollout.Rollout) {
			ingressOnly(r)
			routing(r).Ingress.ClassType = "aliyun-alb"
		}, []string{want(notSupported, routingPath+".ingress.classType")}},
		{"ingress class default", func(r *rollout.Rollout) {
			ingressOnly(r)
			routing(r).Ingress.ClassType = ""
		}, nil},
		{"ingress with a header modifier", func(r *rollout.Rollout) {
			ingressOnly(r)
			step(r, 1).RequestHeaderModifier = &rollout.HTTPHeaderFilter{Remove: []string{"x-debug"}}
		}, []string{want(forbidden, stepsPath+"[1].requestHeaderModifier")}},
		{"ingress with a path match", func(r *rollout.Rollout) {
			ingressOnly(r)
			step(r, 1).Matches[0].Path = &rollout.HTTPPathMatch{Value: ptr.To("/api")}
		}, []string{want(forbidden, stepsPath+"[1].matches")}},
		{"ingress with two headers", func(r *rollout.Rollout) {
			ingressOnly(r)
			step(r, 1).Matches[1].Headers[0].Name = "x-user"
		}, []string{want(forbidden, stepsPath+"[1].matches")}},
		{"gateway httpRouteName unset", func(r *rollout.Rollout) { routing(r).Gateway.HTTPRouteName = nil }, []string{want(required, routingPath+".gateway.httpRouteName")}},
		{"gateway httpRouteName empty", func(r *rollout.Rollout) { routing(r).Gateway.HTTPRouteName = ptr.To("") }, []string{want(required, routingPath+".gateway.httpRouteName")}},
		{"gateway httpRouteName invalid", func(r *rollout.Rollout) { routing(r).Gateway.HTTPRouteName = ptr.To("Web") }, []string{want(invalid, routingPath+".gateway.httpRouteName")}},
		{"custom network refs", customOnly, nil},
		{"istio VirtualService and DestinationRule, older versions", func(r *rollout.Rollout) {
			customOnly(r)
			routing(r).CustomNetworkRefs[0].APIVersion = "networking.istio.io/v1alpha3"
			routing(r).CustomNetworkRefs = append(routing(r).CustomNetworkRefs, rollout.ObjectRef{APIVersion: "networking.istio.io/v1beta1", Kind: "DestinationRule", Name: "web"})
		}, nil},
		{"custom network ref of another API", func(r *rollout.Rollout) {
			customOnly(r)
			routing(r).CustomNetworkRefs[0] = rollout.ObjectRef{APIVersion: "apisix.apache.org/v2", Kind: "ApisixRoute", Name: "web"}
		}, []string{
			want(invalid, routingPath+".customNetworkRefs[0].apiVersion"),
			want(notSupported, routingPath+".customNetworkRefs[0].kind"),
		}},
		{"custom network refs without a VirtualService", func(r *rollout.Rollout) {
			customOnly(r)
			routing(r).CustomNetworkRefs[0].Kind = "DestinationRule"
		}, []string{want(forbidden, routingPath+".customNetworkRefs")}},
		{"two VirtualServices", func(r *rollout.Rollout) {
			customOnly(r)
			routing(r).CustomNetworkRefs = append(routing(r).CustomNetworkRefs, routing(r).CustomNetworkRefs[0])
		}, []string{want(forbidden, routingPath+".customNetworkRefs")}},
		{"custom network ref incomplete", func(r *rollout.Rollout) {
			customOnly(r)
			routing(r).CustomNetworkRefs = append(routing(r).CustomNetworkRefs, rollout.ObjectRef{})
		}, []string{
			want(required, routingPath+".customNetworkRefs[1].apiVersion"),
			want(required, routingPath+".customNetworkRefs[1].kind"),
			want(required, routingPath+".customNetworkRefs[1].name"),
		}},
		{"blueGreen routing", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.TrafficRoutings = []rollout.TrafficRoutingRef{{}}
		}, []string{
			want(required, "spec.strategy.blueGreen.trafficRoutings[0].service"),
			want(required, "spec.strategy.blueGreen.trafficRoutings[0]"),
		}},
	})
}

func TestValidateFailureThreshold(t *testing.T) {
	p := canaryPath + ".failureThreshold"
	set := func(v *intstr.IntOrString) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) { canary(r).FailureThreshold = v }
	}
	runRolloutCases(t, []rolloutCase{
		{"unset", set(nil), nil},
		{"count 0", set(count(0)), nil},
		{"count 3", set(count(3)), nil},
		{"count negative", set(count(-1)), []string{want(invalid, p)}},
		{"0%", set(percent("0%")), nil},
		{"100%", set(percent("100%")), nil},
		{"101%", set(percent("101%")), []string{want(invalid, p)}},
		{"not a percentage", set(percent("some")), []string{want(invalid, p)}},
		{"blueGreen 101%", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.FailureThreshold = percent("101%")
		}, []string{want(invalid, "spec.strategy.blueGreen.failureThreshold")}},
	})
}

func TestValidatePatchPodTemplateMetadata(t *testing.T) {
	p := canaryPath + ".patchPodTemplateMetadata"
	runRolloutCases(t, []rolloutCase{
		{"unset", func(r *rollout.Rollout) { canary(r).PatchPodTemplateMetadata = nil }, nil},
		{"label key invalid", func(r *rollout.Rollout) {
			canary(r).PatchPodTemplateMetadata.Labels = map[string]string{"bad key": "x"}
		}, []string{want(invalid, p+".labels")}},
		{"label value invalid", func(r *rollout.Rollout) {
			canary(r).PatchPodTemplateMetadata.Labels = map[string]string{"track": "not valid!"}
		}, []string{want(invalid, p+".labels")}},
		{"annotation key invalid", func(r *rollout.Rollout) {
			canary(r).PatchPodTemplateMetadata.Annotations = map[string]string{"bad key": "any value is fine"}
		}, []string{want(invalid, p+".annotations")}},
	})
}

func TestValidateEnableExtraWorkloadForCanary(t *testing.T) {
	p := canaryPath + ".enableExtraWorkloadForCanary"
	runRolloutCases(t, []rolloutCase{
		{"Deployment", func(r *rollout.Rollout) { canary(r).EnableExtraWorkloadForCanary = true }, nil},
		{"StatefulSet", func(r *rollout.Rollout) {
			canary(r).EnableExtraWorkloadForCanary = true
			r.Spec.WorkloadRef.Kind = rollout.KindStatefulSet
		}, []string{want(forbidden, p)}},
		{"DaemonSet", func(r *rollout.Rollout) {
			canary(r).EnableExtraWorkloadForCanary = true
			r.Spec.WorkloadRef.Kind = rollout.KindDaemonSet
		}, []string{want(forbidden, p)}},
	})
}

func TestValidateProgressDeadlineSeconds(t *testing.T) {
	p := "spec.progressDeadlineSeconds"
	runRolloutCases(t, []rolloutCase{
		{"unset", func(r *rollout.Rollout) { r.Spec.ProgressDeadlineSeconds = nil }, nil},
		{"one second", func(r *rollout.Rollout) { r.Spec.ProgressDeadlineSeconds = ptr.To[int32](1) }, nil},
		{"zero", func(r *rollout.Rollout) { r.Spec.ProgressDeadlineSeconds = ptr.To[int32](0) }, []string{want(invalid, p)}},
		{"negative", func(r *rollout.Rollout) { r.Spec.ProgressDeadlineSeconds = ptr.To[int32](-5) }, []string{want(invalid, p)}},
	})
}

func TestValidateAnalysis(t *testing.T) {
	addMetric := func(m rollout.MetricCheck) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) { canary(r).Analysis.Metrics = append(canary(r).Analysis.Metrics, m) }
	}
	prom := func(r *rollout.Rollout) *rollout.PrometheusMetric { return metric(r).Provider.Prometheus }
	address := func(a string) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) { prom(r).Address = a }
	}
	cond := func(c string) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) { metric(r).SuccessCondition = c }
	}
	thresholds := func(lo, hi string) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) {
			tr := &rollout.ThresholdRange{}
			if lo != "" {
				tr.Min = ptr.To(resource.MustParse(lo))
			}
			if hi != "" {
				tr.Max = ptr.To(resource.MustParse(hi))
			}
			metric(r).ThresholdRange = tr
			metric(r).SuccessCondition = ""
		}
	}
	runRolloutCases(t, []rolloutCase{
		{"two metrics", addMetric(validMetric("latency")), nil},
		{"duplicate names", addMetric(validMetric("error-rate")), []string{want(duplicate, canaryPath+".analysis.metrics[1].name")}},
		{"name missing", func(r *rollout.Rollout) { metric(r).Name = "" }, []string{want(required, metricPath+".name")}},
		{"name not a DNS label", func(r *rollout.Rollout) { metric(r).Name = "error.rate" }, []string{want(invalid, metricPath+".name")}},
		{"interval zero", func(r *rollout.Rollout) { metric(r).Interval.Duration = 0 }, []string{want(invalid, metricPath+".interval")}},
		{"interval negative", func(r *rollout.Rollout) { metric(r).Interval.Duration = -time.Second }, []string{want(invalid, metricPath+".interval")}},
		{"count zero", func(r *rollout.Rollout) {
			metric(r).Count = 0
			metric(r).FailureLimit = 0
		}, []string{want(invalid, metricPath+".count")}},
		{"count one, no failures tolerated", func(r *rollout.Rollout) {
			metric(r).Count = 1
			metric(r).FailureLimit = 0
		}, nil},
		{"failureLimit negative", func(r *rollout.Rollout) { metric(r).FailureLimit = -1 }, []string{want(invalid, metricPath+".failureLimit")}},
		{"inconclusiveLimit negative", func(r *rollout.Rollout) { metric(r).InconclusiveLimit = -1 }, []string{want(invalid, metricPath+".inconclusiveLimit")}},
		{"inconclusiveLimit above count is fine", func(r *rollout.Rollout) { metric(r).InconclusiveLimit = 100 }, nil},
		{"consecutiveErrorLimit negative", func(r *rollout.Rollout) { metric(r).ConsecutiveErrorLimit = ptr.To[int32](-1) }, []string{want(invalid, metricPath+".consecutiveErrorLimit")}},
		{"consecutiveErrorLimit zero pauses at the first error", func(r *rollout.Rollout) { metric(r).ConsecutiveErrorLimit = ptr.To[int32](0) }, nil},
		{"failureLimit equal to count", func(r *rollout.Rollout) { metric(r).FailureLimit = metric(r).Count }, []string{want(invalid, metricPath+".failureLimit")}},
		{"no provider", func(r *rollout.Rollout) { metric(r).Provider.Prometheus = nil }, []string{want(required, metricPath+".provider.prometheus")}},
		{"address empty means the server's default", address(""), nil},
		{"address https with path", address("https://prometheus.example.com:9090/prefix"), nil},
		{"address IPv6", address("http://[::1]:9090"), nil},
		{"address without scheme", address("prometheus:9090"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address relative", address("/api/v1"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address ftp", address("ftp://prometheus"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address without host", address("http://"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address with port only", address("http://:9090"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address with credentials", address("http://user:secret@prometheus"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"address unparsable", address("http://prom etheus\x7f"), []string{want(invalid, metricPath+".provider.prometheus.address")}},
		{"query missing", func(r *rollout.Rollout) { prom(r).Query = "" }, []string{want(required, metricPath+".provider.prometheus.query")}},
		{"query blank", func(r *rollout.Rollout) { prom(r).Query = " \n" }, []string{want(required, metricPath+".provider.prometheus.query")}},
		{"neither thresholdRange nor successCondition", cond(""), []string{want(required, metricPath)}},
		{"thresholdRange only", thresholds("0", "0.05"), nil},
		{"thresholdRange max only", thresholds("", "50m"), nil},
		{"thresholdRange min equal to max", thresholds("1", "1000m"), nil},
		{"thresholdRange empty", thresholds("", ""), []string{want(required, metricPath+".thresholdRange")}},
		{"thresholdRange min above max", thresholds("2", "1"), []string{want(invalid, metricPath+".thresholdRange.min")}},
		{"thresholdRange negative and tiny", thresholds("-1e3", "1e-9"), nil},
		// Far beyond a double: refused, and quickly (Quantity.Cmp would take minutes).
		{"thresholdRange min beyond a double", thresholds("9e999999999", ""), []string{want(invalid, metricPath+".thresholdRange.min")}},
		{"thresholdRange max beyond a double", thresholds("1", "-9e999999999"), []string{want(invalid, metricPath+".thresholdRange.max")}},
		{"thresholdRange and successCondition", func(r *rollout.Rollout) {
			metric(r).ThresholdRange = &rollout.ThresholdRange{Max: ptr.To(resource.MustParse("1"))}
		}, nil},
		{"successCondition comparing with an int", cond("result < 1"), nil},
		{"successCondition with logic", cond("result >= 0.0 && (result < 0.05 || result == 1.0)"), nil},
		{"successCondition not bool", cond("result * 2.0"), []string{want(invalid, metricPath+".successCondition")}},
		{"successCondition syntax error", cond("result <"), []string{want(invalid, metricPath+".successCondition")}},
		{"successCondition undeclared variable", cond("value < 0.05"), []string{want(invalid, metricPath+".successCondition")}},
		{"successCondition type error", cond(`result < "0.05"`), []string{want(invalid, metricPath+".successCondition")}},
		{"successCondition too long", cond("result < 0.05" + strings.Repeat(" ", MaxSuccessConditionLength)), []string{want(tooLong, metricPath+".successCondition")}},
		{"successCondition too expensive", cond(expensiveCondition()), []string{want(invalid, metricPath+".successCondition")}},
		// failureLimit is compared with count only when count itself is valid.
		{"step analysis", func(r *rollout.Rollout) { step(r, 1).Analysis.Metrics[0].Count = 0 }, []string{
			want(invalid, stepsPath+"[1].analysis.metrics[0].count"),
		}},
		{"blueGreen analysis", func(r *rollout.Rollout) {
			validBlueGreen(r)
			r.Spec.Strategy.BlueGreen.Analysis.Metrics[0].Name = ""
		}, []string{want(required, "spec.strategy.blueGreen.analysis.metrics[0].name")}},
	})
}

// expensiveCondition is short enough to pass the length limit, but nests two
// comprehensions over 100 elements, which is far beyond the cost limit.
func expensiveCondition() string {
	nums := make([]string, 100)
	for i := range nums {
		nums[i] = fmt.Sprint(i)
	}
	list := "[" + strings.Join(nums, ",") + "]"
	return fmt.Sprintf("%s.all(a, %s.all(b, result > 0.0))", list, list)
}

func TestCompileAndEvaluateSuccessCondition(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		result float64
		want   bool
	}{
		{"result < 0.05", 0.01, true},
		{"result < 0.05", 0.05, false},
		{"result < 1", 0.5, true},
		{"result >= 99.9", 99.95, true},
		{"result != result", mathNaN(), true}, // NaN is the one value unequal to itself
		{"[1.0, 2.0].exists(x, x == result)", 2, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			prg, err := CompileSuccessCondition(tc.expr)
			require.NoError(t, err)
			got, err := EvaluateSuccessCondition(prg, tc.result)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	_, err := CompileSuccessCondition("")
	require.Error(t, err)
	_, err = CompileSuccessCondition("result < 0.05 \xff")
	require.Error(t, err)
	_, err = CompileSuccessCondition(strings.Repeat("(", 200) + "result < 1.0" + strings.Repeat(")", 200))
	require.Error(t, err, "deep nesting must be refused")

	// A runtime error is reported, never a panic or a silent pass.
	prg, err := CompileSuccessCondition("int(result) / int(result) == 1")
	require.NoError(t, err)
	_, err = EvaluateSuccessCondition(prg, 0)
	require.Error(t, err)
}

func mathNaN() float64 {
	zero := 0.0
	return zero / zero
}

// progressing returns a copy of r whose status says a release is in progress.
func progressing(r *rollout.Rollout) *rollout.Rollout {
	old := r.DeepCopy()
	old.Status.Phase = rollout.RolloutPhaseProgressing
	return old
}

func TestValidateRolloutUpdate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		phase  rollout.RolloutPhase
		mutate func(r *rollout.Rollout)
		want   []string
	}{
		{"nothing changes", rollout.RolloutPhaseProgressing, func(*rollout.Rollout) {}, nil},
		{"workload changes while healthy", rollout.RolloutPhaseHealthy, func(r *rollout.Rollout) { r.Spec.WorkloadRef.Name = "api" }, nil},
		{"everything changes while healthy", rollout.RolloutPhaseHealthy, func(r *rollout.Rollout) {
			r.Spec.WorkloadRef.Name = "api"
			routing(r).Service = "api"
			setReplicas(count(1))(r)
			validBlueGreen(r)
		}, nil},
		{"workload changes while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) { r.Spec.WorkloadRef.Name = "api" }, []string{
			want(forbidden, "spec.workloadRef"),
		}},
		{"workload changes while held after an abort", rollout.RolloutPhaseAborted, func(r *rollout.Rollout) { r.Spec.WorkloadRef.Name = "api" }, []string{
			want(forbidden, "spec.workloadRef"),
		}},
		{"steps and routing change while aborted", rollout.RolloutPhaseAborted, func(r *rollout.Rollout) {
			routing(r).Service = "api"
			setReplicas(count(1))(r)
			r.Spec.Strategy.AbortRewritesTemplate = true
		}, nil},
		{"traffic routing changes while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) { routing(r).Service = "api" }, []string{
			want(forbidden, canaryPath+".trafficRoutings"),
		}},
		{"extra workload switched on while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) {
			canary(r).EnableExtraWorkloadForCanary = true
		}, []string{want(forbidden, canaryPath+".enableExtraWorkloadForCanary")}},
		{"canary becomes blueGreen while progressing", rollout.RolloutPhaseProgressing, validBlueGreen, []string{
			want(forbidden, "spec.strategy"),
		}},
		{"a step is added while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) {
			canary(r).Steps = append(canary(r).Steps, rollout.CanaryStep{Replicas: percent("100%")})
		}, []string{want(forbidden, stepsPath)}},
		{"a step's pause changes while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) {
			step(r, 0).Pause.Duration = nil
			step(r, 1).Traffic = ptr.To("60%")
		}, nil},
		{"paused while progressing", rollout.RolloutPhaseProgressing, func(r *rollout.Rollout) { r.Spec.Strategy.Paused = true }, nil},
		{"the new spec is validated", rollout.RolloutPhaseHealthy, func(r *rollout.Rollout) { step(r, 0).Replicas = nil }, []string{
			want(required, stepsPath+"[0].replicas"),
		}},
		{"the name is immutable", rollout.RolloutPhaseHealthy, func(r *rollout.Rollout) { r.Name = "other" }, []string{
			want(invalid, "metadata.name"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := validRollout()
			old.Status.Phase = tc.phase
			r := old.DeepCopy()
			tc.mutate(r)
			got := ValidateRolloutUpdate(r, old)
			assert.ElementsMatch(t, tc.want, errorsOf(got), "errors: %v", got)
		})
	}

	// Guard against a silently lax comparison: the helper must see a change.
	old := progressing(validRollout())
	r := old.DeepCopy()
	r.Spec.WorkloadRef.Kind = rollout.KindStatefulSet
	require.NotEmpty(t, ValidateRolloutUpdate(r, old))
}

func TestValidateRolloutStatusUpdate(t *testing.T) {
	statusOf := func(mutate func(s *rollout.RolloutStatus)) func(*rollout.Rollout) {
		return func(r *rollout.Rollout) { mutate(&r.Status) }
	}
	for _, tc := range []struct {
		name   string
		old    func(r *rollout.Rollout)
		mutate func(r *rollout.Rollout)
		want   []string
	}{
		{"a full status", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.Phase = rollout.RolloutPhaseProgressing
			s.CurrentStepIndex = 3
			s.CurrentStepState = rollout.CanaryStepStatePaused
			s.CanaryStatus = &rollout.CanaryStatus{CommonStatus: rollout.CommonStatus{CurrentStepIndex: 3, CurrentStepState: rollout.CanaryStepStatePaused}}
			s.Conditions = []rollout.RolloutCondition{
				{Type: rollout.RolloutConditionProgressing, Status: corev1.ConditionTrue, Reason: rollout.ProgressingReasonInRolling},
				{Type: rollout.RolloutConditionSucceeded, Status: corev1.ConditionUnknown},
			}
			s.PendingAction = &rollout.RolloutActionRequest{Type: rollout.RolloutActionPromote, StepIndex: 3}
		}), nil},
		{"empty status", nil, func(*rollout.Rollout) {}, nil},
		{"step index negative", nil, statusOf(func(s *rollout.RolloutStatus) { s.CurrentStepIndex = -1 }), []string{want(invalid, "status.currentStepIndex")}},
		{"step index beyond the steps", nil, statusOf(func(s *rollout.RolloutStatus) { s.CurrentStepIndex = 4 }), []string{want(invalid, "status.currentStepIndex")}},
		{"unchanged step index beyond the steps", func(r *rollout.Rollout) {
			r.Status.CurrentStepIndex = 5
			r.Status.CanaryStatus = &rollout.CanaryStatus{CommonStatus: rollout.CommonStatus{CurrentStepIndex: 5}}
		}, statusOf(func(s *rollout.RolloutStatus) { s.Message = "steps were removed" }), nil},
		{"canary step index beyond the steps", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.CanaryStatus = &rollout.CanaryStatus{CommonStatus: rollout.CommonStatus{CurrentStepIndex: 4}}
		}), []string{want(invalid, "status.canaryStatus.currentStepIndex")}},
		{"blueGreen step index negative", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.BlueGreenStatus = &rollout.BlueGreenStatus{CommonStatus: rollout.CommonStatus{CurrentStepIndex: -1}}
		}), []string{want(invalid, "status.blueGreenStatus.currentStepIndex")}},
		{"both canary and blueGreen status", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.CanaryStatus = &rollout.CanaryStatus{}
			s.BlueGreenStatus = &rollout.BlueGreenStatus{}
		}), []string{want(forbidden, "status")}},
		{"step state unknown", nil, statusOf(func(s *rollout.RolloutStatus) { s.CurrentStepState = "Sleeping" }), []string{want(notSupported, "status.currentStepState")}},
		{"canary step state unknown", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.CanaryStatus = &rollout.CanaryStatus{CommonStatus: rollout.CommonStatus{CurrentStepState: "Sleeping"}}
		}), []string{want(notSupported, "status.canaryStatus.currentStepState")}},
		{"phase unknown", nil, statusOf(func(s *rollout.RolloutStatus) { s.Phase = "Running" }), []string{want(notSupported, "status.phase")}},
		{"phase Disabling", nil, statusOf(func(s *rollout.RolloutStatus) { s.Phase = rollout.RolloutPhaseDisabling }), nil},
		{"condition type missing", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.Conditions = []rollout.RolloutCondition{{Status: corev1.ConditionTrue}}
		}), []string{want(required, "status.conditions[0].type")}},
		{"condition status unknown", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.Conditions = []rollout.RolloutCondition{{Type: rollout.RolloutConditionSucceeded, Status: "Yes"}}
		}), []string{want(notSupported, "status.conditions[0].status")}},
		{"condition status missing", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.Conditions = []rollout.RolloutCondition{{Type: rollout.RolloutConditionSucceeded}}
		}), []string{want(notSupported, "status.conditions[0].status")}},
		{"condition type duplicated", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.Conditions = []rollout.RolloutCondition{
				{Type: rollout.RolloutConditionSucceeded, Status: corev1.ConditionTrue},
				{Type: rollout.RolloutConditionSucceeded, Status: corev1.ConditionFalse},
			}
		}), []string{want(duplicate, "status.conditions[1].type")}},
		{"pending abort", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.PendingAction = &rollout.RolloutActionRequest{Type: rollout.RolloutActionAbort, Reason: "bad"}
		}), nil},
		{"pending action unknown", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.PendingAction = &rollout.RolloutActionRequest{Type: "Restart"}
		}), []string{want(notSupported, "status.pendingAction.type")}},
		{"pending action without type", nil, statusOf(func(s *rollout.RolloutStatus) {
			s.PendingAction = &rollout.RolloutActionRequest{}
		}), []string{want(notSupported, "status.pendingAction.type")}},
		{"namespace is immutable", nil, func(r *rollout.Rollout) { r.Namespace = "other" }, []string{want(invalid, "metadata.namespace")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := validRollout()
			if tc.old != nil {
				tc.old(old)
			}
			r := old.DeepCopy()
			tc.mutate(r)
			got := ValidateRolloutStatusUpdate(r, old)
			assert.ElementsMatch(t, tc.want, errorsOf(got), "errors: %v", got)
		})
	}
}

func TestValidateActions(t *testing.T) {
	named := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

	assert.Empty(t, ValidateRolloutPromote(&rollout.RolloutPromote{Full: true}))
	assert.Empty(t, ValidateRolloutPromote(&rollout.RolloutPromote{ObjectMeta: named("web")}))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateRolloutPromote(&rollout.RolloutPromote{ObjectMeta: named("Web")})))

	assert.Empty(t, ValidateRolloutPause(&rollout.RolloutPause{}))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateRolloutPause(&rollout.RolloutPause{ObjectMeta: named("a_b")})))

	assert.Empty(t, ValidateRolloutResume(&rollout.RolloutResume{}))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateRolloutResume(&rollout.RolloutResume{ObjectMeta: named("a_b")})))

	assert.Empty(t, ValidateRolloutAbort(&rollout.RolloutAbort{Reason: strings.Repeat("x", MaxAbortReasonLength)}))
	assert.Equal(t, []string{want(tooLong, "reason")}, errorsOf(ValidateRolloutAbort(&rollout.RolloutAbort{Reason: strings.Repeat("x", MaxAbortReasonLength+1)})))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateRolloutAbort(&rollout.RolloutAbort{ObjectMeta: named("a_b")})))

	step := func(i int32) *rollout.ActionPreconditions { return &rollout.ActionPreconditions{StepIndex: &i} }
	assert.Empty(t, ValidateRolloutRetry(&rollout.RolloutRetry{}))
	assert.Empty(t, ValidateRolloutRetry(&rollout.RolloutRetry{Preconditions: step(1)}))
	assert.Equal(t, []string{want(invalid, "preconditions.stepIndex")}, errorsOf(ValidateRolloutRetry(&rollout.RolloutRetry{Preconditions: step(-1)})))
	assert.Equal(t, []string{want(tooLong, "preconditions.canaryRevision")}, errorsOf(ValidateRolloutRetry(&rollout.RolloutRetry{
		Preconditions: &rollout.ActionPreconditions{CanaryRevision: strings.Repeat("a", MaxRevisionLength+1)}})))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateRolloutRetry(&rollout.RolloutRetry{ObjectMeta: named("a_b")})))

	web := named("web")
	assert.Empty(t, ValidateActionName(&metav1.ObjectMeta{}, "web"))
	assert.Empty(t, ValidateActionName(&web, "web"))
	assert.Equal(t, []string{want(invalid, "metadata.name")}, errorsOf(ValidateActionName(&web, "api")))
}
