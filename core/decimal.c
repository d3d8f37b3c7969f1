/*
 * decimal.c — see decimal.h.
 */
#include "core/decimal.h"

const double decimal_powers_of_ten[DECIMAL_EXACT_POWERS] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                            1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool decimal_fast_double(uint64_t m, int64_t e, bool negative, double *out)
{
    if (m > (UINT64_C(1) << 53) || e < -22 || e > 22) return false;
    double v = (double)m;
    v = e < 0 ? v / decimal_powers_of_ten[-e] : v * decimal_powers_of_ten[e];
    *out = negative ? -v : v;
    return true;
}
