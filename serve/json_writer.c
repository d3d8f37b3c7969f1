/*
 * json_writer.c — see json_writer.h.
 *
 * Floats: "%.9g" always reads back as the same float32 (and "%.17g" as the same double), but usually prints
 * noise digits ("0.100000001"). The shortest form is found by trying 7, then 8, then 9 significant digits
 * (15, 16, 17 for doubles) and keeping the first that reads back exactly: when a shorter decimal rounds to the
 * value, rounding the value to 7 digits gives that decimal (padded with zeros, which %g drops), because the
 * value lies within half a float ulp of it and half an ulp is less than half a unit in the 7th digit. Trying
 * fewer than 7 digits would find nothing that 7 digits does not.
 */
#include "serve/json_writer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    size_t capacity = w->capacity ? w->capacity : 256;
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

size_t jw_format_float32(float v, char *buf)
{
    if (!isfinite(v)) return format_special(v, buf);
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
