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
 * fastest variant this CPU supports and may use the parallel runner. A constant B (a weight) can be packed
 * once with gemm_f32_pack_b and multiplied with gemm_f32_prepacked, which skips re-packing it on every call.
 *
 * gemm_f32_fused serves convolutions: A is a constant packed once (gemm_f32_pack_a), B may be produced panel
 * by panel by the caller (an unfolded image never needs to exist whole), and an epilogue adds a bias per row
 * and clamps (Relu, Clip) each tile while it is still in cache, instead of separate passes over C.
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

/* Scratch bytes gemm_f32 needs for these sizes (packing buffers). The threads share one packing area, so the
 * size does not depend on `threads`; the argument stays for callers that size per thread. */
size_t gemm_f32_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads);
/* `scratch` holds gemm_f32_scratch_bytes(...) bytes, 64-byte aligned. */
void gemm_f32(const gemm_args *args, void *scratch, const parallel_runner *parallel);
void gemm_f32_reference(const gemm_args *args);

/* The kernel families gemm_f32 chooses from. AUTO is the fastest this CPU supports; the others exist so that
 * tests and benchmarks can run each one. */
typedef enum gemm_variant {
    GEMM_VARIANT_AUTO = 0,
    GEMM_VARIANT_PORTABLE, /* plain C, every architecture */
    GEMM_VARIANT_AVX2,     /* x86-64 with AVX2 and FMA */
    GEMM_VARIANT_AVX512,   /* x86-64 with AVX-512F */
    GEMM_VARIANT_NEON,     /* aarch64 Advanced SIMD */
    GEMM_VARIANT_COUNT
} gemm_variant;

/* True when this build has the variant and this CPU can run it (always true for AUTO and PORTABLE). */
bool gemm_variant_available(gemm_variant variant);
const char *gemm_variant_name(gemm_variant variant);
/* gemm_f32 with a given variant, which must be available. Same scratch as gemm_f32. */
void gemm_f32_with_variant(gemm_variant variant, const gemm_args *args, void *scratch,
                           const parallel_runner *parallel);

/* op(B) [K,N] rearranged once into the panels the micro-kernel reads (a row vector times it, M == 1, reads
 * them too). It also remembers the source, which must stay alive: a product with one column (N == 1) reads
 * B in place, faster than through panels padded to NR columns. */
typedef struct gemm_packed_b {
    gemm_variant variant; /* the kernels the panels were laid out for (never AUTO) */
    int64_t K, N;
    const float *panels;
    const float *B;
    int64_t ldb;
    bool trans_b;
} gemm_packed_b;

/* Bytes of memory gemm_f32_pack_b needs for a [K,N] op(B) (including slack to align the panels). */
size_t gemm_f32_pack_b_bytes(gemm_variant variant, int64_t K, int64_t N);
void gemm_f32_pack_b(gemm_variant variant, int64_t K, int64_t N, bool trans_b, const float *B, int64_t ldb,
                     void *memory, gemm_packed_b *packed);
/* gemm_f32 with B taken from `packed` (args->B, ldb and trans_b are ignored; args->K and N must match it). */
void gemm_f32_prepacked(const gemm_args *args, const gemm_packed_b *packed, void *scratch,
                        const parallel_runner *parallel);

/* op(A) [M,K] rearranged once into the micro-kernel's A panels, in the K blocks gemm_f32 uses for this K.
 * It remembers the source, which must stay alive: matrix-vector products read A in place. */
typedef struct gemm_packed_a {
    gemm_variant variant; /* never AUTO */
    int64_t M, K;
    const float *panels;
    const float *A;
    int64_t lda;
    bool trans_a;
} gemm_packed_a;

size_t gemm_f32_pack_a_bytes(gemm_variant variant, int64_t M, int64_t K);
void gemm_f32_pack_a(gemm_variant variant, int64_t M, int64_t K, bool trans_a, const float *A, int64_t lda,
                     void *memory, gemm_packed_a *packed);

/* Writes one B micro-panel: rows k0 .. k0+kc-1 and columns j0 .. j0+count-1 of op(B), k-major with `width`
 * floats per row (dst[k * width + j]); columns count .. width-1 must be zero. */
typedef void (*gemm_b_panel_fn)(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int count, int width,
                                float *dst);

/* The activation an epilogue applies: CLAMP is min(max(v, lo), hi) (Relu, Clip; NaN passes through),
 * SIGMOID 1 / (1 + e^-v), SILU v * sigmoid(v) (Swish, as exporters write Sigmoid then Mul), HARD_SIGMOID
 * max(0, min(1, alpha * v + beta)) and HARD_SWISH v * hard_sigmoid(v), with alpha and beta passed in the
 * lo and hi fields (ONNX HardSwish is alpha 1/6, beta 1/2). */
typedef enum gemm_activation {
    GEMM_ACT_NONE = 0,
    GEMM_ACT_CLAMP,
    GEMM_ACT_SIGMOID,
    GEMM_ACT_SILU,
    GEMM_ACT_HARD_SIGMOID,
    GEMM_ACT_HARD_SWISH
} gemm_activation;

/* What happens to each finished tile of C: C[i, j] += row_bias[i] (when row_bias is given), then the
 * activation. */
typedef struct gemm_epilogue {
    const float *row_bias;
    gemm_activation act;
    float lo, hi; /* GEMM_ACT_CLAMP's bounds; the hard activations' alpha and beta */
} gemm_epilogue;

/* The activation over n contiguous floats in place (the fast vmath set where there is one). */
void gemm_activate_f32(gemm_activation act, float lo, float hi, float *v, int64_t n);

/* A channel-blocked B (the layout of kernels/conv.h's blocked activations): its rows come in blocks of
 * GEMM_B_BLOCK, and B[k, j] = args->B[(k / GEMM_B_BLOCK) * args->ldb + j * GEMM_B_BLOCK + k % GEMM_B_BLOCK],
 * ldb being the distance between blocks. K must be a multiple of GEMM_B_BLOCK. A channel-blocked C is laid
 * out the same way, with M a multiple of GEMM_B_BLOCK, ldc exactly GEMM_B_BLOCK * N and beta 0. */
enum { GEMM_B_BLOCK = 16 };

/* The operands of gemm_f32_fused beyond gemm_args: `a`, when given, replaces args->A (args->M and K must
 * match it); B comes from b_panel(b_ctx, ...) when b_panel is set (else from args->B, row-major or, with
 * b_blocked, channel-blocked); C is channel-blocked with c_blocked; `epilogue` may be NULL. */
typedef struct gemm_fused {
    const gemm_packed_a *a;
    gemm_b_panel_fn b_panel;
    const void *b_ctx;
    const gemm_epilogue *epilogue;
    bool b_blocked, c_blocked;
} gemm_fused;

/* Scratch gemm_f32_fused needs on up to `threads` threads: unlike gemm_f32 it blocks M == 1 products too (B
 * may exist only as panels), and with a pre-packed A each thread packs its own B, in its own slot. */
size_t gemm_f32_fused_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads);
/* The same for a channel-blocked B or C (gemm_fused.b_blocked, c_blocked). */
size_t gemm_f32_fused_blocked_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads);
/* gemm_f32 with the operands and epilogue of `fused`, in fused->a's variant (AUTO without it). `scratch`
 * holds gemm_f32_fused_scratch_bytes(M, N, K, parallel_threads(parallel)) bytes. */
void gemm_f32_fused(const gemm_args *args, const gemm_fused *fused, void *scratch, const parallel_runner *parallel);

#endif
