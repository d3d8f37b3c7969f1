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
    int drop = rand() % (out->rank + 1);
    t->dtype = KILN_FLOAT32;
    t->rank = out->rank - drop;
    for (int d = 0; d < t->rank; d++) t->dims[d] = rand() % 3 == 0 ? 1 : out->dims[d + drop];
    int64_t n = tensor_numel(t);
    t->data = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) ((float *)t->data)[i] = (float)(rand() % 1000);
}

static void random_output(kiln_tensor *out, bool large)
{
    out->dtype = KILN_FLOAT32;
    out->rank = rand() % 5;
    for (int d = 0; d < out->rank; d++) out->dims[d] = 1 + rand() % (large ? 40 : 5);
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
    srand(7);
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

typedef struct loaded {
    test_model m;
    kiln_model *model;
    kiln_session *session;
    kiln_tensor out;
} loaded;

static void attr_string_value(pbw *attrs, const char *name, const char *value)
{
    pbw a = {0};
    pbw_string_field(&a, 1, name);
    pbw_varint_field(&a, 20, 3); /* STRING */
    pbw_string_field(&a, 4, value);
    pbw_message_field(attrs, 5, &a);
    pbw_free(&a);
}

/* A model of one node `op` reading inputs named in[0..n_in) (an empty name is an omitted input) of the
 * given tensors' dtypes and shapes, writing "y" of dtype out_dtype. Inputs listed in `constant` become
 * initializers. */
static kiln_status load_node(loaded *l, int opset, const char *op, int n_in, const kiln_tensor *in,
                             const bool *constant, kiln_dtype out_dtype, const pbw *attrs)
{
    static const char *const names[] = {"a", "b", "c", "d"};
    const char *inputs[5] = {0};
    memset(l, 0, sizeof *l);
    tm_init(&l->m, opset);
    for (int i = 0; i < n_in; i++) {
        inputs[i] = in[i].dtype == KILN_UNDEFINED ? "" : names[i];
        if (in[i].dtype == KILN_UNDEFINED) continue;
        if (constant && constant[i]) tm_initializer(&l->m, names[i], in[i].dtype, in[i].rank, in[i].dims, in[i].data);
        else tm_input(&l->m, names[i], in[i].dtype, in[i].rank, in[i].dims);
    }
    tm_output(&l->m, "y", out_dtype);
    tm_node(&l->m, op, inputs, (const char *const[]){"y", NULL}, attrs);
    tm_finish(&l->m);
    return kiln_model_load_from_memory(l->m.model.data, l->m.model.size, NULL, 0, &l->model);
}

/* Runs the loaded model on the non-constant inputs; threads > 1 uses the session's pool. */
static kiln_status run_node(loaded *l, int n_in, const kiln_tensor *in, const bool *constant, int threads)
{
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.threads = threads;
    KILN_TRY(kiln_session_create(l->model, &options, &l->session));
    for (int i = 0, bound = 0; i < n_in; i++) {
        if (in[i].dtype == KILN_UNDEFINED || (constant && constant[i])) continue;
        KILN_TRY(kiln_session_set_input(l->session, bound++, in[i].dtype, in[i].rank, in[i].dims, in[i].data));
    }
    KILN_TRY(kiln_session_run(l->session));
    return kiln_session_output(l->session, 0, &l->out);
}

static void unload(loaded *l)
{
    kiln_session_free(l->session);
    kiln_model_free(l->model);
    tm_free(&l->m);
}

/* Loads and runs one node, asserting success; the result is l->out. */
static void compute(loaded *l, int opset, const char *op, int n_in, const kiln_tensor *in, const bool *constant,
                    kiln_dtype out_dtype, const pbw *attrs)
{
    kiln_status st = load_node(l, opset, op, n_in, in, constant, out_dtype, attrs);
    if (st == KILN_OK) st = run_node(l, n_in, in, constant, 1);
    if (st != KILN_OK) fail_msg("%s: %s", op, kiln_last_error());
}

#define T1(dtype, n, data) {dtype, 1, {n}, data}

static void add_broadcasts_rows_and_columns(void **state)
{
    (void)state;
    int32_t a[6] = {1, 2, 3, 4, 5, 6}, row[3] = {10, 20, 30}, column[2] = {100, 200};
    kiln_tensor by_row[2] = {{KILN_INT32, 2, {2, 3}, a}, T1(KILN_INT32, 3, row)};
    kiln_tensor by_column[2] = {{KILN_INT32, 2, {2, 3}, a}, {KILN_INT32, 2, {2, 1}, column}};
    loaded l;
    compute(&l, 13, "Add", 2, by_row, NULL, KILN_INT32, NULL);
    assert_int_equal(l.out.rank, 2);
    assert_memory_equal(l.out.data, ((int32_t[]){11, 22, 33, 14, 25, 36}), 6 * sizeof(int32_t));
    unload(&l);
    compute(&l, 13, "Sub", 2, by_column, NULL, KILN_INT32, NULL);
    assert_memory_equal(l.out.data, ((int32_t[]){-99, -98, -97, -196, -195, -194}), 6 * sizeof(int32_t));
    unload(&l);
}

static void integer_arithmetic_wraps_and_truncates(void **state)
{
    (void)state;
    int32_t x[4] = {7, -7, INT32_MIN, INT32_MAX}, y[4] = {2, 2, -1, 2};
    kiln_tensor in[2] = {T1(KILN_INT32, 4, x), T1(KILN_INT32, 4, y)};
    loaded l;
    compute(&l, 13, "Div", 2, in, NULL, KILN_INT32, NULL);
    assert_memory_equal(l.out.data, ((int32_t[]){3, -3, INT32_MIN, INT32_MAX / 2}), sizeof x);
    unload(&l);
    compute(&l, 13, "Mul", 2, in, NULL, KILN_INT32, NULL);
    assert_memory_equal(l.out.data, ((int32_t[]){14, -14, INT32_MIN, -2}), sizeof x);
    unload(&l);
    int8_t small[2] = {-128, 5};
    kiln_tensor one = T1(KILN_INT8, 2, small);
    compute(&l, 13, "Abs", 1, &one, NULL, KILN_INT8, NULL);
    assert_memory_equal(l.out.data, ((int8_t[]){-128, 5}), 2);
    unload(&l);
}

static void integer_division_by_zero_fails_at_run(void **state)
{
    (void)state;
    int64_t x[2] = {1, 2}, y[2] = {1, 0};
    kiln_tensor in[2] = {T1(KILN_INT64, 2, x), T1(KILN_INT64, 2, y)};
    const char *ops[2] = {"Div", "Mod"};
    for (int k = 0; k < 2; k++) {
        loaded l;
        assert_int_equal(load_node(&l, 13, ops[k], 2, in, NULL, KILN_INT64, NULL), KILN_OK);
        assert_int_equal(run_node(&l, 2, in, NULL, 1), KILN_ERR_RUNTIME);
        assert_non_null(strstr(kiln_last_error(), "division by zero"));
        unload(&l);
    }
}

static void mod_signs(void **state)
{
    (void)state;
    int32_t x[4] = {-4, 7, 5, -5}, y[4] = {3, -3, -3, 3};
    kiln_tensor in[2] = {T1(KILN_INT32, 4, x), T1(KILN_INT32, 4, y)};
    loaded l;
    compute(&l, 13, "Mod", 2, in, NULL, KILN_INT32, NULL); /* Python: sign of the divisor */
    assert_memory_equal(l.out.data, ((int32_t[]){2, -2, -1, 1}), sizeof x);
    unload(&l);
    pbw attrs = {0};
    tm_attr_int(&attrs, "fmod", 1);
    compute(&l, 13, "Mod", 2, in, NULL, KILN_INT32, &attrs); /* C: sign of the dividend */
    assert_memory_equal(l.out.data, ((int32_t[]){-1, 1, 2, -2}), sizeof x);
    unload(&l);
    pbw_free(&attrs);
}

static void bad_attributes_and_dtypes_fail_at_load(void **state)
{
    (void)state;
    float f[2] = {1, 2};
    uint8_t u[2] = {1, 2};
    int32_t i[2] = {1, 2};
    kiln_tensor floats[2] = {T1(KILN_FLOAT32, 2, f), T1(KILN_FLOAT32, 2, f)};
    kiln_tensor bytes[2] = {T1(KILN_UINT8, 2, u), T1(KILN_UINT8, 2, u)};
    kiln_tensor ints[1] = {T1(KILN_INT32, 2, i)};
    kiln_tensor mixed[2] = {T1(KILN_FLOAT32, 2, f), T1(KILN_INT32, 2, i)};
    loaded l;

    pbw direction = {0};
    attr_string_value(&direction, "direction", "UP");
    assert_int_equal(load_node(&l, 11, "BitShift", 2, bytes, NULL, KILN_UINT8, &direction), KILN_ERR_MALFORMED);
    assert_non_null(strstr(kiln_last_error(), "direction"));
    unload(&l);
    pbw_free(&direction);

    assert_int_equal(load_node(&l, 13, "Mod", 2, floats, NULL, KILN_FLOAT32, NULL), KILN_ERR_MALFORMED);
    unload(&l);
    assert_int_equal(load_node(&l, 13, "Exp", 1, ints, NULL, KILN_INT32, NULL), KILN_ERR_UNSUPPORTED);
    unload(&l);
    assert_int_not_equal(load_node(&l, 13, "BitShift", 2, floats, NULL, KILN_FLOAT32, NULL), KILN_OK);
    unload(&l);

    pbw alpha_as_int = {0};
    tm_attr_int(&alpha_as_int, "alpha", 2);
    assert_int_equal(load_node(&l, 13, "LeakyRelu", 1, floats, NULL, KILN_FLOAT32, &alpha_as_int), KILN_ERR_MALFORMED);
    unload(&l);
    pbw_free(&alpha_as_int);

    assert_int_not_equal(load_node(&l, 13, "Add", 2, mixed, NULL, KILN_FLOAT32, NULL), KILN_OK);
    unload(&l);
}

static void bitshift_saturates_wide_shifts(void **state)
{
    (void)state;
    uint8_t x[3] = {1, 255, 16}, amount[3] = {7, 9, 2};
    kiln_tensor in[2] = {T1(KILN_UINT8, 3, x), T1(KILN_UINT8, 3, amount)};
    pbw attrs = {0};
    attr_string_value(&attrs, "direction", "LEFT");
    loaded l;
    compute(&l, 11, "BitShift", 2, in, NULL, KILN_UINT8, &attrs);
    assert_memory_equal(l.out.data, ((uint8_t[]){128, 0, 64}), 3);
    unload(&l);
    pbw_free(&attrs);
}

static void round_halves_to_even(void **state)
{
    (void)state;
    float x[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f};
    kiln_tensor in = T1(KILN_FLOAT32, 6, x);
    loaded l;
    compute(&l, 11, "Round", 1, &in, NULL, KILN_FLOAT32, NULL);
    const float *y = l.out.data;
    float expected[6] = {0, 2, 2, -0.0f, -2, 2};
    for (int i = 0; i < 6; i++) assert_true(y[i] == expected[i]);
    unload(&l);
}

static void clip_bounds_inputs_and_attributes(void **state)
{
    (void)state;
    int8_t x[5] = {-128, -5, 0, 5, 127}, max = 3;
    kiln_tensor in[3] = {T1(KILN_INT8, 5, x), {KILN_UNDEFINED, 0, {0}, NULL}, {KILN_INT8, 0, {0}, &max}};
    loaded l;
    compute(&l, 13, "Clip", 3, in, NULL, KILN_INT8, NULL); /* min omitted, max a graph input */
    assert_memory_equal(l.out.data, ((int8_t[]){-128, -5, 0, 3, 3}), 5);
    unload(&l);
    bool constant[3] = {false, false, true};
    compute(&l, 13, "Clip", 3, in, constant, KILN_INT8, NULL); /* max an initializer */
    assert_memory_equal(l.out.data, ((int8_t[]){-128, -5, 0, 3, 3}), 5);
    unload(&l);

    float f[3] = {-2, 0.5f, 2};
    kiln_tensor floats = T1(KILN_FLOAT32, 3, f);
    pbw attrs = {0};
    tm_attr_float(&attrs, "min", -1);
    compute(&l, 6, "Clip", 1, &floats, NULL, KILN_FLOAT32, &attrs); /* max defaults to FLT_MAX */
    assert_memory_equal(l.out.data, ((float[]){-1, 0.5f, 2}), sizeof f);
    unload(&l);
    pbw_free(&attrs);

    int8_t two[2] = {1, 2};
    kiln_tensor bad[2] = {T1(KILN_INT8, 5, x), T1(KILN_INT8, 2, two)};
    kiln_status st = load_node(&l, 13, "Clip", 2, bad, NULL, KILN_INT8, NULL);
    if (st == KILN_OK) st = run_node(&l, 2, bad, NULL, 1);
    assert_int_equal(st, KILN_ERR_INVALID_ARGUMENT);
    unload(&l);
}

static void pow_mixed_dtypes(void **state)
{
    (void)state;
    int32_t base[4] = {2, -3, 2, -1}, exponent[4] = {10, 3, -1, -3};
    kiln_tensor ints[2] = {T1(KILN_INT32, 4, base), T1(KILN_INT32, 4, exponent)};
    loaded l;
    compute(&l, 15, "Pow", 2, ints, NULL, KILN_INT32, NULL);
    assert_memory_equal(l.out.data, ((int32_t[]){1024, -27, 0, -1}), sizeof base);
    unload(&l);

    float fbase[3] = {2, 4, 9};
    int64_t iexp[1] = {2};
    kiln_tensor float_by_int[2] = {T1(KILN_FLOAT32, 3, fbase), T1(KILN_INT64, 1, iexp)};
    compute(&l, 15, "Pow", 2, float_by_int, NULL, KILN_FLOAT32, NULL);
    assert_memory_equal(l.out.data, ((float[]){4, 16, 81}), sizeof fbase);
    unload(&l);

    float half[1] = {0.5f};
    int64_t big[3] = {4, 9, INT64_MAX};
    kiln_tensor int_by_float[2] = {T1(KILN_INT64, 3, big), T1(KILN_FLOAT32, 1, half)};
    compute(&l, 15, "Pow", 2, int_by_float, NULL, KILN_INT64, NULL);
    const int64_t *y = l.out.data;
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 3);
    assert_int_equal(y[2], 3037000499LL);
    unload(&l);
}

