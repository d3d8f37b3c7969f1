/*
 * cast.c — element-type conversion (see cast.h).
 *
 * Thirteen dtypes make 169 conversions. Rather than writing each, elements pass through the one wide type that
 * holds every value of their kind exactly: double for the floating types, int64 for bool and the integers up
 * to uint32, uint64 for uint64. A conversion is then a load into the wide type and a store out of it, done a
 * block at a time through a small stack buffer so both loops stay in L1: 13 loads and 3 x 13 stores in all.
 * Only float64 -> float16/bfloat16 rounds twice (via float32), which may differ from a direct rounding in the
 * last bit of a half.
 */
#include "kernels/cast.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

#define CAST_BLOCK 256

typedef enum wide_type { WIDE_DOUBLE, WIDE_INT64, WIDE_UINT64 } wide_type;

typedef union wide_block {
    double f[CAST_BLOCK];
    int64_t i[CAST_BLOCK];
    uint64_t u[CAST_BLOCK];
} wide_block;

bool cast_supported(kiln_dtype dtype)
{
    return dtype_is_float(dtype) || dtype_is_integer(dtype) || dtype == KILN_BOOL;
}

static wide_type wide_type_of(kiln_dtype dtype)
{
    if (dtype_is_float(dtype)) return WIDE_DOUBLE;
    return dtype == KILN_UINT64 ? WIDE_UINT64 : WIDE_INT64;
}

/* ---- float -> integer as x86 (and so numpy) does it ------------------------------------------------------ */

static int32_t double_to_int32(double v)
{
    return v > -2147483649.0 && v < 2147483648.0 ? (int32_t)v : INT32_MIN; /* NaN fails both tests */
}

static int64_t double_to_int64(double v)
{
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : INT64_MIN;
}

static uint64_t double_to_uint64(double v)
{
    return v >= 0 && v < 18446744073709551616.0 ? (uint64_t)v : (uint64_t)double_to_int64(v);
}

/* ---- loads into the wide type ---------------------------------------------------------------------------- */

#define LOAD(T, out, expr)                                                                                  \
    do {                                                                                                    \
        const T *s = (const T *)src;                                                                        \
        for (int64_t i = 0; i < n; i++) out[i] = (expr);                                                    \
    } while (0)

static void load_wide(const void *src, kiln_dtype from, wide_block *w, int64_t n)
{
    switch (from) {
    case KILN_FLOAT32: LOAD(float, w->f, s[i]); break;
    case KILN_FLOAT64: LOAD(double, w->f, s[i]); break;
    case KILN_FLOAT16: LOAD(uint16_t, w->f, dtype_half_to_float(s[i])); break;
    case KILN_BFLOAT16: LOAD(uint16_t, w->f, dtype_bfloat16_to_float(s[i])); break;
    case KILN_BOOL: LOAD(uint8_t, w->i, s[i] != 0); break;
    case KILN_INT8: LOAD(int8_t, w->i, s[i]); break;
    case KILN_INT16: LOAD(int16_t, w->i, s[i]); break;
    case KILN_INT32: LOAD(int32_t, w->i, s[i]); break;
    case KILN_INT64: LOAD(int64_t, w->i, s[i]); break;
    case KILN_UINT8: LOAD(uint8_t, w->i, s[i]); break;
    case KILN_UINT16: LOAD(uint16_t, w->i, s[i]); break;
    case KILN_UINT32: LOAD(uint32_t, w->i, s[i]); break;
    case KILN_UINT64: LOAD(uint64_t, w->u, s[i]); break;
    default: break;
    }
}

#undef LOAD

/* ---- stores out of the wide type ------------------------------------------------------------------------- */

#define STORE(T, expr)                                                                                      \
    do {                                                                                                    \
        T *d = (T *)dst;                                                                                    \
        for (int64_t i = 0; i < n; i++) d[i] = (T)(expr);                                                   \
    } while (0)

