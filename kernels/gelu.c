/*
 * gelu.c — GELU (erf form and tanh approximation) over float32 arrays (see gelu.h). The fast version scales a block that stays in
 * L1, takes its erf with the vectorised set, then forms 0.5 * x * (1 + erf) — the same float operations as
 * the reference, with erf accurate to a few ulp instead of correctly rounded.
 */
#include "kernels/gelu.h"

#include <math.h>
#include <stdbool.h>

#include "kernels/vmath.h"

#define INV_SQRT2 0.70710678118654752440f

void gelu_f32_reference(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + (float)erf((double)(x[i] * INV_SQRT2)));
}

/* sqrt(2/pi) * (x + 0.044715 x^3), multiplied in the order PyTorch's export does */
static float tanh_argument(float x) { return 0.7978845608028654f * (x + 0.044715f * (x * (x * x))); }

void gelu_tanh_f32_reference(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * (x[i] * (1.0f + tanhf(tanh_argument(x[i]))));
}

enum { GELU_BLOCK = 512 };

typedef void (*activation_fn)(float *out, const float *in, int64_t n);

/* y = 0.5 * x * (1 + f(argument(x))), GELU_BLOCK elements at a time through a buffer that stays in L1. */
static void gelu_blocks(const float *x, float *y, int64_t n, bool tanh_form, activation_fn f)
{
    float t[GELU_BLOCK];
    for (int64_t start = 0; start < n; start += GELU_BLOCK) {
        int64_t count = n - start < GELU_BLOCK ? n - start : GELU_BLOCK;
        const float *xb = x + start;
        for (int64_t i = 0; i < count; i++) t[i] = tanh_form ? tanh_argument(xb[i]) : xb[i] * INV_SQRT2;
        f(t, t, count);
        for (int64_t i = 0; i < count; i++) y[start + i] = 0.5f * (xb[i] * (1.0f + t[i]));
    }
}

void gelu_f32(const float *x, float *y, int64_t n)
{
    const vmath_set *fast = vmath_fast_f32();
    if (fast) gelu_blocks(x, y, n, false, fast->erf);
    else gelu_f32_reference(x, y, n);
}

void gelu_tanh_f32(const float *x, float *y, int64_t n)
{
    const vmath_set *fast = vmath_fast_f32();
    if (fast) gelu_blocks(x, y, n, true, fast->tanh);
    else gelu_tanh_f32_reference(x, y, n);
}
