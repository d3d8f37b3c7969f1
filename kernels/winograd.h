/*
 * winograd.h — 3x3, stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3).
 *
 * Each 2x2 block of outputs (a "tile") of one output channel needs 36 multiply-adds per input channel done
 * directly; F(2x2, 3x3) gets it with 16: the 4x4 input patch under the tile and the 3x3 filter are each
 * moved to a 16-point transform domain (V = B^T d B, U = G g G^T), multiplied point by point, and the 16
 * products brought back (Y = A^T M A). Summed over input channels, each of the 16 points is a matrix
 * product, M[p] (out channels x tiles) = U[p] (out x in channels) * V[p] (in channels x tiles), so the work
 * runs on the GEMM's micro-kernel at 2.25x fewer multiplications than im2col + GEMM, with U transformed and
 * packed once at load. The transforms use only +, -, and halves, so the result stays within a few float
 * roundings of the direct sum (tests/unit/test_ops_conv.c compares with conv_f32_reference).
 *
 * A run goes through the image in blocks of whole tile rows, sized so that the block's transformed input
 * and products stay in cache: input transform, 16 GEMMs, output transform with bias and activation. With
 * threads, a plane tall enough gives each thread a band of tile rows to run alone in its own scratch (no
 * data crosses cores, no barrier inside); smaller planes share each block instead: channels for the
 * transforms, points for the GEMMs (each GEMM single-threaded).
 * The tile transforms have a plain reference here and AVX-512 versions (kernels/x86/winograd_avx512.c) that
 * work on 16 neighbouring tiles at once.
 */
#ifndef KILN_KERNELS_WINOGRAD_H
#define KILN_KERNELS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"
#include "kernels/conv.h"
#include "kiln.h"
#include "kernels/gemm.h"

enum { WINOGRAD_POINTS = 16 }; /* 4 x 4 transform points, p = 4 * row + column */

/* The transformed filters U[p] (out_channels x in_channels), each packed as a GEMM A operand. The packed
 * panels are the only copy: the GEMMs never take the matrix-vector path that would read U in place,
 * because every block has at least two tiles. */
struct conv_winograd_filters {
    int64_t out_channels, in_channels;
    gemm_packed_a point[WINOGRAD_POINTS];
};

/* Whether a forward convolution's attributes allow Winograd filters (decided at load, before the input size
 * is known): a 2-D 3x3 kernel, stride 1, dilation 1, one group, and enough channels for the GEMMs to
 * dominate the transforms. */
bool conv_winograd_filters_apply(int64_t out_channels, int64_t in_channels, const int64_t *kernel,
                                 const int64_t *strides, const int64_t *dilations, int spatial, int64_t groups);
size_t conv_winograd_filters_bytes(int64_t out_channels, int64_t in_channels);
/* Transforms and packs w (out_channels, in_channels, 3, 3) into memory (conv_winograd_filters_bytes,
 * 64-byte aligned), which then holds *packed too. */
kiln_status conv_winograd_pack_filters(int64_t out_channels, int64_t in_channels, const float *w, void *memory,
                                       const conv_winograd_filters **packed);

/* Whether conv_winograd_f32 takes this convolution: what conv_winograd_filters_apply asks, and an output at
 * least 2 tiles wide (a 1-tile block would be a matrix-vector product). */
bool conv_winograd_applies(const conv_shape *s);
/* Scratch conv_winograd_f32 needs to use up to `threads` threads (with less it uses fewer). */
size_t conv_winograd_scratch_bytes(const conv_shape *s, int threads);
/* y = conv(x, w) + bias (bias may be NULL), then extras' activation, with w transformed in `filters`. */
void conv_winograd_f32(const conv_shape *s, const conv_winograd_filters *filters, const float *x, const float *bias,
                       const conv_extras *extras, float *y, void *scratch, size_t scratch_bytes,
                       const parallel_runner *parallel);

/* One image's geometry as the tile transforms see it. */
typedef struct winograd_plane {
    int64_t in_h, in_w, out_h, out_w;
    int64_t pad_top, pad_left;
    int64_t tiles_w; /* ceil(out_w / 2) */
} winograd_plane;

/* Input transform of one channel plane x (in_h x in_w), zero outside it, for tile rows [ty0, ty1):
 * v[p * stride + t] for each point p and tile t = (ty - ty0) * tiles_w + tx. */
typedef void (*winograd_input_fn)(const winograd_plane *g, const float *x, int64_t ty0, int64_t ty1, float *v,
                                  int64_t stride);
/* Output transform of one output channel's products m[p * stride + t] (tiles as above) into the rows of
 * y (out_h x out_w) the tiles cover, each output + bias then clamped to [lo, hi] (NaN stays NaN). */
typedef void (*winograd_output_fn)(const winograd_plane *g, const float *m, int64_t stride, int64_t ty0, int64_t ty1,
                                   float bias, float lo, float hi, float *y);

void winograd_input_reference(const winograd_plane *g, const float *x, int64_t ty0, int64_t ty1, float *v,
                              int64_t stride);
void winograd_output_reference(const winograd_plane *g, const float *m, int64_t stride, int64_t ty0, int64_t ty1,
                               float bias, float lo, float hi, float *y);
#if defined(KILN_HAVE_X86_KERNELS)
void winograd_input_avx512(const winograd_plane *g, const float *x, int64_t ty0, int64_t ty1, float *v,
                           int64_t stride);
void winograd_output_avx512(const winograd_plane *g, const float *m, int64_t stride, int64_t ty0, int64_t ty1,
                            float bias, float lo, float hi, float *y);
#endif

#endif
