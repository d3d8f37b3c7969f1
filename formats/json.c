/*
 * json.c — the JSON reader, and the accessors every reader's documents share (see json.h).
 *
 * A recursive-descent parser over a bounded byte range: each step checks the bytes that remain before it
 * reads, recursion stops at JSON_MAX_DEPTH, and the values of open containers wait on one growable stack
 * (json_builder) until their container closes and they are copied into the region — so the document costs
 * one allocation per container, not per value. Numbers are validated here and converted only when read
 * (json_to_*), with strtod/strtof on a bounded, NUL-terminated copy whose '.' is swapped for the C locale's
 * decimal point, so a program that called setlocale() still reads "1.5" as 1.5.
 */
#include "formats/json.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "core/error.h"

/* ---- numbers ------------------------------------------------------------------------------------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Compares byte by byte, stopping at the first difference: packed numbers are rescanned without knowing
 * how many bytes follow them (see json_array_at). */
static bool has_prefix(const char *text, size_t avail, const char *word)
{
    for (size_t i = 0; word[i]; i++)
        if (i >= avail || text[i] != word[i]) return false;
    return true;
}

/* NaN, Infinity, -Infinity (XGBoost writes them); 0 when text starts with none of them. */
static size_t scan_special(const char *text, size_t avail)
{
    if (has_prefix(text, avail, "NaN")) return 3;
    if (has_prefix(text, avail, "Infinity")) return 8;
    if (has_prefix(text, avail, "-Infinity")) return 9;
    return 0;
}

static size_t scan_digits(const char *text, size_t i, size_t limit)
{
    while (i < limit && is_digit(text[i])) i++;
    return i;
}

size_t json_scan_number(const char *text, size_t avail)
{
    size_t special = scan_special(text, avail);
    if (special) return special;
    size_t limit = avail < JSON_MAX_NUMBER_CHARS + 1 ? avail : JSON_MAX_NUMBER_CHARS + 1;
    size_t i = 0;
    if (i < limit && text[i] == '-') i++;
    if (i >= limit || !is_digit(text[i])) return 0;
    i = text[i] == '0' ? i + 1 : scan_digits(text, i, limit); /* no leading zeros */
    if (i < limit && text[i] == '.') {
        size_t fraction = i + 1;
        i = scan_digits(text, fraction, limit);
        if (i == fraction) return 0;
    }
    if (i < limit && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < limit && (text[i] == '+' || text[i] == '-')) i++;
        size_t exponent = i;
        i = scan_digits(text, exponent, limit);
        if (i == exponent) return 0;
    }
    return i > JSON_MAX_NUMBER_CHARS ? 0 : i;
}

/* A validated number's text as strtod expects it in the current C locale. */
static bool locale_copy(const char *text, size_t len, char *buf, size_t capacity)
{
    const char *point = localeconv()->decimal_point;
    size_t point_len = point && point[0] ? strlen(point) : 0;
    if (!point_len) point = ".", point_len = 1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *piece = text[i] == '.' ? point : &text[i];
        size_t piece_len = text[i] == '.' ? point_len : 1;
        if (n + piece_len >= capacity) return false;
        memcpy(buf + n, piece, piece_len);
        n += piece_len;
    }
    buf[n] = '\0';
    return true;
}

/* Clinger's fast path: when a decimal is m * 10^e with m and 10^|e| both exact in the target type (m < 2^24 and
 * |e| <= 10 for float32, m < 2^53 and |e| <= 22 for double), one correctly rounded multiplication or division
 * gives the correctly rounded value, as strtof/strtod would. Most numbers in requests ("13.4", "0.08172") take
 * it, skipping strtof's multi-precision path. Returns false (to take the slow path) for anything else,
 * including text the JSON grammar would refuse, so the slow path reports it. */
