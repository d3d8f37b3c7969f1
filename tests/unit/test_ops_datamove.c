/*
 * test_ops_datamove.c — the data-movement, generator and cast operators.
 *
 * The strided copy under Transpose/Slice/Expand/Tile/Pad/Concat/Split is compared with its element-by-element
 * reference on random views (permuted, reversed, broadcast, every element size), also split into tiny
 * chunks by a fake thread pool. The operators then run through the public API on small in-memory models:
 * the spec's edge cases (sentinel slice bounds, negative pads, uneven splits, NaN casts, empty tensors),
 * bad attributes rejected at load, and out-of-range indices reported at run time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "core/tensor.h"
#include "kernels/cast.h"
#include "ops/copy.h"
#include "testlib.h"

/* ---- the strided copy ------------------------------------------------------------------------------------ */

/* Runs every range in chunks of at most 3 items, last chunk first: exercises the chunk boundaries that a
 * real pool would only hit with large tensors. */
static void run_in_tiny_chunks(void *impl, int64_t n, int64_t grain, parallel_fn fn, void *arg)
{
    (void)impl;
    (void)grain;
    for (int64_t end = n; end > 0; end -= 3) fn(arg, end > 3 ? end - 3 : 0, end);
}

static const parallel_runner tiny_chunks = {.threads = 4, .run = run_in_tiny_chunks};

/* A random view over a source buffer: dims permuted, some reversed, some broadcast; destination contiguous
 * or embedded in a larger row-major array (as Pad and Concat write). Returns the source element offset of
 * the view's index 0 and the element counts both buffers need. */
static int64_t random_view(copy_view *v, int64_t *src_elems, int64_t *dst_elems)
{
    int rank = random_int(1, 6);
    int64_t src_dims[COPY_MAX_RANK], src_strides[COPY_MAX_RANK], dst_pad = random_int(0, 1);
    v->rank = rank;
    for (int d = 0; d < rank; d++) src_dims[d] = random_int(1, rank > 3 ? 5 : 40);
    shape_strides(rank, src_dims, src_strides);
    int perm[COPY_MAX_RANK];
    for (int d = 0; d < rank; d++) perm[d] = d;
    for (int d = rank - 1; d > 0; d--) {
        int k = random_int(0, d), t = perm[d];
        perm[d] = perm[k];
        perm[k] = t;
    }
    int64_t first = 0;
    for (int d = 0; d < rank; d++) {
        int axis = perm[d], kind = random_int(0, 5);
        v->dims[d] = src_dims[axis];
        v->src_strides[d] = src_strides[axis];
        if (kind == 0) { /* reversed */
            v->src_strides[d] = -src_strides[axis];
            first += (src_dims[axis] - 1) * src_strides[axis];
        } else if (kind == 1) { /* broadcast */
            v->src_strides[d] = 0;
        }
    }
    int64_t dst_dims[COPY_MAX_RANK];
    for (int d = 0; d < rank; d++) dst_dims[d] = v->dims[d] + dst_pad;
    shape_strides(rank, dst_dims, v->dst_strides);
    *src_elems = shape_numel(rank, src_dims);
    *dst_elems = shape_numel(rank, dst_dims);
    return first;
}

static void strided_copy_matches_reference(void **state)
{
    (void)state;
    random_seed(7);
    static const size_t sizes[] = {1, 2, 4, 8};
    for (int trial = 0; trial < 400; trial++) {
        copy_view v;
        int64_t src_elems, dst_elems;
        int64_t first = random_view(&v, &src_elems, &dst_elems);
        size_t elem = sizes[trial % 4];
        unsigned char *src = malloc((size_t)src_elems * elem);
        unsigned char *want = malloc((size_t)dst_elems * elem), *got = malloc((size_t)dst_elems * elem);
        for (int64_t i = 0; i < src_elems * (int64_t)elem; i++) src[i] = (unsigned char)random_int(0, 255);
        memset(want, 0xAB, (size_t)dst_elems * elem);
        memset(got, 0xAB, (size_t)dst_elems * elem);
        copy_strided_reference(&v, elem, src + first * (int64_t)elem, want);
        copy_strided(&v, elem, src + first * (int64_t)elem, got, trial % 2 ? &tiny_chunks : NULL);
        assert_memory_equal(want, got, (size_t)dst_elems * elem);
        free(src);
        free(want);
        free(got);
    }
}

