/*
 * test_ops_matmul.c — MatMul, MatMulInteger, QLinearMatMul and Gemm through whole one-node models: numpy matmul shapes
 * (1-D promotion, batch broadcasting), constant weights (the pre-packed path, with batch folding), every
 * Gemm attribute and C broadcast, the non-float32 dtypes, empty tensors, several threads, and the
 * malformed models that must fail at load.
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
#include "kiln.h"
#include "testlib.h"

/* numpy matmul of float32 operands in double, for operands of rank >= 2 (1-D ones are passed promoted):
 * batch dims broadcast, `y_dims` are the result's full dims. */
static void reference_matmul(const test_operand *a, const test_operand *b, int y_rank, const int64_t *y_dims, double *y)
{
    int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    int batch_rank = y_rank - 2;
    int64_t batches = 1;
    for (int d = 0; d < batch_rank; d++) batches *= y_dims[d];
    for (int64_t bi = 0; bi < batches; bi++) {
        int64_t a_off = 0, b_off = 0, a_step = M * K, b_step = K * N, rest = bi;
        for (int d = batch_rank - 1; d >= 0; d--) {
            int64_t coord = rest % y_dims[d];
            rest /= y_dims[d];
            int ad = d - (batch_rank - (a->rank - 2)), bd = d - (batch_rank - (b->rank - 2));
            int64_t adim = ad >= 0 ? a->dims[ad] : 1, bdim = bd >= 0 ? b->dims[bd] : 1;
            a_off += (adim == 1 ? 0 : coord) * a_step;
            b_off += (bdim == 1 ? 0 : coord) * b_step;
            a_step *= adim;
            b_step *= bdim;
        }
        const float *A = (const float *)a->data + a_off, *B = (const float *)b->data + b_off;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0;
                for (int64_t k = 0; k < K; k++) sum += (double)A[i * K + k] * (double)B[k * N + j];
                y[bi * M * N + i * N + j] = sum;
            }
    }
}

/* Float32 sums of K products in [-1, 1] drift from the double reference by about K * 2^-24 per term: each element
 * must be within an absolute bound that grows with K (as in test_gemm.c). */
static void assert_close_sums(const float *got, const double *want, int64_t n, int64_t K)
{
    double tolerance = 1e-5 * (double)(K + 1);
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tolerance)) fail_msg("element %lld: %g, expected %g", (long long)i, (double)got[i], want[i]);
}

/* A x B for float32 operands, checked against reference_matmul; `ra`/`rb` are the promoted operands the
 * reference sees (equal to a/b unless one is 1-D). */
static void check_matmul(const test_operand *a, const test_operand *b, const test_operand *ra, const test_operand *rb,
                         int y_rank, const int64_t *y_dims, int threads)
{
    int64_t ref_dims[KILN_MAX_RANK + 2];
    int ref_rank = 0;
    int batch_rank = (ra->rank > rb->rank ? ra->rank : rb->rank) - 2;
    for (int d = 0; d < batch_rank; d++) {
        int ad = d - (batch_rank - (ra->rank - 2)), bd = d - (batch_rank - (rb->rank - 2));
        int64_t adim = ad >= 0 ? ra->dims[ad] : 1, bdim = bd >= 0 ? rb->dims[bd] : 1;
        ref_dims[ref_rank++] = adim == 1 ? bdim : adim;
    }
    ref_dims[ref_rank++] = ra->dims[ra->rank - 2];
    ref_dims[ref_rank++] = rb->dims[rb->rank - 1];
    int64_t n = 1;
    for (int d = 0; d < ref_rank; d++) n *= ref_dims[d];
    double *want = malloc((size_t)(n > 0 ? n : 1) * sizeof *want);
    reference_matmul(ra, rb, ref_rank, ref_dims, want);
    test_operand in[2] = {*a, *b};
    test_run r;
    tr_compute(&r, 13, "MatMul", NULL, 2, in, KILN_FLOAT32, threads);
    assert_shape(&r.out[0], y_rank, y_dims);
    assert_close_sums(r.out[0].data, want, n, ra->dims[ra->rank - 1]);
    tr_free(&r);
    free(want);
}

static test_operand float_operand(const char *name, int rank, const int64_t *dims, bool constant)
{
    test_operand o = {name, KILN_FLOAT32, rank, {0}, NULL, constant};
    memcpy(o.dims, dims, (size_t)rank * sizeof *dims);
    o.data = random_floats(shape_numel(o.rank, o.dims), -1, 1);
    return o;
}