static void where_broadcasts_three_ways(void **state)
{
    (void)state;
    uint8_t condition[2] = {1, 0};
    float x[3] = {1, 2, 3}, y = -1;
    kiln_tensor in[3] = {{KILN_BOOL, 2, {2, 1}, condition}, {KILN_FLOAT32, 2, {1, 3}, x}, {KILN_FLOAT32, 0, {0}, &y}};
    loaded l;
    compute(&l, 16, "Where", 3, in, NULL, KILN_FLOAT32, NULL);
    assert_int_equal(l.out.rank, 2);
    assert_int_equal(l.out.dims[0], 2);
    assert_int_equal(l.out.dims[1], 3);
    assert_memory_equal(l.out.data, ((float[]){1, 2, 3, -1, -1, -1}), 6 * sizeof(float));
    unload(&l);
}

static void variadic_broadcast_and_nan(void **state)
{
    (void)state;
    float a[2] = {1, NAN}, b[3] = {0, 4, 8}, c[1] = {2};
    kiln_tensor in[3] = {{KILN_FLOAT32, 2, {2, 1}, a}, T1(KILN_FLOAT32, 3, b), T1(KILN_FLOAT32, 1, c)};
    loaded l;
    compute(&l, 13, "Mean", 3, in, NULL, KILN_FLOAT32, NULL);
    const float *y = l.out.data;
    assert_int_equal(tensor_numel(&l.out), 6);
    assert_true(y[0] == 1 && y[1] == 7.0f / 3 && y[2] == 11.0f / 3 && isnan(y[3]));
    unload(&l);
    compute(&l, 13, "Max", 3, in, NULL, KILN_FLOAT32, NULL);
    y = l.out.data;
    assert_true(y[0] == 2 && y[1] == 4 && y[2] == 8 && isnan(y[3]) && isnan(y[4]) && isnan(y[5]));
    unload(&l);
    compute(&l, 13, "Sum", 1, &in[0], NULL, KILN_FLOAT32, NULL);
    y = l.out.data;
    assert_true(y[0] == 1 && isnan(y[1]));
    unload(&l);
}

