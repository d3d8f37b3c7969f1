/*
 * quant.c — rounding and saturation for quantized values (see quant.h).
 *
 * nearbyint rounds in the current rounding mode, which kiln never changes from the default
 * round-to-nearest-even: exactly the spec's "round half to even". The clamp happens in double, before the
 * conversion to int32, so that no out-of-range value is ever converted.
 */
#include "kernels/quant.h"

#include <math.h>

const kiln_dtype QUANT_DTYPES[] = {KILN_INT8, KILN_UINT8, KILN_UNDEFINED};

int32_t quant_saturate(double scaled, int32_t zero_point, kiln_dtype dtype)
{
    double lo = dtype == KILN_INT8 ? INT8_MIN : 0, hi = dtype == KILN_INT8 ? INT8_MAX : UINT8_MAX;
    double v = nearbyint(scaled) + zero_point;
    return (int32_t)(v >= lo ? (v <= hi ? v : hi) : lo);
}
