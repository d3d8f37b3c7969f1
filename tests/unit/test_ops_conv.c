/*
 * test_ops_conv.c — convolution and pooling.
 *
 * The fast convolution paths (im2col + GEMM, pointwise GEMM, direct depthwise, GEMM + col2im) are compared
 * with the direct-loop references on random shapes with pads, strides, dilations and groups, serially and on
 * a thread pool, with scratch sized for fewer threads than the pool has. The window geometry is checked on
 * cases worked out by hand; the operators are run end to end through small in-memory models, including bad
 * attributes (refused at load), bad shapes (refused at plan) and empty batches.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/platform/platform.h"
#include "kernels/conv.h"
#include "kiln.h"
#include "ops/conv_geometry.h"
#include "runtime/pool.h"
#include "testlib.h"

/* ---- random problems --------------------------------------------------------------------------------- */

static void identity_window(conv_window *w)
{
    for (int d = 0; d < CONV_SPATIAL; d++) {
        w->in[d] = w->out[d] = w->kernel[d] = w->stride[d] = w->dilation[d] = 1;
        w->pad[d] = w->pad_end[d] = 0;
    }
}

/* A random forward window over 1 to 3 spatial dims; pointwise keeps it 1x1, stride 1, unpadded. */
static void random_forward_window(conv_window *w, bool pointwise)
{
    identity_window(w);
    int spatial = (int)random_int(1, 3);
    for (int d = CONV_SPATIAL - spatial; d < CONV_SPATIAL; d++) {
        w->in[d] = random_int(1, spatial == 3 ? 5 : 9);
        if (pointwise) {
            w->out[d] = w->in[d];
            continue;
        }
        w->kernel[d] = random_int(1, 3);
        w->stride[d] = random_int(1, 3);
        w->dilation[d] = random_int(1, 2);
        w->pad[d] = random_int(0, 2);
        w->pad_end[d] = random_int(0, 2);
        int64_t extent = (w->kernel[d] - 1) * w->dilation[d] + 1;
        if (w->in[d] + w->pad[d] + w->pad_end[d] < extent) w->in[d] = extent;
        w->out[d] = (w->in[d] + w->pad[d] + w->pad_end[d] - extent) / w->stride[d] + 1;
    }
}

/* A random transposed window; the start padding may be negative (an output_shape past the natural size). */
static void random_transpose_window(conv_window *w, bool pointwise)
{
    identity_window(w);
    int spatial = (int)random_int(1, 3);
    for (int d = CONV_SPATIAL - spatial; d < CONV_SPATIAL; d++) {
        w->in[d] = random_int(1, spatial == 3 ? 4 : 7);
        if (pointwise) {
            w->out[d] = w->in[d];
            continue;
        }
        w->kernel[d] = random_int(1, 3);
        w->stride[d] = random_int(1, 3);
        w->dilation[d] = random_int(1, 2);
        w->pad[d] = random_int(-1, 2);
        int64_t natural =
            w->stride[d] * (w->in[d] - 1) + random_int(0, w->stride[d] - 1) + (w->kernel[d] - 1) * w->dilation[d] + 1;
        w->out[d] = natural - w->pad[d] - random_int(0, 1);
        if (w->out[d] < 1) w->out[d] = 1;
    }
}

static conv_shape random_conv_shape(conv_algo algo, bool transpose)
{
    conv_shape s = {0};
    s.batch = random_int(0, 2);
    s.groups = random_int(1, 3);
    if (algo == CONV_ALGO_DEPTHWISE) {
        s.in_channels = s.out_channels = s.groups = random_int(1, 6);
    } else {
        s.in_channels = s.groups * random_int(1, 3);
        s.out_channels = s.groups * random_int(1, 3);
        /* one channel in and out per group would be depthwise, which conv_f32_choose prefers */
        if (s.in_channels == s.groups && s.out_channels == s.groups) s.out_channels *= 2;
    }
    if (transpose) random_transpose_window(&s.win, algo == CONV_ALGO_POINTWISE);
    else random_forward_window(&s.win, algo == CONV_ALGO_POINTWISE);
    return s;
}

/* ---- fast paths against the references --------------------------------------------------------------- */

typedef struct sizes {
    int64_t x, w, y;
} sizes;

static sizes problem_sizes(const conv_shape *s, bool transpose)
{
    int64_t kvol = conv_volume(s->win.kernel);
    int64_t w = transpose ? s->in_channels * (s->out_channels / s->groups) * kvol
                          : s->out_channels * (s->in_channels / s->groups) * kvol;
    return (sizes){s->batch * s->in_channels * conv_volume(s->win.in), w,
                   s->batch * s->out_channels * conv_volume(s->win.out)};
}

/* Runs the fast path with scratch sized for `planned` threads on `runner` and compares with the reference. */
static void check_fast_path(const conv_shape *s, conv_algo algo, bool transpose, int planned, const parallel_runner *runner)
{
    sizes n = problem_sizes(s, transpose);
    float *x = random_floats(n.x, -1, 1), *w = random_floats(n.w, -1, 1), *bias = random_floats(s->out_channels, -1, 1);
    float *want = random_floats(n.y, -1, 1), *got = random_floats(n.y, -1, 1);
    bool with_bias = random_int(0, 1) == 1;
    /* forward convolutions also run with filters packed at load and a fused activation */
    conv_extras extras = {.act = transpose ? GEMM_ACT_NONE : (gemm_activation)random_int(0, TEST_ACTIVATIONS - 1),
                          .lo = -0.25f, .hi = 0.5f};
    conv_packed_filters packed;
    void *packed_memory = NULL;
    int64_t per_group_k = s->in_channels / s->groups * conv_volume(s->win.kernel);
    if (!transpose && algo != CONV_ALGO_DEPTHWISE && random_int(0, 1) == 1) {
        packed_memory = malloc(conv_f32_pack_filters_bytes(s->out_channels, per_group_k, s->groups) + 1);
        assert_non_null(packed_memory);
        conv_f32_pack_filters(s->out_channels, per_group_k, s->groups, w, packed_memory, &packed);
        extras.packed = &packed;
    }
    size_t scratch_bytes = transpose ? conv_transpose_f32_scratch_bytes(s, algo, planned)
                                     : conv_f32_scratch_bytes(s, algo, planned);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64 + 64);
    assert_non_null(scratch);
    if (transpose) {
        conv_transpose_f32_reference(s, x, w, with_bias ? bias : NULL, want);
        conv_transpose_f32(s, algo, x, w, with_bias ? bias : NULL, got, scratch, scratch_bytes, runner);
    } else {
        conv_f32_reference(s, x, w, with_bias ? bias : NULL, want);
        for (int64_t i = 0; i < n.y; i++) want[i] = test_activation(extras.act, extras.lo, extras.hi, want[i]);
        conv_f32(s, algo, x, w, with_bias ? bias : NULL, &extras, got, scratch, scratch_bytes, runner);
    }
    double diff = max_abs_diff(want, got, n.y);
    if (diff > 1e-3)
        fail_msg("activation %d packed %d bias %d algo %d transpose %d: N=%lld C=%lld M=%lld g=%lld in=%lldx%lldx%lld out=%lldx%lldx%lld differs by %g",
                 (int)extras.act, extras.packed != NULL, (int)with_bias, (int)algo, (int)transpose, (long long)s->batch, (long long)s->in_channels, (long long)s->out_channels,
                 (long long)s->groups, (long long)s->win.in[0], (long long)s->win.in[1], (long long)s->win.in[2],
                 (long long)s->win.out[0], (long long)s->win.out[1], (long long)s->win.out[2], diff);
    free(scratch);
    free(packed_memory);
    free(x), free(w), free(bias), free(want), free(got);
}

