/*
 * gemm_neon.c — aarch64 Advanced SIMD kernels for gemm.c: an 8 x 12 micro-kernel and the matrix-vector
 * kernels. Advanced SIMD is part of the aarch64 baseline, so this set needs no CPU check: gemm.c picks it for
 * GEMM_VARIANT_AUTO on every aarch64 build.
 *
 * The micro-tile is 8 rows x 3 vectors of 4 floats: 24 accumulators, the three B vectors of a k step and the
 * two A vectors holding its eight row values use 29 of the 32 q registers. A k step is 5 loads for 24 FMAs,
 * each FMA taking its A value straight from a lane (fmla by element), so A needs no broadcasts. The other
 * shapes that fit: 8 x 8 (16 FMAs per 4 loads, a fifth more loads per FMA) and 12 x 8 (the same counts,
 * and a third less of B, the operand streamed from L2, per FMA; but channel counts, C's rows in a
 * convolution, are multiples of 8 far more often than of 12, so with MR = 8 their tiles are whole). Edge
 * tiles call a copy specialised for their row count and their number of column vectors, so a 49-column
 * product's last 1-column tile costs one vector per row, not three; columns past nr in the last vector are
 * stored lane by lane.
 *
 * Nothing here could be timed: the aarch64 build is tested under qemu, whose timings say nothing. The
 * choices are reasoned from instruction counts (above, and at each kernel) and from the usual Cortex-A7x /
 * Neoverse caches (32-64 KB L1D, 512 KB-1 MB L2) for the block sizes.
 */
#include <arm_neon.h>
#include <stdbool.h>
#include <stddef.h>

#include "kernels/gemm_kernels.h"
#include "kernels/gemm_pack.h"

enum { MR = 8, NR = 12, LANES = 4, NR_VECTORS = NR / LANES };

/* The first `count` (1 to 3) floats at p, the other lanes zero, never reading past them. */
static inline float32x4_t load_partial(const float *p, int count)
{
    float32x4_t v = vdupq_n_f32(0.0f);
    if (count >= 2) v = vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    else v = vld1q_lane_f32(p, v, 0);
    if (count == 3) v = vld1q_lane_f32(p + 2, v, 2);
    return v;
}

/* The first `count` (1 to 3) lanes of v to p. */
static inline void store_partial(float *p, float32x4_t v, int count)
{
    if (count >= 2) vst1_f32(p, vget_low_f32(v));
    else vst1q_lane_f32(p, v, 0);
    if (count == 3) vst1q_lane_f32(p + 2, v, 2);
}

/* The floats at p .. p+count-1 as a vector, whole when count >= 4. */
static inline float32x4_t load_upto(const float *p, int count)
{
    return count >= LANES ? vld1q_f32(p) : load_partial(p, count);
}

/* c[0:count] = alpha * acc + beta * c, then the tile ops (bias already broadcast) when given. FMAX and FMIN
 * return NaN when either operand is NaN, so a NaN passes the clamp as gemm_tile_ops asks. */
static inline void store_lanes(float *c, float32x4_t acc, float32x4_t alpha, float32x4_t beta, bool read_c,
                               int count, const gemm_tile_ops *ops, float32x4_t bias)
{
    if (count <= 0) return;
    float32x4_t r = vmulq_f32(alpha, acc);
    if (read_c) r = vfmaq_f32(r, beta, load_upto(c, count));
    if (ops) {
        r = vaddq_f32(r, bias);
        if (ops->clamp) r = vminq_f32(vmaxq_f32(r, vdupq_n_f32(ops->lo)), vdupq_n_f32(ops->hi));
    }
    if (count >= LANES) vst1q_f32(c, r);
    else store_partial(c, r, count);
}

/* acc[i][v] += b_v * (row i's A value), which is lane `lane` of av: a literal, as fmla by element needs. */
#define ROW_STEP(i, av, lane)                                                                                \
    if (rows > (i)) {                                                                                        \
        acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane);                                                \
        if (vectors > 1) acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane);                               \
        if (vectors > 2) acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);                               \
    }

/* `rows` and `vectors` are constants after inlining and the loops over them unrolled, so the accumulators
 * live in registers and the k loop loads only the A and B vectors the tile uses. */
