/*
 * test_gemm.c — every GEMM variant against the double-accumulating reference: random shapes (odd sizes,
 * sizes that cross the cache blocks, M or N of 1 for the matrix-vector paths), both transposes, alpha and
 * beta, leading dimensions wider than the rows, pre-packed B (whose M == 1 products read the panels), and a
 * multi-thread runner. Scratch is allocated at exactly the size gemm_f32_scratch_bytes asks for, so the
 * sanitizer build catches any packing that strays past it.
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

#include "core/mem.h"
#include "kernels/gemm.h"
#include "runtime/pool.h"
#include "testlib.h"

typedef struct shape {
    int64_t M, N, K;
    bool trans_a, trans_b;
    int64_t pad_a, pad_b, pad_c; /* extra elements per row beyond the matrix */
    float alpha, beta;
} shape;

/* Operands of one problem; C starts as random values so that beta is exercised. */
typedef struct problem {
    shape s;
    gemm_args args;
    float *A, *B, *C, *C_initial, *expected;
} problem;

static void problem_init(problem *p, const shape *s)
{
    p->s = *s;
    int64_t a_rows = s->trans_a ? s->K : s->M, a_cols = s->trans_a ? s->M : s->K;
    int64_t b_rows = s->trans_b ? s->N : s->K, b_cols = s->trans_b ? s->K : s->N;
    int64_t lda = a_cols + s->pad_a, ldb = b_cols + s->pad_b, ldc = s->N + s->pad_c;
    p->A = random_floats(a_rows * lda, -1, 1);
    p->B = random_floats(b_rows * ldb, -1, 1);
    p->C = random_floats(s->M * ldc, -1, 1);
    p->C_initial = random_floats(s->M * ldc, -1, 1);
    p->expected = random_floats(s->M * ldc, -1, 1);
    memcpy(p->C_initial, p->C, (size_t)(s->M * ldc) * sizeof(float));
    memcpy(p->expected, p->C, (size_t)(s->M * ldc) * sizeof(float));
    p->args = (gemm_args){s->M, s->N, s->K, s->trans_a, s->trans_b, p->A, lda, p->B, ldb, p->C, ldc, s->alpha, s->beta};
    gemm_args ref = p->args;
    ref.C = p->expected;
    gemm_f32_reference(&ref);
}

static void problem_free(problem *p)
{
    free(p->A);
    free(p->B);
    free(p->C);
    free(p->C_initial);
    free(p->expected);
}

/* Float32 sums of K products in [-1, 1] drift from the double reference by about K * 2^-24 per term. */
static void assert_matches_reference(const problem *p, const char *what)
{
    double tolerance = 1e-5 * (double)(p->s.K + 1);
    for (int64_t i = 0; i < p->s.M; i++)
        for (int64_t j = 0; j < p->s.N; j++) {
            double got = p->C[i * p->args.ldc + j], want = p->expected[i * p->args.ldc + j];
            if (!(fabs(got - want) <= tolerance))
                fail_msg("%s: M=%lld N=%lld K=%lld ta=%d tb=%d alpha=%g beta=%g: C[%lld,%lld] = %g, expected %g", what,
                         (long long)p->s.M, (long long)p->s.N, (long long)p->s.K, p->s.trans_a, p->s.trans_b,
                         (double)p->s.alpha, (double)p->s.beta, (long long)i, (long long)j, got, want);
        }
    /* the padding between rows of C is never written */
    for (int64_t i = 0; i < p->s.M; i++)
        for (int64_t j = p->s.N; j < p->args.ldc; j++)
            assert_true(p->C[i * p->args.ldc + j] == p->expected[i * p->args.ldc + j]);
}

/* Runs one variant (or pre-packed B when `packed`) with scratch of exactly the advertised size. */
static void run_variant(problem *pr, gemm_variant variant, bool packed, const parallel_runner *runner)
{
    problem p = *pr;
    const shape *s = &p.s;
    memcpy(p.C, p.C_initial, (size_t)(s->M * p.args.ldc) * sizeof(float));
    size_t bytes = gemm_f32_scratch_bytes(s->M, s->N, s->K, parallel_threads(runner));
    void *scratch = bytes ? mem_aligned_alloc(bytes) : NULL;
    if (packed) {
        void *memory = malloc(gemm_f32_pack_b_bytes(variant, s->K, s->N) + 1);
        assert_non_null(memory);
        gemm_packed_b b;
        gemm_f32_pack_b(variant, s->K, s->N, s->trans_b, p.B, p.args.ldb, memory, &b);
        gemm_f32_prepacked(&p.args, &b, scratch, runner);
        free(memory);
    } else {
        gemm_f32_with_variant(variant, &p.args, scratch, runner);
    }
    assert_matches_reference(&p, gemm_variant_name(variant));
    mem_aligned_free(scratch);
}