/* A large 2-d transpose takes the tiled path; odd sizes leave partial tiles on both edges. */
static void tiled_transpose_matches_reference(void **state)
{
    (void)state;
    int64_t rows = 131, cols = 77;
    float *src = malloc((size_t)(rows * cols) * sizeof *src);
    float *want = malloc((size_t)(rows * cols) * sizeof *want), *got = malloc((size_t)(rows * cols) * sizeof *got);
    for (int64_t i = 0; i < rows * cols; i++) src[i] = (float)i;
    copy_view v = {.rank = 2, .dims = {cols, rows}, .src_strides = {1, cols}, .dst_strides = {rows, 1}};
    copy_strided_reference(&v, sizeof(float), src, want);
    copy_strided(&v, sizeof(float), src, got, &tiny_chunks);
    assert_memory_equal(want, got, (size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) assert_true(got[3 * rows + r] == src[r * cols + 3]);
    free(src);
    free(want);
    free(got);
}

static void fill_repeats_any_element(void **state)
{
    (void)state;
    uint8_t buf[8 * 1000];
    uint64_t pattern = 0x0102030405060708u;
    copy_fill(buf, 1000, 8, &pattern, &tiny_chunks);
    for (int i = 0; i < 1000; i++) assert_memory_equal(buf + 8 * i, &pattern, 8);
    uint16_t zero = 0;
    copy_fill(buf, 7, 2, &zero, NULL);
    for (int i = 0; i < 14; i++) assert_int_equal(buf[i], 0);
}

/* ---- the cast kernel ------------------------------------------------------------------------------------- */

static void cast_follows_c_and_numpy(void **state)
{
    (void)state;
    float in[] = {NAN, INFINITY, -3e9f, 300.7f, -300.7f, -1.5f, 70000.5f, 0.0f};
    int32_t i32[8];
    int8_t i8[8];
    uint8_t u8[8], b[8];
    int64_t i64[8];
    cast_elements(in, KILN_FLOAT32, i32, KILN_INT32, 8);
    cast_elements(in, KILN_FLOAT32, i8, KILN_INT8, 8);
    cast_elements(in, KILN_FLOAT32, u8, KILN_UINT8, 8);
    cast_elements(in, KILN_FLOAT32, b, KILN_BOOL, 8);
    cast_elements(in, KILN_FLOAT32, i64, KILN_INT64, 8);
    /* numpy 1.24 on x86-64 gives exactly these */
    const int32_t want_i32[] = {INT32_MIN, INT32_MIN, INT32_MIN, 300, -300, -1, 70000, 0};
    const int8_t want_i8[] = {0, 0, 0, 44, -44, -1, 112, 0};
    const uint8_t want_u8[] = {0, 0, 0, 44, 212, 255, 112, 0}, want_b[] = {1, 1, 1, 1, 1, 1, 1, 0};
    const int64_t want_i64[] = {INT64_MIN, INT64_MIN, -3000000000, 300, -300, -1, 70000, 0};
    assert_memory_equal(i32, want_i32, sizeof i32);
    assert_memory_equal(i8, want_i8, sizeof i8);
    assert_memory_equal(u8, want_u8, sizeof u8);
    assert_memory_equal(b, want_b, sizeof b);
    assert_memory_equal(i64, want_i64, sizeof i64);

    int64_t big[] = {INT64_MAX, -1, 1 << 20};
    uint16_t u16[3];
    double f64[3];
    cast_elements(big, KILN_INT64, u16, KILN_UINT16, 3);
    cast_elements(big, KILN_INT64, f64, KILN_FLOAT64, 3);
    assert_int_equal(u16[0], 0xFFFF);
    assert_int_equal(u16[1], 0xFFFF);
    assert_int_equal(u16[2], 0);
    assert_true(f64[1] == -1.0 && f64[2] == 1048576.0);

    uint64_t top = UINT64_MAX;
    double top_f;
    cast_elements(&top, KILN_UINT64, &top_f, KILN_FLOAT64, 1);
    assert_true(top_f == 18446744073709551616.0);

    float halves_in[] = {1.0f, -2.5f, 65504.0f};
    uint16_t half[3];
    float back[3];
    cast_elements(halves_in, KILN_FLOAT32, half, KILN_FLOAT16, 3);
    cast_elements(half, KILN_FLOAT16, back, KILN_FLOAT32, 3);
    assert_memory_equal(back, halves_in, sizeof back);
    assert_int_equal(half[0], 0x3C00);
}

/* ---- operators through the public API -------------------------------------------------------------------- */

/* Every model here runs with two threads. */
enum { THREADS = 2 };

static void transpose_default_and_perm(void **state)
{
    (void)state;
    int64_t dims[3] = {2, 3, 4}, x[24];
    for (int i = 0; i < 24; i++) x[i] = i;

    test_run r;
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Transpose", NULL, 1, NULL, THREADS, KILN_INT64, 3, dims, x), KILN_OK);
    assert_shape(&r.out[0], 3, (const int64_t[]){4, 3, 2});
    const int64_t *y = r.out[0].data;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) assert_int_equal(y[k * 6 + j * 2 + i], x[i * 12 + j * 4 + k]);
    tr_free(&r);

    pbw attrs = {0};
    tm_attr_ints(&attrs, "perm", (const int64_t[]){1, 2, 0}, 3);
    tr_init(&r, 13);
    assert_int_equal(tr_run_node(&r, "Transpose", NULL, 1, &attrs, THREADS, KILN_INT64, 3, dims, x), KILN_OK);
    assert_shape(&r.out[0], 3, (const int64_t[]){3, 4, 2});
    y = r.out[0].data;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++) assert_int_equal(y[j * 8 + k * 2 + i], x[i * 12 + j * 4 + k]);
    tr_free(&r);
    pbw_free(&attrs);
}

