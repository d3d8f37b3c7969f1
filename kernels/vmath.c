/*
 * vmath.c — picks the vectorised float32 function set for this CPU (see vmath.h).
 */
#include <stddef.h>

#include "core/platform/platform.h"
#include "kernels/vmath.h"

const vmath_set *vmath_fast_f32(void)
{
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx512f && platform_cpu_features()->avx2_fma) return &vmath_avx512;
    if (platform_cpu_features()->avx2_fma) return &vmath_avx2;
#endif
    return NULL;
}
