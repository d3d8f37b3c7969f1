/*
 * spectral.c — DFT and STFT (opset 17): Fourier transforms of real or complex signals, whose last axis holds
 * 1 (real) or 2 (real, imaginary) values.
 *
 * Both operators are many independent 1-D transforms of one length n ("lines"): DFT transforms every line
 * along `axis`, STFT every frame of its signal. A line is described by strides alone (where its samples
 * start, how far apart they are, where its output bins go), so one routine gathers a line into a complex
 * buffer (zero-padded, windowed), runs kernels/fft.c on it and scatters the bins it keeps (all, or the
 * n / 2 + 1 unique ones of a onesided transform). The plan's tables are built once per call in scratch; the
 * lines are split into one slice per thread, each with its own buffer. Arithmetic is in double for float32
 * and float64 alike.
 */
#include "kernels/fft.h"
#include "ops/op.h"

/* ---- transforming lines ------------------------------------------------------------------------------ */

typedef struct spectral_lines {
    const kiln_tensor *x, *window; /* window: NULL or n samples multiplying each line */
    kiln_tensor *y;
    int64_t count, per_outer;                /* lines in all; line l is (l / per_outer, l % per_outer) */
    int64_t in_outer, in_inner, in_stride;   /* element offsets in x: per outer, per inner index, per sample */
    int64_t out_outer, out_inner, out_stride; /* the same in y, per output bin (bins are 2 elements) */
    int64_t samples;                          /* samples read per line; the rest of n is zero padding */
    int channels;                             /* 1: real input, 2: complex */
    int64_t bins;                             /* bins written per line */
    bool inverse;
    fft_plan plan;
    int64_t slices;
    double *work;        /* slices of work_doubles each */
    size_t work_doubles; /* 2n for the line plus the transform's own work */
} spectral_lines;

static size_t spectral_slice_doubles(int64_t n) { return 2 * (size_t)n + fft_work_doubles(n); }

/* Scratch for transforms of length n split over `threads` slices. */
static size_t spectral_scratch_bytes(int64_t n, int threads)
{
    if (n == 0) return 0;
    return (fft_plan_doubles(n) + (size_t)(threads > 0 ? threads : 1) * spectral_slice_doubles(n)) * sizeof(double);
}

static void store_value(kiln_tensor *t, int64_t i, double v)
{
    if (t->dtype == KILN_FLOAT32) ((float *)t->data)[i] = (float)v;
    else ((double *)t->data)[i] = v;
}

static void transform_line(const spectral_lines *s, int64_t line, double *buffer, double *fft_work)
{
    int64_t n = s->plan.n, outer = line / s->per_outer, inner = line % s->per_outer;
    int64_t in = outer * s->in_outer + inner * s->in_inner, out = outer * s->out_outer + inner * s->out_inner;
    for (int64_t j = 0; j < n; j++) {
        double weight = s->window ? tensor_get_double(s->window, j) : 1.0;
        bool inside = j < s->samples;
        int64_t at = in + j * s->in_stride;
        buffer[2 * j] = inside ? weight * tensor_get_double(s->x, at) : 0.0;
        buffer[2 * j + 1] = inside && s->channels == 2 ? weight * tensor_get_double(s->x, at + 1) : 0.0;
    }
    fft_execute(&s->plan, buffer, s->inverse, fft_work);
    double scale = s->inverse ? 1.0 / (double)n : 1.0;
    for (int64_t k = 0; k < s->bins; k++) {
        store_value(s->y, out + k * s->out_stride, buffer[2 * k] * scale);
        store_value(s->y, out + k * s->out_stride + 1, buffer[2 * k + 1] * scale);
    }
}

/* Items are slices: slice i transforms lines [i * count / slices, (i + 1) * count / slices) with buffer i. */
static void transform_slices(void *arg, int64_t begin, int64_t end)
{
    const spectral_lines *s = arg;
    for (int64_t slice = begin; slice < end; slice++) {
        double *buffer = s->work + (size_t)slice * s->work_doubles;
        for (int64_t l = slice * s->count / s->slices; l < (slice + 1) * s->count / s->slices; l++)
            transform_line(s, l, buffer, buffer + 2 * s->plan.n);
    }
}

