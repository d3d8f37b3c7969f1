/*
 * window.c — the signal-processing tables of opset 17: HannWindow, HammingWindow, BlackmanWindow and
 * MelWeightMatrix.
 *
 * Their inputs are scalars that fix the output's length (so shape() reads them: value_inputs), and their
 * outputs are usually folded at load. Every value is computed in double and converted to `output_datatype`
 * through the cast kernel, the one place that knows every dtype's representation; the double staging buffer
 * is scratch.
 */
#include <math.h>

#include "kernels/cast.h"
#include "ops/op.h"

#define PI 3.14159265358979323846

typedef struct window_params {
    bool periodic;
    int kind; /* window_kind */
} window_params;

enum window_kind { WINDOW_HANN, WINDOW_HAMMING, WINDOW_BLACKMAN };

/* Reads output_datatype (a TensorProto dtype code, which kiln_dtype mirrors) and sets output 0 to it. */
static kiln_status table_output_dtype(op_init_ctx *ctx)
{
    int64_t code;
    KILN_TRY(attr_int(ctx->node, "output_datatype", KILN_FLOAT32, &code));
    kiln_dtype dtype = code > 0 && code <= KILN_BFLOAT16 ? (kiln_dtype)code : KILN_UNDEFINED;
    if (dtype == KILN_UNDEFINED || !cast_supported(dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output_datatype %lld is not supported", (long long)code);
    ctx->output_dtypes[0] = dtype;
    return KILN_OK;
}

/* A scalar integer input that sizes the output, at least `min`. */
static kiln_status read_count(const kiln_tensor *t, const char *what, int64_t min, int64_t *out)
{
    KILN_TRY(op_require_one_value(t, what));
    *out = tensor_get_int(t, 0);
    if (*out < min || *out > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s is %lld, expected at least %lld", what, (long long)*out,
                         (long long)min);
    return KILN_OK;
}

/* Converts the double values staged in scratch into the output's dtype. */
static void table_store(op_ctx *ctx, int64_t n)
{
    cast_elements(ctx->scratch, KILN_FLOAT64, ctx->outputs[0]->data, ctx->outputs[0]->dtype, n);
}

/* ---- the cosine-sum windows -------------------------------------------------------------------------- */

static kiln_status window_init(op_init_ctx *ctx, int kind)
{
    window_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_INDEX));
    int64_t periodic;
    KILN_TRY(attr_int(ctx->node, "periodic", 1, &periodic));
    p->periodic = periodic != 0;
    p->kind = kind;
    ctx->value_inputs = 1u << 0;
    return table_output_dtype(ctx);
}

static kiln_status hann_init(op_init_ctx *ctx) { return window_init(ctx, WINDOW_HANN); }
static kiln_status hamming_init(op_init_ctx *ctx) { return window_init(ctx, WINDOW_HAMMING); }
static kiln_status blackman_init(op_init_ctx *ctx) { return window_init(ctx, WINDOW_BLACKMAN); }

static kiln_status window_shape(op_ctx *ctx)
{
    int64_t size;
    KILN_TRY(read_count(ctx->inputs[0], "size", 0, &size));
    op_set_output_shape(ctx, 0, 1, &size);
    ctx->scratch_bytes = (size_t)size * sizeof(double);
    return KILN_OK;
}

/* w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), with N the size (periodic) or size - 1 (symmetric);
 * a one-sample symmetric window takes N = 1 rather than dividing by zero. */
static kiln_status window_eval(op_ctx *ctx)
{
    const window_params *p = ctx->params;
    static const double coefficients[][3] = {
        [WINDOW_HANN] = {0.5, 0.5, 0.0},
        [WINDOW_HAMMING] = {25.0 / 46.0, 21.0 / 46.0, 0.0},
        [WINDOW_BLACKMAN] = {0.42, 0.5, 0.08},
    };
    const double *a = coefficients[p->kind];
    int64_t size = ctx->outputs[0]->dims[0];
    double period = p->periodic ? (double)size : (double)(size > 1 ? size - 1 : 1);
    double *w = ctx->scratch;
    for (int64_t n = 0; n < size; n++) {
        double phase = 2.0 * PI * (double)n / period;
        w[n] = a[0] - a[1] * cos(phase) + a[2] * cos(2.0 * phase);
    }
    table_store(ctx, size);
    return KILN_OK;
}

/* ---- MelWeightMatrix --------------------------------------------------------------------------------- */

/* Inputs: num_mel_bins, dft_length, sample_rate (integers), lower_edge_hertz, upper_edge_hertz (floats).
 * Output: [dft_length / 2 + 1, num_mel_bins]. */
