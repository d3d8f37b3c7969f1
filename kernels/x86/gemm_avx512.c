/*
 * gemm_avx512.c — AVX-512 kernels for gemm.c: a 12 x 32 micro-kernel, a 48 x 7 columns kernel for products
 * with few columns, and the matrix-vector kernels.
 *
 * The micro-tile is 12 rows x 2 vectors of 16 floats: 24 accumulators, two B vectors and one broadcast A
 * value fit the 32 zmm registers, and each k step issues 24 FMAs against 2 vector loads and 12 broadcasts
 * (the 12 values of one k step of the k-major A panel), enough independent FMAs to cover their latency on
 * every AVX-512 core. Measured on Zen 4, 12 x 32 ran the same speed as 8 x 32 and 14 x 32. Tiles with fewer
 * rows (the bottom edge, and small M) call a copy specialised for their row count, so a 1-row product does
 * not pay for 12; narrow right-edge tiles store through a lane mask. The bias and a clamp are applied on the
 * registers before the store (gemm_tile_ops).
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

/* The tile's store with gemm_tile_ops on the registers: + bias[i], then the clamp (max/min return their
 * second operand when either is NaN, so NaN passes through). */
static inline __attribute__((always_inline)) void tile_ops_store(const int rows, const int vecs, const __m512 *acc0,
                                                                 const __m512 *acc1, float *c, int64_t ldc,
                                                                 __mmask16 m0, __mmask16 m1, __m512 va, __m512 vb,
                                                                 bool read_c, const gemm_tile_ops *ops)
{
    /* locals: stores to c could alias *ops and would make the compiler reload it every row */
    __m512 lo = _mm512_set1_ps(ops->lo), hi = _mm512_set1_ps(ops->hi);
    const float *bias = ops->bias;
    bool clamp = ops->clamp;
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++, c += ldc) {
        __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        /* alpha * acc + (beta * C) + bias with the last add fused into one multiply-add */
        __m512 v0 = _mm512_fmadd_ps(va, acc0[i], read_c ? _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), b) : b);
        if (clamp) v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
        _mm512_mask_storeu_ps(c, m0, v0);
        if (vecs > 1) {
            __m512 c1 = read_c ? _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + LANES), b) : b;
            __m512 v1 = _mm512_fmadd_ps(va, acc1[i], c1);
            if (clamp) v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
            _mm512_mask_storeu_ps(c + LANES, m1, v1);
        }
    }
}

/* The body shared by every tile shape; `rows` and `vecs` (1 or 2 vectors of columns) are constants after
 * inlining, so the accumulator arrays live in registers. A right-edge tile of at most 16 columns runs with
 * one vector: half the FMAs of masking a full-width tile. */
static inline __attribute__((always_inline)) void tile_step(const int rows, const int vecs, __m512 *acc0,
                                                            __m512 *acc1, const float *a, const float *b)
{
    __m512 b0 = _mm512_loadu_ps(b), b1 = vecs > 1 ? _mm512_loadu_ps(b + LANES) : b0;
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        __m512 ai = _mm512_set1_ps(a[i]);
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        if (vecs > 1) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
}

static inline __attribute__((always_inline)) void tile(const int rows, const int vecs, int64_t kc, const float *a,
                                                       const float *b, int64_t ldb, float *c, int64_t ldc, int nr,
                                                       float alpha, float beta, const gemm_tile_ops *ops)
{
    __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    if (ldb != NR) {
        /* B read where it lies, kc rows far apart: the prefetchers do not follow that many streams, so
         * fetch the next tile's part of each row (the next NR columns) while this tile computes */
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; k++, a += MR, b += ldb) {
            _mm_prefetch((const char *)(b + NR), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + NR + LANES), _MM_HINT_T0);
            tile_step(rows, vecs, acc0, acc1, a, b);
        }
    } else {
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; k++, a += MR, b += NR) tile_step(rows, vecs, acc0, acc1, a, b);
    }
    __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - LANES);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    bool read_c = beta != 0.0f;
    if (ops) {
        tile_ops_store(rows, vecs, acc0, acc1, c, ldc, m0, m1, va, vb, read_c, ops);
        return;
    }
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++, c += ldc) {
        _mm512_mask_storeu_ps(c, m0, scale_add(acc0[i], va, vb, read_c, m0, c));
        if (vecs > 1) _mm512_mask_storeu_ps(c + LANES, m1, scale_add(acc1[i], va, vb, read_c, m1, c + LANES));
    }
}

