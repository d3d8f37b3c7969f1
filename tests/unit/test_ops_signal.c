/*
 * test_ops_signal.c — the signal-processing and detection operators: DFT/STFT and their FFT kernel, the
 * window functions and MelWeightMatrix, NonMaxSuppression, GridSample and RoiAlign.
 *
 * The FFT (radix-2 and Bluestein) is compared with the O(n^2) definition for every length up to 70 and a few
 * larger ones, primes and 1 included; the operators are then checked on cases whose answer is known by hand
 * or by that reference, with an emphasis on edges: no boxes at all, everything suppressed, grid points far
 * outside the image or NaN, and malformed attributes refused at load.
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

#include "kernels/fft.h"
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------------------------------------- */

static test_operand scalar_i64(const char *name, const int64_t *value)
{
    return (test_operand){.name = name, .dtype = KILN_INT64, .rank = 0, .data = value, .constant = true};
}

static test_operand scalar_f32(const char *name, const float *value)
{
    return (test_operand){.name = name, .dtype = KILN_FLOAT32, .rank = 0, .data = value, .constant = true};
}

/* Builds and runs one node; returns the first failure of loading or running (r is left for the caller to read
 * and free). */
static kiln_status try_run(test_run *r, int opset, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                           int threads)
{
    tr_init(r, opset);
    tr_node_of_operands(r, op, attrs, n_in, in, KILN_UNDEFINED);
    return tr_run(r, threads);
}

/* ---- the FFT kernel ------------------------------------------------------------------------------------ */

