/*
 * rnn.h — float32 recurrent layers: the ONNX RNN, GRU and LSTM cells run over a sequence, in one or both
 * directions, with per-sequence lengths.
 *
 * Layouts are ONNX's (G gates: RNN 1, GRU 3 in order z r h, LSTM 4 in order i o f c; D directions):
 *   x   (S, B, I), or (B, S, I) when batch_first (ONNX layout 1)
 *   w   (D, G*H, I)     r (D, G*H, H)     bias (D, 2*G*H): all Wb then all Rb     peephole (D, 3*H): i o f
 *   h0, c0, y_h, y_c    (D, B, H), or (B, D, H) when batch_first
 *   y   (S, D, B, H), or (B, S, D, H) when batch_first
 * Steps past a sequence's length leave y zero and the state as it was; a reverse direction starts at the
 * sequence's own last step.
 *
 * The work is two matrix products: every step's input projection at once (x * W^T, one GEMM of S*B rows
 * per direction), and per step the recurrent product h * R^T. RNN_VARIANT_FAST runs them through gemm_f32
 * and sigmoid/tanh through kernels/vmath.h; RNN_VARIANT_REFERENCE uses gemm_f32_reference and scalar libm
 * for the same steps, so a test comparing the two checks the fast kernels in their RNN use.
 */
#ifndef KILN_KERNELS_RNN_H
#define KILN_KERNELS_RNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"
#include "kernels/gemm.h"

typedef enum rnn_function {
    RNN_RELU,
    RNN_TANH,
    RNN_SIGMOID,
    RNN_AFFINE,           /* alpha * x + beta */
    RNN_LEAKY_RELU,       /* x < 0: alpha * x */
    RNN_THRESHOLDED_RELU, /* x > alpha: x, else 0 */
    RNN_SCALED_TANH,      /* alpha * tanh(beta * x) */
    RNN_HARD_SIGMOID,     /* clamp(alpha * x + beta, 0, 1) */
    RNN_ELU,              /* x < 0: alpha * (e^x - 1) */
    RNN_SOFTSIGN,
    RNN_SOFTPLUS,
    RNN_FUNCTION_COUNT
} rnn_function;

typedef struct rnn_activation {
    rnn_function fn;
    float alpha, beta;
} rnn_activation;

typedef enum rnn_cell { RNN_CELL_SIMPLE, RNN_CELL_GRU, RNN_CELL_LSTM } rnn_cell;

typedef enum rnn_variant { RNN_VARIANT_FAST, RNN_VARIANT_REFERENCE } rnn_variant;

typedef struct rnn_problem {
    rnn_cell cell;
    int64_t seq, batch, input, hidden;
    int directions;      /* 1 or 2 */
    bool reverse;        /* with one direction: run it backwards */
    bool batch_first;    /* ONNX layout 1 */
    float clip;          /* gate inputs are clamped to [-clip, clip]; INFINITY for none */
    bool linear_before_reset; /* GRU */
    bool input_forget;        /* LSTM: the forget gate is 1 - the input gate */
    rnn_activation act[2][3]; /* per direction: f, then g (GRU, LSTM), then h (LSTM) */
} rnn_problem;

/* Constant weights rearranged once at load for the fast variant, per direction:
 *   w        W packed as op(B) = W^T for gemm (the input projection never re-packs it);
 *   r        R packed as op(B) = R^T for gemm (the recurrent product of batches > 1);
 *   r_blocks R^T cut into blocks of RNN_BLOCK columns, each stored k-major (element (k, j) of block jb at
 *            r_blocks[(jb * H + k) * RNN_BLOCK + j % RNN_BLOCK], columns past G*H zero): a batch-1 step
 *            streams it once, keeping one block's sums in registers (rnn_matvec_blocked).
 */
enum { RNN_BLOCK = 64 };

typedef struct rnn_prepacked {
    gemm_packed_b w[2], r[2];
    const float *r_blocks[2];
} rnn_prepacked;

/* y[j] = sum_k x[k] * R^T(k, j) for j < n, R^T in `blocks` as rnn_prepacked.r_blocks (K rows). */
typedef void (*rnn_matvec_fn)(int64_t K, int64_t n, const float *x, const float *blocks, float *y);
void rnn_matvec_blocked_reference(int64_t K, int64_t n, const float *x, const float *blocks, float *y);
#if defined(KILN_HAVE_X86_KERNELS)
void rnn_matvec_blocked_avx512(int64_t K, int64_t n, const float *x, const float *blocks, float *y);
#endif

typedef struct rnn_tensors {
    const float *x, *w, *r;
    const float *bias, *peephole, *h0, *c0; /* NULL when absent (zeros) */
    const int32_t *lengths;                 /* NULL: every sequence is full; else each in [0, seq] */
    float *y, *y_h, *y_c;                   /* NULL when not wanted */
    const rnn_prepacked *packed;            /* w and r packed by rnn_prepack, or NULL (the reference ignores it) */
} rnn_tensors;

/* Bytes rnn_prepack needs for D directions of W (G*H, I) and R (G*H, H). */
size_t rnn_prepack_bytes(int directions, int64_t gh, int64_t input, int64_t hidden);
/* Fills `out` from w (D, G*H, I) and r (D, G*H, H), which must outlive it; memory holds rnn_prepack_bytes. */
void rnn_prepack(int directions, int64_t gh, int64_t input, int64_t hidden, const float *w, const float *r,
                 void *memory, rnn_prepacked *out);

/* Gates per cell: 1, 3 or 4. */
int rnn_gates(rnn_cell cell);
/* Scratch rnn_f32 needs (64-byte aligned by the caller). */
size_t rnn_f32_scratch_bytes(const rnn_problem *p, int threads);
void rnn_f32(const rnn_problem *p, const rnn_tensors *t, rnn_variant variant, void *scratch,
             const parallel_runner *parallel);

/* f(v[i]) for i < n, in place; the fast variant uses vmath for sigmoid and tanh when the CPU has it. */
void rnn_activate(const rnn_activation *a, float *v, int64_t n, rnn_variant variant);

#endif
