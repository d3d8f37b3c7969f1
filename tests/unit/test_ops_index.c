/*
 * test_ops_index.c — Compress, NonZero, Unique, ScatterND, ReverseSequence, MaxUnpool, Einsum and Det.
 *
 * Each test builds a one-node model in memory whose inputs are graph inputs (so nothing is folded at load;
 * the data-dependent operators are then computed while planning the run), runs it through the public API
 * and compares with a naive reference written here from the ONNX definition, on random shapes where that
 * matters. Einsum's fast path (float32 contractions through GEMM) is compared with its reference walk (the
 * float64 path) on the same equations. Data that is invalid only at run time (indices, lengths out of
 * range) must fail the run naming the value; malformed nodes and equations must be refused at load.
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
#include "testlib.h"

/* tr_init, the node over `in` (all graph inputs unless marked constant) and a run with `threads` threads. */
static kiln_status run_operands(test_run *r, int opset, const char *op, const pbw *attrs, int n_in,
                                const test_operand *in, int threads)
{
    tr_init(r, opset);
    tr_node_of_operands(r, op, attrs, n_in, in, KILN_UNDEFINED);
    return tr_run(r, threads);
}

static test_operand operand(const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    test_operand o = {.name = name, .dtype = dtype, .rank = rank, .data = data};
    for (int d = 0; d < rank; d++) o.dims[d] = dims[d];
    return o;
}

/* ---- Compress ---------------------------------------------------------------------------------------- */

static void check_compress(int rank, const int64_t *dims, bool has_axis, int axis, int64_t cond_len, int threads)
{
    int64_t n = shape_numel(rank, dims), len = has_axis ? dims[axis] : n, coords[8];
    float *x = random_floats(n, -1, 1);
    bool *condition = malloc((size_t)cond_len + 1);
    int64_t *picked = malloc((size_t)(cond_len + 1) * sizeof *picked), count = 0;
    for (int64_t i = 0; i < cond_len; i++) {
        condition[i] = i < len && random_int(0, 1);
        if (condition[i]) picked[count++] = i;
    }
    pbw attrs = {0};
    if (has_axis) tm_attr_int(&attrs, "axis", random_int(0, 1) ? axis : axis - rank);
    test_operand in[2] = {operand("x", KILN_FLOAT32, rank, dims, x),
                          operand("condition", KILN_BOOL, 1, (const int64_t[]){cond_len}, condition)};
    test_run r;
    assert_int_equal(run_operands(&r, 11, "Compress", has_axis ? &attrs : NULL, 2, in, threads), KILN_OK);
    const float *y = r.out[0].data;
    if (!has_axis) {
        assert_shape(&r.out[0], 1, &count);
        for (int64_t i = 0; i < count; i++) assert_true(y[i] == x[picked[i]]);
    } else {
        int64_t want[8];
        memcpy(want, dims, (size_t)rank * sizeof *want);
        want[axis] = count;
        assert_shape(&r.out[0], rank, want);
        for (int64_t i = 0; i < shape_numel(rank, want); i++) {
            unravel(i, rank, want, coords);
            coords[axis] = picked[coords[axis]];
            assert_true(y[i] == x[ravel(rank, dims, coords)]);
        }
    }
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(condition);
    free(picked);
}

static void compress_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 60; trial++) {
        int rank;
        int64_t dims[4];
        random_shape(1, 3, 5, &rank, dims);
        bool has_axis = random_int(0, 3) != 0;
        int axis = (int)random_int(0, rank - 1);
        int64_t len = has_axis ? dims[axis] : shape_numel(rank, dims);
        check_compress(rank, dims, has_axis, axis, random_int(0, len + 2), (int)random_int(1, 2));
    }
    check_compress(2, (const int64_t[]){0, 3}, true, 1, 3, 1);
    check_compress(2, (const int64_t[]){2, 3}, true, 0, 0, 1);
}

static void compress_refuses_selection_past_the_axis(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, 4};
    const bool condition[3] = {false, false, true};
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", 1);
    test_operand in[2] = {operand("x", KILN_FLOAT32, 2, (const int64_t[]){2, 2}, x),
                          operand("condition", KILN_BOOL, 1, (const int64_t[]){3}, condition)};
    test_run r;
    assert_refused(run_operands(&r, 11, "Compress", &attrs, 2, in, 1), TEST_ANY_ERROR, "selects item 2");
    tr_free(&r);
    pbw_free(&attrs);
    /* a float condition is not a bool tensor */
    const float fcond[2] = {1, 0};
    in[1] = operand("condition", KILN_FLOAT32, 1, (const int64_t[]){2}, fcond);
    assert_int_equal(tr_load_status(11, "Compress", NULL, 2, in, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED);
}

