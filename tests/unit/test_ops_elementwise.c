/*
 * test_ops_elementwise.c — the elementwise operators: the broadcasting loop against a naive reference
 * (including ranges that start and end mid-row, as the thread pool cuts them), then whole models through the
 * public API for the semantics that are easy to get wrong: integer division and modulo signs, wrapping,
 * rounding, Clip's optional bounds, Pow's mixed dtypes, Where's three-way broadcast, empty tensors, and the
 * errors that must appear at load (bad attributes, unsupported dtypes) or at run (division by zero). The
 * vectorised float32 functions of kernels/vmath.h are compared with the reference expressions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "core/platform/platform.h"
#include "kernels/vmath.h"
#include "ops/elementwise.h"
#include "testlib.h"

/* ---- the broadcasting loop ---------------------------------------------------------------------------- */

#define TEST_ADD(T, x, y) ((x) + (y))
EW_BINARY_KERNEL(test_add_f32, float, float, float, TEST_ADD)

/* out = a + 10 b + 100 c, honouring each input's varies flag. */
static void test_weighted_sum3(const void *params, void *out_, const void *const *in, const bool *varies, int64_t n)
{
    (void)params;
    const float *a = in[0], *b = in[1], *c = in[2];
    float *out = out_;
    for (int64_t i = 0; i < n; i++)
        out[i] = a[varies[0] ? i : 0] + 10 * b[varies[1] ? i : 0] + 100 * c[varies[2] ? i : 0];
}

/* A parallel runner that cuts [0, n) into fixed, deliberately odd chunks on the calling thread. */
static void run_in_chunks(void *impl, int64_t n, int64_t grain, parallel_fn fn, void *arg)
{
    (void)grain;
    int64_t chunk = *(const int64_t *)impl;
    for (int64_t begin = 0; begin < n; begin += chunk) fn(arg, begin, begin + chunk < n ? begin + chunk : n);
}

/* Element `index` of the output, read from `t` under broadcasting. */
static float broadcast_read(const kiln_tensor *t, const kiln_tensor *out, int64_t index)
{
    int64_t offset = 0, stride = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int64_t coord = index % out->dims[d];
        index /= out->dims[d];
        int k = d - (out->rank - t->rank);
        if (k < 0) continue;
        if (t->dims[k] != 1) offset += coord * stride;
        stride *= t->dims[k];
    }
    return ((const float *)t->data)[offset];
}

/* A random shape for `rank` dims of out_dims, each dim kept or made 1; the leading dims may be dropped. */
static void random_operand(kiln_tensor *t, const kiln_tensor *out)
{
    int drop = random_int(0, out->rank);
    t->dtype = KILN_FLOAT32;
    t->rank = out->rank - drop;
    for (int d = 0; d < t->rank; d++) t->dims[d] = random_int(0, 2) == 0 ? 1 : out->dims[d + drop];
    int64_t n = tensor_numel(t);
    t->data = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) ((float *)t->data)[i] = (float)random_int(0, 999);
}

static void random_output(kiln_tensor *out, bool large)
{
    out->dtype = KILN_FLOAT32;
    random_shape(0, 4, large ? 40 : 5, &out->rank, out->dims);
    out->data = malloc((size_t)tensor_numel(out) * sizeof(float));
}

static void check_broadcast(int n_in, ew_kernel kernel, const parallel_runner *runner, bool large)
{
    kiln_tensor out = {0}, in[3] = {{0}};
    random_output(&out, large);
    const kiln_tensor *inputs[3];
    for (int j = 0; j < n_in; j++) random_operand(&in[j], &out), inputs[j] = &in[j];
    ew_run(runner, kernel, NULL, &out, n_in, inputs);
    for (int64_t i = 0; i < tensor_numel(&out); i++) {
        float expected = broadcast_read(&in[0], &out, i) + 10 * (n_in > 2 ? broadcast_read(&in[1], &out, i) : 0) +
                         100 * (n_in > 2 ? broadcast_read(&in[2], &out, i) : 0);
        if (n_in == 2) expected = broadcast_read(&in[0], &out, i) + broadcast_read(&in[1], &out, i);
        assert_true(((float *)out.data)[i] == expected);
    }
    for (int j = 0; j < n_in; j++) free(in[j].data);
    free(out.data);
}

