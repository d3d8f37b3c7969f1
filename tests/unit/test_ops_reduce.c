/*
 * test_ops_reduce.c — the reducing operator families: Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax,
 * TopK and the normalisations.
 *
 * Each test builds a one-node model in memory, runs it through the public API and compares the outputs
 * with a naive reference written here from the ONNX definition (nested loops over every element, no
 * merged layouts, no shifted exponentials), on random shapes and axes, with one and two threads. Edge
 * cases (empty tensors and empty reduced sets, ties, NaN, opset-dependent semantics) and malformed nodes
 * (bad axes, bad attributes, unsupported modes and dtypes) have tests of their own.
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

#include "core/tensor.h"
#include "ops/axes.h"
#include "testlib.h"

/* ---- axes.c: the merged layout ----------------------------------------------------------------------- */

static void layout_merges_adjacent_dims(void **state)
{
    (void)state;
    reduce_layout l;
    const int64_t nchw[] = {2, 3, 4, 5};
    reduce_layout_init(&l, 4, nchw, (const bool[]){false, false, true, true});
    assert_int_equal(l.kept_rank, 1);
    assert_int_equal(l.kept_dims[0], 6);
    assert_int_equal(l.n_runs, 1);
    assert_int_equal(l.run_length, 20);
    assert_int_equal(l.run_stride, 1);
    reduce_layout_init(&l, 4, nchw, (const bool[]){true, false, true, true});
    assert_int_equal(l.n_out, 3);
    assert_int_equal(l.n_runs, 2);
    assert_int_equal(reduce_layout_base(&l, 2), 40);
    assert_int_equal(reduce_layout_run(&l, 1), 60);
    const int64_t with_ones[] = {2, 1, 3};
    reduce_layout_init(&l, 3, with_ones, (const bool[]){true, false, true});
    assert_int_equal(l.reduced_rank, 1);
    assert_int_equal(l.n_runs, 1);
    assert_int_equal(l.run_length, 6);
    const int64_t empty[] = {2, 0, 3};
    reduce_layout_init(&l, 3, empty, (const bool[]){false, true, false});
    assert_int_equal(l.n_out, 6);
    assert_int_equal(l.n_reduced, 0);
    assert_int_equal(l.n_runs, 0);
}

/* ---- Reduce* ------------------------------------------------------------------------------------------ */

typedef struct reduce_case {
    const char *op;
    int axes_input_since;
} reduce_case;

static const reduce_case reduce_cases[] = {
    {"ReduceSum", 13}, {"ReduceMean", 18}, {"ReduceMax", 18},    {"ReduceMin", 18},       {"ReduceProd", 18},
    {"ReduceL1", 18},  {"ReduceL2", 18},   {"ReduceLogSum", 18}, {"ReduceLogSumExp", 18}, {"ReduceSumSquare", 18},
};

/* The ONNX definition, element by element. */
static double reduce_finish(const char *op, double sum, double sum_abs, double sum_sq, double prod, double max,
                            double min, double sum_exp, int64_t count)
{
    if (!strcmp(op, "ReduceSum")) return sum;
    if (!strcmp(op, "ReduceMean")) return sum / (double)count;
    if (!strcmp(op, "ReduceMax")) return max;
    if (!strcmp(op, "ReduceMin")) return min;
    if (!strcmp(op, "ReduceProd")) return prod;
    if (!strcmp(op, "ReduceL1")) return sum_abs;
    if (!strcmp(op, "ReduceL2")) return sqrt(sum_sq);
    if (!strcmp(op, "ReduceLogSum")) return log(sum);
    if (!strcmp(op, "ReduceLogSumExp")) return log(sum_exp);
    return sum_sq;
}

static void reduce_reference(const char *op, const float *x, int rank, const int64_t *dims, const bool *mask,
                             double *out, int64_t n_out)
{
    int64_t kept_dims[KILN_MAX_RANK];
    int kept = 0;
    for (int d = 0; d < rank; d++)
        if (!mask[d]) kept_dims[kept++] = dims[d];
    for (int64_t o = 0; o < n_out; o++) {
        double sum = 0, sum_abs = 0, sum_sq = 0, prod = 1, max = -INFINITY, min = INFINITY, sum_exp = 0;
        int64_t count = 0, coords[KILN_MAX_RANK], kc[KILN_MAX_RANK];
        unravel(o, kept, kept_dims, kc);
        for (int64_t i = 0; i < shape_numel(rank, dims); i++) {
            unravel(i, rank, dims, coords);
            bool mine = true;
            for (int d = 0, k = 0; d < rank; d++)
                if (!mask[d] && coords[d] != kc[k++]) mine = false;
            if (!mine) continue;
            double v = x[i];
            sum += v, sum_abs += fabs(v), sum_sq += v * v, prod *= v, sum_exp += exp(v), count++;
            max = v > max ? v : max;
            min = v < min ? v : min;
        }
        out[o] = reduce_finish(op, sum, sum_abs, sum_sq, prod, max, min, sum_exp, count);
    }
}