/* Every (algorithm, direction) on random shapes: serially, and on three threads with scratch planned for one
 * thread (the kernels must use fewer threads) and for three. */
static void check_random_problems(conv_algo algo, bool transpose)
{
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    for (int trial = 0; trial < 150; trial++) {
        conv_shape s = random_conv_shape(algo, transpose);
        if (algo != CONV_ALGO_IM2COL)
            assert_int_equal(transpose ? conv_transpose_f32_choose(&s) : conv_f32_choose(&s, NULL), algo);
        check_fast_path(&s, algo, transpose, 1, NULL);
        check_fast_path(&s, algo, transpose, 1, &runner);
        check_fast_path(&s, algo, transpose, 3, &runner);
    }
    pool_free(pool);
}

static void im2col_matches_reference(void **state)
{
    (void)state;
    check_random_problems(CONV_ALGO_IM2COL, false);
}

static void pointwise_matches_reference(void **state)
{
    (void)state;
    check_random_problems(CONV_ALGO_POINTWISE, false);
}

static void depthwise_matches_reference(void **state)
{
    (void)state;
    check_random_problems(CONV_ALGO_DEPTHWISE, false);
}

static void col2im_matches_reference(void **state)
{
    (void)state;
    check_random_problems(CONV_ALGO_IM2COL, true);
}

static void pointwise_transpose_matches_reference(void **state)
{
    (void)state;
    check_random_problems(CONV_ALGO_POINTWISE, true);
}

/* The SIMD row kernels of the depthwise convolution against the plain one, at every stride and length
 * around the vector widths. */
static void row_taps_variants_agree(void **state)
{
    (void)state;
#if defined(KILN_HAVE_X86_KERNELS)
    if (!platform_cpu_features()->avx2_fma) skip();
    for (int trial = 0; trial < 500; trial++) {
        int64_t n = random_int(0, 70), stride = random_int(1, 3), taps = random_int(1, 5), dilation = random_int(1, 3);
        int64_t span = n ? (n - 1) * stride + (taps - 1) * dilation + 1 : 0;
        /* the exact input span, so that reading past it is an ASan error */
        float *src = random_floats(span, -1, 1), *w = random_floats(taps, -1, 1), *want = random_floats(n, -1, 1);
        float *got = malloc((size_t)(n > 0 ? n : 1) * sizeof *got);
        assert_non_null(got);
        if (n) memcpy(got, want, (size_t)n * sizeof *got);
        conv_row_taps(want, src, n, stride, w, taps, dilation);
        conv_row_taps_avx2(got, src, n, stride, w, taps, dilation);
        assert_true(max_abs_diff(want, got, n) < 1e-5);
        free(src), free(w), free(want), free(got);
    }
#else
    skip();
#endif
}

/* One large single-task convolution, so the threads split the unfolding and the GEMM inside the task; and
 * depthwise convolutions with long rows. */
