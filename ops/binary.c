/*
 * binary.c — elementwise operators of two tensors under numpy broadcasting: arithmetic (Add, Sub, Mul, Div,
 * Pow, Mod), comparisons (Equal, Greater, Less, GreaterOrEqual, LessOrEqual), logic (And, Or, Xor), bit
 * operations (BitShift, BitwiseAnd, BitwiseOr, BitwiseXor), and the three-way Where.
 *
 * Each is a scalar expression expanded per dtype by elementwise.h; broadcasting is ew_run's business.
 * Integer arithmetic follows what C on two's-complement hardware and numpy agree on, without C's undefined
 * behaviour: Add, Sub, Mul and Pow wrap around (computed in uint64_t), Div truncates towards zero, and
 * INT_MIN / -1 wraps to INT_MIN. Integer division or modulo by zero is an error found before computing.
 * Where depends only on element size, so it serves every dtype.
 */
#include <string.h>
#include <tgmath.h>

#include "core/dtype.h"
#include "ops/elementwise.h"

/* ---- scalar expressions: F(T, x, y) ------------------------------------------------------------------- */

#define ADD(T, x, y) ((x) + (y))
#define SUB(T, x, y) ((x) - (y))
#define MUL(T, x, y) ((x) * (y))
#define DIV(T, x, y) ((x) / (y))
#define WRAPPING_ADD(T, x, y) ((T)((uint64_t)(x) + (uint64_t)(y)))
#define WRAPPING_SUB(T, x, y) ((T)((uint64_t)(x) - (uint64_t)(y)))
#define WRAPPING_MUL(T, x, y) ((T)((uint64_t)(x) * (uint64_t)(y)))
/* y == -1 would trap for INT_MIN; the divisor was checked for zero */
#define DIV_SIGNED(T, x, y) ((y) == -1 ? (T)(0 - (uint64_t)(x)) : (T)((x) / (y)))
#define FMOD_FLOAT(T, x, y) fmod(x, y)
#define FMOD_SIGNED(T, x, y) ((y) == -1 ? (T)0 : (T)((x) % (y))) /* sign of the dividend, like C */
#define MOD_SIGNED(T, x, y) ((T)floor_mod((x), (y)))                /* sign of the divisor, like Python */
#define MOD_UNSIGNED(T, x, y) ((T)((x) % (y)))
#define POW_FLOAT(T, x, y) pow(x, y)
#define POW_INT(T, x, y) ((T)wrapping_pow((x), (y)))
#define POW_INT_BY_REAL(T, x, y) EW_SATURATE(T, pow((double)(x), (y)))
#define SHIFT_LEFT(T, x, y) ((y) >= 8 * sizeof(T) ? (T)0 : (T)((uint64_t)(x) << (y)))
#define SHIFT_RIGHT(T, x, y) ((y) >= 8 * sizeof(T) ? (T)0 : (T)((x) >> (y)))
#define EQUAL(T, x, y) ((uint8_t)((x) == (y)))
#define EQUAL_BOOL(T, x, y) ((uint8_t)(!(x) == !(y))) /* any non-zero byte is true */
#define GREATER(T, x, y) ((uint8_t)((x) > (y)))
#define LESS(T, x, y) ((uint8_t)((x) < (y)))
#define GREATER_OR_EQUAL(T, x, y) ((uint8_t)((x) >= (y)))
#define LESS_OR_EQUAL(T, x, y) ((uint8_t)((x) <= (y)))
#define AND(T, x, y) ((uint8_t)((x) && (y)))
#define OR(T, x, y) ((uint8_t)((x) || (y)))
#define XOR(T, x, y) ((uint8_t)(!(x) != !(y)))
#define BITWISE_AND(T, x, y) ((T)((x) & (y)))
#define BITWISE_OR(T, x, y) ((T)((x) | (y)))
#define BITWISE_XOR(T, x, y) ((T)((x) ^ (y)))