/* One random reduction: shape, axes (some negative), keepdims, attribute or input axes by opset. */
static void check_random_reduce(const reduce_case *c, int opset, int threads, int rank, const int64_t *dims)
{
    bool mask[KILN_MAX_RANK] = {false};
    int64_t axes[KILN_MAX_RANK];
    int n_axes = 0;
    for (int d = 0; d < rank; d++)
        if (random_int(0, 1)) {
            mask[d] = true;
            axes[n_axes++] = random_int(0, 1) ? d : d - rank;
        }
    if (n_axes == 0)
        for (int d = 0; d < rank; d++) mask[d] = true; /* empty axes: every dim */
    bool keepdims = random_int(0, 1);
    int64_t n = shape_numel(rank, dims), out_dims[KILN_MAX_RANK];
    int out_rank = 0;
    for (int d = 0; d < rank; d++)
        if (!mask[d] || keepdims) out_dims[out_rank++] = mask[d] ? 1 : dims[d];
    bool positive = !strcmp(c->op, "ReduceLogSum");
    float *x = random_floats(n, positive ? 0.1 : -2, 2);
    int64_t n_out = shape_numel(out_rank, out_dims);
    double *want = malloc((size_t)(n_out + 1) * sizeof *want);
    reduce_reference(c->op, x, rank, dims, mask, want, n_out);

    test_run r;
    tr_init(&r, opset);
    pbw attrs = {0};
    tm_attr_int(&attrs, "keepdims", keepdims);
    const char *more[] = {"axes", NULL};
    bool axes_input = opset >= c->axes_input_since;
    if (axes_input)
        tm_initializer(&r.tm, "axes", KILN_INT64, 1, (const int64_t[]){n_axes}, axes);
    else if (n_axes)
        tm_attr_ints(&attrs, "axes", axes, n_axes);
    kiln_status st = tr_run_node(&r, c->op, axes_input ? more : NULL, 1, &attrs, threads, KILN_FLOAT32, rank, dims, x);
    if (st != KILN_OK) fail_msg("%s: %s", c->op, kiln_last_error());
    assert_shape(&r.out[0], out_rank, out_dims);
    assert_close(r.out[0].data, want, n_out, 1e-4);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(want);
}

static void reduce_matches_reference(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof reduce_cases / sizeof reduce_cases[0]; c++)
        for (int trial = 0; trial < 24; trial++) {
            int rank;
            int64_t dims[KILN_MAX_RANK];
            random_shape(0, 4, 5, &rank, dims);
            check_random_reduce(&reduce_cases[c], trial % 2 ? 13 : 18, 1, rank, dims);
        }
}

static void reduce_parallel_matches_reference(void **state)
{
    (void)state;
    const int64_t rows[] = {64, 300}, columns[] = {300, 64}, cube[] = {16, 40, 30};
    for (size_t c = 0; c < sizeof reduce_cases / sizeof reduce_cases[0]; c++) {
        check_random_reduce(&reduce_cases[c], 18, 2, 2, rows);
        check_random_reduce(&reduce_cases[c], 18, 2, 2, columns);
        check_random_reduce(&reduce_cases[c], 13, 2, 3, cube);
    }
}

/* Reducing a dim of size 0 gives each fold's identity. */
static void reduce_empty_set_gives_identity(void **state)
{
    (void)state;
    const struct {
        const char *op;
        float value;
    } cases[] = {{"ReduceSum", 0},
                 {"ReduceProd", 1},
                 {"ReduceMax", -INFINITY},
                 {"ReduceMin", INFINITY},
                 {"ReduceL1", 0},
                 {"ReduceL2", 0},
                 {"ReduceSumSquare", 0},
                 {"ReduceLogSum", -INFINITY},
                 {"ReduceLogSumExp", -INFINITY}};
    const int64_t dims[] = {2, 0, 4}, out_dims[] = {2, 1, 4};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_run r;
        tr_init(&r, 18);
        tm_initializer(&r.tm, "axes", KILN_INT64, 1, (const int64_t[]){1}, (const int64_t[]){1});
        float x[1];
        assert_int_equal(tr_run_node(&r, cases[c].op, LIST("axes"), 1, NULL, 1, KILN_FLOAT32, 3, dims, x), KILN_OK);
        assert_shape(&r.out[0], 3, out_dims);
        for (int i = 0; i < 8; i++) assert_true(((float *)r.out[0].data)[i] == cases[c].value);
        tr_free(&r);
    }
}

static void reduce_empty_output(void **state)
{
    (void)state;
    const int64_t dims[] = {0, 3}, out_dims[] = {0};
    test_run r;
    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1}, 1);
    tm_attr_int(&attrs, "keepdims", 0);
    float x[1];
    assert_int_equal(tr_run_node(&r, "ReduceMean", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 1, out_dims);
    tr_free(&r);
    pbw_free(&attrs);
}

