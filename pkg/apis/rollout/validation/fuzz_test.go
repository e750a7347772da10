package validation

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/install"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1alpha1"
	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// FuzzValidateRollout builds Rollouts from fuzzed values in the fields with
// the most parsing behind them. Validation must never panic, every error must
// name a field, and whatever validation admits must be usable: its traffic
// parses, its expressions compile, and it converts to every version and back
// without loss.
func FuzzValidateRollout(f *testing.F) {
	type seed struct {
		replicas1, replicas2 string
		replicas3            int32
		traffic, condition   string
		address, header      string
		regex                string
		pause                int32
		blueGreen            bool
	}
	for _, s := range []seed{
		{"20%", "50%", 10, "10%", "result < 0.05", "http://prometheus:9090", "X-Canary", "^a+$", 30, false},
		{"1%", "100%", 1, "0%", "result <= 1", "https://[::1]:9090/p", "x", ".*", 0, true},
		{"0%", "101%", 0, "101%", "result", "prometheus:9090", "", "(", -1, false},
		{"+5%", "5", -3, "020%", "result < ", "http://user:pw@h", "X Y", "a{2,1}", 1 << 30, true},
		{"99999999999999999999%", " 5%", math.MaxInt32, "-0%", `"a" < 1`, "http://:80", "X:Y", `\p{Greek}+`, math.MinInt32, false},
		{"50%", "20%", 5, "100%", "[1,2,3].all(x, x < result)", "http://h", "h", "[[:alpha:]]", 5, false},
		{"", "%", 2, "", "int(result) / 0 == 1", "", "", "", 0, true},
	} {
		f.Add(s.replicas1, s.replicas2, s.replicas3, s.traffic, s.condition, s.address, s.header, s.regex, s.pause, s.blueGreen)
	}

	scheme := runtime.NewScheme()
	install.Install(scheme)

	f.Fuzz(func(t *testing.T, replicas1, replicas2 string, replicas3 int32, traffic, condition, address, header, regex string, pause int32, blueGreen bool) {
		r := validRollout()
		step(r, 0).Replicas = ptr.To(intstr.FromString(replicas1))
		step(r, 0).Traffic = &traffic
		step(r, 0).Pause.Duration = &pause
		step(r, 1).Replicas = ptr.To(intstr.FromString(replicas2))
		step(r, 2).Replicas = ptr.To(intstr.FromInt32(replicas3))
		match(r).Headers[0] = rollout.HTTPHeaderMatch{Type: ptr.To(MatchTypeRegularExpression), Name: header, Value: regex}
		metric(r).SuccessCondition = condition
		metric(r).Provider.Prometheus.Address = address
		if blueGreen {
			validBlueGreen(r)
		}

		errs := ValidateRollout(r)
		for _, e := range errs {
			require.NotEmpty(t, e.Type, "error without a type: %v", e)
			require.True(t, strings.HasPrefix(e.Field, "spec.") || strings.HasPrefix(e.Field, "metadata."), "error without a field path: %v", e)
		}
		if len(errs) > 0 {
			return
		}

		_, err := rollout.ParseTrafficPercent(traffic)
		require.NoError(t, err, "admitted traffic %q", traffic)
		_, err = regexp.Compile(regex)
		require.NoError(t, err, "admitted regular expression %q", regex)
		u, err := url.Parse(address)
		require.NoError(t, err, "admitted address %q", address)
		require.NotEmpty(t, u.Host, "admitted address %q", address)
		if condition != "" {
			prg, err := CompileSuccessCondition(condition)
			require.NoError(t, err, "admitted condition %q", condition)
			for _, v := range []float64{0, -1, 0.05, math.MaxFloat64, math.Inf(-1), math.NaN()} {
				// A runtime error (say, a division by zero) is fine; a panic is not.
				_, _ = EvaluateSuccessCondition(prg, v)
			}
		}

		// Everything admitted must be storable and readable in every version.
		for _, external := range []runtime.Object{&v1beta1.Rollout{}, &v1alpha1.Rollout{}} {
			require.NoError(t, scheme.Convert(r, external, nil), "admitted object does not convert to %T", external)
			back := &rollout.Rollout{}
			require.NoError(t, scheme.Convert(external, back, nil))
			require.True(t, apiequality.Semantic.DeepEqual(r, back), "conversion through %T lost information", external)
		}
	})
}

// FuzzTrafficPercent checks that the one accepted traffic form is exactly the
// canonical "N%", N from 0 to 100, and that validation agrees with the parser.
func FuzzTrafficPercent(f *testing.F) {
	canonical := map[string]int32{}
	for n := range int32(101) {
		s := fmt.Sprintf("%d%%", n)
		canonical[s] = n
		f.Add(s)
	}
	for _, s := range []string{"", "%", "-0%", "+1%", "01%", "101%", "1e2%", "50", "50 %", " 50%", "50%%", "0x10%", "٥%", "4294967346%", "9223372036854775808%"} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		n, err := rollout.ParseTrafficPercent(s)
		wantN, isCanonical := canonical[s]
		if !isCanonical {
			require.Error(t, err, "%q must be refused", s)
			return
		}
		require.NoError(t, err, "%q must be accepted", s)
		require.Equal(t, wantN, n)

		r := validRollout()
		step(r, 0).Traffic = &s
		errs := ValidateRollout(r)
		if n == 0 {
			assert.Equal(t, []string{want(invalid, stepsPath+"[0].traffic")}, errorsOf(errs), "0%% is not a canary step's traffic")
		} else {
			assert.Empty(t, errs)
		}
	})
}

// FuzzSuccessCondition compiles arbitrary expressions: compiling must never
// panic, and an admitted expression must evaluate to a bool, or fail, within
// the cost limit, for any measurement.
func FuzzSuccessCondition(f *testing.F) {
	for _, s := range []string{
		"result < 0.05", "result < 1", "result >= 0.0 && result <= 100.0", "!(result > 3.5)",
		"result == result", "[1.0, 2.0].exists(x, x == result)", "double(int(result)) == result",
		"math.greatest(result, 1.0) < 2.0", "has(result.x)", "result in [1.0]", `string(result) == "1"`,
		"result.size() > 0", "(((((result)))))", "result < 0.05 ? true : false", strings.Repeat("!", 100) + "true",
		"[[1,2],[3]].all(l, l.all(x, x > 0))", "size(string(result)) > 3", "{1: true}[int(result)]",
	} {
		f.Add(s, 0.5)
	}

	f.Fuzz(func(t *testing.T, expr string, result float64) {
		prg, err := CompileSuccessCondition(expr)
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(expr), MaxSuccessConditionLength)
		_, details, err := prg.Eval(map[string]any{SuccessConditionVariable: result})
		if err == nil && details != nil && details.ActualCost() != nil {
			require.LessOrEqual(t, *details.ActualCost(), uint64(SuccessConditionCostLimit))
		}
		_, _ = EvaluateSuccessCondition(prg, result)
	})
}
