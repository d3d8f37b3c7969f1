/*
 * gemm.h — single-precision matrix multiplication, the kernel under MatMul, Gemm and convolution.
 *
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 *
 * Row-major with leading dimensions (elements between consecutive rows). op(X) is X or its transpose as
 * the trans_* flags say: with trans_a, A is stored as [K,M]. beta == 0 means C is not read (it may hold
 * garbage, even NaN).
 *
 * gemm_f32_reference is the plain triple loop every faster variant is tested against; gemm_f32 picks the
 * fastest variant this CPU supports and may use the parallel runner.
 */
#ifndef KILN_KERNELS_GEMM_H
#define KILN_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"

typedef struct gemm_args {
    int64_t M, N, K;
    bool trans_a, trans_b;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
    float alpha, beta;
} gemm_args;

/* Scratch bytes gemm_f32 needs for these sizes (packing buffers), for up to `threads` threads. */
size_t gemm_f32_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads);
/* `scratch` holds gemm_f32_scratch_bytes(...) bytes, 64-byte aligned. */
void gemm_f32(const gemm_args *args, void *scratch, const parallel_runner *parallel);
void gemm_f32_reference(const gemm_args *args);

#endif
