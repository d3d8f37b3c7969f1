/*
 * gemm_kernels.h — the contract between gemm.c (packing, blocking, threading) and the instruction-set
 * specific kernels: a register-blocked micro-kernel over packed panels, and two matrix-vector kernels for
 * the M == 1 / N == 1 shapes where packing would cost more than the arithmetic.
 *
 * Packed layouts (written by the set's pack functions from gemm_pack.h, read by its micro-kernel):
 *   B micro-panel: kc x NR floats, k-major: b[k * NR + j] is op(B)[k, j]; one vector load per k. gemm.c
 *                  relies on this layout to index pre-packed B.
 *   A micro-panel: MR x kc floats, in whichever layout the set's micro-kernel prefers. The AVX2 set uses
 *                  rows (a[i * kc + k]), so that packing the usual untransposed A is a plain copy; the AVX-512
 *                  and portable sets use k-major (a[k * MR + i]): each k step's MR broadcasts come from one
 *                  cache line, and a panel is one sequential stream. That matters when A is a large weight
 *                  read once from memory (Winograd's transformed filters): MR short strided streams defeat
 *                  the hardware prefetcher, and resnet18's last 3x3 convolutions ran 1.6x slower with them.
 * Rows past the tile's mr and columns past its nr are zero-filled, so a kernel may compute the full MR x NR
 * tile and store only the mr x nr corner.
 * Each kernel set is internal to kernels/; gemm.h is the public face.
 */
#ifndef KILN_KERNELS_GEMM_KERNELS_H
#define KILN_KERNELS_GEMM_KERNELS_H

#include <stdint.h>

/* C[0:mr, 0:nr] = alpha * (A micro-panel x B micro-panel) + beta * C; beta == 0 never reads C. */
typedef void (*gemm_microkernel_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr,
                                    int nr, float alpha, float beta);

/* y[j * incy] = alpha * sum_k x[k] * M(k, j) + beta * y[j * incy] for j in [0, n); beta == 0 never reads y.
 * vecmat reads M(k, j) = m[k * ldm + j] (a row vector times a row-major matrix); matvec reads
 * M(k, j) = m[j * ldm + k] (each output is the dot product of x with one row). */
typedef void (*gemv_fn)(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                        float alpha, float beta);

/* Packs `count` vectors of length kc (element k of vector i at src[i * stride + k * step]) into one A
 * micro-panel (a vector per row of op(A)) or B micro-panel (a vector per column of op(B)). */
typedef void (*gemm_pack_fn)(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst);

/* The fused epilogue on one finished tile (see gemm_epilogue in gemm.h): C[i, 0:nr] += bias[i] when bias is
 * given, then the activation. NULL in a set means gemm.c's plain loops. */
typedef void (*gemm_tile_epilogue_fn)(float *c, int64_t ldc, int mr, int nr, const float *bias, int act, float lo,
                                      float hi);

typedef struct gemm_kernel_set {
    const char *name;
    int mr, nr;          /* micro-tile: registers hold an mr x nr block of C */
    int64_t kc, mc, nc;  /* cache blocking: kc x nc of packed B stays in L2, mc rows of packed A per round */
    gemm_microkernel_fn microkernel;
    gemm_pack_fn pack_a, pack_b;
    gemv_fn vecmat, matvec;
    gemm_tile_epilogue_fn epilogue;
} gemm_kernel_set;

extern const gemm_kernel_set gemm_kernels_portable;
#if defined(KILN_HAVE_X86_KERNELS)
extern const gemm_kernel_set gemm_kernels_avx2;
extern const gemm_kernel_set gemm_kernels_avx512;
#endif

#endif