/* ---- NonZero ----------------------------------------------------------------------------------------- */

static void check_nonzero(int rank, const int64_t *dims, const int32_t *x)
{
    int64_t n = shape_numel(rank, dims), count = 0, coords[8];
    for (int64_t i = 0; i < n; i++) count += x[i] != 0;
    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "NonZero", NULL, 1, NULL, 1, KILN_INT32, rank, dims, x), KILN_OK);
    int64_t rows = rank > 0 ? rank : 1;
    assert_shape(&r.out[0], 2, (const int64_t[]){rows, count});
    const int64_t *y = r.out[0].data;
    for (int64_t i = 0, k = 0; i < n; i++) {
        if (!x[i]) continue;
        unravel(i, rank, dims, coords);
        for (int d = 0; d < rank; d++) assert_int_equal(y[d * count + k], coords[d]);
        if (rank == 0) assert_int_equal(y[k], 0);
        k++;
    }
    tr_free(&r);
}

static void nonzero_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 50; trial++) {
        int rank;
        int64_t dims[4];
        random_shape(1, 4, 5, &rank, dims);
        int64_t n = shape_numel(rank, dims);
        int32_t *x = malloc((size_t)n * sizeof *x);
        for (int64_t i = 0; i < n; i++) x[i] = random_int(0, 2) ? 0 : (int32_t)random_int(-5, 5);
        check_nonzero(rank, dims, x);
        free(x);
    }
    const int32_t seven = 7, none = 0;
    check_nonzero(0, NULL, &seven);
    check_nonzero(2, (const int64_t[]){3, 0}, &none);
}

static void nonzero_counts_nan_but_not_negative_zero(void **state)
{
    (void)state;
    const float x[4] = {-0.0f, NAN, 0.0f, 2.0f};
    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "NonZero", NULL, 1, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){4}, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){1, 2});
    assert_int_equal(((const int64_t *)r.out[0].data)[0], 1);
    assert_int_equal(((const int64_t *)r.out[0].data)[1], 3);
    tr_free(&r);
}

/* ---- Unique ------------------------------------------------------------------------------------------ */

/* Items are slices along an axis: x viewed as (outer, len, inner). */
typedef struct items {
    const int32_t *x;
    int64_t outer, len, inner;
} items;

static int compare_slices(const items *it, int64_t a, int64_t b)
{
    for (int64_t o = 0; o < it->outer; o++)
        for (int64_t i = 0; i < it->inner; i++) {
            int32_t va = it->x[(o * it->len + a) * it->inner + i], vb = it->x[(o * it->len + b) * it->inner + i];
            if (va != vb) return va < vb ? -1 : 1;
        }
    return 0;
}

/* The first occurrence of each distinct item, in order of appearance or sorted: O(n^2), plainly right. */
static int64_t reference_unique(const items *it, bool sorted, int64_t *first)
{
    int64_t count = 0;
    for (int64_t i = 0; i < it->len; i++) {
        bool seen = false;
        for (int64_t u = 0; u < count && !seen; u++) seen = compare_slices(it, first[u], i) == 0;
        if (!seen) first[count++] = i;
    }
    for (int64_t u = 1; sorted && u < count; u++)
        for (int64_t v = u; v > 0 && compare_slices(it, first[v - 1], first[v]) > 0; v--) {
            int64_t t = first[v];
            first[v] = first[v - 1];
            first[v - 1] = t;
        }
    return count;
}

