/*
 * test_conv_blocked.c — the channel-blocked layout (kernels/conv.h) between pointwise and depthwise
 * convolutions, and graph/layout.c, which chooses it.
 *
 * Kernels: every convolution that takes a blocked input or output (pointwise with groups 1, depthwise) must
 * equal conv_f32_reference on planes, with the blocks laid out and read back here, by loops of this file's
 * own: on the fast paths (AVX-512's columns kernel and depthwise blocks, where the CPU has them) and on the
 * fallbacks (filters not packed; a depthwise stride the blocks kernel does not take), on one and on three
 * threads, with and without bias and activation. gemm_f32_fused with blocked B and C on every kernel set
 * against the plain product.
 *
 * Graph: a MobileNet-style block (pointwise expansion, depthwise, pointwise projection) gives the same
 * outputs as the reference convolutions computed here, whether the pass blocked its values (a small plane)
 * or not (a large plane, a value that is also a graph output); a model file that sets the layout attributes
 * itself is refused.
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

#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kiln.h"
#include "runtime/pool.h"
#include "testlib.h"

enum { BLOCK = 16 };

/* planes (N, C, V) -> blocks (N, C/16, V, 16), and back */
static float *to_blocks(const float *planes, int64_t n, int64_t c, int64_t v)
{
    float *b = malloc((size_t)(n * c * v) * sizeof *b);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < v; p++)
                b[((i * (c / BLOCK) + ch / BLOCK) * v + p) * BLOCK + ch % BLOCK] = planes[(i * c + ch) * v + p];
    return b;
}

static float *from_blocks(const float *b, int64_t n, int64_t c, int64_t v)
{
    float *planes = malloc((size_t)(n * c * v) * sizeof *planes);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t p = 0; p < v; p++)
                planes[(i * c + ch) * v + p] = b[((i * (c / BLOCK) + ch / BLOCK) * v + p) * BLOCK + ch % BLOCK];
    return planes;
}

static conv_window window_2d(int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad, int64_t dilation)
{
    conv_window win = {.in = {1, h, w}, .kernel = {1, k, k}, .stride = {1, stride, stride},
                       .dilation = {1, dilation, dilation}, .pad = {0, pad, pad}, .pad_end = {0, pad, pad}};
    for (int d = 1; d < CONV_SPATIAL; d++)
        win.out[d] = (win.in[d] + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
    win.out[0] = 1;
    return win;
}

/* conv_f32 on s (with its blocked flags) against the reference on planes. */
static void check_blocked(const conv_shape *s, bool pack, gemm_activation act, int planned,
                          const parallel_runner *runner)
{
    bool depthwise = s->groups > 1;
    int64_t in_vol = conv_volume(s->win.in), out_vol = conv_volume(s->win.out), kvol = conv_volume(s->win.kernel);
    int64_t nx = s->batch * s->in_channels * in_vol, ny = s->batch * s->out_channels * out_vol;
    int64_t nw = s->out_channels * (s->in_channels / s->groups) * kvol;
    float *x = random_floats(nx, -1, 1), *w = random_floats(nw, -1, 1), *bias = random_floats(s->out_channels, -1, 1);
    float *want = malloc((size_t)ny * sizeof *want), *got = random_floats(ny, -1, 1);
    bool with_bias = random_int(0, 1) == 1;
    conv_extras extras = {.act = act, .lo = -0.25f, .hi = 0.5f};
    conv_packed_filters packed;
    void *packed_memory = NULL;
    if (pack && !depthwise) {
        packed_memory = malloc(conv_f32_pack_filters_bytes(s->out_channels, s->in_channels * kvol, 1) + 1);
        conv_f32_pack_filters(s->out_channels, s->in_channels * kvol, 1, w, packed_memory, &packed);
        extras.packed = &packed;
    }
    conv_shape planes = *s;
    planes.x_blocked = planes.y_blocked = false;
    conv_f32_reference(&planes, x, w, with_bias ? bias : NULL, want);
    for (int64_t i = 0; i < ny; i++) want[i] = test_activation(act, extras.lo, extras.hi, want[i]);

    assert_true(conv_blocked_layout_fits(s));
    float *x_in = s->x_blocked ? to_blocks(x, s->batch, s->in_channels, in_vol) : x;
    conv_algo algo = conv_f32_choose(s, extras.packed);
    size_t scratch_bytes = conv_f32_scratch_bytes(s, algo, planned);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64 + 64);
    conv_f32(s, algo, x_in, w, with_bias ? bias : NULL, &extras, got, scratch, scratch_bytes, runner);
    float *y = s->y_blocked ? from_blocks(got, s->batch, s->out_channels, out_vol) : got;
    double diff = max_abs_diff(want, y, ny);
    if (diff > 1e-4)
        fail_msg("%s N=%lld C=%lld M=%lld %lldx%lld k%lld s%lld, x_blocked %d y_blocked %d packed %d act %d: differs by %g",
                 depthwise ? "depthwise" : "pointwise", (long long)s->batch, (long long)s->in_channels,
                 (long long)s->out_channels, (long long)s->win.in[1], (long long)s->win.in[2],
                 (long long)s->win.kernel[1], (long long)s->win.stride[1], s->x_blocked, s->y_blocked, pack, act,
                 diff);
    if (y != got) free(y);
    if (x_in != x) free(x_in);
    free(scratch), free(packed_memory);
    free(x), free(w), free(bias), free(want), free(got);
}