static inline __attribute__((always_inline)) void tile(const int rows, const int vectors, int64_t kc,
                                                       const float *a, const float *b, int64_t ldb, float *c,
                                                       int64_t ldc, int nr, float alpha, float beta,
                                                       const gemm_tile_ops *ops)
{
    float32x4_t acc[MR][NR_VECTORS];
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 3
        for (int v = 0; v < vectors; v++) acc[i][v] = vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < kc; k++, a += MR, b += ldb) {
        float32x4_t b0 = vld1q_f32(b);
        float32x4_t b1 = vectors > 1 ? vld1q_f32(b + LANES) : b0;
        float32x4_t b2 = vectors > 2 ? vld1q_f32(b + 2 * LANES) : b0;
        float32x4_t a0 = vld1q_f32(a);
        ROW_STEP(0, a0, 0) ROW_STEP(1, a0, 1) ROW_STEP(2, a0, 2) ROW_STEP(3, a0, 3)
        if (rows > 4) {
            float32x4_t a1 = vld1q_f32(a + LANES);
            ROW_STEP(4, a1, 0) ROW_STEP(5, a1, 1) ROW_STEP(6, a1, 2) ROW_STEP(7, a1, 3)
        }
    }
    float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    bool read_c = beta != 0.0f;
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++, c += ldc) {
        float32x4_t bias = vdupq_n_f32(ops && ops->bias ? ops->bias[i] : 0.0f);
#pragma GCC unroll 3
        for (int v = 0; v < vectors; v++)
            store_lanes(c + v * LANES, acc[i][v], va, vb, read_c, nr - v * LANES, ops, bias);
    }
}

#undef ROW_STEP