static void run_every_variant(const shape *s, const parallel_runner *runner)
{
    problem p;
    problem_init(&p, s);
    for (int v = GEMM_VARIANT_AUTO; v < GEMM_VARIANT_COUNT; v++) {
        if (!gemm_variant_available((gemm_variant)v)) continue;
        run_variant(&p, (gemm_variant)v, false, runner);
        run_variant(&p, (gemm_variant)v, true, runner);
    }
    problem_free(&p);
}

static shape random_gemm_shape(int max_dim)
{
    static const float alphas[] = {1.0f, 0.5f, -2.0f};
    static const float betas[] = {0.0f, 1.0f, 0.25f};
    shape s = {
        .M = random_int(1, max_dim),
        .N = random_int(1, max_dim),
        .K = random_int(1, max_dim),
        .trans_a = random_int(0, 1),
        .trans_b = random_int(0, 1),
        .pad_a = random_int(0, 2) == 0 ? random_int(0, 4) : 0,
        .pad_b = random_int(0, 2) == 0 ? random_int(0, 4) : 0,
        .pad_c = random_int(0, 2) == 0 ? random_int(0, 4) : 0,
        .alpha = alphas[random_int(0, 2)],
        .beta = betas[random_int(0, 2)],
    };
    return s;
}

static void random_small_shapes(void **state)
{
    (void)state;
    random_seed(1);
    for (int i = 0; i < 150; i++) {
        shape s = random_gemm_shape(40);
        run_every_variant(&s, NULL);
    }
}

static void matrix_vector_shapes(void **state)
{
    (void)state;
    random_seed(2);
    for (int i = 0; i < 60; i++) {
        shape s = random_gemm_shape(300);
        if (i % 2) s.M = 1;
        else s.N = 1;
        s.pad_a = s.pad_b = s.pad_c = i % 3; /* strided vectors exercise the contiguous copy */
        run_every_variant(&s, NULL);
    }
    /* wider than one chunk of the row-streaming kernels */
    const shape wide[] = {
        {1, 2100, 33, false, false, 0, 0, 0, 1.0f, 0.0f},
        {2100, 1, 33, true, false, 1, 0, 2, 0.5f, 1.0f},
    };
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) run_every_variant(&wide[i], NULL);
}

/* Sizes past the kernel sets' KC, MC and NC, so every loop of the blocking runs more than once. */
static void shapes_crossing_cache_blocks(void **state)
{
    (void)state;
    random_seed(3);
    const shape shapes[] = {
        {403, 531, 517, false, false, 0, 0, 0, 1.0f, 0.0f},
        {390, 1030, 260, true, true, 3, 1, 2, 0.5f, 1.0f},
        {13, 1100, 600, false, true, 0, 0, 0, 1.0f, 0.5f},
        /* few row tiles: B read in place across NC blocks and K slices, a narrow last panel packed */
        {20, 1100, 300, false, false, 0, 3, 1, 1.0f, 0.5f},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) run_every_variant(&shapes[i], NULL);
}

static void multiple_threads(void **state)
{
    (void)state;
    random_seed(4);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    const shape big[] = {
        {200, 300, 150, false, false, 0, 0, 0, 1.0f, 0.0f},
        {1, 2000, 70, false, true, 0, 0, 0, 1.0f, 1.0f},
        {2000, 1, 70, true, false, 0, 2, 1, 2.0f, 0.0f},
        {390, 600, 300, true, false, 1, 0, 0, 1.0f, 0.25f},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) run_every_variant(&big[i], &runner);
    for (int i = 0; i < 30; i++) {
        shape s = random_gemm_shape(120);
        run_every_variant(&s, &runner);
    }
    pool_free(pool);
}

/* B's panels produced by a callback, as a convolution's unfolded input is: here, read from a plain op(B). */
typedef struct panel_source {
    const float *B;
    int64_t ldb;
} panel_source;

