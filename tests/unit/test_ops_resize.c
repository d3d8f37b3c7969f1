/*
 * test_ops_resize.c — Resize and Upsample.
 *
 * kiln resizes through per-axis tap tables and separable passes (see ops/resize.c); the tests here compare
 * it with a naive reference written from the ONNX formulas instead: every output element is the direct sum
 * over the product of all axes' neighbours, with the textbook "floor plus fraction" neighbourhoods rather
 * than kiln's. Random shapes, scales, modes and coordinate transformations run with one and two threads.
 * Features the naive reference leaves out (antialias, exclude_outside, tf_crop_and_resize, axes and
 * aspect-ratio policies) are checked against values produced by the ONNX reference implementation
 * (onnx/reference/ops/op_resize.py), quoted where they are used. Malformed nodes must be refused at load
 * and bad scales/sizes when the run is planned.
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

#include "testlib.h"

/* ---- Resize's parameter inputs ------------------------------------------------------------------------ */

static void add_scales(test_run *r, int n, const float *scales)
{
    tm_initializer(&r->tm, "scales", KILN_FLOAT32, 1, (const int64_t[]){n}, scales);
}

static void add_sizes(test_run *r, int n, const int64_t *sizes)
{
    tm_initializer(&r->tm, "sizes", KILN_INT64, 1, (const int64_t[]){n}, sizes);
}

/* ---- the naive reference ------------------------------------------------------------------------------ */

typedef struct ref_resize {
    const char *mode, *coord, *nearest;
    double cubic_a;
} ref_resize;

/* The ONNX coordinate transformations; the resized length is scale * input length, as the spec's
 * reference implementation takes it. */
static double ref_coordinate(const char *coord, double x, double scale, int64_t in)
{
    double out = scale * (double)in;
    if (!strcmp(coord, "asymmetric")) return x / scale;
    if (!strcmp(coord, "align_corners")) return out == 1 ? 0 : x * (double)(in - 1) / (out - 1);
    if (!strcmp(coord, "pytorch_half_pixel") && out == 1) return -0.5;
    return (x + 0.5) / scale - 0.5;
}

static double ref_cubic(double a, double s)
{
    s = fabs(s);
    if (s <= 1) return (a + 2) * s * s * s - (a + 3) * s * s + 1;
    if (s < 2) return a * s * s * s - 5 * a * s * s + 8 * a * s - 4 * a;
    return 0;
}