/* Each blocked combination of one shape: serially, and on three threads with scratch for one and for three. */
static void check_combinations(conv_shape s, bool pack, const parallel_runner *runner)
{
    for (int flags = 1; flags < 4; flags++) {
        s.x_blocked = flags & 1, s.y_blocked = flags >> 1;
        gemm_activation act = (gemm_activation)random_int(0, TEST_ACTIVATIONS - 1);
        check_blocked(&s, pack, act, 1, NULL);
        check_blocked(&s, pack, act, 1, runner);
        check_blocked(&s, pack, act, 3, runner);
    }
}

static void pointwise_blocked_matches_reference(void **state)
{
    (void)state;
    random_seed(31);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    static const int64_t sizes[][2] = {{1, 1}, {3, 5}, {7, 7}, {14, 14}, {13, 9}, {2, 40}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        conv_shape s = {.batch = random_int(1, 2), .in_channels = BLOCK * random_int(1, 4),
                        .out_channels = BLOCK * random_int(1, 7), .groups = 1};
        s.win = window_2d(sizes[k][0], sizes[k][1], 1, 1, 0, 1);
        check_combinations(s, true, &runner);
        check_combinations(s, false, &runner); /* GEMM panels and rows rearranged afterwards */
    }
    pool_free(pool);
}

static void depthwise_blocked_matches_reference(void **state)
{
    (void)state;
    random_seed(32);
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    /* h, w, kernel, stride, pad, dilation: MobileNet's and EfficientNet's windows, a dilated one, and stride 3,
     * which the blocks kernel leaves to planes */
    static const int64_t windows[][6] = {{14, 14, 3, 1, 1, 1}, {7, 9, 3, 2, 1, 1}, {12, 12, 5, 2, 2, 1},
                                         {9, 11, 5, 1, 2, 1},  {8, 8, 3, 1, 2, 2}, {10, 10, 3, 3, 1, 1}};
    for (size_t k = 0; k < sizeof windows / sizeof windows[0]; k++) {
        const int64_t *v = windows[k];
        int64_t channels = BLOCK * random_int(1, 3);
        conv_shape s = {.batch = random_int(1, 2), .in_channels = channels, .out_channels = channels, .groups = channels};
        s.win = window_2d(v[0], v[1], v[2], v[3], v[4], v[5]);
        check_combinations(s, false, &runner);
    }
    pool_free(pool);
}

/* The blocked layout is refused where it does not fit: channels not whole blocks, a grouped or 3x3 dense
 * convolution. */
static void blocked_layout_fits_only_where_it_can(void **state)
{
    (void)state;
    conv_shape s = {.batch = 1, .in_channels = 24, .out_channels = 32, .groups = 1, .x_blocked = true};
    s.win = window_2d(5, 5, 1, 1, 0, 1);
    assert_false(conv_blocked_layout_fits(&s));
    s.x_blocked = false, s.y_blocked = true;
    assert_true(conv_blocked_layout_fits(&s));
    s.win = window_2d(5, 5, 3, 1, 1, 1);
    assert_false(conv_blocked_layout_fits(&s));
    s.in_channels = 32, s.groups = 2, s.win = window_2d(5, 5, 1, 1, 0, 1);
    assert_false(conv_blocked_layout_fits(&s));
}