/* x mod y with the sign of y (y != 0), for every signed width. */
static inline int64_t floor_mod(int64_t x, int64_t y)
{
    if (y == -1) return 0; /* INT64_MIN % -1 traps */
    int64_t r = x % y;
    return r != 0 && (r < 0) != (y < 0) ? r + y : r;
}

/* base^exponent by squaring, wrapping like repeated multiplication. A negative exponent gives the
 * truncated real result: 0 except for bases 1 and -1. */
static inline int64_t wrapping_pow(int64_t base, int64_t exponent)
{
    if (exponent < 0) return base == 1 ? 1 : base == -1 ? (exponent % 2 ? -1 : 1) : 0;
    uint64_t result = 1, factor = (uint64_t)base;
    for (uint64_t e = (uint64_t)exponent; e; e >>= 1) {
        if (e & 1) result *= factor;
        factor *= factor;
    }
    return (int64_t)result;
}

/* ---- kernels and their tables ------------------------------------------------------------------------- */

EW_FLOATS(EW_BINARY, add, ADD, EW_SAME)
EW_INTEGERS(EW_BINARY, add, WRAPPING_ADD, EW_SAME)
static const ew_table add_kernels = {EW_FLOATS(EW_ENTRY, add) EW_INTEGERS(EW_ENTRY, add)};
EW_FLOATS(EW_BINARY, sub, SUB, EW_SAME)
EW_INTEGERS(EW_BINARY, sub, WRAPPING_SUB, EW_SAME)
static const ew_table sub_kernels = {EW_FLOATS(EW_ENTRY, sub) EW_INTEGERS(EW_ENTRY, sub)};
EW_FLOATS(EW_BINARY, mul, MUL, EW_SAME)
EW_INTEGERS(EW_BINARY, mul, WRAPPING_MUL, EW_SAME)
static const ew_table mul_kernels = {EW_FLOATS(EW_ENTRY, mul) EW_INTEGERS(EW_ENTRY, mul)};
EW_FLOATS(EW_BINARY, div, DIV, EW_SAME)
EW_SIGNED(EW_BINARY, div, DIV_SIGNED, EW_SAME)
EW_UNSIGNED(EW_BINARY, div, DIV, EW_SAME)
static const ew_table div_kernels = {EW_FLOATS(EW_ENTRY, div) EW_INTEGERS(EW_ENTRY, div)};

EW_FLOATS(EW_BINARY, fmod, FMOD_FLOAT, EW_SAME)
EW_HALFS(EW_BINARY_HALF, fmod, FMOD_FLOAT, EW_SAME) /* exact: a remainder of halves is a half */
EW_SIGNED(EW_BINARY, fmod, FMOD_SIGNED, EW_SAME)
EW_UNSIGNED(EW_BINARY, fmod, MOD_UNSIGNED, EW_SAME)
static const ew_table fmod_kernels = {EW_FLOATS(EW_ENTRY, fmod) EW_HALFS(EW_ENTRY, fmod) EW_INTEGERS(EW_ENTRY, fmod)};
/* Mod with fmod=0 is integer-only: the spec requires fmod=1 for floats */
EW_SIGNED(EW_BINARY, mod, MOD_SIGNED, EW_SAME)
EW_UNSIGNED(EW_BINARY, mod, MOD_UNSIGNED, EW_SAME)
static const ew_table mod_kernels = {EW_INTEGERS(EW_ENTRY, mod)};

EW_UNSIGNED(EW_BINARY, shift_left, SHIFT_LEFT, EW_SAME)
static const ew_table shift_left_kernels = {EW_UNSIGNED(EW_ENTRY, shift_left)};
EW_UNSIGNED(EW_BINARY, shift_right, SHIFT_RIGHT, EW_SAME)
static const ew_table shift_right_kernels = {EW_UNSIGNED(EW_ENTRY, shift_right)};