static void broadcast_matches_reference(void **state)
{
    (void)state;
    random_seed(7);
    int64_t chunk = 777;
    parallel_runner chunked = {4, run_in_chunks, &chunk};
    for (int trial = 0; trial < 300; trial++) {
        check_broadcast(2, test_add_f32, NULL, false);
        check_broadcast(3, test_weighted_sum3, NULL, false);
    }
    for (int trial = 0; trial < 40; trial++) { /* large enough for parallel_for to call the runner */
        check_broadcast(2, test_add_f32, &chunked, true);
        check_broadcast(3, test_weighted_sum3, &chunked, true);
    }
}

static void empty_output_runs_nothing(void **state)
{
    (void)state;
    float a[3] = {1, 2, 3};
    kiln_tensor out = {KILN_FLOAT32, 2, {0, 3}, NULL}, x = {KILN_FLOAT32, 1, {3}, a};
    const kiln_tensor *inputs[2] = {&x, &x};
    ew_run(NULL, test_add_f32, NULL, &out, 2, inputs); /* must not touch out.data */
}

/* ---- whole models ------------------------------------------------------------------------------------- */

/* A 1-D graph input. */
#define T1(name, dtype, n, data) {name, dtype, 1, {n}, data, false}

static void add_broadcasts_rows_and_columns(void **state)
{
    (void)state;
    int32_t a[6] = {1, 2, 3, 4, 5, 6}, row[3] = {10, 20, 30}, column[2] = {100, 200};
    test_operand by_row[2] = {{"a", KILN_INT32, 2, {2, 3}, a, false}, T1("b", KILN_INT32, 3, row)};
    test_operand by_column[2] = {{"a", KILN_INT32, 2, {2, 3}, a, false}, {"b", KILN_INT32, 2, {2, 1}, column, false}};
    test_run r;
    tr_compute(&r, 13, "Add", NULL, 2, by_row, KILN_INT32, 1);
    assert_int_equal(r.out[0].rank, 2);
    assert_memory_equal(r.out[0].data, ((int32_t[]){11, 22, 33, 14, 25, 36}), 6 * sizeof(int32_t));
    tr_free(&r);
    tr_compute(&r, 13, "Sub", NULL, 2, by_column, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, ((int32_t[]){-99, -98, -97, -196, -195, -194}), 6 * sizeof(int32_t));
    tr_free(&r);
}

static void integer_arithmetic_wraps_and_truncates(void **state)
{
    (void)state;
    int32_t x[4] = {7, -7, INT32_MIN, INT32_MAX}, y[4] = {2, 2, -1, 2};
    test_operand in[2] = {T1("a", KILN_INT32, 4, x), T1("b", KILN_INT32, 4, y)};
    test_run r;
    tr_compute(&r, 13, "Div", NULL, 2, in, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, ((int32_t[]){3, -3, INT32_MIN, INT32_MAX / 2}), sizeof x);
    tr_free(&r);
    tr_compute(&r, 13, "Mul", NULL, 2, in, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, ((int32_t[]){14, -14, INT32_MIN, -2}), sizeof x);
    tr_free(&r);
    int8_t small[2] = {-128, 5};
    test_operand one = T1("a", KILN_INT8, 2, small);
    tr_compute(&r, 13, "Abs", NULL, 1, &one, KILN_INT8, 1);
    assert_memory_equal(r.out[0].data, ((int8_t[]){-128, 5}), 2);
    tr_free(&r);
}