/* Empty axes reduce everything, unless noop_with_empty_axes makes the operator an identity. */
static void reduce_noop_with_empty_axes(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3};
    const float x[] = {1, -2, 3, -4, 5, -6};
    for (int noop = 0; noop <= 1; noop++) {
        test_run r;
        tr_init(&r, 18);
        pbw attrs = {0};
        tm_attr_int(&attrs, "noop_with_empty_axes", noop);
        tm_initializer(&r.tm, "axes", KILN_INT64, 1, (const int64_t[]){0}, (const int64_t[]){0});
        assert_int_equal(tr_run_node(&r, "ReduceSumSquare", LIST("axes"), 1, &attrs, 1, KILN_FLOAT32, 2, dims, x),
                         KILN_OK);
        const float *y = r.out[0].data;
        if (noop) {
            assert_shape(&r.out[0], 2, dims);
            assert_memory_equal(y, x, sizeof x);
        } else {
            assert_shape(&r.out[0], 2, (const int64_t[]){1, 1});
            assert_true(y[0] == 91);
        }
        tr_free(&r);
        pbw_free(&attrs);
    }
}

/* Integer reductions are exact and wrap as the type does; the empty max is the type's minimum. */
static void reduce_integers(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3};
    const int32_t xi[] = {7, -3, 2, -8, 5, -1};
    const struct {
        const char *op;
        int32_t want[2];
    } cases[] = {{"ReduceSum", {6, -4}},        {"ReduceMean", {2, -1}},   {"ReduceMax", {7, 5}},
                 {"ReduceMin", {-3, -8}},       {"ReduceProd", {-42, 40}}, {"ReduceL1", {12, 14}},
                 {"ReduceSumSquare", {62, 90}}, {"ReduceL2", {7, 9}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_run r;
        tr_init(&r, 13);
        pbw attrs = {0};
        tm_attr_int(&attrs, "keepdims", 0);
        tm_initializer(&r.tm, "axes", KILN_INT64, 1, (const int64_t[]){1}, (const int64_t[]){1});
        bool input = !strcmp(cases[c].op, "ReduceSum");
        if (!input) tm_attr_ints(&attrs, "axes", (const int64_t[]){1}, 1);
        assert_int_equal(
            tr_run_node(&r, cases[c].op, input ? LIST("axes") : NULL, 1, &attrs, 1, KILN_INT32, 2, dims, xi), KILN_OK);
        assert_int_equal(r.out[0].dtype, KILN_INT32);
        assert_memory_equal(r.out[0].data, cases[c].want, sizeof cases[c].want);
        tr_free(&r);
        pbw_free(&attrs);
    }
    const uint8_t xu[] = {200, 100, 3};
    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "ReduceProd", NULL, 1, NULL, 1, KILN_UINT8, 1, (const int64_t[]){3}, xu), KILN_OK);
    assert_int_equal(((uint8_t *)r.out[0].data)[0], (uint8_t)(200 * 100 * 3));
    tr_free(&r);
    const int8_t none[1] = {0};
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "ReduceMax", NULL, 1, NULL, 1, KILN_INT8, 1, (const int64_t[]){0}, none), KILN_OK);
    assert_int_equal(((int8_t *)r.out[0].data)[0], INT8_MIN);
    tr_free(&r);
}

static void reduce_log_sum_exp_is_stable(void **state)
{
    (void)state;
    const double x[] = {1000, 1000, -INFINITY, 1e308};
    test_run r;
    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1}, 1);
    assert_int_equal(
        tr_run_node(&r, "ReduceLogSumExp", NULL, 1, &attrs, 1, KILN_FLOAT64, 2, (const int64_t[]){2, 2}, x), KILN_OK);
    const double *y = r.out[0].data;
    assert_true(fabs(y[0] - (1000 + log(2.0))) < 1e-9);
    assert_true(y[1] == 1e308);
    tr_free(&r);
    pbw_free(&attrs);
}

