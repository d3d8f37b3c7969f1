/*
 * test_ops_misc2.c — half-precision gaps (bfloat16 rounding, Cast, Max/Min/Mod on float16), the training
 * operators (Adagrad, Momentum, Adam, BatchNormalization and Dropout in training mode), the random operators
 * and TfIdfVectorizer.
 *
 * Deterministic operators are compared with values computed by hand (in double, from the ONNX reference
 * formulas) or with a naive reference written here. Random ones are checked for what can be checked: shapes,
 * dtypes, the exact cases (probabilities 0 and 1, ratio 0), distributions within a few standard errors, and
 * that a seed gives the same values twice. Malformed nodes must be refused at load.
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
#include <unistd.h>

#include <cmocka.h>

#include "core/dtype.h"
#include "core/mem.h"
#include "core/tensor.h"
#include "formats/npy.h"
#include "formats/tensor_file.h"
#include "kernels/cast.h"
#include "testlib.h"

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- bfloat16 and float16 ------------------------------------------------------------------------------ */

static void bfloat16_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80u}, /* 1.0 exact */
        {0x3f808000u, 0x3f80u}, /* tie, even below: stays */
        {0x3f818000u, 0x3f82u}, /* tie, odd below: rounds up to even */
        {0x3f808001u, 0x3f81u}, /* just above the tie */
        {0x3f807fffu, 0x3f80u}, /* just below the tie */
        {0xbf818000u, 0xbf82u}, /* sign does not matter */
        {0x7f7fffffu, 0x7f80u}, /* FLT_MAX rounds past the largest bfloat16: infinity */
        {0x7f800000u, 0x7f80u}, /* +inf */
        {0xff800000u, 0xff80u}, /* -inf */
        {0x80000000u, 0x8000u}, /* -0 */
        {0x00010000u, 0x0001u}, /* a subnormal, exact */
        {0x00018000u, 0x0002u}, /* a subnormal tie, rounds to even */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = dtype_float_to_bfloat16(bits_float(cases[i].in));
        if (got != cases[i].out) fail_msg("0x%08x -> 0x%04x, expected 0x%04x", cases[i].in, got, cases[i].out);
    }
    /* every NaN stays a NaN, including those whose payload sits only in the bits rounding drops */
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++)
        assert_true(isnan(dtype_bfloat16_to_float(dtype_float_to_bfloat16(bits_float(nans[i])))));
    /* widening is exact and round-trips */
    for (uint32_t b = 0; b < 0x10000u; b += 7) {
        float f = dtype_bfloat16_to_float((uint16_t)b);
        assert_int_equal(float_bits(f), b << 16);
        if (!isnan(f)) assert_int_equal(dtype_float_to_bfloat16(f), b);
    }
}

static void cast_to_and_from_bfloat16(void **state)
{
    (void)state;
    const float x[4] = {1.0f, bits_float(0x3f818000u), -INFINITY, NAN};
    test_run r;
    pbw attrs = {0};
    tm_attr_int(&attrs, "to", KILN_BFLOAT16);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Cast", NULL, 1, &attrs, 1, KILN_FLOAT32, 1, (const int64_t[]){4}, x), KILN_OK);
    assert_int_equal(r.out[0].dtype, KILN_BFLOAT16);
    const uint16_t *y = r.out[0].data;
    assert_int_equal(y[0], 0x3f80u);
    assert_int_equal(y[1], 0x3f82u);
    assert_int_equal(y[2], 0xff80u);
    assert_true(isnan(dtype_bfloat16_to_float(y[3])));
    tr_free(&r);
    pbw_free(&attrs);

    const uint16_t b[3] = {0x3f82u, 0xc040u, 0x0001u};
    tm_attr_int(&attrs, "to", KILN_FLOAT32);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Cast", NULL, 1, &attrs, 1, KILN_BFLOAT16, 1, (const int64_t[]){3}, b), KILN_OK);
    assert_close(r.out[0].data, (const double[]){1.015625, -3.0, bits_float(0x00010000u)}, 3, 0);
    tr_free(&r);
    pbw_free(&attrs);
}