/* Builds the plan in scratch and transforms every line of length n, one slice of lines per thread. */
static void transform_lines(op_ctx *ctx, spectral_lines *s, int64_t n)
{
    if (s->count == 0 || n == 0 || s->bins == 0) return;
    double *tables = ctx->scratch;
    fft_plan_init(&s->plan, n, tables);
    s->work = tables + fft_plan_doubles(n);
    s->work_doubles = spectral_slice_doubles(n);
    s->slices = ctx->threads > 0 ? ctx->threads : 1;
    if (s->slices > s->count) s->slices = s->count;
    parallel_for(ctx->parallel, s->slices, 1, transform_slices, s);
}

/* A scalar length input (dft_length, frame_step, frame_length), at least `min`. */
static kiln_status read_length(const kiln_tensor *t, const char *what, int64_t min, int64_t *out)
{
    KILN_TRY(op_require_one_value(t, what));
    *out = tensor_get_int(t, 0);
    if (*out < min || *out > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s is %lld, expected at least %lld", what, (long long)*out,
                         (long long)min);
    return KILN_OK;
}

/* The last axis of a signal: 1 for real values, 2 for complex ones. */
static kiln_status signal_channels(const kiln_tensor *x, int min_rank, int *channels)
{
    if (x->rank < min_rank || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "the signal must have rank %s%d and a last axis of 1 (real) or 2 (complex) values",
                         min_rank == 3 && x->rank != 3 ? "" : "at least ", min_rank);
    *channels = (int)x->dims[x->rank - 1];
    return KILN_OK;
}

/* ---- DFT --------------------------------------------------------------------------------------------- */

typedef struct dft_params {
    int64_t axis;
    bool inverse, onesided;
} dft_params;

static kiln_status dft_init(op_init_ctx *ctx)
{
    dft_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    if (op_has_input(ctx, 1)) {
        KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
        ctx->value_inputs = 1u << 1;
    }
    int64_t inverse, onesided;
    KILN_TRY(attr_int(ctx->node, "axis", 1, &p->axis));
    KILN_TRY(attr_int(ctx->node, "inverse", 0, &inverse));
    KILN_TRY(attr_int(ctx->node, "onesided", 0, &onesided));
    if (inverse && onesided) return kiln_fail(KILN_ERR_MALFORMED, "onesided and inverse cannot both be set");
    p->inverse = inverse != 0;
    p->onesided = onesided != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* x is (batch, signal dims..., channels); the transform runs along one signal axis. */
typedef struct dft_geometry {
    int axis, channels;
    int64_t n, bins;
} dft_geometry;

static kiln_status dft_describe(const op_ctx *ctx, dft_geometry *g)
{
    const dft_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    KILN_TRY(signal_channels(x, 3, &g->channels));
    if (!axis_normalize(p->axis, x->rank, &g->axis) || g->axis == 0 || g->axis == x->rank - 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is not a signal axis of a rank %d input",
                         (long long)p->axis, x->rank);
    const kiln_tensor *length = ctx->n_inputs > 1 ? ctx->inputs[1] : NULL;
    g->n = x->dims[g->axis];
    if (length) KILN_TRY(read_length(length, "dft_length", 1, &g->n));
    if (p->onesided && g->channels == 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "a onesided transform needs a real input, not a complex one");
    g->bins = p->onesided ? g->n / 2 + 1 : g->n;
    if (g->n == 0) g->bins = 0;
    return KILN_OK;
}

static kiln_status dft_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    dft_geometry g = {0};
    KILN_TRY(dft_describe(ctx, &g));
    int64_t dims[KILN_MAX_RANK], numel;
    for (int d = 0; d < x->rank; d++) dims[d] = x->dims[d];
    dims[g.axis] = g.bins;
    dims[x->rank - 1] = 2;
    KILN_TRY(shape_numel_checked(x->rank, dims, &numel));
    op_set_output_shape(ctx, 0, x->rank, dims);
    ctx->scratch_bytes = spectral_scratch_bytes(g.n, ctx->threads);
    return KILN_OK;
}