static void reduce_refuses_bad_nodes(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3};
    const float x[6] = {0};
    test_run r;

    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){2}, 1);
    assert_refused(tr_run_node(&r, "ReduceMax", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "out of range");
    tr_free(&r);
    pbw_free(&attrs);

    tr_init(&r, 13);
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1, -1}, 2);
    assert_refused(tr_run_node(&r, "ReduceMin", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "repeated");
    tr_free(&r);
    pbw_free(&attrs);

    tr_init(&r, 13);
    tm_attr_float(&attrs, "keepdims", 1.0f);
    assert_refused(tr_run_node(&r, "ReduceMean", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "keepdims");
    tr_free(&r);
    pbw_free(&attrs);

    tr_init(&r, 13); /* axes became an input of ReduceMean only in opset 18 */
    tm_initializer(&r.tm, "axes", KILN_INT64, 1, (const int64_t[]){1}, (const int64_t[]){1});
    assert_refused(tr_run_node(&r, "ReduceMean", LIST("axes"), 1, NULL, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "inputs");
    tr_free(&r);

    tr_init(&r, 18);
    tm_initializer(&r.tm, "axes", KILN_INT32, 1, (const int64_t[]){1}, (const int32_t[]){1});
    assert_refused(tr_run_node(&r, "ReduceL2", LIST("axes"), 1, NULL, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "dtype");
    tr_free(&r);

    tr_init(&r, 13);
    const uint8_t flags[6] = {0};
    assert_int_equal(tr_run_node(&r, "ReduceSum", NULL, 1, NULL, 1, KILN_BOOL, 2, dims, flags), KILN_ERR_UNSUPPORTED);
    tr_free(&r);
}

/* ---- ArgMax and ArgMin ------------------------------------------------------------------------------- */

static void check_arg(const char *op, const pbw *attrs, int rank, const int64_t *dims, const float *x, int out_rank,
                      const int64_t *out_dims, const int64_t *want)
{
    test_run r;
    tr_init(&r, 13);
    if (tr_run_node(&r, op, NULL, 1, attrs, 1, KILN_FLOAT32, rank, dims, x) != KILN_OK)
        fail_msg("%s: %s", op, kiln_last_error());
    assert_int_equal(r.out[0].dtype, KILN_INT64);
    assert_shape(&r.out[0], out_rank, out_dims);
    assert_memory_equal(r.out[0].data, want, (size_t)shape_numel(out_rank, out_dims) * sizeof *want);
    tr_free(&r);
}

static void arg_extremes_ties_and_nan(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 4};
    const float x[] = {1, 3, 3, 0, NAN, 2, NAN, -1};
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", -1);
    check_arg("ArgMax", &attrs, 2, dims, x, 2, (const int64_t[]){2, 1}, (const int64_t[]){1, 0});
    check_arg("ArgMin", &attrs, 2, dims, x, 2, (const int64_t[]){2, 1}, (const int64_t[]){3, 0});
    tm_attr_int(&attrs, "select_last_index", 1);
    tm_attr_int(&attrs, "keepdims", 0);
    check_arg("ArgMax", &attrs, 2, dims, x, 1, (const int64_t[]){2}, (const int64_t[]){2, 2});
    pbw_free(&attrs);
    /* default axis 0, with rows `inner` apart */
    const float columns[] = {1, 5, 3, 4, 2, 6};
    check_arg("ArgMin", NULL, 2, (const int64_t[]){2, 3}, columns, 2, (const int64_t[]){1, 3},
              (const int64_t[]){0, 1, 0});
}

static void arg_refuses_empty_axis(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    float x[1];
    assert_refused(tr_run_node(&r, "ArgMax", NULL, 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){0, 3}, x),
                   TEST_ANY_ERROR, "size 0");
    tr_free(&r);
}

/* ---- Softmax, LogSoftmax, Hardmax -------------------------------------------------------------------- */

/* Naive softmax over rows of n elements `inner` apart: exp(x) / sum exp(x), without the shift. */
static void softmax_reference(const char *op, const float *x, int64_t outer, int64_t n, int64_t inner, double *y)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *row = x + o * n * inner + i;
            double sum = 0;
            int64_t best = 0;
            for (int64_t j = 0; j < n; j++) {
                sum += exp(row[j * inner]);
                if (row[j * inner] > row[best * inner]) best = j;
            }
            for (int64_t j = 0; j < n; j++) {
                double *out = y + o * n * inner + i + j * inner;
                if (!strcmp(op, "Softmax"))
                    *out = exp(row[j * inner]) / sum;
                else if (!strcmp(op, "LogSoftmax"))
                    *out = row[j * inner] - log(sum);
                else
                    *out = j == best;
            }
        }
}

