/*
 * number.c — exact decimal parsing and round-trip formatting (see number.h).
 *
 * A CSV of a million rows holds tens of millions of numbers, so both directions avoid the C library's general
 * routines on the common path, yet must give exactly their answers:
 *
 * Parsing reads the digits into a 64-bit integer m and a power of ten e. When m <= 2^53 and |e| <= 22, m and
 * 10^|e| are exact doubles, so m * 10^e (or m / 10^-e) is the correctly rounded double (Clinger, 1990). That is
 * the answer for float64. For float32 the double is rounded once more, which can differ from rounding the
 * decimal directly only when the double lands exactly halfway between two floats; those values, and
 * everything outside the fast path, go to strtof/strtod on a bounded copy of the text. The program never
 * calls setlocale, so the C library works in the C locale.
 *
 * Formatting to 9 significant digits scales the value by 10^(8 - exponent) in double (one rounding, error
 * below 2e-7 of a unit in the last digit) and rounds to an integer; when the scaled value is within 1e-6 of a
 * rounding tie, or the power of ten is not exact, snprintf decides. The digits are then laid out by %g's rules.
 */
#include "batch/number.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **s, size_t *len)
{
    while (*len && is_space(**s)) (*s)++, (*len)--;
    while (*len && is_space((*s)[*len - 1])) (*len)--;
}

static bool equals_ignoring_case(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return false;
    }
    return true;
}

/* nan, inf, infinity (any case, optional sign); false when the text is none of these. */
static bool parse_special(const char *s, size_t len, double *out)
{
    double sign = 1.0;
    if (len && (*s == '-' || *s == '+')) {
        if (*s == '-') sign = -1.0;
        s++, len--;
    }
    if (equals_ignoring_case(s, len, "nan")) *out = sign * NAN;
    else if (equals_ignoring_case(s, len, "inf") || equals_ignoring_case(s, len, "infinity")) *out = sign * INFINITY;
    else return false;
    return true;
}

/* A decimal number as read: value = (negative ? -1 : 1) * mantissa * 10^exponent, where mantissa holds the
 * first 19 significant digits and `inexact` says that non-zero digits were dropped after them. */
typedef struct decimal {
    bool negative, inexact;
    uint64_t mantissa;
    int64_t exponent;
} decimal;

static void add_digit(decimal *d, int digit, int *significant, int64_t *dropped_digits)
{
    if (*significant < 19) {
        d->mantissa = d->mantissa * 10 + (uint64_t)digit;
        if (d->mantissa) (*significant)++;
    } else {
        (*dropped_digits)++;
        if (digit) d->inexact = true;
    }
}

/* Reads [+-]digits[.digits][(e|E)[+-]digits] covering all of s[0 .. len); false on anything else. */
static bool parse_decimal(const char *s, size_t len, decimal *d)
{
    const char *p = s, *end = s + len;
    memset(d, 0, sizeof *d);
    if (p < end && (*p == '-' || *p == '+')) d->negative = *p++ == '-';
    int significant = 0, digits = 0;
    int64_t dropped = 0, fraction_digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) add_digit(d, *p - '0', &significant, &dropped);
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++, fraction_digits++)
            add_digit(d, *p - '0', &significant, &dropped);
    }
    if (!digits) return false;
    int64_t exponent = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool negative = false;
        if (p < end && (*p == '-' || *p == '+')) negative = *p++ == '-';
        if (p == end || *p < '0' || *p > '9') return false;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
        if (negative) exponent = -exponent;
    }
    if (p != end) return false;
    /* dropped digits of the integer part scale the mantissa up; dropped fraction digits do not */
    d->exponent = exponent - fraction_digits + dropped;
    return true;
}

/* The correctly rounded double of d when Clinger's fast path applies. */
static bool fast_double(const decimal *d, double *out)
{
    return !d->inexact && decimal_fast_double(d->mantissa, d->exponent, d->negative, out);
}

/* Whether rounding the double v to float32 could differ from rounding the exact decimal: v lies exactly
 * halfway between two floats, or outside the normal float range where the spacing changes. */
static bool float_rounding_is_ambiguous(double v)
{
    double a = fabs(v);
    if (a == 0.0) return false;
    if (a < 1.1754943508222875e-38 || a > 3.4028234663852886e+38) return true;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & ((UINT64_C(1) << 29) - 1)) == (UINT64_C(1) << 28);
}

/* strtof/strtod on a NUL-terminated copy of text already checked to be decimal syntax. */
static bool parse_with_libc(const char *s, size_t len, bool want_float, double *out)
{
    char copy[NUMBER_MAX_CHARS + 1];
    if (len > NUMBER_MAX_CHARS) return false;
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *end;
    *out = want_float ? (double)strtof(copy, &end) : strtod(copy, &end);
    return end == copy + len;
}

