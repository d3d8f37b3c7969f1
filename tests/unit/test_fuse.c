/*
 * test_fuse.c — graph/fuse.c's rewrites before type inference (the Conv activation fusion is tested with the
 * convolutions, in test_ops_conv.c).
 *
 * Transposes: two in a row become one Transpose with the composed permutation, or nothing when they cancel;
 * the results must equal the permutation computed here index by index, also when the inner Transpose's
 * output is a graph output too (it must then stay).
 *
 * HardSigmoid and HardSwish, in the three ways exporters write them, fuse into the Conv before them and give
 * the unfused graph's results.
 *
 * BatchNormalization folded into the Conv or Gemm before it:
 * Each case runs twice: as written, where the pass must fold (no BatchNormalization left, and a Relu after
 * it then fuses into the Conv), and with the linear node's output also declared as a graph output, which
 * the pass must leave alone so that onnx's BatchNormalization runs. The two must agree within float32
 * rounding, on every weight layout (Conv with and without bias, Gemm with transB 0 and 1, with and without
 * C). Near-misses stay unfolded: training mode, and a scale that is an input rather than a constant.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"
#include "testlib.h"

enum { CHANNELS = 5 };

/* The normalisation's four vectors, var kept positive. */
typedef struct norm_params {
    float scale[CHANNELS], beta[CHANNELS], mean[CHANNELS], var[CHANNELS];
} norm_params;

static void add_batch_norm(test_run *r, const norm_params *n, const char *in, const char *out, bool training)
{
    int64_t c = CHANNELS;
    tm_initializer(&r->tm, "scale", KILN_FLOAT32, 1, &c, n->scale);
    tm_initializer(&r->tm, "beta", KILN_FLOAT32, 1, &c, n->beta);
    tm_initializer(&r->tm, "mean", KILN_FLOAT32, 1, &c, n->mean);
    tm_initializer(&r->tm, "var", KILN_FLOAT32, 1, &c, n->var);
    pbw attrs = {0};
    tm_attr_float(&attrs, "epsilon", 1e-3f);
    if (training) tm_attr_int(&attrs, "training_mode", 1);
    tm_node(&r->tm, "BatchNormalization", LIST(in, "scale", "beta", "mean", "var"), LIST(out), &attrs);
    pbw_free(&attrs);
}

/* x [2, 3, 6, 7] -> Conv 3x3 (5 filters, bias or not) -> BatchNormalization -> Relu -> y */
static void run_conv(test_run *r, bool bias, bool show_conv, const norm_params *n, const float *x, const float *w,
                     const float *b)
{
    tr_init(r, 15);
    int64_t xd[4] = {2, 3, 6, 7}, wd[4] = {CHANNELS, 3, 3, 3}, bd = CHANNELS;
    tr_input(r, "x", KILN_FLOAT32, 4, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_conv) tr_output(r, "conv", KILN_FLOAT32);
    tm_initializer(&r->tm, "w", KILN_FLOAT32, 4, wd, w);
    if (bias) tm_initializer(&r->tm, "b", KILN_FLOAT32, 1, &bd, b);
    tm_node(&r->tm, "Conv", bias ? LIST("x", "w", "b") : LIST("x", "w"), LIST("conv"), NULL);
    add_batch_norm(r, n, "conv", "normalised", false);
    tm_node(&r->tm, "Relu", LIST("normalised"), LIST("y"), NULL);
    assert_int_equal(tr_run(r, 1), KILN_OK);
}

/* x [4, 6] -> Gemm (to 5 features; b as [6, 5] or, transposed, [5, 6]; C or not) -> BatchNormalization -> y */
static void run_gemm(test_run *r, bool trans_b, bool with_c, bool show_gemm, const norm_params *n, const float *x,
                     const float *w, const float *c)
{
    tr_init(r, 15);
    int64_t xd[2] = {4, 6}, wd[2] = {trans_b ? CHANNELS : 6, trans_b ? 6 : CHANNELS}, cd = CHANNELS;
    tr_input(r, "x", KILN_FLOAT32, 2, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_gemm) tr_output(r, "linear", KILN_FLOAT32);
    tm_initializer(&r->tm, "w", KILN_FLOAT32, 2, wd, w);
    if (with_c) tm_initializer(&r->tm, "c", KILN_FLOAT32, 1, &cd, c);
    pbw attrs = {0};
    tm_attr_int(&attrs, "transB", trans_b);
    tm_attr_float(&attrs, "alpha", 0.5f);
    tm_node(&r->tm, "Gemm", with_c ? LIST("x", "w", "c") : LIST("x", "w"), LIST("linear"), &attrs);
    pbw_free(&attrs);
    add_batch_norm(r, n, "linear", "y", false);
    assert_int_equal(tr_run(r, 1), KILN_OK);
}