static void store_from_double(const double *w, void *dst, kiln_dtype to, int64_t n)
{
    switch (to) {
    case KILN_FLOAT32: STORE(float, w[i]); break;
    case KILN_FLOAT64: STORE(double, w[i]); break;
    case KILN_FLOAT16: STORE(uint16_t, dtype_float_to_half((float)w[i])); break;
    case KILN_BFLOAT16: STORE(uint16_t, dtype_float_to_bfloat16((float)w[i])); break;
    case KILN_BOOL: STORE(uint8_t, w[i] != 0); break;
    case KILN_INT8: STORE(int8_t, (uint32_t)double_to_int32(w[i])); break;
    case KILN_INT16: STORE(int16_t, (uint32_t)double_to_int32(w[i])); break;
    case KILN_INT32: STORE(int32_t, double_to_int32(w[i])); break;
    case KILN_INT64: STORE(int64_t, double_to_int64(w[i])); break;
    case KILN_UINT8: STORE(uint8_t, (uint32_t)double_to_int32(w[i])); break;
    case KILN_UINT16: STORE(uint16_t, (uint32_t)double_to_int32(w[i])); break;
    case KILN_UINT32: STORE(uint32_t, (uint64_t)double_to_int64(w[i])); break;
    case KILN_UINT64: STORE(uint64_t, double_to_uint64(w[i])); break;
    default: break;
    }
}

/* Integers wrap to narrower widths (two's complement, as every target kiln supports does). */
#define STORE_FROM_INTEGER(w)                                                                               \
    switch (to) {                                                                                           \
    case KILN_FLOAT32: STORE(float, w[i]); break;                                                           \
    case KILN_FLOAT64: STORE(double, w[i]); break;                                                          \
    case KILN_FLOAT16: STORE(uint16_t, dtype_float_to_half((float)w[i])); break;                            \
    case KILN_BFLOAT16: STORE(uint16_t, dtype_float_to_bfloat16((float)w[i])); break;                       \
    case KILN_BOOL: STORE(uint8_t, w[i] != 0); break;                                                       \
    case KILN_INT8: STORE(int8_t, (uint64_t)w[i]); break;                                                   \
    case KILN_INT16: STORE(int16_t, (uint64_t)w[i]); break;                                                 \
    case KILN_INT32: STORE(int32_t, (uint64_t)w[i]); break;                                                 \
    case KILN_INT64: STORE(int64_t, (uint64_t)w[i]); break;                                                 \
    case KILN_UINT8: STORE(uint8_t, w[i]); break;                                                           \
    case KILN_UINT16: STORE(uint16_t, w[i]); break;                                                         \
    case KILN_UINT32: STORE(uint32_t, w[i]); break;                                                         \
    case KILN_UINT64: STORE(uint64_t, w[i]); break;                                                         \
    default: break;                                                                                         \
    }

static void store_from_int64(const int64_t *w, void *dst, kiln_dtype to, int64_t n) { STORE_FROM_INTEGER(w) }

static void store_from_uint64(const uint64_t *w, void *dst, kiln_dtype to, int64_t n) { STORE_FROM_INTEGER(w) }

#undef STORE_FROM_INTEGER
#undef STORE

void cast_elements(const void *src, kiln_dtype from, void *dst, kiln_dtype to, int64_t n)
{
    size_t in_size = kiln_dtype_size(from), out_size = kiln_dtype_size(to);
    if (from == to) {
        if (n > 0 && src != dst) memcpy(dst, src, (size_t)n * in_size);
        return;
    }
    wide_type wide = wide_type_of(from);
    wide_block w;
    for (int64_t start = 0; start < n; start += CAST_BLOCK) {
        int64_t count = n - start < CAST_BLOCK ? n - start : CAST_BLOCK;
        const char *s = (const char *)src + start * (int64_t)in_size;
        char *d = (char *)dst + start * (int64_t)out_size;
        load_wide(s, from, &w, count);
        if (wide == WIDE_DOUBLE) store_from_double(w.f, d, to, count);
        else if (wide == WIDE_INT64) store_from_int64(w.i, d, to, count);
        else store_from_uint64(w.u, d, to, count);
    }
}