static void integer_division_by_zero_fails_at_run(void **state)
{
    (void)state;
    int64_t x[2] = {1, 2}, y[2] = {1, 0};
    test_operand in[2] = {T1("a", KILN_INT64, 2, x), T1("b", KILN_INT64, 2, y)};
    const char *ops[2] = {"Div", "Mod"};
    for (int k = 0; k < 2; k++) {
        test_run r;
        tr_init(&r, 13);
        tr_node_of_operands(&r, ops[k], NULL, 2, in, KILN_INT64);
        assert_int_equal(tr_load(&r), KILN_OK);
        assert_int_equal(tr_run(&r, 1), KILN_ERR_RUNTIME);
        assert_non_null(strstr(kiln_last_error(), "division by zero"));
        tr_free(&r);
    }
}

static void mod_signs(void **state)
{
    (void)state;
    int32_t x[4] = {-4, 7, 5, -5}, y[4] = {3, -3, -3, 3};
    test_operand in[2] = {T1("a", KILN_INT32, 4, x), T1("b", KILN_INT32, 4, y)};
    test_run r;
    tr_compute(&r, 13, "Mod", NULL, 2, in, KILN_INT32, 1); /* Python: sign of the divisor */
    assert_memory_equal(r.out[0].data, ((int32_t[]){2, -2, -1, 1}), sizeof x);
    tr_free(&r);
    pbw attrs = {0};
    tm_attr_int(&attrs, "fmod", 1);
    tr_compute(&r, 13, "Mod", &attrs, 2, in, KILN_INT32, 1); /* C: sign of the dividend */
    assert_memory_equal(r.out[0].data, ((int32_t[]){-1, 1, 2, -2}), sizeof x);
    tr_free(&r);
    pbw_free(&attrs);
}

static void bad_attributes_and_dtypes_fail_at_load(void **state)
{
    (void)state;
    float f[2] = {1, 2};
    uint8_t u[2] = {1, 2};
    int32_t i[2] = {1, 2};
    test_operand floats[2] = {T1("a", KILN_FLOAT32, 2, f), T1("b", KILN_FLOAT32, 2, f)};
    test_operand bytes[2] = {T1("a", KILN_UINT8, 2, u), T1("b", KILN_UINT8, 2, u)};
    test_operand ints[1] = {T1("a", KILN_INT32, 2, i)};
    test_operand mixed[2] = {T1("a", KILN_FLOAT32, 2, f), T1("b", KILN_INT32, 2, i)};

    pbw direction = {0};
    tm_attr_string(&direction, "direction", "UP");
    assert_int_equal(tr_load_status(11, "BitShift", &direction, 2, bytes, KILN_UINT8), KILN_ERR_MALFORMED);
    assert_non_null(strstr(kiln_last_error(), "direction"));
    pbw_free(&direction);

    assert_int_equal(tr_load_status(13, "Mod", NULL, 2, floats, KILN_FLOAT32), KILN_ERR_MALFORMED);
    assert_int_equal(tr_load_status(13, "Exp", NULL, 1, ints, KILN_INT32), KILN_ERR_UNSUPPORTED);
    assert_int_not_equal(tr_load_status(13, "BitShift", NULL, 2, floats, KILN_FLOAT32), KILN_OK);

    pbw alpha_as_int = {0};
    tm_attr_int(&alpha_as_int, "alpha", 2);
    assert_int_equal(tr_load_status(13, "LeakyRelu", &alpha_as_int, 1, floats, KILN_FLOAT32), KILN_ERR_MALFORMED);
    pbw_free(&alpha_as_int);

    assert_int_not_equal(tr_load_status(13, "Add", NULL, 2, mixed, KILN_FLOAT32), KILN_OK);
}

static void bitshift_saturates_wide_shifts(void **state)
{
    (void)state;
    uint8_t x[3] = {1, 255, 16}, amount[3] = {7, 9, 2};
    test_operand in[2] = {T1("a", KILN_UINT8, 3, x), T1("b", KILN_UINT8, 3, amount)};
    pbw attrs = {0};
    tm_attr_string(&attrs, "direction", "LEFT");
    test_run r;
    tr_compute(&r, 11, "BitShift", &attrs, 2, in, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){128, 0, 64}), 3);
    tr_free(&r);
    pbw_free(&attrs);
}

