/*
 * numeric_types.h — the element types typed kernels are instantiated for, as X-macro lists.
 *
 * A family writes its typed kernel once as a macro, instantiates it from a list, and generates its dtype
 * dispatch switch from the same list, so adding a type is one line here. Each entry is
 * X(kiln dtype, C type, lowest value, highest value); the limits are the identities of max and min.
 */
#ifndef KILN_OPS_NUMERIC_TYPES_H
#define KILN_OPS_NUMERIC_TYPES_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#define KILN_FLOAT_TYPES(X)                                                                                            \
    X(KILN_FLOAT32, float, -INFINITY, INFINITY)                                                                        \
    X(KILN_FLOAT64, double, -INFINITY, INFINITY)

#define KILN_INTEGER_TYPES(X)                                                                                          \
    X(KILN_INT8, int8_t, INT8_MIN, INT8_MAX)                                                                           \
    X(KILN_INT16, int16_t, INT16_MIN, INT16_MAX)                                                                       \
    X(KILN_INT32, int32_t, INT32_MIN, INT32_MAX)                                                                       \
    X(KILN_INT64, int64_t, INT64_MIN, INT64_MAX)                                                                       \
    X(KILN_UINT8, uint8_t, 0, UINT8_MAX)                                                                               \
    X(KILN_UINT16, uint16_t, 0, UINT16_MAX)                                                                            \
    X(KILN_UINT32, uint32_t, 0, UINT32_MAX)                                                                            \
    X(KILN_UINT64, uint64_t, 0, UINT64_MAX)

#define KILN_NUMERIC_TYPES(X) KILN_FLOAT_TYPES(X) KILN_INTEGER_TYPES(X)

/* NaN test that typed kernels can apply to any of the types above (integers are never NaN). */
static inline bool float_is_nan(float v) { return isnan(v); }
static inline bool double_is_nan(double v) { return isnan(v); }
static inline bool integer_is_nan(int64_t v) { return (void)v, false; }
#define VALUE_IS_NAN(v) _Generic((v), float : float_is_nan, double : double_is_nan, default : integer_is_nan)(v)

#endif
