/*
 * test_fuse_transformer.c — graph/fuse_transformer.c and its fused operators: each pattern as PyTorch spells
 * it is fused (the op histogram shows the fused op) and gives the unfused graph's results within float32
 * rounding; the unfused graph is the same graph with one intermediate value also declared as an output,
 * which the pass must then leave alone. Near-misses (another exponent, another axis, another constant) stay
 * unfused. The GELU and attention kernels are compared with their references.
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

#include "kernels/attention.h"
#include "kernels/gelu.h"
#include "kiln.h"
#include "testlib.h"

enum { ROWS = 6, WIDTH = 24 };

static void scalar(test_run *r, const char *name, float v) { tm_initializer(&r->tm, name, KILN_FLOAT32, 0, NULL, &v); }

/* What a LayerNorm graph may vary from PyTorch's spelling. */
typedef struct layernorm_spelling {
    float exponent;      /* 2 */
    int64_t axis;        /* of both ReduceMeans: -1 */
    bool show_centred;   /* x - mean is also a graph output (so the pattern must not fuse) */
    bool symbolic_rows;  /* x is [N, WIDTH] with N symbolic */
} layernorm_spelling;

/* y = (x - mean) / sqrt(var + 1e-5) * gamma + beta, over rows of x [ROWS, WIDTH], run with `threads`. */
static void run_layernorm(test_run *r, const layernorm_spelling *s, const float *x, const float *gamma,
                          const float *beta, int threads)
{
    tr_init(r, 13);
    int64_t dims[2] = {s->symbolic_rows ? -1 : ROWS, WIDTH}, width = WIDTH;
    tr_input(r, "x", KILN_FLOAT32, 2, dims, x);
    r->inputs[0].dims[0] = ROWS; /* bound at run time */
    tr_output(r, "y", KILN_FLOAT32);
    if (s->show_centred) tr_output(r, "centred", KILN_FLOAT32);
    scalar(r, "two", s->exponent);
    scalar(r, "eps", 1e-5f);
    tm_initializer(&r->tm, "gamma", KILN_FLOAT32, 1, &width, gamma);
    tm_initializer(&r->tm, "beta", KILN_FLOAT32, 1, &width, beta);
    pbw axes = {0};
    tm_attr_ints(&axes, "axes", &s->axis, 1);
    tm_node(&r->tm, "ReduceMean", LIST("x"), LIST("mean"), &axes);
    tm_node(&r->tm, "Sub", LIST("x", "mean"), LIST("centred"), NULL);
    tm_node(&r->tm, "Pow", LIST("centred", "two"), LIST("squared"), NULL);
    tm_node(&r->tm, "ReduceMean", LIST("squared"), LIST("var"), &axes);
    tm_node(&r->tm, "Add", LIST("var", "eps"), LIST("var_eps"), NULL);
    tm_node(&r->tm, "Sqrt", LIST("var_eps"), LIST("std"), NULL);
    tm_node(&r->tm, "Div", LIST("centred", "std"), LIST("normed"), NULL);
    tm_node(&r->tm, "Mul", LIST("normed", "gamma"), LIST("scaled"), NULL);
    tm_node(&r->tm, "Add", LIST("scaled", "beta"), LIST("y"), NULL);
    pbw_free(&axes);
    assert_int_equal(tr_run(r, threads), KILN_OK);
}

static void layernorm_is_fused_and_matches_the_graph(void **state)
{
    (void)state;
    random_seed(3);
    float *x = random_floats(ROWS * WIDTH, -3, 5), *gamma = random_floats(WIDTH, -2, 2);
    float *beta = random_floats(WIDTH, -1, 1);
    for (int threads = 1; threads <= 2; threads++)
        for (int symbolic = 0; symbolic < 2; symbolic++) {
            test_run fused, plain;
            layernorm_spelling s = {2.0f, -1, false, symbolic};
            run_layernorm(&fused, &s, x, gamma, beta, threads);
            s.show_centred = true;
            run_layernorm(&plain, &s, x, gamma, beta, threads);
            assert_true(tr_model_has_op(fused.model, "LayerNormalization"));
            assert_false(tr_model_has_op(plain.model, "LayerNormalization"));
            assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, ROWS * WIDTH) < 1e-5);
            tr_free(&fused);
            tr_free(&plain);
        }
    free(x), free(gamma), free(beta);
}