static void round_halves_to_even(void **state)
{
    (void)state;
    float x[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f};
    test_operand in = T1("a", KILN_FLOAT32, 6, x);
    test_run r;
    tr_compute(&r, 11, "Round", NULL, 1, &in, KILN_FLOAT32, 1);
    const float *y = r.out[0].data;
    float expected[6] = {0, 2, 2, -0.0f, -2, 2};
    for (int i = 0; i < 6; i++) assert_true(y[i] == expected[i]);
    tr_free(&r);
}

static void clip_bounds_inputs_and_attributes(void **state)
{
    (void)state;
    int8_t x[5] = {-128, -5, 0, 5, 127}, max = 3;
    test_operand in[3] = {T1("a", KILN_INT8, 5, x), {NULL}, {"c", KILN_INT8, 0, {0}, &max, false}};
    test_run r;
    tr_compute(&r, 13, "Clip", NULL, 3, in, KILN_INT8, 1); /* min omitted, max a graph input */
    assert_memory_equal(r.out[0].data, ((int8_t[]){-128, -5, 0, 3, 3}), 5);
    tr_free(&r);
    in[2].constant = true;
    tr_compute(&r, 13, "Clip", NULL, 3, in, KILN_INT8, 1); /* max an initializer */
    assert_memory_equal(r.out[0].data, ((int8_t[]){-128, -5, 0, 3, 3}), 5);
    tr_free(&r);

    float f[3] = {-2, 0.5f, 2};
    test_operand floats = T1("a", KILN_FLOAT32, 3, f);
    pbw attrs = {0};
    tm_attr_float(&attrs, "min", -1);
    tr_compute(&r, 6, "Clip", &attrs, 1, &floats, KILN_FLOAT32, 1); /* max defaults to FLT_MAX */
    assert_memory_equal(r.out[0].data, ((float[]){-1, 0.5f, 2}), sizeof f);
    tr_free(&r);
    pbw_free(&attrs);

    int8_t two[2] = {1, 2};
    test_operand bad[2] = {T1("a", KILN_INT8, 5, x), T1("b", KILN_INT8, 2, two)};
    tr_init(&r, 13);
    tr_node_of_operands(&r, "Clip", NULL, 2, bad, KILN_INT8);
    assert_int_equal(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT);
    tr_free(&r);
}

static void pow_mixed_dtypes(void **state)
{
    (void)state;
    int32_t base[4] = {2, -3, 2, -1}, exponent[4] = {10, 3, -1, -3};
    test_operand ints[2] = {T1("a", KILN_INT32, 4, base), T1("b", KILN_INT32, 4, exponent)};
    test_run r;
    tr_compute(&r, 15, "Pow", NULL, 2, ints, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, ((int32_t[]){1024, -27, 0, -1}), sizeof base);
    tr_free(&r);

    float fbase[3] = {2, 4, 9};
    int64_t iexp[1] = {2};
    test_operand float_by_int[2] = {T1("a", KILN_FLOAT32, 3, fbase), T1("b", KILN_INT64, 1, iexp)};
    tr_compute(&r, 15, "Pow", NULL, 2, float_by_int, KILN_FLOAT32, 1);
    assert_memory_equal(r.out[0].data, ((float[]){4, 16, 81}), sizeof fbase);
    tr_free(&r);

    float half[1] = {0.5f};
    int64_t big[3] = {4, 9, INT64_MAX};
    test_operand int_by_float[2] = {T1("a", KILN_INT64, 3, big), T1("b", KILN_FLOAT32, 1, half)};
    tr_compute(&r, 15, "Pow", NULL, 2, int_by_float, KILN_INT64, 1);
    const int64_t *y = r.out[0].data;
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 3);
    assert_int_equal(y[2], 3037000499LL);
    tr_free(&r);
}

