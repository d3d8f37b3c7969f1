/*
 * variadic.c — Max, Min, Sum and Mean over one or more inputs, all broadcast to a common shape.
 *
 * The output is built in place by the binary kernels of elementwise.h: out = f(input 0, input 1), then
 * out = f(out, input k) for each further input, each pass one broadcasting ew_run. (A kernel may read the
 * element it writes, so accumulating into the output is safe.) A single input is a broadcast copy, and Mean
 * is Sum followed by one division pass. Max and Min propagate NaN, as numpy's maximum and minimum do.
 */
#include <tgmath.h>

#include "ops/elementwise.h"

/* ---- scalar expressions ------------------------------------------------------------------------------- */

#define MAX_FLOAT(T, x, y) ((x) > (y) || isnan(x) ? (x) : (y))
#define MIN_FLOAT(T, x, y) ((x) < (y) || isnan(x) ? (x) : (y))
#define MAX_INT(T, x, y) ((x) > (y) ? (x) : (y))
#define MIN_INT(T, x, y) ((x) < (y) ? (x) : (y))
#define SUM(T, x, y) ((x) + (y))
#define DIVIDE_BY_ALPHA(T, x, a) ((x) / (T)(a)->alpha) /* Mean: alpha holds the number of inputs */
#define IDENTITY(T, x, a) (x)

/* ---- kernels and their tables ------------------------------------------------------------------------- */

EW_FLOATS(EW_BINARY, max, MAX_FLOAT, EW_SAME)
EW_HALFS(EW_BINARY_HALF, max, MAX_FLOAT, EW_SAME)
EW_INTEGERS(EW_BINARY, max, MAX_INT, EW_SAME)
static const ew_table max_kernels = {EW_FLOATS(EW_ENTRY, max) EW_HALFS(EW_ENTRY, max) EW_INTEGERS(EW_ENTRY, max)};
EW_FLOATS(EW_BINARY, min, MIN_FLOAT, EW_SAME)
EW_HALFS(EW_BINARY_HALF, min, MIN_FLOAT, EW_SAME)
EW_INTEGERS(EW_BINARY, min, MIN_INT, EW_SAME)
static const ew_table min_kernels = {EW_FLOATS(EW_ENTRY, min) EW_HALFS(EW_ENTRY, min) EW_INTEGERS(EW_ENTRY, min)};
EW_FLOATS(EW_BINARY, sum, SUM, EW_SAME)
EW_HALFS(EW_BINARY_HALF, sum, SUM, EW_SAME)
static const ew_table sum_kernels = {EW_FLOATS(EW_ENTRY, sum) EW_HALFS(EW_ENTRY, sum)};
EW_FLOATS(EW_UNARY, mean_divide, DIVIDE_BY_ALPHA, EW_SAME)
static const ew_table mean_divide_kernels = {EW_FLOATS(EW_ENTRY, mean_divide)};

/* Copies by element size: a single input only needs broadcasting. */
EW_UNARY_KERNEL(copy_8, uint8_t, uint8_t, IDENTITY)
EW_UNARY_KERNEL(copy_16, uint16_t, uint16_t, IDENTITY)
EW_UNARY_KERNEL(copy_32, uint32_t, uint32_t, IDENTITY)
EW_UNARY_KERNEL(copy_64, uint64_t, uint64_t, IDENTITY)

/* ---- operators ---------------------------------------------------------------------------------------- */

typedef struct variadic_params {
    ew_kernel combine; /* out = combine(a, b) */
    ew_kernel copy;    /* for a single input */
    ew_kernel divide;  /* Mean's final pass, else NULL */
    ew_attrs attrs;    /* for divide: alpha = number of inputs */
} variadic_params;

static ew_kernel copy_kernel(size_t element_size)
{
    switch (element_size) {
    case 1: return copy_8;
    case 2: return copy_16;
    case 4: return copy_32;
    default: return copy_64;
    }
}

static kiln_status variadic_init(op_init_ctx *ctx, const ew_kernel *table, bool mean)
{
    variadic_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1 << 20, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, table, &p->combine));
    for (int i = 1; i < ctx->n_inputs; i++) KILN_TRY(ew_require_same_dtype(ctx, i, 0));
    for (int i = 1; i < ctx->n_inputs; i++)
        if (!op_has_input(ctx, i)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", i);
    p->copy = copy_kernel(kiln_dtype_size(ctx->input_dtypes[0]));
    if (mean) {
        KILN_TRY(ew_pick(ctx, 0, mean_divide_kernels, &p->divide));
        p->attrs.alpha = (float)ctx->n_inputs;
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status max_init(op_init_ctx *ctx) { return variadic_init(ctx, max_kernels, false); }
static kiln_status min_init(op_init_ctx *ctx) { return variadic_init(ctx, min_kernels, false); }
static kiln_status sum_init(op_init_ctx *ctx) { return variadic_init(ctx, sum_kernels, false); }
static kiln_status mean_init(op_init_ctx *ctx) { return variadic_init(ctx, sum_kernels, true); }

static kiln_status variadic_eval(op_ctx *ctx)
{
    const variadic_params *p = ctx->params;
    kiln_tensor *out = ctx->outputs[0];
    const kiln_tensor *const *in = (const kiln_tensor *const *)ctx->inputs;
    if (ctx->n_inputs == 1) ew_run(ctx->parallel, p->copy, NULL, out, 1, in);
    else ew_run(ctx->parallel, p->combine, NULL, out, 2, in);
    for (int k = 2; k < ctx->n_inputs; k++) {
        const kiln_tensor *pair[2] = {out, in[k]};
        ew_run(ctx->parallel, p->combine, NULL, out, 2, pair);
    }
    if (p->divide) {
        const kiln_tensor *self[1] = {out};
        ew_run(ctx->parallel, p->divide, &p->attrs, out, 1, self);
    }
    return KILN_OK;
}

/* Versions before 8 required equal shapes (a case of broadcasting) and differ otherwise only by the legacy
 * `consumed_inputs` attribute, so each operator is registered from opset 1. */
#define VARIADIC(op_type, op)                                                                               \
    {"", op_type, 1, 18, sizeof(variadic_params), op##_init, ew_shape_broadcast, variadic_eval, 0}

const op_def ops_variadic[] = {
    VARIADIC("Max", max),
    VARIADIC("Min", min),
    VARIADIC("Sum", sum),
    VARIADIC("Mean", mean),
    OP_TABLE_END,
};