static int64_t ref_clamp(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Neighbours of coordinate x along an axis of length `in` and their weights; returns how many. */
static int ref_neighbours(const ref_resize *cfg, double x, int64_t in, int64_t *index, double *weight)
{
    double fl = floor(x), f = x - fl;
    int64_t i0 = (int64_t)fl;
    if (!strcmp(cfg->mode, "nearest")) {
        bool up = !strcmp(cfg->nearest, "ceil") ? f > 0
                  : !strcmp(cfg->nearest, "floor") ? false
                  : !strcmp(cfg->nearest, "round_prefer_ceil") ? f >= 0.5
                                                               : f > 0.5;
        index[0] = ref_clamp(i0 + up, in);
        weight[0] = 1;
        return 1;
    }
    if (!strcmp(cfg->mode, "linear")) {
        index[0] = ref_clamp(i0, in), weight[0] = 1 - f;
        index[1] = ref_clamp(i0 + 1, in), weight[1] = f;
        return 2;
    }
    for (int t = 0; t < 4; t++) {
        index[t] = ref_clamp(i0 - 1 + t, in);
        weight[t] = ref_cubic(cfg->cubic_a, f + 1 - t);
    }
    return 4;
}

/* y[o] = sum over every combination of per-axis neighbours of the product of their weights times x. */
static void ref_resize_nd(const ref_resize *cfg, const float *x, int rank, const int64_t *in, const float *scales,
                          const int64_t *out, double *y)
{
    int64_t total = 1, coord[8];
    for (int d = 0; d < rank; d++) total *= out[d];
    for (int64_t o = 0; o < total; o++) {
        int64_t rest = o, index[8][4], combos = 1;
        double weight[8][4];
        int n[8];
        for (int d = rank - 1; d >= 0; d--) {
            coord[d] = rest % out[d];
            rest /= out[d];
        }
        for (int d = 0; d < rank; d++) {
            double xo = ref_coordinate(cfg->coord, (double)coord[d], scales[d], in[d]);
            n[d] = ref_neighbours(cfg, xo, in[d], index[d], weight[d]);
            combos *= n[d];
        }
        double sum = 0;
        for (int64_t c = 0; c < combos; c++) {
            int64_t pick = c, offset = 0;
            double w = 1;
            for (int d = rank - 1; d >= 0; d--) {
                int t = (int)(pick % n[d]);
                pick /= n[d];
                w *= weight[d][t];
                int64_t stride = 1;
                for (int e = d + 1; e < rank; e++) stride *= in[e];
                offset += index[d][t] * stride;
            }
            sum += w * x[offset];
        }
        y[o] = sum;
    }
}

/* ---- random comparisons ------------------------------------------------------------------------------ */

static const char *const modes[] = {"nearest", "linear", "cubic"};
static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"};
static const char *const nearest_modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
static const float scale_choices[] = {0.5f, 0.6f, 0.75f, 1.0f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f, 1.7f, 0.33f};

static void check_random_resize(int threads)
{
    ref_resize cfg = {modes[random_int(0, 2)], coords[random_int(0, 3)], nearest_modes[random_int(0, 3)],
                      random_int(0, 1) ? -0.75 : -0.5};
    int rank = random_int(1, 4);
    int64_t in[4], out[4];
    float scales[4];
    for (int d = 0; d < rank; d++) {
        in[d] = random_int(1, 7);
        scales[d] = scale_choices[random_int(0, 10)];
        out[d] = (int64_t)floor((double)in[d] * scales[d]);
        if (out[d] == 0) scales[d] = 1.0f, out[d] = in[d];
    }
    int64_t n_in = 1, n_out = 1;
    for (int d = 0; d < rank; d++) n_in *= in[d], n_out *= out[d];
    float *x = random_floats(n_in, -2, 2);
    double *want = malloc((size_t)n_out * sizeof *want);
    ref_resize_nd(&cfg, x, rank, in, scales, out, want);

    test_run r;
    tr_init(&r, 13);
    add_scales(&r, rank, scales);
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", cfg.mode);
    tm_attr_string(&attrs, "coordinate_transformation_mode", cfg.coord);
    tm_attr_string(&attrs, "nearest_mode", cfg.nearest);
    tm_attr_float(&attrs, "cubic_coeff_a", (float)cfg.cubic_a);
    kiln_status st = tr_run_node(&r, "Resize", LIST("", "scales"), 1, &attrs, threads, KILN_FLOAT32, rank, in, x);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_shape(&r.out[0], rank, out);
    assert_close(r.out[0].data, want, n_out, 1e-5);
    tr_free(&r);
    pbw_free(&attrs);
    free(x);
    free(want);
}

static void resize_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 300; trial++) check_random_resize(1);
}

static void resize_parallel_matches_reference(void **state)
{
    (void)state;
    for (int trial = 0; trial < 100; trial++) check_random_resize(2);
}

/* A bigger NCHW resize splits into many parallel tasks; two threads must give identical bits. */
static void resize_threads_agree(void **state)
{
    (void)state;
    int64_t dims[4] = {2, 8, 37, 41};
    float *x = random_floats(2 * 8 * 37 * 41, -2, 2);
    for (int m = 0; m < 3; m++) {
        test_run one, two;
        pbw attrs = {0};
        tm_attr_string(&attrs, "mode", modes[m]);
        tr_init(&one, 13);
        add_scales(&one, 4, (const float[]){1, 1, 2.5f, 0.7f});
        tr_init(&two, 13);
        add_scales(&two, 4, (const float[]){1, 1, 2.5f, 0.7f});
        const char *more[] = {"", "scales", NULL};
        assert_int_equal(tr_run_node(&one, "Resize", more, 1, &attrs, 1, KILN_FLOAT32, 4, dims, x), KILN_OK);
        assert_int_equal(tr_run_node(&two, "Resize", more, 1, &attrs, 2, KILN_FLOAT32, 4, dims, x), KILN_OK);
        assert_shape(&two.out[0], 4, (const int64_t[]){2, 8, 92, 28});
        assert_memory_equal(one.out[0].data, two.out[0].data, (size_t)2 * 8 * 92 * 28 * sizeof(float));
        tr_free(&one);
        tr_free(&two);
        pbw_free(&attrs);
    }
    free(x);
}

/* ---- known values ------------------------------------------------------------------------------------- */

