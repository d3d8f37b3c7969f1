/*
 * random.c — the random operators: RandomUniform, RandomNormal (opset 1), RandomUniformLike,
 * RandomNormalLike (opset 1) and Bernoulli (opset 15).
 *
 * Every one draws from kernels/random.h's counter-based generator, so element i's value depends only on the
 * node's key and i: threads split the output freely, a `seed` attribute gives the same values on every run
 * and machine, and a node without one draws a fresh key per run. The values cannot equal numpy's (a different
 * generator), only follow the same distributions. Values are made in double a block at a time and stored
 * through the cast kernel, the one place that knows every dtype's representation. None is ever folded.
 */
#include <math.h>

#include "core/dtype.h"
#include "kernels/cast.h"
#include "kernels/random.h"
#include "ops/op.h"

#define RANDOM_BLOCK 256

typedef enum random_kind { RANDOM_UNIFORM, RANDOM_NORMAL, RANDOM_BERNOULLI } random_kind;

typedef struct random_params {
    random_kind kind;
    bool seeded;
    uint64_t key;
    double a, b;              /* uniform: low, high; normal: mean, scale */
    bool like;                /* the output takes input 0's shape (the *Like operators, Bernoulli) */
    int rank;                 /* RandomUniform/RandomNormal: the `shape` attribute */
    int64_t dims[KILN_MAX_RANK];
} random_params;

static const kiln_dtype RANDOM_FLOAT_DTYPES[] = {KILN_FLOAT16, KILN_FLOAT32, KILN_FLOAT64, KILN_UNDEFINED};

/* ---- init --------------------------------------------------------------------------------------------- */

/* The output dtype: the `dtype` attribute, else `dflt`; it must be in `allowed`. */
static kiln_status random_output_dtype(op_init_ctx *ctx, kiln_dtype dflt, const kiln_dtype *allowed)
{
    int64_t dtype;
    KILN_TRY(attr_int(ctx->node, "dtype", dflt, &dtype));
    for (const kiln_dtype *d = allowed; *d != KILN_UNDEFINED; d++)
        if (dtype == *d) {
            ctx->output_dtypes[0] = *d;
            return KILN_OK;
        }
    bool known = dtype > 0 && dtype <= KILN_BFLOAT16 && dtype_is_known((int)dtype);
    return kiln_fail(known ? KILN_ERR_UNSUPPORTED : KILN_ERR_MALFORMED,
                     "dtype %lld is not an output type of this operator", (long long)dtype);
}

static kiln_status random_read_common(op_init_ctx *ctx, random_params *p)
{
    if (graph_node_attr(ctx->node, "seed")) {
        float seed;
        KILN_TRY(attr_float(ctx->node, "seed", 0, &seed));
        p->seeded = true;
        p->key = rng_key_from_seed(seed);
    }
    float a = 0, b = 1;
    if (p->kind == RANDOM_UNIFORM) {
        KILN_TRY(attr_float(ctx->node, "low", 0.0f, &a));
        KILN_TRY(attr_float(ctx->node, "high", 1.0f, &b));
        if (!(isfinite(a) && isfinite(b) && a <= b))
            return kiln_fail(KILN_ERR_MALFORMED, "low %g and high %g are not a finite range", a, b);
    } else if (p->kind == RANDOM_NORMAL) {
        KILN_TRY(attr_float(ctx->node, "mean", 0.0f, &a));
        KILN_TRY(attr_float(ctx->node, "scale", 1.0f, &b));
        if (!(isfinite(a) && isfinite(b) && b >= 0))
            return kiln_fail(KILN_ERR_MALFORMED, "mean %g and scale %g must be finite, scale not negative", a, b);
    }
    p->a = a;
    p->b = b;
    return KILN_OK;
}

static kiln_status random_shaped_init(op_init_ctx *ctx, random_kind kind)
{
    random_params *p = ctx->params;
    p->kind = kind;
    KILN_TRY(op_require_arity(ctx, 0, 0, 1, 1));
    KILN_TRY(random_read_common(ctx, p));
    KILN_TRY(random_output_dtype(ctx, KILN_FLOAT32, RANDOM_FLOAT_DTYPES));
    if (!graph_node_attr(ctx->node, "shape")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'shape' is required");
    KILN_TRY(attr_ints(ctx->node, "shape", p->dims, KILN_MAX_RANK, &p->rank));
    int64_t numel;
    if (shape_numel_checked(p->rank, p->dims, &numel) != KILN_OK)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'shape' is not a valid shape");
    return KILN_OK;
}

static kiln_status random_like_init(op_init_ctx *ctx, random_kind kind)
{
    random_params *p = ctx->params;
    p->kind = kind;
    p->like = true;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(random_read_common(ctx, p));
    kiln_dtype dflt = dtype_is_float(ctx->input_dtypes[0]) ? ctx->input_dtypes[0] : KILN_FLOAT32;
    return random_output_dtype(ctx, dflt, RANDOM_FLOAT_DTYPES);
}

static kiln_status bernoulli_init(op_init_ctx *ctx)
{
    static const kiln_dtype outputs[] = {KILN_FLOAT16, KILN_FLOAT32, KILN_FLOAT64, KILN_BFLOAT16, KILN_BOOL,
                                         KILN_INT8,    KILN_INT16,   KILN_INT32,   KILN_INT64,    KILN_UINT8,
                                         KILN_UINT16,  KILN_UINT32,  KILN_UINT64,  KILN_UNDEFINED};
    random_params *p = ctx->params;
    p->kind = RANDOM_BERNOULLI;
    p->like = true;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, RANDOM_FLOAT_DTYPES));
    KILN_TRY(random_read_common(ctx, p));
    return random_output_dtype(ctx, ctx->input_dtypes[0], outputs);
}