/* Max, Min and Mod (fmod=1) on float16, against the same operation in float32 rounded once. */
static void half_max_min_mod(void **state)
{
    (void)state;
    const float a[6] = {-4.5f, 3.25f, NAN, 7.0f, -0.0f, 65504.0f};
    const float bv[6] = {2.0f, -3.5f, 1.0f, NAN, 0.0f, -3.0f};
    uint16_t ha[6], hb[6];
    for (int i = 0; i < 6; i++) {
        ha[i] = dtype_float_to_half(a[i]);
        hb[i] = dtype_float_to_half(bv[i]);
    }
    const char *ops[] = {"Max", "Min", "Mod"};
    for (int op = 0; op < 3; op++) {
        pbw attrs = {0};
        if (op == 2) tm_attr_int(&attrs, "fmod", 1);
        test_operand in[2] = {{"a", KILN_FLOAT16, 1, {6}, ha, false}, {"b", KILN_FLOAT16, 1, {6}, hb, false}};
        test_run r;
        tr_compute(&r, 13, ops[op], &attrs, 2, in, KILN_FLOAT16, 1);
        const uint16_t *y = r.out[0].data;
        for (int i = 0; i < 6; i++) {
            float want = op == 0   ? (a[i] > bv[i] || isnan(a[i]) ? a[i] : bv[i])
                         : op == 1 ? (a[i] < bv[i] || isnan(a[i]) ? a[i] : bv[i])
                                   : fmodf(a[i], bv[i]);
            float got = dtype_half_to_float(y[i]);
            if (isnan(want)) assert_true(isnan(got));
            else assert_true(got == want);
        }
        tr_free(&r);
        pbw_free(&attrs);
    }
    /* Mean has no half kernel: refused at load, not wrong at run time */
    test_operand one = {"a", KILN_FLOAT16, 1, {6}, ha, false};
    assert_refused(tr_load_status(13, "Mean", NULL, 1, &one, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED, "float16");
}

/* ---- optimisers ------------------------------------------------------------------------------------------ */

#define TRAINING_DOMAIN "ai.onnx.preview.training"

/* Runs one optimiser node of the training domain: R = r, T = t, then `n_tensors` float32 [2] inputs named
 * in `names` (X..., G..., states...), giving n_out float32 outputs. */
static kiln_status run_optimizer(test_run *r, const char *op, const pbw *attrs, float rate, int64_t t, int n_tensors,
                                 const char *const *names, const float (*data)[2], int n_out,
                                 const char *const *outputs)
{
    static float rate_value;
    static int64_t t_value;
    rate_value = rate;
    t_value = t;
    tr_init(r, 17);
    tr_input(r, "R", KILN_FLOAT32, 0, NULL, &rate_value);
    tr_input(r, "T", KILN_INT64, 0, NULL, &t_value);
    const char *inputs[16] = {"R", "T"};
    for (int i = 0; i < n_tensors; i++) {
        tr_input(r, names[i], KILN_FLOAT32, 1, (const int64_t[]){2}, data[i]);
        inputs[2 + i] = names[i];
    }
    for (int k = 0; k < n_out; k++) tr_output(r, outputs[k], KILN_FLOAT32);
    pbw node_attrs = {0};
    if (attrs) pbw_append(&node_attrs, attrs);
    pbw_string_field(&node_attrs, 7, TRAINING_DOMAIN); /* NodeProto.domain */
    tm_node(&r->tm, op, inputs, outputs, &node_attrs);
    pbw_free(&node_attrs);
    pbw opset = {0};
    pbw_string_field(&opset, 1, TRAINING_DOMAIN);
    pbw_varint_field(&opset, 2, 1);
    pbw_message_field(&r->tm.model, 8, &opset);
    pbw_free(&opset);
    return tr_run(r, 1);
}

static void adagrad_step(void **state)
{
    (void)state;
    pbw attrs = {0};
    tm_attr_float(&attrs, "norm_coefficient", 0.01f);
    tm_attr_float(&attrs, "epsilon", 1e-6f);
    tm_attr_float(&attrs, "decay_factor", 0.2f);
    const float data[3][2] = {{1, -2}, {0.5f, 0.25f}, {0.1f, 0}};
    test_run r;
    assert_int_equal(run_optimizer(&r, "Adagrad", &attrs, 0.5f, 3, 3, LIST("X", "G", "H"), data, 2,
                                   LIST("X_new", "H_new")),
                     KILN_OK);
    assert_close(r.out[0].data, (const double[]){0.7344123272616367, -2.3124986413102553}, 2, 1e-5);
    assert_close(r.out[1].data, (const double[]){0.3601, 0.0529}, 2, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
}

static void momentum_steps(void **state)
{
    (void)state;
    const float data[3][2] = {{1, 1}, {0.5f, 0.5f}, {0.1f, 0.1f}};
    /* first step (T = 0): the gradient's weight is 1, not beta; later steps use beta */
    const double x_standard[2] = {0.7, 0.9295}, v_new[2] = {0.6, 0.141}, x_nesterov[2] = {0.475, 0.68155};
    for (int mode = 0; mode < 2; mode++)
        for (int step = 0; step < 2; step++) {
            pbw attrs = {0};
            tm_attr_float(&attrs, "alpha", 0.9f);
            tm_attr_float(&attrs, "beta", 0.1f);
            tm_attr_float(&attrs, "norm_coefficient", 0.01f);
            tm_attr_string(&attrs, "mode", mode ? "nesterov" : "standard");
            test_run r;
            assert_int_equal(run_optimizer(&r, "Momentum", &attrs, 0.5f, step * 2, 3, LIST("X", "G", "V"), data, 2,
                                           LIST("X_new", "V_new")),
                             KILN_OK);
            double want_x = mode ? x_nesterov[step] : x_standard[step];
            assert_close(r.out[0].data, (const double[]){want_x, want_x}, 2, 1e-5);
            assert_close(r.out[1].data, (const double[]){v_new[step], v_new[step]}, 2, 1e-5);
            tr_free(&r);
            pbw_free(&attrs);
        }
}

static void adam_step_with_bias_correction(void **state)
{
    (void)state;
    pbw attrs = {0};
    tm_attr_float(&attrs, "alpha", 0.9f);
    tm_attr_float(&attrs, "beta", 0.99f);
    tm_attr_float(&attrs, "epsilon", 1e-3f);
    tm_attr_float(&attrs, "norm_coefficient", 0.01f);
    tm_attr_float(&attrs, "norm_coefficient_post", 0.1f);
    const float data[4][2] = {{1, 1}, {0.5f, 0.5f}, {0.1f, 0.1f}, {0.2f, 0.2f}};
    test_run r;
    assert_int_equal(run_optimizer(&r, "Adam", &attrs, 0.5f, 2, 4, LIST("X", "G", "V", "H"), data, 3,
                                   LIST("X_new", "V_new", "H_new")),
                     KILN_OK);
    assert_close(r.out[0].data, (const double[]){0.795053141812964, 0.795053141812964}, 2, 1e-5);
    assert_close(r.out[1].data, (const double[]){0.141, 0.141}, 2, 1e-5);
    assert_close(r.out[2].data, (const double[]){0.200601, 0.200601}, 2, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
}

static void optimizer_refusals(void **state)
{
    (void)state;
    const float data[3][2] = {{1, 1}, {0.5f, 0.5f}, {0.1f, 0.1f}};
    test_run r;
    pbw attrs = {0};
    tm_attr_float(&attrs, "alpha", 0.9f);
    tm_attr_float(&attrs, "beta", 0.1f);
    tm_attr_float(&attrs, "norm_coefficient", 0.01f);
    /* Momentum's mode is required */
    assert_refused(run_optimizer(&r, "Momentum", &attrs, 0.5f, 0, 3, LIST("X", "G", "V"), data, 2, LIST("X_new", "V_new")),
                   KILN_ERR_MALFORMED, "mode");
    tr_free(&r);
    tm_attr_string(&attrs, "mode", "sideways");
    assert_refused(run_optimizer(&r, "Momentum", &attrs, 0.5f, 0, 3, LIST("X", "G", "V"), data, 2, LIST("X_new", "V_new")),
                   KILN_ERR_MALFORMED, "sideways");
    tr_free(&r);
    pbw_free(&attrs);
    /* inputs that do not make groups of (X, G, H) */
    assert_refused(run_optimizer(&r, "Adagrad", NULL, 0.5f, 0, 2, LIST("X", "G"), data, 1, LIST("X_new")),
                   KILN_ERR_MALFORMED, "groups of 3");
    tr_free(&r);
    /* outputs that do not match the groups */
    assert_refused(run_optimizer(&r, "Adagrad", NULL, 0.5f, 0, 3, LIST("X", "G", "H"), data, 1, LIST("X_new")),
                   KILN_ERR_MALFORMED, "outputs");
    tr_free(&r);
}

/* ---- BatchNormalization in training mode --------------------------------------------------------------- */

static void batchnorm_training_statistics(void **state)
{
    (void)state;
    enum { N = 3, C = 2, S = 5 };
    float x[N * C * S];
    for (int i = 0; i < N * C * S; i++) x[i] = (float)random_uniform(-3, 3) + (i / S % C) * 1000.0f;
    const float scale[C] = {1.5f, -0.5f}, bias[C] = {0.25f, 2}, mean[C] = {0.5f, -1}, var[C] = {2, 0.25f};
    const float epsilon = 1e-2f, momentum = 0.8f;
    double batch_mean[C] = {0}, batch_var[C] = {0};
    for (int c = 0; c < C; c++) {
        for (int n = 0; n < N; n++)
            for (int s = 0; s < S; s++) batch_mean[c] += x[(n * C + c) * S + s];
        batch_mean[c] /= N * S;
        for (int n = 0; n < N; n++)
            for (int s = 0; s < S; s++) {
                double d = x[(n * C + c) * S + s] - batch_mean[c];
                batch_var[c] += d * d;
            }
        batch_var[c] /= N * S;
    }
    test_run r;
    tr_init(&r, 15);
    tr_input(&r, "x", KILN_FLOAT32, 3, (const int64_t[]){N, C, S}, x);
    tm_initializer(&r.tm, "scale", KILN_FLOAT32, 1, (const int64_t[]){C}, scale);
    tm_initializer(&r.tm, "bias", KILN_FLOAT32, 1, (const int64_t[]){C}, bias);
    tm_initializer(&r.tm, "mean", KILN_FLOAT32, 1, (const int64_t[]){C}, mean);
    tm_initializer(&r.tm, "var", KILN_FLOAT32, 1, (const int64_t[]){C}, var);
    tr_output(&r, "y", KILN_FLOAT32);
    tr_output(&r, "running_mean", KILN_FLOAT32);
    tr_output(&r, "running_var", KILN_FLOAT32);
    pbw attrs = {0};
    tm_attr_int(&attrs, "training_mode", 1);
    tm_attr_float(&attrs, "epsilon", epsilon);
    tm_attr_float(&attrs, "momentum", momentum);
    tm_node(&r.tm, "BatchNormalization", LIST("x", "scale", "bias", "mean", "var"),
            LIST("y", "running_mean", "running_var"), &attrs);
    assert_int_equal(tr_run(&r, 2), KILN_OK);
    double want_y[N * C * S], want_mean[C], want_var[C];
    for (int i = 0; i < N * C * S; i++) {
        int c = i / S % C;
        want_y[i] = scale[c] * (x[i] - batch_mean[c]) / sqrt(batch_var[c] + epsilon) + bias[c];
    }
    for (int c = 0; c < C; c++) {
        want_mean[c] = mean[c] * momentum + batch_mean[c] * (1 - momentum);
        want_var[c] = var[c] * momentum + batch_var[c] * (1 - momentum);
    }
    assert_close(r.out[0].data, want_y, N * C * S, 1e-5);
    assert_close(r.out[1].data, want_mean, C, 1e-6);
    assert_close(r.out[2].data, want_var, C, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
}

/* ---- Dropout and the random operators ------------------------------------------------------------------ */

/* Dropout with training_mode given at run time: ratio 0 is the identity, ratio 0.25 keeps about 3/4 scaled by
 * 4/3, the mask says which, and the seed repeats the draw. */
static void dropout_training(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *x = random_floats(N, 0.5, 2);
    uint8_t training = 1;
    for (int pass = 0; pass < 3; pass++) {
        float ratio = pass == 0 ? 0.0f : 0.25f;
        test_run r;
        tr_init(&r, 13);
        tr_input(&r, "x", KILN_FLOAT32, 1, (const int64_t[]){N}, x);
        tr_input(&r, "ratio", KILN_FLOAT32, 0, NULL, &ratio);
        tr_input(&r, "training", KILN_BOOL, 0, NULL, &training);
        tr_output(&r, "y", KILN_FLOAT32);
        tr_output(&r, "mask", KILN_BOOL);
        pbw attrs = {0};
        tm_attr_int(&attrs, "seed", 7);
        tm_node(&r.tm, "Dropout", LIST("x", "ratio", "training"), LIST("y", "mask"), &attrs);
        assert_int_equal(tr_run(&r, 2), KILN_OK);
        const float *y = r.out[0].data;
        const uint8_t *mask = r.out[1].data;
        static uint8_t first_mask[N];
        int kept = 0;
        for (int i = 0; i < N; i++) {
            kept += mask[i];
            float want = mask[i] ? x[i] / (1 - ratio) : 0.0f;
            assert_true(fabsf(y[i] - want) <= 1e-6f * want);
        }
        if (pass == 0) assert_int_equal(kept, N);
        else assert_true(fabs(kept - 0.75 * N) < 4 * sqrt(N * 0.25 * 0.75)); /* within 4 standard errors */
        if (pass == 1) memcpy(first_mask, mask, N);
        if (pass == 2) assert_memory_equal(first_mask, mask, N); /* same seed, same draw */
        tr_free(&r);
        pbw_free(&attrs);
    }
    free(x);
}

static void bernoulli_distribution(void **state)
{
    (void)state;
    enum { N = 30000 };
    double *p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++) p[i] = i % 3 == 0 ? 0.0 : i % 3 == 1 ? 1.0 : 0.3;
    pbw attrs = {0};
    tm_attr_int(&attrs, "dtype", KILN_INT32);
    tm_attr_float(&attrs, "seed", 3.0f);
    int32_t *first = malloc(N * sizeof *first);
    for (int run = 0; run < 2; run++) {
        test_run r;
        tr_init(&r, 15);
        assert_int_equal(tr_run_node(&r, "Bernoulli", NULL, 1, &attrs, 2, KILN_FLOAT64, 1, (const int64_t[]){N}, p),
                         KILN_OK);
        assert_int_equal(r.out[0].dtype, KILN_INT32);
        const int32_t *y = r.out[0].data;
        int ones = 0;
        for (int i = 0; i < N; i++) {
            if (i % 3 == 0) assert_int_equal(y[i], 0);
            else if (i % 3 == 1) assert_int_equal(y[i], 1);
            else ones += y[i];
        }
        assert_true(fabs(ones - 0.3 * N / 3) < 4 * sqrt(N / 3 * 0.3 * 0.7));
        if (run == 0) memcpy(first, y, N * sizeof *first);
        else assert_memory_equal(first, y, N * sizeof *first);
        tr_free(&r);
    }
    pbw_free(&attrs);
    free(first);
    /* a probability outside [0, 1] is invalid data */
    const float bad[2] = {0.5f, 1.5f};
    test_run r;
    tr_init(&r, 15);
    assert_refused(tr_run_node(&r, "Bernoulli", NULL, 1, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){2}, bad),
                   KILN_ERR_RUNTIME, "1.5");
    tr_free(&r);
    free(p);
}

/* Draws 200x200 float64 values from RandomUniform(low 2, high 5) or RandomNormal(mean 2, scale 5) into `y`;
 * a NaN seed means none. */
static void random_draw(bool normal, float seed, double *y)
{
    pbw attrs = {0};
    tm_attr_ints(&attrs, "shape", (const int64_t[]){200, 200}, 2);
    tm_attr_int(&attrs, "dtype", KILN_FLOAT64);
    tm_attr_float(&attrs, normal ? "mean" : "low", 2.0f);
    tm_attr_float(&attrs, normal ? "scale" : "high", 5.0f);
    if (!isnan(seed)) tm_attr_float(&attrs, "seed", seed);
    test_run r;
    tr_init(&r, 13);
    tr_output(&r, "y", KILN_FLOAT64);
    tm_node(&r.tm, normal ? "RandomNormal" : "RandomUniform", NULL, LIST("y"), &attrs);
    assert_int_equal(tr_run(&r, 2), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){200, 200});
    memcpy(y, r.out[0].data, 200 * 200 * sizeof *y);
    tr_free(&r);
    pbw_free(&attrs);
}

/* The distributions' mean and spread, on fixed seeds so that the 4-standard-error bound is checked on the same
 * draws every run (an unseeded draw would fail it once in ~10^4 runs by chance alone); unseeded nodes draw
 * afresh on every run. */
static void random_uniform_and_normal(void **state)
{
    (void)state;
    enum { N = 200 * 200 };
    double *y = malloc(N * sizeof *y), *again = malloc(N * sizeof *again);
    for (int normal = 0; normal < 2; normal++)
        for (int seed = 1; seed <= 4; seed++) {
            random_draw(normal, (float)seed, y);
            double sum = 0, squares = 0;
            for (int i = 0; i < N; i++) {
                if (!normal) assert_true(y[i] >= 2.0 && y[i] < 5.0);
                sum += y[i];
            }
            double mean = sum / N;
            for (int i = 0; i < N; i++) squares += (y[i] - mean) * (y[i] - mean);
            double want_mean = normal ? 2.0 : 3.5, want_sd = normal ? 5.0 : 3.0 / sqrt(12.0);
            assert_true(fabs(mean - want_mean) < 4 * want_sd / sqrt(N));
            assert_true(fabs(sqrt(squares / N) / want_sd - 1) < 0.03);
            random_draw(normal, (float)seed, again);
            assert_memory_equal(y, again, N * sizeof *y);
        }
    random_draw(false, NAN, y);
    random_draw(false, NAN, again);
    int equal = 0;
    for (int i = 0; i < N; i++) equal += y[i] == again[i];
    assert_true(equal < 10);
    free(y);
    free(again);
    pbw attrs = {0};
    tm_attr_float(&attrs, "low", 3.0f);
    tm_attr_float(&attrs, "high", 1.0f);
    tm_attr_ints(&attrs, "shape", (const int64_t[]){2}, 1);
    test_run r;
    tr_init(&r, 13);
    tr_output(&r, "y", KILN_FLOAT32);
    tm_node(&r.tm, "RandomUniform", NULL, LIST("y"), &attrs);
    assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "not a finite range");
    tr_free(&r);
    pbw_free(&attrs);
}

