/*
 * test_vmath_activation.c — the fused Sigmoid and SiLU activations (gemm_activate_f32, which runs the
 * AVX-512 epilogue's activate_avx512 where the CPU has it) against their plain definitions computed in double.
 *
 * Inputs sweep [-100, 100] finely, take random bit patterns over every finite float, and include the
 * extremes: signed zeros, denormals, +-FLT_MAX, +-inf, NaN, and the points where e^-v overflows float. Where
 * the result is a normal float it must be within 4 ulp of the exact value (measured: 3 at most; the plain
 * float expression itself is 1 to 2 off); where it is tiny (below 2^-110: the sigmoid of v < -76 and SiLU
 * near there, which float's own definition rounds through denormals and to 0 below v = -88.72) within an
 * absolute 2^-119. NaN stays NaN and the infinities give the definitions'
 * limits: sigmoid(+inf) = 1, sigmoid(-inf) = 0, silu(+inf) = +inf, silu(-inf) = -inf * 0 = NaN.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/gemm.h"
#include "testlib.h"

/* The plain definitions: sigmoid(v) = 1 / (1 + e^-v), silu(v) = v * sigmoid(v) (Sigmoid then Mul). */
static double exact(gemm_activation act, float v)
{
    double s = 1.0 / (1.0 + exp(-(double)v));
    if (isinf(v) && v < 0) s = 0.0; /* exp overflows to inf in double too; spelled out for clarity */
    return act == GEMM_ACT_SILU ? (double)v * s : s;
}

/* The distance between adjacent floats at the magnitude of x. */
static double ulp_at(double x)
{
    float f = (float)fabs(x);
    return (double)nextafterf(f, INFINITY) - (double)f;
}

static void check_value(gemm_activation act, float v, float got)
{
    double want = exact(act, v);
    if (isnan(want)) {
        if (!isnan(got)) fail_msg("act %d at %a: got %a, want NaN", (int)act, (double)v, (double)got);
        return;
    }
    if (isinf(want)) {
        if (got != (float)want) fail_msg("act %d at %a: got %a, want %g", (int)act, (double)v, (double)got, want);
        return;
    }
    double err = fabs((double)got - want);
    bool tiny = fabs(want) < 0x1p-110;
    if ((tiny && err > 0x1p-119) || (!tiny && err > 4.0 * ulp_at(want)))
        fail_msg("act %d at %a: got %a, want %a (%.2f ulp)", (int)act, (double)v, (double)got, want, err / ulp_at(want));
}

/* Runs the activation over the n inputs in place on a copy, from offset `shift` so that vector tails vary. */
static void check_inputs(const float *in, int64_t n)
{
    gemm_activation acts[2] = {GEMM_ACT_SIGMOID, GEMM_ACT_SILU};
    float *v = malloc((size_t)(n + 1) * sizeof *v);
    assert_non_null(v);
    for (int a = 0; a < 2; a++)
        for (int64_t shift = 0; shift <= 1; shift++) {
            memcpy(v + shift, in, (size_t)(n - shift) * sizeof *v);
            gemm_activate_f32(acts[a], 0.0f, 0.0f, v + shift, n - shift);
            for (int64_t i = 0; i < n - shift; i++) check_value(acts[a], in[i], v[shift + i]);
        }
    free(v);
}

static void extremes_keep_their_limits(void **state)
{
    (void)state;
    float in[] = {0.0f, -0.0f, 1.0f, -1.0f, FLT_MIN, -FLT_MIN, 1e-40f, -1e-40f, FLT_MAX, -FLT_MAX,
                  INFINITY, -INFINITY, NAN, -NAN, 16.0f, -16.0f, 17.0f, -17.0f, 86.0f, -86.0f, 87.0f, -87.0f,
                  87.3f, -87.3f, 88.0f, -88.0f, 88.72f, -88.72f, 88.7228394f, -88.7228394f, 88.73f, -88.73f,
                  89.0f, -89.0f, 103.0f, -103.0f, 104.0f, -104.0f, 1e10f, -1e10f};
    check_inputs(in, (int64_t)(sizeof in / sizeof in[0]));
}

static void sweep_matches_definition(void **state)
{
    (void)state;
    enum { N = 400001 };
    float *in = malloc(N * sizeof *in);
    assert_non_null(in);
    for (int i = 0; i < N; i++) in[i] = (float)(-100.0 + 200.0 * i / (N - 1));
    check_inputs(in, N);
    free(in);
}

static void random_bit_patterns_match_definition(void **state)
{
    (void)state;
    enum { N = 200000 };
    float *in = malloc(N * sizeof *in);
    assert_non_null(in);
    for (int i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)random_int(0, 0xffffffffLL);
        memcpy(&in[i], &bits, sizeof bits);
    }
    check_inputs(in, N);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extremes_keep_their_limits),
        cmocka_unit_test(sweep_matches_definition),
        cmocka_unit_test(random_bit_patterns_match_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
