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

/* ---- numbers as text (Cast to and from strings) ------------------------------------------------------------ */

/* Longest text cast_format_element writes, NUL included. */
#define CAST_TEXT_MAX 48
/* Writes element i of src (a float or integer dtype) as text, as NumPy's str() does: integers in decimal;
 * floats with the fewest digits that read back to the same value in their own dtype, positional for
 * 1e-4 <= |x| < 1e16 ("0.5", "3.0") and scientific otherwise ("1e-05", "1.5e+20"); "nan", "inf", "-inf". */
void cast_format_element(const void *src, kiln_dtype from, int64_t i, char text[CAST_TEXT_MAX]);
/* Sets element i of dst (a float or integer dtype) from text: a decimal or scientific number, or "INF",
 * "+INF", "-INF", "NaN" in any case (strtod's forms). Integers read as integers when they are written so,
 * otherwise as the truncated real. False when the text is not a number (dst[i] is then 0). */
bool cast_parse_element(const char *text, void *dst, kiln_dtype to, int64_t i);

#endif