static void large_task_splits_inside(void **state)
{
    (void)state;
    conv_shape s = {.batch = 1, .in_channels = 16, .out_channels = 32, .groups = 1};
    identity_window(&s.win);
    for (int d = 1; d < 3; d++) {
        s.win.in[d] = 40, s.win.kernel[d] = 3, s.win.pad[d] = 1, s.win.pad_end[d] = 1, s.win.out[d] = 40;
    }
    thread_pool *pool;
    assert_int_equal(pool_create(2, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    check_fast_path(&s, CONV_ALGO_IM2COL, false, 2, &runner);
    check_fast_path(&s, CONV_ALGO_IM2COL, true, 2, &runner);
    /* depthwise on rows long enough for the SIMD row kernels: strides 1 to 3, 3x3 and dilated 5x5 */
    for (int64_t stride = 1; stride <= 3; stride++)
        for (int64_t k = 3; k <= 5; k += 2) {
            conv_shape dw = {.batch = 2, .in_channels = 3, .out_channels = 3, .groups = 3};
            identity_window(&dw.win);
            for (int d = 1; d < 3; d++) {
                dw.win.in[d] = 45 + d, dw.win.kernel[d] = k, dw.win.stride[d] = stride, dw.win.dilation[d] = k == 5 ? 2 : 1;
                dw.win.pad[d] = k / 2;
                dw.win.out[d] = (dw.win.in[d] + 2 * dw.win.pad[d] - (k - 1) * dw.win.dilation[d] - 1) / stride + 1;
            }
            check_fast_path(&dw, CONV_ALGO_DEPTHWISE, false, 2, &runner);
        }
    pool_free(pool);
}

/* The sixteen-channel depthwise kernel (AVX-512) on the shapes the random problems above rarely reach:
 * channel counts around its blocks of 16, planes from 1x1 to wider than a vector, 1x1 to 7x7 kernels, strides
 * 1 and 2 (3 falls back to the plane-by-plane path), asymmetric and zero padding, dilations, bands of rows
 * split across two threads, scratch for one and two. Other CPUs run the portable path on the same cases. */
static void depthwise_blocks_match_reference(void **state)
{
    (void)state;
    thread_pool *pool;
    assert_int_equal(pool_create(2, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    const int64_t channel_counts[] = {1, 15, 16, 17, 33};
    for (int trial = 0; trial < 120; trial++) {
        conv_shape s = {.batch = random_int(1, 2)};
        s.in_channels = s.out_channels = s.groups = channel_counts[trial % 5];
        conv_window *w = &s.win;
        identity_window(w);
        int64_t k = random_int(1, 7);
        for (int d = 1; d < CONV_SPATIAL; d++) {
            w->in[d] = trial % 4 == 0 ? random_int(1, 3) : random_int(1, trial % 3 == 0 ? 70 : 30);
            w->kernel[d] = trial % 7 == 0 ? random_int(1, 7) : k;
            w->stride[d] = random_int(1, trial % 10 == 0 ? 3 : 2);
            w->dilation[d] = random_int(1, 2);
            w->pad[d] = random_int(0, 3);
            w->pad_end[d] = random_int(0, 3);
            int64_t extent = (w->kernel[d] - 1) * w->dilation[d] + 1;
            if (w->in[d] + w->pad[d] + w->pad_end[d] < extent) w->in[d] = extent;
            w->out[d] = (w->in[d] + w->pad[d] + w->pad_end[d] - extent) / w->stride[d] + 1;
        }
        assert_int_equal(conv_f32_choose(&s, NULL), CONV_ALGO_DEPTHWISE);
        check_fast_path(&s, CONV_ALGO_DEPTHWISE, false, 1, NULL);
        check_fast_path(&s, CONV_ALGO_DEPTHWISE, false, 1, &runner);
        check_fast_path(&s, CONV_ALGO_DEPTHWISE, false, 2, &runner);
    }
    pool_free(pool);
}

/* A fused activation keeps the reference's NaN and infinities through the depthwise kernels: NaN inputs
 * spread to the outputs whose windows hold them, and outputs of +-inf are clamped or saturate. */
static void depthwise_special_values(void **state)
{
    (void)state;
    conv_shape s = {.batch = 1, .in_channels = 20, .out_channels = 20, .groups = 20};
    identity_window(&s.win);
    for (int d = 1; d < CONV_SPATIAL; d++)
        s.win.in[d] = s.win.out[d] = 9, s.win.kernel[d] = 3, s.win.pad[d] = s.win.pad_end[d] = 1;
    int64_t n = 20 * 81;
    float *x = random_floats(n, -1, 1), *w = random_floats(20 * 9, -1, 1), *want = random_floats(n, 0, 1);
    float *got = random_floats(n, 0, 1);
    x[40] = NAN, x[81 + 5] = INFINITY, x[2 * 81 + 77] = -INFINITY, x[3 * 81] = 1e30f, x[4 * 81 + 10] = -1e30f;
    for (int k = 0; k < 9; k++) w[k] = w[9 + k] = w[18 + k] = 1.0f; /* no inf * 0 beside the NaN */
    size_t scratch_bytes = conv_f32_scratch_bytes(&s, CONV_ALGO_DEPTHWISE, 1);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64 + 64);
    assert_non_null(scratch);
    for (int act = GEMM_ACT_NONE; act <= GEMM_ACT_SILU; act++) {
        conv_extras extras = {.act = (gemm_activation)act, .lo = 0.0f, .hi = 6.0f};
        conv_f32_reference(&s, x, w, NULL, want);
        for (int64_t i = 0; i < n; i++) want[i] = test_activation(extras.act, extras.lo, extras.hi, want[i]);
        conv_f32(&s, CONV_ALGO_DEPTHWISE, x, w, NULL, &extras, got, scratch, scratch_bytes, NULL);
        for (int64_t i = 0; i < n; i++) {
            bool same = isnan(want[i]) ? isnan(got[i]) : isinf(want[i]) ? got[i] == want[i] : fabsf(got[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i]));
            if (!same) fail_msg("activation %d output %lld: got %g, want %g", act, (long long)i, (double)got[i], (double)want[i]);
        }
    }
    free(scratch);
    free(x), free(w), free(want), free(got);
}

/* ---- geometry ---------------------------------------------------------------------------------------- */

static conv_attrs attrs_2d(conv_auto_pad auto_pad, int64_t stride, int64_t dilation)
{
    conv_attrs a;
    memset(&a, 0, sizeof a);
    a.auto_pad = auto_pad;
    a.n_strides = a.n_dilations = 2;
    a.strides[0] = a.strides[1] = stride;
    a.dilations[0] = a.dilations[1] = dilation;
    return a;
}

static void same_padding_puts_the_odd_pixel_where_asked(void **state)
{
    (void)state;
    int64_t in[2] = {7, 8}, kernel[2] = {3, 3};
    conv_window w;
    /* 7 with stride 2: 4 outputs, total padding 3*2 + 3 - 7 = 2; 8: 4 outputs, total 1 */
    conv_attrs upper = attrs_2d(CONV_AUTO_PAD_SAME_UPPER, 2, 1);
    assert_int_equal(conv_geometry_forward(&upper, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 4), assert_int_equal(w.out[2], 4);
    assert_int_equal(w.pad[1], 1), assert_int_equal(w.pad[2], 0), assert_int_equal(w.pad_end[2], 1);
    conv_attrs lower = attrs_2d(CONV_AUTO_PAD_SAME_LOWER, 2, 1);
    assert_int_equal(conv_geometry_forward(&lower, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.pad[1], 1), assert_int_equal(w.pad[2], 1), assert_int_equal(w.pad_end[2], 0);
    /* the leading dim of the 3-D form is the identity */
    assert_int_equal(w.in[0], 1), assert_int_equal(w.out[0], 1), assert_int_equal(w.kernel[0], 1);
}

static void valid_and_explicit_pads(void **state)
{
    (void)state;
    int64_t in[2] = {10, 5}, kernel[2] = {3, 2};
    conv_window w;
    conv_attrs valid = attrs_2d(CONV_AUTO_PAD_VALID, 3, 2);
    /* extents 5 and 3: (10-5)/3+1 = 2, (5-3)/3+1 = 1 */
    assert_int_equal(conv_geometry_forward(&valid, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 2), assert_int_equal(w.out[2], 1);
    conv_attrs pads = attrs_2d(CONV_AUTO_PAD_NOTSET, 1, 1);
    pads.n_pads = 4;
    pads.pads[0] = 1, pads.pads[1] = 0, pads.pads[2] = 2, pads.pads[3] = 1;
    assert_int_equal(conv_geometry_forward(&pads, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 11), assert_int_equal(w.out[2], 5);
    assert_int_equal(w.pad[1], 1), assert_int_equal(w.pad_end[1], 2);
}

/* Output size of a 1-D window over `in` with kernel k, stride 2, pads (begin, end), in ceil_mode. */
static int64_t ceil_mode_outputs(int64_t in, int64_t k, int64_t begin, int64_t end)
{
    conv_attrs a;
    memset(&a, 0, sizeof a);
    a.ceil_mode = true;
    a.n_strides = 1, a.strides[0] = 2;
    a.n_pads = 2, a.pads[0] = begin, a.pads[1] = end;
    conv_window w;
    assert_int_equal(conv_geometry_forward(&a, 1, &in, &k, &w), KILN_OK);
    return w.out[2];
}

static void ceil_mode_never_starts_a_window_in_the_end_padding(void **state)
{
    (void)state;
    /* span 4-3 = 1 rounds up: a second window, starting at 2 */
    assert_int_equal(ceil_mode_outputs(4, 3, 0, 0), 2);
    /* span 5-2 = 3: a third window starting at 4 still overlaps the input */
    assert_int_equal(ceil_mode_outputs(5, 2, 0, 0), 3);
    /* span 4+1-2 = 3: a third window would start at 4, in the end padding: refused */
    assert_int_equal(ceil_mode_outputs(4, 2, 0, 1), 2);
    /* span 4+2-2 = 4 divides exactly: plain floor arithmetic, 3 windows */
    assert_int_equal(ceil_mode_outputs(4, 2, 0, 2), 3);
}

static void transpose_output_shape_and_same(void **state)
{
    (void)state;
    int64_t in[2] = {3, 3}, kernel[2] = {3, 3};
    conv_window w;
    /* strides (3, 2): natural sizes 9 and 7; output_shape (10, 8) extends the end by one */
    conv_attrs a = attrs_2d(CONV_AUTO_PAD_NOTSET, 1, 1);
    a.strides[0] = 3, a.strides[1] = 2;
    a.n_output_shape = 2, a.output_shape[0] = 10, a.output_shape[1] = 8;
    assert_int_equal(conv_geometry_transpose(&a, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 10), assert_int_equal(w.out[2], 8);
    assert_int_equal(w.pad[1], 0), assert_int_equal(w.pad[2], 0);
    /* SAME_UPPER, stride 2: output 6 of a natural 7, the extra row is cut at the end */
    conv_attrs same = attrs_2d(CONV_AUTO_PAD_SAME_UPPER, 2, 1);
    assert_int_equal(conv_geometry_transpose(&same, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 6), assert_int_equal(w.pad[1], 0);
    same.auto_pad = CONV_AUTO_PAD_SAME_LOWER;
    assert_int_equal(conv_geometry_transpose(&same, 2, in, kernel, &w), KILN_OK);
    assert_int_equal(w.out[1], 6), assert_int_equal(w.pad[1], 1);
    /* pads larger than the output */
    conv_attrs pads = attrs_2d(CONV_AUTO_PAD_NOTSET, 1, 1);
    pads.n_pads = 4;
    pads.pads[0] = pads.pads[2] = 3;
    assert_int_equal(conv_geometry_transpose(&pads, 2, in, kernel, &w), KILN_ERR_INVALID_ARGUMENT);
}

static void geometry_rejects_mismatches(void **state)
{
    (void)state;
    int64_t in[3] = {5, 5, 5}, kernel[3] = {3, 3, 3}, big[3] = {9, 9, 9};
    conv_window w;
    conv_attrs a = attrs_2d(CONV_AUTO_PAD_NOTSET, 1, 1);
    /* 2-D attributes for a 3-D input */
    assert_int_equal(conv_geometry_forward(&a, 3, in, kernel, &w), KILN_ERR_INVALID_ARGUMENT);
    /* a window larger than the input */
    assert_int_equal(conv_geometry_forward(&a, 2, in, big, &w), KILN_ERR_INVALID_ARGUMENT);
    /* 4 spatial dims */
    conv_attrs none;
    memset(&none, 0, sizeof none);
    int64_t in4[4] = {2, 2, 2, 2}, k4[4] = {1, 1, 1, 1};
    assert_int_equal(conv_geometry_forward(&none, 4, in4, k4, &w), KILN_ERR_UNSUPPORTED);
    /* kernel_shape disagreeing with the weights */
    a.n_kernel = 2, a.kernel[0] = 3, a.kernel[1] = 2;
    assert_int_equal(conv_geometry_forward(&a, 2, in, kernel, &w), KILN_ERR_INVALID_ARGUMENT);
}

/* ---- operators end to end ---------------------------------------------------------------------------- */

/* A one-node model on a test_run: `op` reads graph input "x" (of the given shape, bound to x) and, for the
 * convolutions, the weights "w" (and the bias "b" when op is "Conv+") that the caller adds as initializers;
 * it writes "y" declared as `dtype` (and the int64 indices "z" when n_outputs is 2). */
static void conv_node(test_run *r, int opset, const char *op, kiln_dtype dtype, int rank, const int64_t *x_dims,
                      const void *x, const pbw *attrs, int n_outputs)
{
    tr_init(r, opset);
    tr_input(r, "x", dtype, rank, x_dims, x);
    const char *const *inputs =
        strstr(op, "Conv") ? (strchr(op, '+') ? LIST("x", "w", "b") : LIST("x", "w")) : LIST("x");
    char op_type[32];
    snprintf(op_type, sizeof op_type, "%.*s", (int)strcspn(op, "+"), op);
    tm_node(&r->tm, op_type, inputs, n_outputs > 1 ? LIST("y", "z") : LIST("y"), attrs);
    tr_output(r, "y", dtype);
    if (n_outputs > 1) tr_output(r, "z", KILN_INT64);
}

/* The AVX-512 depthwise plane against the reference on planes wider than a vector (the random problems
 * above stay small): strides 1 and 2, dilations, asymmetric padding, with and without a clamp. */
static void depthwise_avx512_plane_matches_reference(void **state)
{
    (void)state;
#if defined(KILN_HAVE_X86_KERNELS)
    if (!platform_cpu_features()->avx512f) skip();
    for (int trial = 0; trial < 300; trial++) {
        conv_shape s = {.batch = 1, .in_channels = 1, .out_channels = 1, .groups = 1};
        conv_window *w = &s.win;
        identity_window(w);
        for (int d = 1; d < CONV_SPATIAL; d++) {
            w->in[d] = random_int(1, d == 2 ? 160 : 12);
            w->kernel[d] = random_int(1, 5);
            w->stride[d] = random_int(1, 2);
            w->dilation[d] = random_int(1, 2);
            w->pad[d] = random_int(0, 3);
            int64_t extent = (w->kernel[d] - 1) * w->dilation[d] + 1, pad_end = random_int(0, 3);
            if (w->in[d] + w->pad[d] + pad_end < extent) w->in[d] = extent;
            w->out[d] = (w->in[d] + w->pad[d] + pad_end - extent) / w->stride[d] + 1;
        }
        int64_t in_vol = conv_volume(w->in), out_vol = conv_volume(w->out);
        float *x = random_floats(in_vol, -1, 1), *k = random_floats(conv_volume(w->kernel), -1, 1);
        float *want = random_floats(out_vol, -1, 1), *got = random_floats(out_vol, -1, 1), bias = 0.125f;
        conv_extras extras = {.act = random_int(0, 1) == 1 ? GEMM_ACT_CLAMP : GEMM_ACT_NONE, .lo = -0.5f, .hi = 0.75f};
        conv_f32_reference(&s, x, k, &bias, want);
        for (int64_t i = 0; i < out_vol; i++) want[i] = test_activation(extras.act, extras.lo, extras.hi, want[i]);
        assert_true(conv_depthwise_plane_avx512(w, x, k, bias, &extras, got));
        double diff = max_abs_diff(want, got, out_vol);
        if (diff > 1e-4)
            fail_msg("in %lldx%lld kernel %lldx%lld stride %lld,%lld dilation %lld,%lld pad %lld,%lld: differs by %g",
                     (long long)w->in[1], (long long)w->in[2], (long long)w->kernel[1], (long long)w->kernel[2],
                     (long long)w->stride[1], (long long)w->stride[2], (long long)w->dilation[1], (long long)w->dilation[2],
                     (long long)w->pad[1], (long long)w->pad[2], diff);
        free(x), free(k), free(want), free(got);
    }
#else
    skip();
#endif
}

/* The AVX-512 gather that fills im2col panels against the plain one: rows that start and end in the padding,
 * strides 1 and 2, counts around the vector width, and a row wholly in the padding (NULL). */
static void gather_row_variants_agree(void **state)
{
    (void)state;
#if defined(KILN_HAVE_X86_KERNELS)
    if (!platform_cpu_features()->avx512f) skip();
    float row[100], want[80], got[80];
    for (int i = 0; i < 100; i++) row[i] = (float)i + 1.0f;
    for (int trial = 0; trial < 2000; trial++) {
        int64_t width = random_int(1, 100), stride = random_int(1, 2), count = random_int(0, 40);
        int64_t col = random_int(-5, width + 2);
        const float *src = random_int(0, 9) == 0 ? NULL : row;
        for (int i = 0; i < 80; i++) want[i] = got[i] = -7.0f;
        conv_gather_row(src, col, width, stride, count, want);
        conv_gather_row_avx512(src, col, width, stride, count, got);
        for (int i = 0; i < 80; i++)
            if (want[i] != got[i])
                fail_msg("width %lld stride %lld count %lld col %lld: dst[%d] = %g, expected %g", (long long)width,
                         (long long)stride, (long long)count, (long long)col, i, got[i], want[i]);
    }
#else
    skip();
#endif
}

/* MaxPool without indices (the AVX-512 plane kernel where the CPU has it) against MaxPool with indices (always
 * the portable loop) on random windows, ceil mode, padding and NaN inputs. */
static void max_pool_fast_path_matches_loop(void **state)
{
    (void)state;
    for (int trial = 0; trial < 60; trial++) {
        int64_t x_dims[4] = {1, random_int(1, 3), random_int(1, 20), random_int(1, 90)};
        int64_t k[2] = {random_int(1, 3), random_int(1, 4)}, st[2] = {random_int(1, 2), random_int(1, 2)};
        int64_t pads[4] = {random_int(0, k[0] - 1), random_int(0, k[1] - 1), random_int(0, k[0] - 1), random_int(0, k[1] - 1)};
        if (x_dims[2] + pads[0] + pads[2] < k[0]) x_dims[2] = k[0];
        if (x_dims[3] + pads[1] + pads[3] < k[1]) x_dims[3] = k[1];
        int64_t n = x_dims[1] * x_dims[2] * x_dims[3];
        float *x = random_floats(n, -1, 1);
        if (random_int(0, 3) == 0) x[random_int(0, n - 1)] = NAN;
        pbw attrs = {0};
        tm_attr_ints(&attrs, "kernel_shape", k, 2);
        tm_attr_ints(&attrs, "strides", st, 2);
        tm_attr_ints(&attrs, "pads", pads, 4);
        tm_attr_int(&attrs, "ceil_mode", random_int(0, 1));
        test_run fast, loop;
        conv_node(&fast, 12, "MaxPool", KILN_FLOAT32, 4, x_dims, x, &attrs, 1);
        conv_node(&loop, 12, "MaxPool", KILN_FLOAT32, 4, x_dims, x, &attrs, 2);
        assert_int_equal(tr_run(&fast, 1), KILN_OK);
        assert_int_equal(tr_run(&loop, 1), KILN_OK);
        int64_t out = tensor_numel(&fast.out[0]);
        assert_int_equal(out, tensor_numel(&loop.out[0]));
        const float *a = fast.out[0].data, *b = loop.out[0].data;
        for (int64_t i = 0; i < out; i++)
            if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) fail_msg("output %lld: %g, expected %g", (long long)i, a[i], b[i]);
        tr_free(&fast), tr_free(&loop);
        pbw_free(&attrs);
        free(x);
    }
}

/* Conv followed by Relu, by Clip with Constant-node bounds, by Sigmoid, and by Sigmoid and Mul (SiLU) load
 * as one ai.kiln::FusedConv and compute what the separate operators would. A Conv output that is also a graph
 * output is not fused. */
static void conv_activation_fusion(void **state)
{
    (void)state;
    int64_t x_dims[4] = {1, 3, 20, 21}, w_dims[4] = {40, 3, 3, 3}, b_dims[1] = {40}, scalar[1] = {0};
    float *x = random_floats(3 * 20 * 21, -1, 1), *w = random_floats(40 * 27, -1, 1), *b = random_floats(40, -1, 1);
    float lo = -0.1f, hi = 0.3f;
    for (int variant = 0; variant < 5; variant++) {
        pbw attrs = {0}, lo_attr = {0}, hi_attr = {0};
        tm_attr_ints(&attrs, "pads", (int64_t[]){1, 1, 1, 1}, 4);
        test_run r;
        tr_init(&r, 13);
        tr_input(&r, "x", KILN_FLOAT32, 4, x_dims, x);
        tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, w_dims, w);
        tm_initializer(&r.tm, "b", KILN_FLOAT32, 1, b_dims, b);
        tm_node(&r.tm, "Conv", LIST("x", "w", "b"), LIST("c"), &attrs);
        if (variant == 1) {
            tm_attr_tensor(&lo_attr, "value", KILN_FLOAT32, 0, scalar, &lo);
            tm_attr_tensor(&hi_attr, "value", KILN_FLOAT32, 0, scalar, &hi);
            tm_node(&r.tm, "Constant", NULL, LIST("lo"), &lo_attr);
            tm_node(&r.tm, "Constant", NULL, LIST("hi"), &hi_attr);
            tm_node(&r.tm, "Clip", LIST("c", "lo", "hi"), LIST("y"), NULL);
        } else if (variant == 3) {
            tm_node(&r.tm, "Sigmoid", LIST("c"), LIST("s"), NULL);
            tm_node(&r.tm, "Mul", LIST("s", "c"), LIST("y"), NULL);
        } else {
            tm_node(&r.tm, variant == 4 ? "Sigmoid" : "Relu", LIST("c"), LIST("y"), NULL);
        }
        tr_output(&r, "y", KILN_FLOAT32);
        if (variant == 2) tr_output(&r, "c", KILN_FLOAT32); /* a second reader: no fusion */
        assert_int_equal(tr_run(&r, 1), KILN_OK);
        conv_shape s = {.batch = 1, .in_channels = 3, .out_channels = 40, .groups = 1};
        identity_window(&s.win);
        s.win.in[1] = s.win.out[1] = 20, s.win.in[2] = s.win.out[2] = 21, s.win.kernel[1] = s.win.kernel[2] = 3;
        s.win.pad[1] = s.win.pad[2] = 1;
        int64_t n = 40 * 20 * 21;
        float *want = malloc((size_t)n * sizeof *want);
        conv_f32_reference(&s, x, w, b, want);
        conv_extras act = {.act = variant >= 3 ? (variant == 3 ? GEMM_ACT_SILU : GEMM_ACT_SIGMOID) : GEMM_ACT_CLAMP,
                           .lo = variant == 1 ? lo : 0.0f, .hi = variant == 1 ? hi : INFINITY};
        for (int64_t i = 0; i < n; i++) want[i] = test_activation(act.act, act.lo, act.hi, want[i]);
        assert_true(max_abs_diff(want, r.out[0].data, n) < 1e-4);
        free(want);
        tr_free(&r);
        pbw_free(&attrs), pbw_free(&lo_attr), pbw_free(&hi_attr);
    }
    free(x), free(w), free(b);
}

/* Conv with SAME_LOWER, strides, dilations, groups and bias, two threads, against the reference on the
 * window worked out by hand. */
static void conv_operator_end_to_end(void **state)
{
    (void)state;
    int64_t x_dims[4] = {2, 4, 9, 8}, w_dims[4] = {6, 2, 3, 3}, b_dims[1] = {6};
    float *x = random_floats(2 * 4 * 9 * 8, -1, 1), *w = random_floats(6 * 2 * 9, -1, 1), *b = random_floats(6, -1, 1);
    pbw attrs = {0};
    tm_attr_string(&attrs, "auto_pad", "SAME_LOWER");
    tm_attr_ints(&attrs, "strides", (int64_t[]){2, 3}, 2);
    tm_attr_ints(&attrs, "dilations", (int64_t[]){2, 1}, 2);
    tm_attr_int(&attrs, "group", 2);
    test_run r;
    conv_node(&r, 13, "Conv+", KILN_FLOAT32, 4, x_dims, x, &attrs, 1);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, w_dims, w);
    tm_initializer(&r.tm, "b", KILN_FLOAT32, 1, b_dims, b);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 2), KILN_OK);
    /* H: 9 / 2 -> 5 outputs, extent 5, total 4*2+5-9 = 4, start 2; W: 8 / 3 -> 3, total 2*3+3-8 = 1, start 1 */
    int64_t y_dims[4] = {2, 6, 5, 3};
    assert_shape(&r.out[0], 4, y_dims);
    conv_shape s = {.batch = 2, .in_channels = 4, .out_channels = 6, .groups = 2};
    identity_window(&s.win);
    s.win.in[1] = 9, s.win.in[2] = 8, s.win.out[1] = 5, s.win.out[2] = 3, s.win.kernel[1] = s.win.kernel[2] = 3;
    s.win.stride[1] = 2, s.win.stride[2] = 3, s.win.dilation[1] = 2, s.win.pad[1] = 2, s.win.pad[2] = 1;
    float want[2 * 6 * 5 * 3];
    conv_f32_reference(&s, x, w, b, want);
    assert_true(max_abs_diff(want, r.out[0].data, 2 * 6 * 5 * 3) < 1e-4);
    tr_free(&r);
    pbw_free(&attrs);
    free(x), free(w), free(b);
}

/* A model that must fail to load because of one attribute of `op`. */
static void expect_load_failure(int opset, const char *op, kiln_dtype dtype, const pbw *attrs, kiln_status want)
{
    int64_t x_dims[4] = {1, 2, 5, 5}, w_dims[4] = {2, 2, 3, 3};
    float w[36] = {0};
    test_run r;
    conv_node(&r, opset, op, dtype, 4, x_dims, NULL, attrs, 1);
    if (strstr(op, "Conv")) tm_initializer(&r.tm, "w", dtype, 4, w_dims, w);
    kiln_status st = tr_load(&r);
    if (st != want) fail_msg("%s: load gave %s, expected %s (%s)", op, kiln_status_name(st), kiln_status_name(want),
                             kiln_last_error());
    tr_free(&r);
}

static void bad_attributes_fail_at_load(void **state)
{
    (void)state;
    struct {
        const char *op, *attr;
        int64_t values[5];
        int count; /* -1: a single int */
        kiln_status want;
    } cases[] = {
        {"Conv", "group", {0}, -1, KILN_ERR_MALFORMED},
        {"Conv", "strides", {0, 1}, 2, KILN_ERR_MALFORMED},
        {"Conv", "dilations", {1, -2}, 2, KILN_ERR_MALFORMED},
        {"Conv", "pads", {1, 1, 1}, 3, KILN_ERR_MALFORMED},
        {"Conv", "pads", {-1, 0, 0, 0}, 4, KILN_ERR_MALFORMED},
        {"Conv", "kernel_shape", {1, 1, 1, 1}, 4, KILN_ERR_UNSUPPORTED},
        {"Conv", "strides", {1, 1, 1}, 3, KILN_ERR_MALFORMED}, /* disagrees with... nothing yet: see below */
        {"ConvTranspose", "output_padding", {-1, 0}, 2, KILN_ERR_MALFORMED},
        {"MaxPool", "ceil_mode", {2}, -1, KILN_ERR_MALFORMED},
        {"MaxPool", "storage_order", {3}, -1, KILN_ERR_MALFORMED},
        {"AveragePool", "count_include_pad", {-1}, -1, KILN_ERR_MALFORMED},
        {"LpPool", "p", {0}, -1, KILN_ERR_MALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pbw attrs = {0};
        if (cases[i].count < 0) tm_attr_int(&attrs, cases[i].attr, cases[i].values[0]);
        else tm_attr_ints(&attrs, cases[i].attr, cases[i].values, cases[i].count);
        bool pool = strstr(cases[i].op, "Pool") != NULL;
        /* pools need a kernel_shape; a 2-D one makes the 3-value strides case disagree at load */
        if (pool || i == 6) tm_attr_ints(&attrs, "kernel_shape", (int64_t[]){3, 3}, 2);
        expect_load_failure(13, cases[i].op, KILN_FLOAT32, &attrs, cases[i].want);
        pbw_free(&attrs);
    }
    pbw attrs = {0};
    tm_attr_string(&attrs, "auto_pad", "SAME");
    expect_load_failure(13, "Conv", KILN_FLOAT32, &attrs, KILN_ERR_MALFORMED);
    pbw_free(&attrs);
    /* pools without kernel_shape; unsupported dtypes */
    expect_load_failure(13, "MaxPool", KILN_FLOAT32, NULL, KILN_ERR_MALFORMED);
    expect_load_failure(13, "Conv", KILN_INT8, NULL, KILN_ERR_UNSUPPORTED);
    pbw k = {0};
    tm_attr_ints(&k, "kernel_shape", (int64_t[]){2, 2}, 2);
    expect_load_failure(13, "AveragePool", KILN_INT8, &k, KILN_ERR_UNSUPPORTED);
    pbw_free(&k);
}

/* Conv whose shapes only disagree once the input shape is known: the run (planning) fails cleanly. */
static void expect_plan_failure(const int64_t *x_dims, const int64_t *w_dims, const pbw *attrs)
{
    float w[64] = {0}, x[256] = {0};
    test_run r;
    conv_node(&r, 13, "Conv", KILN_FLOAT32, 4, x_dims, x, attrs, 1);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, w_dims, w);
    kiln_status st = tr_load(&r);
    if (st == KILN_OK) st = tr_run(&r, 1);
    if (st != KILN_ERR_INVALID_ARGUMENT) fail_msg("expected a shape error, got %s (%s)", kiln_status_name(st), kiln_last_error());
    tr_free(&r);
}

static void bad_shapes_fail_cleanly(void **state)
{
    (void)state;
    pbw group = {0}, kernel = {0};
    tm_attr_int(&group, "group", 2);
    tm_attr_ints(&kernel, "kernel_shape", (int64_t[]){2, 2}, 2);
    /* 3 channels in 2 groups */
    expect_plan_failure((int64_t[]){1, 3, 4, 4}, (int64_t[]){2, 1, 2, 2}, &group);
    /* weights for 2 channels per group, input has 4 channels in 1 group */
    expect_plan_failure((int64_t[]){1, 4, 4, 4}, (int64_t[]){2, 2, 2, 2}, NULL);
    /* kernel_shape disagrees with the weights */
    expect_plan_failure((int64_t[]){1, 2, 4, 4}, (int64_t[]){2, 2, 3, 3}, &kernel);
    /* the kernel does not fit */
    expect_plan_failure((int64_t[]){1, 1, 2, 2}, (int64_t[]){1, 1, 3, 3}, NULL);
    pbw_free(&group);
    pbw_free(&kernel);
}

static void empty_batch_gives_empty_output(void **state)
{
    (void)state;
    int64_t x_dims[4] = {0, 2, 5, 5}, w_dims[4] = {3, 2, 3, 3};
    float w[54] = {0}, x[1] = {0};
    test_run r;
    conv_node(&r, 13, "Conv", KILN_FLOAT32, 4, x_dims, x, NULL, 1);
    tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, w_dims, w);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 2), KILN_OK);
    assert_shape(&r.out[0], 4, (int64_t[]){0, 3, 3, 3});
    tr_free(&r);
    pbw attrs = {0};
    tm_attr_ints(&attrs, "kernel_shape", (int64_t[]){2, 2}, 2);
    conv_node(&r, 13, "MaxPool", KILN_FLOAT32, 4, x_dims, x, &attrs, 2);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_shape(&r.out[1], 4, (int64_t[]){0, 2, 4, 4});
    tr_free(&r);
    pbw_free(&attrs);
}

