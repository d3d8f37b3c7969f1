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

#include "kernels/gemm.h"
#include "kernels/gemm_kernels.h"
#include "kernels/gemm_pack.h"
#include "kernels/x86/activation_avx512.h"

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

/* The body shared by every tile shape; `rows` and `vecs` (1 or 2 vectors of columns) are constants after
 * inlining, so the accumulator arrays live in registers. A right-edge tile of at most 16 columns runs with
 * one vector: half the FMAs of masking a full-width tile. */
static inline __attribute__((always_inline)) void tile(const int rows, const int vecs, int64_t kc, const float *a,
                                                       const float *b, float *c, int64_t ldc, int nr, float alpha,
                                                       float beta)
{
    __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++, b += NR) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = vecs > 1 ? _mm512_loadu_ps(b + LANES) : b0;
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[i * kc + k]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            if (vecs > 1) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
    }
    __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - LANES);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    bool read_c = beta != 0.0f;
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++, c += ldc) {
        _mm512_mask_storeu_ps(c, m0, scale_add(acc0[i], va, vb, read_c, m0, c));
        if (vecs > 1) _mm512_mask_storeu_ps(c + LANES, m1, scale_add(acc1[i], va, vb, read_c, m1, c + LANES));
    }
}

#define TILE_CASE(r)                                                                                         \
    case r:                                                                                                  \
        if (nr > LANES) tile(r, 2, kc, a, b, c, ldc, nr, alpha, beta);                                       \
        else tile(r, 1, kc, a, b, c, ldc, nr, alpha, beta);                                                  \
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

/* y = x * M, M row-major, VECMAT_CHUNK outputs at a time: their sums stay in a local buffer (in L1) while
 * the rows of M stream past four at a time, each row segment read front to back. Matrix-vector products
 * are limited by how fast M arrives, and long sequential runs are what memory and prefetchers deliver
 * fastest (walking a narrow strip down all the rows instead ran at half the bandwidth). Chunks of at most
 * NARROW_VECTORS vectors keep their sums in registers instead, one set per row of the group, because
 * there the chain through the buffer would be the bottleneck. */
enum { VECMAT_CHUNK = 1024, VECMAT_ROWS = 4, NARROW_VECTORS = 4 };