static void check_unique(int rank, const int64_t *dims, const int32_t *x, bool has_axis, int axis, bool sorted)
{
    int64_t n = shape_numel(rank, dims);
    items it = {x, 1, n, 1};
    if (has_axis) it = (items){x, shape_span(dims, 0, axis), dims[axis], shape_span(dims, axis + 1, rank)};
    int64_t *first = malloc((size_t)(it.len + 1) * sizeof *first);
    int64_t count = reference_unique(&it, sorted, first);
    pbw attrs = {0};
    tm_attr_int(&attrs, "sorted", sorted);
    if (has_axis) tm_attr_int(&attrs, "axis", axis - rank);
    test_run r;
    tr_init(&r, 11);
    assert_int_equal(tr_run_node(&r, "Unique", NULL, 4, &attrs, 1, KILN_INT32, rank, dims, x), KILN_OK);
    const int32_t *y = r.out[0].data;
    const int64_t *indices = r.out[1].data, *inverse = r.out[2].data, *counts = r.out[3].data;
    assert_shape(&r.out[1], 1, &count);
    assert_shape(&r.out[2], 1, &it.len);
    assert_shape(&r.out[3], 1, &count);
    for (int64_t u = 0; u < count; u++) {
        assert_int_equal(indices[u], first[u]);
        int64_t c = 0;
        for (int64_t i = 0; i < it.len; i++) c += compare_slices(&it, i, first[u]) == 0;
        assert_int_equal(counts[u], c);
        for (int64_t o = 0; o < it.outer; o++)
            for (int64_t i = 0; i < it.inner; i++)
                assert_int_equal(y[(o * count + u) * it.inner + i], x[(o * it.len + first[u]) * it.inner + i]);
    }
    for (int64_t i = 0; i < it.len; i++) assert_int_equal(compare_slices(&it, i, first[inverse[i]]), 0);
    tr_free(&r);
    pbw_free(&attrs);
    free(first);
}

static void unique_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 60; trial++) {
        int rank;
        int64_t dims[3];
        random_shape(1, 3, 5, &rank, dims);
        int64_t n = shape_numel(rank, dims);
        int32_t *x = malloc((size_t)n * sizeof *x);
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)random_int(-2, 2);
        bool has_axis = random_int(0, 1);
        check_unique(rank, dims, x, has_axis, (int)random_int(0, rank - 1), random_int(0, 1));
        free(x);
    }
}

static void unique_of_empty_input(void **state)
{
    (void)state;
    const int32_t none = 0;
    check_unique(1, (const int64_t[]){0}, &none, false, 0, true);
    check_unique(2, (const int64_t[]){0, 3}, &none, true, 0, false);
    /* with only Y requested, the optional outputs are simply absent */
    const float x[5] = {3, 1, 3, NAN, 1};
    test_run r;
    tr_init(&r, 11);
    assert_int_equal(tr_run_node(&r, "Unique", NULL, 1, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){5}, x), KILN_OK);
    assert_shape(&r.out[0], 1, (const int64_t[]){3});
    const float *y = r.out[0].data;
    assert_true(y[0] == 1 && y[1] == 3 && isnan(y[2]));
    tr_free(&r);
}

/* ---- ScatterND --------------------------------------------------------------------------------------- */

/* data 4x2 = 1..8, updates of shape [tuples, 2] = 10, 20, 30...; indices [tuples, 1]. */
static kiln_status scatter_nd(int opset, const char *reduction, int64_t tuples, const int64_t *indices, float *y)
{
    const float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float updates[16];
    for (int i = 0; i < 16; i++) updates[i] = (float)(10 * (i + 1));
    pbw attrs = {0};
    if (reduction) tm_attr_string(&attrs, "reduction", reduction);
    test_operand in[3] = {operand("data", KILN_FLOAT32, 2, (const int64_t[]){4, 2}, data),
                          operand("indices", KILN_INT64, 2, (const int64_t[]){tuples, 1}, indices),
                          operand("updates", KILN_FLOAT32, 2, (const int64_t[]){tuples, 2}, updates)};
    test_run r;
    kiln_status st = run_operands(&r, opset, "ScatterND", reduction ? &attrs : NULL, 3, in, 1);
    if (st == KILN_OK) memcpy(y, r.out[0].data, sizeof data);
    tr_free(&r);
    pbw_free(&attrs);
    return st;
}

