/*
 * attention.c — scaled dot-product attention, a block of score rows at a time (see attention.h).
 *
 * The scale rides on the first GEMM's alpha, so scores are scale * (q . kt) rounded once — the unfused graph
 * rounds q . kt, then the division by sqrt(D): the two differ by float rounding only. The mask is added and
 * the softmax taken row by row while the block is in cache; the second GEMM reads the block as its A.
 * The threads of the runner work inside each GEMM and across a block's rows; (b, h) pairs go one by one, so
 * one block of scratch serves them all.
 */
#include "kernels/attention.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "kernels/gemm.h"
#include "kernels/vmath.h"

static int64_t block_rows(const attention_problem *p) { return p->S < ATTENTION_ROWS ? p->S : ATTENTION_ROWS; }

static size_t scores_bytes(const attention_problem *p)
{
    return mem_align_up((size_t)(block_rows(p) * p->T) * sizeof(float), KILN_ALIGNMENT);
}

size_t attention_f32_scratch_bytes(const attention_problem *p, int threads)
{
    int64_t rows = block_rows(p);
    size_t first = gemm_f32_scratch_bytes(rows, p->T, p->D, threads);
    size_t second = gemm_f32_scratch_bytes(rows, p->Dv, p->T, threads);
    return scores_bytes(p) + (first > second ? first : second);
}

/* The operator's softmax in scalar code: max subtracted, exponentials summed in double. */
static void softmax_row_reference(float *row, int64_t n)
{
    float max = row[0];
    for (int64_t j = 1; j < n; j++) max = row[j] > max ? row[j] : max;
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        row[j] = expf(row[j] - max);
        sum += row[j];
    }
    float scale = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) row[j] *= scale;
}

typedef struct rows_job {
    const attention_problem *p;
    attention_variant variant;
    float *scores;
    const float *mask; /* this (b, h)'s mask at row s0, or NULL */
    int64_t s0;
} rows_job;

/* Rows [begin, end) of the block: + mask, then softmax. */
static void mask_and_normalise(void *arg, int64_t begin, int64_t end)
{
    const rows_job *job = arg;
    const attention_problem *p = job->p;
    const vmath_set *fast = job->variant == ATTENTION_FAST ? vmath_fast_f32() : NULL;
    for (int64_t i = begin; i < end; i++) {
        float *row = job->scores + i * p->T;
        if (job->mask) {
            const float *m = job->mask + i * p->mask_step[2];
            for (int64_t j = 0; j < p->T; j++) row[j] += m[j * p->mask_step[3]];
        }
        if (fast) fast->softmax(row, row, p->T);
        else softmax_row_reference(row, p->T);
    }
}

static void multiply(const gemm_args *g, attention_variant variant, void *scratch, const parallel_runner *parallel)
{
    if (variant == ATTENTION_FAST) gemm_f32(g, scratch, parallel);
    else gemm_f32_reference(g);
}

static void attend_head(const attention_problem *p, const attention_tensors *t, int64_t b, int64_t h,
                        attention_variant variant, void *scratch, const parallel_runner *parallel)
{
    const float *q = t->q + b * p->q_step[0] + h * p->q_step[1];
    const float *kt = t->kt + b * p->k_step[0] + h * p->k_step[1];
    const float *v = t->v + b * p->v_step[0] + h * p->v_step[1];
    float *out = t->out + (b * p->H + h) * p->S * p->Dv;
    float *scores = scratch;
    void *gemm_scratch = (char *)scratch + scores_bytes(p);
    for (int64_t s0 = 0; s0 < p->S; s0 += ATTENTION_ROWS) {
        int64_t rows = p->S - s0 < ATTENTION_ROWS ? p->S - s0 : ATTENTION_ROWS;
        gemm_args qk = {rows, p->T, p->D, false, false, q + s0 * p->D, p->D, kt, p->T, scores, p->T, p->scale, 0.0f};
        multiply(&qk, variant, gemm_scratch, parallel);
        rows_job job = {p, variant, scores, NULL, s0};
        if (p->has_mask) job.mask = t->mask + b * p->mask_step[0] + h * p->mask_step[1] + s0 * p->mask_step[2];
        parallel_for(parallel, rows, 1 + 16384 / (p->T + 1), mask_and_normalise, &job);
        gemm_args pv = {rows, p->Dv, p->T, false, false, scores, p->T, v, p->Dv, out + s0 * p->Dv, p->Dv, 1.0f, 0.0f};
        multiply(&pv, variant, gemm_scratch, parallel);
    }
}

void attention_f32(const attention_problem *p, const attention_tensors *t, attention_variant variant, void *scratch,
                   const parallel_runner *parallel)
{
    if (p->S == 0 || p->Dv == 0) return;
    if (p->T == 0) { /* softmax over nothing: every output row is an empty sum */
        memset(t->out, 0, (size_t)(p->B * p->H * p->S * p->Dv) * sizeof(float));
        return;
    }
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t h = 0; h < p->H; h++) attend_head(p, t, b, h, variant, scratch, parallel);
}