static void empty_tensors_broadcast(void **state)
{
    (void)state;
    float row[3] = {1, 2, 3};
    kiln_tensor in[2] = {{KILN_FLOAT32, 2, {0, 3}, row}, T1(KILN_FLOAT32, 3, row)};
    loaded l;
    compute(&l, 13, "Add", 2, in, NULL, KILN_FLOAT32, NULL);
    assert_int_equal(l.out.rank, 2);
    assert_int_equal(l.out.dims[0], 0);
    assert_int_equal(l.out.dims[1], 3);
    unload(&l);
    compute(&l, 13, "Sigmoid", 1, in, NULL, KILN_FLOAT32, NULL);
    assert_int_equal(tensor_numel(&l.out), 0);
    unload(&l);
}

static void prelu_slope_broadcasts_towards_x_only(void **state)
{
    (void)state;
    float x[4] = {-1, 2, -3, 4}, slope[2] = {0.5f, 0.25f}, wide[4] = {0};
    kiln_tensor good[2] = {{KILN_FLOAT32, 2, {2, 2}, x}, T1(KILN_FLOAT32, 2, slope)};
    loaded l;
    compute(&l, 16, "PRelu", 2, good, NULL, KILN_FLOAT32, NULL);
    assert_memory_equal(l.out.data, ((float[]){-0.5f, 2, -1.5f, 4}), sizeof x);
    unload(&l);
    kiln_tensor bad[2] = {T1(KILN_FLOAT32, 2, slope), {KILN_FLOAT32, 2, {2, 2}, wide}};
    kiln_status st = load_node(&l, 16, "PRelu", 2, bad, NULL, KILN_FLOAT32, NULL);
    if (st == KILN_OK) st = run_node(&l, 2, bad, NULL, 1);
    assert_int_equal(st, KILN_ERR_INVALID_ARGUMENT);
    unload(&l);
}