/* ---- TfIdfVectorizer ------------------------------------------------------------------------------------- */

typedef struct tfidf_spec {
    const char *mode;
    int64_t min_gram, max_gram, max_skip;
    const int64_t *counts, *indexes, *pool;
    int n_counts, n_indexes, n_pool;
    const float *weights; /* NULL: none */
} tfidf_spec;

static void tfidf_attrs(pbw *attrs, const tfidf_spec *s)
{
    tm_attr_string(attrs, "mode", s->mode);
    tm_attr_int(attrs, "min_gram_length", s->min_gram);
    tm_attr_int(attrs, "max_gram_length", s->max_gram);
    tm_attr_int(attrs, "max_skip_count", s->max_skip);
    tm_attr_ints(attrs, "ngram_counts", s->counts, s->n_counts);
    tm_attr_ints(attrs, "ngram_indexes", s->indexes, s->n_indexes);
    tm_attr_ints(attrs, "pool_int64s", s->pool, s->n_pool);
    if (s->weights) tm_attr_floats(attrs, "weights", s->weights, s->n_indexes);
}

static kiln_status run_tfidf(test_run *r, const tfidf_spec *s, kiln_dtype dtype, int rank, const int64_t *dims,
                             const void *x)
{
    pbw attrs = {0};
    tfidf_attrs(&attrs, s);
    tr_init(r, 9);
    kiln_status st = tr_run_node(r, "TfIdfVectorizer", NULL, 1, &attrs, 1, dtype, rank, dims, x);
    pbw_free(&attrs);
    return st;
}

