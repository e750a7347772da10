package validation

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"k8s.io/utils/lru"
)

// Limits on a metric check's successCondition. Validation and the controller's
// evaluation share them, so an expression admitted by the API server can never
// be refused or cut short later for a reason the user was not told about.
const (
	// MaxSuccessConditionLength is the longest successCondition admitted, in bytes.
	MaxSuccessConditionLength = 1024
	// SuccessConditionCostLimit bounds both the estimated and the actual cost of
	// one evaluation. A condition over a single double needs a few dozen units;
	// the bound leaves room for list literals and macros, but stops anything
	// that would make one measurement expensive for the controller.
	SuccessConditionCostLimit = 10000
	// successConditionRecursionLimit bounds the nesting depth of the parse tree,
	// which also bounds the parser's and checker's stack use.
	successConditionRecursionLimit = 50
	// SuccessConditionVariable is the name under which a measurement is visible
	// to a successCondition.
	SuccessConditionVariable = "result"
)

// successConditionEnv is built once: building a CEL environment type-checks the
// whole standard library and costs far more than compiling one expression.
var successConditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(SuccessConditionVariable, cel.DoubleType),
		// "result < 1" is what people write; without cross-type comparisons it
		// would fail to type-check because 1 is an int literal.
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(MaxSuccessConditionLength),
		cel.ParserRecursionLimit(successConditionRecursionLimit),
	)
})

// compiledConditionCacheSize is how many distinct successConditions keep their
// compiled program. Every update of a Rollout validates all of its conditions
// again, and the controller compiles them on every measurement; the same few
// expressions come back over and over, so a small cache saves nearly all of it.
const compiledConditionCacheSize = 1024

// compiledConditions caches compileSuccessCondition by expression.
var compiledConditions = lru.New(compiledConditionCacheSize)

// compiledCondition is a compiled successCondition, or why it does not compile.
type compiledCondition struct {
	program cel.Program
	// estimatedCost is the checker's worst-case estimate of one evaluation.
	estimatedCost uint64
	err           error
}

// CompileSuccessCondition compiles a metric check's successCondition: a CEL
// expression over the variable `result` (a double) that yields a bool. The
// returned program enforces SuccessConditionCostLimit at evaluation time;
// evaluate it with EvaluateSuccessCondition. Results are cached: a program
// is safe for concurrent evaluation.
func CompileSuccessCondition(expr string) (cel.Program, error) {
	c := compileSuccessConditionCached(expr)
	return c.program, c.err
}

// compileSuccessConditionCached is CompileSuccessCondition with its estimated cost.
func compileSuccessConditionCached(expr string) *compiledCondition {
	if v, ok := compiledConditions.Get(expr); ok {
		return v.(*compiledCondition)
	}
	c := &compiledCondition{}
	c.program, c.estimatedCost, c.err = compileSuccessCondition(expr)
	if len(expr) <= MaxSuccessConditionLength {
		// Oversize expressions are refused before any work; keeping them
		// would only let one request evict everything else.
		compiledConditions.Add(expr, c)
	}
	return c
}

func compileSuccessCondition(expr string) (cel.Program, uint64, error) {
	if expr == "" {
		return nil, 0, errors.New("must not be empty")
	}
	if len(expr) > MaxSuccessConditionLength {
		return nil, 0, fmt.Errorf("must be no more than %d bytes", MaxSuccessConditionLength)
	}
	if !utf8.ValidString(expr) {
		return nil, 0, errors.New("must be valid UTF-8")
	}
	env, err := successConditionEnv()
	if err != nil {
		return nil, 0, fmt.Errorf("building the CEL environment: %w", err)
	}
	ast, issues := env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		return nil, 0, fmt.Errorf("does not compile: %w", issues.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, 0, fmt.Errorf("must evaluate to bool, not %s", ast.OutputType())
	}
	estimate, err := env.EstimateCost(ast, noSizeEstimator{})
	if err != nil {
		return nil, 0, fmt.Errorf("estimating its cost: %w", err)
	}
	if estimate.Max > SuccessConditionCostLimit {
		return nil, 0, fmt.Errorf("is too expensive: estimated cost %d exceeds the limit %d", estimate.Max, SuccessConditionCostLimit)
	}
	prg, err := env.Program(ast, cel.CostLimit(SuccessConditionCostLimit))
	if err != nil {
		return nil, 0, fmt.Errorf("building the program: %w", err)
	}
	return prg, estimate.Max, nil
}

// EvaluateSuccessCondition runs a program from CompileSuccessCondition against
// one measurement and reports whether the measurement passes.
func EvaluateSuccessCondition(prg cel.Program, result float64) (bool, error) {
	out, _, err := prg.Eval(map[string]any{SuccessConditionVariable: result})
	if err != nil {
		return false, fmt.Errorf("evaluating the success condition with result=%v: %w", result, err)
	}
	passed, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the success condition yielded %s, not a bool", out.Type())
	}
	return bool(passed), nil
}

// noSizeEstimator gives no sizes and call costs beyond CEL's own defaults: the
// only input is a double, so every size in an expression comes from its literals.
type noSizeEstimator struct{}

// EstimateSize implements checker.CostEstimator.
func (noSizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

// EstimateCallCost implements checker.CostEstimator.
func (noSizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
