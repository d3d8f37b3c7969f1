/*
 * dtype.h — element types: sizes, names, and the half-precision conversions every layer shares.
 */
#ifndef KILN_CORE_DTYPE_H
#define KILN_CORE_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

/* True for the numbers 0..KILN_BFLOAT16 that ONNX defines, whether or not an operator supports them. */
bool dtype_is_known(int dtype);
bool dtype_is_float(kiln_dtype dtype);   /* float16, bfloat16, float32, float64 */
bool dtype_is_integer(kiln_dtype dtype); /* signed or unsigned, not bool */
bool dtype_is_signed_integer(kiln_dtype dtype);

float dtype_half_to_float(uint16_t h);
uint16_t dtype_float_to_half(float f);           /* round to nearest even, as IEEE 754 conversions do */
float dtype_bfloat16_to_float(uint16_t b);
uint16_t dtype_float_to_bfloat16(float f);       /* round to nearest even; NaN stays NaN */

#endif