static void panel_from_matrix(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int count, int width, float *dst)
{
    const panel_source *src = ctx;
    for (int64_t k = 0; k < kc; k++)
        for (int j = 0; j < width; j++) dst[k * width + j] = j < count ? src->B[(k0 + k) * src->ldb + j0 + j] : 0.0f;
}

/* One gemm_f32_fused product (pre-packed A, B from the callback or from memory, row bias, activation) in
 * every kernel set, with scratch of exactly the advertised size, against the reference followed by the
 * epilogue. */
static void check_fused(int64_t M, int64_t N, int64_t K, gemm_activation act, bool b_from_callback,
                        const parallel_runner *run)
{
    float *A = random_floats(M * K, -1, 1), *B = random_floats(K * N, -1, 1), *bias = random_floats(M, -1, 1);
    float *C = random_floats(M * N, -1, 1), *want = random_floats(M * N, -1, 1);
    gemm_args g = {M, N, K, false, false, A, K, B, N, want, N, 1.0f, 0.0f};
    gemm_f32_reference(&g);
    gemm_epilogue ep = {bias, act, -0.5f, 0.75f};
    for (int64_t i = 0; i < M * N; i++) want[i] = test_activation(act, ep.lo, ep.hi, want[i] + bias[i / N]);
    size_t bytes = gemm_f32_fused_scratch_bytes(M, N, K, parallel_threads(run));
    void *scratch = mem_aligned_alloc(bytes);
    for (int v = GEMM_VARIANT_PORTABLE; v < GEMM_VARIANT_COUNT; v++) {
        if (!gemm_variant_available((gemm_variant)v)) continue;
        void *packed_memory = malloc(gemm_f32_pack_a_bytes((gemm_variant)v, M, K));
        gemm_packed_a packed;
        gemm_f32_pack_a((gemm_variant)v, M, K, false, A, K, packed_memory, &packed);
        panel_source source = {B, N};
        gemm_fused fused = {&packed, b_from_callback ? panel_from_matrix : NULL, &source, &ep, false, false};
        g.C = C;
        gemm_f32_fused(&g, &fused, scratch, run);
        for (int64_t i = 0; i < M * N; i++)
            if (!(fabs(C[i] - want[i]) <= 1e-5 * (double)(K + 1)))
                fail_msg("%s: M=%lld N=%lld K=%lld act %d, %d threads: C[%lld] = %g, expected %g",
                         gemm_variant_name((gemm_variant)v), (long long)M, (long long)N, (long long)K, (int)act,
                         parallel_threads(run), (long long)i, C[i], want[i]);
        free(packed_memory);
    }
    mem_aligned_free(scratch);
    free(A), free(B), free(bias), free(C), free(want);
}

static const gemm_activation every_activation[] = {GEMM_ACT_NONE,    GEMM_ACT_CLAMP,        GEMM_ACT_SILU,
                                                   GEMM_ACT_SIGMOID, GEMM_ACT_HARD_SIGMOID, GEMM_ACT_HARD_SWISH};
enum { ACTIVATIONS = sizeof every_activation / sizeof every_activation[0] };

/* gemm_f32_fused on one and three threads, B from the callback or from memory, each activation. */
static void fused_products(void **state)
{
    (void)state;
    random_seed(6);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    const int64_t sizes[][3] = {{64, 3136, 60}, {512, 49, 200}, {256, 196, 300}, {7, 1, 30}, {1, 500, 40},
                                {37, 1000, 300}, {300, 45, 600}, {1152, 1, 48}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++)
        for (int variant = 0; variant < ACTIVATIONS; variant++)
            check_fused(sizes[t][0], sizes[t][1], sizes[t][2], every_activation[variant], variant % 3 == 0,
                        variant & 1 ? &runner : NULL);
    pool_free(pool);
}

/* Pointwise-convolution shapes with few columns, where gemm_f32_fused may turn the product around (rows of C
 * along the vector lanes): row counts around the kernels' tiles (12, 16, 48), columns around 7-column tiles,
 * K from 1 to several K slices. */
