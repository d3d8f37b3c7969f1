/*
 * unary.c — elementwise functions of one tensor: Abs, Neg, Sign, Reciprocal, Exp, Log, Sqrt, the rounding
 * functions, trigonometric and hyperbolic functions, Erf, the classifiers IsNaN and IsInf, and the logical
 * Not and BitwiseNot.
 *
 * Each operator is a scalar expression turned into one kernel per dtype by the macros of elementwise.h.
 * Float maths goes through <tgmath.h>, so the same expression calls expf for float32 and exp for float64.
 * Integer negation wraps (two's complement) rather than overflowing, as numpy does: -INT_MIN is INT_MIN.
 */
#include <tgmath.h>

#include "ops/elementwise.h"

/* ---- scalar expressions: F(T, x, attrs) --------------------------------------------------------------- */

#define WRAPPING_NEG(T, x) ((T)(0 - (uint64_t)(x)))

#define ABS_FLOAT(T, x, a) fabs(x)
#define ABS_SIGNED(T, x, a) ((x) < 0 ? WRAPPING_NEG(T, x) : (x))
#define ABS_UNSIGNED(T, x, a) (x)
#define NEG_FLOAT(T, x, a) (-(x))
#define NEG_SIGNED(T, x, a) WRAPPING_NEG(T, x)
/* NaN keeps its sign: numpy's sign(nan) is nan */
#define SIGN_SIGNED(T, x, a) ((x) > 0 ? (T)1 : (x) < 0 ? (T)-1 : (x))
#define SIGN_UNSIGNED(T, x, a) ((x) > 0 ? (T)1 : (T)0)
#define RECIPROCAL(T, x, a) ((T)1 / (x))
#define EXP(T, x, a) exp(x)
#define LOG(T, x, a) log(x)
#define SQRT(T, x, a) sqrt(x)
#define FLOOR(T, x, a) floor(x)
#define CEIL(T, x, a) ceil(x)
/* Round halves to even: nearbyint in the default rounding mode, which kiln never changes */
#define ROUND(T, x, a) nearbyint(x)
#define SIN(T, x, a) sin(x)
#define COS(T, x, a) cos(x)
#define TAN(T, x, a) tan(x)
#define ASIN(T, x, a) asin(x)
#define ACOS(T, x, a) acos(x)
#define ATAN(T, x, a) atan(x)
#define SINH(T, x, a) sinh(x)
#define COSH(T, x, a) cosh(x)
#define ASINH(T, x, a) asinh(x)
#define ACOSH(T, x, a) acosh(x)
#define ATANH(T, x, a) atanh(x)
#define ERF(T, x, a) erf(x)
#define IS_NAN(T, x, a) ((uint8_t)isnan(x))
#define IS_INF(T, x, a) ((uint8_t)(isinf(x) && ((x) > 0 ? (a)->detect_positive : (a)->detect_negative)))
#define NOT(T, x, a) ((uint8_t)!(x))
#define BITWISE_NOT(T, x, a) ((T)~(x))

/* ---- kernels and their tables ------------------------------------------------------------------------- */

/* An operator defined on float32/float64 only, giving the same dtype. */
#define FLOAT_OP(op, F)                                                                                     \
    EW_FLOATS(EW_UNARY, op, F, EW_SAME)                                                                     \
    static const ew_table op##_kernels = {EW_FLOATS(EW_ENTRY, op)};

EW_FLOATS(EW_UNARY, abs, ABS_FLOAT, EW_SAME)
EW_SIGNED(EW_UNARY, abs, ABS_SIGNED, EW_SAME)
EW_UNSIGNED(EW_UNARY, abs, ABS_UNSIGNED, EW_SAME)
static const ew_table abs_kernels = {EW_FLOATS(EW_ENTRY, abs) EW_INTEGERS(EW_ENTRY, abs)};

EW_FLOATS(EW_UNARY, neg, NEG_FLOAT, EW_SAME)
EW_SIGNED(EW_UNARY, neg, NEG_SIGNED, EW_SAME)
static const ew_table neg_kernels = {EW_FLOATS(EW_ENTRY, neg) EW_SIGNED(EW_ENTRY, neg)};

EW_FLOATS(EW_UNARY, sign, SIGN_SIGNED, EW_SAME)
EW_SIGNED(EW_UNARY, sign, SIGN_SIGNED, EW_SAME)
EW_UNSIGNED(EW_UNARY, sign, SIGN_UNSIGNED, EW_SAME)
static const ew_table sign_kernels = {EW_FLOATS(EW_ENTRY, sign) EW_INTEGERS(EW_ENTRY, sign)};

FLOAT_OP(reciprocal, RECIPROCAL)
FLOAT_OP(exp, EXP)
FLOAT_OP(log, LOG)
FLOAT_OP(sqrt, SQRT)
FLOAT_OP(floor, FLOOR)
FLOAT_OP(ceil, CEIL)
FLOAT_OP(round, ROUND)
FLOAT_OP(sin, SIN)
FLOAT_OP(cos, COS)
FLOAT_OP(tan, TAN)
FLOAT_OP(asin, ASIN)
FLOAT_OP(acos, ACOS)
FLOAT_OP(atan, ATAN)
FLOAT_OP(sinh, SINH)
FLOAT_OP(cosh, COSH)
FLOAT_OP(asinh, ASINH)
FLOAT_OP(acosh, ACOSH)
FLOAT_OP(atanh, ATANH)
FLOAT_OP(erf, ERF)