static void scatter_nd_duplicates_accumulate(void **state)
{
    (void)state;
    const int64_t indices[3] = {1, -3, 3}; /* -3 is row 1 again */
    struct {
        const char *reduction;
        double want[8];
    } cases[] = {
        {"none", {1, 2, 30, 40, 5, 6, 50, 60}},
        {"add", {1, 2, 43, 64, 5, 6, 57, 68}},
        {"mul", {1, 2, 900, 3200, 5, 6, 350, 480}},
        {"max", {1, 2, 30, 40, 5, 6, 50, 60}},
        {"min", {1, 2, 3, 4, 5, 6, 7, 8}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float y[8];
        assert_int_equal(scatter_nd(18, cases[c].reduction, 3, indices, y), KILN_OK);
        assert_close(y, cases[c].want, 8, 0);
    }
    float y[8];
    assert_int_equal(scatter_nd(11, NULL, 0, indices, y), KILN_OK);
    assert_close(y, (const double[]){1, 2, 3, 4, 5, 6, 7, 8}, 8, 0);
}

static void scatter_nd_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 40; trial++) {
        int rank;
        int64_t dims[4], coords[8];
        random_shape(1, 4, 4, &rank, dims);
        int k = (int)random_int(0, rank), tuples = (int)random_int(0, 5);
        int64_t slice = shape_span(dims, k, rank), n = shape_numel(rank, dims);
        int64_t *indices = malloc((size_t)(tuples * k + 1) * sizeof *indices);
        for (int64_t i = 0; i < tuples * k; i++) indices[i] = random_int(-dims[i % k], dims[i % k] - 1);
        float *data = random_floats(n, -2, 2), *updates = random_floats(tuples * slice, -2, 2);
        double *want = malloc((size_t)(n + 1) * sizeof *want);
        for (int64_t i = 0; i < n; i++) want[i] = data[i];
        for (int t = 0; t < tuples; t++) {
            for (int d = 0; d < k; d++) {
                int64_t index = indices[t * k + d];
                coords[d] = index < 0 ? index + dims[d] : index;
            }
            for (int d = k; d < rank; d++) coords[d] = 0;
            int64_t base = ravel(rank, dims, coords);
            for (int64_t j = 0; j < slice; j++) want[base + j] += updates[t * slice + j];
        }
        int64_t update_dims[8] = {tuples};
        for (int d = k; d < rank; d++) update_dims[1 + d - k] = dims[d];
        pbw attrs = {0};
        tm_attr_string(&attrs, "reduction", "add");
        test_operand in[3] = {operand("data", KILN_FLOAT32, rank, dims, data),
                              operand("indices", KILN_INT64, 2, (const int64_t[]){tuples, k}, indices),
                              operand("updates", KILN_FLOAT32, 1 + rank - k, update_dims, updates)};
        test_run r;
        assert_int_equal(run_operands(&r, 16, "ScatterND", &attrs, 3, in, 1), KILN_OK);
        assert_shape(&r.out[0], rank, dims);
        assert_close(r.out[0].data, want, n, 1e-5);
        tr_free(&r);
        pbw_free(&attrs);
        free(indices);
        free(data);
        free(updates);
        free(want);
    }
}

static void scatter_nd_refusals(void **state)
{
    (void)state;
    float y[8];
    assert_refused(scatter_nd(11, NULL, 2, (const int64_t[]){0, 4}, y), KILN_ERR_RUNTIME, "index 4");
    assert_refused(scatter_nd(18, "add", 1, (const int64_t[]){-5}, y), KILN_ERR_RUNTIME, "index -5");
    assert_refused(scatter_nd(16, "max", 1, (const int64_t[]){0}, y), KILN_ERR_MALFORMED, "opset 18");
    /* updates must be indices.dims[:-1] + data.dims[k:] */
    const float data[4] = {0};
    const int64_t indices[1] = {0};
    test_operand in[3] = {operand("data", KILN_FLOAT32, 2, (const int64_t[]){2, 2}, data),
                          operand("indices", KILN_INT64, 2, (const int64_t[]){1, 1}, indices),
                          operand("updates", KILN_FLOAT32, 2, (const int64_t[]){1, 3}, data)};
    test_run r;
    assert_refused(run_operands(&r, 13, "ScatterND", NULL, 3, in, 1), TEST_ANY_ERROR, "should be [1,2]");
    tr_free(&r);
}

/* ---- ReverseSequence --------------------------------------------------------------------------------- */