/* Pool: unigrams {2, 3}, bigrams {(3, 4), (4, 3)}, trigram {(2, 3, 4)}; output coordinates reversed. */
static const int64_t POOL[] = {2, 3, 3, 4, 4, 3, 2, 3, 4};
static const int64_t COUNTS[] = {0, 2, 6};
static const int64_t INDEXES[] = {4, 3, 2, 1, 0};

static void tfidf_counts_skips_and_modes(void **state)
{
    (void)state;
    /* row 0: 2 3 4 3 4 ; row 1: 4 9 3 9 9 (a bigram (4, 3) only with one skip) */
    const int32_t x[10] = {2, 3, 4, 3, 4, 4, 9, 3, 9, 9};
    const float weights[5] = {0.5f, 2, 3, 4, 5};
    tfidf_spec s = {"TF", 1, 3, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL};
    test_run r;
    assert_int_equal(run_tfidf(&r, &s, KILN_INT32, 2, (const int64_t[]){2, 5}, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 5});
    /* coordinates: 4 = "2", 3 = "3", 2 = (3,4), 1 = (4,3), 0 = (2,3,4) */
    assert_close(r.out[0].data, (const double[]){1, 1, 2, 2, 1, 0, 0, 0, 1, 0}, 10, 0);
    tr_free(&r);

    s.max_skip = 1; /* distance 2 adds (2,4), (3,3), (4,4) in row 0 (none pooled), and (4,3), (9,9) in row 1 */
    assert_int_equal(run_tfidf(&r, &s, KILN_INT32, 2, (const int64_t[]){2, 5}, x), KILN_OK);
    /* the trigram with distance 2 would be (2, 4, 4): not pooled; unigrams still counted once */
    assert_close(r.out[0].data, (const double[]){1, 1, 2, 2, 1, 0, 1, 0, 1, 0}, 10, 0);
    tr_free(&r);

    s.mode = "IDF";
    s.weights = weights;
    assert_int_equal(run_tfidf(&r, &s, KILN_INT32, 2, (const int64_t[]){2, 5}, x), KILN_OK);
    assert_close(r.out[0].data, (const double[]){5, 4, 3, 2, 0.5, 0, 4, 0, 2, 0}, 10, 0);
    tr_free(&r);

    s.mode = "TFIDF";
    assert_int_equal(run_tfidf(&r, &s, KILN_INT32, 2, (const int64_t[]){2, 5}, x), KILN_OK);
    assert_close(r.out[0].data, (const double[]){5, 4, 6, 4, 0.5, 0, 4, 0, 2, 0}, 10, 0);
    tr_free(&r);
}