/* Resizes a float32 x with the given attributes and scales or sizes and checks y. */
static void check_values(int opset, const pbw *attrs, const float *scales, const int64_t *sizes, int n_params,
                         int rank, const int64_t *in, const float *x, const int64_t *out, const double *want)
{
    test_run r;
    tr_init(&r, opset);
    if (scales) add_scales(&r, n_params, scales);
    if (sizes) add_sizes(&r, n_params, sizes);
    const char *more[] = {"", scales ? "scales" : "", sizes ? "sizes" : NULL, NULL};
    kiln_status st = tr_run_node(&r, "Resize", more, 1, attrs, 1, KILN_FLOAT32, rank, in, x);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_shape(&r.out[0], rank, out);
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= out[d];
    assert_close(r.out[0].data, want, n, 1e-6);
    tr_free(&r);
}

static const float one_to_16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* The ONNX documentation's bilinear example. */
static void linear_upsample_example(void **state)
{
    (void)state;
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "linear");
    const double want[16] = {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4};
    check_values(13, &attrs, (const float[]){1, 1, 2, 2}, NULL, 4, 4, (const int64_t[]){1, 1, 2, 2},
                 (const float[]){1, 2, 3, 4}, (const int64_t[]){1, 1, 4, 4}, want);
    pbw_free(&attrs);
}

/* antialias (opset 18) widens the kernel when shrinking; the ONNX reference gives these for 1..16 at 0.6. */
static void antialias_downsample(void **state)
{
    (void)state;
    const int64_t in[4] = {1, 1, 4, 4}, out[4] = {1, 1, 2, 2};
    const float scales[4] = {1, 1, 0.6f, 0.6f};
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "linear");
    tm_attr_int(&attrs, "antialias", 1);
    check_values(18, &attrs, scales, NULL, 4, 4, in, one_to_16, out, (const double[]){2.875, 4.5, 9.375, 11});
    pbw_free(&attrs);
    tm_attr_string(&attrs, "mode", "cubic");
    tm_attr_int(&attrs, "antialias", 1);
    check_values(18, &attrs, scales, NULL, 4, 4, in, one_to_16, out,
                 (const double[]){2.5180721, 4.2858863, 9.589329, 11.357142});
    pbw_free(&attrs);
}

/* exclude_outside renormalises the cubic weights that stay inside (ONNX reference values). */
static void cubic_exclude_outside(void **state)
{
    (void)state;
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "cubic");
    tm_attr_float(&attrs, "cubic_coeff_a", -0.5f);
    tm_attr_int(&attrs, "exclude_outside", 1);
    const double want[9] = {1.3681267, 2.6695013, 4.0133367, 6.573625, 7.875,
                            9.218835,  11.948966, 13.250341, 14.594176};
    check_values(13, &attrs, (const float[]){1, 1, 0.8f, 0.8f}, NULL, 4, 4, (const int64_t[]){1, 1, 4, 4}, one_to_16,
                 (const int64_t[]){1, 1, 3, 3}, want);
    pbw_free(&attrs);
}

/* tf_crop_and_resize samples the roi and fills outside it with extrapolation_value (ONNX's own test). */
static void tf_crop_and_resize_extrapolates(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_initializer(&r.tm, "roi", KILN_FLOAT32, 1, (const int64_t[]){8},
                   (const float[]){0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f});
    add_sizes(&r, 4, (const int64_t[]){1, 1, 3, 3});
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "linear");
    tm_attr_string(&attrs, "coordinate_transformation_mode", "tf_crop_and_resize");
    tm_attr_float(&attrs, "extrapolation_value", 10);
    assert_int_equal(tr_run_node(&r, "Resize", LIST("roi", "", "sizes"), 1, &attrs, 1, KILN_FLOAT32, 4,
                                 (const int64_t[]){1, 1, 4, 4}, one_to_16),
                     KILN_OK);
    assert_close(r.out[0].data, (const double[]){7.6000004, 10, 10, 12.400001, 10, 10, 10, 10, 10}, 9, 1e-6);
    tr_free(&r);
    pbw_free(&attrs);
}

/* opset 18: sizes for a subset of axes (negative ones too), with one scale kept for all of them. */
static void axes_and_aspect_ratio(void **state)
{
    (void)state;
    const int64_t in[3] = {1, 2, 3};
    const float x[6] = {1, 2, 3, 4, 5, 6};
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1, 2}, 2);
    tm_attr_string(&attrs, "keep_aspect_ratio_policy", "not_larger");
    check_values(18, &attrs, NULL, (const int64_t[]){4, 5}, 2, 3, in, x, (const int64_t[]){1, 3, 5},
                 (const double[]){1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6});
    pbw_free(&attrs);
    tm_attr_ints(&attrs, "axes", (const int64_t[]){-1, -2}, 2);
    tm_attr_string(&attrs, "keep_aspect_ratio_policy", "not_smaller");
    double want[40];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 8; j++) want[i * 8 + j] = (i < 3 ? 1 : 4) + (j < 3 ? 0 : j < 5 ? 1 : 2);
    check_values(18, &attrs, NULL, (const int64_t[]){4, 5}, 2, 3, in, x, (const int64_t[]){1, 5, 8}, want);
    pbw_free(&attrs);
}