static void reverse_sequence_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 40; trial++) {
        int rank, batch_axis = (int)random_int(0, 1), time_axis = 1 - batch_axis;
        int64_t dims[4], coords[8];
        random_shape(2, 4, 4, &rank, dims);
        int64_t n = shape_numel(rank, dims), *lens = malloc((size_t)(dims[batch_axis] + 1) * sizeof *lens);
        for (int64_t b = 0; b < dims[batch_axis]; b++) lens[b] = random_int(0, dims[time_axis]);
        float *x = random_floats(n, -1, 1);
        pbw attrs = {0};
        tm_attr_int(&attrs, "batch_axis", batch_axis);
        tm_attr_int(&attrs, "time_axis", time_axis);
        test_operand in[2] = {operand("x", KILN_FLOAT32, rank, dims, x),
                              operand("lens", KILN_INT64, 1, &dims[batch_axis], lens)};
        test_run r;
        assert_int_equal(run_operands(&r, 10, "ReverseSequence", &attrs, 2, in, 1), KILN_OK);
        const float *y = r.out[0].data;
        for (int64_t i = 0; i < n; i++) {
            unravel(i, rank, dims, coords);
            int64_t len = lens[coords[batch_axis]], t = coords[time_axis];
            if (t < len) coords[time_axis] = len - 1 - t;
            assert_true(y[i] == x[ravel(rank, dims, coords)]);
        }
        tr_free(&r);
        pbw_free(&attrs);
        free(lens);
        free(x);
    }
}

static void reverse_sequence_refusals(void **state)
{
    (void)state;
    const float x[6] = {0};
    const int64_t lens[3] = {1, 9, 0};
    test_operand in[2] = {operand("x", KILN_FLOAT32, 2, (const int64_t[]){2, 3}, x),
                          operand("lens", KILN_INT64, 1, (const int64_t[]){3}, lens)};
    test_run r;
    assert_refused(run_operands(&r, 10, "ReverseSequence", NULL, 2, in, 1), KILN_ERR_RUNTIME, "sequence length 9");
    tr_free(&r);
    pbw attrs = {0};
    tm_attr_int(&attrs, "batch_axis", 0);
    tm_attr_int(&attrs, "time_axis", 0);
    assert_refused(tr_load_status(10, "ReverseSequence", &attrs, 2, in, KILN_UNDEFINED), KILN_ERR_MALFORMED,
                   "both 0");
    pbw_free(&attrs);
}

/* ---- MaxUnpool --------------------------------------------------------------------------------------- */

static kiln_status max_unpool(const int64_t *x_dims, const float *x, const int64_t *indices,
                              const int64_t *output_shape, const pbw *attrs, test_run *r)
{
    test_operand in[3] = {operand("x", KILN_FLOAT32, 4, x_dims, x), operand("i", KILN_INT64, 4, x_dims, indices),
                          operand("shape", KILN_INT64, 1, (const int64_t[]){4}, output_shape)};
    return run_operands(r, 11, "MaxUnpool", attrs, output_shape ? 3 : 2, in, 1);
}

