/*
 * test_ops_quantrnn.c — quantized operators (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
 * ConvInteger, QLinearConv) and recurrent ones (RNN, GRU, LSTM).
 *
 * The rounding helper is checked on ties and saturation; the operators on hand-worked values, per-axis
 * scales and empty inputs. The fast integer convolution is compared with its reference, and both variants of
 * the recurrence with the spec's equations written out here, on random problems (every cell, direction,
 * layout, sequence lengths, clip and activation), serially and on a thread pool. Bad attributes must fail
 * at load, and bad shapes or lengths cleanly later.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/platform/platform.h"
#include "kernels/qconv.h"
#include "kernels/quant.h"
#include "kernels/rnn.h"
#include "kiln.h"
#include "runtime/pool.h"
#include "testlib.h"

/* 64-byte aligned memory, as the session gives scratch. */
static void *aligned_scratch(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    assert_non_null(p);
    return p;
}

/* ---- rounding and saturation ------------------------------------------------------------------------- */

static void saturate_rounds_half_to_even(void **state)
{
    (void)state;
    const double ties[] = {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000001};
    const int32_t want[] = {0, 2, 2, 0, -2, -2, 0, 3};
    for (size_t i = 0; i < sizeof ties / sizeof ties[0]; i++)
        assert_int_equal(quant_saturate(ties[i], 0, KILN_INT8), want[i]);
    /* the zero point is added after rounding: 2.5 -> 2, + 3 */
    assert_int_equal(quant_saturate(2.5, 3, KILN_UINT8), 5);
    assert_int_equal(quant_saturate(126.5, 0, KILN_INT8), 126);
    assert_int_equal(quant_saturate(127.5, 0, KILN_INT8), 127);
    assert_int_equal(quant_saturate(-128.5, 0, KILN_INT8), -128);
    assert_int_equal(quant_saturate(-1e30, 0, KILN_INT8), -128);
    assert_int_equal(quant_saturate(1e30, 0, KILN_UINT8), 255);
    assert_int_equal(quant_saturate(-0.4, 0, KILN_UINT8), 0);
    assert_int_equal(quant_saturate(-3.0, 2, KILN_UINT8), 0);
    assert_int_equal(quant_saturate(INFINITY, 0, KILN_INT8), 127);
    assert_int_equal(quant_saturate(NAN, 7, KILN_UINT8), 0);
}

/* ---- QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear ----------------------------------------- */

static void quantize_linear_ties_and_saturation(void **state)
{
    (void)state;
    /* x / 0.5: 0.25 -> 0.5 -> 0, 1.25 -> 2.5 -> 2, 1.75 -> 3.5 -> 4, -1.25 -> -2.5 -> -2, then + 10 and clamp */
    const float x[] = {0.25f, 1.25f, 1.75f, -1.25f, 100.0f, -100.0f};
    const float scale = 0.5f;
    const int8_t zero = 10;
    const int8_t want[] = {10, 12, 14, 8, 127, -128};
    test_operand in[] = {{"x", KILN_FLOAT32, 1, {6}, x, false},
                         {"scale", KILN_FLOAT32, 0, {0}, &scale, true},
                         {"zero", KILN_INT8, 0, {0}, &zero, true}};
    test_run r;
    tr_compute(&r, 13, "QuantizeLinear", NULL, 3, in, KILN_INT8, 1);
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    /* without a zero point the output is uint8 around 0 */
    const uint8_t want_u8[] = {0, 2, 4, 0, 200, 0};
    tr_compute(&r, 10, "QuantizeLinear", NULL, 2, in, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, want_u8, sizeof want_u8);
    tr_free(&r);
}

static void per_axis_scales(void **state)
{
    (void)state;
    /* x is [2, 3, 2]; axis 1 has three channels with their own scale and zero point */
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    const float scale[] = {1.0f, 2.0f, 4.0f};
    const uint8_t zero[] = {0, 10, 100};
    test_operand in[] = {{"x", KILN_FLOAT32, 3, {2, 3, 2}, x, false},
                         {"scale", KILN_FLOAT32, 1, {3}, scale, true},
                         {"zero", KILN_UINT8, 1, {3}, zero, true}};
    test_run r;
    tr_compute(&r, 13, "QuantizeLinear", NULL, 3, in, KILN_UINT8, 1);
    const uint8_t want[] = {0, 1, 11, 12, 101, 101, 6, 7, 14, 14, 102, 103}; /* 2.5 -> 2, 4.5 -> 4 */
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);

    /* and back: (q - zero) * scale per channel */
    test_operand back[] = {{"q", KILN_UINT8, 3, {2, 3, 2}, want, false},
                           {"scale", KILN_FLOAT32, 1, {3}, scale, true},
                           {"zero", KILN_UINT8, 1, {3}, zero, true}};
    tr_compute(&r, 13, "DequantizeLinear", NULL, 3, back, KILN_FLOAT32, 1);
    const double expect[] = {0, 1, 2, 4, 4, 4, 6, 7, 8, 8, 8, 12};
    assert_close(r.out[0].data, expect, 12, 0);
    tr_free(&r);

    /* a negative axis names the same dim; a scale that fits no axis is refused at plan time */
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", -2);
    tr_compute(&r, 13, "QuantizeLinear", &attrs, 3, in, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    pbw_free(&attrs);
    tm_attr_int(&attrs, "axis", 2);
    tr_init(&r, 13);
    tr_node_of_operands(&r, "QuantizeLinear", &attrs, 3, in, KILN_UINT8);
    assert_refused(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT, "axis 2 has 2");
    tr_free(&r);
    pbw_free(&attrs);
    /* per-axis scales only exist from opset 13 */
    tr_init(&r, 10);
    tr_node_of_operands(&r, "QuantizeLinear", NULL, 3, in, KILN_UINT8);
    assert_refused(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT, "before opset 13");
    tr_free(&r);
}