static void where_broadcasts_three_ways(void **state)
{
    (void)state;
    uint8_t condition[2] = {1, 0};
    float x[3] = {1, 2, 3}, y = -1;
    test_operand in[3] = {{"a", KILN_BOOL, 2, {2, 1}, condition, false},
                          {"b", KILN_FLOAT32, 2, {1, 3}, x, false},
                          {"c", KILN_FLOAT32, 0, {0}, &y, false}};
    test_run r;
    tr_compute(&r, 16, "Where", NULL, 3, in, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 3});
    assert_memory_equal(r.out[0].data, ((float[]){1, 2, 3, -1, -1, -1}), 6 * sizeof(float));
    tr_free(&r);
}

static void variadic_broadcast_and_nan(void **state)
{
    (void)state;
    float a[2] = {1, NAN}, b[3] = {0, 4, 8}, c[1] = {2};
    test_operand in[3] = {
        {"a", KILN_FLOAT32, 2, {2, 1}, a, false}, T1("b", KILN_FLOAT32, 3, b), T1("c", KILN_FLOAT32, 1, c)};
    test_run r;
    tr_compute(&r, 13, "Mean", NULL, 3, in, KILN_FLOAT32, 1);
    const float *y = r.out[0].data;
    assert_int_equal(tensor_numel(&r.out[0]), 6);
    assert_true(y[0] == 1 && y[1] == 7.0f / 3 && y[2] == 11.0f / 3 && isnan(y[3]));
    tr_free(&r);
    tr_compute(&r, 13, "Max", NULL, 3, in, KILN_FLOAT32, 1);
    y = r.out[0].data;
    assert_true(y[0] == 2 && y[1] == 4 && y[2] == 8 && isnan(y[3]) && isnan(y[4]) && isnan(y[5]));
    tr_free(&r);
    tr_compute(&r, 13, "Sum", NULL, 1, &in[0], KILN_FLOAT32, 1);
    y = r.out[0].data;
    assert_true(y[0] == 1 && isnan(y[1]));
    tr_free(&r);
}

static void empty_tensors_broadcast(void **state)
{
    (void)state;
    float row[3] = {1, 2, 3};
    test_operand in[2] = {{"a", KILN_FLOAT32, 2, {0, 3}, row, false}, T1("b", KILN_FLOAT32, 3, row)};
    test_run r;
    tr_compute(&r, 13, "Add", NULL, 2, in, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 2, (const int64_t[]){0, 3});
    tr_free(&r);
    tr_compute(&r, 13, "Sigmoid", NULL, 1, in, KILN_FLOAT32, 1);
    assert_int_equal(tensor_numel(&r.out[0]), 0);
    tr_free(&r);
}

static void prelu_slope_broadcasts_towards_x_only(void **state)
{
    (void)state;
    float x[4] = {-1, 2, -3, 4}, slope[2] = {0.5f, 0.25f}, wide[4] = {0};
    test_operand good[2] = {{"a", KILN_FLOAT32, 2, {2, 2}, x, false}, T1("b", KILN_FLOAT32, 2, slope)};
    test_run r;
    tr_compute(&r, 16, "PRelu", NULL, 2, good, KILN_FLOAT32, 1);
    assert_memory_equal(r.out[0].data, ((float[]){-0.5f, 2, -1.5f, 4}), sizeof x);
    tr_free(&r);
    test_operand bad[2] = {T1("a", KILN_FLOAT32, 2, slope), {"b", KILN_FLOAT32, 2, {2, 2}, wide, false}};
    tr_init(&r, 16);
    tr_node_of_operands(&r, "PRelu", NULL, 2, bad, KILN_FLOAT32);
    assert_int_equal(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT);
    tr_free(&r);
}

static void isinf_detects_each_side(void **state)
{
    (void)state;
    float x[4] = {INFINITY, -INFINITY, NAN, 1};
    test_operand in = T1("a", KILN_FLOAT32, 4, x);
    pbw attrs = {0};
    tm_attr_int(&attrs, "detect_positive", 0);
    test_run r;
    tr_compute(&r, 10, "IsInf", &attrs, 1, &in, KILN_BOOL, 1);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){0, 1, 0, 0}), 4);
    tr_free(&r);
    pbw_free(&attrs);
    tr_compute(&r, 9, "IsNaN", NULL, 1, &in, KILN_BOOL, 1);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){0, 0, 1, 0}), 4);
    tr_free(&r);
}