static void layernorm_near_misses_are_not_fused(void **state)
{
    (void)state;
    random_seed(4);
    float *x = random_floats(ROWS * WIDTH, -3, 5), *gamma = random_floats(WIDTH, -2, 2);
    float *beta = random_floats(WIDTH, -1, 1);
    layernorm_spelling misses[] = {{3.0f, -1, false, false}, {2.0f, 0, false, false}};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        test_run r;
        run_layernorm(&r, &misses[i], x, gamma, beta, 1);
        assert_false(tr_model_has_op(r.model, "LayerNormalization"));
        tr_free(&r);
    }
    free(x), free(gamma), free(beta);
}

/* What a GELU graph may vary from PyTorch's spelling x * (1 + erf(x / sqrt2)) * 0.5. */
typedef struct gelu_spelling {
    bool multiply_by_inverse; /* x * (1 / sqrt2) instead of x / sqrt2 */
    bool half_first;          /* (x * 0.5) * (1 + erf) */
    float half;               /* 0.5 */
    bool show_erf;            /* erf(...) is also a graph output */
    bool half_rank2;          /* 0.5 as a [1, 1] constant: the result broadcasts to [1, n] */
} gelu_spelling;

static void run_gelu(test_run *r, const gelu_spelling *s, const float *x, int64_t n, int threads)
{
    tr_init(r, 13);
    tr_input(r, "x", KILN_FLOAT32, 1, &n, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (s->show_erf) tr_output(r, "erf", KILN_FLOAT32);
    scalar(r, "root2", s->multiply_by_inverse ? 0.70710677f : 1.4142135f);
    scalar(r, "one", 1.0f);
    int64_t one_by_one[2] = {1, 1};
    if (s->half_rank2) tm_initializer(&r->tm, "half", KILN_FLOAT32, 2, one_by_one, &s->half);
    else scalar(r, "half", s->half);
    tm_node(&r->tm, s->multiply_by_inverse ? "Mul" : "Div", LIST("x", "root2"), LIST("scaled"), NULL);
    tm_node(&r->tm, "Erf", LIST("scaled"), LIST("erf"), NULL);
    tm_node(&r->tm, "Add", LIST("erf", "one"), LIST("plus_one"), NULL);
    if (s->half_first) {
        tm_node(&r->tm, "Mul", LIST("half", "x"), LIST("half_x"), NULL);
        tm_node(&r->tm, "Mul", LIST("plus_one", "half_x"), LIST("y"), NULL);
    } else {
        tm_node(&r->tm, "Mul", LIST("x", "plus_one"), LIST("product"), NULL);
        tm_node(&r->tm, "Mul", LIST("product", "half"), LIST("y"), NULL);
    }
    assert_int_equal(tr_run(r, threads), KILN_OK);
}

static void gelu_is_fused_and_matches_the_graph(void **state)
{
    (void)state;
    random_seed(5);
    int64_t n = 40000; /* several parallel chunks */
    float *x = random_floats(n, -8, 8);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 30.0f, x[3] = -30.0f;
    for (int variant = 0; variant < 4; variant++) {
        gelu_spelling s = {variant & 1, (variant & 2) != 0, 0.5f, false, false};
        test_run fused, plain;
        run_gelu(&fused, &s, x, n, 1 + variant % 2);
        s.show_erf = true;
        run_gelu(&plain, &s, x, n, 1);
        assert_true(tr_model_has_op(fused.model, "Gelu"));
        assert_false(tr_model_has_op(plain.model, "Gelu"));
        assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, n) < 1e-5);
        tr_free(&fused);
        tr_free(&plain);
    }
    gelu_spelling misses[2] = {{false, false, 0.25f, false, false}, {false, false, 0.5f, false, true}};
    for (int i = 0; i < 2; i++) {
        test_run r;
        run_gelu(&r, &misses[i], x, n, 1);
        assert_false(tr_model_has_op(r.model, "Gelu"));
        assert_int_equal(r.out[0].rank, i == 1 ? 2 : 1);
        tr_free(&r);
    }
    free(x);
}