/* ---- numbers as text ----------------------------------------------------------------------------------- */

/* True when `text` reads back to v's value in dtype `from` (v already holds that value exactly). */
static bool reads_back(const char *text, double v, kiln_dtype from)
{
    double back = strtod(text, NULL);
    switch (from) {
    case KILN_FLOAT32: return (float)back == (float)v;
    case KILN_FLOAT16: return dtype_float_to_half((float)back) == dtype_float_to_half((float)v);
    case KILN_BFLOAT16: return dtype_float_to_bfloat16((float)back) == dtype_float_to_bfloat16((float)v);
    default: return back == v;
    }
}

/* v (finite, not 0) in NumPy's str() style from its shortest round-tripping digits. */
static void format_shortest(double v, kiln_dtype from, char *text)
{
    char scientific[40];
    int precision = 1;
    for (; precision < 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision - 1, v);
        if (reads_back(scientific, v, from)) break;
    }
    snprintf(scientific, sizeof scientific, "%.*e", precision - 1, v);
    /* scientific is "-d.ddde+XX": gather the digits and the exponent */
    char digits[24];
    int n = 0;
    const char *p = scientific + (v < 0);
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0') n--; /* "%.*e" may pad with zeros */
    digits[n] = '\0';
    int exponent = atoi(p + 1);
    char *out = text;
    if (v < 0) *out++ = '-';
    double magnitude = fabs(v);
    if (magnitude >= 1e-4 && magnitude < 1e16) {
        if (exponent < 0) {
            out += sprintf(out, "0.");
            for (int k = -1; k > exponent; k--) *out++ = '0';
            sprintf(out, "%s", digits);
        } else {
            for (int k = 0; k <= exponent; k++) *out++ = k < n ? digits[k] : '0';
            *out++ = '.';
            if (n > exponent + 1) sprintf(out, "%s", digits + exponent + 1);
            else sprintf(out, "0");
        }
    } else {
        *out++ = digits[0];
        if (n > 1) out += sprintf(out, ".%s", digits + 1);
        sprintf(out, "e%c%02d", exponent < 0 ? '-' : '+', abs(exponent));
    }
}

void cast_format_element(const void *src, kiln_dtype from, int64_t i, char text[CAST_TEXT_MAX])
{
    wide_block w = {{0}};
    const char *element = (const char *)src + i * (int64_t)kiln_dtype_size(from);
    load_wide(element, from, &w, 1);
    if (wide_type_of(from) == WIDE_INT64) {
        snprintf(text, CAST_TEXT_MAX, "%lld", (long long)w.i[0]);
    } else if (wide_type_of(from) == WIDE_UINT64) {
        snprintf(text, CAST_TEXT_MAX, "%llu", (unsigned long long)w.u[0]);
    } else if (isnan(w.f[0])) {
        snprintf(text, CAST_TEXT_MAX, "nan");
    } else if (isinf(w.f[0])) {
        snprintf(text, CAST_TEXT_MAX, w.f[0] < 0 ? "-inf" : "inf");
    } else if (w.f[0] == 0) {
        snprintf(text, CAST_TEXT_MAX, signbit(w.f[0]) ? "-0.0" : "0.0");
    } else {
        format_shortest(w.f[0], from, text);
    }
}

bool cast_parse_element(const char *text, void *dst, kiln_dtype to, int64_t i)
{
    char *end;
    char *element = (char *)dst + i * (int64_t)kiln_dtype_size(to);
    if (dtype_is_integer(to)) {
        errno = 0;
        long long whole = strtoll(text, &end, 10);
        if (end != text && *end == '\0' && errno == 0) {
            int64_t value = whole;
            cast_elements(&value, KILN_INT64, element, to, 1);
            return true;
        }
    }
    double value = strtod(text, &end);
    bool ok = end != text && *end == '\0';
    if (!ok) value = 0;
    cast_elements(&value, KILN_FLOAT64, element, to, 1);
    return ok;
}