static void opset18_bitwise_and_mish(void **state)
{
    (void)state;
    int32_t a[2] = {12, -1}, b[2] = {10, 7};
    test_operand ints[2] = {T1("a", KILN_INT32, 2, a), T1("b", KILN_INT32, 2, b)};
    test_run r;
    tr_compute(&r, 18, "BitwiseAnd", NULL, 2, ints, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, ((int32_t[]){8, 7}), sizeof a);
    tr_free(&r);
    uint8_t u[2] = {0, 0x0f};
    test_operand bytes = T1("a", KILN_UINT8, 2, u);
    tr_compute(&r, 18, "BitwiseNot", NULL, 1, &bytes, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, ((uint8_t[]){0xff, 0xf0}), 2);
    tr_free(&r);
    float x[4] = {0, 1, -1, 30};
    test_operand floats = T1("a", KILN_FLOAT32, 4, x);
    tr_compute(&r, 18, "Mish", NULL, 1, &floats, KILN_FLOAT32, 1);
    const float *y = r.out[0].data;
    float expected[4] = {0, 0.865098f, -0.303401f, 30};
    for (int i = 0; i < 4; i++) assert_true(fabsf(y[i] - expected[i]) < 1e-5f);
    tr_free(&r);
}

/* A large broadcast Add run on the session's thread pool gives the same numbers as the plain loop. */
static void threads_give_the_same_result(void **state)
{
    (void)state;
    enum { ROWS = 1000, COLS = 97 };
    float *a = malloc(ROWS * COLS * sizeof(float)), b[COLS];
    for (int i = 0; i < ROWS * COLS; i++) a[i] = (float)(i % 101) * 0.5f;
    for (int j = 0; j < COLS; j++) b[j] = (float)j;
    test_operand in[2] = {{"a", KILN_FLOAT32, 2, {ROWS, COLS}, a, false}, T1("b", KILN_FLOAT32, COLS, b)};
    test_run r;
    tr_init(&r, 13);
    tr_node_of_operands(&r, "Add", NULL, 2, in, KILN_FLOAT32);
    assert_int_equal(tr_run(&r, 3), KILN_OK);
    const float *y = r.out[0].data;
    for (int i = 0; i < ROWS * COLS; i++) assert_true(y[i] == a[i] + b[i % COLS]);
    tr_free(&r);
    free(a);
}

/* ---- vectorised float32 functions against the operators' reference expressions ------------------------ */

static double reference_exp(float x) { return expf(x); }
static double reference_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static double reference_tanh(float x) { return tanhf(x); }
static double reference_erf(float x) { return erff(x); }

static void check_vector_function(vmath_f32_fn fn, double (*reference)(float), float lo, float hi)
{
    enum { N = 200003 }; /* odd: the last lanes take the masked path */
    float *in = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) in[i] = lo + (hi - lo) * (float)i / (N - 1);
    fn(out, in, N);
    for (int i = 0; i < N; i++) {
        double expected = reference(in[i]);
        if (isinf(expected)) assert_true(out[i] == expected);
        else if (fabs(out[i] - expected) > 1e-6 * fabs(expected) + 1e-37)
            fail_msg("f(%.9g) = %.9g, expected %.9g", in[i], out[i], expected);
    }
    float special[7] = {NAN, INFINITY, -INFINITY, 0.0f, 88.8f, -104.5f, 1e-20f};
    float got[7];
    for (int n = 1; n <= 7; n++) { /* every tail length, each element on its own */
        fn(got, special, n);
        for (int i = 0; i < n; i++) {
            double expected = reference(special[i]);
            if (isnan(expected)) assert_true(isnan(got[i]));
            else assert_true(fabs(got[i] - expected) <= 1e-6 * fabs(expected) || got[i] == expected);
        }
    }
    free(in);
    free(out);
}

