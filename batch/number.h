/*
 * number.h — decimal text to numbers and back, for the text formats `kiln batch` reads and writes.
 *
 * Parsing is exact and locale-independent: a field reads as the float32 (or float64) that strtof (strtod)
 * gives in the C locale, i.e. the correctly rounded value. Most fields take a fast path (Clinger's: up to 19
 * significant digits and a power of ten up to 22 make the double quotient exact), and the rare field that
 * could round differently through the double goes to strtof on a bounded copy. Formatting prints floats
 * with 9 significant digits (float32) or 17 (float64), the precision that always reads back to the same
 * value, exactly as printf's "%.9g" / "%.17g" would.
 */
#ifndef KILN_BATCH_NUMBER_H
#define KILN_BATCH_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest number text the parsers accept (longer fields are rejected, never truncated). */
#define NUMBER_MAX_CHARS 256
/* Enough for any value number_format_* writes. */
#define NUMBER_FORMAT_MAX 32

/* Each returns false when s[0 .. len) is not a whole number. Spaces around the number are allowed; so are
 * nan, inf and infinity in any case, with a sign. Integers must be integral and in range. */
bool number_parse_float(const char *s, size_t len, float *out);
bool number_parse_double(const char *s, size_t len, double *out);
bool number_parse_int64(const char *s, size_t len, int64_t *out);

/* Write the number into buf (NUMBER_FORMAT_MAX bytes, no terminator) and return its length. */
size_t number_format_float(float v, char *buf);
size_t number_format_double(double v, char *buf);
size_t number_format_int64(int64_t v, char *buf);
size_t number_format_uint64(uint64_t v, char *buf);

#endif