static void bad_attributes_fail_at_load(void **state)
{
    (void)state;
    const test_operand x = {"x", KILN_FLOAT32, 2, {2, 2}, NULL, false};
    pbw attrs = {0};

    tm_attr_ints(&attrs, "perm", (const int64_t[]){0, 0}, 2);
    assert_int_equal(tr_load_status(13, "Transpose", &attrs, 1, &x, KILN_UNDEFINED), KILN_ERR_MALFORMED);
    pbw_free(&attrs);

    tm_attr_int(&attrs, "to", KILN_COMPLEX64); /* strings are supported since; complex numbers are not */
    assert_int_equal(tr_load_status(13, "Cast", &attrs, 1, &x, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED);
    pbw_free(&attrs);

    tm_attr_int(&attrs, "blocksize", 2);
    tm_attr_string(&attrs, "mode", "XYZ");
    assert_int_equal(tr_load_status(13, "DepthToSpace", &attrs, 1, &x, KILN_UNDEFINED), KILN_ERR_MALFORMED);
    pbw_free(&attrs);

    tm_attr_string(&attrs, "mode", "wrap");
    tm_attr_ints(&attrs, "pads", (const int64_t[]){1, 1, 1, 1}, 4);
    assert_int_equal(tr_load_status(10, "Pad", &attrs, 1, &x, KILN_UNDEFINED), KILN_ERR_UNSUPPORTED);
    pbw_free(&attrs);

    /* Concat without its axis (required since opset 4) */
    assert_int_equal(tr_load_status(13, "Concat", NULL, 1, &x, KILN_UNDEFINED), KILN_ERR_MALFORMED);
}

/* starts/ends at the INT64 sentinels with negative steps reverse the whole axis. */
static void slice_sentinels_and_negative_steps(void **state)
{
    (void)state;
    int64_t dims[2] = {3, 5};
    float x[15];
    for (int i = 0; i < 15; i++) x[i] = (float)i;
    test_run r;
    tr_init(&r, 13);
    int64_t one = 2;
    tm_initializer(&r.tm, "s", KILN_INT64, 1, &one, (const int64_t[]){INT64_MAX, -1});
    tm_initializer(&r.tm, "e", KILN_INT64, 1, &one, (const int64_t[]){INT64_MIN, INT64_MIN});
    tm_initializer(&r.tm, "a", KILN_INT64, 1, &one, (const int64_t[]){0, -1});
    tm_initializer(&r.tm, "st", KILN_INT64, 1, &one, (const int64_t[]){-1, -2});
    assert_int_equal(tr_run_node(&r, "Slice", LIST("s", "e", "a", "st"), 1, NULL, THREADS, KILN_FLOAT32, 2, dims, x),
                     KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){3, 3});
    const float *y = r.out[0].data;
    const float want[9] = {14, 12, 10, 9, 7, 5, 4, 2, 0};
    assert_memory_equal(y, want, sizeof want);
    tr_free(&r);

    /* an empty result: start past the end */
    tr_init(&r, 13);
    int64_t n1 = 1;
    tm_initializer(&r.tm, "s", KILN_INT64, 1, &n1, (const int64_t[]){7});
    tm_initializer(&r.tm, "e", KILN_INT64, 1, &n1, (const int64_t[]){INT64_MAX});
    assert_int_equal(tr_run_node(&r, "Slice", LIST("s", "e"), 1, NULL, THREADS, KILN_FLOAT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){0, 5});
    tr_free(&r);
}