/* gemm_f32_fused with a blocked B and/or C (packed A), on every kernel set, against the plain product. */
static void gemm_blocked_operands(void **state)
{
    (void)state;
    random_seed(33);
    for (int v = GEMM_VARIANT_PORTABLE; v < GEMM_VARIANT_COUNT; v++) {
        if (!gemm_variant_available((gemm_variant)v)) continue;
        for (int trial = 0; trial < 12; trial++) {
            int64_t M = BLOCK * random_int(1, 5), N = random_int(1, 60), K = BLOCK * random_int(1, 4);
            bool b_blocked = trial % 3 != 1, c_blocked = trial % 3 != 0;
            float *A = random_floats(M * K, -1, 1), *B = random_floats(K * N, -1, 1);
            float *want = malloc((size_t)(M * N) * sizeof *want), *C = random_floats(M * N, -1, 1);
            gemm_args plain = {.M = M, .N = N, .K = K, .A = A, .lda = K, .B = B, .ldb = N, .C = want, .ldc = N,
                               .alpha = 1.0f, .beta = 0.0f};
            gemm_f32_reference(&plain);
            void *packed_memory = malloc(gemm_f32_pack_a_bytes((gemm_variant)v, M, K));
            gemm_packed_a packed;
            gemm_f32_pack_a((gemm_variant)v, M, K, false, A, K, packed_memory, &packed);
            float *b_in = b_blocked ? to_blocks(B, 1, K, N) : B;
            gemm_args g = plain;
            g.B = b_in, g.ldb = b_blocked ? BLOCK * N : N, g.C = C, g.ldc = c_blocked ? BLOCK * N : N;
            gemm_fused fused = {.a = &packed, .b_blocked = b_blocked, .c_blocked = c_blocked};
            size_t bytes = gemm_f32_fused_blocked_scratch_bytes(M, N, K, 1);
            void *scratch = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
            gemm_f32_fused(&g, &fused, scratch, NULL);
            float *got = c_blocked ? from_blocks(C, 1, M, N) : C;
            double diff = max_abs_diff(want, got, M * N);
            if (diff > 1e-4)
                fail_msg("%s M=%lld N=%lld K=%lld b_blocked %d c_blocked %d: differs by %g",
                         gemm_variant_name((gemm_variant)v), (long long)M, (long long)N, (long long)K, b_blocked,
                         c_blocked, diff);
            if (got != C) free(got);
            if (b_in != B) free(b_in);
            free(scratch), free(packed_memory), free(A), free(B), free(want), free(C);
        }
    }
}

/* ---- the pass ------------------------------------------------------------------------------------------ */

enum { IN = 16, WIDE = 32, OUT = 16 };

typedef struct block_weights {
    float *expand, *expand_bias, *depthwise, *depthwise_bias, *project;
} block_weights;

/* x [1, 16, side, side] -> Conv 1x1 (32) -> Clip [0, 6] -> Conv 3x3 depthwise (stride 1, pad 1) -> Relu ->
 * Conv 1x1 (16) -> y, and optionally the depthwise output as a second graph output. */
static void run_block(test_run *r, int64_t side, const block_weights *b, const float *x, bool show_depthwise)
{
    tr_init(r, 13);
    int64_t xd[4] = {1, IN, side, side}, ed[4] = {WIDE, IN, 1, 1}, dd[4] = {WIDE, 1, 3, 3}, pd[4] = {OUT, WIDE, 1, 1};
    int64_t wide = WIDE;
    float lo = 0.0f, hi = 6.0f;
    tr_input(r, "x", KILN_FLOAT32, 4, xd, x);
    tr_output(r, "y", KILN_FLOAT32);
    if (show_depthwise) tr_output(r, "d", KILN_FLOAT32);
    tm_initializer(&r->tm, "we", KILN_FLOAT32, 4, ed, b->expand);
    tm_initializer(&r->tm, "be", KILN_FLOAT32, 1, &wide, b->expand_bias);
    tm_initializer(&r->tm, "wd", KILN_FLOAT32, 4, dd, b->depthwise);
    tm_initializer(&r->tm, "bd", KILN_FLOAT32, 1, &wide, b->depthwise_bias);
    tm_initializer(&r->tm, "wp", KILN_FLOAT32, 4, pd, b->project);
    tm_initializer(&r->tm, "lo", KILN_FLOAT32, 0, NULL, &lo);
    tm_initializer(&r->tm, "hi", KILN_FLOAT32, 0, NULL, &hi);
    tm_node(&r->tm, "Conv", LIST("x", "we", "be"), LIST("e"), NULL);
    tm_node(&r->tm, "Clip", LIST("e", "lo", "hi"), LIST("ec"), NULL);
    pbw attrs = {0};
    tm_attr_int(&attrs, "group", WIDE);
    tm_attr_ints(&attrs, "pads", (const int64_t[]){1, 1, 1, 1}, 4);
    tm_node(&r->tm, "Conv", LIST("ec", "wd", "bd"), LIST("d"), &attrs);
    pbw_free(&attrs);
    tm_node(&r->tm, "Relu", LIST("d"), LIST("dr"), NULL);
    tm_node(&r->tm, "Conv", LIST("dr", "wp"), LIST("y"), NULL);
    assert_int_equal(tr_run(r, 2), KILN_OK);
}

