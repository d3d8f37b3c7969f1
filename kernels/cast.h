/*
 * cast.h — element-type conversion between every numeric dtype, bool, float16 and bfloat16.
 *
 * The conversions are C's, made total: a float that does not fit the integer type (NaN, infinities, values out
 * of range), where C leaves the behaviour undefined, converts as numpy does on x86-64 — which is what the ONNX
 * test data records: the x86 "integer indefinite" INT32_MIN (targets of 32 bits or fewer) or INT64_MIN (64-bit
 * and uint32 targets), wrapped to the target width. Booleans are value != 0, so NaN is true.
 */
#ifndef KILN_KERNELS_CAST_H
#define KILN_KERNELS_CAST_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

/* True for the dtypes cast_elements converts. */
bool cast_supported(kiln_dtype dtype);

/* dst[i] = (to) src[i] for i < n. src and dst must not overlap unless from == to. */
void cast_elements(const void *src, kiln_dtype from, void *dst, kiln_dtype to, int64_t n);

#endif
