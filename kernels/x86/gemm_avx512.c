/*
 * gemm_avx512.c — AVX-512 kernels for gemm.c: a 12 x 32 micro-kernel and the matrix-vector kernels.
 *
 * The micro-tile is 12 rows x 2 vectors of 16 floats: 24 accumulators, two B vectors and one broadcast A
 * value fit the 32 zmm registers, and each k step issues 24 FMAs against 2 vector loads and 12 broadcasts
 * (one from each row of the packed A panel), enough independent FMAs to cover their latency on every
 * AVX-512 core. Measured on Zen 4, 12 x 32 ran the same speed as 8 x 32 and 14 x 32. Tiles with fewer rows (the bottom
 * edge, and small M) call a copy specialised for their row count, so a 1-row product does not pay for 12;
 * narrow right-edge tiles store through a lane mask.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/gemm_kernels.h"
#include "kernels/gemm_pack.h"

enum { MR = 12, NR = 32, LANES = 16 };

static __mmask16 lane_mask(int count)
{
    if (count <= 0) return 0;
    return count >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1u);
}

static inline __m512 scale_add(__m512 acc, __m512 alpha, __m512 beta, bool read_c, __mmask16 mask, const float *c)
{
    __m512 r = _mm512_mul_ps(alpha, acc);
    return read_c ? _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, c), r) : r;
}

/* The body shared by every row count; `rows` is a constant after inlining, so the accumulator arrays live
 * in registers. */
static inline __attribute__((always_inline)) void tile(const int rows, int64_t kc, const float *a,
                                                       const float *b, float *c, int64_t ldc, int nr, float alpha,
                                                       float beta)
{
    __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++, b += NR) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + LANES);
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[i * kc + k]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - LANES);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    bool read_c = beta != 0.0f;
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++, c += ldc) {
        _mm512_mask_storeu_ps(c, m0, scale_add(acc0[i], va, vb, read_c, m0, c));
        _mm512_mask_storeu_ps(c + LANES, m1, scale_add(acc1[i], va, vb, read_c, m1, c + LANES));
    }
}

#define TILE_CASE(r)                                                                                         \
    case r:                                                                                                  \
        tile(r, kc, a, b, c, ldc, nr, alpha, beta);                                                          \
        break;

static void microkernel(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                        float alpha, float beta)
{
    switch (mr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    default: break;
    }
}

static inline void store_scaled(float *y, int64_t incy, int count, __m512 sum, float alpha, float beta)
{
    __mmask16 mask = lane_mask(count);
    if (incy == 1) {
        __m512 r = scale_add(sum, _mm512_set1_ps(alpha), _mm512_set1_ps(beta), beta != 0.0f, mask, y);
        _mm512_mask_storeu_ps(y, mask, r);
        return;
    }
    float lanes[LANES];
    _mm512_storeu_ps(lanes, sum);
    for (int j = 0; j < count; j++) {
        float *yj = y + j * incy;
        *yj = beta == 0.0f ? alpha * lanes[j] : alpha * lanes[j] + beta * *yj;
    }
}

/* y = x * M, M row-major. Eight vectors (128 outputs) accumulate while the rows of M stream past: enough
 * independent FMA chains to keep the loads flowing, which is all a matrix-vector product is limited by. */
enum { VECMAT_VECTORS = 8 };

static void vecmat(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    int64_t j0 = 0;
    for (; j0 + VECMAT_VECTORS * LANES <= n; j0 += VECMAT_VECTORS * LANES) {
        __m512 acc[VECMAT_VECTORS];
        for (int v = 0; v < VECMAT_VECTORS; v++) acc[v] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            const float *row = m + k * ldm + j0;
            __m512 xk = _mm512_set1_ps(x[k]);
            for (int v = 0; v < VECMAT_VECTORS; v++) acc[v] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(row + v * LANES), acc[v]);
        }
        for (int v = 0; v < VECMAT_VECTORS; v++) store_scaled(y + (j0 + v * LANES) * incy, incy, LANES, acc[v], alpha, beta);
    }
    for (; j0 < n; j0 += LANES) {
        int count = n - j0 < LANES ? (int)(n - j0) : LANES;
        __mmask16 mask = lane_mask(count);
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 2 <= K; k += 2) {
            acc0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_maskz_loadu_ps(mask, m + k * ldm + j0), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_set1_ps(x[k + 1]), _mm512_maskz_loadu_ps(mask, m + (k + 1) * ldm + j0), acc1);
        }
        if (k < K) acc0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_maskz_loadu_ps(mask, m + k * ldm + j0), acc0);
        store_scaled(y + j0 * incy, incy, count, _mm512_add_ps(acc0, acc1), alpha, beta);
    }
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
        __m512 acc[MATVEC_ROWS];
        for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + LANES <= K; k += LANES) {
            __m512 xv = _mm512_loadu_ps(x + k);
            for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row[r] + k), acc[r]);
        }
        if (k < K) {
            __mmask16 mask = lane_mask((int)(K - k));
            __m512 xv = _mm512_maskz_loadu_ps(mask, x + k);
            for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, row[r] + k), acc[r]);
        }
        for (int r = 0; r < rows; r++) {
            float *yr = y + (j0 + r) * incy;
            float sum = _mm512_reduce_add_ps(acc[r]);
            *yr = beta == 0.0f ? alpha * sum : alpha * sum + beta * *yr;
        }
    }
}

static void pack_a(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_rows(src, stride, step, count, MR, kc, dst);
}

static void pack_b(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, NR, kc, dst);
}

const gemm_kernel_set gemm_kernels_avx512 = {
    .name = "avx512",
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
};