static void max_unpool_places_values(void **state)
{
    (void)state;
    /* x is [2, 1, 2, 2]; kernel 2, stride 2, pads 1 at the end of each dim: default output [2, 1, 3, 3] */
    const int64_t x_dims[4] = {2, 1, 2, 2};
    const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int64_t indices[8] = {0, 2, 6, 8, 9, 10, 16, 17};
    pbw attrs = {0};
    tm_attr_ints(&attrs, "kernel_shape", (const int64_t[]){2, 2}, 2);
    tm_attr_ints(&attrs, "strides", (const int64_t[]){2, 2}, 2);
    tm_attr_ints(&attrs, "pads", (const int64_t[]){0, 0, 1, 1}, 4);
    test_run r;
    assert_int_equal(max_unpool(x_dims, x, indices, NULL, &attrs, &r), KILN_OK);
    assert_shape(&r.out[0], 4, (const int64_t[]){2, 1, 3, 3});
    assert_close(r.out[0].data, (const double[]){1, 0, 2, 0, 0, 0, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0, 7, 8}, 18, 0);
    tr_free(&r);
    /* a larger output_shape keeps each value at its coordinates in the default shape */
    assert_int_equal(max_unpool(x_dims, x, indices, (const int64_t[]){2, 1, 3, 4}, &attrs, &r), KILN_OK);
    assert_shape(&r.out[0], 4, (const int64_t[]){2, 1, 3, 4});
    const float *y = r.out[0].data;
    assert_true(y[0] == 1 && y[2] == 2 && y[8] == 3 && y[10] == 4 && y[12] == 5 && y[13] == 6 && y[21] == 7 &&
                y[22] == 8);
    tr_free(&r);
    assert_refused(max_unpool(x_dims, x, (const int64_t[]){0, 2, 6, 8, 9, 10, 16, 18}, NULL, &attrs, &r),
                   KILN_ERR_RUNTIME, "index 18");
    tr_free(&r);
    assert_refused(max_unpool(x_dims, x, (const int64_t[]){0, 2, 6, 8, 9, 10, 16, 17}, (const int64_t[]){2, 1, 2, 3},
                              &attrs, &r),
                   KILN_ERR_RUNTIME, "outside output_shape");
    tr_free(&r);
    pbw_free(&attrs);
    test_operand in[2] = {operand("x", KILN_FLOAT32, 4, x_dims, x), operand("i", KILN_INT64, 4, x_dims, indices)};
    assert_refused(tr_load_status(11, "MaxUnpool", NULL, 2, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "kernel_shape");
}

/* ---- Einsum ------------------------------------------------------------------------------------------ */

typedef struct einsum_case {
    const char *equation;
    int n;
    int rank[3];
    int64_t dims[3][4];
} einsum_case;

static const einsum_case einsum_cases[] = {
    {"bij,bjk->bik", 2, {3, 3}, {{3, 4, 5}, {3, 5, 6}}},
    {"ij,jk", 2, {2, 2}, {{7, 9}, {9, 5}}},
    {"ij,kj->ki", 2, {2, 2}, {{4, 6}, {3, 6}}},
    {"bhqd,bhkd->bhqk", 2, {4, 4}, {{2, 3, 4, 5}, {2, 3, 6, 5}}},
    {"i,i", 2, {1, 1}, {{17}, {17}}},
    {"i,j->ij", 2, {1, 1}, {{3}, {4}}},
    {"ijk,jil->lk", 2, {3, 3}, {{2, 3, 4}, {3, 2, 5}}},
    {"...ij,...jk->...ik", 2, {4, 3}, {{2, 3, 4, 5}, {3, 5, 2}}},
    {"bij,bjk->ik", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}},
    {"ij,j->i", 2, {2, 1}, {{3, 4}, {4}}},
    {"ij,ij->i", 2, {2, 2}, {{3, 4}, {3, 4}}},
    {"ab,bc,cd->ad", 3, {2, 2, 2}, {{2, 3}, {3, 4}, {4, 5}}},
    {"ii->i", 1, {2}, {{4, 4}}},
    {"...ii->...i", 1, {3}, {{3, 5, 5}}},
    {"ij->", 1, {2}, {{3, 4}}},
    {"ij->ji", 1, {2}, {{3, 4}}},
    {"ij,jk->ik", 2, {2, 2}, {{2, 0}, {0, 3}}},
    {"ij,jk->ik", 2, {2, 2}, {{0, 3}, {3, 2}}},
    {"Ab,bC->CA", 2, {2, 2}, {{2, 3}, {3, 4}}},
};

/* Einsum over float32 copies of the operands (the GEMM path where it applies) and over float64 copies (always
 * the reference walk): the two agree. */
static void einsum_paths_agree(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof einsum_cases / sizeof einsum_cases[0]; c++) {
        const einsum_case *e = &einsum_cases[c];
        float *f[3];
        double *d[3];
        test_operand in32[3], in64[3];
        static const char *const names[3] = {"a", "b", "c"};
        for (int k = 0; k < e->n; k++) {
            int64_t n = shape_numel(e->rank[k], e->dims[k]);
            f[k] = random_floats(n, -1, 1);
            d[k] = malloc((size_t)(n + 1) * sizeof *d[k]);
            for (int64_t i = 0; i < n; i++) d[k][i] = f[k][i];
            in32[k] = operand(names[k], KILN_FLOAT32, e->rank[k], e->dims[k], f[k]);
            in64[k] = operand(names[k], KILN_FLOAT64, e->rank[k], e->dims[k], d[k]);
        }
        pbw attrs = {0};
        tm_attr_string(&attrs, "equation", e->equation);
        test_run r32, r64;
        assert_int_equal(run_operands(&r32, 12, "Einsum", &attrs, e->n, in32, 2), KILN_OK);
        assert_int_equal(run_operands(&r64, 12, "Einsum", &attrs, e->n, in64, 1), KILN_OK);
        assert_shape(&r32.out[0], r64.out[0].rank, r64.out[0].dims);
        assert_close(r32.out[0].data, r64.out[0].data, tensor_numel(&r64.out[0]), 1e-5);
        tr_free(&r32);
        tr_free(&r64);
        pbw_free(&attrs);
        for (int k = 0; k < e->n; k++) {
            free(f[k]);
            free(d[k]);
        }
    }
}

