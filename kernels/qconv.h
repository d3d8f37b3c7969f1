/*
 * qconv.h — integer convolution, the exact int32 core of ConvInteger and QLinearConv:
 *
 *     y[n, m, o] = sum over c, k of (x[n, c, o*stride - pad + k*dilation] - x_zero) * (w[m, c, k] - w_zero[m])
 *
 * x and w are int8 or uint8 (each its own), in Conv's layouts (kernels/conv.h). A tap that falls into the
 * padding contributes nothing, as if the padding held x_zero (what the spec and onnxruntime do). Sums wrap
 * in 32 bits, which the spec allows and which only models far outside int8 practice can reach.
 *
 * qconv_int32 unfolds each (image, group) into an int16 matrix with the zero point already subtracted (the
 * im2col of kernels/conv.c) and multiplies it by the shifted weights block by block; qconv_int32_reference
 * computes every output element on its own. The unit tests compare them, with every block function.
 */
#ifndef KILN_KERNELS_QCONV_H
#define KILN_KERNELS_QCONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel.h"
#include "kernels/conv.h"
#include "kiln.h"

typedef struct qconv_operands {
    const void *x;
    kiln_dtype x_dtype; /* KILN_INT8 or KILN_UINT8 */
    int32_t x_zero;
    const void *w;
    kiln_dtype w_dtype;
    const int32_t *w_zero;  /* one per output channel when w_zero_per_channel, else one */
    bool w_zero_per_channel;
} qconv_operands;

/* Scratch qconv_int32 needs: the unfolded matrix of one (image, group) and the shifted weights. */
size_t qconv_int32_scratch_bytes(const conv_shape *s);
/* y (N, M, out...) as int32. scratch is 64-byte aligned and qconv_int32_scratch_bytes(s) long. */
void qconv_int32(const conv_shape *s, const qconv_operands *q, int32_t *y, void *scratch,
                 const parallel_runner *parallel);
void qconv_int32_reference(const conv_shape *s, const qconv_operands *q, int32_t *y);

/* The product's inner block: y[j * ldy + i] = sum over r < rows of w[j * rows + r] * col[r * ldc + i] for
 * j < mb <= QCONV_BLOCK_ROWS and i < n, wrapping in 32 bits; w and col hold shifted values in [-255, 255].
 * qconv_block is portable, qconv_block_avx2 (kernels/x86/) needs AVX2; qconv_int32 takes the fastest. */
#define QCONV_BLOCK_ROWS 4
typedef void (*qconv_block_fn)(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows,
                               int64_t n, int32_t *y, int64_t ldy);
void qconv_block(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows, int64_t n,
                 int32_t *y, int64_t ldy);
#if defined(KILN_HAVE_X86_KERNELS)
void qconv_block_avx2(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows, int64_t n,
                      int32_t *y, int64_t ldy);
#endif
/* qconv_int32 with a given block function (for tests comparing them). */
void qconv_int32_with(qconv_block_fn block, const conv_shape *s, const qconv_operands *q, int32_t *y,
                      void *scratch, const parallel_runner *parallel);

#endif
