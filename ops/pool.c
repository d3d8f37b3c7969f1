/*
 * pool.c — MaxPool (with its optional Indices output), AveragePool, LpPool and their Global forms, over 1 to
 * 3 spatial dims (the global forms over any number).
 *
 * Every pool is one loop over output positions that clips its window to the input (conv_valid_range) and
 * reduces what is inside: a maximum, or a sum of x or |x|^p that is then divided or rooted. A global pool is
 * the same loop with a single window covering the whole spatial volume, so there is one code path to trust.
 * Window sizes, padding and ceil_mode come from conv_geometry.c, shared with the convolutions. Channel planes
 * are independent and split across threads. Float32 MaxPool without indices uses the AVX-512 plane kernel
 * of kernels/x86/conv_avx512.c where the CPU has it (tests compare it with the loop here).
 */
#include <math.h>

#include "core/platform/platform.h"
#include "kernels/conv.h"
#include "ops/conv_geometry.h"
#include "ops/op.h"

typedef enum pool_kind { POOL_MAX, POOL_AVERAGE, POOL_LP } pool_kind;

typedef struct pool_params {
    conv_attrs attrs;
    pool_kind kind;
    bool global;
    bool count_include_pad;    /* AveragePool: divide by the window size, padding included */
    bool column_major_indices; /* MaxPool storage_order=1 */
    double p;                  /* LpPool's exponent */
} pool_params;

static const kiln_dtype DTYPES_MAX_POOL[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT8, KILN_UINT8, KILN_UNDEFINED};

/* ---- init -------------------------------------------------------------------------------------------- */

static kiln_status read_flag(const graph_node *node, const char *name, bool *out)
{
    int64_t v;
    KILN_TRY(attr_int(node, name, 0, &v));
    if (v != 0 && v != 1) return kiln_fail(KILN_ERR_MALFORMED, "%s is %lld, expected 0 or 1", name, (long long)v);
    *out = v != 0;
    return KILN_OK;
}

/* LpPool's p was a float attribute in opset 1 and is an int since opset 2. */
static kiln_status read_p(const op_init_ctx *ctx, double *p)
{
    if (ctx->opset < 2) {
        float f;
        KILN_TRY(attr_float(ctx->node, "p", 2.0f, &f));
        *p = f;
    } else {
        int64_t i;
        KILN_TRY(attr_int(ctx->node, "p", 2, &i));
        *p = (double)i;
    }
    if (!(*p > 0) || *p > 1e6) return kiln_fail(KILN_ERR_MALFORMED, "p is %g, expected a positive exponent", *p);
    return KILN_OK;
}

static kiln_status pool_init_with(op_init_ctx *ctx, pool_kind kind, bool global)
{
    pool_params *p = ctx->params;
    p->kind = kind;
    p->global = global;
    int max_outputs = kind == POOL_MAX && !global && ctx->opset >= 8 ? 2 : 1;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, max_outputs));
    KILN_TRY(op_require_dtype(ctx, 0, kind == POOL_MAX && !global ? DTYPES_MAX_POOL : DTYPES_FLOAT));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    if (ctx->n_outputs > 1) ctx->output_dtypes[1] = KILN_INT64;
    if (kind == POOL_LP) KILN_TRY(read_p(ctx, &p->p));
    if (global) return KILN_OK;
    KILN_TRY(conv_attrs_read(ctx->node, CONV_ATTR_CEIL_MODE, &p->attrs));
    if (!p->attrs.n_kernel) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'kernel_shape' is required");
    if (kind == POOL_AVERAGE) KILN_TRY(read_flag(ctx->node, "count_include_pad", &p->count_include_pad));
    if (kind == POOL_MAX) KILN_TRY(read_flag(ctx->node, "storage_order", &p->column_major_indices));
    return KILN_OK;
}

static kiln_status max_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_MAX, false); }
static kiln_status average_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_AVERAGE, false); }
static kiln_status lp_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_LP, false); }
static kiln_status global_max_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_MAX, true); }
static kiln_status global_average_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_AVERAGE, true); }
static kiln_status global_lp_pool_init(op_init_ctx *ctx) { return pool_init_with(ctx, POOL_LP, true); }

/* ---- shape ------------------------------------------------------------------------------------------- */

/* The window for the current input, and the output dims (rank of the input). */
static kiln_status describe_pool(const op_ctx *ctx, conv_window *w, int64_t *out_dims)
{
    const pool_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    if (x->rank < 3) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the input has rank %d, expected (N, C, spatial...)", x->rank);
    int spatial = x->rank - 2;
    if (p->global) {
        int64_t volume;
        KILN_TRY(shape_numel_checked(spatial, x->dims + 2, &volume));
        conv_geometry_global(volume, w);
        out_dims[0] = x->dims[0], out_dims[1] = x->dims[1];
        for (int d = 2; d < x->rank; d++) out_dims[d] = 1;
        return KILN_OK;
    }
    KILN_TRY(conv_geometry_forward(&p->attrs, spatial, x->dims + 2, p->attrs.kernel, w));
    conv_output_dims(w, spatial, x->dims[0], x->dims[1], out_dims);
    return KILN_OK;
}