/* Comparisons: numeric dtypes; Equal also bool. */
#define COMPARISON(op, F)                                                                                   \
    EW_FLOATS(EW_BINARY, op, F, EW_BOOL)                                                                    \
    EW_INTEGERS(EW_BINARY, op, F, EW_BOOL)                                                                  \
    static const ew_table op##_kernels = {EW_FLOATS(EW_ENTRY, op) EW_INTEGERS(EW_ENTRY, op)};
COMPARISON(greater, GREATER)
COMPARISON(less, LESS)
COMPARISON(greater_or_equal, GREATER_OR_EQUAL)
COMPARISON(less_or_equal, LESS_OR_EQUAL)
EW_FLOATS(EW_BINARY, equal, EQUAL, EW_BOOL)
EW_INTEGERS(EW_BINARY, equal, EQUAL, EW_BOOL)
EW_BOOLS(EW_BINARY, equal, EQUAL_BOOL, EW_BOOL)
static const ew_table equal_kernels = {EW_FLOATS(EW_ENTRY, equal) EW_INTEGERS(EW_ENTRY, equal)
                                           EW_BOOLS(EW_ENTRY, equal)};

EW_BOOLS(EW_BINARY, logical_and, AND, EW_BOOL)
static const ew_table logical_and_kernels = {EW_BOOLS(EW_ENTRY, logical_and)};
EW_BOOLS(EW_BINARY, logical_or, OR, EW_BOOL)
static const ew_table logical_or_kernels = {EW_BOOLS(EW_ENTRY, logical_or)};
EW_BOOLS(EW_BINARY, logical_xor, XOR, EW_BOOL)
static const ew_table logical_xor_kernels = {EW_BOOLS(EW_ENTRY, logical_xor)};

EW_INTEGERS(EW_BINARY, bitwise_and, BITWISE_AND, EW_SAME)
static const ew_table bitwise_and_kernels = {EW_INTEGERS(EW_ENTRY, bitwise_and)};
EW_INTEGERS(EW_BINARY, bitwise_or, BITWISE_OR, EW_SAME)
static const ew_table bitwise_or_kernels = {EW_INTEGERS(EW_ENTRY, bitwise_or)};
EW_INTEGERS(EW_BINARY, bitwise_xor, BITWISE_XOR, EW_SAME)
static const ew_table bitwise_xor_kernels = {EW_INTEGERS(EW_ENTRY, bitwise_xor)};

/* ---- operators with one kernel per dtype -------------------------------------------------------------- */

static kiln_status binary_init(op_init_ctx *ctx, const ew_kernel *table, bool bool_output)
{
    ew_node *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, table, &p->kernel));
    KILN_TRY(ew_require_same_dtype(ctx, 1, 0));
    ctx->output_dtypes[0] = bool_output ? KILN_BOOL : ctx->input_dtypes[0];
    return KILN_OK;
}

#define BINARY_INIT(op, bool_output)                                                                        \
    static kiln_status op##_init(op_init_ctx *ctx) { return binary_init(ctx, op##_kernels, bool_output); }

BINARY_INIT(add, false)
BINARY_INIT(sub, false)
BINARY_INIT(mul, false)
BINARY_INIT(div, false)
BINARY_INIT(equal, true)
BINARY_INIT(greater, true)
BINARY_INIT(less, true)
BINARY_INIT(greater_or_equal, true)
BINARY_INIT(less_or_equal, true)
BINARY_INIT(logical_and, true)
BINARY_INIT(logical_or, true)
BINARY_INIT(logical_xor, true)
BINARY_INIT(bitwise_and, false)
BINARY_INIT(bitwise_or, false)
BINARY_INIT(bitwise_xor, false)

static kiln_status mod_init(op_init_ctx *ctx)
{
    int64_t fmod_flag;
    KILN_TRY(attr_int(ctx->node, "fmod", 0, &fmod_flag));
    if (fmod_flag == 0 && op_has_input(ctx, 0) && dtype_is_float(ctx->input_dtypes[0]))
        return kiln_fail(KILN_ERR_MALFORMED, "fmod=0 is not allowed for floating-point inputs (use fmod=1)");
    return binary_init(ctx, fmod_flag ? fmod_kernels : mod_kernels, false);
}

