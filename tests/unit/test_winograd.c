/*
 * test_winograd.c — the F(2x2, 3x3) convolution (kernels/winograd.c).
 *
 * The whole path (filters transformed and packed, blocks of tiles, 16 GEMMs, bias and every activation) is
 * compared with the direct-loop conv_f32_reference on random sizes, pads and channel counts, serially and on
 * a thread pool with scratch planned for fewer threads; the AVX-512 tile transforms must equal the plain
 * ones bit for bit, on planes narrower and wider than a vector and with every padding; and the choice of
 * algorithm follows the rules (3x3, stride 1, dilation 1, one group, enough channels, 3+ columns out).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/platform/platform.h"
#include "kernels/conv.h"
#include "kernels/winograd.h"
#include "runtime/pool.h"
#include "testlib.h"

/* A 2-D 3x3 stride-1 convolution with random size and pads (pads up to 2: more than the kernel's reach). */
static conv_shape random_3x3_shape(void)
{
    conv_shape s = {.batch = random_int(1, 2), .in_channels = random_int(16, 40), .out_channels = random_int(16, 40),
                    .groups = 1};
    conv_window *w = &s.win;
    for (int d = 0; d < CONV_SPATIAL; d++) {
        w->in[d] = w->out[d] = w->kernel[d] = w->stride[d] = w->dilation[d] = 1;
        w->pad[d] = w->pad_end[d] = 0;
    }
    for (int d = 1; d < CONV_SPATIAL; d++) {
        w->kernel[d] = 3;
        w->pad[d] = random_int(0, 2);
        w->pad_end[d] = random_int(0, 2);
        w->in[d] = random_int(d == 2 ? 3 : 1, 40);
        if (w->in[d] + w->pad[d] + w->pad_end[d] < 3 + (d == 2 ? 2 : 0)) w->in[d] = 5;
        w->out[d] = w->in[d] + w->pad[d] + w->pad_end[d] - 2;
    }
    return s;
}

static void check_against_reference(const conv_shape *s, int planned, const parallel_runner *runner)
{
    assert_true(conv_winograd_applies(s));
    int64_t C = s->in_channels, M = s->out_channels;
    int64_t nx = s->batch * C * conv_volume(s->win.in), ny = s->batch * M * conv_volume(s->win.out);
    float *x = random_floats(nx, -1, 1), *w = random_floats(M * C * 9, -1, 1), *bias = random_floats(M, -1, 1);
    float *want = random_floats(ny, -1, 1), *got = random_floats(ny, -1, 1);
    void *memory = aligned_alloc(64, (conv_winograd_filters_bytes(M, C) + 63) / 64 * 64);
    assert_non_null(memory);
    conv_packed_filters packed = {.groups = 1};
    assert_int_equal(conv_winograd_pack_filters(M, C, w, memory, &packed.winograd), KILN_OK);
    conv_extras extras = {.packed = &packed, .act = (gemm_activation)random_int(0, TEST_ACTIVATIONS - 1),
                          .lo = -0.5f, .hi = 1.0f};
    assert_int_equal(conv_f32_choose(s, &packed), CONV_ALGO_WINOGRAD);
    bool with_bias = random_int(0, 1) == 1;
    size_t scratch_bytes = conv_f32_scratch_bytes(s, CONV_ALGO_WINOGRAD, planned);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64);
    assert_non_null(scratch);
    conv_f32_reference(s, x, w, with_bias ? bias : NULL, want);
    conv_f32(s, CONV_ALGO_WINOGRAD, x, w, with_bias ? bias : NULL, &extras, got, scratch, scratch_bytes, runner);
    /* sums of 9*C products of values in [-1, 1]: the transforms add a few roundings of partial sums */
    for (int64_t i = 0; i < ny; i++) {
        float expect = test_activation(extras.act, extras.lo, extras.hi, want[i]);
        if (fabsf(got[i] - expect) > 1e-4f * (1.0f + fabsf(expect)))
            fail_msg("C=%lld M=%lld in=%lldx%lld pads %lld,%lld,%lld,%lld act %d: output %lld is %g, expected %g",
                     (long long)C, (long long)M, (long long)s->win.in[1], (long long)s->win.in[2],
                     (long long)s->win.pad[1], (long long)s->win.pad_end[1], (long long)s->win.pad[2],
                     (long long)s->win.pad_end[2], (int)extras.act, (long long)i, got[i], expect);
    }
    free(scratch), free(memory);
    free(x), free(w), free(bias), free(want), free(got);
}

