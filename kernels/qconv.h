/*
 * qconv.h — integer convolution, the exact int32 core of ConvInteger and QLinearConv:
 *
 *     y[n, m, o] = sum over c, k of (x[n, c, o*stride - pad + k*dilation] - x_zero) * (w[m, c, k] - w_zero[m])
 *
 * x and w are int8 or uint8 (each its own), in Conv's layouts (kernels/conv.h). A tap that falls into the
 * padding contributes nothing, as if the padding held x_zero (what the spec and onnxruntime do). Sums wrap
 * in 32 bits, which the spec allows and which only models far outside int8 practice can reach.
 *
 * qconv_int32 unfolds each (image, group) into an int32 matrix with the zero point already subtracted (the
 * im2col of kernels/conv.c) and multiplies by the weights row by row; qconv_int32_reference computes every
 * output element on its own. The unit tests compare the two.
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

/* Scratch qconv_int32 needs: the unfolded matrix of one (image, group). */
size_t qconv_int32_scratch_bytes(const conv_shape *s);
/* y (N, M, out...) as int32. scratch is 64-byte aligned and qconv_int32_scratch_bytes(s) long. */
void qconv_int32(const conv_shape *s, const qconv_operands *q, int32_t *y, void *scratch,
                 const parallel_runner *parallel);
void qconv_int32_reference(const conv_shape *s, const qconv_operands *q, int32_t *y);

#endif
