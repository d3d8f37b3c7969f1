/*
 * test_ops_misc.c — Trilu, CumSum, GatherElements, ScatterElements, OneHot, NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss.
 *
 * Each test builds a one-node model in memory whose first input "x" is a graph input (so nothing is folded
 * at load) and whose other inputs are initializers, runs it through the public API and compares with a
 * naive reference written here from the ONNX definition, on random shapes where that matters. Data that is
 * invalid only at run time (indices or targets out of range) must fail the run with KILN_ERR_RUNTIME;
 * malformed nodes must be refused at load.
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

/* ---- Trilu ------------------------------------------------------------------------------------------- */

static void check_trilu(bool upper, int64_t k, int rank, const int64_t *dims, int threads)
{
    int64_t n = shape_numel(rank, dims), coords[8];
    int64_t *x = malloc((size_t)(n + 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = i + 1;
    test_run r;
    tr_init(&r, 14);
    tm_initializer(&r.tm, "k", KILN_INT64, 0, NULL, &k);
    pbw attrs = {0};
    tm_attr_int(&attrs, "upper", upper);
    assert_int_equal(tr_run_node(&r, "Trilu", LIST("k"), 1, &attrs, threads, KILN_INT64, rank, dims, x), KILN_OK);
    assert_shape(&r.out[0], rank, dims);
    const int64_t *y = r.out[0].data;
    for (int64_t i = 0; i < n; i++) {
        unravel(i, rank, dims, coords);
        int64_t diagonal = coords[rank - 1] - coords[rank - 2];
        bool keep = upper ? diagonal >= k : diagonal <= k;
        assert_int_equal(y[i], keep ? x[i] : 0);
    }
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
}

static void trilu_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 100; trial++) {
        int rank;
        int64_t dims[4];
        random_shape(2, 4, 6, &rank, dims);
        check_trilu(random_int(0, 1), random_int(-7, 7), rank, dims, random_int(1, 2));
    }
    check_trilu(true, INT64_MAX, 2, (const int64_t[]){3, 4}, 1);
    check_trilu(false, INT64_MIN, 2, (const int64_t[]){3, 4}, 1);
    check_trilu(true, 0, 3, (const int64_t[]){2, 0, 4}, 1);
}

static void trilu_default_k_and_refusals(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    test_run r;
    tr_init(&r, 14);
    assert_int_equal(tr_run_node(&r, "Trilu", NULL, 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){2, 3}, x), KILN_OK);
    assert_close(r.out[0].data, (const double[]){1, 2, 3, 0, 5, 6}, 6, 0);
    tr_free(&r);

    tr_init(&r, 14);
    assert_refused(tr_run_node(&r, "Trilu", NULL, 1, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){6}, x),
                   KILN_ERR_INVALID_ARGUMENT, "rank 2");
    tr_free(&r);

    tr_init(&r, 14);
    tm_initializer(&r.tm, "k", KILN_INT64, 1, (const int64_t[]){2}, (const int64_t[]){1, 2});
    assert_refused(tr_run_node(&r, "Trilu", LIST("k"), 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){2, 3}, x),
                   KILN_ERR_INVALID_ARGUMENT, "one value"); /* refused when planning, before any run */
    tr_free(&r);
}

/* ---- CumSum ------------------------------------------------------------------------------------------ */

static void check_cumsum(int rank, const int64_t *dims, int64_t axis, bool exclusive, bool reverse, int threads)
{
    int64_t n = shape_numel(rank, dims), coords[8] = {0};
    float *x = random_floats(n, -2, 2);
    double *want = calloc((size_t)n + 1, sizeof *want);
    int a = (int)(axis < 0 ? axis + rank : axis);
    for (int64_t i = 0; i < n; i++) {
        unravel(i, rank, dims, coords);
        int64_t self = coords[a];
        for (int64_t j = 0; j < dims[a]; j++) {
            bool before = reverse ? j > self : j < self;
            if (before || (!exclusive && j == self)) {
                coords[a] = j;
                want[i] += x[ravel(rank, dims, coords)];
            }
        }
    }
    test_run r;
    tr_init(&r, 14);
    tm_initializer(&r.tm, "axis", KILN_INT64, 0, NULL, &axis);
    pbw attrs = {0};
    tm_attr_int(&attrs, "exclusive", exclusive);
    tm_attr_int(&attrs, "reverse", reverse);
    assert_int_equal(tr_run_node(&r, "CumSum", LIST("axis"), 1, &attrs, threads, KILN_FLOAT32, rank, dims, x), KILN_OK);
    assert_close(r.out[0].data, want, n, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(want);
}

static void cumsum_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 100; trial++) {
        int rank;
        int64_t dims[4];
        random_shape(1, 4, 6, &rank, dims);
        check_cumsum(rank, dims, random_int(-rank, rank - 1), random_int(0, 1), random_int(0, 1), random_int(1, 2));
    }
}