static void free_operand(test_operand *o) { free((void *)o->data); }

static void matmul_2d_shapes(void **state)
{
    (void)state;
    random_seed(10);
    const int64_t shapes[][3] = {{3, 4, 3}, {1, 7, 5}, {5, 7, 1}, {1, 1, 1}, {17, 33, 29}, {64, 64, 64}, {2, 300, 3}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int64_t M = shapes[t][0], K = shapes[t][1], N = shapes[t][2];
        for (int constant_b = 0; constant_b < 2; constant_b++) {
            test_operand a = float_operand("A", 2, (int64_t[]){M, K}, false);
            test_operand b = float_operand("B", 2, (int64_t[]){K, N}, constant_b);
            check_matmul(&a, &b, &a, &b, 2, (int64_t[]){M, N}, 1);
            free_operand(&a);
            free_operand(&b);
        }
    }
}

/* 1-D operands are promoted ([K] -> [1,K] on the left, [K,1] on the right) and the added dim removed. */
static void matmul_vector_operands(void **state)
{
    (void)state;
    random_seed(11);
    test_operand v = float_operand("A", 1, (int64_t[]){6}, false);
    test_operand m = float_operand("B", 2, (int64_t[]){6, 4}, false);
    test_operand row = v, col = v;
    row.rank = 2, row.dims[0] = 1, row.dims[1] = 6;
    col.rank = 2, col.dims[0] = 6, col.dims[1] = 1;
    check_matmul(&v, &m, &row, &m, 1, (int64_t[]){4}, 1);

    test_operand mt = float_operand("A", 3, (int64_t[]){2, 3, 6}, false);
    test_operand vb = v;
    vb.name = "B";
    check_matmul(&mt, &vb, &mt, &col, 2, (int64_t[]){2, 3}, 1);

    test_operand va = v;
    check_matmul(&va, &vb, &row, &col, 0, NULL, 1);

    test_operand batched_b = float_operand("B", 3, (int64_t[]){3, 6, 2}, false);
    check_matmul(&v, &batched_b, &row, &batched_b, 2, (int64_t[]){3, 2}, 1);
    free_operand(&v);
    free_operand(&m);
    free_operand(&mt);
    free_operand(&batched_b);
}

static void matmul_batch_broadcast(void **state)
{
    (void)state;
    random_seed(12);
    test_operand a = float_operand("A", 4, (int64_t[]){2, 1, 3, 4}, false);
    test_operand b = float_operand("B", 3, (int64_t[]){5, 4, 2}, false);
    check_matmul(&a, &b, &a, &b, 4, (int64_t[]){2, 5, 3, 2}, 1);
    test_operand a2 = float_operand("A", 2, (int64_t[]){3, 4}, false);
    test_operand b2 = float_operand("B", 3, (int64_t[]){2, 4, 5}, false);
    check_matmul(&a2, &b2, &a2, &b2, 3, (int64_t[]){2, 3, 5}, 1);
    free_operand(&a);
    free_operand(&b);
    free_operand(&a2);
    free_operand(&b2);
}

/* A constant weight is packed at load; a batched A is folded into one product with it. */
static void matmul_constant_weight_batched(void **state)
{
    (void)state;
    random_seed(13);
    for (int threads = 1; threads <= 2; threads++) {
        test_operand a = float_operand("A", 3, (int64_t[]){3, 50, 70}, false);
        test_operand w = float_operand("W", 2, (int64_t[]){70, 90}, true);
        check_matmul(&a, &w, &a, &w, 3, (int64_t[]){3, 50, 90}, threads);
        test_operand x = float_operand("A", 2, (int64_t[]){1, 300}, false);
        test_operand w2 = float_operand("W", 2, (int64_t[]){300, 257}, true);
        check_matmul(&x, &w2, &x, &w2, 2, (int64_t[]){1, 257}, threads);
        free_operand(&a);
        free_operand(&w);
        free_operand(&x);
        free_operand(&w2);
    }
}

static void matmul_large_with_threads(void **state)
{
    (void)state;
    random_seed(14);
    test_operand a = float_operand("A", 2, (int64_t[]){130, 300}, false);
    test_operand b = float_operand("B", 2, (int64_t[]){300, 270}, false);
    check_matmul(&a, &b, &a, &b, 2, (int64_t[]){130, 270}, 2);
    check_matmul(&a, &b, &a, &b, 2, (int64_t[]){130, 270}, 3);
    free_operand(&a);
    free_operand(&b);
}