#define TILE_CASE(r)                                                                                         \
    case r:                                                                                                  \
        if (nr > LANES) tile(r, 2, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                             \
        else tile(r, 1, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                                        \
        break;

static void microkernel(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc, int mr,
                        int nr, float alpha, float beta, const gemm_tile_ops *ops)
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

/* Four k steps at a time into separate sums: the FMA latency, not the loads, would bound a single chain. */
enum { VECPANEL_STEPS = 4 };

static void vecpanel(int64_t K, const float *x, const float *b, float *y, int nr, float alpha, float beta)
{
    __m512 lo[VECPANEL_STEPS], hi[VECPANEL_STEPS];
    for (int s = 0; s < VECPANEL_STEPS; s++) lo[s] = hi[s] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + VECPANEL_STEPS <= K; k += VECPANEL_STEPS, b += VECPANEL_STEPS * NR)
        for (int s = 0; s < VECPANEL_STEPS; s++) {
            __m512 xk = _mm512_set1_ps(x[k + s]);
            lo[s] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(b + s * NR), lo[s]);
            hi[s] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(b + s * NR + LANES), hi[s]);
        }
    for (; k < K; k++, b += NR) {
        __m512 xk = _mm512_set1_ps(x[k]);
        lo[0] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(b), lo[0]);
        hi[0] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(b + LANES), hi[0]);
    }
    __m512 sum_lo = _mm512_add_ps(_mm512_add_ps(lo[0], lo[1]), _mm512_add_ps(lo[2], lo[3]));
    __m512 sum_hi = _mm512_add_ps(_mm512_add_ps(hi[0], hi[1]), _mm512_add_ps(hi[2], hi[3]));
    store_scaled(y, 1, nr < LANES ? nr : LANES, sum_lo, alpha, beta);
    if (nr > LANES) store_scaled(y + LANES, 1, nr - LANES, sum_hi, alpha, beta);
}

/* Bias, then the activations beyond a clamp, in groups of ACT_WIDTH vectors: ACT_WIDTH along a long row, or
 * the same columns of several rows (a GEMM tile row holds at most two vectors). Slots past the tile's
 * bottom edge or right edge are masked off entirely: they read nothing, store nothing. */
static void tile_epilogue_grouped(float *c, int64_t ldc, int mr, int nr, const float *bias, int act, float lo,
                                  float hi)
{
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
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
            activate_avx512(v, act, vlo, vhi);
#pragma GCC unroll 4
            for (int k = 0; k < ACT_WIDTH; k++) _mm512_mask_storeu_ps(at[k], mask[k], v[k]);
        }
}