static void isinf_detects_each_side(void **state)
{
    (void)state;
    float x[4] = {INFINITY, -INFINITY, NAN, 1};
    kiln_tensor in = T1(KILN_FLOAT32, 4, x);
    pbw attrs = {0};
    tm_attr_int(&attrs, "detect_positive", 0);
    loaded l;
    compute(&l, 10, "IsInf", 1, &in, NULL, KILN_BOOL, &attrs);
    assert_memory_equal(l.out.data, ((uint8_t[]){0, 1, 0, 0}), 4);
    unload(&l);
    pbw_free(&attrs);
    compute(&l, 9, "IsNaN", 1, &in, NULL, KILN_BOOL, NULL);
    assert_memory_equal(l.out.data, ((uint8_t[]){0, 0, 1, 0}), 4);
    unload(&l);
}

static void opset18_bitwise_and_mish(void **state)
{
    (void)state;
    int32_t a[2] = {12, -1}, b[2] = {10, 7};
    kiln_tensor ints[2] = {T1(KILN_INT32, 2, a), T1(KILN_INT32, 2, b)};
    loaded l;
    compute(&l, 18, "BitwiseAnd", 2, ints, NULL, KILN_INT32, NULL);
    assert_memory_equal(l.out.data, ((int32_t[]){8, 7}), sizeof a);
    unload(&l);
    uint8_t u[2] = {0, 0x0f};
    kiln_tensor bytes = T1(KILN_UINT8, 2, u);
    compute(&l, 18, "BitwiseNot", 1, &bytes, NULL, KILN_UINT8, NULL);
    assert_memory_equal(l.out.data, ((uint8_t[]){0xff, 0xf0}), 2);
    unload(&l);
    float x[4] = {0, 1, -1, 30};
    kiln_tensor floats = T1(KILN_FLOAT32, 4, x);
    compute(&l, 18, "Mish", 1, &floats, NULL, KILN_FLOAT32, NULL);
    const float *y = l.out.data;
    float expected[4] = {0, 0.865098f, -0.303401f, 30};
    for (int i = 0; i < 4; i++) assert_true(fabsf(y[i] - expected[i]) < 1e-5f);
    unload(&l);
}