static kiln_status pool_shape(op_ctx *ctx)
{
    conv_window w;
    int64_t dims[KILN_MAX_RANK];
    KILN_TRY(describe_pool(ctx, &w, dims));
    for (int k = 0; k < ctx->n_outputs; k++) op_set_output_shape(ctx, k, ctx->inputs[0]->rank, dims);
    return KILN_OK;
}

/* ---- the window loops -------------------------------------------------------------------------------- */

/* The taps of one output position along one dim: tap k reads input position start + k * dilation, and
 * the taps in [lo, hi) land inside the input; `padded` counts those inside the padded input (AveragePool's
 * count_include_pad divisor: ceil_mode's extra windows never count what hangs past the padding). */
typedef struct dim_taps {
    int64_t start, lo, hi, padded;
} dim_taps;

static dim_taps taps_along(const conv_window *w, int d, int64_t o)
{
    dim_taps t = {.start = o * w->stride[d] - w->pad[d], .lo = 0, .hi = w->kernel[d], .padded = w->kernel[d]};
    int64_t last = t.start + (w->kernel[d] - 1) * w->dilation[d];
    /* most windows lie wholly inside the input: no division for them */
    if (t.start >= 0 && last < w->in[d]) return t;
    conv_valid_range(t.start, w->dilation[d], w->in[d], w->kernel[d], &t.lo, &t.hi);
    if (t.start < -w->pad[d] || last >= w->in[d] + w->pad_end[d]) {
        int64_t lo, hi;
        conv_valid_range(t.start + w->pad[d], w->dilation[d], w->in[d] + w->pad[d] + w->pad_end[d], w->kernel[d], &lo, &hi);
        t.padded = hi - lo;
    }
    return t;
}

/* The flat index MaxPool reports for spatial offset `at` of a plane: row-major, or column-major over the
 * spatial dims with storage_order=1. */
static int64_t index_in_plane(const conv_window *w, int64_t at, bool column_major)
{
    if (!column_major) return at;
    int64_t d = at / (w->in[1] * w->in[2]), h = at / w->in[2] % w->in[1], x = at % w->in[2];
    return (x * w->in[1] + h) * w->in[0] + d;
}

typedef struct pool_job {
    const pool_params *p;
    conv_window w;
    const void *x;
    void *y;
    int64_t *indices; /* MaxPool's optional second output, or NULL */
} pool_job;

/* Runs the code given for every output position of planes [begin, end) in order, with `x` the plane's
 * input, `e` the output's offset in all planes and td, th, tw its taps along each dim. The tap ranges of a
 * dim are worked out once per position of that dim, not once per output. */