/* The tanh form as torch.nn.functional.gelu(approximate="tanh") exports it (x * (x * x), constants first), or
 * as HuggingFace's gelu_new does (Pow(x, 3), constants second, x * 0.5 first); `show` makes it unfused. */
static void run_gelu_tanh(test_run *r, bool pow_form, bool show, const float *x, int64_t n, int threads)
{
    tr_init(r, 13);
    tr_input(r, "x", KILN_FLOAT32, 1, &n, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show) tr_output(r, "t", KILN_FLOAT32);
    scalar(r, "three", 3.0f);
    scalar(r, "a", 0.044715f);
    scalar(r, "c", 0.7978845608f);
    scalar(r, "one", 1.0f);
    scalar(r, "half", 0.5f);
    if (pow_form) {
        tm_node(&r->tm, "Mul", LIST("x", "half"), LIST("half_x"), NULL);
        tm_node(&r->tm, "Pow", LIST("x", "three"), LIST("cube"), NULL);
        tm_node(&r->tm, "Mul", LIST("cube", "a"), LIST("ax3"), NULL);
        tm_node(&r->tm, "Add", LIST("x", "ax3"), LIST("inner"), NULL);
        tm_node(&r->tm, "Mul", LIST("inner", "c"), LIST("arg"), NULL);
        tm_node(&r->tm, "Tanh", LIST("arg"), LIST("t"), NULL);
        tm_node(&r->tm, "Add", LIST("t", "one"), LIST("plus_one"), NULL);
        tm_node(&r->tm, "Mul", LIST("half_x", "plus_one"), LIST("y"), NULL);
    } else {
        tm_node(&r->tm, "Mul", LIST("x", "x"), LIST("square"), NULL);
        tm_node(&r->tm, "Mul", LIST("x", "square"), LIST("cube"), NULL);
        tm_node(&r->tm, "Mul", LIST("a", "cube"), LIST("ax3"), NULL);
        tm_node(&r->tm, "Add", LIST("x", "ax3"), LIST("inner"), NULL);
        tm_node(&r->tm, "Mul", LIST("c", "inner"), LIST("arg"), NULL);
        tm_node(&r->tm, "Tanh", LIST("arg"), LIST("t"), NULL);
        tm_node(&r->tm, "Add", LIST("one", "t"), LIST("plus_one"), NULL);
        tm_node(&r->tm, "Mul", LIST("x", "plus_one"), LIST("product"), NULL);
        tm_node(&r->tm, "Mul", LIST("half", "product"), LIST("y"), NULL);
    }
    assert_int_equal(tr_run(r, threads), KILN_OK);
}

static void gelu_tanh_is_fused_and_matches_the_graph(void **state)
{
    (void)state;
    random_seed(10);
    int64_t n = 30000;
    float *x = random_floats(n, -9, 9);
    for (int pow_form = 0; pow_form < 2; pow_form++) {
        test_run fused, plain;
        run_gelu_tanh(&fused, pow_form, false, x, n, 1 + pow_form);
        run_gelu_tanh(&plain, pow_form, true, x, n, 1);
        assert_true(tr_model_has_op(fused.model, "Gelu"));
        assert_false(tr_model_has_op(plain.model, "Gelu"));
        assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, n) < 1e-5);
        tr_free(&fused);
        tr_free(&plain);
    }
    free(x);
}

static void gelu_kernel_matches_its_reference(void **state)
{
    (void)state;
    random_seed(6);
    for (int64_t n = 0; n < 1300; n += 97) {
        float *x = random_floats(n + 1, -10, 10), *fast = malloc((size_t)(n + 1) * sizeof(float));
        float *ref = malloc((size_t)(n + 1) * sizeof(float));
        gelu_f32(x, fast, n);
        gelu_f32_reference(x, ref, n);
        assert_true(max_abs_diff(fast, ref, n) < 1e-6 * 10);
        gelu_tanh_f32(x, fast, n);
        gelu_tanh_f32_reference(x, ref, n);
        assert_true(max_abs_diff(fast, ref, n) < 1e-6 * 10);
        gelu_f32_reference(x, ref, n);
        gelu_f32(x, x, n); /* in place */
        assert_true(max_abs_diff(x, ref, n) < 1e-6 * 10);
        free(x), free(fast), free(ref);
    }
    float special[3] = {NAN, INFINITY, -INFINITY}, out[3];
    gelu_f32(special, out, 3);
    assert_true(isnan(out[0]));
    assert_true(out[1] == INFINITY);
}

