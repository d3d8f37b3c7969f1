/*
 * test_fuse_transformer.c — graph/fuse_transformer.c and its fused operators: each pattern as PyTorch spells
 * it is fused (the op histogram shows the fused op) and gives the unfused graph's results within float32
 * rounding; the unfused graph is the same graph with one intermediate value also declared as an output,
 * which the pass must then leave alone. Near-misses (another exponent, another axis, another constant) stay
 * unfused. The GELU kernel is compared with its reference.
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

#include "kernels/gelu.h"
#include "kiln.h"
#include "testlib.h"

enum { ROWS = 6, WIDTH = 24 };

static bool model_has_op(const kiln_model *m, const char *op_type)
{
    for (int i = 0; i < kiln_model_op_type_count(m); i++) {
        const char *domain, *type;
        int nodes;
        assert_int_equal(kiln_model_op_type(m, i, &domain, &type, &nodes), KILN_OK);
        if (strcmp(type, op_type) == 0) return true;
    }
    return false;
}

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
            assert_true(model_has_op(fused.model, "LayerNormalization"));
            assert_false(model_has_op(plain.model, "LayerNormalization"));
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
        assert_false(model_has_op(r.model, "LayerNormalization"));
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
} gelu_spelling;

static void run_gelu(test_run *r, const gelu_spelling *s, const float *x, int64_t n, int threads)
{
    tr_init(r, 13);
    tr_input(r, "x", KILN_FLOAT32, 1, &n, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (s->show_erf) tr_output(r, "erf", KILN_FLOAT32);
    scalar(r, "root2", s->multiply_by_inverse ? 0.70710677f : 1.4142135f);
    scalar(r, "one", 1.0f);
    scalar(r, "half", s->half);
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
        gelu_spelling s = {variant & 1, (variant & 2) != 0, 0.5f, false};
        test_run fused, plain;
        run_gelu(&fused, &s, x, n, 1 + variant % 2);
        s.show_erf = true;
        run_gelu(&plain, &s, x, n, 1);
        assert_true(model_has_op(fused.model, "Gelu"));
        assert_false(model_has_op(plain.model, "Gelu"));
        assert_true(max_abs_diff(fused.out[0].data, plain.out[0].data, n) < 1e-5);
        tr_free(&fused);
        tr_free(&plain);
    }
    gelu_spelling miss = {false, false, 0.25f, false};
    test_run r;
    run_gelu(&r, &miss, x, n, 1);
    assert_false(model_has_op(r.model, "Gelu"));
    tr_free(&r);
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
        gelu_f32(x, x, n); /* in place */
        assert_true(max_abs_diff(x, ref, n) < 1e-6 * 10);
        free(x), free(fast), free(ref);
    }
    float special[3] = {NAN, INFINITY, -INFINITY}, out[3];
    gelu_f32(special, out, 3);
    assert_true(isnan(out[0]));
    assert_true(out[1] == INFINITY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layernorm_is_fused_and_matches_the_graph),
        cmocka_unit_test(layernorm_near_misses_are_not_fused),
        cmocka_unit_test(gelu_is_fused_and_matches_the_graph),
        cmocka_unit_test(gelu_kernel_matches_its_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