static void winograd_matches_reference(void **state)
{
    (void)state;
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    for (int trial = 0; trial < 40; trial++) {
        conv_shape s = random_3x3_shape();
        check_against_reference(&s, 1, NULL);
        check_against_reference(&s, 1, &runner);
        check_against_reference(&s, 3, &runner);
    }
    /* a plane several blocks tall (the block holds about 1 MiB of transforms) */
    conv_shape tall = random_3x3_shape();
    tall.batch = 1, tall.in_channels = tall.out_channels = 64;
    tall.win.in[1] = 150, tall.win.in[2] = 40, tall.win.pad[1] = tall.win.pad_end[1] = 1;
    tall.win.out[1] = 150, tall.win.pad[2] = tall.win.pad_end[2] = 1, tall.win.out[2] = 40;
    check_against_reference(&tall, 3, &runner);
    pool_free(pool);
}

/* The vector transforms against the plain ones, on every plane width from 4 to 70 and pads 0 to 2. */
static void avx512_transforms_equal_reference(void **state)
{
    (void)state;
#if defined(KILN_HAVE_X86_KERNELS)
    if (!platform_cpu_features()->avx512f) skip();
    for (int64_t width = 4; width <= 70; width++) {
        int64_t pad = width % 3, height = 3 + width % 5;
        winograd_plane g = {.in_h = height, .in_w = width, .pad_top = pad, .pad_left = pad};
        g.out_h = height + 2 * pad - 2, g.out_w = width + 2 * pad - 2 - (width % 2), g.tiles_w = (g.out_w + 1) / 2;
        int64_t ty1 = (g.out_h + 1) / 2, tiles = ty1 * g.tiles_w, stride = tiles + 3;
        float *x = random_floats(height * width, -4, 4);
        float *v_want = random_floats(16 * stride, 0, 0), *v_got = random_floats(16 * stride, 0, 0);
        winograd_input_reference(&g, x, 0, ty1, v_want, stride);
        winograd_input_avx512(&g, x, 0, ty1, v_got, stride);
        assert_memory_equal(v_want, v_got, (size_t)(16 * stride) * sizeof(float));
        v_want[0] = NAN; /* NaN stays NaN through bias and clamp */
        float *y_want = random_floats(g.out_h * g.out_w, 0, 0), *y_got = random_floats(g.out_h * g.out_w, 0, 0);
        winograd_output_reference(&g, v_want, stride, 0, ty1, 0.25f, -3.0f, 3.0f, y_want);
        winograd_output_avx512(&g, v_want, stride, 0, ty1, 0.25f, -3.0f, 3.0f, y_got);
        for (int64_t i = 0; i < g.out_h * g.out_w; i++)
            if (!(y_want[i] == y_got[i] || (isnan(y_want[i]) && isnan(y_got[i]))))
                fail_msg("width %lld pad %lld: output %lld is %g, expected %g", (long long)width, (long long)pad,
                         (long long)i, y_got[i], y_want[i]);
        free(x), free(v_want), free(v_got), free(y_want), free(y_got);
    }
#else
    skip();
#endif
}

static void choice_follows_the_rules(void **state)
{
    (void)state;
    int64_t k3[2] = {3, 3}, k5[2] = {5, 5}, one[2] = {1, 1}, two[2] = {2, 2};
    assert_true(conv_winograd_filters_apply(64, 64, k3, one, one, 2, 1));
    assert_false(conv_winograd_filters_apply(64, 64, k5, one, one, 2, 1));
    assert_false(conv_winograd_filters_apply(64, 64, k3, two, one, 2, 1));
    assert_false(conv_winograd_filters_apply(64, 64, k3, one, two, 2, 1));
    assert_false(conv_winograd_filters_apply(64, 64, k3, one, one, 2, 2));
    assert_false(conv_winograd_filters_apply(64, 64, k3, one, one, 1, 1));
    assert_false(conv_winograd_filters_apply(8, 64, k3, one, one, 2, 1));
    conv_shape s = random_3x3_shape();
    assert_true(conv_winograd_applies(&s));
    conv_packed_filters none = {.groups = 1};
    assert_int_equal(conv_f32_choose(&s, NULL), CONV_ALGO_IM2COL);
    assert_int_equal(conv_f32_choose(&s, &none), CONV_ALGO_IM2COL);
    s.win.out[2] = 2; /* one tile wide */
    assert_false(conv_winograd_applies(&s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(winograd_matches_reference),
        cmocka_unit_test(avx512_transforms_equal_reference),
        cmocka_unit_test(choice_follows_the_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