/* The block computed here with conv_f32_reference. */
static float *reference_block(int64_t side, const block_weights *b, const float *x)
{
    int64_t plane = side * side;
    float *e = malloc((size_t)(WIDE * plane) * sizeof *e), *d = malloc((size_t)(WIDE * plane) * sizeof *d);
    float *y = malloc((size_t)(OUT * plane) * sizeof *y);
    conv_shape s = {.batch = 1, .in_channels = IN, .out_channels = WIDE, .groups = 1};
    s.win = window_2d(side, side, 1, 1, 0, 1);
    conv_f32_reference(&s, x, b->expand, b->expand_bias, e);
    for (int64_t i = 0; i < WIDE * plane; i++) e[i] = fminf(fmaxf(e[i], 0.0f), 6.0f);
    s = (conv_shape){.batch = 1, .in_channels = WIDE, .out_channels = WIDE, .groups = WIDE};
    s.win = window_2d(side, side, 3, 1, 1, 1);
    conv_f32_reference(&s, e, b->depthwise, b->depthwise_bias, d);
    for (int64_t i = 0; i < WIDE * plane; i++) d[i] = fmaxf(d[i], 0.0f);
    s = (conv_shape){.batch = 1, .in_channels = WIDE, .out_channels = OUT, .groups = 1};
    s.win = window_2d(side, side, 1, 1, 0, 1);
    conv_f32_reference(&s, d, b->project, NULL, y);
    free(e), free(d);
    return y;
}

static void blocked_block_matches_reference(void **state)
{
    (void)state;
    random_seed(34);
    block_weights b = {random_floats(WIDE * IN, -0.5, 0.5), random_floats(WIDE, -0.5, 0.5),
                       random_floats(WIDE * 9, -0.5, 0.5), random_floats(WIDE, -0.5, 0.5),
                       random_floats(OUT * WIDE, -0.5, 0.5)};
    /* 7 x 7 travels blocked where the CPU pays for it; 64 x 64 is too large a plane; a depthwise output that
     * is also a graph output stays planes */
    static const int64_t sides[] = {7, 13, 64};
    for (size_t k = 0; k < sizeof sides / sizeof sides[0]; k++)
        for (int show = 0; show < 2; show++) {
            int64_t side = sides[k];
            float *x = random_floats(IN * side * side, -1, 1), *want = reference_block(side, &b, x);
            test_run r;
            run_block(&r, side, &b, x, show);
            assert_true(tr_model_has_op(r.model, "FusedConv"));
            double diff = max_abs_diff(want, r.out[0].data, OUT * side * side);
            if (diff > 1e-4) fail_msg("side %lld, depthwise shown %d: differs by %g", (long long)side, show, diff);
            tr_free(&r);
            free(x), free(want);
        }
    free(b.expand), free(b.expand_bias), free(b.depthwise), free(b.depthwise_bias), free(b.project);
}

/* No node of a model file, kiln's FusedConv or ONNX's Conv, may say how kiln lays out its memory. */
static void file_cannot_set_layout(void **state)
{
    (void)state;
    float w[BLOCK * BLOCK] = {0};
    for (int onnx = 0; onnx < 2; onnx++) {
        test_run r;
        tr_init(&r, 13);
        int64_t xd[4] = {1, BLOCK, 2, 2}, wd[4] = {BLOCK, BLOCK, 1, 1};
        tr_input(&r, "x", KILN_FLOAT32, 4, xd, NULL);
        tr_output(&r, "y", KILN_FLOAT32);
        tm_initializer(&r.tm, "w", KILN_FLOAT32, 4, wd, w);
        pbw attrs = {0};
        tm_attr_int(&attrs, onnx ? "blocked_output" : "blocked_input", 1);
        if (!onnx) pbw_string_field(&attrs, 7, "ai.kiln"); /* NodeProto.domain */
        tm_node(&r.tm, onnx ? "Conv" : "FusedConv", LIST("x", "w"), LIST("y"), &attrs);
        pbw_free(&attrs);
        tm_finish(&r.tm);
        r.finished = true;
        pbw opset = {0};
        pbw_string_field(&opset, 1, "ai.kiln");
        pbw_varint_field(&opset, 2, 1);
        pbw_message_field(&r.tm.model, 8, &opset);
        pbw_free(&opset);
        assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "kiln's own");
        tr_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pointwise_blocked_matches_reference),
        cmocka_unit_test(depthwise_blocked_matches_reference),
        cmocka_unit_test(blocked_layout_fits_only_where_it_can),
        cmocka_unit_test(gemm_blocked_operands),
        cmocka_unit_test(blocked_block_matches_reference),
        cmocka_unit_test(file_cannot_set_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
