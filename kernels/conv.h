/*
 * conv.h — float32 convolution (forward and transposed), and the window geometry it shares with pooling.
 *
 * Every spatial rank is handled as 3-D: a 2-D input is 1xHxW and a 1-D one 1x1xW, with kernel 1, stride 1,
 * dilation 1 and no padding in the added dims. One code path per algorithm then serves 1-D, 2-D and 3-D.
 *
 * Layouts are ONNX's: x is (N, C, D, H, W); forward weights are (M, C/groups, kD, kH, kW); transposed
 * weights are (C, M/groups, kD, kH, kW); bias is (M); y is (N, M, oD, oH, oW).
 *
 * Into and out of a depthwise convolution, from and to the pointwise ones around it, the activation may
 * instead be channel-blocked: (N, C/16, D, H, W, 16), sixteen channels of one position side by side, the
 * same number of floats (C is a multiple of 16). The depthwise kernel computes sixteen channels to a vector,
 * and the pointwise GEMM's columns kernel broadcasts its operand element by element and holds sixteen
 * channels of an output position in each vector, so in this layout nothing is transposed between planes
 * and vectors; graph/layout.c decides where it is used (conv_shape.x_blocked, y_blocked).
 *
 * conv_f32_reference and conv_transpose_f32_reference (conv_ref.c) are direct loops over every output
 * element; they are the oracle the fast paths in conv.c are tested against.
 */
#ifndef KILN_KERNELS_CONV_H
#define KILN_KERNELS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"
#include "kernels/gemm.h"

#define CONV_SPATIAL 3

/* Where a sliding window reads: output position o of dim d covers input positions
 * o*stride[d] - pad[d] + k*dilation[d] for taps k in [0, kernel[d]). For a transposed convolution the roles
 * of `in` and `out` are those of the forward convolution it inverts read backwards: input position i adds
 * to output positions i*stride - pad + k*dilation. `pad` is the padding before the data; it is negative when
 * a transposed convolution's output_shape asks for more than the natural output. */
typedef struct conv_window {
    int64_t in[CONV_SPATIAL], out[CONV_SPATIAL];
    int64_t kernel[CONV_SPATIAL], stride[CONV_SPATIAL], dilation[CONV_SPATIAL], pad[CONV_SPATIAL];
    int64_t pad_end[CONV_SPATIAL]; /* padding after the data: only AveragePool's count_include_pad reads it */
} conv_window;

/* Channels to a block in the channel-blocked layout. */
enum { CONV_BLOCK = GEMM_B_BLOCK };

typedef struct conv_shape {
    int64_t batch, in_channels, out_channels, groups;
    conv_window win;
    /* x or y channel-blocked, for a pointwise (groups 1) or depthwise convolution whose channels on that side
     * are a multiple of CONV_BLOCK (conv_blocked_layout_fits) */
    bool x_blocked, y_blocked;
} conv_shape;

typedef enum conv_algo {
    CONV_ALGO_IM2COL,    /* general: unfold the input (or fold the output back), one GEMM per image and group */
    CONV_ALGO_POINTWISE, /* 1x1 kernel, stride 1, no padding: the input already is the GEMM operand */
    CONV_ALGO_DEPTHWISE, /* one 1-channel filter per channel (forward only): direct loops, as a GEMM would
                          * have a single row */
    CONV_ALGO_WINOGRAD,  /* 3x3, stride 1, with filters transformed at load: F(2x2, 3x3) (kernels/winograd.h) */
} conv_algo;

/* The indices i in [0, count) for which offset + i*step lies in [0, limit) form the range [*begin, *end)
 * (step > 0). It answers both "which outputs does tap k reach" and "which taps of output o are inside the
 * input", the clipping question every window loop asks. */
