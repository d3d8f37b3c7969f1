/*
 * strided_sum.h — the sum of n values `stride` apart, accumulated in double: either the plain sum or the
 * sum of squared deviations from a centre (the numerator of a variance).
 *
 * Four independent accumulators let the additions of a long run overlap instead of each waiting for the
 * last (one double accumulator is bound by the add latency, several cycles an element), and partial sums
 * also round a little less than one running sum. DEFINE_STRIDED_SUM(T) defines strided_sum_T for element
 * type T; `square` is a constant at every call, so the inlined loop carries no branch.
 */
#ifndef KILN_KERNELS_STRIDED_SUM_H
#define KILN_KERNELS_STRIDED_SUM_H

#include <stdbool.h>
#include <stdint.h>

#define DEFINE_STRIDED_SUM(T)                                                                                          \
    static inline double strided_sum_##T(const T *p, int64_t n, int64_t stride, double centre, bool square)            \
    {                                                                                                                  \
        double a[4] = {0, 0, 0, 0};                                                                                    \
        int64_t k = 0;                                                                                                 \
        for (; k + 4 <= n; k += 4)                                                                                     \
            for (int j = 0; j < 4; j++) {                                                                              \
                double v = (double)p[(k + j) * stride] - centre;                                                       \
                a[j] += square ? v * v : v;                                                                            \
            }                                                                                                          \
        for (; k < n; k++) {                                                                                           \
            double v = (double)p[k * stride] - centre;                                                                 \
            a[0] += square ? v * v : v;                                                                                \
        }                                                                                                              \
        return (a[0] + a[1]) + (a[2] + a[3]);                                                                          \
    }

#endif