/* x [2, 3, 20] * W [20, 33] + b [33]; the Add's operands in either order; b of rank 2 is a near-miss. */
static void run_linear(test_run *r, bool bias_first, bool bias_rank2, bool show_product, const float *x,
                       const float *w, const float *b, int threads)
{
    tr_init(r, 13);
    int64_t xd[3] = {2, 3, 20}, wd[2] = {20, 33}, bd[2] = {1, 33};
    tr_input(r, "x", KILN_FLOAT32, 3, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_product) tr_output(r, "product", KILN_FLOAT32);
    tm_initializer(&r->tm, "w", KILN_FLOAT32, 2, wd, w);
    tm_initializer(&r->tm, "b", KILN_FLOAT32, bias_rank2 ? 2 : 1, bias_rank2 ? bd : bd + 1, b);
    tm_node(&r->tm, "MatMul", LIST("x", "w"), LIST("product"), NULL);
    tm_node(&r->tm, "Add", bias_first ? LIST("b", "product") : LIST("product", "b"), LIST("y"), NULL);
    assert_int_equal(tr_run(r, threads), KILN_OK);
}

static void linear_bias_is_fused_and_matches_the_graph(void **state)
{
    (void)state;
    random_seed(9);
    float *x = random_floats(2 * 3 * 20, -2, 2), *w = random_floats(20 * 33, -1, 1), *b = random_floats(33, -1, 1);
    for (int variant = 0; variant < 3; variant++) {
        bool near_miss = variant == 2;
        test_run fused, plain;
        run_linear(&fused, variant == 1, near_miss, false, x, w, b, 1 + variant % 2);
        run_linear(&plain, variant == 1, near_miss, true, x, w, b, 1);
        assert_int_equal(tr_model_has_op(fused.model, "MatMulBias"), !near_miss);
        assert_false(tr_model_has_op(plain.model, "MatMulBias"));
        assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, 2 * 3 * 33) < 1e-5);
        tr_free(&fused);
        tr_free(&plain);
    }
    free(x), free(w), free(b);
}

/* What an attention graph may vary: Div or Mul scale (or none), a mask (its Add in either order). */
typedef struct attention_spelling {
    int scale;        /* 0: none, 1: Div by 4, 2: Mul by 0.25 (constant first) */
    int mask;         /* 0: none, 1: scores + mask, 2: mask + scores */
    bool show_scores; /* the softmax's input is also a graph output */
} attention_spelling;

enum { AB = 2, AH = 3, AS = 5, AT = 7, AD = 4, ADV = 6 };

static void run_attention(test_run *r, const attention_spelling *s, const float *q, const float *kt, const float *v,
                          const float *mask, int threads)
{
    tr_init(r, 13);
    int64_t qd[4] = {AB, AH, AS, AD}, kd[4] = {1, AH, AD, AT}, vd[4] = {AB, AH, AT, ADV}, md[4] = {AB, 1, 1, AT};
    tr_input(r, "q", KILN_FLOAT32, 4, qd, q);
    tr_input(r, "kt", KILN_FLOAT32, 4, kd, kt); /* broadcast along B, as MatMul allows */
    tr_input(r, "v", KILN_FLOAT32, 4, vd, v);
    if (s->mask) tr_input(r, "mask", KILN_FLOAT32, 4, md, mask);
    tr_output(r, "y", KILN_FLOAT32);
    if (s->show_scores) tr_output(r, "probs_in", KILN_FLOAT32);
    scalar(r, "c", s->scale == 1 ? 4.0f : 0.25f);
    tm_node(&r->tm, "MatMul", LIST("q", "kt"), LIST(s->scale ? "raw" : s->mask ? "scaled" : "probs_in"), NULL);
    if (s->scale == 1) tm_node(&r->tm, "Div", LIST("raw", "c"), LIST(s->mask ? "scaled" : "probs_in"), NULL);
    if (s->scale == 2) tm_node(&r->tm, "Mul", LIST("c", "raw"), LIST(s->mask ? "scaled" : "probs_in"), NULL);
    if (s->mask == 1) tm_node(&r->tm, "Add", LIST("scaled", "mask"), LIST("probs_in"), NULL);
    if (s->mask == 2) tm_node(&r->tm, "Add", LIST("mask", "scaled"), LIST("probs_in"), NULL);
    pbw axis = {0};
    tm_attr_int(&axis, "axis", -1);
    tm_node(&r->tm, "Softmax", LIST("probs_in"), LIST("probs"), &axis);
    pbw_free(&axis);
    tm_node(&r->tm, "MatMul", LIST("probs", "v"), LIST("y"), NULL);
    assert_int_equal(tr_run(r, threads), KILN_OK);
}

