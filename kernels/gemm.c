/*
 * gemm.c — GEMM dispatch. (Until the blocked SIMD kernels land, this calls the reference.)
 */
#include "kernels/gemm.h"

size_t gemm_f32_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads)
{
    (void)M, (void)N, (void)K, (void)threads;
    return 0;
}

void gemm_f32(const gemm_args *args, void *scratch, const parallel_runner *parallel)
{
    (void)scratch, (void)parallel;
    gemm_f32_reference(args);
}