EW_FLOATS(EW_UNARY, isnan, IS_NAN, EW_BOOL)
static const ew_table isnan_kernels = {EW_FLOATS(EW_ENTRY, isnan)};
EW_FLOATS(EW_UNARY, isinf, IS_INF, EW_BOOL)
static const ew_table isinf_kernels = {EW_FLOATS(EW_ENTRY, isinf)};

EW_BOOLS(EW_UNARY, logical_not, NOT, EW_BOOL)
static const ew_table logical_not_kernels = {EW_BOOLS(EW_ENTRY, logical_not)};
EW_INTEGERS(EW_UNARY, bitwise_not, BITWISE_NOT, EW_SAME)
static const ew_table bitwise_not_kernels = {EW_INTEGERS(EW_ENTRY, bitwise_not)};

/* ---- operators ---------------------------------------------------------------------------------------- */

static kiln_status unary_init(op_init_ctx *ctx, const ew_kernel *table, bool bool_output)
{
    ew_node *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, table, &p->kernel));
    ctx->output_dtypes[0] = bool_output ? KILN_BOOL : ctx->input_dtypes[0];
    return KILN_OK;
}

#define UNARY_INIT(op, bool_output)                                                                         \
    static kiln_status op##_init(op_init_ctx *ctx) { return unary_init(ctx, op##_kernels, bool_output); }

UNARY_INIT(abs, false)
UNARY_INIT(neg, false)
UNARY_INIT(sign, false)
UNARY_INIT(reciprocal, false)
UNARY_INIT(log, false)
UNARY_INIT(sqrt, false)
UNARY_INIT(floor, false)
UNARY_INIT(ceil, false)
UNARY_INIT(round, false)
UNARY_INIT(sin, false)
UNARY_INIT(cos, false)
UNARY_INIT(tan, false)
UNARY_INIT(asin, false)
UNARY_INIT(acos, false)
UNARY_INIT(atan, false)
UNARY_INIT(sinh, false)
UNARY_INIT(cosh, false)
UNARY_INIT(asinh, false)
UNARY_INIT(acosh, false)
UNARY_INIT(atanh, false)
UNARY_INIT(isnan, true)
UNARY_INIT(logical_not, true)
UNARY_INIT(bitwise_not, false)

/* Exp and Erf run vectorised for float32 where the CPU allows (kernels/vmath.h). */
static kiln_status exp_init(op_init_ctx *ctx)
{
    KILN_TRY(unary_init(ctx, exp_kernels, false));
    ew_prefer_vectorised(ctx, EW_VECTOR_EXP, &((ew_node *)ctx->params)->kernel);
    return KILN_OK;
}

static kiln_status erf_init(op_init_ctx *ctx)
{
    KILN_TRY(unary_init(ctx, erf_kernels, false));
    ew_prefer_vectorised(ctx, EW_VECTOR_ERF, &((ew_node *)ctx->params)->kernel);
    return KILN_OK;
}

static kiln_status isinf_init(op_init_ctx *ctx)
{
    ew_node *p = ctx->params;
    int64_t positive, negative;
    KILN_TRY(attr_int(ctx->node, "detect_positive", 1, &positive));
    KILN_TRY(attr_int(ctx->node, "detect_negative", 1, &negative));
    p->attrs.detect_positive = positive != 0;
    p->attrs.detect_negative = negative != 0;
    return unary_init(ctx, isinf_kernels, true);
}

/* Opset 1 versions differ from later ones only by the legacy `consumed_inputs` attribute (ignored) and by
 * the dtypes they allow, so each operator is registered from its first version. */
#define UNARY(op_type, since, op) {"", op_type, since, 18, sizeof(ew_node), op##_init, op_shape_like_input0, ew_eval_node, 0}

const op_def ops_unary[] = {
    UNARY("Abs", 1, abs),
    UNARY("Neg", 1, neg),
    UNARY("Sign", 9, sign),
    UNARY("Reciprocal", 1, reciprocal),
    UNARY("Exp", 1, exp),
    UNARY("Log", 1, log),
    UNARY("Sqrt", 1, sqrt),
    UNARY("Floor", 1, floor),
    UNARY("Ceil", 1, ceil),
    UNARY("Round", 11, round),
    UNARY("Sin", 7, sin),
    UNARY("Cos", 7, cos),
    UNARY("Tan", 7, tan),
    UNARY("Asin", 7, asin),
    UNARY("Acos", 7, acos),
    UNARY("Atan", 7, atan),
    UNARY("Sinh", 9, sinh),
    UNARY("Cosh", 9, cosh),
    UNARY("Asinh", 9, asinh),
    UNARY("Acosh", 9, acosh),
    UNARY("Atanh", 9, atanh),
    UNARY("Erf", 9, erf),
    UNARY("IsNaN", 9, isnan),
    UNARY("IsInf", 10, isinf),
    UNARY("Not", 1, logical_not),
    UNARY("BitwiseNot", 18, bitwise_not),
    OP_TABLE_END,
};
