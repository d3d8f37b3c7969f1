/*
 * gemm_ref.c — the reference GEMM: obviously correct, used as the oracle for every fast variant.
 * Accumulates in double so that it is a better reference than any float32 kernel it checks.
 */
#include "kernels/gemm.h"

void gemm_f32_reference(const gemm_args *g)
{
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) {
            double sum = 0;
            for (int64_t k = 0; k < g->K; k++) {
                float a = g->trans_a ? g->A[k * g->lda + i] : g->A[i * g->lda + k];
                float b = g->trans_b ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j];
                sum += (double)a * (double)b;
            }
            float *c = &g->C[i * g->ldc + j];
            *c = (float)((double)g->alpha * sum + (g->beta == 0.0f ? 0.0 : (double)g->beta * (double)*c));
        }
}