/* Channels-last nearest resize: the trailing channel axis is copied as a block. */
static void nearest_channels_last(void **state)
{
    (void)state;
    const int64_t in[4] = {1, 2, 3, 4};
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    pbw attrs = {0};
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1, 2}, 2);
    tm_attr_string(&attrs, "coordinate_transformation_mode", "asymmetric");
    tm_attr_string(&attrs, "nearest_mode", "floor");
    double want[4 * 6 * 4];
    for (int h = 0; h < 4; h++)
        for (int w = 0; w < 6; w++)
            for (int c = 0; c < 4; c++) want[(h * 6 + w) * 4 + c] = ((h / 2) * 3 + w / 2) * 4 + c;
    check_values(18, &attrs, (const float[]){2, 2}, NULL, 2, 4, in, x, (const int64_t[]){1, 4, 6, 4}, want);
    pbw_free(&attrs);
}

/* Nearest is a copy, so it takes any dtype; tf_crop_and_resize fills with the extrapolation value cast. */
static void nearest_integers(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_initializer(&r.tm, "roi", KILN_FLOAT32, 1, (const int64_t[]){2}, (const float[]){-0.5f, 1.0f});
    add_sizes(&r, 1, (const int64_t[]){4});
    pbw attrs = {0};
    tm_attr_string(&attrs, "coordinate_transformation_mode", "tf_crop_and_resize");
    tm_attr_float(&attrs, "extrapolation_value", 300);
    const uint8_t x[3] = {10, 20, 30};
    assert_int_equal(
        tr_run_node(&r, "Resize", LIST("roi", "", "sizes"), 1, &attrs, 1, KILN_UINT8, 1, (const int64_t[]){3}, x),
        KILN_OK);
    /* x = -1, 0, 1, 2 (start -1, step 1): outside, then 10, 20, 30; 300 saturates to 255 */
    assert_memory_equal(r.out[0].data, ((const uint8_t[]){255, 10, 20, 30}), 4);
    tr_free(&r);
    pbw_free(&attrs);
}

/* Upsample-7 (attribute scales), Upsample-9 (input scales), Resize-10 (may shrink: ceil, as before
 * nearest_mode existed). */
static void upsample_and_resize10(void **state)
{
    (void)state;
    const int64_t in[2] = {2, 2};
    const float x[4] = {1, 2, 3, 4};
    const double first_row[6] = {1, 1, 1, 2, 2, 2};
    test_run r;
    pbw attrs = {0};
    tm_attr_floats(&attrs, "scales", (const float[]){2, 3}, 2);
    tr_init(&r, 7);
    assert_int_equal(tr_run_node(&r, "Upsample", NULL, 1, &attrs, 1, KILN_FLOAT32, 2, in, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){4, 6});
    assert_close(r.out[0].data, first_row, 6, 0);
    tr_free(&r);
    pbw_free(&attrs);

    tr_init(&r, 9);
    add_scales(&r, 2, (const float[]){2, 3});
    assert_int_equal(tr_run_node(&r, "Upsample", LIST("scales"), 1, NULL, 1, KILN_FLOAT32, 2, in, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){4, 6});
    tr_free(&r);

    const float x5[5] = {1, 2, 3, 4, 5};
    tr_init(&r, 10);
    add_scales(&r, 1, (const float[]){0.6f});
    assert_int_equal(tr_run_node(&r, "Resize", LIST("scales"), 1, NULL, 1, KILN_FLOAT32, 1, (const int64_t[]){5}, x5),
                     KILN_OK);
    /* x/0.6 = 0, 1.67, 3.33 -> ceil 0, 2, 4 */
    assert_close(r.out[0].data, (const double[]){1, 3, 5}, 3, 0);
    tr_free(&r);
}

/* ---- edge cases and refusals ----------------------------------------------------------------------------- */