static norm_params random_norm(void)
{
    norm_params n;
    for (int c = 0; c < CHANNELS; c++) {
        n.scale[c] = (float)random_int(-20, 20) / 8.0f, n.beta[c] = (float)random_int(-20, 20) / 8.0f;
        n.mean[c] = (float)random_int(-20, 20) / 8.0f, n.var[c] = (float)random_int(1, 40) / 8.0f;
    }
    return n;
}

static void conv_batch_norm_is_folded_and_matches(void **state)
{
    (void)state;
    random_seed(21);
    norm_params n = random_norm();
    float *x = random_floats(2 * 3 * 6 * 7, -2, 2), *w = random_floats(CHANNELS * 27, -1, 1);
    float *b = random_floats(CHANNELS, -1, 1);
    for (int bias = 0; bias < 2; bias++) {
        test_run folded, plain;
        run_conv(&folded, bias, false, &n, x, w, b);
        run_conv(&plain, bias, true, &n, x, w, b);
        assert_false(tr_model_has_op(folded.model, "BatchNormalization"));
        assert_true(tr_model_has_op(folded.model, "FusedConv")); /* the Relu joined the folded Conv */
        assert_true(tr_model_has_op(plain.model, "BatchNormalization"));
        assert_true(max_abs_diff(folded.out[0].data, plain.out[0].data, 2 * CHANNELS * 4 * 5) < 1e-5);
        tr_free(&folded);
        tr_free(&plain);
    }
    free(x), free(w), free(b);
}

static void gemm_batch_norm_is_folded_and_matches(void **state)
{
    (void)state;
    random_seed(22);
    norm_params n = random_norm();
    float *x = random_floats(4 * 6, -2, 2), *w = random_floats(6 * CHANNELS, -1, 1), *c = random_floats(CHANNELS, -1, 1);
    for (int variant = 0; variant < 4; variant++) {
        bool trans_b = variant & 1, with_c = variant & 2;
        test_run folded, plain;
        run_gemm(&folded, trans_b, with_c, false, &n, x, w, c);
        run_gemm(&plain, trans_b, with_c, true, &n, x, w, c);
        assert_false(tr_model_has_op(folded.model, "BatchNormalization"));
        assert_true(tr_model_has_op(plain.model, "BatchNormalization"));
        assert_true(max_abs_diff(folded.out[0].data, plain.out[0].data, 4 * CHANNELS) < 1e-5);
        tr_free(&folded);
        tr_free(&plain);
    }
    free(x), free(w), free(c);
}

static void near_misses_stay_unfolded(void **state)
{
    (void)state;
    norm_params n = random_norm();
    float x[2 * 3 * 6 * 7] = {0}, w[CHANNELS * 27] = {0};
    /* training mode: onnx computes batch statistics, nothing to fold */
    test_run r;
    tr_init(&r, 15);
    int64_t xd[4] = {2, 3, 6, 7}, wd[4] = {CHANNELS, 3, 3, 3}, c = CHANNELS;
    tr_input(&r, "x", KILN_FLOAT32, 4, xd, x);
    tr_output(&r, "y", KILN_FLOAT32);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, wd, w);
    tm_node(&r.tm, "Conv", LIST("x", "w"), LIST("conv"), NULL);
    add_batch_norm(&r, &n, "conv", "y", true);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_true(tr_model_has_op(r.model, "BatchNormalization"));
    tr_free(&r);
    /* a scale that arrives at run time */
    tr_init(&r, 15);
    tr_input(&r, "x", KILN_FLOAT32, 4, xd, x);
    tr_input(&r, "scale", KILN_FLOAT32, 1, &c, n.scale);
    tr_output(&r, "y", KILN_FLOAT32);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, wd, w);
    tm_initializer(&r.tm, "beta", KILN_FLOAT32, 1, &c, n.beta);
    tm_initializer(&r.tm, "mean", KILN_FLOAT32, 1, &c, n.mean);
    tm_initializer(&r.tm, "var", KILN_FLOAT32, 1, &c, n.var);
    tm_node(&r.tm, "Conv", LIST("x", "w"), LIST("conv"), NULL);
    tm_node(&r.tm, "BatchNormalization", LIST("conv", "scale", "beta", "mean", "var"), LIST("y"), NULL);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_true(tr_model_has_op(r.model, "BatchNormalization"));
    tr_free(&r);
}

/* x [2, 3, 4] -> Transpose(p) -> Transpose(q) -> y; `show_inner` also declares the first result an output. */
static void run_transposes(test_run *r, const int64_t *p, const int64_t *q, bool show_inner, const float *x)
{
    tr_init(r, 13);
    int64_t xd[3] = {2, 3, 4};
    tr_input(r, "x", KILN_FLOAT32, 3, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_inner) tr_output(r, "inner", KILN_FLOAT32);
    pbw first = {0}, second = {0};
    tm_attr_ints(&first, "perm", p, 3);
    tm_attr_ints(&second, "perm", q, 3);
    tm_node(&r->tm, "Transpose", LIST("x"), LIST("inner"), &first);
    tm_node(&r->tm, "Transpose", LIST("inner"), LIST("y"), &second);
    pbw_free(&first), pbw_free(&second);
    assert_int_equal(tr_run(r, 1), KILN_OK);
}

