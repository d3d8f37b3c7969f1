/*
 * gelu.c — GELU (erf form) over float32 arrays (see gelu.h). The fast version scales a block that stays in
 * L1, takes its erf with the vectorised set, then forms 0.5 * x * (1 + erf) — the same float operations as
 * the reference, with erf accurate to a few ulp instead of correctly rounded.
 */
#include "kernels/gelu.h"

#include <math.h>

#include "kernels/vmath.h"

#define INV_SQRT2 0.70710678118654752440f

void gelu_f32_reference(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + (float)erf((double)(x[i] * INV_SQRT2)));
}

enum { GELU_BLOCK = 512 };

void gelu_f32(const float *x, float *y, int64_t n)
{
    const vmath_set *fast = vmath_fast_f32();
    if (!fast) {
        gelu_f32_reference(x, y, n);
        return;
    }
    float t[GELU_BLOCK];
    for (int64_t start = 0; start < n; start += GELU_BLOCK) {
        int64_t count = n - start < GELU_BLOCK ? n - start : GELU_BLOCK;
        const float *xb = x + start;
        for (int64_t i = 0; i < count; i++) t[i] = xb[i] * INV_SQRT2;
        fast->erf(t, t, count);
        for (int64_t i = 0; i < count; i++) y[start + i] = 0.5f * xb[i] * (1.0f + t[i]);
    }
}