static void empty_and_unchanged(void **state)
{
    (void)state;
    const int64_t in[2] = {2, 3};
    const float x[6] = {1, 2, 3, 4, 5, 6};
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "linear");
    check_values(13, &attrs, NULL, (const int64_t[]){0, 3}, 2, 2, in, x, (const int64_t[]){0, 3}, NULL);
    check_values(13, &attrs, (const float[]){1, 1}, NULL, 2, 2, in, x, in, (const double[]){1, 2, 3, 4, 5, 6});
    pbw_free(&attrs);

    test_run r;
    tr_init(&r, 13);
    add_sizes(&r, 2, (const int64_t[]){4, 4});
    assert_int_equal(
        tr_run_node(&r, "Resize", LIST("", "", "sizes"), 1, NULL, 1, KILN_FLOAT32, 2, (const int64_t[]){0, 3}, x),
        KILN_ERR_INVALID_ARGUMENT);
    tr_free(&r);
}

static kiln_status try_resize(int opset, const char *op, const pbw *attrs, kiln_dtype dtype, const float *scales,
                              int n_scales, const int64_t *sizes)
{
    test_run r;
    tr_init(&r, opset);
    if (scales) add_scales(&r, n_scales, scales);
    if (sizes) add_sizes(&r, 2, sizes);
    const char *more[] = {"", scales ? "scales" : "", sizes ? "sizes" : NULL, NULL};
    if (opset < 11) more[0] = "scales", more[1] = NULL;
    double x[4] = {1, 2, 3, 4};
    kiln_status st = tr_run_node(&r, op, more, 1, attrs, 1, dtype, 2, (const int64_t[]){2, 2}, x);
    tr_free(&r);
    return st;
}

static void refuses_bad_nodes(void **state)
{
    (void)state;
    const float two[2] = {2, 2};
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "bilinear");
    assert_refused(try_resize(13, "Resize", &attrs, KILN_FLOAT32, two, 2, NULL), TEST_ANY_ERROR, "bilinear");
    pbw_free(&attrs);

    tm_attr_string(&attrs, "mode", "cubic");
    assert_refused(try_resize(9, "Upsample", &attrs, KILN_FLOAT32, two, 2, NULL), TEST_ANY_ERROR, "cubic");
    pbw_free(&attrs);

    tm_attr_string(&attrs, "mode", "linear");
    assert_int_equal(try_resize(13, "Resize", &attrs, KILN_INT64, two, 2, NULL), KILN_ERR_UNSUPPORTED);
    pbw_free(&attrs);

    tm_attr_string(&attrs, "coordinate_transformation_mode", "tf_crop_and_resize");
    assert_refused(try_resize(13, "Resize", &attrs, KILN_FLOAT32, two, 2, NULL), TEST_ANY_ERROR, "roi");
    pbw_free(&attrs);

    assert_refused(try_resize(13, "Resize", NULL, KILN_FLOAT32, two, 2, (const int64_t[]){4, 4}), TEST_ANY_ERROR,
                   "only one");
    assert_refused(try_resize(13, "Resize", NULL, KILN_FLOAT32, two, 1, NULL), TEST_ANY_ERROR, "expected 2");
    assert_refused(try_resize(13, "Resize", NULL, KILN_FLOAT32, (const float[]){2, -1}, 2, NULL), TEST_ANY_ERROR,
                   "positive");
    assert_refused(try_resize(13, "Resize", NULL, KILN_FLOAT32, (const float[]){2, NAN}, 2, NULL), TEST_ANY_ERROR,
                   "positive");
    assert_refused(try_resize(13, "Resize", NULL, KILN_FLOAT32, NULL, 0, (const int64_t[]){4, -4}), TEST_ANY_ERROR,
                   "invalid");

    tm_attr_ints(&attrs, "axes", (const int64_t[]){0, 2}, 2);
    assert_refused(try_resize(18, "Resize", &attrs, KILN_FLOAT32, two, 2, NULL), TEST_ANY_ERROR, "out of range");
    pbw_free(&attrs);
    tm_attr_ints(&attrs, "axes", (const int64_t[]){1, -1}, 2);
    assert_refused(try_resize(18, "Resize", &attrs, KILN_FLOAT32, two, 2, NULL), TEST_ANY_ERROR, "repeated");
    pbw_free(&attrs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resize_matches_reference),
        cmocka_unit_test(resize_parallel_matches_reference),
        cmocka_unit_test(resize_threads_agree),
        cmocka_unit_test(linear_upsample_example),
        cmocka_unit_test(antialias_downsample),
        cmocka_unit_test(cubic_exclude_outside),
        cmocka_unit_test(tf_crop_and_resize_extrapolates),
        cmocka_unit_test(axes_and_aspect_ratio),
        cmocka_unit_test(nearest_channels_last),
        cmocka_unit_test(nearest_integers),
        cmocka_unit_test(upsample_and_resize10),
        cmocka_unit_test(empty_and_unchanged),
        cmocka_unit_test(refuses_bad_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