static kiln_status dft_eval(op_ctx *ctx)
{
    const dft_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    dft_geometry g = {0};
    KILN_TRY(dft_describe(ctx, &g));
    int64_t outer = shape_span(x->dims, 0, g.axis), inner = shape_span(x->dims, g.axis + 1, x->rank - 1);
    int64_t len = x->dims[g.axis];
    spectral_lines s = {
        .x = x, .y = ctx->outputs[0], .count = outer * inner, .per_outer = inner,
        .in_outer = len * inner * g.channels, .in_inner = g.channels, .in_stride = inner * g.channels,
        .out_outer = g.bins * inner * 2, .out_inner = 2, .out_stride = inner * 2,
        .samples = len < g.n ? len : g.n, .channels = g.channels, .bins = g.bins, .inverse = p->inverse,
    };
    transform_lines(ctx, &s, g.n);
    return KILN_OK;
}

/* ---- STFT -------------------------------------------------------------------------------------------- */

typedef struct stft_params {
    bool onesided;
} stft_params;

static kiln_status stft_init(op_init_ctx *ctx)
{
    stft_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 4, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    if (op_has_input(ctx, 2))
        KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    if (op_has_input(ctx, 3)) KILN_TRY(op_require_dtype(ctx, 3, DTYPES_INDEX));
    if (!op_has_input(ctx, 2) && !op_has_input(ctx, 3))
        return kiln_fail(KILN_ERR_MALFORMED, "either a window or a frame_length is required");
    int64_t onesided;
    KILN_TRY(attr_int(ctx->node, "onesided", 1, &onesided));
    p->onesided = onesided != 0;
    ctx->value_inputs = (1u << 1) | (op_has_input(ctx, 3) ? 1u << 3 : 0);
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* signal is (batch, length, channels); frames of n samples start every `step` samples. */
typedef struct stft_geometry {
    int channels;
    int64_t step, n, frames, bins;
} stft_geometry;

static kiln_status stft_describe(const op_ctx *ctx, stft_geometry *g)
{
    const stft_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    const kiln_tensor *window = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    const kiln_tensor *frame_length = ctx->n_inputs > 3 ? ctx->inputs[3] : NULL;
    KILN_TRY(signal_channels(x, 3, &g->channels));
    if (x->rank != 3) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the signal must have shape [batch, length, 1 or 2]");
    KILN_TRY(read_length(ctx->inputs[1], "frame_step", 1, &g->step));
    if (window && window->rank != 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the window must be 1-D");
    if (frame_length) KILN_TRY(read_length(frame_length, "frame_length", 1, &g->n));
    else g->n = window->dims[0];
    if (window && window->dims[0] != g->n)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the window has %lld samples but frame_length is %lld",
                         (long long)window->dims[0], (long long)g->n);
    if (p->onesided && g->channels == 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "a onesided transform needs a real signal, not a complex one");
    int64_t length = x->dims[1];
    g->frames = length >= g->n ? (length - g->n) / g->step + 1 : 0;
    g->bins = g->n == 0 ? 0 : p->onesided ? g->n / 2 + 1 : g->n;
    return KILN_OK;
}

static kiln_status stft_shape(op_ctx *ctx)
{
    stft_geometry g = {0};
    KILN_TRY(stft_describe(ctx, &g));
    int64_t dims[4] = {ctx->inputs[0]->dims[0], g.frames, g.bins, 2}, numel;
    KILN_TRY(shape_numel_checked(4, dims, &numel));
    op_set_output_shape(ctx, 0, 4, dims);
    ctx->scratch_bytes = spectral_scratch_bytes(g.n, ctx->threads);
    return KILN_OK;
}

static kiln_status stft_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    stft_geometry g = {0};
    KILN_TRY(stft_describe(ctx, &g));
    spectral_lines s = {
        .x = x, .window = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL, .y = ctx->outputs[0],
        .count = x->dims[0] * g.frames, .per_outer = g.frames,
        .in_outer = x->dims[1] * g.channels, .in_inner = g.step * g.channels, .in_stride = g.channels,
        .out_outer = g.frames * g.bins * 2, .out_inner = g.bins * 2, .out_stride = 2,
        .samples = g.n, .channels = g.channels, .bins = g.bins,
    };
    transform_lines(ctx, &s, g.n);
    return KILN_OK;
}

const op_def ops_spectral[] = {
    {"", "DFT", 17, 18, sizeof(dft_params), dft_init, dft_shape, dft_eval, 0},
    {"", "STFT", 17, 18, sizeof(stft_params), stft_init, stft_shape, stft_eval, 0},
    OP_TABLE_END,
};