/* MaxPool on int8 with Indices in column-major order (storage_order=1), over a 5x5 plane in 2x2 windows. */
static void max_pool_int8_indices(void **state)
{
    (void)state;
    int64_t x_dims[4] = {1, 2, 5, 5};
    int8_t x[50];
    for (int i = 0; i < 50; i++) x[i] = (int8_t)(i < 25 ? i + 1 : -(i - 24)); /* channel 1 is -1 .. -25 */
    pbw attrs = {0};
    tm_attr_ints(&attrs, "kernel_shape", (int64_t[]){2, 2}, 2);
    tm_attr_ints(&attrs, "strides", (int64_t[]){2, 2}, 2);
    tm_attr_int(&attrs, "storage_order", 1);
    test_run r;
    conv_node(&r, 12, "MaxPool", KILN_INT8, 4, x_dims, x, &attrs, 2);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    kiln_tensor y = r.out[0], z = r.out[1];
    const int8_t want_y[8] = {7, 9, 17, 19, -1, -3, -11, -13};
    /* column-major within the plane (w * 5 + h), plus the plane's offset */
    const int64_t want_z[8] = {6, 16, 8, 18, 25 + 0, 25 + 10, 25 + 2, 25 + 12};
    assert_memory_equal(y.data, want_y, sizeof want_y);
    assert_memory_equal(z.data, want_z, sizeof want_z);
    tr_free(&r);
    pbw_free(&attrs);
}