static kiln_status mel_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 5, 5, 1, 1));
    for (int i = 0; i < 3; i++) KILN_TRY(op_require_dtype(ctx, i, DTYPES_INDEX));
    for (int i = 3; i < 5; i++) KILN_TRY(op_require_dtype(ctx, i, DTYPES_FLOAT));
    ctx->value_inputs = (1u << 0) | (1u << 1);
    return table_output_dtype(ctx);
}

static kiln_status mel_shape(op_ctx *ctx)
{
    int64_t bins, dft_length;
    KILN_TRY(read_count(ctx->inputs[0], "num_mel_bins", 1, &bins));
    KILN_TRY(read_count(ctx->inputs[1], "dft_length", 1, &dft_length));
    int64_t dims[2] = {dft_length / 2 + 1, bins}, numel;
    KILN_TRY(shape_numel_checked(2, dims, &numel));
    op_set_output_shape(ctx, 0, 2, dims);
    ctx->scratch_bytes = (size_t)(numel + bins + 2) * sizeof(double);
    return KILN_OK;
}

static double hertz_to_mel(double hz) { return 2595.0 * log10(1.0 + hz / 700.0); }
static double mel_to_hertz(double mel) { return 700.0 * (pow(10.0, mel / 2595.0) - 1.0); }

/* The spectrogram bin at each of the num_mel_bins + 2 triangle corners, equally spaced in mel. The step
 * divides by num_mel_bins + 2, as the ONNX reference does (its test data depends on it). */
static kiln_status mel_corners(int64_t bins, int64_t dft_length, double sample_rate, double low_hz,
                               double high_hz, int64_t spectrum_bins, double *corner)
{
    double low = hertz_to_mel(low_hz), step = (hertz_to_mel(high_hz) - low) / (double)(bins + 2);
    for (int64_t i = 0; i < bins + 2; i++) {
        double hz = mel_to_hertz((double)i * step + low);
        corner[i] = floor((double)(dft_length + 1) * hz / sample_rate);
        if (!(corner[i] >= 0 && corner[i] < (double)spectrum_bins))
            return kiln_fail(KILN_ERR_RUNTIME, "mel band edge %g Hz falls outside the %lld spectrogram bins", hz,
                             (long long)spectrum_bins);
    }
    return KILN_OK;
}

/* Triangle i rises from corner i to corner i+1 and falls to corner i+2 (a zero-width rise is a spike of 1). */
static void mel_triangles(int64_t bins, const double *corner, double *out)
{
    for (int64_t i = 0; i < bins; i++) {
        int64_t left = (int64_t)corner[i], center = (int64_t)corner[i + 1], right = (int64_t)corner[i + 2];
        if (center == left) out[center * bins + i] = 1.0;
        for (int64_t j = left; center > left && j <= center; j++)
            out[j * bins + i] = (double)(j - left) / (double)(center - left);
        for (int64_t j = center; j < right; j++) out[j * bins + i] = (double)(right - j) / (double)(right - center);
    }
}

static kiln_status mel_eval(op_ctx *ctx)
{
    int64_t spectrum_bins = ctx->outputs[0]->dims[0], bins = ctx->outputs[0]->dims[1];
    int64_t dft_length = tensor_get_int(ctx->inputs[1], 0);
    double sample_rate, low_hz, high_hz;
    for (int i = 2; i < 5; i++) KILN_TRY(op_require_one_value(ctx->inputs[i], i == 2 ? "sample_rate" : "edge"));
    sample_rate = (double)tensor_get_int(ctx->inputs[2], 0);
    low_hz = tensor_get_double(ctx->inputs[3], 0);
    high_hz = tensor_get_double(ctx->inputs[4], 0);
    if (!(sample_rate > 0) || !(low_hz >= 0 && low_hz <= high_hz))
        return kiln_fail(KILN_ERR_RUNTIME, "sample_rate %g and edges %g..%g Hz do not make a band", sample_rate,
                         low_hz, high_hz);
    double *out = ctx->scratch, *corner = out + spectrum_bins * bins;
    for (int64_t i = 0; i < spectrum_bins * bins; i++) out[i] = 0.0;
    KILN_TRY(mel_corners(bins, dft_length, sample_rate, low_hz, high_hz, spectrum_bins, corner));
    mel_triangles(bins, corner, out);
    table_store(ctx, spectrum_bins * bins);
    return KILN_OK;
}

const op_def ops_window[] = {
    {"", "HannWindow", 17, 18, sizeof(window_params), hann_init, window_shape, window_eval, 0},
    {"", "HammingWindow", 17, 18, sizeof(window_params), hamming_init, window_shape, window_eval, 0},
    {"", "BlackmanWindow", 17, 18, sizeof(window_params), blackman_init, window_shape, window_eval, 0},
    {"", "MelWeightMatrix", 17, 18, 0, mel_init, mel_shape, mel_eval, 0},
    OP_TABLE_END,
};
