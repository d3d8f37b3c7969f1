/*
 * gemm_portable.c — the plain C kernels behind gemm.c's blocking: used on CPUs without AVX2 and on every
 * other architecture (aarch64, WebAssembly). Written as short fixed-size loops over a local accumulator
 * tile so that compilers vectorise them for whatever SIMD the target has, without intrinsics.
 *
 * The 4 x 8 tile keeps 32 accumulators, eight 4-lane registers, which leaves room for the operands even in
 * SSE2's 16 registers. A is packed k-major (a[k * MR + i], like B), so the innermost loops run over
 * contiguous lanes: compilers vectorise that shape reliably (measured with SSE2: 31 GFLOP/s against 6 for
 * row-major A panels or wider tiles, which they vectorise along k or spill).
 */
#include "kernels/gemm_kernels.h"
#include "kernels/gemm_pack.h"

enum { MR = 4, NR = 8, VECMAT_CHUNK = 1024, DOT_LANES = 8 };

/* gemm_tile_ops' clamp: NaN fails both comparisons and passes through. */
static float clamp(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static void microkernel(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc, int mr,
                        int nr, float alpha, float beta, const gemm_tile_ops *ops)
{
    float acc[MR][NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, a += MR, b += ldb)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) row[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < nr; j++) row[j] = alpha * acc[i][j] + beta * row[j];
        if (ops && ops->bias)
            for (int j = 0; j < nr; j++) row[j] += ops->bias[i];
        if (ops && ops->clamp)
            for (int j = 0; j < nr; j++) row[j] = clamp(row[j], ops->lo, ops->hi);
    }
}

static void store_scaled(float *y, float sum, float alpha, float beta)
{
    *y = beta == 0.0f ? alpha * sum : alpha * sum + beta * *y;
}

/* y = x * M, M row-major, VECMAT_CHUNK outputs at a time: their sums stay in a local buffer while the rows
 * of M stream past four at a time, each row segment read front to back, the order memory delivers fastest. */
static void vecmat(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    float acc[VECMAT_CHUNK];
    for (int64_t j0 = 0; j0 < n; j0 += VECMAT_CHUNK) {
        int count = n - j0 < VECMAT_CHUNK ? (int)(n - j0) : VECMAT_CHUNK;
        for (int j = 0; j < count; j++) acc[j] = 0.0f;
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) {
            const float *r0 = m + k * ldm + j0, *r1 = r0 + ldm, *r2 = r1 + ldm, *r3 = r2 + ldm;
            float x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
            for (int j = 0; j < count; j++) acc[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
        }
        for (; k < K; k++) {
            const float *row = m + k * ldm + j0;
            for (int j = 0; j < count; j++) acc[j] += x[k] * row[j];
        }
        for (int j = 0; j < count; j++) store_scaled(&y[(j0 + j) * incy], acc[j], alpha, beta);
    }
}

/* y[j] = dot(x, row j of M). DOT_LANES partial sums let the compiler vectorise the dot product without
 * reassociating a single sum (which it may not do under strict IEEE rules). */
static void matvec(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                   float alpha, float beta)
{
    for (int64_t j = 0; j < n; j++) {
        const float *row = m + j * ldm;
        float lanes[DOT_LANES] = {0};
        int64_t k = 0;
        for (; k + DOT_LANES <= K; k += DOT_LANES)
            for (int l = 0; l < DOT_LANES; l++) lanes[l] += x[k + l] * row[k + l];
        float sum = 0;
        for (int l = 0; l < DOT_LANES; l++) sum += lanes[l];
        for (; k < K; k++) sum += x[k] * row[k];
        store_scaled(&y[j * incy], sum, alpha, beta);
    }
}

static void vecpanel(int64_t K, const float *x, const float *b, float *y, int nr, float alpha, float beta)
{
    float acc[NR] = {0};
    for (int64_t k = 0; k < K; k++, b += NR)
        for (int j = 0; j < NR; j++) acc[j] += x[k] * b[j];
    for (int j = 0; j < nr; j++) store_scaled(&y[j], acc[j], alpha, beta);
}

static void pack_a(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, MR, kc, dst);
}

static void pack_b(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst)
{
    gemm_pack_interleaved(src, stride, step, count, NR, kc, dst);
}

const gemm_kernel_set gemm_kernels_portable = {
    .name = "portable",
    .mr = MR,
    .nr = NR,
    .kc = 256,
    .mc = 256,
    .nc = 1024,
    .microkernel = microkernel,
    .pack_a = pack_a,
    .pack_b = pack_b,
    .vecmat = vecmat,
    .matvec = matvec,
    .vecpanel = vecpanel,
};