static void tfidf_edges(void **state)
{
    (void)state;
    tfidf_spec s = {"TF", 2, 2, 3, COUNTS, INDEXES, POOL, 3, 5, 9, NULL};
    test_run r;
    /* 1-D input, int64 tokens, only bigrams */
    const int64_t x[4] = {3, 4, 3, 7};
    assert_int_equal(run_tfidf(&r, &s, KILN_INT64, 1, (const int64_t[]){4}, x), KILN_OK);
    assert_shape(&r.out[0], 1, (const int64_t[]){5});
    assert_close(r.out[0].data, (const double[]){0, 1, 1, 0, 0}, 5, 0);
    tr_free(&r);
    /* empty rows and an empty batch */
    assert_int_equal(run_tfidf(&r, &s, KILN_INT64, 2, (const int64_t[]){2, 0}, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 5});
    assert_close(r.out[0].data, (const double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10, 0);
    tr_free(&r);
    assert_int_equal(run_tfidf(&r, &s, KILN_INT64, 2, (const int64_t[]){0, 4}, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){0, 5});
    tr_free(&r);
    /* rank 3 is not a batch of sequences */
    assert_refused(run_tfidf(&r, &s, KILN_INT64, 3, (const int64_t[]){1, 2, 2}, x), KILN_ERR_INVALID_ARGUMENT, "rank 3");
    tr_free(&r);
}

static void tfidf_refusals(void **state)
{
    (void)state;
    const int64_t x[2] = {1, 2};
    const int64_t dims[1] = {2};
    const struct {
        tfidf_spec s;
        kiln_status status;
        const char *words;
    } cases[] = {
        {{"TFX", 1, 2, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "TFX"},
        {{"TF", 3, 2, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "gram lengths"},
        {{"TF", 0, 2, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "gram lengths"},
        {{"TF", 1, 2, -1, COUNTS, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "max_skip_count"},
        {{"TF", 1, 2, 0, COUNTS, INDEXES, POOL, 3, 4, 9, NULL}, KILN_ERR_MALFORMED, "ngram_indexes has 4"},
        {{"TF", 1, 2, 0, (const int64_t[]){0, 2, 12}, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "ngram_counts"},
        {{"TF", 1, 2, 0, (const int64_t[]){0, 2}, INDEXES, POOL, 2, 5, 9, NULL}, KILN_ERR_MALFORMED, "multiple of"},
        {{"TF", 1, 2, 0, COUNTS, (const int64_t[]){0, 1, -2, 3, 4}, POOL, 3, 5, 9, NULL}, KILN_ERR_MALFORMED, "-2"},
        {{"TF", 1, 100, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL}, KILN_ERR_UNSUPPORTED, "max_gram_length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_run r;
        assert_refused(run_tfidf(&r, &cases[i].s, KILN_INT64, 1, dims, x), cases[i].status, cases[i].words);
        tr_free(&r);
    }
    /* a float input is not a sequence of tokens */
    const float f[2] = {1, 2};
    test_run r;
    tfidf_spec s = {"TF", 1, 2, 0, COUNTS, INDEXES, POOL, 3, 5, 9, NULL};
    assert_refused(run_tfidf(&r, &s, KILN_FLOAT32, 1, dims, f), KILN_ERR_UNSUPPORTED, "float32");
    tr_free(&r);
}


/* String tokens (pool_strings) count like integer ones; a node must name exactly one pool. */
static void tfidf_string_tokens(void **state)
{
    (void)state;
    const char *words[5] = {"a", "b", "c", "a", "b"};
    pbw attrs = {0}, a = {0};
    tm_attr_string(&attrs, "mode", "TF");
    tm_attr_int(&attrs, "min_gram_length", 1);
    tm_attr_int(&attrs, "max_gram_length", 2);
    tm_attr_int(&attrs, "max_skip_count", 0);
    tm_attr_ints(&attrs, "ngram_counts", (const int64_t[]){0, 2}, 2);
    tm_attr_ints(&attrs, "ngram_indexes", (const int64_t[]){2, 0, 1}, 3);
    pbw_string_field(&a, 1, "pool_strings");
    pbw_varint_field(&a, 20, 8); /* STRINGS */
    const char *pool[] = {"a", "c", "a", "b"}; /* unigrams a, c; bigram (a, b) */
    for (int i = 0; i < 4; i++) pbw_string_field(&a, 9, pool[i]);
    pbw_message_field(&attrs, 5, &a);
    pbw_free(&a);
    test_run r;
    tr_init(&r, 9);
    assert_int_equal(tr_run_node(&r, "TfIdfVectorizer", NULL, 1, &attrs, 1, KILN_STRING, 2, (const int64_t[]){1, 5}, words),
                     KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){1, 3});
    assert_close(r.out[0].data, (const double[]){1, 2, 2}, 3, 0);
    tr_free(&r);
    /* both pools */
    tm_attr_ints(&attrs, "pool_int64s", (const int64_t[]){1, 2, 3, 4}, 4);
    tr_init(&r, 9);
    assert_refused(tr_run_node(&r, "TfIdfVectorizer", NULL, 1, &attrs, 1, KILN_STRING, 1, (const int64_t[]){5}, words),
                   KILN_ERR_MALFORMED, "exactly one");
    tr_free(&r);
    pbw_free(&attrs);
}

/* ---- strings ------------------------------------------------------------------------------------------------ */

static void numbers_as_text_like_numpy(void **state)
{
    (void)state;
    /* what str(np.float32(v)) prints */
    static const struct {
        float v;
        const char *text;
    } floats[] = {
        {0.5f, "0.5"},           {1.0f, "1.0"},     {1e-5f, "1e-05"},     {1e8f, "100000000.0"},
        {1.5e20f, "1.5e+20"},    {0.1f, "0.1"},     {-2.25f, "-2.25"},    {1e16f, "1e+16"},
        {1e-4f, "1e-04"},        {123456.7f, "123456.7"}, {3.4028235e38f, "3.4028235e+38"},
        {1.4e-45f, "1e-45"},     {16777216.0f, "16777216.0"}, {-0.0f, "-0.0"}, {-INFINITY, "-inf"},
        {NAN, "nan"},
    };
    char text[CAST_TEXT_MAX];
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        cast_format_element(&floats[i].v, KILN_FLOAT32, 0, text);
        assert_string_equal(text, floats[i].text);
    }
    const double doubles[3] = {1.0 / 3, 0.1, 1e22};
    const char *double_texts[3] = {"0.3333333333333333", "0.1", "1e+22"};
    for (int i = 0; i < 3; i++) {
        cast_format_element(doubles, KILN_FLOAT64, i, text);
        assert_string_equal(text, double_texts[i]);
    }
    const uint16_t tenth = dtype_float_to_half(0.1f); /* shortest for the half, not for its float value */
    cast_format_element(&tenth, KILN_FLOAT16, 0, text);
    assert_string_equal(text, "0.1");
    const int64_t lowest = INT64_MIN;
    cast_format_element(&lowest, KILN_INT64, 0, text);
    assert_string_equal(text, "-9223372036854775808");
    const uint64_t highest = UINT64_MAX;
    cast_format_element(&highest, KILN_UINT64, 0, text);
    assert_string_equal(text, "18446744073709551615");

    float f[6];
    assert_true(cast_parse_element("INF", f, KILN_FLOAT32, 0) && isinf(f[0]) && f[0] > 0);
    assert_true(cast_parse_element("+inf", f, KILN_FLOAT32, 1) && isinf(f[1]) && f[1] > 0);
    assert_true(cast_parse_element("-INF", f, KILN_FLOAT32, 2) && isinf(f[2]) && f[2] < 0);
    assert_true(cast_parse_element("NaN", f, KILN_FLOAT32, 3) && isnan(f[3]));
    assert_true(cast_parse_element("1E8", f, KILN_FLOAT32, 4) && f[4] == 1e8f);
    assert_false(cast_parse_element("Hello", f, KILN_FLOAT32, 5));
    assert_false(cast_parse_element("", f, KILN_FLOAT32, 5));
    int64_t i64;
    assert_true(cast_parse_element("9007199254740993", &i64, KILN_INT64, 0) && i64 == 9007199254740993LL);
    int32_t i32;
    assert_true(cast_parse_element("-2.7", &i32, KILN_INT32, 0) && i32 == -2);
}

/* Runs StringNormalizer on graph input "x" ([C] strings) with the given attributes. */
static kiln_status run_normalizer(test_run *r, const pbw *attrs, int rank, const int64_t *dims, const char *const *x)
{
    tr_init(r, 10);
    return tr_run_node(r, "StringNormalizer", NULL, 1, attrs, 1, KILN_STRING, rank, dims, x);
}

static void assert_strings(const kiln_tensor *t, const char *const *want, int64_t n)
{
    assert_int_equal(t->dtype, KILN_STRING);
    assert_int_equal(tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++) assert_string_equal(((const char *const *)t->data)[i], want[i]);
}

static void string_normalizer(void **state)
{
    (void)state;
    const char *words[5] = {"Monday", "tuesday", "MONDAY", "Wednesday", "monday"};
    pbw attrs = {0};
    tm_attr_string(&attrs, "case_change_action", "UPPER");
    pbw stop = {0}, a = {0};
    /* stopwords: a list of strings (AttributeProto.strings, field 9; type STRINGS = 8) */
    pbw_string_field(&a, 1, "stopwords");
    pbw_varint_field(&a, 20, 8);
    pbw_string_field(&a, 9, "monday");
    pbw_string_field(&a, 9, "friday");
    pbw_message_field(&stop, 5, &a);
    pbw_free(&a);
    pbw_append(&attrs, &stop);
    test_run r;
    /* case-insensitive by default: every Monday goes */
    assert_int_equal(run_normalizer(&r, &attrs, 2, (const int64_t[]){1, 5}, words), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){1, 2});
    assert_strings(&r.out[0], LIST("TUESDAY", "WEDNESDAY"), 2);
    tr_free(&r);
    /* case-sensitive: only the lower-case one */
    pbw sensitive = {0};
    pbw_append(&sensitive, &attrs);
    tm_attr_int(&sensitive, "is_case_sensitive", 1);
    assert_int_equal(run_normalizer(&r, &sensitive, 1, (const int64_t[]){5}, words), KILN_OK);
    assert_strings(&r.out[0], LIST("MONDAY", "TUESDAY", "MONDAY", "WEDNESDAY"), 4);
    tr_free(&r);
    /* all removed: one empty string */
    assert_int_equal(run_normalizer(&r, &attrs, 1, (const int64_t[]){1}, words), KILN_OK);
    assert_shape(&r.out[0], 1, (const int64_t[]){1});
    assert_strings(&r.out[0], LIST(""), 1);
    tr_free(&r);
    /* [2, C] is not [1, C] */
    assert_refused(run_normalizer(&r, &attrs, 2, (const int64_t[]){2, 2}, words), KILN_ERR_INVALID_ARGUMENT, "[1, C]");
    tr_free(&r);
    pbw_free(&sensitive);
    /* locales other than C/English and unknown actions are refused at load */
    pbw bad = {0};
    tm_attr_string(&bad, "locale", "tr_TR.UTF-8");
    assert_refused(run_normalizer(&r, &bad, 1, (const int64_t[]){5}, words), KILN_ERR_UNSUPPORTED, "tr_TR");
    tr_free(&r);
    pbw_free(&bad);
    tm_attr_string(&bad, "case_change_action", "TITLE");
    assert_refused(run_normalizer(&r, &bad, 1, (const int64_t[]){5}, words), KILN_ERR_MALFORMED, "TITLE");
    tr_free(&r);
    pbw_free(&bad);
    pbw_free(&stop);
    pbw_free(&attrs);
}

/* String tensors in files: a TensorProto round trip, and .npy as NumPy's UTF-32 '<U' arrays (a malformed
 * UTF-8 byte becomes U+FFFD). */
static void string_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-test-XXXXXX", path[512];
    assert_non_null(mkdtemp(dir));
    const char *words[3] = {"h\xc3\xa9", "", "a\xffz"};
    kiln_tensor t = {.dtype = KILN_STRING, .rank = 2, .dims = {1, 3}, .data = (void *)words};
    snprintf(path, sizeof path, "%s/s.pb", dir);
    assert_int_equal(tensor_file_write_pb(path, &t, "s"), KILN_OK);
    kiln_tensor back;
    assert_int_equal(tensor_file_read(path, &back), KILN_OK);
    assert_shape(&back, 2, (const int64_t[]){1, 3});
    assert_strings(&back, words, 3);
    tensor_file_free(&back);
    remove(path);

    snprintf(path, sizeof path, "%s/s.npy", dir);
    assert_int_equal(npy_write_file(path, &t), KILN_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char bytes[256];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    remove(path);
    rmdir(dir);
    size_t header = 10 + (bytes[8] | (size_t)bytes[9] << 8);
    assert_int_equal(header % 64, 0);
    assert_int_equal(n, header + 3 * 3 * 4); /* three strings of width 3, four bytes a code point */
    assert_non_null(strstr((const char *)bytes + 10, "'descr': '<U3'"));
    const uint32_t want[9] = {'h', 0xe9, 0, 0, 0, 0, 'a', 0xfffd, 'z'};
    for (int i = 0; i < 9; i++) {
        const unsigned char *u = bytes + header + 4 * i;
        assert_int_equal(u[0] | u[1] << 8 | u[2] << 16 | (uint32_t)u[3] << 24, want[i]);
    }
}

/* A session's output strings: new contents re-plan a data-dependent node, and a steady run of Cast to
 * strings allocates nothing once the string region has held a run. */
static void session_strings(void **state)
{
    (void)state;
    const char *first[3] = {"a", "b", "a"}, *second[3] = {"c", "a", "d"};
    const char *bound[3];
    memcpy(bound, first, sizeof bound);
    pbw attrs = {0}, a = {0};
    pbw_string_field(&a, 1, "stopwords");
    pbw_varint_field(&a, 20, 8);
    pbw_string_field(&a, 9, "a");
    pbw_message_field(&attrs, 5, &a);
    pbw_free(&a);
    test_run r;
    assert_int_equal(run_normalizer(&r, &attrs, 1, (const int64_t[]){3}, bound), KILN_OK);
    assert_strings(&r.out[0], LIST("b"), 1);
    memcpy(bound, second, sizeof bound); /* same pointer array, other strings */
    assert_int_equal(kiln_session_run(r.session), KILN_OK);
    kiln_tensor out;
    assert_int_equal(kiln_session_output(r.session, 0, &out), KILN_OK);
    assert_strings(&out, LIST("c", "d"), 2);
    tr_free(&r);
    pbw_free(&attrs);

    enum { N = 5000 }; /* more strings than one region chunk holds: the first reset merges the chunks */
    float *x = random_floats(N, -1e6, 1e6);
    tm_attr_int(&attrs, "to", KILN_STRING);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Cast", NULL, 1, &attrs, 1, KILN_FLOAT32, 1, (const int64_t[]){N}, x), KILN_OK);
    assert_int_equal(kiln_session_run(r.session), KILN_OK);
    size_t before = mem_allocation_count();
    for (int run = 0; run < 3; run++) assert_int_equal(kiln_session_run(r.session), KILN_OK);
    assert_int_equal(mem_allocation_count(), before);
    assert_int_equal(kiln_session_output(r.session, 0, &out), KILN_OK);
    for (int i = 0; i < N; i++) {
        float back = strtof(((const char *const *)out.data)[i], NULL);
        assert_true(back == x[i]); /* the shortest text still reads back exactly */
    }
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bfloat16_rounds_to_nearest_even),
        cmocka_unit_test(cast_to_and_from_bfloat16),
        cmocka_unit_test(half_max_min_mod),
        cmocka_unit_test(adagrad_step),
        cmocka_unit_test(momentum_steps),
        cmocka_unit_test(adam_step_with_bias_correction),
        cmocka_unit_test(optimizer_refusals),
        cmocka_unit_test(batchnorm_training_statistics),
        cmocka_unit_test(dropout_training),
        cmocka_unit_test(bernoulli_distribution),
        cmocka_unit_test(random_uniform_and_normal),
        cmocka_unit_test(tfidf_counts_skips_and_modes),
        cmocka_unit_test(tfidf_edges),
        cmocka_unit_test(tfidf_refusals),
        cmocka_unit_test(tfidf_string_tokens),
        cmocka_unit_test(numbers_as_text_like_numpy),
        cmocka_unit_test(string_normalizer),
        cmocka_unit_test(string_files),
        cmocka_unit_test(session_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
