/*
 * quant.h — the arithmetic every quantized operator and kernel shares: reading an int8/uint8 element, and turning a
 * real value that is already divided by its scale into a quantized one exactly as the ONNX spec says
 * (round to nearest with ties to even, add the zero point, saturate to the type's range).
 *
 * QuantizeLinear, DynamicQuantizeLinear, QLinearConv (ops/quantize.c) and QLinearMatMul (ops/matmul.c) all
 * requantize through quant_saturate (kernels/quant.c), so their results agree bit for bit on ties and on overflow.
 */
#ifndef KILN_KERNELS_QUANT_H
#define KILN_KERNELS_QUANT_H

#include <stdint.h>

#include "kiln.h"

/* The int8 and uint8 dtypes quantized tensors use, KILN_UNDEFINED-terminated for op_require_dtype. */
extern const kiln_dtype QUANT_DTYPES[];

/* Element i of int8 or uint8 data. */
static inline int32_t quant_load(const void *data, kiln_dtype dtype, int64_t i)
{
    return dtype == KILN_INT8 ? ((const int8_t *)data)[i] : ((const uint8_t *)data)[i];
}

/* round_half_even(scaled) + zero_point clamped to dtype's range (int8 or uint8). NaN (a zero scale) gives
 * the range's low end, as a comparison with NaN is false. */
int32_t quant_saturate(double scaled, int32_t zero_point, kiln_dtype dtype);

/* Stores a value quant_saturate produced as element i of int8 or uint8 data. */
static inline void quant_store(void *data, kiln_dtype dtype, int64_t i, int32_t v)
{
    if (dtype == KILN_INT8) ((int8_t *)data)[i] = (int8_t)v;
    else ((uint8_t *)data)[i] = (uint8_t)v;
}

#endif