/* One function per row count, each choosing the copy for its column vectors (1 to 3, from nr). */
#define ROWS_KERNEL(r)                                                                                       \
    static void tile_##r(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc,    \
                         int nr, float alpha, float beta, const gemm_tile_ops *ops)                          \
    {                                                                                                        \
        if (nr > 2 * LANES) tile(r, 3, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                         \
        else if (nr > LANES) tile(r, 2, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                        \
        else tile(r, 1, kc, a, b, ldb, c, ldc, nr, alpha, beta, ops);                                        \
    }

ROWS_KERNEL(1)
ROWS_KERNEL(2)
ROWS_KERNEL(3)
ROWS_KERNEL(4)
ROWS_KERNEL(5)
ROWS_KERNEL(6)
ROWS_KERNEL(7)
ROWS_KERNEL(8)

#undef ROWS_KERNEL

static void microkernel(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc, int mr,
                        int nr, float alpha, float beta, const gemm_tile_ops *ops)
{
    switch (mr) {
    case 1: tile_1(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 2: tile_2(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 3: tile_3(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 4: tile_4(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 5: tile_5(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 6: tile_6(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 7: tile_7(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    case 8: tile_8(kc, a, b, ldb, c, ldc, nr, alpha, beta, ops); break;
    default: break;
    }
}

/* y[0:count] (elements incy apart) = alpha * sum + beta * y. */
static void store_vector(float *y, int64_t incy, int count, float32x4_t sum, float alpha, float beta)
{
    if (incy == 1) {
        store_lanes(y, sum, vdupq_n_f32(alpha), vdupq_n_f32(beta), beta != 0.0f, count, NULL, sum);
        return;
    }
    float lanes[LANES];
    vst1q_f32(lanes, sum);
    for (int j = 0; j < count; j++) {
        float *yj = y + j * incy;
        *yj = beta == 0.0f ? alpha * lanes[j] : alpha * lanes[j] + beta * *yj;
    }
}

/* y = x * M, M row-major, VECMAT_CHUNK outputs at a time: their sums stay in a local buffer (in L1) while
 * the rows of M stream past four at a time, each row segment read front to back, the order memory delivers
 * fastest (one sum load and store per four FMAs). Chunks of at most NARROW_VECTORS vectors keep their sums
 * in registers instead (two sets, for alternate rows: 16 of the 32), because there the chain through the
 * buffer would be the bottleneck. */
enum { VECMAT_CHUNK = 1024, VECMAT_ROWS = 4, NARROW_VECTORS = 8 };

/* acc[0:count] += sum over the `rows` rows r of x[r] * row[r][0:count]. acc has room for whole vectors. */
static inline void accumulate_rows(float *acc, int count, const float *x, const float *const *row, int rows)
{
    float32x4_t xs[VECMAT_ROWS];
    for (int r = 0; r < rows; r++) xs[r] = vld1q_dup_f32(x + r);
    for (int j = 0; j < count; j += LANES) {
        float32x4_t sum = vld1q_f32(acc + j);
        for (int r = 0; r < rows; r++) sum = vfmaq_f32(sum, xs[r], load_upto(row[r] + j, count - j));
        vst1q_f32(acc + j, sum);
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
static inline __attribute__((always_inline)) void accumulate_row(const int vectors, float32x4_t *sums, int count,
                                                                 float x, const float *row)
{
    float32x4_t xk = vdupq_n_f32(x);
    for (int v = 0; v < vectors; v++)
        sums[v] = vfmaq_f32(sums[v], xk, load_upto(row + v * LANES, count - v * LANES));
}

static inline __attribute__((always_inline)) void narrow(const int vectors, int64_t K, int count, const float *x,
                                                         const float *m, int64_t ldm, float *acc)
{
    float32x4_t even[NARROW_VECTORS], odd[NARROW_VECTORS];
    for (int v = 0; v < vectors; v++) even[v] = odd[v] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 2 <= K; k += 2) {
        accumulate_row(vectors, even, count, x[k], m + k * ldm);
        accumulate_row(vectors, odd, count, x[k + 1], m + (k + 1) * ldm);
    }
    if (k < K) accumulate_row(vectors, even, count, x[k], m + k * ldm);
    for (int v = 0; v < vectors; v++) vst1q_f32(acc + v * LANES, vaddq_f32(even[v], odd[v]));
}

static void vecmat_narrow(int64_t K, int count, const float *x, const float *m, int64_t ldm, float *acc)
{
    switch ((count + LANES - 1) / LANES) {
    case 1: narrow(1, K, count, x, m, ldm, acc); break;
    case 2: narrow(2, K, count, x, m, ldm, acc); break;
    case 3: narrow(3, K, count, x, m, ldm, acc); break;
    case 4: narrow(4, K, count, x, m, ldm, acc); break;
    case 5: narrow(5, K, count, x, m, ldm, acc); break;
    case 6: narrow(6, K, count, x, m, ldm, acc); break;
    case 7: narrow(7, K, count, x, m, ldm, acc); break;
    default: narrow(8, K, count, x, m, ldm, acc); break;
    }
}

static void vecmat(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    _Alignas(16) float acc[VECMAT_CHUNK];
    for (int64_t j0 = 0; j0 < n; j0 += VECMAT_CHUNK) {
        int count = n - j0 < VECMAT_CHUNK ? (int)(n - j0) : VECMAT_CHUNK;
        if (count <= NARROW_VECTORS * LANES) vecmat_narrow(K, count, x, m + j0, ldm, acc);
        else vecmat_wide(K, count, x, m + j0, ldm, acc);
        for (int j = 0; j < count; j += LANES) {
            int lanes = count - j < LANES ? count - j : LANES;
            store_vector(y + (j0 + j) * incy, incy, lanes, vld1q_f32(acc + j), alpha, beta);
        }
    }
}

/* y[j] = dot(x, row j of M), four rows at a time so that x is loaded once per four dot products, and two
 * vectors of k per step so that eight independent FMA chains cover the FMA latency (4 cycles, 2 pipes on
 * Cortex-A76-class cores). */
enum { MATVEC_ROWS = 4 };

static void matvec(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    for (int64_t j0 = 0; j0 < n; j0 += MATVEC_ROWS) {
        int rows = n - j0 < MATVEC_ROWS ? (int)(n - j0) : MATVEC_ROWS;
        const float *row[MATVEC_ROWS];
        for (int r = 0; r < MATVEC_ROWS; r++) row[r] = m + (j0 + (r < rows ? r : 0)) * ldm;
        float32x4_t even[MATVEC_ROWS], odd[MATVEC_ROWS];
        for (int r = 0; r < MATVEC_ROWS; r++) even[r] = odd[r] = vdupq_n_f32(0.0f);
        int64_t k = 0;
        for (; k + 2 * LANES <= K; k += 2 * LANES) {
            float32x4_t x0 = vld1q_f32(x + k), x1 = vld1q_f32(x + k + LANES);
            for (int r = 0; r < MATVEC_ROWS; r++) {
                even[r] = vfmaq_f32(even[r], x0, vld1q_f32(row[r] + k));
                odd[r] = vfmaq_f32(odd[r], x1, vld1q_f32(row[r] + k + LANES));
            }
        }
        for (; k < K; k += LANES) {
            int count = K - k < LANES ? (int)(K - k) : LANES;
            float32x4_t xv = load_upto(x + k, count);
            for (int r = 0; r < MATVEC_ROWS; r++) even[r] = vfmaq_f32(even[r], xv, load_upto(row[r] + k, count));
        }
        for (int r = 0; r < rows; r++) {
            float *yr = y + (j0 + r) * incy;
            float sum = vaddvq_f32(vaddq_f32(even[r], odd[r]));
            *yr = beta == 0.0f ? alpha * sum : alpha * sum + beta * *yr;
        }
    }
}

/* y = x * one B micro-panel: four k steps per load of x, each FMA taking its x value from a lane, into two
 * sets of sums (even and odd k) so that six FMA chains overlap. */
static void vecpanel(int64_t K, const float *x, const float *b, float *y, int nr, float alpha, float beta)
{
    float32x4_t even[NR_VECTORS], odd[NR_VECTORS];
    for (int v = 0; v < NR_VECTORS; v++) even[v] = odd[v] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + LANES <= K; k += LANES, b += LANES * NR) {
        float32x4_t xv = vld1q_f32(x + k);
        for (int v = 0; v < NR_VECTORS; v++) {
            even[v] = vfmaq_laneq_f32(even[v], vld1q_f32(b + v * LANES), xv, 0);
            odd[v] = vfmaq_laneq_f32(odd[v], vld1q_f32(b + NR + v * LANES), xv, 1);
            even[v] = vfmaq_laneq_f32(even[v], vld1q_f32(b + 2 * NR + v * LANES), xv, 2);
            odd[v] = vfmaq_laneq_f32(odd[v], vld1q_f32(b + 3 * NR + v * LANES), xv, 3);
        }
    }
    for (; k < K; k++, b += NR) {
        float32x4_t xk = vld1q_dup_f32(x + k);
        for (int v = 0; v < NR_VECTORS; v++) even[v] = vfmaq_f32(even[v], xk, vld1q_f32(b + v * LANES));
    }
    float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    for (int v = 0; v < NR_VECTORS; v++)
        store_lanes(y + v * LANES, vaddq_f32(even[v], odd[v]), va, vb, beta != 0.0f, nr - v * LANES, NULL, va);
}

/* gemm_pack.h's loops, compiled here with the panel widths as constants: a contiguous run of 8 or 12 floats
 * becomes two or three vector moves. The transposing case stays element by element, as in the other sets;
 * convolution filters and constant MatMul weights are packed once at load; products of two activations
 * (attention's Q K^T) still take it per call. */
static void pack_a(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, MR, kc, dst);
}

static void pack_b(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, NR, kc, dst);
}

/* kc 256: an A micro-panel (8 KB) stays in L1 beside the B micro-panel it meets (12 KB). nc 288: the packed
 * B block (256 x 288 floats, 288 KB) fits a 512 KB L2 with room for the A panels and C tiles passing
 * through. mc 192 (24 micro-panels): the A block, 192 KB, is re-read once per B block. */
const gemm_kernel_set gemm_kernels_neon = {
    .name = "neon",
    .mr = MR,
    .nr = NR,
    .kc = 256,
    .mc = 192,
    .nc = 288,
    .microkernel = microkernel,
    .pack_a = pack_a,
    .pack_b = pack_b,
    .vecmat = vecmat,
    .matvec = matvec,
    .vecpanel = vecpanel,
};