static void attention_is_fused_and_matches_the_graph(void **state)
{
    (void)state;
    random_seed(7);
    float *q = random_floats(AB * AH * AS * AD, -2, 2), *kt = random_floats(AH * AD * AT, -2, 2);
    float *v = random_floats(AB * AH * AT * ADV, -1, 1), *mask = random_floats(AB * AT, -1, 0);
    mask[1] = mask[AT + 2] = -10000.0f; /* masked positions */
    int64_t n = AB * AH * AS * ADV;
    for (int scale = 0; scale < 3; scale++)
        for (int with_mask = 0; with_mask < 3; with_mask++) {
            attention_spelling s = {scale, with_mask, false};
            test_run fused, plain;
            run_attention(&fused, &s, q, kt, v, mask, 1 + (scale + with_mask) % 2);
            s.show_scores = true;
            run_attention(&plain, &s, q, kt, v, mask, 1);
            assert_true(tr_model_has_op(fused.model, "Attention"));
            assert_false(tr_model_has_op(plain.model, "Attention"));
            assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, n) < 1e-5);
            tr_free(&fused);
            tr_free(&plain);
        }
    free(q), free(kt), free(v), free(mask);
}

/* The kernel's fast variant against its reference, on rows spanning several blocks. */
static void attention_kernel_matches_its_reference(void **state)
{
    (void)state;
    random_seed(8);
    attention_problem p = {.B = 1, .H = 2, .S = ATTENTION_ROWS + 9, .T = 70, .D = 16, .Dv = 8, .scale = 0.25f,
                           .has_mask = true};
    p.q_step[1] = p.S * p.D, p.k_step[1] = p.D * p.T, p.v_step[1] = p.T * p.Dv;
    p.mask_step[2] = p.T, p.mask_step[3] = 1; /* one (S, T) mask for every head */
    float *q = random_floats(p.H * p.S * p.D, -2, 2), *kt = random_floats(p.H * p.D * p.T, -2, 2);
    float *v = random_floats(p.H * p.T * p.Dv, -1, 1), *mask = random_floats(p.S * p.T, -3, 0);
    int64_t n = p.H * p.S * p.Dv;
    float *fast = malloc((size_t)n * sizeof(float)), *ref = malloc((size_t)n * sizeof(float));
    void *scratch = aligned_alloc(64, (attention_f32_scratch_bytes(&p, 1) + 63) / 64 * 64);
    attention_tensors t = {q, kt, v, mask, fast};
    attention_f32(&p, &t, ATTENTION_FAST, scratch, NULL);
    t.out = ref;
    attention_f32(&p, &t, ATTENTION_REFERENCE, scratch, NULL);
    assert_true(max_abs_diff(fast, ref, n) < 1e-5);
    free(q), free(kt), free(v), free(mask), free(fast), free(ref), free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layernorm_is_fused_and_matches_the_graph),
        cmocka_unit_test(layernorm_near_misses_are_not_fused),
        cmocka_unit_test(gelu_is_fused_and_matches_the_graph),
        cmocka_unit_test(gelu_tanh_is_fused_and_matches_the_graph),
        cmocka_unit_test(gelu_kernel_matches_its_reference),
        cmocka_unit_test(linear_bias_is_fused_and_matches_the_graph),
        cmocka_unit_test(attention_is_fused_and_matches_the_graph),
        cmocka_unit_test(attention_kernel_matches_its_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