/* Integer sums wrap instead of overflowing (undefined behaviour the sanitizer build would catch). */
static void cumsum_integers_wrap(void **state)
{
    (void)state;
    const int32_t x[3] = {INT32_MAX, 1, 1};
    const int32_t axis = 0;
    test_run r;
    tr_init(&r, 14);
    tm_initializer(&r.tm, "axis", KILN_INT32, 0, NULL, &axis);
    assert_int_equal(tr_run_node(&r, "CumSum", LIST("axis"), 1, NULL, 1, KILN_INT32, 1, (const int64_t[]){3}, x),
                     KILN_OK);
    const int32_t *y = r.out[0].data;
    assert_int_equal(y[0], INT32_MAX);
    assert_int_equal(y[1], INT32_MIN);
    assert_int_equal(y[2], INT32_MIN + 1);
    tr_free(&r);

    const int64_t bad_axis = 2;
    tr_init(&r, 14);
    tm_initializer(&r.tm, "axis", KILN_INT64, 0, NULL, &bad_axis);
    assert_refused(tr_run_node(&r, "CumSum", LIST("axis"), 1, NULL, 1, KILN_INT32, 1, (const int64_t[]){3}, x),
                   KILN_ERR_RUNTIME, "axis 2");
    tr_free(&r);

    tr_init(&r, 14);
    tm_initializer(&r.tm, "axis", KILN_INT64, 0, NULL, &bad_axis);
    assert_int_equal(tr_run_node(&r, "CumSum", LIST("axis"), 1, NULL, 1, KILN_INT8, 1, (const int64_t[]){3}, x),
                     KILN_ERR_UNSUPPORTED);
    tr_free(&r);
}

/* ---- GatherElements and ScatterElements -------------------------------------------------------------- */

/* Random indices within [-len, len) of data's axis, for an indices shape no larger than data. */
static int64_t *random_indices(int rank, const int64_t *data_dims, int axis, int64_t *index_dims)
{
    for (int d = 0; d < rank; d++) index_dims[d] = d == axis ? random_int(1, 5) : random_int(1, (int)data_dims[d]);
    int64_t n = shape_numel(rank, index_dims);
    int64_t *indices = malloc((size_t)n * sizeof *indices);
    for (int64_t i = 0; i < n; i++) indices[i] = random_int(-(int)data_dims[axis], (int)data_dims[axis] - 1);
    return indices;
}

static void gather_elements_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 100; trial++) {
        int rank;
        int64_t dims[4], index_dims[4], coords[8];
        random_shape(1, 4, 5, &rank, dims);
        int axis = random_int(0, rank - 1);
        int64_t *indices = random_indices(rank, dims, axis, index_dims);
        float *x = random_floats(shape_numel(rank, dims), -2, 2);
        test_run r;
        tr_init(&r, 13);
        tm_initializer(&r.tm, "indices", KILN_INT64, rank, index_dims, indices);
        pbw attrs = {0};
        tm_attr_int(&attrs, "axis", random_int(0, 1) ? axis : axis - rank);
        assert_int_equal(tr_run_node(&r, "GatherElements", LIST("indices"), 1, &attrs, 1, KILN_FLOAT32, rank, dims, x),
                         KILN_OK);
        assert_shape(&r.out[0], rank, index_dims);
        const float *y = r.out[0].data;
        for (int64_t i = 0; i < shape_numel(rank, index_dims); i++) {
            unravel(i, rank, index_dims, coords);
            coords[axis] = indices[i] < 0 ? indices[i] + dims[axis] : indices[i];
            assert_true(y[i] == x[ravel(rank, dims, coords)]);
        }
        tr_free(&r);
        pbw_free(&attrs);
        free(indices);
        free(x);
    }
}