/* The row softmax against softmax in double: exponentials under 1.7e-38 may read as 0, NaN spreads to the row. */
static void check_softmax_rows(vmath_softmax_fn softmax)
{
    random_seed(41);
    const int64_t lengths[] = {1, 2, 7, 8, 9, 31, 128, 1000};
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
        for (int kind = 0; kind < 4; kind++) {
            int64_t n = lengths[l];
            float *x = random_floats(n, -20, 20), *y = malloc((size_t)n * sizeof(float));
            if (kind == 1) /* an attention mask */
                for (int64_t j = 0; j < n; j += 3) x[j] = j ? -10000.0f : x[j];
            if (kind == 2) x[n / 2] = -INFINITY;
            if (kind == 3) x[n - 1] = NAN;
            softmax(y, x, n);
            double max = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; j++) max = x[j] > max ? x[j] : max;
            for (int64_t j = 0; j < n; j++) sum += exp((double)x[j] - max);
            for (int64_t j = 0; j < n; j++) {
                double want = exp((double)x[j] - max) / sum;
                if (kind == 3) assert_true(isnan(y[j]));
                else if (fabs(y[j] - want) > 4e-6 * want + 2e-38) /* x - max is rounded to float */
                    fail_msg("n %lld: y[%lld] = %.9g, expected %.9g", (long long)n, (long long)j, y[j], want);
            }
            softmax(x, x, n); /* in place */
            for (int64_t j = 0; j < n; j++) assert_true(x[j] == y[j] || (isnan(x[j]) && isnan(y[j])));
            free(x), free(y);
        }
    /* +inf, or a row of -inf, gives inf - inf: NaN everywhere, as in the reference */
    float infinite[2][9], out[9];
    for (int j = 0; j < 9; j++) infinite[0][j] = (float)j, infinite[1][j] = -INFINITY;
    infinite[0][4] = INFINITY;
    for (int r = 0; r < 2; r++) {
        softmax(out, infinite[r], 9);
        for (int j = 0; j < 9; j++) assert_true(isnan(out[j]));
    }
}

/* Every set this CPU runs, not only the one vmath_fast_f32 picks. */
static void vectorised_functions_match_reference(void **state)
{
    (void)state;
    if (!vmath_fast_f32()) skip();
    const vmath_set *sets[2] = {vmath_fast_f32(), NULL};
#if defined(KILN_HAVE_X86_KERNELS)
    sets[0] = &vmath_avx2;
    if (platform_cpu_features()->avx512f) sets[1] = &vmath_avx512;
#endif
    for (int s = 0; s < 2 && sets[s]; s++) {
        const vmath_set *fast = sets[s];
        check_vector_function(fast->exp, reference_exp, -110, 90);
        check_vector_function(fast->sigmoid, reference_sigmoid, -100, 100);
        check_vector_function(fast->tanh, reference_tanh, -20, 20);
        check_vector_function(fast->erf, reference_erf, -6, 6);
        check_softmax_rows(fast->softmax);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broadcast_matches_reference),
        cmocka_unit_test(empty_output_runs_nothing),
        cmocka_unit_test(add_broadcasts_rows_and_columns),
        cmocka_unit_test(integer_arithmetic_wraps_and_truncates),
        cmocka_unit_test(integer_division_by_zero_fails_at_run),
        cmocka_unit_test(mod_signs),
        cmocka_unit_test(bad_attributes_and_dtypes_fail_at_load),
        cmocka_unit_test(bitshift_saturates_wide_shifts),
        cmocka_unit_test(round_halves_to_even),
        cmocka_unit_test(clip_bounds_inputs_and_attributes),
        cmocka_unit_test(pow_mixed_dtypes),
        cmocka_unit_test(where_broadcasts_three_ways),
        cmocka_unit_test(variadic_broadcast_and_nan),
        cmocka_unit_test(empty_tensors_broadcast),
        cmocka_unit_test(prelu_slope_broadcasts_towards_x_only),
        cmocka_unit_test(isinf_detects_each_side),
        cmocka_unit_test(opset18_bitwise_and_mish),
        cmocka_unit_test(threads_give_the_same_result),
        cmocka_unit_test(vectorised_functions_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