static bool fast_decimal(const char *text, size_t len, bool as_float, double *out)
{
    static const float float_powers[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    size_t i = text[0] == '-';
    if (i >= len || !is_digit(text[i]) || (text[i] == '0' && i + 1 < len && is_digit(text[i + 1]))) return false;
    uint64_t m = 0;
    int e = 0;
    for (; i < len && is_digit(text[i]); i++) {
        if (m >= UINT64_C(1) << 53) return false;
        m = m * 10 + (uint64_t)(text[i] - '0');
    }
    if (i < len && text[i] == '.') {
        size_t first = ++i;
        for (; i < len && is_digit(text[i]); i++, e--) {
            if (m >= UINT64_C(1) << 53) return false;
            m = m * 10 + (uint64_t)(text[i] - '0');
        }
        if (i == first) return false;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        bool negative = ++i < len && text[i] == '-';
        if (i < len && (text[i] == '-' || text[i] == '+')) i++;
        size_t first = i;
        int exponent = 0;
        for (; i < len && is_digit(text[i]) && exponent < 1000; i++) exponent = exponent * 10 + (text[i] - '0');
        if (i == first) return false;
        e += negative ? -exponent : exponent;
    }
    if (i != len) return false;
    bool negative = text[0] == '-';
#if FLT_EVAL_METHOD == 0 /* float arithmetic is done in float: one rounding */
    if (as_float && m < (UINT64_C(1) << 24) && e >= -10 && e <= 10) {
        float f = (float)m;
        f = e < 0 ? f / float_powers[-e] : f * float_powers[e];
        *out = negative ? -f : f;
        return true;
    }
#else
    (void)float_powers;
#endif
    return !as_float && decimal_fast_double(m, e, negative, out);
}

/* Converts a number's text with strtod (as_float false) or strtof; false if it is not exactly a number. */
static bool text_to_real(const char *text, size_t len, bool as_float, double *out)
{
    if (len == 0) return false;
    if (fast_decimal(text, len, as_float, out)) return true;
    if (json_scan_number(text, len) != len) return false;
    if (scan_special(text, len)) {
        *out = text[0] == 'N' ? NAN : text[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    char buf[JSON_MAX_NUMBER_CHARS + 16];
    if (!locale_copy(text, len, buf, sizeof buf)) return false;
    char *end;
    *out = as_float ? (double)strtof(buf, &end) : strtod(buf, &end); /* out of range: +-inf or 0, as rounding gives */
    return *end == '\0';
}

static bool real_is_int64(double d)
{
    return d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
}

/* Integers written without fraction or exponent are read digit by digit: exact over all of int64. */
static bool text_to_int64(const char *text, size_t len, int64_t *out)
{
    if (len == 0 || json_scan_number(text, len) != len) return false;
    if (memchr(text, '.', len) || memchr(text, 'e', len) || memchr(text, 'E', len) || scan_special(text, len)) {
        double d;
        if (!text_to_real(text, len, false, &d) || !real_is_int64(d)) return false;
        *out = (int64_t)d;
        return true;
    }
    bool negative = text[0] == '-';
    uint64_t magnitude = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = negative; i < len; i++) {
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (magnitude > (limit - digit) / 10) return false;
        magnitude = magnitude * 10 + digit;
    }
    *out = negative ? (magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude) : (int64_t)magnitude;
    return true;
}

size_t json_encoding_size(json_encoding encoding)
{
    switch (encoding) {
    case JSON_ENC_I8:
    case JSON_ENC_U8: return 1;
    case JSON_ENC_I16: return 2;
    case JSON_ENC_I32:
    case JSON_ENC_F32: return 4;
    case JSON_ENC_I64:
    case JSON_ENC_F64: return 8;
    case JSON_ENC_NONE:
    case JSON_ENC_TEXT: break;
    }
    return 0;
}

static uint64_t read_big_endian(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* A binary number: integers exactly into *integer (is_integer true), reals into *real. */
static void decode_binary(const json_value *v, bool *is_integer, int64_t *integer, double *real)
{
    uint64_t bits = read_big_endian(v->data, json_encoding_size((json_encoding)v->encoding));
    *is_integer = true;
    switch ((json_encoding)v->encoding) {
    case JSON_ENC_I8: *integer = (int8_t)(uint8_t)bits; return;
    case JSON_ENC_U8: *integer = (uint8_t)bits; return;
    case JSON_ENC_I16: *integer = (int16_t)(uint16_t)bits; return;
    case JSON_ENC_I32: *integer = (int32_t)(uint32_t)bits; return;
    case JSON_ENC_I64: *integer = (int64_t)bits; return;
    case JSON_ENC_F32: {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        *is_integer = false;
        *real = f;
        return;
    }
    case JSON_ENC_F64:
        memcpy(real, &bits, sizeof *real);
        *is_integer = false;
        return;
    case JSON_ENC_NONE:
    case JSON_ENC_TEXT: break;
    }
    *is_integer = false;
    *real = NAN;
}

static kiln_status not_a_number(const json_value *v, const char *wanted)
{
    if (v->type != JSON_NUMBER)
        return kiln_fail(KILN_ERR_MALFORMED, "byte %zu: expected %s, found %s", v->offset, wanted,
                         json_type_name((json_type)v->type));
    return kiln_fail(KILN_ERR_MALFORMED, "byte %zu: expected %s, found the number %.*s", v->offset, wanted,
                     v->encoding == JSON_ENC_TEXT ? (int)v->length : 0, (const char *)v->data);
}

static kiln_status to_real(const json_value *v, bool as_float, double *out)
{
    if (v->type != JSON_NUMBER) return not_a_number(v, "a number");
    if (v->encoding == JSON_ENC_TEXT) {
        if (!text_to_real(v->data, v->length, as_float, out)) return not_a_number(v, "a number");
        return KILN_OK;
    }
    bool is_integer;
    int64_t integer;
    decode_binary(v, &is_integer, &integer, out);
    if (is_integer) *out = as_float ? (double)(float)integer : (double)integer;
    else if (as_float) *out = (float)*out;
    return KILN_OK;
}

kiln_status json_to_double(const json_value *v, double *out) { return to_real(v, false, out); }

kiln_status json_to_float(const json_value *v, float *out)
{
    double d;
    KILN_TRY(to_real(v, true, &d));
    *out = (float)d; /* exact: d already holds a float */
    return KILN_OK;
}

kiln_status json_to_int64(const json_value *v, int64_t *out)
{
    if (v->type != JSON_NUMBER) return not_a_number(v, "an integer");
    if (v->encoding == JSON_ENC_TEXT) {
        if (!text_to_int64(v->data, v->length, out)) return not_a_number(v, "an integer");
        return KILN_OK;
    }
    bool is_integer;
    double real;
    decode_binary(v, &is_integer, out, &real);
    if (is_integer) return KILN_OK;
    if (!real_is_int64(real))
        return kiln_fail(KILN_ERR_MALFORMED, "byte %zu: expected an integer, found %.17g", v->offset, real);
    *out = (int64_t)real;
    return KILN_OK;
}

/* ---- strings ------------------------------------------------------------------------------------------- */

bool json_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t code, min;
        if ((c & 0xE0) == 0xC0) len = 2, code = c & 0x1Fu, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, code = c & 0x0Fu, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, code = c & 0x07u, min = 0x10000;
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            code = code << 6 | (s[i + k] & 0x3Fu);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

bool json_string_is(const json_value *v, const char *s)
{
    size_t n = strlen(s);
    return v && v->type == JSON_STRING && v->length == n && (n == 0 || memcmp(v->data, s, n) == 0);
}

/* ---- documents ----------------------------------------------------------------------------------------- */

const char *json_type_name(json_type type)
{
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_FALSE:
    case JSON_TRUE: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "an unknown value";
}

const json_value *json_get(const json_value *object, const char *key)
{
    if (!object || object->type != JSON_OBJECT) return NULL;
    const json_member *members = object->data;
    for (size_t i = 0; i < object->length; i++)
        if (json_string_is(&members[i].key, key)) return &members[i].value;
    return NULL;
}

void json_array_at(const json_value *array, size_t i, json_value *out)
{
    if (array->encoding == JSON_ENC_NONE) {
        *out = ((const json_value *)array->data)[i];
        return;
    }
    memset(out, 0, sizeof *out);
    out->type = JSON_NUMBER;
    out->encoding = array->encoding;
    out->offset = array->offset;
    if (array->encoding == JSON_ENC_TEXT) {
        /* packed text was validated when parsed, and a ',' or ']' follows it inside the array */
        const char *text = ((const char *const *)array->data)[i];
        out->data = text;
        out->length = json_scan_number(text, JSON_MAX_NUMBER_CHARS + 1);
    } else {
        out->length = json_encoding_size((json_encoding)array->encoding);
        out->data = (const uint8_t *)array->data + i * out->length;
    }
}

/* ---- building ------------------------------------------------------------------------------------------ */

kiln_status json_builder_push(json_builder *b, const json_value *v)
{
    if (b->top == b->capacity) {
        size_t capacity = b->capacity ? 2 * b->capacity : 256, bytes;
        if (!mem_mul_ok(capacity, sizeof *b->stack, &bytes))
            return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "the document is too large");
        json_value *grown = mem_realloc(b->stack, bytes);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        b->stack = grown;
        b->capacity = capacity;
    }
    b->stack[b->top++] = *v;
    return KILN_OK;
}

static bool all_text_numbers(const json_value *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].type != JSON_NUMBER || v[i].encoding != JSON_ENC_TEXT) return false;
    return n > 0;
}