static kiln_status random_uniform_init(op_init_ctx *ctx) { return random_shaped_init(ctx, RANDOM_UNIFORM); }
static kiln_status random_normal_init(op_init_ctx *ctx) { return random_shaped_init(ctx, RANDOM_NORMAL); }
static kiln_status random_uniform_like_init(op_init_ctx *ctx) { return random_like_init(ctx, RANDOM_UNIFORM); }
static kiln_status random_normal_like_init(op_init_ctx *ctx) { return random_like_init(ctx, RANDOM_NORMAL); }

static kiln_status random_shape(op_ctx *ctx)
{
    const random_params *p = ctx->params;
    if (p->like) return op_shape_like_input0(ctx);
    op_set_output_shape(ctx, 0, p->rank, p->dims);
    return KILN_OK;
}

/* ---- eval --------------------------------------------------------------------------------------------- */

typedef struct random_job {
    const random_params *p;
    uint64_t key;
    const kiln_tensor *probabilities; /* Bernoulli's input */
    kiln_tensor *out;
} random_job;

/* Value i: uniform on [a, b); normal by Box-Muller from draws 2i and 2i + 1; Bernoulli 1 with probability p_i. */
static double random_value(const random_job *job, int64_t i)
{
    const random_params *p = job->p;
    switch (p->kind) {
    case RANDOM_UNIFORM: return p->a + (p->b - p->a) * rng_uniform(job->key, (uint64_t)i);
    case RANDOM_NORMAL: {
        double u1 = 1.0 - rng_uniform(job->key, 2 * (uint64_t)i), u2 = rng_uniform(job->key, 2 * (uint64_t)i + 1);
        return p->a + p->b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    case RANDOM_BERNOULLI:
        return rng_uniform(job->key, (uint64_t)i) < tensor_get_double(job->probabilities, i) ? 1.0 : 0.0;
    }
    return 0;
}

static void random_blocks(void *arg, int64_t begin, int64_t end)
{
    const random_job *job = arg;
    int64_t numel = tensor_numel(job->out);
    size_t size = kiln_dtype_size(job->out->dtype);
    for (int64_t block = begin; block < end; block++) {
        double values[RANDOM_BLOCK];
        int64_t first = block * RANDOM_BLOCK, count = numel - first < RANDOM_BLOCK ? numel - first : RANDOM_BLOCK;
        for (int64_t k = 0; k < count; k++) values[k] = random_value(job, first + k);
        cast_elements(values, KILN_FLOAT64, (char *)job->out->data + (size_t)first * size, job->out->dtype, count);
    }
}

static kiln_status random_eval(op_ctx *ctx)
{
    const random_params *p = ctx->params;
    random_job job = {p, p->seeded ? p->key : rng_key_unseeded(ctx->node), ctx->inputs[0], ctx->outputs[0]};
    if (p->kind == RANDOM_BERNOULLI)
        for (int64_t i = 0, n = tensor_numel(job.probabilities); i < n; i++) {
            double probability = tensor_get_double(job.probabilities, i);
            if (!(probability >= 0 && probability <= 1))
                return kiln_fail(KILN_ERR_RUNTIME, "probability %g (element %lld) is outside [0, 1]", probability,
                                 (long long)i);
        }
    int64_t blocks = (tensor_numel(job.out) + RANDOM_BLOCK - 1) / RANDOM_BLOCK;
    parallel_for(ctx->parallel, blocks, 64, random_blocks, &job);
    return KILN_OK;
}

#define RANDOM_OP(op_type, since, init)                                                                     \
    {"", op_type, since, 18, sizeof(random_params), init, random_shape, random_eval, OP_NO_FOLD}

const op_def ops_random[] = {
    RANDOM_OP("RandomUniform", 1, random_uniform_init),
    RANDOM_OP("RandomNormal", 1, random_normal_init),
    RANDOM_OP("RandomUniformLike", 1, random_uniform_like_init),
    RANDOM_OP("RandomNormalLike", 1, random_normal_like_init),
    RANDOM_OP("Bernoulli", 15, bernoulli_init),
    OP_TABLE_END,
};