static inline void conv_valid_range(int64_t offset, int64_t step, int64_t limit, int64_t count, int64_t *begin,
                                    int64_t *end)
{
    /* ceil(a / step) for any sign of a */
    int64_t lo = offset >= 0 ? 0 : (-offset + step - 1) / step;
    int64_t span = limit - offset;
    int64_t hi = span <= 0 ? 0 : (span + step - 1) / step;
    if (hi > count) hi = count;
    if (lo > hi) lo = hi;
    *begin = lo;
    *end = hi;
}

/* Splits a flat kernel tap index into (kd, kh, kw): the rows of an unfolded (im2col) matrix run over taps. */
static inline void conv_split_tap(const conv_window *w, int64_t tap, int64_t k[CONV_SPATIAL])
{
    k[2] = tap % w->kernel[2];
    k[1] = tap / w->kernel[2] % w->kernel[1];
    k[0] = tap / (w->kernel[2] * w->kernel[1]);
}

/* Elements in a 3-D spatial block (dims is one of conv_window's arrays). */
static inline int64_t conv_volume(const int64_t *dims) { return dims[0] * dims[1] * dims[2]; }

typedef struct conv_winograd_filters conv_winograd_filters; /* kernels/winograd.h */

/* A forward convolution's filters packed once, at load: for im2col/pointwise GEMMs, each group's
 * (M/groups) x (C/groups * kernel volume) block of w is one gemm_packed_a (w must stay alive); or, for a 3x3
 * kernel Winograd takes, its transformed filters instead (group NULL). */
typedef struct conv_packed_filters {
    int64_t groups;
    gemm_packed_a *group;
    const conv_winograd_filters *winograd;
} conv_packed_filters;

/* Bytes conv_f32_pack_filters needs for w of shape (out_channels, per_group_k / kernel volume, kernel...). */
size_t conv_f32_pack_filters_bytes(int64_t out_channels, int64_t per_group_k, int64_t groups);
void conv_f32_pack_filters(int64_t out_channels, int64_t per_group_k, int64_t groups, const float *w, void *memory,
                           conv_packed_filters *packed);

/* What conv_f32 may do beyond the bare convolution: use filters packed at load (`packed`, NULL to read w as
 * it lies) and apply an activation (a fused Relu, Clip, Sigmoid or SiLU; see gemm_activation) to every
 * output while it is still in cache. */
typedef struct conv_extras {
    const conv_packed_filters *packed;
    gemm_activation act;
    float lo, hi; /* GEMM_ACT_CLAMP's bounds */
} conv_extras;

/* Whether the shape's blocked flags are ones conv_f32 takes (see conv_shape). */
bool conv_blocked_layout_fits(const conv_shape *s);
/* Whether this CPU runs the blocked layout faster than planes (it has the kernels that read it in place). */
bool conv_blocked_layout_pays(void);
/* Whether an activation of `volume` positions per channel travels blocked where a graph allows it: on large
 * planes the pointwise GEMM's usual kernel, writing and reading planes, is the faster one. Producer and
 * reader of a value see the same volume, so they always agree. */
bool conv_blocked_layout_pays_for(int64_t volume);

/* The algorithm conv_f32 uses for this shape, given the filters packed at load (NULL when none). */
conv_algo conv_f32_choose(const conv_shape *s, const conv_packed_filters *packed);
/* Scratch conv_f32 needs with `algo` to use up to `threads` threads. With less, it uses fewer threads. */
size_t conv_f32_scratch_bytes(const conv_shape *s, conv_algo algo, int threads);
/* y = conv(x, w) + bias (bias may be NULL), then what `extras` asks (NULL: nothing). `algo` must be
 * conv_f32_choose's answer or CONV_ALGO_IM2COL (always valid). scratch is 64-byte aligned. */
void conv_f32(const conv_shape *s, conv_algo algo, const float *x, const float *w, const float *bias,
              const conv_extras *extras, float *y, void *scratch, size_t scratch_bytes,
              const parallel_runner *parallel);
void conv_f32_reference(const conv_shape *s, const float *x, const float *w, const float *bias, float *y);