static void tile_epilogue(float *c, int64_t ldc, int mr, int nr, const float *bias, int act, float lo, float hi)
{
    if (act != GEMM_ACT_NONE && act != GEMM_ACT_CLAMP) {
        tile_epilogue_grouped(c, ldc, mr, nr, bias, act, lo, hi);
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

/* The columns kernel (see gemm_columns_fn): TW = 3 vectors of rows x TR = 7 columns, 21 accumulators, so
 * that 49 = 7 x 7 columns (and 196, 784, 3136: every feature map of a 224 x 224 network) fill whole tiles.
 * Each k step loads 3 vectors of A^T and broadcasts 7 values of B's row k, read in place. */
enum { TW = 3 * LANES, TR = 7 };

/* One k step of the columns kernel: 3 (or fewer) vectors of A^T against `cols` broadcasts of B's row k,
 * whose elements are `step` floats apart (1, or GEMM_B_BLOCK in a channel-blocked B). */
static inline __attribute__((always_inline)) void columns_step(const int vecs, const int cols, const int step,
                                                               __m512 (*acc)[3], const float *at, const float *b)
{
    __m512 a0 = _mm512_loadu_ps(at), a1 = vecs > 1 ? _mm512_loadu_ps(at + LANES) : a0;
    __m512 a2 = vecs > 2 ? _mm512_loadu_ps(at + 2 * LANES) : a0;
#pragma GCC unroll 8
    for (int j = 0; j < cols; j++) {
        __m512 bj = _mm512_set1_ps(b[j * step]);
        acc[j][0] = _mm512_fmadd_ps(bj, a0, acc[j][0]);
        if (vecs > 1) acc[j][1] = _mm512_fmadd_ps(bj, a1, acc[j][1]);
        if (vecs > 2) acc[j][2] = _mm512_fmadd_ps(bj, a2, acc[j][2]);
    }
}

/* B's row k: row-major, or channel-blocked (GEMM_B_BLOCK rows to a block, blocks ldb apart). */
static inline __attribute__((always_inline)) const float *columns_row(const bool blocked, const float *b, int64_t ldb,
                                                                      int64_t k)
{
    return blocked ? b + (k / GEMM_B_BLOCK) * ldb + k % GEMM_B_BLOCK : b + k * ldb;
}

/* The sums of one tile into acc[j][v] (column j, rows v*16 ..). The first k steps also prefetch `ahead` into
 * L2, a line or a few each, so that the memory the next calls need arrives while this one computes. */
static inline __attribute__((always_inline)) void columns_sums(const int vecs, const int cols, const bool blocked,
                                                               const gemm_columns_args *t, __m512 (*acc)[3])
{
    const int step = blocked ? GEMM_B_BLOCK : 1;
    const float *at = t->at;
#pragma GCC unroll 8
    for (int j = 0; j < cols; j++)
        for (int v = 0; v < vecs; v++) acc[j][v] = _mm512_setzero_ps();
    int64_t K = t->K, lines = t->ahead ? (t->ahead_floats + LANES - 1) / LANES : 0, per_step = (lines + K - 1) / K;
    int64_t k = 0;
    for (int64_t line = 0; line < lines; k++, at += TW) {
        for (int64_t l = 0; l < per_step && line < lines; l++, line++)
            _mm_prefetch((const char *)(t->ahead + line * LANES), _MM_HINT_T1);
        columns_step(vecs, cols, step, acc, at, columns_row(blocked, t->b, t->ldb, k));
    }
#pragma GCC unroll 2
    for (; k < K; k++, at += TW) columns_step(vecs, cols, step, acc, at, columns_row(blocked, t->b, t->ldb, k));
}

/* A finished tile into a channel-blocked C: alpha, bias and the activation while the sums are in registers,
 * ACT_WIDTH vectors at a time, then one whole store per vector (no transpose, no mask). */
static inline __attribute__((always_inline)) void columns_store_blocked(const int vecs, const int cols,
                                                                        const gemm_columns_args *t,
                                                                        __m512 (*acc)[3])
{
    __m512 va = _mm512_set1_ps(t->alpha), vlo = _mm512_set1_ps(t->lo), vhi = _mm512_set1_ps(t->hi), vb[3];
    for (int v = 0; v < vecs; v++) vb[v] = t->bias ? _mm512_loadu_ps(t->bias + v * LANES) : _mm512_setzero_ps();
    enum { MAX = TR * 3 };
    const int count = vecs * cols;
#pragma GCC unroll 24
    for (int g = 0; g < MAX; g += ACT_WIDTH) {
        if (g >= count) break;
        __m512 out[ACT_WIDTH];
#pragma GCC unroll 4
        for (int q = 0; q < ACT_WIDTH; q++) {
            int e = g + q < count ? g + q : count - 1, j = e / vecs, v = e % vecs;
            out[q] = _mm512_fmadd_ps(va, acc[j][v], vb[v]);
        }
        activate_avx512(out, t->act, vlo, vhi);
#pragma GCC unroll 4
        for (int q = 0; q < ACT_WIDTH; q++) {
            if (g + q >= count) break;
            int j = (g + q) / vecs, v = (g + q) % vecs;
            _mm512_storeu_ps(t->c + v * t->ldc + j * GEMM_B_BLOCK, out[q]);
        }
    }
}

/* Stores 16 rows of C (row i is lane i of the `cols` vectors v[j], one per column j; v[cols..7] are zero)
 * transposed: each row's cols values go to c + i * ldc. unpack and shuffle gather each row's 8 values within
 * 128-bit lanes, then a permute puts two rows side by side, each half written with one masked store. */
static void store_transposed(const __m512 *v, int rows, int cols, float *c, int64_t ldc)
{
    __m512 t[8], u[8];
    for (int p = 0; p < 4; p++) {
        t[2 * p] = _mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]);
    }
    for (int h = 0; h < 2; h++) { /* u[q + 4h]: within lane L, row 4L+q's values of columns 4h .. 4h+3 */
        u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
    const __m512i pair[2] = {_mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23),
                             _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31)};
    __mmask16 low = lane_mask(cols), high = (__mmask16)(low << 8);
    for (int q = 0; q < 4; q++)
        for (int l = 0; l < 2; l++) {
            __m512 w = _mm512_permutex2var_ps(u[q], pair[l], u[q + 4]); /* rows 8l+q and 8l+4+q */
            int row = 8 * l + q;
            if (row < rows) _mm512_mask_storeu_ps(c + row * ldc, low, w);
            if (row + 4 < rows) _mm512_mask_storeu_ps(c + (row + 4) * ldc - 8, high, w);
        }
}

