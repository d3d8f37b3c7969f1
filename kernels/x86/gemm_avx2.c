/*
 * gemm_avx2.c — AVX2 + FMA kernels for gemm.c: a 6 x 16 micro-kernel and the matrix-vector kernels.
 *
 * The micro-tile is 6 rows x 2 vectors of 8 floats: 12 accumulators, two B vectors and one broadcast A
 * value use 15 of the 16 ymm registers (the classic Haswell shape). Tiles with fewer rows call a copy
 * specialised for their row count; narrow right-edge tiles go through masked loads and stores.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/gemm_kernels.h"
#include "kernels/gemm_pack.h"

enum { MR = 6, NR = 16, LANES = 8 };

/* All-ones in the first `count` 32-bit lanes: the mask form vmaskmov expects. */
static __m256i lane_mask(int count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* c[0:count] = alpha * acc + beta * c, then the tile ops (bias already broadcast) when given. */
static inline void store_lanes(float *c, __m256 acc, __m256 alpha, __m256 beta, bool read_c, int count,
                               const gemm_tile_ops *ops, __m256 bias)
{
    if (count <= 0) return;
    __m256i mask = lane_mask(count);
    bool whole = count >= LANES;
    __m256 r = _mm256_mul_ps(alpha, acc);
    if (read_c) r = _mm256_fmadd_ps(beta, whole ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, mask), r);
    if (ops) {
        r = _mm256_add_ps(r, bias);
        /* max/min return their second operand when either is NaN */
        if (ops->clamp) r = _mm256_min_ps(_mm256_set1_ps(ops->hi), _mm256_max_ps(_mm256_set1_ps(ops->lo), r));
    }
    if (whole) _mm256_storeu_ps(c, r);
    else _mm256_maskstore_ps(c, mask, r);
}

/* `rows` is a constant after inlining, so the accumulator arrays live in registers. */
static inline __attribute__((always_inline)) void tile(const int rows, int64_t kc, const float *a,
                                                       const float *b, int64_t ldb, float *c, int64_t ldc, int nr,
                                                       float alpha, float beta, const gemm_tile_ops *ops)
{
    __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++, a += MR, b += ldb) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + LANES);
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    bool read_c = beta != 0.0f;
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++, c += ldc) {
        __m256 bias = _mm256_set1_ps(ops && ops->bias ? ops->bias[i] : 0.0f);
        store_lanes(c, acc0[i], va, vb, read_c, nr, ops, bias);
        store_lanes(c + LANES, acc1[i], va, vb, read_c, nr - LANES, ops, bias);
    }
}

#define TILE_CASE(r)                                                                                         \
    case r:                                                                                                  \
        tile(r, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                                                \
        break;

static void microkernel(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc, int mr,
                        int nr, float alpha, float beta, const gemm_tile_ops *ops)
{
    switch (mr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
    default: break;
    }
}

static void store_vector(float *y, int64_t incy, int count, __m256 sum, float alpha, float beta)
{
    if (incy == 1) {
        store_lanes(y, sum, _mm256_set1_ps(alpha), _mm256_set1_ps(beta), beta != 0.0f, count, NULL, sum);
        return;
    }
    float lanes[LANES];
    _mm256_storeu_ps(lanes, sum);
    for (int j = 0; j < count; j++) {
        float *yj = y + j * incy;
        *yj = beta == 0.0f ? alpha * lanes[j] : alpha * lanes[j] + beta * *yj;
    }
}

/* y = x * M, M row-major, VECMAT_CHUNK outputs at a time: their sums stay in a local buffer (in L1) while
 * the rows of M stream past four at a time, each row segment read front to back, the order memory delivers
 * fastest. Chunks of at most NARROW_VECTORS vectors keep their sums in registers instead (two sets, for
 * alternate rows), because there the chain through the buffer would be the bottleneck. */
enum { VECMAT_CHUNK = 1024, VECMAT_ROWS = 4, NARROW_VECTORS = 4 };

/* A row's lanes j .. j+7, masked past `count`: reading beyond the row could leave the matrix. */
static inline __m256 load_row(const float *row, int j, int count)
{
    return count - j >= LANES ? _mm256_loadu_ps(row + j) : _mm256_maskload_ps(row + j, lane_mask(count - j));
}

/* acc[0:count] += sum over the `rows` rows r of x[r] * row[r][0:count]. acc has room for whole vectors. */
static inline void accumulate_rows(float *acc, int count, const float *x, const float *const *row, int rows)
{
    __m256 xs[VECMAT_ROWS];
    for (int r = 0; r < rows; r++) xs[r] = _mm256_broadcast_ss(x + r);
    for (int j = 0; j < count; j += LANES) {
        __m256 sum = _mm256_load_ps(acc + j);
        for (int r = 0; r < rows; r++) sum = _mm256_fmadd_ps(xs[r], load_row(row[r], j, count), sum);
        _mm256_store_ps(acc + j, sum);
    }
}

static void vecmat_wide(int64_t K, int count, const float *x, const float *m, int64_t ldm, float *acc)
{
    for (int j = 0; j < count; j++) acc[j] = 0.0f;
    int64_t k = 0;
    for (; k + VECMAT_ROWS <= K; k += VECMAT_ROWS) {
        const float *row[VECMAT_ROWS];
        for (int r = 0; r < VECMAT_ROWS; r++) row[r] = m + (k + r) * ldm;
        accumulate_rows(acc, count, x + k, row, VECMAT_ROWS);
    }
    for (; k < K; k++) {
        const float *row = m + k * ldm;
        accumulate_rows(acc, count, x + k, &row, 1);
    }
}

/* `vectors` is a constant after inlining (see vecmat_narrow), so the sums live in registers. */
static inline __attribute__((always_inline)) void accumulate_row(const int vectors, __m256 *sums, int count,
                                                                 float x, const float *row)
{
    __m256 xk = _mm256_set1_ps(x);
    for (int v = 0; v < vectors; v++) sums[v] = _mm256_fmadd_ps(xk, load_row(row, v * LANES, count), sums[v]);
}

static inline __attribute__((always_inline)) void narrow(const int vectors, int64_t K, int count, const float *x,
                                                         const float *m, int64_t ldm, float *acc)
{
    __m256 even[NARROW_VECTORS], odd[NARROW_VECTORS];
    for (int v = 0; v < vectors; v++) even[v] = odd[v] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= K; k += 2) {
        accumulate_row(vectors, even, count, x[k], m + k * ldm);
        accumulate_row(vectors, odd, count, x[k + 1], m + (k + 1) * ldm);
    }
    if (k < K) accumulate_row(vectors, even, count, x[k], m + k * ldm);
    for (int v = 0; v < vectors; v++) _mm256_store_ps(acc + v * LANES, _mm256_add_ps(even[v], odd[v]));
}