static kiln_status bitshift_init(op_init_ctx *ctx)
{
    static const char *const directions[] = {"LEFT", "RIGHT", NULL};
    int direction;
    KILN_TRY(attr_choice(ctx->node, "direction", "", directions, &direction));
    return binary_init(ctx, direction == 0 ? shift_left_kernels : shift_right_kernels, false);
}

/* Div and Mod: integer division by zero has no result, so it is refused before anything is computed. */
static kiln_status divide_eval(op_ctx *ctx)
{
    const kiln_tensor *divisor = ctx->inputs[1];
    if (dtype_is_integer(divisor->dtype) && tensor_numel(ctx->outputs[0]) > 0) {
        int64_t n = tensor_numel(divisor);
        for (int64_t i = 0; i < n; i++)
            if (tensor_get_int(divisor, i) == 0)
                return kiln_fail(KILN_ERR_RUNTIME, "integer division by zero (divisor element %lld)", (long long)i);
    }
    return ew_eval_node(ctx);
}

/* ---- Pow: the exponent may have any numeric dtype --------------------------------------------------- */

/* A float base is raised to the exponent converted to the base's dtype; an integer base to an int64
 * exponent (exact) or to a double one (then the result saturates). So each base dtype has at most two
 * kernels, and a differently typed exponent is first converted into scratch memory. */
EW_FLOATS(EW_BINARY, pow, POW_FLOAT, EW_SAME)
EW_BINARY_KERNEL(pow_i32_by_int, int32_t, int64_t, int32_t, POW_INT)
EW_BINARY_KERNEL(pow_i64_by_int, int64_t, int64_t, int64_t, POW_INT)
EW_BINARY_KERNEL(pow_i32_by_real, int32_t, double, int32_t, POW_INT_BY_REAL)
EW_BINARY_KERNEL(pow_i64_by_real, int64_t, double, int64_t, POW_INT_BY_REAL)
static const ew_table pow_bases = {EW_FLOATS(EW_ENTRY, pow)[KILN_INT32] = pow_i32_by_int,
                                   [KILN_INT64] = pow_i64_by_int};

typedef struct pow_params {
    ew_node node;
    kiln_dtype exponent_as; /* dtype the exponent is converted to, KILN_UNDEFINED when used as is */
} pow_params;

static kiln_status pow_init(op_init_ctx *ctx)
{
    pow_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, pow_bases, &p->node.kernel));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_NUMERIC));
    kiln_dtype base = ctx->input_dtypes[0], exponent = ctx->input_dtypes[1];
    kiln_dtype wanted = dtype_is_float(base) ? base : dtype_is_float(exponent) ? KILN_FLOAT64 : KILN_INT64;
    if (wanted == KILN_FLOAT64 && !dtype_is_float(base))
        p->node.kernel = base == KILN_INT32 ? pow_i32_by_real : pow_i64_by_real;
    p->exponent_as = exponent == wanted ? KILN_UNDEFINED : wanted;
    ctx->output_dtypes[0] = base;
    return KILN_OK;
}

static kiln_status pow_shape(op_ctx *ctx)
{
    const pow_params *p = ctx->params;
    if (p->exponent_as != KILN_UNDEFINED)
        ctx->scratch_bytes = (size_t)tensor_numel(ctx->inputs[1]) * kiln_dtype_size(p->exponent_as);
    return ew_shape_broadcast(ctx);
}