/* The reference walk itself, against loops written out here: a batch matmul, a trace and integers. */
static void einsum_matches_reference(void **state)
{
    (void)state;
    const int64_t a_dims[3] = {2, 3, 4}, b_dims[3] = {2, 4, 5};
    double a[24], b[40];
    for (int i = 0; i < 24; i++) a[i] = random_uniform(-1, 1);
    for (int i = 0; i < 40; i++) b[i] = random_uniform(-1, 1);
    pbw attrs = {0};
    tm_attr_string(&attrs, "equation", "bij , bjk -> bik");
    test_operand in[2] = {operand("a", KILN_FLOAT64, 3, a_dims, a), operand("b", KILN_FLOAT64, 3, b_dims, b)};
    test_run r;
    assert_int_equal(run_operands(&r, 12, "Einsum", &attrs, 2, in, 1), KILN_OK);
    assert_shape(&r.out[0], 3, (const int64_t[]){2, 3, 5});
    const double *y = r.out[0].data;
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 5; k++) {
                double want = 0;
                for (int j = 0; j < 4; j++) want += a[(n * 3 + i) * 4 + j] * b[(n * 4 + j) * 5 + k];
                assert_true(fabs(y[(n * 3 + i) * 5 + k] - want) < 1e-12);
            }
    tr_free(&r);
    pbw_free(&attrs);

    const int64_t m[9] = {1, 2, 3, 4, 5, 6, 7, 8, INT64_MAX};
    pbw trace = {0};
    tm_attr_string(&trace, "equation", "ii");
    test_operand one = operand("m", KILN_INT64, 2, (const int64_t[]){3, 3}, m);
    assert_int_equal(run_operands(&r, 12, "Einsum", &trace, 1, &one, 1), KILN_OK);
    assert_int_equal(r.out[0].rank, 0);
    assert_true(*(const int64_t *)r.out[0].data == (int64_t)((uint64_t)INT64_MAX + 6)); /* wraps, no UB */
    tr_free(&r);
    pbw_free(&trace);
}

static void einsum_refuses_malformed_equations(void **state)
{
    (void)state;
    struct {
        const char *equation;
        int n_inputs;
        const char *words;
    } cases[] = {
        {"ij,jk->ik", 1, "2 input terms"},
        {"i.j->i", 1, "'.' at position 1"},
        {"i$j", 1, "'$' at position 1"},
        {"ij-<i", 1, "'-' at position 2"},
        {"ij->k", 1, "'k' at position 4 appears in no input"},
        {"ij->ii", 1, "repeats at position 5"},
        {"...i...->i", 1, "second ellipsis at position 4"},
        {"ij->i,j", 1, "',' at position 5"},
        {"abcdefghi->a", 1, "more than 8 subscripts"},
        {"", 2, "1 input terms"},
    };
    const float x[4] = {0};
    test_operand in[2] = {operand("a", KILN_FLOAT32, 2, (const int64_t[]){2, 2}, x),
                          operand("b", KILN_FLOAT32, 2, (const int64_t[]){2, 2}, x)};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pbw attrs = {0};
        tm_attr_string(&attrs, "equation", cases[c].equation);
        assert_refused(tr_load_status(12, "Einsum", &attrs, cases[c].n_inputs, in, KILN_UNDEFINED), TEST_ANY_ERROR,
                       cases[c].words);
        pbw_free(&attrs);
    }
    assert_refused(tr_load_status(12, "Einsum", NULL, 1, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "equation");
    /* shapes that disagree with the equation fail when planning */
    pbw attrs = {0};
    tm_attr_string(&attrs, "equation", "ij,jk->ik");
    in[1] = operand("b", KILN_FLOAT32, 2, (const int64_t[]){3, 2}, x);
    test_run r;
    assert_refused(run_operands(&r, 12, "Einsum", &attrs, 2, in, 1), TEST_ANY_ERROR, "label 'j' has size 3");
    tr_free(&r);
    in[1] = operand("b", KILN_FLOAT32, 1, (const int64_t[]){4}, x);
    assert_refused(run_operands(&r, 12, "Einsum", &attrs, 2, in, 1), TEST_ANY_ERROR, "input 1 has rank 1");
    tr_free(&r);
    pbw_free(&attrs);
}