kiln_status json_builder_close_array(json_builder *b, size_t first, bool pack_text, json_value *array)
{
    size_t n = b->top - first;
    const json_value *elements = b->stack + first;
    array->type = JSON_ARRAY;
    array->length = n;
    array->data = NULL;
    array->encoding = JSON_ENC_NONE;
    if (pack_text && all_text_numbers(elements, n)) {
        const char **texts = region_alloc(b->mem, n, sizeof *texts);
        if (!texts) return KILN_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < n; i++) texts[i] = elements[i].data;
        array->encoding = JSON_ENC_TEXT;
        array->data = texts;
    } else if (n) {
        json_value *copy = region_alloc(b->mem, n, sizeof *copy);
        if (!copy) return KILN_ERR_OUT_OF_MEMORY;
        memcpy(copy, elements, n * sizeof *copy);
        array->data = copy;
    }
    b->top = first;
    return KILN_OK;
}

kiln_status json_builder_close_object(json_builder *b, size_t first, json_value *object)
{
    size_t n = (b->top - first) / 2;
    object->type = JSON_OBJECT;
    object->encoding = JSON_ENC_NONE;
    object->length = n;
    object->data = NULL;
    if (n) {
        json_member *members = region_alloc(b->mem, n, sizeof *members);
        if (!members) return KILN_ERR_OUT_OF_MEMORY;
        for (size_t i = 0; i < n; i++) {
            members[i].key = b->stack[first + 2 * i];
            members[i].value = b->stack[first + 2 * i + 1];
        }
        object->data = members;
    }
    b->top = first;
    return KILN_OK;
}

