/*
 * attention.h — scaled dot-product attention over float32, the kernel of ai.kiln::Attention, which
 * graph/fuse_transformer.c fuses MatMul(Q, K^T) -> scale -> (+ mask) -> Softmax -> MatMul(., V) into:
 *
 *     out[b,h] = softmax(scale * q[b,h] . kt[b,h] + mask[b,h]) . v[b,h]
 *
 *   q (Bq, Hq, S, D)    kt (Bk, Hk, D, T)    v (Bv, Hv, T, Dv)    mask broadcast to (B, H, S, T)    out (B, H, S, Dv)
 *
 * Leading dims broadcast as MatMul's do (each equal to the output's or 1; a step of 0 repeats it). For each
 * (b, h), ATTENTION_ROWS rows of scores at a time are computed by one GEMM, masked and normalised in place,
 * and multiplied by v: no more than that block of scores ever exists. ATTENTION_REFERENCE runs the same steps
 * with gemm_f32_reference and a scalar softmax; ATTENTION_FAST uses gemm_f32 and vmath's row softmax.
 */
#ifndef KILN_KERNELS_ATTENTION_H
#define KILN_KERNELS_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"

enum { ATTENTION_ROWS = 128 };

typedef enum attention_variant { ATTENTION_FAST, ATTENTION_REFERENCE } attention_variant;

typedef struct attention_problem {
    int64_t B, H, S, T, D, Dv;
    float scale;
    /* element offsets between consecutive b and h of each input (0 where it broadcasts) */
    int64_t q_step[2], k_step[2], v_step[2];
    bool has_mask;
    int64_t mask_step[4]; /* along b, h, s, t */
} attention_problem;

typedef struct attention_tensors {
    const float *q, *kt, *v, *mask; /* mask NULL when absent */
    float *out;
} attention_tensors;

size_t attention_f32_scratch_bytes(const attention_problem *p, int threads);
void attention_f32(const attention_problem *p, const attention_tensors *t, attention_variant variant, void *scratch,
                   const parallel_runner *parallel);

#endif