static void fused_few_columns(void **state)
{
    (void)state;
    random_seed(7);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    const int64_t rows[] = {5, 16, 47, 48, 100, 160, 1152}, columns[] = {2, 7, 13, 49, 50}, depths[] = {1, 24, 600};
    int n = 0;
    for (size_t m = 0; m < sizeof rows / sizeof rows[0]; m++)
        for (size_t j = 0; j < sizeof columns / sizeof columns[0]; j++)
            for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++, n++)
                check_fused(rows[m], columns[j], depths[k], every_activation[n % ACTIVATIONS], false,
                            n % 5 == 0 ? &runner : NULL);
    pool_free(pool);
}

/* beta == 0 must not read C: NaN there must not leak into the result. */
static void beta_zero_ignores_c(void **state)
{
    (void)state;
    const int64_t sizes[][3] = {{7, 9, 5}, {1, 33, 17}, {33, 1, 17}, {50, 70, 300}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int64_t M = sizes[t][0], N = sizes[t][1], K = sizes[t][2];
        float *A = random_floats(M * K, -1, 1), *B = random_floats(K * N, -1, 1),
              *C = malloc((size_t)(M * N) * sizeof(float));
        void *scratch = mem_aligned_alloc(gemm_f32_scratch_bytes(M, N, K, 1));
        for (int v = GEMM_VARIANT_AUTO; v < GEMM_VARIANT_COUNT; v++) {
            if (!gemm_variant_available((gemm_variant)v)) continue;
            for (int64_t i = 0; i < M * N; i++) C[i] = NAN;
            gemm_args g = {M, N, K, false, false, A, K, B, N, C, N, 1.0f, 0.0f};
            gemm_f32_with_variant((gemm_variant)v, &g, scratch, NULL);
            for (int64_t i = 0; i < M * N; i++) assert_false(isnan(C[i]));
            /* and through pre-packed B (M == 1 reads the panels) */
            void *memory = malloc(gemm_f32_pack_b_bytes((gemm_variant)v, K, N));
            gemm_packed_b packed;
            gemm_f32_pack_b((gemm_variant)v, K, N, false, B, N, memory, &packed);
            for (int64_t i = 0; i < M * N; i++) C[i] = NAN;
            gemm_f32_prepacked(&g, &packed, scratch, NULL);
            for (int64_t i = 0; i < M * N; i++) assert_false(isnan(C[i]));
            free(memory);
        }
        mem_aligned_free(scratch);
        free(A);
        free(B);
        free(C);
    }
}

/* K == 0 leaves beta * C; M == 0 or N == 0 touch nothing. */
static void empty_dimensions(void **state)
{
    (void)state;
    float C[6] = {1, 2, 3, 4, 5, 6};
    gemm_args g = {2, 3, 0, false, false, NULL, 0, NULL, 3, C, 3, 1.0f, 2.0f};
    gemm_f32(&g, NULL, NULL);
    for (int i = 0; i < 6; i++) assert_true(C[i] == 2.0f * (float)(i + 1));
    g.beta = 0.0f;
    C[0] = NAN;
    gemm_f32(&g, NULL, NULL);
    for (int i = 0; i < 6; i++) assert_true(C[i] == 0.0f);
    assert_int_equal(gemm_f32_scratch_bytes(0, 5, 5, 4), 0);
    assert_int_equal(gemm_f32_scratch_bytes(5, 5, 0, 4), 0);
    float untouched = 7.0f;
    gemm_args none = {0, 1, 4, false, false, NULL, 4, NULL, 1, &untouched, 1, 1.0f, 0.0f};
    gemm_f32(&none, NULL, NULL);
    none.M = 1, none.N = 0;
    gemm_f32(&none, NULL, NULL);
    assert_true(untouched == 7.0f);
}

/* The packing area is shared by the threads, so its size must not grow with them. */
static void scratch_independent_of_threads(void **state)
{
    (void)state;
    assert_int_equal(gemm_f32_scratch_bytes(1000, 1000, 1000, 1), gemm_f32_scratch_bytes(1000, 1000, 1000, 64));
    assert_true(gemm_f32_scratch_bytes(8, 8, 8, 1) < gemm_f32_scratch_bytes(1000, 1000, 1000, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_small_shapes),
        cmocka_unit_test(matrix_vector_shapes),
        cmocka_unit_test(shapes_crossing_cache_blocks),
        cmocka_unit_test(multiple_threads),
        cmocka_unit_test(fused_products),
        cmocka_unit_test(fused_few_columns),
        cmocka_unit_test(beta_zero_ignores_c),
        cmocka_unit_test(empty_dimensions),
        cmocka_unit_test(scratch_independent_of_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