/* Large tensors split across threads give what the element formula gives. */
static void threaded_quantize_round_trip(void **state)
{
    (void)state;
    random_seed(5);
    enum { CHANNELS = 3, INNER = 20000, N = CHANNELS * INNER };
    float *x = random_floats(N, -3, 3), scale[CHANNELS] = {0.01f, 0.02f, 0.05f};
    int8_t zero[CHANNELS] = {-5, 0, 7};
    test_operand in[] = {{"x", KILN_FLOAT32, 2, {CHANNELS, INNER}, x, false},
                         {"scale", KILN_FLOAT32, 1, {CHANNELS}, scale, true},
                         {"zero", KILN_INT8, 1, {CHANNELS}, zero, true}};
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", 0);
    test_run r;
    tr_compute(&r, 13, "QuantizeLinear", &attrs, 3, in, KILN_INT8, 3);
    int8_t *q = malloc(N);
    memcpy(q, r.out[0].data, N);
    tr_free(&r);
    for (int64_t i = 0; i < N; i++)
        assert_int_equal(q[i], quant_saturate(x[i] / scale[i / INNER], zero[i / INNER], KILN_INT8));
    test_operand back[] = {{"q", KILN_INT8, 2, {CHANNELS, INNER}, q, false}, in[1], in[2]};
    tr_compute(&r, 13, "DequantizeLinear", &attrs, 3, back, KILN_FLOAT32, 3);
    const float *y = r.out[0].data;
    for (int64_t i = 0; i < N; i++) assert_true(y[i] == (float)(q[i] - zero[i / INNER]) * scale[i / INNER]);
    tr_free(&r);
    pbw_free(&attrs);
    free(x), free(q);
}

static void empty_and_int32_inputs(void **state)
{
    (void)state;
    const float scale = 0.5f;
    const uint8_t zero = 3;
    float none[1] = {0};
    test_operand in[] = {{"x", KILN_FLOAT32, 2, {0, 4}, none, false},
                         {"scale", KILN_FLOAT32, 0, {0}, &scale, true},
                         {"zero", KILN_UINT8, 0, {0}, &zero, true}};
    test_run r;
    tr_compute(&r, 13, "QuantizeLinear", NULL, 3, in, KILN_UINT8, 1);
    assert_shape(&r.out[0], 2, (int64_t[]){0, 4});
    tr_free(&r);
    /* int32 x is quantized too; DequantizeLinear of int32 has no zero point */
    const int32_t xi[] = {-3, 5, 1000};
    test_operand ints[] = {{"x", KILN_INT32, 1, {3}, xi, false},
                           {"scale", KILN_FLOAT32, 0, {0}, &scale, true},
                           {"zero", KILN_UINT8, 0, {0}, &zero, true}};
    tr_compute(&r, 13, "QuantizeLinear", NULL, 3, ints, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){0, 13, 255}), 3);
    tr_free(&r);
    tr_compute(&r, 13, "DequantizeLinear", NULL, 2, ints, KILN_FLOAT32, 1);
    assert_close(r.out[0].data, (double[]){-1.5, 2.5, 500}, 3, 0);
    tr_free(&r);
}

static void dynamic_quantize_linear(void **state)
{
    (void)state;
    /* the spec's example: range [-1, 2] (0 included) maps to scale 3/255 and zero point 85 */
    const float x[] = {0, 2, -3, -2.5f, 1.34f, 0.5f};
    test_run r;
    tr_init(&r, 11);
    tr_node_on_x(&r, "DynamicQuantizeLinear", NULL, 3, NULL, KILN_FLOAT32, 1, (int64_t[]){6}, x);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    float scale = *(float *)r.out[1].data;
    assert_true(fabsf(scale - 5.0f / 255.0f) < 1e-9f);
    assert_int_equal(*(uint8_t *)r.out[2].data, 153);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){153, 255, 0, 26, 221, 179}), 6);
    tr_free(&r);
    /* all zeros: scale 0, and the 0 / 0 of the zero point and of every value saturates to 0 */
    const float zeros[] = {0, 0, 0};
    tr_init(&r, 11);
    tr_node_on_x(&r, "DynamicQuantizeLinear", NULL, 3, NULL, KILN_FLOAT32, 1, (int64_t[]){3}, zeros);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_true(*(float *)r.out[1].data == 0.0f);
    assert_int_equal(*(uint8_t *)r.out[2].data, 0);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){0, 0, 0}), 3);
    tr_free(&r);
}

