/*
 * cpu.c — which SIMD extensions this CPU has, asked once. Kernels choose their variant from this at plan
 * time; the plain C reference is always available as the fallback.
 */
#include "core/platform/platform.h"

static cpu_features detected;
static int detected_once;

const cpu_features *platform_cpu_features(void)
{
    /* Racing first calls compute the same answer, so a benign double initialisation is harmless; the flag
     * is only an optimisation. */
    if (!detected_once) {
        cpu_features f = {0};
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
        __builtin_cpu_init();
        f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        f.avx512f = __builtin_cpu_supports("avx512f");
#endif
        detected = f;
        detected_once = 1;
    }
    return &detected;
}