static void transpose_pairs_compose(void **state)
{
    (void)state;
    static const int64_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int64_t xd[3] = {2, 3, 4};
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++)
            for (int show = 0; show < 2; show++) {
                const int64_t *p = perms[a], *q = perms[b];
                test_run r;
                run_transposes(&r, p, q, show, x);
                /* y[i0, i1, i2] = x at the index whose axis p[q[k]] is i_k */
                int64_t yd[3] = {xd[p[q[0]]], xd[p[q[1]]], xd[p[q[2]]]};
                assert_shape(&r.out[0], 3, yd);
                const float *y = r.out[0].data;
                for (int64_t i0 = 0; i0 < yd[0]; i0++)
                    for (int64_t i1 = 0; i1 < yd[1]; i1++)
                        for (int64_t i2 = 0; i2 < yd[2]; i2++) {
                            int64_t at[3], out[3] = {i0, i1, i2};
                            for (int k = 0; k < 3; k++) at[p[q[k]]] = out[k];
                            assert_true(y[(i0 * yd[1] + i1) * yd[2] + i2] == x[(at[0] * 3 + at[1]) * 4 + at[2]]);
                        }
                bool cancel = p[q[0]] == 0 && p[q[1]] == 1 && p[q[2]] == 2, p_moves = a != 0;
                /* the pair leaves one Transpose, none when it cancels; a shown inner one stays unless it moves
                 * nothing (an Identity then) */
                assert_int_equal(tr_model_has_op(r.model, "Transpose"), !cancel || (show && p_moves));
                tr_free(&r);
            }
}

/* x [1, 3, 9, 10] -> Conv 3x3 (pad 1) -> a hard activation as exporters write it -> y; spelling 0: HardSigmoid
 * (alpha 0.3, beta 0.4), 1: HardSwish (opset 14), 2: Mul(c, HardSigmoid(c)) (PaddlePaddle's hard swish). */
static void run_hard_activation(test_run *r, int spelling, bool show_conv, const float *x, const float *w)
{
    tr_init(r, 14);
    int64_t xd[4] = {1, 3, 9, 10}, wd[4] = {CHANNELS, 3, 3, 3};
    tr_input(r, "x", KILN_FLOAT32, 4, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_conv) tr_output(r, "c", KILN_FLOAT32);
    tm_initializer(&r->tm, "w", KILN_FLOAT32, 4, wd, w);
    pbw pads = {0}, hard = {0};
    tm_attr_ints(&pads, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    tm_node(&r->tm, "Conv", LIST("x", "w"), LIST("c"), &pads);
    if (spelling == 1) {
        tm_node(&r->tm, "HardSwish", LIST("c"), LIST("y"), NULL);
    } else {
        tm_attr_float(&hard, "alpha", spelling == 0 ? 0.3f : 1.0f / 6.0f);
        tm_attr_float(&hard, "beta", spelling == 0 ? 0.4f : 0.5f);
        tm_node(&r->tm, "HardSigmoid", LIST("c"), LIST(spelling == 0 ? "y" : "gate"), &hard);
        if (spelling == 2) tm_node(&r->tm, "Mul", LIST("c", "gate"), LIST("y"), NULL);
    }
    pbw_free(&pads), pbw_free(&hard);
    assert_int_equal(tr_run(r, 1), KILN_OK);
}

static void hard_activations_fuse_into_the_conv(void **state)
{
    (void)state;
    random_seed(23);
    float *x = random_floats(3 * 9 * 10, -3, 3), *w = random_floats(CHANNELS * 27, -1, 1);
    for (int spelling = 0; spelling < 3; spelling++) {
        test_run fused, plain;
        run_hard_activation(&fused, spelling, false, x, w);
        run_hard_activation(&plain, spelling, true, x, w);
        assert_true(tr_model_has_op(fused.model, "FusedConv"));
        assert_false(tr_model_has_op(fused.model, spelling == 1 ? "HardSwish" : "HardSigmoid"));
        assert_false(tr_model_has_op(plain.model, "FusedConv"));
        assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, CHANNELS * 9 * 10) < 1e-5);
        tr_free(&fused);
        tr_free(&plain);
    }
    free(x), free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transpose_pairs_compose),
        cmocka_unit_test(hard_activations_fuse_into_the_conv),
        cmocka_unit_test(conv_batch_norm_is_folded_and_matches),
        cmocka_unit_test(gemm_batch_norm_is_folded_and_matches),
        cmocka_unit_test(near_misses_stay_unfolded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