/* ---- integer convolution ----------------------------------------------------------------------------- */

/* A random 2-D or 3-D window (kernel, stride, dilation, padding) with at least one output per dim. */
static void random_qconv_shape(conv_shape *s)
{
    s->batch = random_int(1, 2);
    s->groups = random_int(1, 3);
    s->in_channels = s->groups * random_int(1, 4);
    s->out_channels = s->groups * random_int(1, 6);
    conv_window *w = &s->win;
    int spatial = (int)random_int(1, 3);
    for (int d = 0; d < CONV_SPATIAL; d++) {
        bool used = d >= CONV_SPATIAL - spatial;
        w->in[d] = used ? random_int(1, spatial == 1 ? 40 : 9) : 1;
        w->kernel[d] = used ? random_int(1, 3) : 1;
        w->stride[d] = used ? random_int(1, 2) : 1;
        w->dilation[d] = used ? random_int(1, 2) : 1;
        w->pad[d] = used ? random_int(0, 2) : 0;
        w->pad_end[d] = used ? random_int(0, 2) : 0;
        int64_t extent = (w->kernel[d] - 1) * w->dilation[d] + 1;
        if (w->in[d] + w->pad[d] + w->pad_end[d] < extent) w->in[d] = extent;
        w->out[d] = (w->in[d] + w->pad[d] + w->pad_end[d] - extent) / w->stride[d] + 1;
    }
}

/* A random value of int8 or uint8's range. */
static int32_t random_quantized(kiln_dtype dtype)
{
    return (int32_t)(dtype == KILN_INT8 ? random_int(-128, 127) : random_int(0, 255));
}