static void matmul_integer_and_double_dtypes(void **state)
{
    (void)state;
    /* [2,3] x [3,2]; int32 wraps on overflow like two's complement */
    const int32_t a32[] = {1, -2, 3, 4, 5, -6}, b32[] = {7, 8, -9, 10, 11, 12};
    const int32_t want32[] = {58, 24, -83, 10};
    test_operand in[2] = {{"A", KILN_INT32, 2, {2, 3}, a32, false}, {"B", KILN_INT32, 2, {3, 2}, b32, false}};
    test_run r;
    tr_compute(&r, 13, "MatMul", NULL, 2, in, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, want32, sizeof want32);
    tr_free(&r);

    const int32_t big[] = {INT32_MAX, INT32_MAX}, two[] = {2, 0};
    test_operand wrap[2] = {{"A", KILN_INT32, 2, {1, 2}, big, false}, {"B", KILN_INT32, 2, {2, 1}, two, false}};
    tr_compute(&r, 13, "MatMul", NULL, 2, wrap, KILN_INT32, 1);
    assert_int_equal(((const int32_t *)r.out[0].data)[0], -2);
    tr_free(&r);

    const int64_t a64[] = {1, 2, 3, 4, 5, 6}, b64[] = {1, 0, 0, 1, 1, 1}, want64[] = {4, 5, 10, 11};
    test_operand in64[2] = {{"A", KILN_INT64, 2, {2, 3}, a64, false}, {"B", KILN_INT64, 2, {3, 2}, b64, false}};
    tr_compute(&r, 13, "MatMul", NULL, 2, in64, KILN_INT64, 1);
    assert_memory_equal(r.out[0].data, want64, sizeof want64);
    tr_free(&r);

    const uint64_t au[] = {1, 2, 3, 4, 5, 6}, bu[] = {1, 0, 0, 1, 1, 1}, wantu[] = {4, 5, 10, 11};
    test_operand inu[2] = {{"A", KILN_UINT64, 2, {2, 3}, au, false}, {"B", KILN_UINT64, 2, {3, 2}, bu, true}};
    tr_compute(&r, 13, "MatMul", NULL, 2, inu, KILN_UINT64, 1);
    assert_memory_equal(r.out[0].data, wantu, sizeof wantu);
    tr_free(&r);

    const double ad[] = {0.5, 1.5, -2.0, 3.0}, bd[] = {2.0, 4.0}, wantd[] = {7.0, 8.0};
    test_operand ind[2] = {{"A", KILN_FLOAT64, 2, {2, 2}, ad, false}, {"B", KILN_FLOAT64, 1, {2}, bd, false}};
    tr_compute(&r, 13, "MatMul", NULL, 2, ind, KILN_FLOAT64, 1);
    assert_shape(&r.out[0], 1, (int64_t[]){2});
    assert_memory_equal(r.out[0].data, wantd, sizeof wantd);
    tr_free(&r);
}

static void matmul_empty_tensors(void **state)
{
    (void)state;
    float one = 1.0f;
    test_operand rows0[2] = {{"A", KILN_FLOAT32, 2, {0, 4}, &one, false}, {"B", KILN_FLOAT32, 2, {4, 3}, NULL, false}};
    float b[12] = {0};
    rows0[1].data = b;
    test_run r;
    tr_compute(&r, 13, "MatMul", NULL, 2, rows0, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 2, (int64_t[]){0, 3});
    tr_free(&r);

    /* K == 0: every output is an empty sum */
    test_operand k0[2] = {{"A", KILN_FLOAT32, 2, {2, 0}, &one, false}, {"B", KILN_FLOAT32, 2, {0, 3}, &one, false}};
    tr_compute(&r, 13, "MatMul", NULL, 2, k0, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 2, (int64_t[]){2, 3});
    for (int i = 0; i < 6; i++) assert_true(((const float *)r.out[0].data)[i] == 0.0f);
    tr_free(&r);
}

