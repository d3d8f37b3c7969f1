/*
 * json_writer.c — see json_writer.h.
 *
 * Floats: "%.9g" always reads back as the same float32 (and "%.17g" as the same double), but usually prints
 * noise digits ("0.100000001"). The shortest form is found by trying 7, then 8, then 9 significant digits
 * (15, 16, 17 for doubles) and keeping the first that reads back exactly: when a shorter decimal rounds to the
 * value, rounding the value to 7 digits gives that decimal (padded with zeros, which %g drops), because the
 * value lies within half a float ulp of it and half an ulp is less than half a unit in the 7th digit. Trying
 * fewer than 7 digits would find nothing that 7 digits does not.
 *
 * printf and strtof are most of the cost of a small response, so float32 values take a fast path first: the
 * d-digit decimal is m = round(|v| * 10^k) in double arithmetic (10^k exact for |k| <= 22), and it reads back
 * as v exactly when m / 10^k lies inside v's rounding interval (v +- half a float ulp), which double arithmetic
 * decides except within a few double ulps of the interval's ends. Values that land there, or need |k| > 22,
 * take the printf path; so the fast path never prints a value that does not read back exactly.
 */
#include "serve/json_writer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "formats/json.h"

void jw_init(json_writer *w) { memset(w, 0, sizeof *w); }

void jw_free(json_writer *w)
{
    free(w->data);
    jw_init(w);
}

void jw_reset(json_writer *w)
{
    w->length = 0;
    w->failed = false;
    w->depth = 0;
    w->has_items = 0;
    w->after_key = false;
}

char *jw_take(json_writer *w, size_t *length)
{
    char *data = w->failed ? NULL : w->data;
    *length = w->failed ? 0 : w->length;
    if (w->failed) free(w->data);
    jw_init(w);
    return data;
}

/* Room for n more bytes; false (and failed) when memory runs out. */
static bool reserve(json_writer *w, size_t n)
{
    if (w->failed) return false;
    if (w->capacity - w->length >= n) return true;
    size_t capacity = w->capacity ? w->capacity : 1024; /* most responses fit: one allocation */
    while (capacity - w->length < n) {
        if (capacity > SIZE_MAX / 2) {
            w->failed = true;
            return false;
        }
        capacity *= 2;
    }
    char *grown = realloc(w->data, capacity);
    if (!grown) {
        w->failed = true;
        return false;
    }
    w->data = grown;
    w->capacity = capacity;
    return true;
}

static void put(json_writer *w, const char *bytes, size_t n)
{
    if (!reserve(w, n)) return;
    memcpy(w->data + w->length, bytes, n);
    w->length += n;
}

static void put_char(json_writer *w, char c)
{
    if (!reserve(w, 1)) return;
    w->data[w->length++] = c;
}

/* Before any value or key: the comma that separates it from the previous item. */
static void separate(json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth == 0) return;
    uint32_t bit = 1u << (w->depth - 1);
    if (w->has_items & bit) put_char(w, ',');
    w->has_items |= bit;
}

static void open_container(json_writer *w, char c)
{
    separate(w);
    put_char(w, c);
    if (w->depth >= JW_MAX_DEPTH) {
        w->failed = true; /* a bug in the caller, not input: every response has a fixed shape */
        return;
    }
    w->depth++;
    w->has_items &= ~(1u << (w->depth - 1));
}

static void close_container(json_writer *w, char c)
{
    if (w->depth > 0) w->depth--;
    put_char(w, c);
}

void jw_object_begin(json_writer *w) { open_container(w, '{'); }
void jw_object_end(json_writer *w) { close_container(w, '}'); }
void jw_array_begin(json_writer *w) { open_container(w, '['); }
void jw_array_end(json_writer *w) { close_container(w, ']'); }

/* Strings that are not valid UTF-8 (a URL's raw bytes echoed in an error) have their bytes above 0x7F
 * written as \u00XX, so the document stays valid JSON whatever it quotes. */
