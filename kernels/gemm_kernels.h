/*
 * gemm_kernels.h — the contract between gemm.c (packing, blocking, threading) and the instruction-set
 * specific kernels: a register-blocked micro-kernel over packed panels, and two matrix-vector kernels for
 * the M == 1 / N == 1 shapes where packing would cost more than the arithmetic.
 *
 * Packed layouts (written by the set's pack functions from gemm_pack.h, read by its micro-kernel):
 *   B micro-panel: kc x NR floats, k-major: b[k * NR + j] is op(B)[k, j]; one vector load per k. gemm.c
 *                  relies on this layout to index pre-packed B.
 *   A micro-panel: MR x kc floats, k-major too: a[k * MR + i] is op(A)[i, k], so the MR values a k step
 *                  broadcasts sit side by side and a panel is read front to back as one stream. (Rows,
 *                  a[i * kc + k], made the x86 kernels read MR streams at once; with filters packed at load
 *                  and too big for the caches, the prefetchers fell behind them: a 1280 x 320 x 49
 *                  pointwise layer ran 770 us instead of 560 with cold filters, and Winograd's
 *                  transformed filters, read once per run, ran resnet18's last 3x3 convolutions 1.6x slower.)
 * Rows past the tile's mr and columns past its nr are zero-filled, so a kernel may compute the full MR x NR
 * tile and store only the mr x nr corner.
 * Each kernel set is internal to kernels/; gemm.h is the public face.
 */
#ifndef KILN_KERNELS_GEMM_KERNELS_H
#define KILN_KERNELS_GEMM_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* What a micro-kernel does to its sums before storing them, on a tile's last K slice: C[i, :] += bias[i]
 * (unless bias is NULL), then, with clamp, min(max(v, lo), hi) with NaN passing through. Done on the
 * registers, it saves the pass over the stored tile that the other activations still take (the set's
 * epilogue): with K = 16 that pass cost a fifth of the product. */
typedef struct gemm_tile_ops {
    const float *bias; /* the tile's first row's */
    bool clamp;
    float lo, hi;
} gemm_tile_ops;

/* C[0:mr, 0:nr] = alpha * (A micro-panel x B) + beta * C, then `ops` when not NULL; beta == 0 never reads
 * C. B's k-th row of NR floats is at b + k * ldb: ldb is NR for a packed micro-panel, and the row stride of
 * op(B) when gemm.c lets the kernel read a whole-width tile of B where it lies. */
typedef void (*gemm_microkernel_fn)(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc,
                                    int mr, int nr, float alpha, float beta, const gemm_tile_ops *ops);

/* y[j * incy] = alpha * sum_k x[k] * M(k, j) + beta * y[j * incy] for j in [0, n); beta == 0 never reads y.
 * vecmat reads M(k, j) = m[k * ldm + j] (a row vector times a row-major matrix); matvec reads
 * M(k, j) = m[j * ldm + k] (each output is the dot product of x with one row). */
typedef void (*gemv_fn)(int64_t K, int64_t n, const float *x, const float *m, int64_t ldm, float *y, int64_t incy,
                        float alpha, float beta);

/* y[0:nr] = alpha * x[0:K] * P + beta * y[0:nr], P one B micro-panel K deep (P[k, j] = b[k * NR + j]);
 * beta == 0 never reads y. A row vector times a matrix packed at load: the panels lie one after another, so
 * the whole matrix arrives as a single stream, the order memory delivers fastest. */
typedef void (*gemm_vecpanel_fn)(int64_t K, const float *x, const float *b, float *y, int nr, float alpha,
                                 float beta);

/* Packs `count` vectors of length kc (element k of vector i at src[i * stride + k * step]) into one A
 * micro-panel (a vector per row of op(A)) or B micro-panel (a vector per column of op(B)). */
typedef void (*gemm_pack_fn)(const float *src, int64_t stride, int64_t step, int count, int64_t kc, float *dst);

/* The fused epilogue on one finished tile (see gemm_epilogue in gemm.h): C[i, 0:nr] += bias[i] when bias is
 * given, then the activation. NULL in a set means gemm.c's plain loops. */
typedef void (*gemm_tile_epilogue_fn)(float *c, int64_t ldc, int mr, int nr, const float *bias, int act, float lo,
                                      float hi);

/* The product turned around, for C with few columns (a pointwise convolution over a 7 x 7 image): C's rows
 * run along the vector lanes and its columns are the broadcasts, so 49 columns cost 49 broadcasts instead of
 * 4 vectors of 16 with 15 lanes wasted. Computes C[0:rows, 0:cols] = act(alpha * A B + bias) for rows <= TW
 * and cols <= TR (the set's tw and tr), where A is given transposed and k-major, at[k * TW + i] (rows past
 * `rows` zero), B is read in place (B[k, j] = b[k * ldb + j], or with b_blocked the channel-blocked
 * b[(k / 16) * ldb + j * 16 + k % 16] of gemm.h's GEMM_B_BLOCK), C likewise (c_blocked: rows a multiple of
 * 16, each vector of rows stored whole, untransposed), and bias (per row of C) may be NULL. `ahead`
 * (ahead_floats long, or NULL) is memory the next calls will need: the kernel prefetches it while it
 * computes, as the A panels the caller repacks next would otherwise arrive only when asked for. */
typedef struct gemm_columns_args {
    int64_t K;
    const float *at;
    const float *b;
    int64_t ldb;
    bool b_blocked;
    float *c;
    int64_t ldc;
    bool c_blocked;
    int rows, cols;
    float alpha;
    const float *bias;
    int act;
    float lo, hi;
    const float *ahead;
    int64_t ahead_floats;
} gemm_columns_args;
typedef void (*gemm_columns_fn)(const gemm_columns_args *args);

/* Lays `count` consecutive A micro-panels (MR rows, kc deep, one after another) side by side in the columns
 * kernel's layout, at[k * TW + q * MR + i] = panel q's a[k * MR + i]; panels count .. TW/MR-1 are zero. */
typedef void (*gemm_widen_panels_fn)(const float *panels, int count, int64_t kc, float *at);

typedef struct gemm_kernel_set {
    const char *name;
    int mr, nr;          /* micro-tile: registers hold an mr x nr block of C */
    int64_t kc, mc, nc;  /* cache blocking: kc x nc of packed B stays in L2, mc rows of packed A per round */
    gemm_microkernel_fn microkernel;
    gemm_pack_fn pack_a, pack_b;
    gemv_fn vecmat, matvec;
    gemm_vecpanel_fn vecpanel;
    gemm_tile_epilogue_fn epilogue;
    gemm_columns_fn columns; /* or NULL; the next four matter only with it */
    gemm_widen_panels_fn widen_panels;
    int lanes;               /* floats per vector register */
    int tw, tr;              /* the columns kernel's tile: TW rows of C (whole vectors, a multiple of MR) x TR
                              * columns */
} gemm_kernel_set;

extern const gemm_kernel_set gemm_kernels_portable;
#if defined(KILN_HAVE_X86_KERNELS)
extern const gemm_kernel_set gemm_kernels_avx2;
extern const gemm_kernel_set gemm_kernels_avx512;
#endif
#if defined(KILN_HAVE_NEON_KERNELS)
extern const gemm_kernel_set gemm_kernels_neon;
#endif

#endif