static void matmul_bad_models_fail_at_load(void **state)
{
    (void)state;
    float data[64] = {0};
    test_operand mismatch[2] = {{"A", KILN_FLOAT32, 2, {2, 3}, data, false},
                                {"B", KILN_FLOAT32, 2, {4, 2}, data, false}};
    assert_int_not_equal(tr_load_status(13, "MatMul", NULL, 2, mismatch, KILN_FLOAT32), KILN_OK);
    assert_non_null(strstr(kiln_last_error(), "inner dims"));

    test_operand scalar[2] = {{"A", KILN_FLOAT32, 0, {0}, data, false}, {"B", KILN_FLOAT32, 1, {1}, data, false}};
    assert_int_not_equal(tr_load_status(13, "MatMul", NULL, 2, scalar, KILN_FLOAT32), KILN_OK);

    test_operand batch[2] = {{"A", KILN_FLOAT32, 3, {2, 2, 2}, data, false},
                             {"B", KILN_FLOAT32, 3, {3, 2, 2}, data, false}};
    assert_int_not_equal(tr_load_status(13, "MatMul", NULL, 2, batch, KILN_FLOAT32), KILN_OK);

    /* empty operands with huge dims beside the zero: a result too large to plan, or an empty one */
    const int64_t huge = INT64_C(1) << 30;
    test_operand too_large[2] = {{"A", KILN_FLOAT32, 2, {huge, 0}, data, false},
                                 {"B", KILN_FLOAT32, 2, {0, huge}, data, false}};
    assert_int_not_equal(tr_load_status(13, "MatMul", NULL, 2, too_large, KILN_FLOAT32), KILN_OK);
    test_operand empty[2] = {{"A", KILN_FLOAT32, 3, {0, huge, 3}, data, false},
                             {"B", KILN_FLOAT32, 2, {3, huge}, data, false}};
    assert_int_equal(tr_load_status(13, "MatMul", NULL, 2, empty, KILN_FLOAT32), KILN_OK);

    int8_t bytes[4] = {0};
    test_operand int8[2] = {{"A", KILN_INT8, 2, {2, 2}, bytes, false}, {"B", KILN_INT8, 2, {2, 2}, bytes, false}};
    assert_int_equal(tr_load_status(13, "MatMul", NULL, 2, int8, KILN_INT8), KILN_ERR_UNSUPPORTED);
}

/* ---- Gemm ------------------------------------------------------------------------------------------- */

typedef struct gemm_case {
    int64_t M, N, K;
    bool trans_a, trans_b;
    float alpha, beta;
    int c_rank;
    int64_t c_dims[2];
    bool constant_b;
} gemm_case;

static void reference_gemm(const gemm_case *g, const float *A, const float *B, const float *C, double *Y)
{
    int64_t c_rows = g->c_rank == 2 ? g->c_dims[0] : 1;
    int64_t c_cols = g->c_rank >= 1 ? g->c_dims[g->c_rank - 1] : 1;
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) {
            double sum = 0;
            for (int64_t k = 0; k < g->K; k++)
                sum += (double)(g->trans_a ? A[k * g->M + i] : A[i * g->K + k]) *
                       (double)(g->trans_b ? B[j * g->K + k] : B[k * g->N + j]);
            double c = C ? C[(c_rows == 1 ? 0 : i) * c_cols + (c_cols == 1 ? 0 : j)] : 0.0;
            Y[i * g->N + j] = g->alpha * sum + (C ? g->beta * c : 0.0);
        }
}

static void check_gemm(const gemm_case *g, int threads)
{
    test_operand a = float_operand("A", 2, g->trans_a ? (int64_t[]){g->K, g->M} : (int64_t[]){g->M, g->K}, false);
    test_operand b =
        float_operand("B", 2, g->trans_b ? (int64_t[]){g->N, g->K} : (int64_t[]){g->K, g->N}, g->constant_b);
    test_operand c = g->c_rank >= 0 ? float_operand("C", g->c_rank, g->c_dims, false) : (test_operand){0};
    pbw attrs = {0};
    tm_attr_int(&attrs, "transA", g->trans_a);
    tm_attr_int(&attrs, "transB", g->trans_b);
    tm_attr_float(&attrs, "alpha", g->alpha);
    tm_attr_float(&attrs, "beta", g->beta);
    double *want = malloc((size_t)(g->M * g->N + 1) * sizeof *want);
    reference_gemm(g, a.data, b.data, g->c_rank >= 0 ? c.data : NULL, want);
    test_operand in[3] = {a, b, c};
    test_run r;
    tr_compute(&r, 13, "Gemm", &attrs, g->c_rank >= 0 ? 3 : 2, in, KILN_FLOAT32, threads);
    assert_shape(&r.out[0], 2, (int64_t[]){g->M, g->N});
    assert_close_sums(r.out[0].data, want, g->M * g->N, g->K);
    tr_free(&r);
    pbw_free(&attrs);
    free(want);
    free_operand(&a);
    free_operand(&b);
    if (g->c_rank >= 0) free_operand(&c);
}