static kiln_status pow_eval(op_ctx *ctx)
{
    const pow_params *p = ctx->params;
    const kiln_tensor *exponent = ctx->inputs[1];
    kiln_tensor converted = *exponent;
    if (p->exponent_as != KILN_UNDEFINED) {
        converted.dtype = p->exponent_as;
        converted.data = ctx->scratch;
        int64_t n = tensor_numel(exponent);
        for (int64_t i = 0; i < n; i++) {
            if (p->exponent_as == KILN_FLOAT32) ((float *)ctx->scratch)[i] = (float)tensor_get_double(exponent, i);
            else if (p->exponent_as == KILN_FLOAT64) ((double *)ctx->scratch)[i] = tensor_get_double(exponent, i);
            else ((int64_t *)ctx->scratch)[i] = tensor_get_int(exponent, i);
        }
    }
    const kiln_tensor *inputs[2] = {ctx->inputs[0], &converted};
    ew_run(ctx->parallel, p->node.kernel, NULL, ctx->outputs[0], 2, inputs);
    return KILN_OK;
}

/* ---- Where: out = condition ? X : Y, all three broadcast --------------------------------------------- */

#define WHERE_KERNEL(name, T)                                                                               \
    static void name(const void *params, void *out_, const void *const *in, const bool *varies, int64_t n) \
    {                                                                                                       \
        const uint8_t *condition = in[0];                                                                   \
        const T *x = in[1], *y = in[2];                                                                     \
        T *out = out_;                                                                                      \
        const int64_t sc = varies[0], sx = varies[1], sy = varies[2];                                       \
        (void)params;                                                                                       \
        for (int64_t i = 0; i < n; i++) out[i] = condition[i * sc] ? x[i * sx] : y[i * sy];                 \
    }
WHERE_KERNEL(where_8, uint8_t)
WHERE_KERNEL(where_16, uint16_t)
WHERE_KERNEL(where_32, uint32_t)
WHERE_KERNEL(where_64, uint64_t)

static kiln_status where_init(op_init_ctx *ctx)
{
    ew_node *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_BOOL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_ALL));
    KILN_TRY(ew_require_same_dtype(ctx, 2, 1));
    switch (kiln_dtype_size(ctx->input_dtypes[1])) {
    case 1: p->kernel = where_8; break;
    case 2: p->kernel = where_16; break;
    case 4: p->kernel = where_32; break;
    default: p->kernel = where_64; break;
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[1];
    return KILN_OK;
}

/* Opsets before 7 had a `broadcast` attribute with other rules; those versions are not registered. */
#define BINARY(op_type, since, op, eval)                                                                    \
    {"", op_type, since, 18, sizeof(ew_node), op##_init, ew_shape_broadcast, eval, 0}

const op_def ops_binary[] = {
    BINARY("Add", 7, add, ew_eval_node),
    BINARY("Sub", 7, sub, ew_eval_node),
    BINARY("Mul", 7, mul, ew_eval_node),
    BINARY("Div", 7, div, divide_eval),
    BINARY("Mod", 10, mod, divide_eval),
    {"", "Pow", 7, 18, sizeof(pow_params), pow_init, pow_shape, pow_eval, 0},
    BINARY("BitShift", 11, bitshift, ew_eval_node),
    BINARY("Equal", 7, equal, ew_eval_node),
    BINARY("Greater", 7, greater, ew_eval_node),
    BINARY("Less", 7, less, ew_eval_node),
    BINARY("GreaterOrEqual", 12, greater_or_equal, ew_eval_node),
    BINARY("LessOrEqual", 12, less_or_equal, ew_eval_node),
    BINARY("And", 7, logical_and, ew_eval_node),
    BINARY("Or", 7, logical_or, ew_eval_node),
    BINARY("Xor", 7, logical_xor, ew_eval_node),
    BINARY("BitwiseAnd", 18, bitwise_and, ew_eval_node),
    BINARY("BitwiseOr", 18, bitwise_or, ew_eval_node),
    BINARY("BitwiseXor", 18, bitwise_xor, ew_eval_node),
    BINARY("Where", 9, where, ew_eval_node),
    OP_TABLE_END,
};