/* acc[0:count] += sum over the `rows` rows r of x[r] * row[r][0:count] */
static inline void accumulate_rows(float *acc, int count, const float *x, const float *const *row, int rows)
{
    __m512 xs[VECMAT_ROWS];
    for (int r = 0; r < rows; r++) xs[r] = _mm512_set1_ps(x[r]);
    for (int j = 0; j < count; j += LANES) {
        __mmask16 mask = lane_mask(count - j);
        __m512 sum = _mm512_maskz_loadu_ps(mask, acc + j);
        for (int r = 0; r < rows; r++) sum = _mm512_fmadd_ps(xs[r], _mm512_maskz_loadu_ps(mask, row[r] + j), sum);
        _mm512_mask_storeu_ps(acc + j, mask, sum);
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
static inline __attribute__((always_inline)) void accumulate_row(const int vectors, __m512 *sums,
                                                                 const __mmask16 *masks, float x, const float *row)
{
    __m512 xk = _mm512_set1_ps(x);
    for (int v = 0; v < vectors; v++)
        sums[v] = _mm512_fmadd_ps(xk, _mm512_maskz_loadu_ps(masks[v], row + v * LANES), sums[v]);
}

static inline __attribute__((always_inline)) void narrow(const int vectors, int64_t K, int count, const float *x,
                                                         const float *m, int64_t ldm, float *acc)
{
    __m512 sums[VECMAT_ROWS][NARROW_VECTORS];
    __mmask16 masks[NARROW_VECTORS];
    for (int v = 0; v < vectors; v++) masks[v] = lane_mask(count - v * LANES);
    for (int r = 0; r < VECMAT_ROWS; r++)
        for (int v = 0; v < vectors; v++) sums[r][v] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + VECMAT_ROWS <= K; k += VECMAT_ROWS)
        for (int r = 0; r < VECMAT_ROWS; r++) accumulate_row(vectors, sums[r], masks, x[k + r], m + (k + r) * ldm);
    for (; k < K; k++) accumulate_row(vectors, sums[0], masks, x[k], m + k * ldm);
    for (int v = 0; v < vectors; v++) {
        __m512 total = _mm512_add_ps(_mm512_add_ps(sums[0][v], sums[1][v]), _mm512_add_ps(sums[2][v], sums[3][v]));
        _mm512_mask_storeu_ps(acc + v * LANES, masks[v], total);
    }
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
    _Alignas(64) float acc[VECMAT_CHUNK];
    for (int64_t j0 = 0; j0 < n; j0 += VECMAT_CHUNK) {
        int count = n - j0 < VECMAT_CHUNK ? (int)(n - j0) : VECMAT_CHUNK;
        if (count <= NARROW_VECTORS * LANES) vecmat_narrow(K, count, x, m + j0, ldm, acc);
        else vecmat_wide(K, count, x, m + j0, ldm, acc);
        for (int j = 0; j < count; j += LANES) {
            int lanes = count - j < LANES ? count - j : LANES;
            store_scaled(y + (j0 + j) * incy, incy, lanes, _mm512_load_ps(acc + j), alpha, beta);
        }
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

/* Bias, then the sigmoid-based activations, in groups of ACT_WIDTH vectors: ACT_WIDTH along a long row, or
 * the same columns of several rows (a GEMM tile row holds at most two vectors). Slots past the tile's
 * bottom edge or right edge are masked off entirely: they read nothing, store nothing. */
static void tile_epilogue_sigmoid(float *c, int64_t ldc, int mr, int nr, const float *bias, int act)
{
    __m512 unused = _mm512_setzero_ps();
    int vecs = (nr + LANES - 1) / LANES;
    int row_shift = vecs >= 4 ? 0 : vecs == 1 ? 2 : 1; /* log2 of the rows in a group (ACT_WIDTH is 4) */
    int per_row = ACT_WIDTH >> row_shift;               /* vectors per row in a group */
    for (int i0 = 0; i0 < mr; i0 += 1 << row_shift)
        for (int j0 = 0; j0 < nr; j0 += per_row * LANES) {
            __m512 v[ACT_WIDTH];
            float *at[ACT_WIDTH];
            __mmask16 mask[ACT_WIDTH];
#pragma GCC unroll 4
            for (int k = 0; k < ACT_WIDTH; k++) {
                int i = i0 + (k >> (2 - row_shift)), j = j0 + (k & (per_row - 1)) * LANES;
                mask[k] = i < mr ? lane_mask(nr - j) : 0;
                at[k] = c + (i < mr ? i : mr - 1) * ldc + j;
                v[k] = _mm512_maskz_loadu_ps(mask[k], at[k]);
                if (bias) v[k] = _mm512_add_ps(v[k], _mm512_set1_ps(bias[i < mr ? i : mr - 1]));
            }
            activate_avx512(v, act, unused, unused);
#pragma GCC unroll 4
            for (int k = 0; k < ACT_WIDTH; k++) _mm512_mask_storeu_ps(at[k], mask[k], v[k]);
        }
}

static void tile_epilogue(float *c, int64_t ldc, int mr, int nr, const float *bias, int act, float lo, float hi)
{
    if (act == GEMM_ACT_SIGMOID || act == GEMM_ACT_SILU) {
        tile_epilogue_sigmoid(c, ldc, mr, nr, bias, act);
        return;
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    bool clamp = act == GEMM_ACT_CLAMP;
    for (int i = 0; i < mr; i++, c += ldc) {
        __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        for (int j = 0; j < nr; j += LANES) {
            __mmask16 m = lane_mask(nr - j);
            __m512 v = _mm512_maskz_loadu_ps(m, c + j);
            if (bias) v = _mm512_add_ps(v, b);
            if (clamp) v = clamp_avx512(v, vlo, vhi);
            _mm512_mask_storeu_ps(c + j, m, v);
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
    .epilogue = tile_epilogue,
};