static void check_softmax(const char *op, int opset, int threads, int64_t axis, int rank, const int64_t *dims)
{
    int a = (int)(axis < 0 ? axis + rank : axis);
    int64_t n_all = shape_numel(rank, dims);
    int64_t outer = shape_span(dims, 0, a);
    int64_t n = opset >= 13 ? dims[a] : shape_span(dims, a, rank);
    int64_t inner = opset >= 13 ? shape_span(dims, a + 1, rank) : 1;
    float *x = random_floats(n_all, -5, 5);
    double *want = malloc((size_t)(n_all + 1) * sizeof *want);
    softmax_reference(op, x, outer, n, inner, want);
    test_run r;
    tr_init(&r, opset);
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", axis);
    if (tr_run_node(&r, op, NULL, 1, &attrs, threads, KILN_FLOAT32, rank, dims, x) != KILN_OK)
        fail_msg("%s: %s", op, kiln_last_error());
    assert_shape(&r.out[0], rank, dims);
    assert_close(r.out[0].data, want, n_all, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(want);
}

/* Before opset 13 the input is a matrix split at `axis`; from 13 the operator works along that dim alone. */
static void softmax_matches_reference_by_opset(void **state)
{
    (void)state;
    const char *ops[] = {"Softmax", "LogSoftmax", "Hardmax"};
    const int64_t dims[] = {2, 3, 4}, big[] = {40, 50, 30};
    for (int o = 0; o < 3; o++)
        for (int opset = 11; opset <= 13; opset += 2) {
            for (int64_t axis = -3; axis < 3; axis++) check_softmax(ops[o], opset, 1, axis, 3, dims);
            check_softmax(ops[o], opset, 2, 1, 3, big);
            check_softmax(ops[o], opset, 2, 2, 3, big);
        }
}

static void softmax_large_inputs_and_ties(void **state)
{
    (void)state;
    const float x[] = {1000, 1001, 1002, 5, 5, 5};
    const int64_t dims[] = {2, 3};
    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Softmax", NULL, 1, NULL, 1, KILN_FLOAT32, 2, dims, x), KILN_OK);
    const double want[] = {0.09003057, 0.24472847, 0.66524096, 1 / 3.0, 1 / 3.0, 1 / 3.0};
    assert_close(r.out[0].data, want, 6, 1e-6);
    tr_free(&r);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Hardmax", NULL, 1, NULL, 1, KILN_FLOAT32, 2, dims, x), KILN_OK);
    const float one_hot[] = {0, 0, 1, 1, 0, 0};
    assert_memory_equal(r.out[0].data, one_hot, sizeof one_hot);
    tr_free(&r);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "LogSoftmax", NULL, 1, NULL, 1, KILN_FLOAT64, 2, dims,
                                 (const double[]){1000, 1001, 1002, 5, 5, 5}),
                     KILN_OK);
    assert_true(fabs(((double *)r.out[0].data)[2] - log(0.66524096)) < 1e-6);
    tr_free(&r);
}

static void softmax_refuses_bad_axis_and_ints(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3};
    const float x[6] = {0};
    test_run r;
    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", 2);
    assert_refused(tr_run_node(&r, "Softmax", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, dims, x), TEST_ANY_ERROR,
                   "out of range");
    tr_free(&r);
    pbw_free(&attrs);
    tr_init(&r, 13);
    const int32_t xi[6] = {0};
    assert_int_equal(tr_run_node(&r, "Softmax", NULL, 1, NULL, 1, KILN_INT32, 2, dims, xi), KILN_ERR_UNSUPPORTED);
    tr_free(&r);
}

/* ---- TopK -------------------------------------------------------------------------------------------- */

/* Whether a ranks before b: larger (smaller) first, NaN above numbers, ties by index. */
static bool ref_before(float va, int64_t a, float vb, int64_t b, bool largest)
{
    if (va == vb || (isnan(va) && isnan(vb))) return a < b;
    bool greater = isnan(va) || (!isnan(vb) && va > vb);
    return greater == largest;
}

static void topk_reference(const float *x, int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest,
                           float *values, int64_t *indices)
{
    int64_t *order = malloc((size_t)(n + 1) * sizeof *order);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *row = x + o * n * inner + i;
            for (int64_t j = 0; j < n; j++) order[j] = j;
            for (int64_t j = 1; j < n; j++) /* insertion sort: stable and obviously right */
                for (int64_t m = j; m > 0 && ref_before(row[order[m] * inner], order[m], row[order[m - 1] * inner],
                                                        order[m - 1], largest);
                     m--) {
                    int64_t t = order[m];
                    order[m] = order[m - 1];
                    order[m - 1] = t;
                }
            for (int64_t j = 0; j < k; j++) {
                indices[o * k * inner + i + j * inner] = order[j];
                values[o * k * inner + i + j * inner] = row[order[j] * inner];
            }
        }
    free(order);
}

static void check_topk(int threads, int rank, const int64_t *dims, int axis, int64_t k, bool largest, bool ties)
{
    int64_t n_all = shape_numel(rank, dims);
    float *x = random_floats(n_all, -3, 3);
    if (ties)
        for (int64_t i = 0; i < n_all; i++) x[i] = (float)floor(x[i]);
    int64_t out_dims[KILN_MAX_RANK];
    for (int d = 0; d < rank; d++) out_dims[d] = d == axis ? k : dims[d];
    int64_t n_out = shape_numel(rank, out_dims);
    float *values = malloc((size_t)(n_out + 1) * sizeof *values);
    int64_t *indices = malloc((size_t)(n_out + 1) * sizeof *indices);
    topk_reference(x, shape_span(dims, 0, axis), dims[axis], shape_span(dims, axis + 1, rank), k, largest, values,
                   indices);
    test_run r;
    tr_init(&r, 11);
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", axis);
    tm_attr_int(&attrs, "largest", largest);
    tm_initializer(&r.tm, "k", KILN_INT64, 1, (const int64_t[]){1}, &k);
    if (tr_run_node(&r, "TopK", LIST("k"), 2, &attrs, threads, KILN_FLOAT32, rank, dims, x) != KILN_OK)
        fail_msg("TopK: %s", kiln_last_error());
    assert_shape(&r.out[0], rank, out_dims);
    assert_shape(&r.out[1], rank, out_dims);
    assert_memory_equal(r.out[0].data, values, (size_t)n_out * sizeof *values);
    assert_memory_equal(r.out[1].data, indices, (size_t)n_out * sizeof *indices);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(values);
    free(indices);
}