/* A finished tile, through the stack, into a row-major C: store_transposed writes each row's columns. */
static void columns_store_rows(int vecs, int cols, const gemm_columns_args *t, const float *tile)
{
    /* alpha, bias and the activation on each vector of rows, its 7 columns in two groups of ACT_WIDTH, then
     * transposed into C */
    __m512 va = _mm512_set1_ps(t->alpha), vlo = _mm512_set1_ps(t->lo), vhi = _mm512_set1_ps(t->hi);
    for (int v = 0; v < vecs; v++) {
        __mmask16 mask = lane_mask(t->rows - v * LANES);
        __m512 vb = t->bias ? _mm512_maskz_loadu_ps(mask, t->bias + v * LANES) : _mm512_setzero_ps(), out[8];
        for (int j = 0; j < TR; j++)
            out[j] = j < cols ? _mm512_fmadd_ps(va, _mm512_load_ps(tile + j * TW + v * LANES), vb) : _mm512_setzero_ps();
        out[TR] = _mm512_setzero_ps();
        activate_avx512(out, t->act, vlo, vhi);
        if (cols > ACT_WIDTH) activate_avx512(out + ACT_WIDTH, t->act, vlo, vhi);
        store_transposed(out, t->rows - v * LANES, cols, t->c + v * LANES * t->ldc, t->ldc);
    }
}

static inline __attribute__((always_inline)) void columns_tile(const int vecs, const int cols, const bool b_blocked,
                                                               const gemm_columns_args *t)
{
    __m512 acc[TR][3];
    columns_sums(vecs, cols, b_blocked, t, acc);
    if (t->c_blocked) {
        columns_store_blocked(vecs, cols, t, acc);
        return;
    }
    _Alignas(64) float tile[TR * TW]; /* tile[j * TW + i] is C[i, j] before alpha and the epilogue */
#pragma GCC unroll 8
    for (int j = 0; j < cols; j++)
        for (int v = 0; v < vecs; v++) _mm512_store_ps(tile + j * TW + v * LANES, acc[j][v]);
    columns_store_rows(vecs, cols, t, tile);
}

#define COLUMNS_TILE(b_blocked, n)                                                                           \
    if (vecs == 1) columns_tile(1, n, b_blocked, t);                                                         \
    else if (vecs == 2) columns_tile(2, n, b_blocked, t);                                                    \
    else columns_tile(3, n, b_blocked, t);
#define COLUMNS_CASE(n)                                                                                      \
    case n:                                                                                                  \
        if (t->b_blocked) {                                                                                  \
            COLUMNS_TILE(true, n)                                                                            \
        } else {                                                                                             \
            COLUMNS_TILE(false, n)                                                                           \
        }                                                                                                    \
        break;

static void columns(const gemm_columns_args *t)
{
    int vecs = (t->rows + LANES - 1) / LANES;
    switch (t->cols) {
        COLUMNS_CASE(1) COLUMNS_CASE(2) COLUMNS_CASE(3) COLUMNS_CASE(4) COLUMNS_CASE(5) COLUMNS_CASE(6)
        COLUMNS_CASE(7)
    default: return;
    }
}

static void widen_panels(const float *panels, int count, int64_t kc, float *at)
{
    const __mmask16 row = lane_mask(MR);
    for (int64_t k = 0; k < kc; k++, at += TW)
        for (int q = 0; q < TW / MR; q++) {
            __m512 v = q < count ? _mm512_maskz_loadu_ps(row, panels + q * MR * kc + k * MR) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(at + q * MR, row, v);
        }
}

/* Rows [i0, i0 + 4) of a k-major A panel for k in [k0, k0 + 4) from four rows of a row-major A: one 4 x 4
 * transpose in SSE registers (rows past `count` read as zeros). */
static inline void pack_a_quad(const float *src, int64_t stride, int count, int i0, int64_t k0, float *dst)
{
    __m128 r[4];
    for (int i = 0; i < 4; i++)
        r[i] = i0 + i < count ? _mm_loadu_ps(src + (i0 + i) * stride + k0) : _mm_setzero_ps();
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    for (int k = 0; k < 4; k++) _mm_storeu_ps(dst + (k0 + k) * MR + i0, r[k]);
}

/* A row-major op(A) (step 1) is the usual case and the expensive one for a k-major panel: each k gathers
 * one value from each of MR rows. Transposing 4 x 4 blocks in registers does it with vector loads and
 * stores; the rest (a transposed A, whose panel rows are contiguous already, and the last k < 4) goes
 * through the plain loops. */
static void pack_a(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    if (step != 1 || kc < 4) {
        gemm_pack_interleaved(src, stride, step, count, MR, kc, dst);
        return;
    }
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4)
        for (int i0 = 0; i0 < MR; i0 += 4) pack_a_quad(src, stride, count, i0, k, dst);
    if (k < kc) gemm_pack_interleaved(src + k, stride, 1, count, MR, kc - k, dst + k * MR);
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
    .vecpanel = vecpanel,
    .epilogue = tile_epilogue,
    .lanes = LANES,
    .tw = TW,
    .tr = TR,
    .columns = columns,
    .widen_panels = widen_panels,
};