static void gemm_attributes_and_bias_shapes(void **state)
{
    (void)state;
    random_seed(20);
    const int64_t M = 5, N = 7, K = 9;
    const struct {
        int rank;
        int64_t dims[2];
    } biases[] = {{-1, {0}}, {0, {0}}, {1, {1}}, {1, {N}}, {2, {1, N}}, {2, {M, 1}}, {2, {M, N}}, {2, {1, 1}}};
    for (size_t bi = 0; bi < sizeof biases / sizeof biases[0]; bi++)
        for (int flags = 0; flags < 8; flags++) {
            gemm_case g = {M, N, K, flags & 1, (flags >> 1) & 1, flags & 4 ? 0.5f : 1.0f, bi % 2 ? 0.25f : 1.0f,
                           biases[bi].rank, {biases[bi].dims[0], biases[bi].dims[1]}, (flags + (int)bi) % 3 == 0};
            check_gemm(&g, 1);
        }
}

static void gemm_large_constant_weight(void **state)
{
    (void)state;
    random_seed(21);
    gemm_case linear = {64, 300, 200, false, true, 1.0f, 1.0f, 1, {300}, true}; /* PyTorch Linear: x W^T + b */
    check_gemm(&linear, 1);
    check_gemm(&linear, 2);
    gemm_case batch1 = {1, 513, 257, false, true, 1.0f, 1.0f, 1, {513}, true};
    check_gemm(&batch1, 2);
    gemm_case beta0 = {40, 50, 60, true, false, 2.0f, 0.0f, 2, {40, 50}, false};
    check_gemm(&beta0, 1);
}

static void gemm_float64(void **state)
{
    (void)state;
    const double a[] = {1, 2, 3, 4, 5, 6}; /* [3,2], used transposed: op(A) is [2,3] */
    const double b[] = {1, 0, 0, 1, 1, 1}; /* [3,2] */
    const double c[] = {10, 20};           /* [2] broadcast over rows */
    /* op(A) = [[1,3,5],[2,4,6]]; op(A) * B = [[6,8],[8,10]]; Y = 2 * that + 0.5 * c */
    const double want[] = {17, 26, 21, 30};
    pbw attrs = {0};
    tm_attr_int(&attrs, "transA", 1);
    tm_attr_float(&attrs, "alpha", 2.0f);
    tm_attr_float(&attrs, "beta", 0.5f);
    test_operand in[3] = {{"A", KILN_FLOAT64, 2, {3, 2}, a, false},
                          {"B", KILN_FLOAT64, 2, {3, 2}, b, false},
                          {"C", KILN_FLOAT64, 1, {2}, c, false}};
    test_run r;
    tr_compute(&r, 11, "Gemm", &attrs, 3, in, KILN_FLOAT64, 1);
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    pbw_free(&attrs);
}

static void gemm_bad_models_fail_at_load(void **state)
{
    (void)state;
    float data[64] = {0};
    test_operand no_c[2] = {{"A", KILN_FLOAT32, 2, {2, 3}, data, false}, {"B", KILN_FLOAT32, 2, {3, 2}, data, false}};
    assert_int_not_equal(tr_load_status(9, "Gemm", NULL, 2, no_c, KILN_FLOAT32), KILN_OK); /* C required < 11 */
    assert_int_equal(tr_load_status(11, "Gemm", NULL, 2, no_c, KILN_FLOAT32), KILN_OK);

    test_operand bad_c[3] = {{"A", KILN_FLOAT32, 2, {2, 3}, data, false},
                             {"B", KILN_FLOAT32, 2, {3, 2}, data, false},
                             {"C", KILN_FLOAT32, 2, {3, 2}, data, false}};
    assert_int_not_equal(tr_load_status(13, "Gemm", NULL, 3, bad_c, KILN_FLOAT32), KILN_OK);
    assert_non_null(strstr(kiln_last_error(), "does not broadcast"));

    test_operand rank3[2] = {{"A", KILN_FLOAT32, 3, {1, 2, 3}, data, false},
                             {"B", KILN_FLOAT32, 2, {3, 2}, data, false}};
    assert_int_not_equal(tr_load_status(13, "Gemm", NULL, 2, rank3, KILN_FLOAT32), KILN_OK);

    pbw attrs = {0};
    tm_attr_float(&attrs, "transA", 1.0f); /* an int attribute given as a float */
    assert_int_not_equal(tr_load_status(13, "Gemm", &attrs, 2, no_c, KILN_FLOAT32), KILN_OK);
    pbw_free(&attrs);

    const int64_t huge = INT64_C(1) << 40;
    test_operand too_large[2] = {{"A", KILN_FLOAT32, 2, {huge, 0}, data, false},
                                 {"B", KILN_FLOAT32, 2, {0, huge}, data, false}};
    assert_int_not_equal(tr_load_status(13, "Gemm", NULL, 2, too_large, KILN_FLOAT32), KILN_OK);

    int32_t ints[8] = {0};
    test_operand int_gemm[2] = {{"A", KILN_INT32, 2, {2, 2}, ints, false}, {"B", KILN_INT32, 2, {2, 2}, ints, false}};
    assert_int_equal(tr_load_status(13, "Gemm", NULL, 2, int_gemm, KILN_INT32), KILN_ERR_UNSUPPORTED);
}