static void topk_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 60; trial++) {
        int rank;
        int64_t dims[KILN_MAX_RANK];
        random_shape(1, 3, 9, &rank, dims);
        int axis = random_int(0, rank - 1);
        check_topk(1, rank, dims, axis, random_int(0, (int)dims[axis]), random_int(0, 1), random_int(0, 1));
    }
    const int64_t big[] = {64, 200, 3};
    check_topk(2, 3, big, 1, 17, true, true);
    check_topk(2, 3, big, 1, 200, false, false);
}

static void topk_nan_and_integers(void **state)
{
    (void)state;
    const float x[] = {1, NAN, 3, 3};
    test_run r;
    tr_init(&r, 11);
    tm_initializer(&r.tm, "k", KILN_INT64, 1, (const int64_t[]){1}, (const int64_t[]){3});
    assert_int_equal(tr_run_node(&r, "TopK", LIST("k"), 2, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){4}, x), KILN_OK);
    const float *v = r.out[0].data;
    assert_true(isnan(v[0]) && v[1] == 3 && v[2] == 3);
    assert_memory_equal(r.out[1].data, ((const int64_t[]){1, 2, 3}), 3 * sizeof(int64_t));
    tr_free(&r);
    /* opset 1: k is an attribute; integers */
    const int64_t xi[] = {INT64_MIN, 5, INT64_MAX, 5};
    tr_init(&r, 1);
    pbw attrs = {0};
    tm_attr_int(&attrs, "k", 2);
    assert_int_equal(tr_run_node(&r, "TopK", NULL, 2, &attrs, 1, KILN_INT64, 1, (const int64_t[]){4}, xi), KILN_OK);
    assert_memory_equal(r.out[0].data, ((const int64_t[]){INT64_MAX, 5}), 2 * sizeof(int64_t));
    assert_memory_equal(r.out[1].data, ((const int64_t[]){2, 1}), 2 * sizeof(int64_t));
    tr_free(&r);
    pbw_free(&attrs);
}

static void topk_refuses_bad_k(void **state)
{
    (void)state;
    const float x[4] = {0};
    const int64_t bad[] = {5, -1};
    for (int i = 0; i < 2; i++) {
        test_run r;
        tr_init(&r, 11);
        tm_initializer(&r.tm, "k", KILN_INT64, 1, (const int64_t[]){1}, &bad[i]);
        assert_refused(tr_run_node(&r, "TopK", LIST("k"), 2, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){4}, x),
                       TEST_ANY_ERROR, "out of range");
        tr_free(&r);
    }
    test_run r;
    tr_init(&r, 1);
    assert_refused(tr_run_node(&r, "TopK", NULL, 2, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){4}, x), TEST_ANY_ERROR,
                   "'k'");
    tr_free(&r);
}

/* ---- normalisations ---------------------------------------------------------------------------------- */

/* Mean and biased variance of n values `stride` apart, two-pass in double. */
static void ref_moments(const float *x, int64_t n, int64_t stride, double *mean, double *var)
{
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < n; j++) sum += x[j * stride];
    *mean = sum / (double)n;
    for (int64_t j = 0; j < n; j++) sq += (x[j * stride] - *mean) * (x[j * stride] - *mean);
    *var = sq / (double)n;
}

/* BatchNormalization's scale, bias, mean and variance, all of one shape. */
typedef struct batchnorm_params {
    int rank;
    int64_t dims[2];
    const float *scale, *bias, *mean, *var;
} batchnorm_params;

/* Runs BatchNormalization on a 3-D float32 x with the parameters as initializers and compares the n outputs
 * with `want`. */
static void check_batchnorm(int opset, const pbw *attrs, const batchnorm_params *p, const int64_t *dims, const float *x,
                            const double *want, int64_t n)
{
    test_run r;
    tr_init(&r, opset);
    tm_initializer(&r.tm, "s", KILN_FLOAT32, p->rank, p->dims, p->scale);
    tm_initializer(&r.tm, "b", KILN_FLOAT32, p->rank, p->dims, p->bias);
    tm_initializer(&r.tm, "m", KILN_FLOAT32, p->rank, p->dims, p->mean);
    tm_initializer(&r.tm, "v", KILN_FLOAT32, p->rank, p->dims, p->var);
    assert_int_equal(
        tr_run_node(&r, "BatchNormalization", LIST("s", "b", "m", "v"), 1, attrs, 1, KILN_FLOAT32, 3, dims, x),
        KILN_OK);
    assert_close(r.out[0].data, want, n, 1e-5);
    tr_free(&r);
}