/* AveragePool over a 1x4 row, kernel 3, stride 2, pads (1, 1), ceil_mode: windows [-1,1], [1,3], [3,5]. */
/* GlobalAveragePool against a plain double sum, on planes shorter and longer than its partial sums. */
static void global_average_pool_sums(void **state)
{
    (void)state;
    const int64_t planes[][2] = {{1, 1}, {3, 5}, {4, 4}, {7, 7}, {13, 17}, {56, 56}};
    for (int t = 0; t < 6; t++) {
        int64_t x_dims[4] = {2, 3, planes[t][0], planes[t][1]}, plane = planes[t][0] * planes[t][1];
        float *x = random_floats(6 * plane, -1, 1);
        test_run r;
        conv_node(&r, 13, "GlobalAveragePool", KILN_FLOAT32, 4, x_dims, x, NULL, 1);
        assert_int_equal(tr_load(&r), KILN_OK);
        assert_int_equal(tr_run(&r, 1), KILN_OK);
        assert_shape(&r.out[0], 4, (int64_t[]){2, 3, 1, 1});
        for (int64_t c = 0; c < 6; c++) {
            double sum = 0;
            for (int64_t i = 0; i < plane; i++) sum += x[c * plane + i];
            assert_float_equal(((const float *)r.out[0].data)[c], (float)(sum / (double)plane), 1e-6);
        }
        tr_free(&r);
        free(x);
    }
}