/* Runs op on x of shape data_dims (rank 2) with the given indices and updates 2, 3, 4, ... */
static kiln_status try_elements(const char *op, int opset, const pbw *attrs, int rank, const int64_t *index_dims,
                                const int64_t *indices, const int64_t *data_dims, const float *x, float *result)
{
    test_run r;
    tr_init(&r, opset);
    tm_initializer(&r.tm, "indices", KILN_INT64, rank, index_dims, indices);
    float updates[16];
    for (int i = 0; i < 16; i++) updates[i] = (float)(i + 2);
    tm_initializer(&r.tm, "updates", KILN_FLOAT32, rank, index_dims, updates);
    const char *more[] = {"indices", strcmp(op, "ScatterElements") == 0 ? "updates" : NULL, NULL};
    kiln_status st = tr_run_node(&r, op, more, 1, attrs, 1, KILN_FLOAT32, 2, data_dims, x);
    if (st == KILN_OK && result)
        memcpy(result, r.out[0].data, (size_t)shape_numel(r.out[0].rank, r.out[0].dims) * sizeof(float));
    tr_free(&r);
    return st;
}

static void elements_refuse_bad_indices(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int64_t data_dims[2] = {2, 3};
    assert_refused(try_elements("GatherElements", 13, NULL, 2, (const int64_t[]){1, 2}, (const int64_t[]){0, 2},
                                data_dims, x, NULL),
                   KILN_ERR_RUNTIME, "index 2");
    assert_refused(try_elements("ScatterElements", 13, NULL, 2, (const int64_t[]){1, 2}, (const int64_t[]){-3, 0},
                                data_dims, x, NULL),
                   KILN_ERR_RUNTIME, "index -3");
    assert_refused(try_elements("GatherElements", 13, NULL, 2, (const int64_t[]){1, 4},
                                (const int64_t[]){0, 0, 0, 0}, data_dims, x, NULL),
                   KILN_ERR_INVALID_ARGUMENT, "exceeds");
    assert_refused(try_elements("GatherElements", 13, NULL, 1, (const int64_t[]){2}, (const int64_t[]){0, 0},
                                data_dims, x, NULL),
                   KILN_ERR_INVALID_ARGUMENT, "same rank");
    pbw attrs = {0};
    tm_attr_string(&attrs, "reduction", "max");
    assert_refused(try_elements("ScatterElements", 16, &attrs, 2, (const int64_t[]){1, 2}, (const int64_t[]){0, 0},
                                data_dims, x, NULL),
                   KILN_ERR_MALFORMED, "opset 18");
    pbw_free(&attrs);
    tm_attr_string(&attrs, "reduction", "average");
    assert_refused(try_elements("ScatterElements", 18, &attrs, 2, (const int64_t[]){1, 2}, (const int64_t[]){0, 0},
                                data_dims, x, NULL),
                   KILN_ERR_MALFORMED, "average");
    pbw_free(&attrs);
}