static void put_escaped(json_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t plain = 0; /* printable ASCII other than '"' and '\\': every key, most values */
    while (plain < n && s[plain] >= 0x20 && s[plain] < 0x7f && s[plain] != '"' && s[plain] != '\\') plain++;
    if (plain == n && reserve(w, n + 2)) {
        w->data[w->length++] = '"';
        memcpy(w->data + w->length, s, n);
        w->length += n;
        w->data[w->length++] = '"';
        return;
    }
    bool escape_high = !json_utf8_valid((const uint8_t *)s, n);
    put_char(w, '"');
    size_t run = 0; /* bytes that need no escape, copied in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || !escape_high)) continue;
        put(w, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') put(w, (const char[]){'\\', (char)c}, 2);
        else if (c == '\n') put(w, "\\n", 2);
        else if (c == '\r') put(w, "\\r", 2);
        else if (c == '\t') put(w, "\\t", 2);
        else put(w, esc, 6);
    }
    put(w, s + run, n - run);
    put_char(w, '"');
}

void jw_key(json_writer *w, const char *key)
{
    separate(w);
    put_escaped(w, key, strlen(key));
    put_char(w, ':');
    w->after_key = true;
}

void jw_string_n(json_writer *w, const char *s, size_t n)
{
    separate(w);
    put_escaped(w, s, n);
}

void jw_string(json_writer *w, const char *s) { jw_string_n(w, s, strlen(s)); }

/* Decimal digits of v, written backwards from end; returns where they start. */
static char *format_digits(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

void jw_uint(json_writer *w, uint64_t v)
{
    char buf[24], *end = buf + sizeof buf;
    char *start = format_digits(v, end);
    separate(w);
    put(w, start, (size_t)(end - start));
}

void jw_int(json_writer *w, int64_t v)
{
    char buf[24], *end = buf + sizeof buf;
    uint64_t magnitude = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *start = format_digits(magnitude, end);
    if (v < 0) *--start = '-';
    separate(w);
    put(w, start, (size_t)(end - start));
}

void jw_bool(json_writer *w, bool v)
{
    separate(w);
    if (v) put(w, "true", 4);
    else put(w, "false", 5);
}

void jw_null(json_writer *w)
{
    separate(w);
    put(w, "null", 4);
}

static size_t format_special(double v, char *buf)
{
    const char *text = isnan(v) ? "NaN" : v < 0 ? "-Infinity" : "Infinity";
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return n;
}

/* Whether m * 10^-k (k may be negative) certainly reads back as the float x (> 0): 1 yes, 0 no, -1 too close
 * to tell in double arithmetic. */
static int reads_back_as(uint64_t m, int k, float x)
{
    double value = k >= 0 ? (double)m / decimal_powers_of_ten[k] : (double)m * decimal_powers_of_ten[-k];
    double half_ulp = ((double)nextafterf(x, INFINITY) - (double)x) / 2;
    double below = (double)x - ((double)x - (double)nextafterf(x, 0)) / 2, above = (double)x + half_ulp;
    double slack = value * 0x1p-50; /* the division's rounding, with room to spare */
    if (value > below + slack && value < above - slack) return 1;
    if (value < below - slack || value > above + slack) return 0;
    return -1;
}

/* m (d digits) times 10^exponent10 as printf's %g would write it: plain from 1e-4 to below 10^d, else
 * d.ddde[+-]XX. Trailing zeros dropped. */
static size_t write_decimal(bool negative, uint64_t m, int d, int exponent10, char *buf)
{
    char digits[24];
    for (int i = d - 1; i >= 0; i--, m /= 10) digits[i] = (char)('0' + m % 10);
    int precision = d;
    while (d > 1 && digits[d - 1] == '0') d--;
    size_t n = 0;
    if (negative) buf[n++] = '-';
    if (exponent10 >= -4 && exponent10 < 0) { /* 0.000ddd */
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = -1; i > exponent10; i--) buf[n++] = '0';
        for (int i = 0; i < d; i++) buf[n++] = digits[i];
        return n;
    }
    if (exponent10 >= 0 && exponent10 < precision) { /* ddd.ddd */
        for (int i = 0; i <= exponent10; i++) buf[n++] = i < d ? digits[i] : '0';
        if (d > exponent10 + 1) buf[n++] = '.';
        for (int i = exponent10 + 1; i < d; i++) buf[n++] = digits[i];
        return n;
    }
    buf[n++] = digits[0];
    if (d > 1) buf[n++] = '.';
    for (int i = 1; i < d; i++) buf[n++] = digits[i];
    return n + (size_t)sprintf(buf + n, "e%c%02d", exponent10 < 0 ? '-' : '+', abs(exponent10));
}

/* The fast path above; 0 when the value must take the printf path. */
static size_t format_float32_fast(float v, char *buf)
{
    float x = fabsf(v);
    if (x == 0 || !isnormal(x)) return 0;
    int exponent10 = (int)floor(log10((double)x));
    for (int d = 7; d <= 9; d++) {
        int k = d - 1 - exponent10; /* m = x * 10^k has d digits */
        if (k > 22 || k < -22) return 0;
        double scaled = k >= 0 ? (double)x * decimal_powers_of_ten[k] : (double)x / decimal_powers_of_ten[-k];
        uint64_t m = (uint64_t)llround(scaled);
        if (m < (uint64_t)decimal_powers_of_ten[d - 1] || m >= (uint64_t)decimal_powers_of_ten[d])
            return 0; /* log10 was off by one near a power of ten */
        int ok = reads_back_as(m, k, x);
        if (ok < 0) return 0;
        if (ok) return write_decimal(v < 0, m, d, exponent10, buf);
    }
    return 0;
}

size_t jw_format_float32(float v, char *buf)
{
    if (!isfinite(v)) return format_special(v, buf);
    size_t fast = format_float32_fast(v, buf);
    if (fast) return fast;
    int n = 0;
    for (int digits = 7; digits <= 9; digits++) {
        n = snprintf(buf, 32, "%.*g", digits, (double)v);
        if (digits == 9 || strtof(buf, NULL) == v) break;
    }
    return (size_t)n;
}

size_t jw_format_float64(double v, char *buf)
{
    if (!isfinite(v)) return format_special(v, buf);
    int n = 0;
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(buf, 32, "%.*g", digits, v);
        if (digits == 17 || strtod(buf, NULL) == v) break;
    }
    return (size_t)n;
}

void jw_float32(json_writer *w, float v)
{
    char buf[32];
    size_t n = jw_format_float32(v, buf);
    separate(w);
    put(w, buf, n);
}

void jw_float64(json_writer *w, double v)
{
    char buf[32];
    size_t n = jw_format_float64(v, buf);
    separate(w);
    put(w, buf, n);
}

void jw_raw(json_writer *w, const void *bytes, size_t n) { put(w, bytes, n); }

void jw_printf(json_writer *w, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0 || !reserve(w, (size_t)n + 1)) return;
    va_start(args, fmt);
    vsnprintf(w->data + w->length, (size_t)n + 1, fmt, args);
    va_end(args);
    w->length += (size_t)n;
}