static void *random_int8s(int64_t n, kiln_dtype dtype)
{
    uint8_t *p = malloc((size_t)(n > 0 ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = (uint8_t)random_quantized(dtype);
    return p;
}

static void check_qconv(const conv_shape *s, kiln_dtype x_dtype, kiln_dtype w_dtype, const parallel_runner *runner)
{
    int64_t x_count = s->batch * s->in_channels * conv_volume(s->win.in);
    int64_t w_count = s->out_channels * (s->in_channels / s->groups) * conv_volume(s->win.kernel);
    int64_t y_count = s->batch * s->out_channels * conv_volume(s->win.out);
    int32_t zeros[18];
    for (int64_t m = 0; m < s->out_channels; m++) zeros[m] = random_quantized(w_dtype);
    void *x = random_int8s(x_count, x_dtype), *w = random_int8s(w_count, w_dtype);
    qconv_operands q = {x, x_dtype, random_quantized(x_dtype), w, w_dtype, zeros, random_int(0, 1) == 1};
    int32_t *fast = malloc((size_t)y_count * sizeof *fast), *ref = malloc((size_t)y_count * sizeof *ref);
    void *scratch = aligned_scratch(qconv_int32_scratch_bytes(s));
    qconv_int32_reference(s, &q, ref);
    qconv_int32(s, &q, fast, scratch, runner);
    assert_memory_equal(fast, ref, (size_t)y_count * sizeof *fast);
    /* every block function, whichever qconv_int32 picked */
    qconv_int32_with(qconv_block, s, &q, fast, scratch, runner);
    assert_memory_equal(fast, ref, (size_t)y_count * sizeof *fast);
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx2_fma) {
        qconv_int32_with(qconv_block_avx2, s, &q, fast, scratch, runner);
        assert_memory_equal(fast, ref, (size_t)y_count * sizeof *fast);
    }
#endif
    free(x), free(w), free(fast), free(ref), free(scratch);
}

static void qconv_matches_reference(void **state)
{
    (void)state;
    random_seed(31);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    const kiln_dtype types[] = {KILN_UINT8, KILN_INT8};
    for (int trial = 0; trial < 60; trial++) {
        conv_shape s = {0};
        random_qconv_shape(&s);
        check_qconv(&s, types[trial % 2], types[trial / 2 % 2], trial % 3 ? NULL : &runner);
    }
    pool_free(pool);
}

static void conv_integer_end_to_end(void **state)
{
    (void)state;
    /* 1x1x3x3 input minus zero point 1, 2x2 kernel of ones, pads 1: each output sums the taps inside */
    const uint8_t x[] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
    const uint8_t w[] = {1, 1, 1, 1};
    const uint8_t x_zero = 1;
    pbw attrs = {0};
    tm_attr_ints(&attrs, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    test_operand in[] = {{"x", KILN_UINT8, 4, {1, 1, 3, 3}, x, false},
                         {"w", KILN_UINT8, 4, {1, 1, 2, 2}, w, true},
                         {"x_zero", KILN_UINT8, 0, {0}, &x_zero, true}};
    test_run r;
    tr_compute(&r, 10, "ConvInteger", &attrs, 3, in, KILN_INT32, 2);
    assert_shape(&r.out[0], 4, (int64_t[]){1, 1, 4, 4});
    const int32_t want[] = {1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9};
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    pbw_free(&attrs);
}

static void qlinear_conv_requantizes_per_channel(void **state)
{
    (void)state;
    /* 1x1 kernel over 2 pixels, 2 output channels with scales 0.5 and 0.25, bias 3 and -4 */
    const uint8_t x[] = {10, 20};
    const float x_scale = 1.0f, y_scale = 1.0f, w_scale[] = {0.5f, 0.25f};
    const uint8_t x_zero = 0, y_zero = 5;
    const int8_t w[] = {3, -2}, w_zero[] = {0, 0};
    const int32_t bias[] = {3, -4};
    test_operand in[] = {{"x", KILN_UINT8, 4, {1, 1, 1, 2}, x, false},
                         {"x_scale", KILN_FLOAT32, 0, {0}, &x_scale, true},
                         {"x_zero", KILN_UINT8, 0, {0}, &x_zero, true},
                         {"w", KILN_INT8, 4, {2, 1, 1, 1}, w, true},
                         {"w_scale", KILN_FLOAT32, 1, {2}, w_scale, true},
                         {"w_zero", KILN_INT8, 1, {2}, w_zero, true},
                         {"y_scale", KILN_FLOAT32, 0, {0}, &y_scale, true},
                         {"y_zero", KILN_UINT8, 0, {0}, &y_zero, true},
                         {"bias", KILN_INT32, 1, {2}, bias, true}};
    test_run r;
    tr_compute(&r, 10, "QLinearConv", NULL, 9, in, KILN_UINT8, 1);
    /* (30 + 3) * 0.5 = 16.5 -> 16, (60 + 3) * 0.5 = 31.5 -> 32, each + 5;
     * (-20 - 4) / 4 = -6 and -44 / 4 = -11, + 5, saturate to 0 */
    assert_memory_equal(r.out[0].data, ((uint8_t[]){21, 37, 0, 0}), 4);
    tr_free(&r);
}

/* ---- recurrent layers -------------------------------------------------------------------------------- */

static float *random_or_null(bool present, int64_t n, double lo, double hi)
{
    return present ? random_floats(n, lo, hi) : NULL;
}

static void random_rnn_problem(rnn_problem *p, rnn_cell cell)
{
    memset(p, 0, sizeof *p);
    p->cell = cell;
    p->seq = random_int(0, 5);
    p->batch = random_int(1, 4);
    p->input = random_int(1, 6);
    p->hidden = random_int(1, 7);
    p->directions = (int)random_int(1, 2);
    p->reverse = random_int(0, 1) == 1;
    p->batch_first = random_int(0, 1) == 1;
    p->clip = random_int(0, 1) ? INFINITY : (float)random_uniform(0.5, 2.0);
    p->linear_before_reset = random_int(0, 1) == 1;
    p->input_forget = random_int(0, 1) == 1;
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 3; k++) {
            /* mostly the usual sigmoid/tanh, which have fast variants, sometimes any other */
            int64_t pick = random_int(0, 3);
            rnn_function fn = pick == 0 ? (rnn_function)random_int(0, RNN_FUNCTION_COUNT - 1)
                                        : (k == 0 ? RNN_SIGMOID : RNN_TANH);
            p->act[d][k] = (rnn_activation){fn, (float)random_uniform(0.1, 1.0), (float)random_uniform(0.1, 1.0)};
        }
}

/* ---- the recurrences written out from the ONNX spec, one batch entry and one unit at a time ----------- */

/* f(v) for one value, through the activation under test (its formulas are checked on their own above). */
static double act(const rnn_activation *a, double v, float clip)
{
    float x = (float)(v > clip ? clip : v < -clip ? -clip : v);
    rnn_activate(a, &x, 1, RNN_VARIANT_REFERENCE);
    return x;
}

/* Row `row` of matrix m (rows x cols) times v. */
static double dot_row(const float *m, int64_t row, int64_t cols, const double *v)
{
    double sum = 0;
    for (int64_t k = 0; k < cols; k++) sum += (double)m[row * cols + k] * v[k];
    return sum;
}

typedef struct naive_dir {
    const rnn_problem *p;
    const rnn_tensors *t;
    int d;
    int64_t G;
} naive_dir;

/* Gate g's unit j: x W^T + Wb + h R^T + Rb (without Rb when skip_rb; without h R^T when h is NULL). */
static double gate_input(const naive_dir *n, int64_t g, int64_t j, const double *x, const double *h, bool skip_rb)
{
    const rnn_problem *p = n->p;
    int64_t H = p->hidden, row = g * H + j, GH = n->G * H;
    double v = dot_row(n->t->w + n->d * GH * p->input, row, p->input, x);
    if (h) v += dot_row(n->t->r + n->d * GH * H, row, H, h);
    if (n->t->bias) v += n->t->bias[n->d * 2 * GH + row] + (skip_rb ? 0 : n->t->bias[n->d * 2 * GH + GH + row]);
    return v;
}

/* One step of batch entry b: h (and c) updated in place. */
static void naive_step(const naive_dir *n, const double *x, double *h, double *c)
{
    const rnn_problem *p = n->p;
    const rnn_activation *a = p->act[n->d];
    int64_t H = p->hidden;
    double next[8], cell[8];
    const float *peep = n->t->peephole ? n->t->peephole + n->d * 3 * H : NULL;
    for (int64_t j = 0; j < H; j++) {
        if (p->cell == RNN_CELL_SIMPLE) next[j] = act(&a[0], gate_input(n, 0, j, x, h, false), p->clip);
        if (p->cell == RNN_CELL_GRU) {
            double z = act(&a[0], gate_input(n, 0, j, x, h, false), p->clip);
            double r = act(&a[0], gate_input(n, 1, j, x, h, false), p->clip);
            double cand;
            if (p->linear_before_reset) {
                const float *rh = n->t->r + (n->d * 3 * H + 2 * H + j) * H;
                double rb = n->t->bias ? n->t->bias[n->d * 6 * H + 3 * H + 2 * H + j] : 0;
                double recurrent = 0;
                for (int64_t k = 0; k < H; k++) recurrent += rh[k] * h[k];
                cand = gate_input(n, 2, j, x, NULL, true) + r * (recurrent + rb);
            } else {
                double reset_h[8];
                for (int64_t k = 0; k < H; k++)
                    reset_h[k] = act(&a[0], gate_input(n, 1, k, x, h, false), p->clip) * h[k];
                cand = gate_input(n, 2, j, x, NULL, false) + dot_row(n->t->r + n->d * 3 * H * H, 2 * H + j, H, reset_h);
            }
            next[j] = (1 - z) * act(&a[1], cand, p->clip) + z * h[j];
        }
        if (p->cell == RNN_CELL_LSTM) {
            double i = act(&a[0], gate_input(n, 0, j, x, h, false) + (peep ? peep[j] * c[j] : 0), p->clip);
            double f = act(&a[0], gate_input(n, 2, j, x, h, false) + (peep ? peep[2 * H + j] * c[j] : 0), p->clip);
            if (p->input_forget) f = 1 - i;
            cell[j] = f * c[j] + i * act(&a[1], gate_input(n, 3, j, x, h, false), p->clip);
            double o = act(&a[0], gate_input(n, 1, j, x, h, false) + (peep ? peep[H + j] * cell[j] : 0), p->clip);
            next[j] = o * act(&a[2], cell[j], INFINITY);
        }
    }
    for (int64_t j = 0; j < H; j++) {
        h[j] = next[j];
        if (p->cell == RNN_CELL_LSTM) c[j] = cell[j];
    }
}

static void naive_rnn(const rnn_problem *p, const rnn_tensors *t)
{
    int64_t D = p->directions, B = p->batch, H = p->hidden, S = p->seq;
    memset(t->y, 0, (size_t)(S * D * B * H) * sizeof(float));
    for (int d = 0; d < D; d++)
        for (int64_t b = 0; b < B; b++) {
            naive_dir n = {p, t, d, rnn_gates(p->cell)};
            int64_t state = (p->batch_first ? b * D + d : d * B + b) * H, length = t->lengths ? t->lengths[b] : S;
            bool backwards = D == 2 ? d == 1 : p->reverse;
            double h[8], c[8], x[8];
            for (int64_t j = 0; j < H; j++) {
                h[j] = t->h0 ? t->h0[state + j] : 0;
                c[j] = t->c0 ? t->c0[state + j] : 0;
            }
            for (int64_t s = 0; s < length; s++) {
                int64_t step = backwards ? length - 1 - s : s;
                int64_t row = p->batch_first ? b * S + step : step * B + b;
                for (int64_t k = 0; k < p->input; k++) x[k] = t->x[row * p->input + k];
                naive_step(&n, x, h, c);
                int64_t y = (p->batch_first ? (b * S + step) * D + d : (step * D + d) * B + b) * H;
                for (int64_t j = 0; j < H; j++) t->y[y + j] = (float)h[j];
            }
            for (int64_t j = 0; j < H; j++) {
                t->y_h[state + j] = (float)h[j];
                if (t->y_c) t->y_c[state + j] = (float)c[j];
            }
        }
}

static void check_rnn(const rnn_problem *p, const parallel_runner *runner)
{
    int64_t G = rnn_gates(p->cell), D = p->directions, H = p->hidden;
    int64_t x_count = p->seq * p->batch * p->input, state = D * p->batch * H, y_count = p->seq * state;
    float *x = random_floats(x_count, -1, 1), *w = random_floats(D * G * H * p->input, -0.6, 0.6);
    float *r = random_floats(D * G * H * H, -0.6, 0.6);
    float *bias = random_or_null(random_int(0, 1), D * 2 * G * H, -0.3, 0.3);
    float *peephole = random_or_null(p->cell == RNN_CELL_LSTM && random_int(0, 1), D * 3 * H, -0.3, 0.3);
    float *h0 = random_or_null(random_int(0, 1), state, -1, 1), *c0 = random_or_null(random_int(0, 1), state, -1, 1);
    int32_t lengths[4];
    for (int64_t b = 0; b < p->batch; b++) lengths[b] = (int32_t)random_int(0, p->seq);
    bool use_lengths = random_int(0, 1) == 1;
    /* 0: the fast variant, 1: the reference variant, 2: the spec written out, 3: fast on pre-packed weights */
    enum { FAST, REFERENCE, NAIVE, PREPACKED, VARIANTS };
    float *out[VARIANTS][3];
    void *packed_memory = aligned_scratch(rnn_prepack_bytes((int)D, G * H, p->input, H));
    rnn_prepacked packed;
    rnn_prepack((int)D, G * H, p->input, H, w, r, packed_memory, &packed);
    for (int v = 0; v < VARIANTS; v++) {
        out[v][0] = malloc((size_t)(y_count + 1) * sizeof(float));
        out[v][1] = malloc((size_t)state * sizeof(float));
        out[v][2] = malloc((size_t)state * sizeof(float));
        bool lstm = p->cell == RNN_CELL_LSTM;
        rnn_tensors t = {x, w, r, bias, peephole, h0, lstm ? c0 : NULL, use_lengths ? lengths : NULL,
                         out[v][0], out[v][1], lstm ? out[v][2] : NULL, v == PREPACKED ? &packed : NULL};
        if (v == NAIVE) {
            naive_rnn(p, &t);
            continue;
        }
        void *scratch = aligned_scratch(rnn_f32_scratch_bytes(p, parallel_threads(runner)));
        bool reference = v == REFERENCE;
        rnn_f32(p, &t, reference ? RNN_VARIANT_REFERENCE : RNN_VARIANT_FAST, scratch, reference ? NULL : runner);
        free(scratch);
    }
    free(packed_memory);
    for (int v = 0; v < VARIANTS; v++) {
        if (v == NAIVE) continue;
        assert_true(max_abs_diff(out[v][0], out[2][0], y_count) < 1e-4);
        assert_true(max_abs_diff(out[v][1], out[2][1], state) < 1e-4);
        if (p->cell == RNN_CELL_LSTM) assert_true(max_abs_diff(out[v][2], out[2][2], state) < 1e-4);
    }
    /* a sequence of length 0 keeps its initial state */
    for (int64_t b = 0; use_lengths && b < p->batch && !p->batch_first && D == 1; b++)
        if (lengths[b] == 0)
            for (int64_t j = 0; j < H; j++) assert_true(out[1][1][b * H + j] == (h0 ? h0[b * H + j] : 0.0f));
    for (int v = 0; v < VARIANTS; v++)
        for (int k = 0; k < 3; k++) free(out[v][k]);
    free(x), free(w), free(r), free(bias), free(peephole), free(h0), free(c0);
}

static void rnn_variants_match_the_spec(void **state)
{
    (void)state;
    random_seed(17);
    thread_pool *pool;
    assert_int_equal(pool_create(2, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    for (int trial = 0; trial < 150; trial++) {
        rnn_problem p;
        random_rnn_problem(&p, (rnn_cell)(trial % 3));
        check_rnn(&p, trial % 2 ? &runner : NULL);
    }
    pool_free(pool);
}

/* The batch-1 recurrent product over blocked R^T, reference and AVX-512, against gemm's reference on R. */
static void blocked_recurrent_matvec_matches_gemm(void **state)
{
    (void)state;
    random_seed(23);
    const int64_t sizes[][2] = {{1, 1}, {2, 63}, {7, 64}, {128, 65}, {33, 200}, {128, 512}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int64_t K = sizes[i][0], N = sizes[i][1];
        float *r = random_floats(N * K, -1, 1), *x = random_floats(K, -1, 1), *want = malloc((size_t)N * sizeof(float));
        float *got = malloc((size_t)N * sizeof(float));
        void *memory = aligned_scratch(rnn_prepack_bytes(1, N, 1, K));
        float *w = random_floats(N, -1, 1);
        rnn_prepacked packed;
        rnn_prepack(1, N, 1, K, w, r, memory, &packed);
        gemm_args g = {1, N, K, false, true, x, K, r, K, want, N, 1.0f, 0.0f};
        gemm_f32_reference(&g);
        rnn_matvec_blocked_reference(K, N, x, packed.r_blocks[0], got);
        assert_true(max_abs_diff(got, want, N) < 1e-5);
#if defined(KILN_HAVE_X86_KERNELS)
        if (platform_cpu_features()->avx512f) {
            rnn_matvec_blocked_avx512(K, N, x, packed.r_blocks[0], got);
            assert_true(max_abs_diff(got, want, N) < 1e-5);
        }
#endif
        free(r), free(x), free(want), free(got), free(memory), free(w);
    }
}

static void activations_follow_the_spec(void **state)
{
    (void)state;
    struct {
        rnn_function fn;
        float alpha, beta, x, want;
    } cases[] = {
        {RNN_RELU, 0, 0, -2, 0},           {RNN_AFFINE, 2, 1, 3, 7},
        {RNN_LEAKY_RELU, 0.1f, 0, -2, -0.2f}, {RNN_THRESHOLDED_RELU, 1, 0, 0.5f, 0},
        {RNN_THRESHOLDED_RELU, 1, 0, 2, 2}, {RNN_SCALED_TANH, 2, 0.5f, 1, 2 * 0.46211716f},
        {RNN_HARD_SIGMOID, 0.2f, 0.5f, 1, 0.7f}, {RNN_HARD_SIGMOID, 0.2f, 0.5f, 10, 1},
        {RNN_ELU, 1, 0, -1, -0.63212056f},  {RNN_SOFTSIGN, 0, 0, 3, 0.75f},
        {RNN_SOFTPLUS, 0, 0, 100, 100},     {RNN_SOFTPLUS, 0, 0, 0, 0.69314718f},
        {RNN_SIGMOID, 0, 0, 0, 0.5f},       {RNN_TANH, 0, 0, 20, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int v = 0; v < 2; v++) {
            rnn_activation a = {cases[i].fn, cases[i].alpha, cases[i].beta};
            float x = cases[i].x;
            rnn_activate(&a, &x, 1, (rnn_variant)v);
            if (fabsf(x - cases[i].want) > 1e-5f) fail_msg("case %zu: got %g, want %g", i, x, cases[i].want);
        }
}

/* An RNN-family node on x [seq 2, batch 1, input 3] with constant W and R for `hidden` units (W may be built for
 * `w_hidden` instead, to test mismatches); the status of running it. */
static kiln_status run_recurrent(const char *op, const pbw *attrs, int64_t hidden, int64_t w_hidden,
                                 const int32_t *lengths)
{
    int64_t G = strcmp(op, "RNN") == 0 ? 1 : strcmp(op, "GRU") == 0 ? 3 : 4;
    static float x[6], weights[4 * 8 * 8];
    test_operand in[] = {{"x", KILN_FLOAT32, 3, {2, 1, 3}, x, false},
                         {"w", KILN_FLOAT32, 3, {1, G * w_hidden, 3}, weights, true},
                         {"r", KILN_FLOAT32, 3, {1, G * hidden, hidden}, weights, true},
                         {NULL, KILN_FLOAT32, 0, {0}, NULL, false},
                         {"lengths", KILN_INT32, 1, {1}, lengths, false}};
    test_run r;
    tr_init(&r, 14);
    tr_node_of_operands(&r, op, attrs, lengths ? 5 : 3, in, KILN_FLOAT32);
    kiln_status st = tr_run(&r, 1);
    tr_free(&r);
    return st;
}

static void recurrent_bad_attributes_fail_at_load(void **state)
{
    (void)state;
    const char *const ops[] = {"RNN", "GRU", "LSTM"};
    for (int i = 0; i < 3; i++) {
        pbw attrs = {0};
        tm_attr_int(&attrs, "hidden_size", 4);
        assert_int_equal(run_recurrent(ops[i], &attrs, 4, 4, NULL), KILN_OK);
        /* hidden_size disagreeing with W is a shape error at plan time */
        assert_refused(run_recurrent(ops[i], &attrs, 4, 5, NULL), KILN_ERR_INVALID_ARGUMENT, "W has shape");
        /* sequence lengths beyond the sequence fail the run */
        assert_refused(run_recurrent(ops[i], &attrs, 4, 4, (int32_t[]){3}), KILN_ERR_RUNTIME, "sequence_lens[0] is 3");
        pbw_free(&attrs);

        struct {
            const char *name;
            int kind; /* 0 int, 1 string, 2 float, 3 strings */
            int64_t i;
            const char *s;
            float f;
            const char *words;
        } bad[] = {
            {"hidden_size", 0, -3, NULL, 0, "hidden_size is -3"},
            {"layout", 0, 2, NULL, 0, "layout is 2"},
            {"direction", 1, 0, "sideways", 0, "expected one of"},
            {"clip", 2, 0, NULL, -1.0f, "clip is -1"},
            {"activations", 3, 0, "Swish", 0, "activation 'Swish'"},
            {"activations", 3, 0, "Tanh", 0, "per direction"},
        };
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            if (i == 0 && k == 5) continue; /* RNN takes one function: "Tanh" alone is right */
            pbw a = {0};
            if (bad[k].kind == 0) tm_attr_int(&a, bad[k].name, bad[k].i);
            if (bad[k].kind == 1) tm_attr_string(&a, bad[k].name, bad[k].s);
            if (bad[k].kind == 2) tm_attr_float(&a, bad[k].name, bad[k].f);
            if (bad[k].kind == 3) {
                /* an AttributeProto of type STRINGS (8) with one entry (field 9) */
                pbw one = {0};
                pbw_string_field(&one, 1, bad[k].name);
                pbw_varint_field(&one, 20, 8);
                pbw_string_field(&one, 9, bad[k].s);
                if (strcmp(bad[k].s, "Swish") == 0 && i > 0) pbw_string_field(&one, 9, "Tanh");
                if (strcmp(bad[k].s, "Swish") == 0 && i > 1) pbw_string_field(&one, 9, "Tanh");
                pbw_message_field(&a, 5, &one);
                pbw_free(&one);
            }
            kiln_status st = run_recurrent(ops[i], &a, 4, 4, NULL);
            assert_refused(st, KILN_ERR_MALFORMED, bad[k].words);
            pbw_free(&a);
        }
    }
}

static void quantized_bad_inputs_fail_at_load(void **state)
{
    (void)state;
    const float x[2] = {0}, scale = 1.0f;
    const int16_t zero16 = 0;
    const int8_t zero8 = 0;
    /* a zero point of a type that cannot be a quantized output */
    test_operand q16[] = {{"x", KILN_FLOAT32, 1, {2}, x, false},
                          {"scale", KILN_FLOAT32, 0, {0}, &scale, true},
                          {"zero", KILN_INT16, 0, {0}, &zero16, true}};
    assert_refused(tr_load_status(13, "QuantizeLinear", NULL, 3, q16, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED, "int16");
    /* DequantizeLinear's zero point must have x's type */
    const uint8_t xq[2] = {0};
    test_operand dq[] = {{"x", KILN_UINT8, 1, {2}, xq, false},
                         {"scale", KILN_FLOAT32, 0, {0}, &scale, true},
                         {"zero", KILN_INT8, 0, {0}, &zero8, true}};
    assert_refused(tr_load_status(13, "DequantizeLinear", NULL, 3, dq, KILN_UNDEFINED), KILN_ERR_MALFORMED,
                   "zero point");
    /* ConvInteger with float input, and a bad group */
    test_operand conv_f[] = {{"x", KILN_FLOAT32, 4, {1, 1, 1, 2}, x, false},
                             {"w", KILN_UINT8, 4, {1, 1, 1, 1}, xq, true}};
    assert_refused(tr_load_status(10, "ConvInteger", NULL, 2, conv_f, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED, "float32");
    pbw attrs = {0};
    tm_attr_int(&attrs, "group", 0);
    test_operand conv_u8[] = {{"x", KILN_UINT8, 4, {1, 1, 1, 2}, xq, false},
                              {"w", KILN_UINT8, 4, {1, 1, 1, 1}, xq, true}};
    assert_refused(tr_load_status(10, "ConvInteger", &attrs, 2, conv_u8, KILN_UNDEFINED), KILN_ERR_MALFORMED, "group");
    pbw_free(&attrs);
    /* weights for another channel count are refused at plan time */
    test_operand conv_bad[] = {{"x", KILN_UINT8, 4, {1, 1, 1, 2}, xq, false},
                               {"w", KILN_UINT8, 4, {1, 2, 1, 1}, xq, true}};
    test_run r;
    tr_init(&r, 10);
    tr_node_of_operands(&r, "ConvInteger", NULL, 2, conv_bad, KILN_UNDEFINED);
    assert_refused(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT, "channels");
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(saturate_rounds_half_to_even),
        cmocka_unit_test(quantize_linear_ties_and_saturation),
        cmocka_unit_test(per_axis_scales),
        cmocka_unit_test(threaded_quantize_round_trip),
        cmocka_unit_test(empty_and_int32_inputs),
        cmocka_unit_test(dynamic_quantize_linear),
        cmocka_unit_test(qconv_matches_reference),
        cmocka_unit_test(conv_integer_end_to_end),
        cmocka_unit_test(qlinear_conv_requantizes_per_channel),
        cmocka_unit_test(activations_follow_the_spec),
        cmocka_unit_test(rnn_variants_match_the_spec),
        cmocka_unit_test(blocked_recurrent_matvec_matches_gemm),
        cmocka_unit_test(recurrent_bad_attributes_fail_at_load),
        cmocka_unit_test(quantized_bad_inputs_fail_at_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