static void average_pool_divisors(void **state)
{
    (void)state;
    int64_t x_dims[3] = {1, 1, 4};
    float x[4] = {1, 2, 3, 4};
    for (int include = 0; include <= 1; include++) {
        pbw attrs = {0};
        tm_attr_ints(&attrs, "kernel_shape", (int64_t[]){3}, 1);
        tm_attr_ints(&attrs, "strides", (int64_t[]){2}, 1);
        tm_attr_ints(&attrs, "pads", (int64_t[]){1, 1}, 2);
        tm_attr_int(&attrs, "ceil_mode", 1);
        tm_attr_int(&attrs, "count_include_pad", include);
        test_run r;
        conv_node(&r, 13, "AveragePool", KILN_FLOAT32, 3, x_dims, x, &attrs, 1);
        assert_int_equal(tr_load(&r), KILN_OK);
        assert_int_equal(tr_run(&r, 1), KILN_OK);
        assert_shape(&r.out[0], 3, (int64_t[]){1, 1, 3});
        /* the last window hangs one past the padding: that position never counts */
        const float with_pad[3] = {3.0f / 3, 9.0f / 3, 4.0f / 2}, without[3] = {3.0f / 2, 9.0f / 3, 4.0f / 1};
        assert_true(max_abs_diff(include ? with_pad : without, r.out[0].data, 3) < 1e-6);
        tr_free(&r);
        pbw_free(&attrs);
    }
}

