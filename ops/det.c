/*
 * det.c — Det: the determinant of each square matrix in the last two dims.
 *
 *     x is (..., M, M), y is (...)
 *
 * Each matrix is factored by Gaussian elimination with partial pivoting (LU), in double precision whatever
 * the dtype, so float32 results are accurate to their last bit for the small matrices models use; the
 * determinant is the product of the pivots with the sign of the row swaps. A zero pivot column means a
 * singular matrix, determinant 0. Matrices are independent: they are split into one slice per thread, each
 * with its own M x M work matrix in scratch.
 */
#include <math.h>

#include "ops/op.h"

static kiln_status det_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status det_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2]) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %s is not a (batch of) square matrices",
                         shape_format(s, sizeof s, x->rank, x->dims));
    }
    int64_t m = x->dims[x->rank - 1];
    op_set_output_shape(ctx, 0, x->rank - 2, x->dims);
    int threads = ctx->threads > 0 ? ctx->threads : 1;
    ctx->scratch_bytes = (size_t)threads * (size_t)(m * m) * sizeof(double);
    return KILN_OK;
}

/* The determinant of the m x m row-major matrix a, which it overwrites with its LU factors. */
static double det_lu(double *a, int64_t m)
{
    double det = 1;
    for (int64_t k = 0; k < m; k++) {
        int64_t pivot = k;
        for (int64_t i = k + 1; i < m; i++)
            if (fabs(a[i * m + k]) > fabs(a[pivot * m + k])) pivot = i;
        if (a[pivot * m + k] == 0) return 0;
        if (pivot != k) {
            for (int64_t j = 0; j < m; j++) {
                double t = a[k * m + j];
                a[k * m + j] = a[pivot * m + j];
                a[pivot * m + j] = t;
            }
            det = -det;
        }
        double diagonal = a[k * m + k];
        det *= diagonal;
        for (int64_t i = k + 1; i < m; i++) {
            double factor = a[i * m + k] / diagonal;
            for (int64_t j = k + 1; j < m; j++) a[i * m + j] -= factor * a[k * m + j];
        }
    }
    return det;
}

typedef struct det_job {
    const kiln_tensor *x;
    kiln_tensor *y;
    double *work;
    int64_t m, matrices, slices;
} det_job;

static void det_slices(void *arg, int64_t begin, int64_t end)
{
    const det_job *job = arg;
    int64_t mm = job->m * job->m;
    for (int64_t s = begin; s < end; s++) {
        double *a = job->work + s * mm;
        for (int64_t b = s * job->matrices / job->slices; b < (s + 1) * job->matrices / job->slices; b++) {
            for (int64_t i = 0; i < mm; i++) a[i] = tensor_get_double(job->x, b * mm + i);
            double det = det_lu(a, job->m);
            if (job->y->dtype == KILN_FLOAT32) ((float *)job->y->data)[b] = (float)det;
            else ((double *)job->y->data)[b] = det;
        }
    }
}

static kiln_status det_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    det_job job = {.x = x, .y = ctx->outputs[0], .work = ctx->scratch, .m = x->dims[x->rank - 1]};
    job.matrices = tensor_numel(ctx->outputs[0]);
    job.slices = ctx->threads > 0 ? ctx->threads : 1;
    if (job.slices > job.matrices) job.slices = job.matrices;
    parallel_for(ctx->parallel, job.slices, 1, det_slices, &job);
    return KILN_OK;
}

const op_def ops_det[] = {
    {"", "Det", 11, 18, 0, det_init, det_shape, det_eval, 0},
    OP_TABLE_END,
};