void json_builder_free(json_builder *b)
{
    mem_free(b->stack);
    b->stack = NULL;
    b->top = b->capacity = 0;
}

/* ---- the parser ---------------------------------------------------------------------------------------- */

typedef struct json_parser {
    const uint8_t *start, *p, *end;
    json_builder values;
    int depth;
} json_parser;

static size_t offset_of(const json_parser *ps, const uint8_t *at) { return (size_t)(at - ps->start); }

/* "expected X, found Y" at byte `at`. */
static kiln_status syntax_error(const json_parser *ps, const uint8_t *at, const char *expected)
{
    size_t offset = offset_of(ps, at);
    if (at >= ps->end)
        return kiln_fail(KILN_ERR_MALFORMED, "JSON: byte %zu: expected %s, found the end of the document", offset,
                         expected);
    uint8_t c = *at;
    if (c >= 0x20 && c < 0x7F)
        return kiln_fail(KILN_ERR_MALFORMED, "JSON: byte %zu: expected %s, found '%c'", offset, expected, c);
    return kiln_fail(KILN_ERR_MALFORMED, "JSON: byte %zu: expected %s, found byte 0x%02x", offset, expected, c);
}

static kiln_status content_error(const json_parser *ps, const uint8_t *at, const char *what)
{
    return kiln_fail(KILN_ERR_MALFORMED, "JSON: byte %zu: %s", offset_of(ps, at), what);
}