static void batchnorm_inference(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3, 5};
    float *x = random_floats(30, -2, 2);
    const float scale[] = {0.5f, 2, -1}, bias[] = {0, 1, -2}, mean[] = {0.1f, -0.3f, 1}, var[] = {1, 0.25f, 4};
    double want[30];
    for (int i = 0; i < 30; i++) {
        int c = i / 5 % 3;
        want[i] = scale[c] * (x[i] - mean[c]) / sqrt(var[c] + 1e-3) + bias[c];
    }
    const batchnorm_params params = {1, {3}, scale, bias, mean, var};
    for (int opset = 9; opset <= 15; opset += 6) {
        pbw attrs = {0};
        tm_attr_float(&attrs, "epsilon", 1e-3f);
        check_batchnorm(opset, &attrs, &params, dims, x, want, 30);
        pbw_free(&attrs);
    }
    free(x);
}

/* Opsets 7 and 8 with spatial=0 keep one set of parameters per (C, D1, ...) element. */
static void batchnorm_per_activation(void **state)
{
    (void)state;
    const int64_t dims[] = {3, 2, 2};
    float *x = random_floats(12, -2, 2);
    const float scale[] = {1, 2, 3, 4}, bias[] = {0, 1, 0, -1}, mean[] = {0, 0.5f, -0.5f, 1}, var[] = {1, 2, 3, 4};
    double want[12];
    for (int i = 0; i < 12; i++) want[i] = scale[i % 4] * (x[i] - mean[i % 4]) / sqrt(var[i % 4] + 1e-5) + bias[i % 4];
    const batchnorm_params params = {2, {2, 2}, scale, bias, mean, var};
    pbw attrs = {0};
    tm_attr_int(&attrs, "spatial", 0);
    check_batchnorm(7, &attrs, &params, dims, x, want, 12);
    pbw_free(&attrs);
    free(x);
}

/* Training statistics exist from opset 14 (training_mode; test_ops_misc2.c checks them); earlier opsets'
 * extra outputs are refused, as is a training_mode that is not 0 or 1. */
static void batchnorm_refuses_training(void **state)
{
    (void)state;
    const int64_t dims[] = {1, 1}, c1[] = {1};
    const float one[] = {1}, x[] = {0};
    const char *more[] = {"s", "s", "s", "s", NULL};
    for (int opset = 9; opset <= 15; opset += 6) {
        test_run r;
        tr_init(&r, opset);
        tm_initializer(&r.tm, "s", KILN_FLOAT32, 1, c1, one);
        pbw attrs = {0};
        if (opset >= 14) tm_attr_int(&attrs, "training_mode", 2);
        assert_refused(
            tr_run_node(&r, "BatchNormalization", more, opset >= 14 ? 1 : 3, &attrs, 1, KILN_FLOAT32, 2, dims, x),
            opset >= 14 ? KILN_ERR_MALFORMED : KILN_ERR_UNSUPPORTED, "training");
        tr_free(&r);
        pbw_free(&attrs);
    }
}

static void instancenorm_matches_reference(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 3, 4, 5}, c3[] = {3};
    float *x = random_floats(120, 100, 104); /* a large mean beside the spread */
    const float scale[] = {1, -2, 0.5f}, bias[] = {0.5f, 0, -1};
    double want[120];
    for (int row = 0; row < 6; row++) {
        double mean, var;
        ref_moments(x + row * 20, 20, 1, &mean, &var);
        for (int i = 0; i < 20; i++)
            want[row * 20 + i] = (x[row * 20 + i] - mean) / sqrt(var + 1e-5) * scale[row % 3] + bias[row % 3];
    }
    test_run r;
    tr_init(&r, 6);
    tm_initializer(&r.tm, "s", KILN_FLOAT32, 1, c3, scale);
    tm_initializer(&r.tm, "b", KILN_FLOAT32, 1, c3, bias);
    assert_int_equal(tr_run_node(&r, "InstanceNormalization", LIST("s", "b"), 1, NULL, 2, KILN_FLOAT32, 4, dims, x),
                     KILN_OK);
    assert_close(r.out[0].data, want, 120, 1e-4);
    tr_free(&r);
    free(x);
}