/* Updates 2 and 3 land on row 0 columns 1, 1 (a duplicate) and row 1 columns 0, 2 for updates 4, 5. */
static void scatter_elements_reductions(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int64_t dims[2] = {2, 3}, index_dims[2] = {2, 2}, indices[4] = {1, 1, 0, -1};
    struct {
        const char *reduction;
        double want[6];
    } cases[] = {
        {"none", {1, 3, 3, 4, 5, 5}},
        {"add", {1, 7, 3, 8, 5, 11}},
        {"mul", {1, 12, 3, 16, 5, 30}},
        {"max", {1, 3, 3, 4, 5, 6}},
        {"min", {1, 2, 3, 4, 5, 5}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pbw attrs = {0};
        tm_attr_int(&attrs, "axis", 1);
        tm_attr_string(&attrs, "reduction", cases[c].reduction);
        float y[6];
        assert_int_equal(try_elements("ScatterElements", 18, &attrs, 2, index_dims, indices, dims, x, y), KILN_OK);
        assert_close(y, cases[c].want, 6, 0);
        pbw_free(&attrs);
    }
}

/* ---- OneHot ------------------------------------------------------------------------------------------ */

static void onehot_axes_and_ranges(void **state)
{
    (void)state;
    /* indices [[1, -1], [5, 2.5]] with depth 3: -1 wraps to 2, 5 is out of range, 2.5 is no class */
    const float x[4] = {1, -1, 5, 2.5f};
    const float depth = 3;
    const int32_t values[2] = {-7, 9};
    for (int axis = -3; axis <= 2; axis++) {
        test_run r;
        tr_init(&r, 11);
        tm_initializer(&r.tm, "depth", KILN_FLOAT32, 0, NULL, &depth);
        tm_initializer(&r.tm, "values", KILN_INT32, 1, (const int64_t[]){2}, values);
        pbw attrs = {0};
        tm_attr_int(&attrs, "axis", axis);
        assert_int_equal(tr_run_node(&r, "OneHot", LIST("depth", "values"), 1, &attrs, 1, KILN_FLOAT32, 2,
                                     (const int64_t[]){2, 2}, x),
                         KILN_OK);
        int a = axis < 0 ? axis + 3 : axis;
        int64_t out_dims[3], coords[3];
        for (int d = 0; d < 3; d++) out_dims[d] = d == a ? 3 : 2;
        assert_shape(&r.out[0], 3, out_dims);
        const int32_t *y = r.out[0].data;
        const int hot[4] = {1, 2, -1, -1};
        for (int64_t i = 0; i < 12; i++) {
            unravel(i, 3, out_dims, coords);
            int64_t cls = coords[a], rest[2], k = 0;
            for (int d = 0; d < 3; d++)
                if (d != a) rest[k++] = coords[d];
            assert_int_equal(y[i], hot[rest[0] * 2 + rest[1]] == cls ? 9 : -7);
        }
        tr_free(&r);
        pbw_free(&attrs);
    }
}

static void onehot_opset9_and_refusals(void **state)
{
    (void)state;
    const int64_t x[3] = {0, -1, 2};
    const int64_t depth = 3;
    const float values[2] = {0, 1};
    test_run r;
    tr_init(&r, 9);
    tm_initializer(&r.tm, "depth", KILN_INT64, 1, (const int64_t[]){1}, &depth);
    tm_initializer(&r.tm, "values", KILN_FLOAT32, 1, (const int64_t[]){2}, values);
    assert_int_equal(
        tr_run_node(&r, "OneHot", LIST("depth", "values"), 1, NULL, 1, KILN_INT64, 1, (const int64_t[]){3}, x),
        KILN_OK);
    /* before opset 11 a negative index is out of range: its row is all off */
    assert_close(r.out[0].data, (const double[]){1, 0, 0, 0, 0, 0, 0, 0, 1}, 9, 0);
    tr_free(&r);

    const int64_t zero = 0;
    tr_init(&r, 11);
    tm_initializer(&r.tm, "depth", KILN_INT64, 0, NULL, &zero);
    tm_initializer(&r.tm, "values", KILN_FLOAT32, 1, (const int64_t[]){2}, values);
    assert_refused(
        tr_run_node(&r, "OneHot", LIST("depth", "values"), 1, NULL, 1, KILN_INT64, 1, (const int64_t[]){3}, x),
        KILN_ERR_INVALID_ARGUMENT, "depth");
    tr_free(&r);
}

/* ---- NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss ------------------------------------------- */

typedef struct loss_case {
    const char *reduction;
    bool weighted, ignore, softmax, log_prob;
} loss_case;

/* loss[n, d] = -w[t] * p[n, t, d] for t = target[n, d], with p the log-softmax of x for the softmax loss;
 * mean divides by the summed weights of the targets that count. */
static void loss_reference(const loss_case *c, const float *x, const int64_t *target, const float *weight,
                           int64_t ignore, int64_t n, int64_t classes, int64_t positions, double *log_prob,
                           double *loss, double *reduced)
{
    for (int64_t i = 0; i < n * positions; i++) {
        int64_t b = i / positions, d = i % positions;
        double max = -INFINITY, sum = 0;
        for (int64_t k = 0; k < classes; k++) max = fmax(max, x[(b * classes + k) * positions + d]);
        for (int64_t k = 0; k < classes; k++) sum += exp(x[(b * classes + k) * positions + d] - max);
        for (int64_t k = 0; k < classes; k++) {
            int64_t at = (b * classes + k) * positions + d;
            log_prob[at] = c->softmax ? x[at] - max - log(sum) : x[at];
        }
    }
    double total = 0, total_weight = 0;
    for (int64_t i = 0; i < n * positions; i++) {
        int64_t b = i / positions, d = i % positions, t = target[i];
        bool counts = !(c->ignore && t == ignore);
        double w = !counts ? 0 : c->weighted ? weight[t] : 1;
        loss[i] = counts ? -w * log_prob[(b * classes + t) * positions + d] : 0;
        total += loss[i];
        total_weight += w;
    }
    *reduced = !strcmp(c->reduction, "sum") ? total : total / total_weight;
}

static void check_loss(const loss_case *c, int rank, const int64_t *dims)
{
    int64_t n = dims[0], classes = dims[1], positions = shape_numel(rank - 2, dims + 2),
            total = shape_numel(rank, dims);
    float *x = random_floats(total, -2, 2), *weight = random_floats(classes, -2, 2);
    int64_t *target = malloc((size_t)(n * positions) * sizeof *target);
    int64_t ignore = random_int(0, (int)classes - 1);
    for (int64_t i = 0; i < n * positions; i++) target[i] = random_int(0, (int)classes - 1);
    double *log_prob = malloc((size_t)total * sizeof *log_prob), *loss = malloc((size_t)(n * positions) * sizeof *loss);
    double reduced;
    loss_reference(c, x, target, weight, ignore, n, classes, positions, log_prob, loss, &reduced);

    test_run r;
    tr_init(&r, 13);
    int64_t target_dims[8] = {n};
    for (int d = 2; d < rank; d++) target_dims[d - 1] = dims[d];
    tm_initializer(&r.tm, "target", KILN_INT64, rank - 1, target_dims, target);
    tm_initializer(&r.tm, "weight", KILN_FLOAT32, 1, &classes, weight);
    pbw attrs = {0};
    tm_attr_string(&attrs, "reduction", c->reduction);
    if (c->ignore) tm_attr_int(&attrs, "ignore_index", ignore);
    const char *more[] = {"target", c->weighted ? "weight" : NULL, NULL};
    const char *op = c->softmax ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss";
    kiln_status st = tr_run_node(&r, op, more, c->log_prob ? 2 : 1, &attrs, 1, KILN_FLOAT32, rank, dims, x);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    if (!strcmp(c->reduction, "none")) {
        assert_shape(&r.out[0], rank - 1, target_dims);
        assert_close(r.out[0].data, loss, n * positions, 1e-5);
    } else {
        assert_int_equal(r.out[0].rank, 0);
        assert_close(r.out[0].data, &reduced, 1, 1e-5);
    }
    if (c->log_prob) assert_close(r.out[1].data, log_prob, total, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(weight);
    free(target);
    free(log_prob);
    free(loss);
}

static void losses_match_reference(void **state)
{
    (void)state;
    static const char *const reductions[] = {"none", "sum", "mean"};
    for (int trial = 0; trial < 120; trial++) {
        int rank;
        int64_t dims[6];
        random_shape(2, 6, 4, &rank, dims);
        dims[1] = random_int(1, 6);
        bool softmax = random_int(0, 1);
        loss_case c = {reductions[random_int(0, 2)], random_int(0, 1), random_int(0, 1), softmax,
                       softmax && random_int(0, 1)};
        check_loss(&c, rank, dims);
    }
}

static void loss_refuses_bad_targets(void **state)
{
    (void)state;
    const float x[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    const int64_t target[2] = {1, 3};
    test_run r;
    tr_init(&r, 13);
    tm_initializer(&r.tm, "target", KILN_INT64, 1, (const int64_t[]){2}, target);
    assert_refused(tr_run_node(&r, "SoftmaxCrossEntropyLoss", LIST("target"), 1, NULL, 1, KILN_FLOAT32, 2,
                               (const int64_t[]){2, 3}, x),
                   KILN_ERR_RUNTIME, "target 3");
    tr_free(&r);

    tr_init(&r, 13);
    tm_initializer(&r.tm, "target", KILN_INT64, 1, (const int64_t[]){3}, (const int64_t[]){0, 0, 0});
    assert_refused(tr_run_node(&r, "NegativeLogLikelihoodLoss", LIST("target"), 1, NULL, 1, KILN_FLOAT32, 2,
                               (const int64_t[]){2, 3}, x),
                   KILN_ERR_INVALID_ARGUMENT, "does not match");
    tr_free(&r);

    tr_init(&r, 13);
    tm_initializer(&r.tm, "target", KILN_INT64, 1, (const int64_t[]){2}, target);
    pbw attrs = {0};
    tm_attr_string(&attrs, "reduction", "average");
    assert_refused(tr_run_node(&r, "NegativeLogLikelihoodLoss", LIST("target"), 1, &attrs, 1, KILN_FLOAT32, 2,
                               (const int64_t[]){2, 3}, x),
                   KILN_ERR_MALFORMED, "average");
    pbw_free(&attrs);
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trilu_matches_reference),
        cmocka_unit_test(trilu_default_k_and_refusals),
        cmocka_unit_test(cumsum_matches_reference),
        cmocka_unit_test(cumsum_integers_wrap),
        cmocka_unit_test(gather_elements_matches_reference),
        cmocka_unit_test(elements_refuse_bad_indices),
        cmocka_unit_test(scatter_elements_reductions),
        cmocka_unit_test(onehot_axes_and_ranges),
        cmocka_unit_test(onehot_opset9_and_refusals),
        cmocka_unit_test(losses_match_reference),
        cmocka_unit_test(loss_refuses_bad_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