static void skip_space(json_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The four hex digits after "\u" at p (bounds already checked); -1 if they are not hex. */
static int32_t read_hex4(const uint8_t *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(uint8_t *out, uint32_t code)
{
    if (code < 0x80) return out[0] = (uint8_t)code, 1;
    if (code < 0x800) {
        out[0] = (uint8_t)(0xC0 | code >> 6);
        out[1] = (uint8_t)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (uint8_t)(0xE0 | code >> 12);
        out[1] = (uint8_t)(0x80 | (code >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | code >> 18);
    out[1] = (uint8_t)(0x80 | (code >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (code >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (code & 0x3F));
    return 4;
}

/* A "\uXXXX" escape at p (or a surrogate pair "\uD83D\uDE00"), which ends before `end`; returns the code point
 * or -1, and the escape's length in *used. */
static int32_t read_unicode_escape(const uint8_t *p, const uint8_t *end, size_t *used)
{
    if (end - p < 6) return -1;
    int32_t code = read_hex4(p + 2);
    *used = 6;
    if (code < 0 || (code >= 0xDC00 && code <= 0xDFFF)) return -1;
    if (code < 0xD800 || code > 0xDBFF) return code;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u') return -1;
    int32_t low = read_hex4(p + 8);
    if (low < 0xDC00 || low > 0xDFFF) return -1;
    *used = 12;
    return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
}

/* Decodes the escapes of a string body [from, to) into a region buffer (never longer than the body). */
static kiln_status decode_escapes(json_parser *ps, const uint8_t *from, const uint8_t *to, json_value *out)
{
    uint8_t *buf = region_alloc(ps->values.mem, (size_t)(to - from), 1);
    if (!buf) return KILN_ERR_OUT_OF_MEMORY;
    size_t n = 0;
    for (const uint8_t *p = from; p < to;) {
        if (*p != '\\') {
            buf[n++] = *p++;
            continue;
        }
        static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        const char *which = memchr(plain, p[1], sizeof plain - 1);
        if (which) {
            buf[n++] = (uint8_t)decoded[which - plain];
            p += 2;
            continue;
        }
        size_t used = 0;
        int32_t code = p[1] == 'u' ? read_unicode_escape(p, to, &used) : -1;
        if (code < 0) return content_error(ps, p, "a string has a bad escape");
        n += put_utf8(buf + n, (uint32_t)code);
        p += used;
    }
    out->data = buf;
    out->length = n;
    return KILN_OK;
}

static kiln_status parse_string(json_parser *ps, json_value *out)
{
    const uint8_t *from = ps->p + 1, *q = from;
    bool escaped = false;
    while (q < ps->end && *q != '"') {
        if (*q < 0x20) return content_error(ps, q, "a string holds a control character (JSON wants it escaped)");
        if (*q == '\\') {
            escaped = true;
            q++;
            if (q == ps->end) break;
        }
        q++;
    }
    if (q >= ps->end) return syntax_error(ps, ps->end, "'\"' to end the string");
    *out = (json_value){.type = JSON_STRING, .data = from, .length = (size_t)(q - from),
                        .offset = offset_of(ps, ps->p)};
    if (escaped) KILN_TRY(decode_escapes(ps, from, q, out));
    if (!json_utf8_valid(out->data, out->length)) return content_error(ps, ps->p, "a string is not valid UTF-8");
    ps->p = q + 1;
    return KILN_OK;
}

static kiln_status parse_number(json_parser *ps, json_value *out)
{
    size_t len = json_scan_number((const char *)ps->p, (size_t)(ps->end - ps->p));
    if (!len) return content_error(ps, ps->p, "a number is malformed (or longer than 128 characters)");
    *out = (json_value){.type = JSON_NUMBER, .encoding = JSON_ENC_TEXT, .data = ps->p, .length = len,
                        .offset = offset_of(ps, ps->p)};
    ps->p += len;
    return KILN_OK;
}

static kiln_status parse_literal(json_parser *ps, const char *word, json_type type, json_value *out)
{
    if (!has_prefix((const char *)ps->p, (size_t)(ps->end - ps->p), word))
        return syntax_error(ps, ps->p, "a value");
    *out = (json_value){.type = type, .offset = offset_of(ps, ps->p)};
    ps->p += strlen(word);
    return KILN_OK;
}

static kiln_status parse_value(json_parser *ps, json_value *out);

/* After an element or member: ',' (*more) or the closing bracket. */
static kiln_status next_or_close(json_parser *ps, char close, const char *what, bool *more)
{
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        *more = true;
        return KILN_OK;
    }
    if (ps->p < ps->end && *ps->p == (uint8_t)close) {
        ps->p++;
        *more = false;
        return KILN_OK;
    }
    return syntax_error(ps, ps->p, what);
}

static kiln_status parse_array(json_parser *ps, json_value *out)
{
    size_t offset = offset_of(ps, ps->p), first = ps->values.top;
    ps->p++;
    skip_space(ps);
    bool more = !(ps->p < ps->end && *ps->p == ']');
    if (!more) ps->p++;
    while (more) {
        json_value element;
        KILN_TRY(parse_value(ps, &element));
        KILN_TRY(json_builder_push(&ps->values, &element));
        KILN_TRY(next_or_close(ps, ']', "',' or ']' in an array", &more));
    }
    KILN_TRY(json_builder_close_array(&ps->values, first, true, out));
    out->offset = offset;
    return KILN_OK;
}

static kiln_status parse_object(json_parser *ps, json_value *out)
{
    size_t offset = offset_of(ps, ps->p), first = ps->values.top;
    ps->p++;
    skip_space(ps);
    bool more = !(ps->p < ps->end && *ps->p == '}');
    if (!more) ps->p++;
    while (more) {
        json_value key, value;
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != '"') return syntax_error(ps, ps->p, "a member name (a string)");
        KILN_TRY(parse_string(ps, &key));
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != ':') return syntax_error(ps, ps->p, "':' after a member name");
        ps->p++;
        KILN_TRY(parse_value(ps, &value));
        KILN_TRY(json_builder_push(&ps->values, &key));
        KILN_TRY(json_builder_push(&ps->values, &value));
        KILN_TRY(next_or_close(ps, '}', "',' or '}' in an object", &more));
    }
    KILN_TRY(json_builder_close_object(&ps->values, first, out));
    out->offset = offset;
    return KILN_OK;
}

static kiln_status parse_container(json_parser *ps, json_value *out)
{
    if (ps->depth >= JSON_MAX_DEPTH)
        return content_error(ps, ps->p, "containers are nested too deeply (64 levels at most)");
    ps->depth++;
    kiln_status st = *ps->p == '[' ? parse_array(ps, out) : parse_object(ps, out);
    ps->depth--;
    return st;
}

static kiln_status parse_value(json_parser *ps, json_value *out)
{
    skip_space(ps);
    if (ps->p >= ps->end) return syntax_error(ps, ps->p, "a value");
    switch (*ps->p) {
    case '[':
    case '{': return parse_container(ps, out);
    case '"': return parse_string(ps, out);
    case 't': return parse_literal(ps, "true", JSON_TRUE, out);
    case 'f': return parse_literal(ps, "false", JSON_FALSE, out);
    case 'n': return parse_literal(ps, "null", JSON_NULL, out);
    case '-':
    case 'N':
    case 'I': return parse_number(ps, out);
    default: return is_digit((char)*ps->p) ? parse_number(ps, out) : syntax_error(ps, ps->p, "a value");
    }
}

kiln_status json_parse(const uint8_t *data, size_t size, region *mem, json_value *root)
{
    json_parser ps = {.start = data, .p = data, .end = data + size, .values = {.mem = mem}};
    memset(root, 0, sizeof *root);
    kiln_status st = parse_value(&ps, root);
    if (st == KILN_OK) {
        skip_space(&ps);
        if (ps.p < ps.end) st = content_error(&ps, ps.p, "more follows the document's value");
    }
    json_builder_free(&ps.values);
    return st;
}