static void layernorm_matches_reference(void **state)
{
    (void)state;
    const int64_t dims[] = {4, 3, 5};
    float *x = random_floats(60, -1000, 1000);
    float *scale = random_floats(15, -2, 2), *bias = random_floats(15, -1, 1);
    /* axis 1: rows of 15; Scale is [3, 5], B is [5] repeated along the row */
    double want[60], want_mean[4], want_inv[4];
    for (int row = 0; row < 4; row++) {
        double mean, var;
        ref_moments(x + row * 15, 15, 1, &mean, &var);
        want_mean[row] = mean;
        want_inv[row] = 1 / sqrt(var + 1e-5);
        for (int i = 0; i < 15; i++)
            want[row * 15 + i] = (x[row * 15 + i] - mean) * want_inv[row] * scale[i] + bias[i % 5];
    }
    test_run r;
    tr_init(&r, 17);
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", -2);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 2, (const int64_t[]){3, 5}, scale);
    tm_initializer(&r.tm, "b", KILN_FLOAT32, 1, (const int64_t[]){5}, bias);
    assert_int_equal(tr_run_node(&r, "LayerNormalization", LIST("w", "b"), 3, &attrs, 2, KILN_FLOAT32, 3, dims, x),
                     KILN_OK);
    assert_close(r.out[0].data, want, 60, 1e-4);
    assert_shape(&r.out[1], 3, (const int64_t[]){4, 1, 1});
    assert_int_equal(r.out[2].dtype, KILN_FLOAT32);
    assert_close(r.out[1].data, want_mean, 4, 1e-6);
    assert_close(r.out[2].data, want_inv, 4, 1e-6);
    tr_free(&r);
    pbw_free(&attrs);

    tr_init(&r, 17); /* a Scale that does not broadcast to [3, 5] */
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 1, (const int64_t[]){3}, scale);
    assert_refused(tr_run_node(&r, "LayerNormalization", LIST("w"), 1, NULL, 1, KILN_FLOAT32, 3, dims, x),
                   TEST_ANY_ERROR, "broadcast");
    tr_free(&r);
    free(x);
    free(scale);
    free(bias);
}

static void lrn_matches_reference(void **state)
{
    (void)state;
    const int64_t dims[] = {2, 6, 3, 2};
    float *x = random_floats(72, -2, 2);
    double want[72];
    const int size = 4; /* even: the window reaches one channel further up than down */
    for (int i = 0; i < 72; i++) {
        int c = i / 6 % 6, n = i / 36, s = i % 6;
        double sq = 0;
        for (int j = c - 1; j <= c + 2; j++)
            if (j >= 0 && j < 6) sq += (double)x[n * 36 + j * 6 + s] * x[n * 36 + j * 6 + s];
        want[i] = x[i] / pow(2.0 + 0.02 / size * sq, 0.5);
    }
    test_run r;
    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_int(&attrs, "size", size);
    tm_attr_float(&attrs, "alpha", 0.02f);
    tm_attr_float(&attrs, "beta", 0.5f);
    tm_attr_float(&attrs, "bias", 2.0f);
    assert_int_equal(tr_run_node(&r, "LRN", NULL, 1, &attrs, 1, KILN_FLOAT32, 4, dims, x), KILN_OK);
    assert_close(r.out[0].data, want, 72, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
}

static void mvn_matches_reference(void **state)
{
    (void)state;
    const int64_t dims[] = {3, 4, 2, 5};
    float *x = random_floats(120, -3, 3);
    double want[120];
    for (int c = 0; c < 4; c++) { /* default axes {0, 2, 3}: statistics per channel */
        double sum = 0, sq = 0;
        for (int i = 0; i < 120; i++)
            if (i / 10 % 4 == c) sum += x[i];
        double mean = sum / 30;
        for (int i = 0; i < 120; i++)
            if (i / 10 % 4 == c) sq += (x[i] - mean) * (x[i] - mean);
        for (int i = 0; i < 120; i++)
            if (i / 10 % 4 == c) want[i] = (x[i] - mean) / (sqrt(sq / 30) + 1e-9);
    }
    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "MeanVarianceNormalization", NULL, 1, NULL, 2, KILN_FLOAT32, 4, dims, x), KILN_OK);
    assert_close(r.out[0].data, want, 120, 1e-5);
    tr_free(&r);
    tr_init(&r, 13);
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){4}, 1);
    assert_refused(tr_run_node(&r, "MeanVarianceNormalization", NULL, 1, &attrs, 1, KILN_FLOAT32, 4, dims, x),
                   TEST_ANY_ERROR, "out of range");
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_merges_adjacent_dims),
        cmocka_unit_test(reduce_matches_reference),
        cmocka_unit_test(reduce_parallel_matches_reference),
        cmocka_unit_test(reduce_empty_set_gives_identity),
        cmocka_unit_test(reduce_empty_output),
        cmocka_unit_test(reduce_noop_with_empty_axes),
        cmocka_unit_test(reduce_integers),
        cmocka_unit_test(reduce_log_sum_exp_is_stable),
        cmocka_unit_test(reduce_refuses_bad_nodes),
        cmocka_unit_test(arg_extremes_ties_and_nan),
        cmocka_unit_test(arg_refuses_empty_axis),
        cmocka_unit_test(softmax_matches_reference_by_opset),
        cmocka_unit_test(softmax_large_inputs_and_ties),
        cmocka_unit_test(softmax_refuses_bad_axis_and_ints),
        cmocka_unit_test(topk_matches_reference),
        cmocka_unit_test(topk_nan_and_integers),
        cmocka_unit_test(topk_refuses_bad_k),
        cmocka_unit_test(batchnorm_inference),
        cmocka_unit_test(batchnorm_per_activation),
        cmocka_unit_test(batchnorm_refuses_training),
        cmocka_unit_test(instancenorm_matches_reference),
        cmocka_unit_test(layernorm_matches_reference),
        cmocka_unit_test(lrn_matches_reference),
        cmocka_unit_test(mvn_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