static void lp_pools(void **state)
{
    (void)state;
    int64_t x_dims[4] = {1, 1, 2, 2};
    float x[4] = {1, -2, 3, -4};
    pbw attrs = {0};
    tm_attr_ints(&attrs, "kernel_shape", (int64_t[]){2, 1}, 2);
    tm_attr_int(&attrs, "p", 3);
    test_run r;
    conv_node(&r, 18, "LpPool", KILN_FLOAT32, 4, x_dims, x, &attrs, 1);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_shape(&r.out[0], 4, (int64_t[]){1, 1, 1, 2});
    const float want[2] = {(float)cbrt(1.0 + 27.0), (float)cbrt(8.0 + 64.0)};
    assert_true(max_abs_diff(want, r.out[0].data, 2) < 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    /* GlobalLpPool with the default p = 2 over a 3-D volume */
    int64_t v_dims[5] = {1, 1, 1, 2, 2};
    conv_node(&r, 13, "GlobalLpPool", KILN_FLOAT32, 5, v_dims, x, NULL, 1);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_shape(&r.out[0], 5, (int64_t[]){1, 1, 1, 1, 1});
    const float norm = (float)sqrt(30.0);
    assert_true(max_abs_diff(&norm, r.out[0].data, 1) < 1e-5);
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(im2col_matches_reference),
        cmocka_unit_test(pointwise_matches_reference),
        cmocka_unit_test(depthwise_matches_reference),
        cmocka_unit_test(col2im_matches_reference),
        cmocka_unit_test(pointwise_transpose_matches_reference),
        cmocka_unit_test(row_taps_variants_agree),
        cmocka_unit_test(large_task_splits_inside),
        cmocka_unit_test(same_padding_puts_the_odd_pixel_where_asked),
        cmocka_unit_test(valid_and_explicit_pads),
        cmocka_unit_test(ceil_mode_never_starts_a_window_in_the_end_padding),
        cmocka_unit_test(transpose_output_shape_and_same),
        cmocka_unit_test(geometry_rejects_mismatches),
        cmocka_unit_test(depthwise_avx512_plane_matches_reference),
        cmocka_unit_test(depthwise_blocks_match_reference),
        cmocka_unit_test(depthwise_special_values),
        cmocka_unit_test(conv_activation_fusion),
        cmocka_unit_test(max_pool_fast_path_matches_loop),
        cmocka_unit_test(gather_row_variants_agree),
        cmocka_unit_test(conv_operator_end_to_end),
        cmocka_unit_test(bad_attributes_fail_at_load),
        cmocka_unit_test(bad_shapes_fail_cleanly),
        cmocka_unit_test(empty_batch_gives_empty_output),
        cmocka_unit_test(max_pool_int8_indices),
        cmocka_unit_test(average_pool_divisors),
        cmocka_unit_test(global_average_pool_sums),
        cmocka_unit_test(lp_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