/* ---- Det --------------------------------------------------------------------------------------------- */

/* Laplace expansion along the first row: exponential, exact enough for n <= 5. */
static double reference_det(const double *a, int n)
{
    if (n == 0) return 1;
    if (n == 1) return a[0];
    double sum = 0, minor[25];
    for (int c = 0; c < n; c++) {
        for (int i = 1, k = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (j != c) minor[k++] = a[i * n + j];
        sum += (c % 2 ? -1 : 1) * a[c] * reference_det(minor, n - 1);
    }
    return sum;
}

static void det_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 40; trial++) {
        int n = (int)random_int(1, 5);
        int64_t batch = random_int(0, 4), dims[3] = {batch, n, n};
        float *x = random_floats(batch * n * n, -2, 2);
        test_run r;
        tr_init(&r, 11);
        assert_int_equal(tr_run_node(&r, "Det", NULL, 1, NULL, (int)random_int(1, 2), KILN_FLOAT32, 3, dims, x),
                         KILN_OK);
        assert_shape(&r.out[0], 1, &batch);
        for (int64_t b = 0; b < batch; b++) {
            double a[25];
            for (int i = 0; i < n * n; i++) a[i] = x[b * n * n + i];
            double want = reference_det(a, n), got = ((const float *)r.out[0].data)[b];
            assert_true(fabs(got - want) <= 1e-5 * (1 + fabs(want)));
        }
        tr_free(&r);
        free(x);
    }
}

static void det_singular_empty_and_refusals(void **state)
{
    (void)state;
    const double singular[2][9] = {{1, 2, 0, 2, 4, 0, 0, 0, 0}, {1, 2, 3, 2, 4, 6, 5, 1, 7}};
    test_run r;
    tr_init(&r, 11);
    assert_int_equal(tr_run_node(&r, "Det", NULL, 1, NULL, 1, KILN_FLOAT64, 3, (const int64_t[]){2, 3, 3}, singular),
                     KILN_OK);
    assert_true(((const double *)r.out[0].data)[0] == 0 && ((const double *)r.out[0].data)[1] == 0);
    tr_free(&r);
    /* the determinant of a 0x0 matrix is 1 */
    const float none = 0;
    tr_init(&r, 11);
    assert_int_equal(tr_run_node(&r, "Det", NULL, 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){0, 0}, &none),
                     KILN_OK);
    assert_int_equal(r.out[0].rank, 0);
    assert_true(*(const float *)r.out[0].data == 1);
    tr_free(&r);
    tr_init(&r, 11);
    assert_refused(tr_run_node(&r, "Det", NULL, 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){2, 3}, singular),
                   TEST_ANY_ERROR, "square");
    tr_free(&r);
    const int32_t ints[4] = {0};
    tr_init(&r, 11);
    assert_refused(tr_run_node(&r, "Det", NULL, 1, NULL, 1, KILN_INT32, 2, (const int64_t[]){2, 2}, ints),
                   KILN_ERR_UNSUPPORTED, "dtype");
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compress_matches_reference),
        cmocka_unit_test(compress_refuses_selection_past_the_axis),
        cmocka_unit_test(nonzero_matches_reference),
        cmocka_unit_test(nonzero_counts_nan_but_not_negative_zero),
        cmocka_unit_test(unique_matches_reference),
        cmocka_unit_test(unique_of_empty_input),
        cmocka_unit_test(scatter_nd_duplicates_accumulate),
        cmocka_unit_test(scatter_nd_matches_reference),
        cmocka_unit_test(scatter_nd_refusals),
        cmocka_unit_test(reverse_sequence_matches_reference),
        cmocka_unit_test(reverse_sequence_refusals),
        cmocka_unit_test(max_unpool_places_values),
        cmocka_unit_test(einsum_paths_agree),
        cmocka_unit_test(einsum_matches_reference),
        cmocka_unit_test(einsum_refuses_malformed_equations),
        cmocka_unit_test(det_matches_reference),
        cmocka_unit_test(det_singular_empty_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