bool number_parse_float(const char *s, size_t len, float *out)
{
    trim(&s, &len);
    decimal d;
    double v;
    if (!parse_decimal(s, len, &d)) {
        if (!parse_special(s, len, &v)) return false;
        *out = (float)v;
        return true;
    }
    if (d.mantissa == 0) {
        *out = d.negative ? -0.0f : 0.0f;
        return true;
    }
    if (fast_double(&d, &v) && !float_rounding_is_ambiguous(v)) {
        *out = (float)v;
        return true;
    }
    if (!parse_with_libc(s, len, true, &v)) return false;
    *out = (float)v;
    return true;
}

bool number_parse_double(const char *s, size_t len, double *out)
{
    trim(&s, &len);
    decimal d;
    if (!parse_decimal(s, len, &d)) return parse_special(s, len, out);
    if (d.mantissa == 0) {
        *out = d.negative ? -0.0 : 0.0;
        return true;
    }
    if (fast_double(&d, out)) return true;
    return parse_with_libc(s, len, false, out);
}

bool number_parse_int64(const char *s, size_t len, int64_t *out)
{
    trim(&s, &len);
    const char *p = s, *end = s + len;
    bool negative = false;
    if (p < end && (*p == '-' || *p == '+')) negative = *p++ == '-';
    if (p == end) return false;
    uint64_t v = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') break;
        uint64_t digit = (uint64_t)(*p - '0');
        if (v > (limit - digit) / 10) return false;
        v = v * 10 + digit;
    }
    if (p < end) {
        /* "3.0" and "1e3" are integers written as floats, as pandas writes integer columns with missing values */
        double f;
        if (!number_parse_double(s, len, &f) || f != floor(f) || !(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
            return false;
        *out = (int64_t)f;
        return true;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ---- formatting ------------------------------------------------------------------------------------------ */

size_t number_format_uint64(uint64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

size_t number_format_int64(int64_t v, char *buf)
{
    if (v >= 0) return number_format_uint64((uint64_t)v, buf);
    buf[0] = '-';
    return 1 + number_format_uint64(0 - (uint64_t)v, buf + 1);
}

static size_t format_with_libc(double v, int precision, char *buf)
{
    char tmp[NUMBER_FORMAT_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, "%.*g", precision, v);
    memcpy(buf, tmp, (size_t)n);
    return (size_t)n;
}

/* Lays out 9 significant digits (digits[0] != '0') times 10^exponent as %.9g does: fixed notation when
 * -4 <= exponent < 9, else d.dddde+XX; trailing zeros of the fraction and a bare point are dropped. */
static size_t layout_g9(bool negative, const char digits[9], int exponent, char *buf)
{
    int last = 8;
    while (last > 0 && digits[last] == '0') last--; /* digits[0..last] are significant */
    size_t n = 0;
    if (negative) buf[n++] = '-';
    if (exponent >= -4 && exponent < 9) {
        if (exponent < 0) {
            buf[n++] = '0';
            buf[n++] = '.';
            for (int i = 0; i < -exponent - 1; i++) buf[n++] = '0';
            for (int i = 0; i <= last; i++) buf[n++] = digits[i];
            return n;
        }
        for (int i = 0; i <= exponent; i++) buf[n++] = digits[i];
        if (last > exponent) {
            buf[n++] = '.';
            for (int i = exponent + 1; i <= last; i++) buf[n++] = digits[i];
        }
        return n;
    }
    buf[n++] = digits[0];
    if (last > 0) {
        buf[n++] = '.';
        for (int i = 1; i <= last; i++) buf[n++] = digits[i];
    }
    buf[n++] = 'e';
    buf[n++] = exponent < 0 ? '-' : '+';
    int e = exponent < 0 ? -exponent : exponent;
    if (e < 10) buf[n++] = '0';
    n += number_format_uint64((uint64_t)e, buf + n);
    return n;
}

size_t number_format_float(float f, char *buf)
{
    double v = f;
    if (!isfinite(v) || v == 0.0) return format_with_libc(v, 9, buf);
    bool negative = v < 0;
    double a = fabs(v);
    int exponent = (int)floor(log10(a));
    for (int attempt = 0; attempt < 2; attempt++) {
        int k = 8 - exponent;
        if (k < -22 || k > 22) break;
        double scaled = k >= 0 ? a * decimal_powers_of_ten[k] : a / decimal_powers_of_ten[-k];
        if (scaled < 1e8) { /* log10 overestimated the exponent */
            exponent--;
            continue;
        }
        if (scaled >= 1e9) {
            exponent++;
            continue;
        }
        double whole = floor(scaled), fraction = scaled - whole;
        if (fabs(fraction - 0.5) < 1e-6) break; /* too close to a tie to trust the double */
        uint64_t r = (uint64_t)whole + (fraction > 0.5);
        if (r == 1000000000u) { /* 9.999999996 rounds up to 10.0000000 */
            r = 100000000u;
            exponent++;
        }
        char digits[9];
        for (int i = 8; i >= 0; i--, r /= 10) digits[i] = (char)('0' + r % 10);
        return layout_g9(negative, digits, exponent, buf);
    }
    return format_with_libc(v, 9, buf);
}

size_t number_format_double(double v, char *buf) { return format_with_libc(v, 17, buf); }