static void gather_checks_indices_at_run_time(void **state)
{
    (void)state;
    int64_t dims[2] = {3, 2};
    int32_t x[6] = {0, 1, 10, 11, 20, 21};
    test_run r;
    int64_t n_idx = 3;

    tr_init(&r, 13);
    tm_initializer(&r.tm, "i", KILN_INT64, 1, &n_idx, (const int64_t[]){2, -3, 1});
    assert_int_equal(tr_run_node(&r, "Gather", LIST("i"), 1, NULL, THREADS, KILN_INT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){3, 2});
    const int32_t want[6] = {20, 21, 0, 1, 10, 11};
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);

    tr_init(&r, 13);
    tm_initializer(&r.tm, "i", KILN_INT64, 1, &n_idx, (const int64_t[]){0, 3, 1});
    tr_node_on_x(&r, "Gather", LIST("i"), 1, NULL, KILN_INT32, 2, dims, x);
    assert_int_equal(tr_load(&r), KILN_OK);
    assert_int_equal(tr_run(&r, THREADS), KILN_ERR_RUNTIME);
    assert_non_null(strstr(kiln_last_error(), "index 3"));
    tr_free(&r);

    /* empty indices give an empty output */
    int64_t zero = 0;
    tr_init(&r, 13);
    tm_initializer(&r.tm, "i", KILN_INT64, 1, &zero, x);
    assert_int_equal(tr_run_node(&r, "Gather", LIST("i"), 1, NULL, THREADS, KILN_INT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){0, 2});
    tr_free(&r);
}

static void gather_nd_with_batch_dims(void **state)
{
    (void)state;
    int64_t dims[3] = {2, 2, 2};
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    test_run r;
    pbw attrs = {0};
    tm_attr_int(&attrs, "batch_dims", 1);
    tr_init(&r, 13);
    tm_initializer(&r.tm, "i", KILN_INT64, 2, (const int64_t[]){2, 1}, (const int64_t[]){1, -2});
    assert_int_equal(tr_run_node(&r, "GatherND", LIST("i"), 1, &attrs, THREADS, KILN_FLOAT32, 3, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 2});
    const float want[4] = {2, 3, 4, 5};
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    pbw_free(&attrs);
}