/* The same for the transposed convolution (CONV_ALGO_IM2COL: GEMM then col2im; CONV_ALGO_POINTWISE when
 * the kernel is 1x1, stride 1, no padding and the output has the input's size). */
conv_algo conv_transpose_f32_choose(const conv_shape *s);
size_t conv_transpose_f32_scratch_bytes(const conv_shape *s, conv_algo algo, int threads);
void conv_transpose_f32(const conv_shape *s, conv_algo algo, const float *x, const float *w, const float *bias,
                        float *y, void *scratch, size_t scratch_bytes, const parallel_runner *parallel);
void conv_transpose_f32_reference(const conv_shape *s, const float *x, const float *w, const float *bias,
                                  float *y);

/* row[i] += sum over t < taps of w[t] * src[i*stride + t*dilation], for i < n: the depthwise convolution's
 * inner loop (one kernel row over one output row), and its SIMD variants (picked by platform_cpu_features()). */
void conv_row_taps(float *row, const float *src, int64_t n, int64_t stride, const float *w, int64_t taps,
                   int64_t dilation);
/* dst[i] = row[col + i*stride] for i < count, 0 where that column is outside [0, width) or row is NULL: the
 * copy that fills the im2col panels of the GEMM convolutions, and its SIMD variant (strides 1 and 2). */
void conv_gather_row(const float *row, int64_t col, int64_t width, int64_t stride, int64_t count, float *dst);
#if defined(KILN_HAVE_X86_KERNELS)
/* One channel plane of a 2-D depthwise convolution, bias included, and the clamp when extras->act is
 * GEMM_ACT_CLAMP (other activations are the caller's). False, having done nothing, for shapes it does not
 * take (3-D, strides above 2, wide rows). */
bool conv_depthwise_plane_avx512(const conv_window *w, const float *x, const float *kernel, float bias,
                                 const conv_extras *extras, float *y);
/* The 2-D depthwise convolution sixteen channels at a time (kernels/x86/conv_avx512.c). Work is cut into bands
 * of conv_depthwise_avx512_band_rows output rows (0: the shape is not taken: 3-D, row strides above 2,
 * rows too wide); each call needs conv_depthwise_avx512_scratch_bytes of 64-byte aligned scratch.
 * conv_depthwise_rows_avx512 computes output rows [oh0, oh1) (at most a band) of `channels` (1 to 16)
 * consecutive channels: x, kernel, bias (NULL for none) and y point at the first channel's input plane,
 * filter, bias and output plane; bias and extras->act are applied. With x_blocked or y_blocked, x or y is
 * the channels' block of a channel-blocked tensor instead (then channels is 16). */
int64_t conv_depthwise_avx512_band_rows(const conv_window *w);
size_t conv_depthwise_avx512_scratch_bytes(const conv_window *w);
void conv_depthwise_rows_avx512(const conv_window *w, int channels, const float *x, const float *kernel,
                                const float *bias, const conv_extras *extras, int64_t oh0, int64_t oh1, float *scratch,
                                bool x_blocked, bool y_blocked, float *y);
/* im2col_panel (conv.c) for 2-D windows with row strides 1 or 2 and panels up to 32 wide: rows k0 .. k0+kc-1
 * and columns j0 .. j0+count-1 of x's unfolded matrix, `width` floats per row, zero beyond count. False,
 * having done nothing, for other shapes. */
bool conv_im2col_panel_avx512(const conv_window *w, const float *x, int64_t k0, int64_t kc, int64_t j0, int count,
                              int width, float *dst);
void conv_gather_row_avx512(const float *row, int64_t col, int64_t width, int64_t stride, int64_t count, float *dst);
/* One plane of a float32 MaxPool (no indices), NaN winning; false for shapes it does not take, as above. */
bool conv_max_pool_plane_avx512(const conv_window *w, const float *x, float *y);
void conv_row_taps_avx2(float *row, const float *src, int64_t n, int64_t stride, const float *w, int64_t taps,
                        int64_t dilation);
#endif

#endif
