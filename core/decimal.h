/*
 * decimal.h — the exact pieces of decimal <-> binary conversion that kiln's number readers (formats/json.c,
 * batch/number.c) and writers (serve/json_writer.c) share: the powers of ten a double holds exactly, and
 * Clinger's fast path.
 */
#ifndef KILN_CORE_DECIMAL_H
#define KILN_CORE_DECIMAL_H

#include <stdbool.h>
#include <stdint.h>

/* 10^0 .. 10^22: every one exact in a double (10^22 = 2^22 * 5^22 and 5^22 < 2^53). */
#define DECIMAL_EXACT_POWERS 23
extern const double decimal_powers_of_ten[DECIMAL_EXACT_POWERS];

/* Clinger's fast path: when m <= 2^53 and |e| <= 22 both m and 10^|e| are exact doubles, so one correctly
 * rounded multiplication or division gives the correctly rounded (-1)^negative * m * 10^e, as strtod would.
 * False, leaving *out alone, when the fast path does not apply. */
bool decimal_fast_double(uint64_t m, int64_t e, bool negative, double *out);

#endif