/* Largest |a - b| over n complex values, relative to the largest |b|. */
static double relative_error(const double *a, const double *b, int64_t n)
{
    double err = 0, scale = 1e-300;
    for (int64_t i = 0; i < 2 * n; i++) {
        err = fmax(err, fabs(a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return err / scale;
}

static void check_fft_length(int64_t n)
{
    double *tables = malloc(fft_plan_doubles(n) * sizeof(double));
    double *work = malloc((fft_work_doubles(n) + 1) * sizeof(double));
    double *x = malloc((size_t)(2 * n) * sizeof(double)), *fast = malloc((size_t)(2 * n) * sizeof(double));
    double *want = malloc((size_t)(2 * n) * sizeof(double));
    fft_plan plan;
    fft_plan_init(&plan, n, tables);
    for (int64_t i = 0; i < 2 * n; i++) x[i] = random_uniform(-1, 1);
    for (int inverse = 0; inverse < 2; inverse++) {
        memcpy(fast, x, (size_t)(2 * n) * sizeof(double));
        fft_execute(&plan, fast, inverse, work);
        dft_reference(x, want, n, inverse);
        double err = relative_error(fast, want, n);
        if (err > 1e-12) fail_msg("length %lld (inverse %d): FFT differs from the DFT by %g", (long long)n, inverse, err);
    }
    /* forward then inverse, divided by n, gives the input back */
    memcpy(fast, x, (size_t)(2 * n) * sizeof(double));
    fft_execute(&plan, fast, false, work);
    fft_execute(&plan, fast, true, work);
    for (int64_t i = 0; i < 2 * n; i++) fast[i] /= (double)n;
    assert_true(relative_error(fast, x, n) < 1e-12);
    free(tables), free(work), free(x), free(fast), free(want);
}

static void fft_matches_reference(void **state)
{
    (void)state;
    random_seed(1);
    for (int64_t n = 1; n <= 70; n++) check_fft_length(n);
    const int64_t larger[] = {97, 127, 128, 243, 256, 257, 1000, 1024, 1031};
    for (size_t i = 0; i < sizeof larger / sizeof larger[0]; i++) check_fft_length(larger[i]);
}

/* ---- DFT and STFT -------------------------------------------------------------------------------------- */

/* A real (1, 6, 3, 1) signal transformed along axis -3 (the 6), padded to 9 by dft_length, onesided: every
 * column must be the first 5 bins of the reference DFT of its zero-padded samples, with one and two threads. */
static void dft_operator_matches_reference(void **state)
{
    (void)state;
    random_seed(2);
    float x[18];
    for (int i = 0; i < 18; i++) x[i] = (float)random_uniform(-2, 2);
    const int64_t length = 9;
    pbw attrs = {0};
    tm_attr_int(&attrs, "axis", -3);
    tm_attr_int(&attrs, "onesided", 1);
    test_operand in[2] = {{"x", KILN_FLOAT32, 4, {1, 6, 3, 1}, x, false}, scalar_i64("n", &length)};
    for (int threads = 1; threads <= 2; threads++) {
        test_run r;
        tr_compute(&r, 17, "DFT", &attrs, 2, in, KILN_FLOAT32, threads);
        assert_shape(&r.out[0], 4, (const int64_t[]){1, 5, 3, 2});
        const float *y = r.out[0].data;
        for (int col = 0; col < 3; col++) {
            double signal[18] = {0}, want[18];
            for (int j = 0; j < 6; j++) signal[2 * j] = x[j * 3 + col];
            dft_reference(signal, want, 9, false);
            for (int k = 0; k < 5; k++) {
                assert_true(fabs(y[(k * 3 + col) * 2] - want[2 * k]) < 1e-4);
                assert_true(fabs(y[(k * 3 + col) * 2 + 1] - want[2 * k + 1]) < 1e-4);
            }
        }
        tr_free(&r);
    }
    pbw_free(&attrs);
}

static void dft_refusals(void **state)
{
    (void)state;
    float x[8] = {0};
    test_operand in[1] = {{"x", KILN_FLOAT32, 3, {1, 4, 2}, x, false}};
    pbw attrs = {0};
    tm_attr_int(&attrs, "inverse", 1);
    tm_attr_int(&attrs, "onesided", 1);
    assert_refused(tr_load_status(17, "DFT", &attrs, 1, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "onesided");
    pbw_free(&attrs);
    test_run r;
    tm_attr_int(&attrs, "axis", 0);
    assert_refused(try_run(&r, 17, "DFT", &attrs, 1, in, 1), KILN_ERR_INVALID_ARGUMENT, "axis 0");
    tr_free(&r);
    pbw_free(&attrs);
    tm_attr_int(&attrs, "onesided", 1);
    assert_refused(try_run(&r, 17, "DFT", &attrs, 1, in, 1), KILN_ERR_INVALID_ARGUMENT, "complex");
    tr_free(&r);
    pbw_free(&attrs);
    const int64_t zero = 0;
    test_operand padded[2] = {in[0], scalar_i64("n", &zero)};
    assert_refused(try_run(&r, 17, "DFT", NULL, 2, padded, 1), KILN_ERR_INVALID_ARGUMENT, "dft_length");
    tr_free(&r);
}

/* Frames of 5 samples every 3 of a 14-sample signal: 4 frames, each the windowed reference DFT. */
static void stft_frames_match_reference(void **state)
{
    (void)state;
    random_seed(3);
    float x[14], window[5];
    for (int i = 0; i < 14; i++) x[i] = (float)random_uniform(-1, 1);
    for (int i = 0; i < 5; i++) window[i] = (float)random_uniform(0, 1);
    const int64_t step = 3;
    pbw attrs = {0};
    tm_attr_int(&attrs, "onesided", 0);
    test_operand in[3] = {{"x", KILN_FLOAT32, 3, {1, 14, 1}, x, false}, scalar_i64("step", &step),
                          {"w", KILN_FLOAT32, 1, {5}, window, false}};
    test_run r;
    tr_compute(&r, 17, "STFT", &attrs, 3, in, KILN_FLOAT32, 2);
    assert_shape(&r.out[0], 4, (const int64_t[]){1, 4, 5, 2});
    const float *y = r.out[0].data;
    for (int f = 0; f < 4; f++) {
        double frame[10] = {0}, want[10];
        for (int j = 0; j < 5; j++) frame[2 * j] = (double)x[f * 3 + j] * window[j];
        dft_reference(frame, want, 5, false);
        for (int i = 0; i < 10; i++) assert_true(fabs(y[f * 10 + i] - want[i]) < 1e-5);
    }
    tr_free(&r);
    pbw_free(&attrs);
    /* a window that disagrees with frame_length is refused when the run is planned */
    const int64_t length = 4;
    test_operand both[4] = {in[0], in[1], in[2], scalar_i64("n", &length)};
    assert_refused(try_run(&r, 17, "STFT", NULL, 4, both, 1), KILN_ERR_INVALID_ARGUMENT, "frame_length");
    tr_free(&r);
    test_operand neither[2] = {in[0], in[1]};
    assert_refused(tr_load_status(17, "STFT", NULL, 2, neither, KILN_UNDEFINED), KILN_ERR_MALFORMED, "window");
}

/* ---- windows and MelWeightMatrix ----------------------------------------------------------------------- */

static void windows_edges_and_dtypes(void **state)
{
    (void)state;
    const int64_t one = 1, zero = 0, four = 4;
    test_run r;
    pbw attrs = {0};
    tm_attr_int(&attrs, "periodic", 0);
    test_operand size[1] = {scalar_i64("size", &one)};
    tr_compute(&r, 17, "HannWindow", &attrs, 1, size, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 1, (const int64_t[]){1});
    assert_true(fabs(((const float *)r.out[0].data)[0]) < 1e-7); /* 0.5 - 0.5 cos 0 */
    tr_free(&r);
    size[0] = scalar_i64("size", &zero);
    tr_compute(&r, 17, "BlackmanWindow", NULL, 1, size, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 1, (const int64_t[]){0});
    tr_free(&r);
    pbw_free(&attrs);
    /* periodic Hamming of 4 in double: 25/46 - 21/46 cos(pi n / 2) */
    tm_attr_int(&attrs, "output_datatype", KILN_FLOAT64);
    size[0] = scalar_i64("size", &four);
    tr_compute(&r, 17, "HammingWindow", &attrs, 1, size, KILN_FLOAT64, 1);
    const double *w = r.out[0].data, want[4] = {4.0 / 46, 25.0 / 46, 46.0 / 46, 25.0 / 46};
    for (int i = 0; i < 4; i++) assert_true(fabs(w[i] - want[i]) < 1e-12);
    tr_free(&r);
    pbw_free(&attrs);
    tm_attr_int(&attrs, "output_datatype", 99);
    assert_refused(tr_load_status(17, "HannWindow", &attrs, 1, size, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED,
                   "output_datatype");
    pbw_free(&attrs);
    const int64_t negative = -2;
    size[0] = scalar_i64("size", &negative);
    assert_refused(try_run(&r, 17, "HannWindow", NULL, 1, size, 1), TEST_ANY_ERROR, "size");
    tr_free(&r);
}

/* The ONNX test's matrix (8 bins, 16-point DFT at 8192 Hz from 0 to 4096 Hz) has a 1 in column i at rows
 * 0,0,1,1,2,3,4,5 (its mel corners are 0 0 1 1 2 3 4 5 6 6); and a band edge beyond Nyquist is refused. */
static void mel_weight_matrix(void **state)
{
    (void)state;
    const int64_t bins = 8, dft_length = 16, rate = 8192;
    const float low = 0, high = 4096, too_high = 20000;
    test_operand in[5] = {scalar_i64("b", &bins), scalar_i64("n", &dft_length), scalar_i64("r", &rate),
                          scalar_f32("lo", &low), scalar_f32("hi", &high)};
    test_run r;
    tr_compute(&r, 17, "MelWeightMatrix", NULL, 5, in, KILN_FLOAT32, 1);
    assert_shape(&r.out[0], 2, (const int64_t[]){9, 8});
    const float *m = r.out[0].data;
    const int peak_row[8] = {0, 0, 1, 1, 2, 3, 4, 5};
    for (int row = 0; row < 9; row++)
        for (int col = 0; col < 8; col++) assert_true(m[row * 8 + col] == (row == peak_row[col] ? 1.0f : 0.0f));
    tr_free(&r);
    in[4] = scalar_f32("hi", &too_high);
    assert_refused(try_run(&r, 17, "MelWeightMatrix", NULL, 5, in, 1), KILN_ERR_RUNTIME, "outside");
    tr_free(&r);
}

/* ---- NonMaxSuppression --------------------------------------------------------------------------------- */

typedef struct nms_case {
    int64_t batches, classes, spatial;
    const float *boxes, *scores;
    int64_t max_boxes;
    float iou, score_threshold;
    bool with_score_threshold;
    int center_point_box;
} nms_case;

static kiln_status run_nms(test_run *r, const nms_case *c)
{
    pbw attrs = {0};
    tm_attr_int(&attrs, "center_point_box", c->center_point_box);
    test_operand in[5] = {
        {"boxes", KILN_FLOAT32, 3, {c->batches, c->spatial, 4}, c->boxes, false},
        {"scores", KILN_FLOAT32, 3, {c->batches, c->classes, c->spatial}, c->scores, false},
        {"max", KILN_INT64, 1, {1}, &c->max_boxes, false},
        {"iou", KILN_FLOAT32, 1, {1}, &c->iou, false},
        {"score", KILN_FLOAT32, 1, {1}, &c->score_threshold, false},
    };
    kiln_status st = try_run(r, 11, "NonMaxSuppression", &attrs, c->with_score_threshold ? 5 : 4, in, 1);
    pbw_free(&attrs);
    return st;
}

/* Runs the case and checks the selected (batch, class, box) rows. */
static void expect_nms(const nms_case *c, int64_t rows, const int64_t *want)
{
    test_run r;
    kiln_status st = run_nms(&r, c);
    if (st != KILN_OK) fail_msg("NonMaxSuppression: %s", kiln_last_error());
    assert_int_equal(r.out[0].dtype, KILN_INT64);
    assert_shape(&r.out[0], 2, (const int64_t[]){rows, 3});
    if (rows) assert_memory_equal(r.out[0].data, want, (size_t)rows * 3 * sizeof(int64_t));
    tr_free(&r);
}

/* Three boxes: 0 and 1 overlap (IoU 0.81), 2 is apart. */
static const float three_boxes[12] = {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 5, 1, 6};

static void nms_edge_cases(void **state)
{
    (void)state;
    const float scores[3] = {0.9f, 0.95f, 0.3f};
    nms_case c = {1, 1, 3, three_boxes, scores, 10, 0.5f, 0, false, 0};
    expect_nms(&c, 2, (const int64_t[]){0, 0, 1, 0, 0, 2}); /* 1 wins, 0 is suppressed */
    c.iou = 0.9f;
    expect_nms(&c, 3, (const int64_t[]){0, 0, 1, 0, 0, 0, 0, 0, 2});
    c.max_boxes = 1;
    expect_nms(&c, 1, (const int64_t[]){0, 0, 1});
    c.max_boxes = 0; /* the spec's default: nothing */
    expect_nms(&c, 0, NULL);
    c.max_boxes = 10, c.with_score_threshold = true, c.score_threshold = 0.95f; /* strictly above: none */
    expect_nms(&c, 0, NULL);
    c.spatial = 0; /* no boxes at all */
    expect_nms(&c, 0, NULL);
}

/* Flipped corners, centre format and two classes select the same boxes as the plain form. */
static void nms_formats_and_classes(void **state)
{
    (void)state;
    const float flipped[12] = {1, 1, 0, 0, 1, 1.1f, 0, 0.1f, 1, 6, 0, 5};
    const float centers[12] = {0.5f, 0.5f, 1, 1, 0.6f, 0.5f, 1, 1, 5.5f, 0.5f, 1, 1};
    const float scores[6] = {0.9f, 0.95f, 0.3f, 0.1f, 0.2f, 0.3f};
    const int64_t want[15] = {0, 0, 1, 0, 0, 2, 0, 1, 2, 0, 1, 1};
    nms_case c = {1, 2, 3, flipped, scores, 10, 0.5f, 0, false, 0};
    expect_nms(&c, 4, want);
    c.boxes = centers, c.center_point_box = 1;
    expect_nms(&c, 4, want);
    /* equal scores: the lower index first */
    const float tie[3] = {0.5f, 0.5f, 0.5f};
    c.boxes = three_boxes, c.center_point_box = 0, c.classes = 1, c.scores = tie;
    expect_nms(&c, 2, (const int64_t[]){0, 0, 0, 0, 0, 2});
}

static void nms_refusals(void **state)
{
    (void)state;
    const float scores[3] = {0.9f, 0.95f, 0.3f};
    test_run r;
    nms_case c = {1, 1, 3, three_boxes, scores, 10, 1.5f, 0, false, 0};
    assert_refused(run_nms(&r, &c), TEST_ANY_ERROR, "iou_threshold");
    tr_free(&r);
    c.iou = 0.5f, c.center_point_box = 2;
    assert_refused(run_nms(&r, &c), KILN_ERR_MALFORMED, "center_point_box");
    tr_free(&r);
    test_operand wrong[2] = {{"boxes", KILN_FLOAT32, 3, {1, 3, 3}, three_boxes, false},
                             {"scores", KILN_FLOAT32, 3, {1, 1, 3}, scores, false}};
    assert_refused(try_run(&r, 11, "NonMaxSuppression", NULL, 2, wrong, 1), KILN_ERR_INVALID_ARGUMENT, "boxes");
    tr_free(&r);
}

/* ---- GridSample ---------------------------------------------------------------------------------------- */

/* Samples a 2x2 image (1 2 / 3 4) with align_corners at grid points far outside it, on a corner and at NaN.
 * (7, 1) is pixel x = 4 on the bottom row: clamped to column 1, or reflected (period 2) onto column 0. */
static void grid_sample_out_of_range(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, 4};
    const float grid[8] = {-5, -5, 7, 1, 1, 1, NAN, 0};
    struct {
        const char *mode, *padding;
        float want[4];
    } cases[] = {
        {"bilinear", "zeros", {0, 0, 4, 0}},        {"nearest", "zeros", {0, 0, 4, 0}},
        {"bilinear", "border", {1, 4, 4, 0}},       {"nearest", "border", {1, 4, 4, 0}},
        {"bicubic", "border", {1, 4, 4, 0}},        {"bilinear", "reflection", {1, 3, 4, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pbw attrs = {0};
        tm_attr_string(&attrs, "mode", cases[i].mode);
        tm_attr_string(&attrs, "padding_mode", cases[i].padding);
        tm_attr_int(&attrs, "align_corners", 1);
        test_operand in[2] = {{"x", KILN_FLOAT32, 4, {1, 1, 2, 2}, x, false},
                              {"grid", KILN_FLOAT32, 4, {1, 1, 4, 2}, grid, false}};
        test_run r;
        tr_compute(&r, 16, "GridSample", &attrs, 2, in, KILN_FLOAT32, 1);
        assert_shape(&r.out[0], 4, (const int64_t[]){1, 1, 1, 4});
        const float *y = r.out[0].data;
        for (int k = 0; k < 4; k++)
            if (fabsf(y[k] - cases[i].want[k]) > 1e-5f)
                fail_msg("%s/%s point %d: got %g, want %g", cases[i].mode, cases[i].padding, k, y[k], cases[i].want[k]);
        tr_free(&r);
        pbw_free(&attrs);
    }
}

static void grid_sample_refusals(void **state)
{
    (void)state;
    const float x[4] = {0}, grid[2] = {0};
    test_operand in[2] = {{"x", KILN_FLOAT32, 4, {1, 1, 2, 2}, x, false},
                          {"grid", KILN_FLOAT32, 4, {1, 1, 1, 2}, grid, false}};
    pbw attrs = {0};
    tm_attr_string(&attrs, "mode", "trilinear");
    assert_refused(tr_load_status(16, "GridSample", &attrs, 2, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "trilinear");
    pbw_free(&attrs);
    tm_attr_string(&attrs, "padding_mode", "wrap");
    assert_refused(tr_load_status(16, "GridSample", &attrs, 2, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "wrap");
    pbw_free(&attrs);
    test_operand flat[2] = {in[0], {"grid", KILN_FLOAT32, 4, {1, 1, 2, 1}, grid, false}};
    test_run r;
    assert_refused(try_run(&r, 16, "GridSample", NULL, 2, flat, 1), KILN_ERR_INVALID_ARGUMENT, "grid");
    tr_free(&r);
}

/* ---- RoiAlign ------------------------------------------------------------------------------------------ */

/* One 2x2 bin over a 4x4 ramp with one sample per bin at its centre: bilinear values of the ramp. */
static void roi_align_samples_and_refusals(void **state)
{
    (void)state;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    const float rois[4] = {0, 0, 2, 2};
    const int64_t batch_ok = 0, batch_bad = 3;
    pbw attrs = {0};
    tm_attr_int(&attrs, "output_height", 2);
    tm_attr_int(&attrs, "output_width", 2);
    tm_attr_int(&attrs, "sampling_ratio", 1);
    test_operand in[3] = {{"x", KILN_FLOAT32, 4, {1, 1, 4, 4}, x, false},
                          {"rois", KILN_FLOAT32, 2, {1, 4}, rois, false},
                          {"b", KILN_INT64, 1, {1}, &batch_ok, false}};
    test_run r;
    /* half_pixel: the region is [-0.5, 1.5], bin centres at y, x in {0, 1}: values 0, 1, 4, 5 */
    tr_compute(&r, 16, "RoiAlign", &attrs, 3, in, KILN_FLOAT32, 2);
    const float want[4] = {0, 1, 4, 5};
    for (int i = 0; i < 4; i++) assert_true(fabsf(((const float *)r.out[0].data)[i] - want[i]) < 1e-6f);
    tr_free(&r);
    in[2].data = &batch_bad;
    assert_refused(try_run(&r, 16, "RoiAlign", &attrs, 3, in, 1), KILN_ERR_RUNTIME, "batch index 3");
    tr_free(&r);
    pbw_free(&attrs);
    tm_attr_string(&attrs, "mode", "median");
    assert_refused(tr_load_status(16, "RoiAlign", &attrs, 3, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "median");
    pbw_free(&attrs);
    tm_attr_int(&attrs, "output_height", 0);
    assert_refused(tr_load_status(16, "RoiAlign", &attrs, 3, in, KILN_UNDEFINED), KILN_ERR_MALFORMED, "output size");
    pbw_free(&attrs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fft_matches_reference),
        cmocka_unit_test(dft_operator_matches_reference),
        cmocka_unit_test(dft_refusals),
        cmocka_unit_test(stft_frames_match_reference),
        cmocka_unit_test(windows_edges_and_dtypes),
        cmocka_unit_test(mel_weight_matrix),
        cmocka_unit_test(nms_edge_cases),
        cmocka_unit_test(nms_formats_and_classes),
        cmocka_unit_test(nms_refusals),
        cmocka_unit_test(grid_sample_out_of_range),
        cmocka_unit_test(grid_sample_refusals),
        cmocka_unit_test(roi_align_samples_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