/* ---- MatMulInteger ---------------------------------------------------------------------------------- */

static void matmul_integer_zero_points(void **state)
{
    (void)state;
    /* the ONNX example: per-tensor zero points */
    const uint8_t a[] = {11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0}, b[] = {1, 4, 2, 5, 3, 6};
    const uint8_t azp[] = {12}, bzp[] = {0};
    const int32_t want[] = {-38, -83, -44, -98, -50, -113, -56, -128};
    test_operand in[4] = {{"A", KILN_UINT8, 2, {4, 3}, a, false},
                          {"B", KILN_UINT8, 2, {3, 2}, b, false},
                          {"a_zero_point", KILN_UINT8, 1, {1}, azp, false},
                          {"b_zero_point", KILN_UINT8, 1, {1}, bzp, false}};
    test_run r;
    tr_compute(&r, 10, "MatMulInteger", NULL, 4, in, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);

    /* int8 with a zero point per row of A and per column of B */
    const int8_t sa[] = {-128, 127, 5, -5}, sb[] = {1, -1, 2, 3};
    const int8_t row_zp[] = {1, -1}, col_zp[] = {0, 2};
    /* (A - [1;-1]) = [[-129, 126], [6, -4]]; (B - [0, 2]) = [[1, -3], [2, 1]] */
    const int32_t swant[] = {-129 + 252, 387 + 126, 6 - 8, -18 - 4};
    test_operand sin[4] = {{"A", KILN_INT8, 2, {2, 2}, sa, false},
                           {"B", KILN_INT8, 2, {2, 2}, sb, false},
                           {"a_zero_point", KILN_INT8, 1, {2}, row_zp, false},
                           {"b_zero_point", KILN_INT8, 1, {2}, col_zp, false}};
    tr_compute(&r, 10, "MatMulInteger", NULL, 4, sin, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, swant, sizeof swant);
    tr_free(&r);

    /* no zero points, mixed signedness, batched */
    const int8_t ma[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t mb[] = {255, 1, 0, 2};
    const int32_t mwant[] = {255, 5, 765, 11, 1275, 17, 1785, 23};
    test_operand min[2] = {{"A", KILN_INT8, 3, {2, 2, 2}, ma, false}, {"B", KILN_UINT8, 2, {2, 2}, mb, false}};
    tr_compute(&r, 10, "MatMulInteger", NULL, 2, min, KILN_INT32, 1);
    assert_memory_equal(r.out[0].data, mwant, sizeof mwant);
    tr_free(&r);
    const uint8_t zp4[4] = {0};
    test_operand nd[3] = {{"A", KILN_UINT8, 2, {2, 2}, a, false},
                          {"B", KILN_UINT8, 2, {2, 2}, b, false},
                          {"a_zero_point", KILN_UINT8, 2, {2, 2}, zp4, false}};
    assert_int_equal(tr_load_status(10, "MatMulInteger", NULL, 3, nd, KILN_INT32), KILN_ERR_UNSUPPORTED);
    test_operand mixed_zp[3] = {{"A", KILN_UINT8, 2, {2, 2}, a, false},
                                {"B", KILN_UINT8, 2, {2, 2}, b, false},
                                {"a_zero_point", KILN_INT8, 1, {1}, zp4, false}};
    assert_int_not_equal(tr_load_status(10, "MatMulInteger", NULL, 3, mixed_zp, KILN_INT32), KILN_OK);
}

static void qlinear_matmul_rounding_and_saturation(void **state)
{
    (void)state;
    /* the ONNX example: uint8, per-tensor parameters */
    const uint8_t a[] = {208, 236, 0, 238, 3, 214, 255, 29};
    const uint8_t b[] = {152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247};
    const float a_scale[] = {0.0066f}, b_scale[] = {0.00705f}, y_scale[] = {0.0107f};
    const uint8_t a_zp[] = {113}, b_zp[] = {114}, y_zp[] = {118};
    const uint8_t want[] = {168, 115, 255, 1, 66, 151};
    test_operand in[8] = {{"a", KILN_UINT8, 2, {2, 4}, a, false},
                          {"a_scale", KILN_FLOAT32, 1, {1}, a_scale, false},
                          {"a_zero_point", KILN_UINT8, 1, {1}, a_zp, false},
                          {"b", KILN_UINT8, 2, {4, 3}, b, false},
                          {"b_scale", KILN_FLOAT32, 1, {1}, b_scale, false},
                          {"b_zero_point", KILN_UINT8, 1, {1}, b_zp, false},
                          {"y_scale", KILN_FLOAT32, 1, {1}, y_scale, false},
                          {"y_zero_point", KILN_UINT8, 1, {1}, y_zp, false}};
    test_run r;
    tr_compute(&r, 10, "QLinearMatMul", NULL, 8, in, KILN_UINT8, 1);
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);

    /* int8 with per-row A and per-column B parameters. Row 0: sums 17 and 64, scaled by 0.5 and by
     * 0.5 * 0.25, give 8.5 (a tie, rounded to even: 8) and 8; row 1 (A minus zero point 1: -101, -1) gives
     * -203 (saturates) and -99. y_zero_point 1 is added before saturating. */
    const int8_t sa[] = {10, -3, -100, 0}, sb[] = {2, 4, 1, -8};
    const float sa_scale[] = {0.5f, 1.0f}, sb_scale[] = {1.0f, 0.25f}, sy_scale[] = {1.0f};
    const int8_t sa_zp[] = {0, 1}, sb_zp[] = {0, 0}, sy_zp[] = {1};
    const int8_t swant[] = {9, 9, -128, -98};
    test_operand sin[8] = {{"a", KILN_INT8, 2, {2, 2}, sa, false},
                           {"a_scale", KILN_FLOAT32, 1, {2}, sa_scale, false},
                           {"a_zero_point", KILN_INT8, 1, {2}, sa_zp, false},
                           {"b", KILN_INT8, 2, {2, 2}, sb, false},
                           {"b_scale", KILN_FLOAT32, 1, {2}, sb_scale, false},
                           {"b_zero_point", KILN_INT8, 1, {2}, sb_zp, false},
                           {"y_scale", KILN_FLOAT32, 1, {1}, sy_scale, false},
                           {"y_zero_point", KILN_INT8, 1, {1}, sy_zp, false}};
    tr_compute(&r, 10, "QLinearMatMul", NULL, 8, sin, KILN_INT8, 1);
    assert_memory_equal(r.out[0].data, swant, sizeof swant);
    tr_free(&r);
    sin[6].rank = 1, sin[6].dims[0] = 2, sin[6].data = sa_scale; /* y_scale must be one value */
    assert_int_not_equal(tr_load_status(10, "QLinearMatMul", NULL, 8, sin, KILN_INT8), KILN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_2d_shapes),
        cmocka_unit_test(matmul_vector_operands),
        cmocka_unit_test(matmul_batch_broadcast),
        cmocka_unit_test(matmul_constant_weight_batched),
        cmocka_unit_test(matmul_large_with_threads),
        cmocka_unit_test(matmul_integer_and_double_dtypes),
        cmocka_unit_test(matmul_empty_tensors),
        cmocka_unit_test(matmul_bad_models_fail_at_load),
        cmocka_unit_test(gemm_attributes_and_bias_shapes),
        cmocka_unit_test(gemm_large_constant_weight),
        cmocka_unit_test(gemm_float64),
        cmocka_unit_test(gemm_bad_models_fail_at_load),
        cmocka_unit_test(matmul_integer_zero_points),
        cmocka_unit_test(qlinear_matmul_rounding_and_saturation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