#define FOR_EACH_WINDOW(T, ...)                                                                              \
    const pool_job *j = arg;                                                                                 \
    const conv_window *w = &j->w;                                                                            \
    int64_t in_vol = conv_volume(w->in), e = begin * conv_volume(w->out);                                    \
    for (int64_t plane = begin; plane < end; plane++) {                                                      \
        const T *x = (const T *)j->x + plane * in_vol;                                                       \
        for (int64_t od = 0; od < w->out[0]; od++) {                                                         \
            dim_taps td = taps_along(w, 0, od);                                                              \
            for (int64_t oh = 0; oh < w->out[1]; oh++) {                                                     \
                dim_taps th = taps_along(w, 1, oh);                                                          \
                for (int64_t ow = 0; ow < w->out[2]; ow++, e++) {                                            \
                    dim_taps tw = taps_along(w, 2, ow);                                                      \
                    __VA_ARGS__                                                                              \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

/* Runs the code given for every tap of the window (td, th, tw) inside the input, with `at` its offset in the plane. */
#define FOR_EACH_TAP(...)                                                                                    \
    for (int64_t kd = td.lo; kd < td.hi; kd++)                                                               \
        for (int64_t kh = th.lo; kh < th.hi; kh++) {                                                         \
            int64_t row = ((td.start + kd * w->dilation[0]) * w->in[1] + th.start + kh * w->dilation[1]) *   \
                              w->in[2] + tw.start;                                                           \
            for (int64_t kw = tw.lo; kw < tw.hi; kw++) {                                                     \
                int64_t at = row + kw * w->dilation[2];                                                      \
                __VA_ARGS__                                                                                  \
            }                                                                                                \
        }

/* Offset in the plane of the first tap inside the input, or -1 when the window lies wholly in the padding. */
static int64_t first_tap(const conv_window *w, const dim_taps *td, const dim_taps *th, const dim_taps *tw)
{
    if (td->lo == td->hi || th->lo == th->hi || tw->lo == tw->hi) return -1;
    return ((td->start + td->lo * w->dilation[0]) * w->in[1] + th->start + th->lo * w->dilation[1]) * w->in[2] +
           tw->start + tw->lo * w->dilation[2];
}

/* The largest value in each window and where it is (the first of equals). NaN wins, as in numpy. A window
 * wholly in the padding gives LOWEST and index -1. The comparison feeds selects, not branches: on real data
 * its outcome is unpredictable and mispredictions would dominate. */
#define DEFINE_MAX_POOL(T, SUFFIX, LOWEST, IS_NAN)                                                           \
    static void max_pool_##SUFFIX(void *arg, int64_t begin, int64_t end)                                     \
    {                                                                                                        \
        FOR_EACH_WINDOW(T, {                                                                                 \
            T best = LOWEST;                                                                                 \
            int64_t best_at = -1, nan_at = -1;                                                               \
            FOR_EACH_TAP({                                                                                   \
                T v = x[at];                                                                                 \
                bool larger = v > best;                                                                      \
                best = larger ? v : best;                                                                    \
                best_at = larger ? at : best_at;                                                             \
                if (IS_NAN(v) && nan_at < 0) nan_at = at;                                                    \
            })                                                                                               \
            if (nan_at >= 0) best = x[nan_at], best_at = nan_at;                                             \
            ((T *)j->y)[e] = best;                                                                           \
            if (j->indices) {                                                                                \
                if (best_at < 0) best_at = first_tap(w, &td, &th, &tw); /* every value was LOWEST */        \
                j->indices[e] = best_at < 0 ? -1 : plane * in_vol + index_in_plane(w, best_at, j->p->column_major_indices); \
            }                                                                                                \
        })                                                                                                   \
    }

/* |v|^p with the common exponents spelled out (pow is slow and not exact for them). */
static double lp_term(double v, double p)
{
    if (p == 2.0) return v * v;
    if (p == 1.0) return fabs(v);
    return pow(fabs(v), p);
}

static double lp_root(double sum, double p)
{
    if (p == 2.0) return sqrt(sum);
    if (p == 1.0) return sum;
    return pow(sum, 1.0 / p);
}

/* AveragePool and LpPool: a sum over the window in double, then divided (an empty window gives 0) or
 * rooted. */
#define DEFINE_SUM_POOL(T, SUFFIX)                                                                           \
    static void sum_pool_##SUFFIX(void *arg, int64_t begin, int64_t end)                                     \
    {                                                                                                        \
        bool lp = ((const pool_job *)arg)->p->kind == POOL_LP;                                               \
        FOR_EACH_WINDOW(T, {                                                                                 \
            double sum = 0.0;                                                                                \
            FOR_EACH_TAP({ sum += lp ? lp_term(x[at], j->p->p) : (double)x[at]; })                           \
            int64_t divisor = j->p->count_include_pad ? td.padded * th.padded * tw.padded                    \
                                                      : (td.hi - td.lo) * (th.hi - th.lo) * (tw.hi - tw.lo); \
            double value = lp ? lp_root(sum, j->p->p) : divisor ? sum / (double)divisor : 0.0;               \
            ((T *)j->y)[e] = (T)value;                                                                       \
        })                                                                                                   \
    }

#define INTEGER_IS_NAN(v) false
DEFINE_MAX_POOL(float, f32, -INFINITY, isnan)
DEFINE_MAX_POOL(double, f64, -INFINITY, isnan)
DEFINE_MAX_POOL(int8_t, i8, INT8_MIN, INTEGER_IS_NAN)
DEFINE_MAX_POOL(uint8_t, u8, 0, INTEGER_IS_NAN)
DEFINE_SUM_POOL(float, f32)
DEFINE_SUM_POOL(double, f64)

/* float32 GlobalAveragePool: each plane is one contiguous run, its mean taken by plane_sum. Sums run in
 * SUM_CHAINS independent partial sums, so that the compiler vectorises the
 * loops without reassociating anything (a single chain adds one element a cycle, and EfficientNet's
 * squeeze-excitation blocks average every depthwise output): float sums over blocks of SUM_BLOCK elements
 * (SUM_BLOCK / SUM_CHAINS additions each, a few float ulps), added into double sums per block, which are
 * summed pairwise at the end. Planes shorter than a block (7x7) take four double chains: there the fixed
 * cost of the partial sums was larger than the loop. Measured on hot 112x112 planes: 4.9 -> 13 elements/ns. */
enum { SUM_CHAINS = 16, SUM_BLOCK = 64 };

static double plane_sum(const float *x, int64_t n)
{
    int64_t i = 0;
    if (n < SUM_BLOCK) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (; i + 4 <= n; i += 4) s0 += x[i], s1 += x[i + 1], s2 += x[i + 2], s3 += x[i + 3];
        for (; i < n; i++) s0 += x[i];
        return s0 + s1 + s2 + s3;
    }
    double part[SUM_CHAINS] = {0}, tail = 0.0;
    for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
        float block[SUM_CHAINS] = {0};
        for (int b = 0; b < SUM_BLOCK; b += SUM_CHAINS)
            for (int k = 0; k < SUM_CHAINS; k++) block[k] += x[i + b + k];
        for (int k = 0; k < SUM_CHAINS; k++) part[k] += block[k];
    }
    float block[SUM_CHAINS] = {0};
    for (; i + SUM_CHAINS <= n; i += SUM_CHAINS)
        for (int k = 0; k < SUM_CHAINS; k++) block[k] += x[i + k];
    for (int k = 0; k < SUM_CHAINS; k++) part[k] += block[k];
    for (; i < n; i++) tail += x[i];
    for (int width = SUM_CHAINS / 2; width > 0; width /= 2)
        for (int k = 0; k < width; k++) part[k] += part[k + width];
    return part[0] + tail;
}

static void global_average_f32(void *arg, int64_t begin, int64_t end)
{
    const pool_job *j = arg;
    int64_t n = conv_volume(j->w.in);
    for (int64_t plane = begin; plane < end; plane++)
        ((float *)j->y)[plane] = n ? (float)(plane_sum((const float *)j->x + plane * n, n) / (double)n) : 0.0f;
}

#if defined(KILN_HAVE_X86_KERNELS)
/* float32 MaxPool without indices, plane by plane with AVX-512 where the window shape allows, else the loop above. */
static void max_pool_f32_avx512(void *arg, int64_t begin, int64_t end)
{
    const pool_job *j = arg;
    int64_t in_vol = conv_volume(j->w.in), out_vol = conv_volume(j->w.out);
    for (int64_t plane = begin; plane < end; plane++)
        if (!conv_max_pool_plane_avx512(&j->w, (const float *)j->x + plane * in_vol, (float *)j->y + plane * out_vol))
            max_pool_f32(arg, plane, plane + 1);
}
#endif

/* init admitted only these (kind, dtype) pairs */
static parallel_fn pool_kernel(pool_kind kind, kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: return kind == POOL_MAX ? max_pool_f32 : sum_pool_f32;
    case KILN_FLOAT64: return kind == POOL_MAX ? max_pool_f64 : sum_pool_f64;
    case KILN_INT8: return max_pool_i8;
    default: return max_pool_u8;
    }
}

static kiln_status pool_eval(op_ctx *ctx)
{
    const pool_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    pool_job job = {.p = p, .x = x->data, .y = ctx->outputs[0]->data};
    int64_t dims[KILN_MAX_RANK];
    KILN_TRY(describe_pool(ctx, &job.w, dims));
    if (tensor_numel(ctx->outputs[0]) == 0) return KILN_OK;
    if (ctx->n_outputs > 1 && ctx->outputs[1]) job.indices = ctx->outputs[1]->data;
    int64_t work = conv_volume(job.w.out) * conv_volume(job.w.kernel);
    int64_t grain = parallel_grain(work, 32768);
    parallel_fn kernel = pool_kernel(p->kind, x->dtype);
    if (p->global && p->kind == POOL_AVERAGE && x->dtype == KILN_FLOAT32) kernel = global_average_f32;
#if defined(KILN_HAVE_X86_KERNELS)
    if (kernel == max_pool_f32 && !job.indices && platform_cpu_features()->avx512f) kernel = max_pool_f32_avx512;
#endif
    parallel_for(ctx->parallel, x->dims[0] * x->dims[1], grain, kernel, &job);
    return KILN_OK;
}

const op_def ops_pool[] = {
    {"", "MaxPool", 1, 18, sizeof(pool_params), max_pool_init, pool_shape, pool_eval, 0},
    {"", "AveragePool", 1, 18, sizeof(pool_params), average_pool_init, pool_shape, pool_eval, 0},
    {"", "LpPool", 1, 18, sizeof(pool_params), lp_pool_init, pool_shape, pool_eval, 0},
    {"", "GlobalMaxPool", 1, 18, sizeof(pool_params), global_max_pool_init, pool_shape, pool_eval, 0},
    {"", "GlobalAveragePool", 1, 18, sizeof(pool_params), global_average_pool_init, pool_shape, pool_eval, 0},
    {"", "GlobalLpPool", 1, 18, sizeof(pool_params), global_lp_pool_init, pool_shape, pool_eval, 0},
    OP_TABLE_END,
};