/* Concat of an input with a zero-size axis, then Split (opset 18) into uneven parts. */
static void concat_empty_input_and_uneven_split(void **state)
{
    (void)state;
    uint8_t a[6] = {1, 2, 3, 4, 5, 6}, c[4] = {7, 8, 9, 10};
    test_run r;
    tr_init(&r, 18);
    tr_input(&r, "a", KILN_UINT8, 2, (const int64_t[]){2, 3}, a);
    tr_input(&r, "b", KILN_UINT8, 2, (const int64_t[]){2, 0}, a);
    tr_input(&r, "c", KILN_UINT8, 2, (const int64_t[]){2, 2}, c);
    pbw cat = {0}, split = {0};
    tm_attr_int(&cat, "axis", -1);
    tm_node(&r.tm, "Concat", LIST("a", "b", "c"), LIST("y"), &cat);
    tm_attr_int(&split, "axis", 1);
    tm_attr_int(&split, "num_outputs", 2);
    tm_node(&r.tm, "Split", LIST("y"), LIST("p", "q"), &split);
    tr_output(&r, "y", KILN_UNDEFINED);
    tr_output(&r, "p", KILN_UNDEFINED);
    tr_output(&r, "q", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor y = r.out[0], p = r.out[1], q = r.out[2];
    assert_shape(&y, 2, (const int64_t[]){2, 5});
    assert_memory_equal(y.data, ((const uint8_t[]){1, 2, 3, 7, 8, 4, 5, 6, 9, 10}), 10);
    assert_shape(&p, 2, (const int64_t[]){2, 3});
    assert_shape(&q, 2, (const int64_t[]){2, 2});
    assert_memory_equal(p.data, ((const uint8_t[]){1, 2, 3, 4, 5, 6}), 6);
    assert_memory_equal(q.data, ((const uint8_t[]){7, 8, 9, 10}), 4);
    tr_free(&r);
    pbw_free(&cat);
    pbw_free(&split);
}

/* reflect pads one side and crops the other; edge and constant (opset 2 attributes) on the same input. */
static void pad_modes_and_negative_pads(void **state)
{
    (void)state;
    int64_t dims[2] = {2, 4};
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    test_run r;
    pbw attrs = {0};
    int64_t four = 4;

    tm_attr_string(&attrs, "mode", "reflect");
    tr_init(&r, 13);
    tm_initializer(&r.tm, "pads", KILN_INT64, 1, &four, (const int64_t[]){1, 2, 0, -1});
    assert_int_equal(tr_run_node(&r, "Pad", LIST("pads"), 1, &attrs, THREADS, KILN_FLOAT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){3, 5});
    /* rows: reflect of row 1, then rows 0 and 1; columns: 2 reflected before [1,2,3] (4 cropped) */
    const float want_reflect[15] = {7, 6, 5, 6, 7, 3, 2, 1, 2, 3, 7, 6, 5, 6, 7};
    assert_memory_equal(r.out[0].data, want_reflect, sizeof want_reflect);
    tr_free(&r);
    pbw_free(&attrs);

    tm_attr_string(&attrs, "mode", "edge");
    tr_init(&r, 13);
    tm_initializer(&r.tm, "pads", KILN_INT64, 1, &four, (const int64_t[]){0, -3, 1, 2});
    assert_int_equal(tr_run_node(&r, "Pad", LIST("pads"), 1, &attrs, THREADS, KILN_FLOAT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){3, 3});
    const float want_edge[9] = {4, 4, 4, 8, 8, 8, 8, 8, 8};
    assert_memory_equal(r.out[0].data, want_edge, sizeof want_edge);
    tr_free(&r);
    pbw_free(&attrs);

    tm_attr_ints(&attrs, "pads", (const int64_t[]){0, 1, 0, 0}, 4);
    tm_attr_float(&attrs, "value", 9.5f);
    tr_init(&r, 2);
    assert_int_equal(tr_run_node(&r, "Pad", NULL, 1, &attrs, THREADS, KILN_FLOAT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 5});
    const float want_constant[10] = {9.5f, 1, 2, 3, 4, 9.5f, 5, 6, 7, 8};
    assert_memory_equal(r.out[0].data, want_constant, sizeof want_constant);
    tr_free(&r);
    pbw_free(&attrs);
}

static void expand_and_tile(void **state)
{
    (void)state;
    int64_t dims[2] = {3, 1};
    int16_t x[3] = {1, 2, 3};
    test_run r;
    int64_t two = 2, three = 3;

    tr_init(&r, 13);
    tm_initializer(&r.tm, "shape", KILN_INT64, 1, &three, (const int64_t[]){2, 1, 2});
    assert_int_equal(tr_run_node(&r, "Expand", LIST("shape"), 1, NULL, THREADS, KILN_INT16, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 3, (const int64_t[]){2, 3, 2});
    const int16_t want_expand[12] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
    assert_memory_equal(r.out[0].data, want_expand, sizeof want_expand);
    tr_free(&r);

    tr_init(&r, 13);
    tm_initializer(&r.tm, "r", KILN_INT64, 1, &two, (const int64_t[]){2, 2});
    assert_int_equal(tr_run_node(&r, "Tile", LIST("r"), 1, NULL, THREADS, KILN_INT16, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){6, 2});
    const int16_t want_tile[12] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
    assert_memory_equal(r.out[0].data, want_tile, sizeof want_tile);
    tr_free(&r);
}

static void depth_to_space_round_trip(void **state)
{
    (void)state;
    int64_t dims[4] = {1, 8, 2, 3};
    float x[48];
    for (int i = 0; i < 48; i++) x[i] = (float)i;
    test_run r;
    tr_init(&r, 13);
    tr_input(&r, "x", KILN_FLOAT32, 4, dims, x);
    pbw d2s = {0}, s2d = {0};
    tm_attr_int(&d2s, "blocksize", 2);
    tm_attr_int(&s2d, "blocksize", 2);
    tm_node(&r.tm, "DepthToSpace", LIST("x"), LIST("s"), &d2s);
    tm_node(&r.tm, "SpaceToDepth", LIST("s"), LIST("y"), &s2d);
    tr_output(&r, "s", KILN_UNDEFINED);
    tr_output(&r, "y", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor s = r.out[0], y = r.out[1];
    assert_shape(&s, 4, (const int64_t[]){1, 2, 4, 6});
    /* DCR: out[0, c, 2h + i, 2w + j] = in[0, (2i + j) * 2 + c, h, w] */
    const float *sd = s.data;
    assert_true(sd[0 * 24 + 1 * 6 + 1] == x[((2 * 1 + 1) * 2 + 0) * 6 + 0]);
    assert_memory_equal(y.data, x, sizeof x);
    tr_free(&r);
    pbw_free(&d2s);
    pbw_free(&s2d);
}

static void cast_nan_and_bool(void **state)
{
    (void)state;
    int64_t dims[1] = {4};
    float x[4] = {NAN, -2.7f, 0.0f, 3.9f};
    test_run r;
    tr_init(&r, 13);
    tr_input(&r, "x", KILN_FLOAT32, 1, dims, x);
    pbw to_int = {0}, to_bool = {0};
    tm_attr_int(&to_int, "to", KILN_INT32);
    tm_attr_int(&to_bool, "to", KILN_BOOL);
    tm_node(&r.tm, "Cast", LIST("x"), LIST("i"), &to_int);
    tm_node(&r.tm, "Cast", LIST("x"), LIST("b"), &to_bool);
    tr_output(&r, "i", KILN_UNDEFINED);
    tr_output(&r, "b", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor i = r.out[0], b = r.out[1];
    assert_int_equal(i.dtype, KILN_INT32);
    assert_memory_equal(i.data, ((const int32_t[]){INT32_MIN, -2, 0, 3}), 16);
    assert_int_equal(b.dtype, KILN_BOOL);
    assert_memory_equal(b.data, ((const uint8_t[]){1, 1, 0, 1}), 4);
    tr_free(&r);
    pbw_free(&to_int);
    pbw_free(&to_bool);
}

/* Range and ConstantOfShape fold at load; EyeLike runs on an input. */
static void generators(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    int64_t scalar = 0;
    tm_initializer(&r.tm, "start", KILN_INT32, 0, &scalar, (const int32_t[]){10});
    tm_initializer(&r.tm, "limit", KILN_INT32, 0, &scalar, (const int32_t[]){-1});
    tm_initializer(&r.tm, "delta", KILN_INT32, 0, &scalar, (const int32_t[]){-3});
    tm_node(&r.tm, "Range", LIST("start", "limit", "delta"), LIST("r"), NULL);
    int64_t two = 2;
    tm_initializer(&r.tm, "shape", KILN_INT64, 1, &two, (const int64_t[]){2, 3});
    pbw value = {0};
    tm_attr_tensor(&value, "value", KILN_INT64, 1, (const int64_t[]){1}, (const int64_t[]){-7});
    tm_node(&r.tm, "ConstantOfShape", LIST("shape"), LIST("c"), &value);
    float x[12] = {0};
    tr_input(&r, "x", KILN_FLOAT32, 2, (const int64_t[]){3, 4}, x);
    pbw eye = {0};
    tm_attr_int(&eye, "k", -1);
    tm_attr_int(&eye, "dtype", KILN_FLOAT64);
    tm_node(&r.tm, "EyeLike", LIST("x"), LIST("e"), &eye);
    tr_output(&r, "r", KILN_UNDEFINED);
    tr_output(&r, "c", KILN_UNDEFINED);
    tr_output(&r, "e", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor range = r.out[0], c = r.out[1], e = r.out[2];
    assert_shape(&range, 1, (const int64_t[]){4});
    assert_memory_equal(range.data, ((const int32_t[]){10, 7, 4, 1}), 16);
    assert_shape(&c, 2, (const int64_t[]){2, 3});
    for (int k = 0; k < 6; k++) assert_int_equal(((const int64_t *)c.data)[k], -7);
    assert_int_equal(e.dtype, KILN_FLOAT64);
    const double want_eye[12] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(e.data, want_eye, sizeof want_eye);
    tr_free(&r);
    pbw_free(&value);
    pbw_free(&eye);
}

/* Slice (opset 9) and Split (opset 11) read attributes; Constant (opset 13) value_ints folds at load. */
static void attribute_forms_of_older_opsets(void **state)
{
    (void)state;
    int64_t dims[2] = {2, 6};
    int8_t x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    test_run r;
    pbw slice = {0};
    tm_attr_ints(&slice, "starts", (const int64_t[]){-4}, 1);
    tm_attr_ints(&slice, "ends", (const int64_t[]){1000}, 1);
    tm_attr_ints(&slice, "axes", (const int64_t[]){1}, 1);
    tr_init(&r, 9);
    assert_int_equal(tr_run_node(&r, "Slice", NULL, 1, &slice, THREADS, KILN_INT8, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 4});
    assert_memory_equal(r.out[0].data, ((const int8_t[]){2, 3, 4, 5, 8, 9, 10, 11}), 8);
    tr_free(&r);
    pbw_free(&slice);

    tr_init(&r, 11);
    tr_input(&r, "x", KILN_INT8, 2, dims, x);
    pbw split = {0};
    tm_attr_int(&split, "axis", -1);
    tm_attr_ints(&split, "split", (const int64_t[]){1, 0, 5}, 3);
    tm_node(&r.tm, "Split", LIST("x"), LIST("a", "b", "c"), &split);
    tr_output(&r, "a", KILN_UNDEFINED);
    tr_output(&r, "b", KILN_UNDEFINED);
    tr_output(&r, "c", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor a = r.out[0], b = r.out[1], c = r.out[2];
    assert_shape(&a, 2, (const int64_t[]){2, 1});
    assert_shape(&b, 2, (const int64_t[]){2, 0});
    assert_shape(&c, 2, (const int64_t[]){2, 5});
    assert_memory_equal(a.data, ((const int8_t[]){0, 6}), 2);
    assert_memory_equal(c.data, ((const int8_t[]){1, 2, 3, 4, 5, 7, 8, 9, 10, 11}), 10);
    tr_free(&r);
    pbw_free(&split);

    tr_init(&r, 13);
    pbw value = {0};
    tm_attr_ints(&value, "value_ints", (const int64_t[]){4, -5, 6}, 3);
    tm_node(&r.tm, "Constant", NULL, LIST("k"), &value);
    tr_output(&r, "k", KILN_UNDEFINED);
    assert_int_equal(tr_run(&r, THREADS), KILN_OK);
    kiln_tensor k = r.out[0];
    assert_int_equal(k.dtype, KILN_INT64);
    assert_shape(&k, 1, (const int64_t[]){3});
    assert_memory_equal(k.data, ((const int64_t[]){4, -5, 6}), 24);
    tr_free(&r);
    pbw_free(&value);
}

/* Constant padding of an input with no elements fills the whole output. */
static void pad_empty_input(void **state)
{
    (void)state;
    int64_t dims[2] = {0, 2}, four = 4;
    int32_t x[1] = {0};
    test_run r;
    tr_init(&r, 18);
    tm_initializer(&r.tm, "pads", KILN_INT64, 1, &four, (const int64_t[]){1, 0, 1, 1});
    tm_initializer(&r.tm, "v", KILN_INT32, 0, &four, (const int32_t[]){-9});
    assert_int_equal(tr_run_node(&r, "Pad", LIST("pads", "v"), 1, NULL, THREADS, KILN_INT32, 2, dims, x), KILN_OK);
    assert_shape(&r.out[0], 2, (const int64_t[]){2, 3});
    for (int i = 0; i < 6; i++) assert_int_equal(((const int32_t *)r.out[0].data)[i], -9);
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strided_copy_matches_reference),
        cmocka_unit_test(tiled_transpose_matches_reference),
        cmocka_unit_test(fill_repeats_any_element),
        cmocka_unit_test(cast_follows_c_and_numpy),
        cmocka_unit_test(transpose_default_and_perm),
        cmocka_unit_test(bad_attributes_fail_at_load),
        cmocka_unit_test(slice_sentinels_and_negative_steps),
        cmocka_unit_test(gather_checks_indices_at_run_time),
        cmocka_unit_test(gather_nd_with_batch_dims),
        cmocka_unit_test(concat_empty_input_and_uneven_split),
        cmocka_unit_test(pad_modes_and_negative_pads),
        cmocka_unit_test(expand_and_tile),
        cmocka_unit_test(depth_to_space_round_trip),
        cmocka_unit_test(cast_nan_and_bool),
        cmocka_unit_test(generators),
        cmocka_unit_test(attribute_forms_of_older_opsets),
        cmocka_unit_test(pad_empty_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