/* A large broadcast Add run on the session's thread pool gives the same numbers as the plain loop. */
static void threads_give_the_same_result(void **state)
{
    (void)state;
    enum { ROWS = 1000, COLS = 97 };
    float *a = malloc(ROWS * COLS * sizeof(float)), b[COLS];
    for (int i = 0; i < ROWS * COLS; i++) a[i] = (float)(i % 101) * 0.5f;
    for (int j = 0; j < COLS; j++) b[j] = (float)j;
    kiln_tensor in[2] = {{KILN_FLOAT32, 2, {ROWS, COLS}, a}, T1(KILN_FLOAT32, COLS, b)};
    loaded l;
    assert_int_equal(load_node(&l, 13, "Add", 2, in, NULL, KILN_FLOAT32, NULL), KILN_OK);
    assert_int_equal(run_node(&l, 2, in, NULL, 3), KILN_OK);
    const float *y = l.out.data;
    for (int i = 0; i < ROWS * COLS; i++) assert_true(y[i] == a[i] + b[i % COLS]);
    unload(&l);
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

static void vectorised_functions_match_reference(void **state)
{
    (void)state;
    const vmath_set *fast = vmath_fast_f32();
    if (!fast) skip();
    check_vector_function(fast->exp, reference_exp, -110, 90);
    check_vector_function(fast->sigmoid, reference_sigmoid, -100, 100);
    check_vector_function(fast->tanh, reference_tanh, -20, 20);
    check_vector_function(fast->erf, reference_erf, -6, 6);
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
