/*
 * tree_predict.c — tree_ensemble_predict. (Until the batched traversal lands, this is the reference.)
 */
#include "kernels/tree_ensemble.h"

void tree_ensemble_predict(const tree_ensemble *e, const float *x, int64_t rows, int64_t row_stride, double *scores,
                           const parallel_runner *parallel)
{
    (void)parallel;
    tree_ensemble_predict_reference(e, x, rows, row_stride, scores);
}