static void vecmat_narrow(int64_t K, int count, const float *x, const float *m, int64_t ldm, float *acc)
{
    switch ((count + LANES - 1) / LANES) {
    case 1: narrow(1, K, count, x, m, ldm, acc); break;
    case 2: narrow(2, K, count, x, m, ldm, acc); break;
    case 3: narrow(3, K, count, x, m, ldm, acc); break;
    default: narrow(4, K, count, x, m, ldm, acc); break;
    }
}

static void vecmat(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    _Alignas(32) float acc[VECMAT_CHUNK];
    for (int64_t j0 = 0; j0 < n; j0 += VECMAT_CHUNK) {
        int count = n - j0 < VECMAT_CHUNK ? (int)(n - j0) : VECMAT_CHUNK;
        if (count <= NARROW_VECTORS * LANES) vecmat_narrow(K, count, x, m + j0, ldm, acc);
        else vecmat_wide(K, count, x, m + j0, ldm, acc);
        for (int j = 0; j < count; j += LANES) {
            int lanes = count - j < LANES ? count - j : LANES;
            store_vector(y + (j0 + j) * incy, incy, lanes, _mm256_load_ps(acc + j), alpha, beta);
        }
    }
}

static float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* y[j] = dot(x, row j of M), four rows at a time so that x is loaded once per four dot products. */
enum { MATVEC_ROWS = 4 };

static void matvec(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    for (int64_t j0 = 0; j0 < n; j0 += MATVEC_ROWS) {
        int rows = n - j0 < MATVEC_ROWS ? (int)(n - j0) : MATVEC_ROWS;
        const float *row[MATVEC_ROWS];
        for (int r = 0; r < MATVEC_ROWS; r++) row[r] = m + (j0 + (r < rows ? r : 0)) * ldm;
        __m256 acc[MATVEC_ROWS];
        for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + LANES <= K; k += LANES) {
            __m256 xv = _mm256_loadu_ps(x + k);
            for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row[r] + k), acc[r]);
        }
        if (k < K) {
            __m256i mask = lane_mask((int)(K - k));
            __m256 xv = _mm256_maskload_ps(x + k, mask);
            for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm256_fmadd_ps(xv, _mm256_maskload_ps(row[r] + k, mask), acc[r]);
        }
        for (int r = 0; r < rows; r++) {
            float *yr = y + (j0 + r) * incy;
            float sum = horizontal_sum(acc[r]);
            *yr = beta == 0.0f ? alpha * sum : alpha * sum + beta * *yr;
        }
    }
}

/* Two k steps at a time into separate sums, so that two FMA chains overlap. */
static void vecpanel(int64_t K, const float *x, const float *b, float *y, int nr, float alpha, float beta)
{
    __m256 even0 = _mm256_setzero_ps(), even1 = even0, odd0 = even0, odd1 = even0;
    int64_t k = 0;
    for (; k + 2 <= K; k += 2, b += 2 * NR) {
        __m256 x0 = _mm256_broadcast_ss(x + k), x1 = _mm256_broadcast_ss(x + k + 1);
        even0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b), even0);
        even1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + LANES), even1);
        odd0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b + NR), odd0);
        odd1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b + NR + LANES), odd1);
    }
    if (k < K) {
        __m256 x0 = _mm256_broadcast_ss(x + k);
        even0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b), even0);
        even1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + LANES), even1);
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    store_lanes(y, _mm256_add_ps(even0, odd0), va, vb, beta != 0.0f, nr, NULL, va);
    store_lanes(y + LANES, _mm256_add_ps(even1, odd1), va, vb, beta != 0.0f, nr - LANES, NULL, va);
}

static void pack_a(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, MR, kc, dst);
}

static void pack_b(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, NR, kc, dst);
}

const gemm_kernel_set gemm_kernels_avx2 = {
    .name = "avx2",
    .mr = MR,
    .nr = NR,
    .kc = 256,
    .mc = 384,
    .nc = 512,
    .microkernel = microkernel,
    .pack_a = pack_a,
    .pack_b = pack_b,
    .vecmat = vecmat,
    .matvec = matvec,
    .vecpanel = vecpanel,
};
