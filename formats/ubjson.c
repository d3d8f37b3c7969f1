/*
 * ubjson.c — the UBJSON reader (see ubjson.h).
 *
 * Recursive descent like the JSON reader, sharing its document builder. UBJSON is length-prefixed, so the
 * safety rule is simple: before any read, the bytes it needs must remain, and before any container is
 * filled, its declared count must be possible in the bytes that remain (every element takes at least one
 * byte; a typed numeric array takes exactly count * width bytes, which is why it can be kept in place).
 */
#include "formats/ubjson.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

typedef struct ub_parser {
    const uint8_t *start, *p, *end;
    json_builder values;
    int depth;
} ub_parser;

/* Whether a container header declared a type ($) and a count (#). */
typedef struct ub_container {
    uint8_t type; /* the elements' marker, or 0 when each element carries its own */
    bool counted;
    size_t count;
} ub_container;

static size_t remaining(const ub_parser *ps) { return (size_t)(ps->end - ps->p); }
static size_t offset_of(const ub_parser *ps, const uint8_t *at) { return (size_t)(at - ps->start); }

static kiln_status ub_fail(const ub_parser *ps, const uint8_t *at, const char *fmt, ...) KILN_PRINTF(3, 4);

static kiln_status ub_fail(const ub_parser *ps, const uint8_t *at, const char *fmt, ...)
{
    char what[200];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    return kiln_fail(KILN_ERR_MALFORMED, "UBJSON: byte %zu: %s", offset_of(ps, at), what);
}

static kiln_status need(const ub_parser *ps, size_t bytes, const char *what)
{
    if (remaining(ps) < bytes)
        return ub_fail(ps, ps->p, "the document ends inside %s (%zu more bytes needed, %zu remain)", what, bytes,
                       remaining(ps));
    return KILN_OK;
}

static json_encoding number_encoding(uint8_t marker)
{
    switch (marker) {
    case 'i': return JSON_ENC_I8;
    case 'U': return JSON_ENC_U8;
    case 'I': return JSON_ENC_I16;
    case 'l': return JSON_ENC_I32;
    case 'L': return JSON_ENC_I64;
    case 'd': return JSON_ENC_F32;
    case 'D': return JSON_ENC_F64;
    default: return JSON_ENC_NONE;
    }
}

static bool is_integer_marker(uint8_t marker)
{
    json_encoding encoding = number_encoding(marker);
    return encoding != JSON_ENC_NONE && encoding != JSON_ENC_F32 && encoding != JSON_ENC_F64;
}

/* A length or count: an integer marker and its value, which must not be negative. */
static kiln_status read_length(ub_parser *ps, const char *what, size_t *out)
{
    KILN_TRY(need(ps, 1, what));
    const uint8_t *at = ps->p;
    uint8_t marker = *ps->p++;
    if (!is_integer_marker(marker)) return ub_fail(ps, at, "%s must be an integer, not marker 0x%02x", what, marker);
    json_encoding encoding = number_encoding(marker);
    size_t width = json_encoding_size(encoding);
    KILN_TRY(need(ps, width, what));
    json_value number = {.type = JSON_NUMBER, .encoding = encoding, .data = ps->p, .length = width,
                         .offset = offset_of(ps, at)};
    ps->p += width;
    int64_t v;
    KILN_TRY(json_to_int64(&number, &v));
    if (v < 0) return ub_fail(ps, at, "%s is negative (%lld)", what, (long long)v);
    if ((uint64_t)v > SIZE_MAX) return ub_fail(ps, at, "%s is too large", what);
    *out = (size_t)v;
    return KILN_OK;
}

/* A string's length and bytes (keys have no marker; S values do). */
static kiln_status read_string(ub_parser *ps, json_value *out)
{
    const uint8_t *at = ps->p;
    size_t length = 0;
    KILN_TRY(read_length(ps, "a string's length", &length));
    if (length > remaining(ps))
        return ub_fail(ps, at, "a string claims %zu bytes, only %zu remain", length, remaining(ps));
    if (!json_utf8_valid(ps->p, length)) return ub_fail(ps, at, "a string is not valid UTF-8");
    *out = (json_value){.type = JSON_STRING, .data = ps->p, .length = length, .offset = offset_of(ps, at)};
    ps->p += length;
    return KILN_OK;
}

static void skip_noops(ub_parser *ps)
{
    while (ps->p < ps->end && *ps->p == 'N') ps->p++;
}

static kiln_status parse_payload(ub_parser *ps, uint8_t marker, const uint8_t *at, json_value *out);

static kiln_status parse_value(ub_parser *ps, json_value *out)
{
    skip_noops(ps);
    KILN_TRY(need(ps, 1, "a value"));
    const uint8_t *at = ps->p;
    uint8_t marker = *ps->p++;
    return parse_payload(ps, marker, at, out);
}

/* `$type#count` or `#count` after an opening bracket, or nothing. */
static kiln_status read_container_header(ub_parser *ps, ub_container *h)
{
    memset(h, 0, sizeof *h);
    const uint8_t *at = ps->p;
    if (ps->p < ps->end && *ps->p == '$') {
        ps->p++;
        KILN_TRY(need(ps, 1, "a container's element type"));
        h->type = *ps->p++;
        if (h->type == 'N' || h->type == '$' || h->type == '#' || h->type == ']' || h->type == '}')
            return ub_fail(ps, at, "'%c' is not a type for a container's elements", h->type);
        if (ps->p >= ps->end || *ps->p != '#') return ub_fail(ps, at, "a typed container ($) has no count (#)");
    }
    if (ps->p < ps->end && *ps->p == '#') {
        ps->p++;
        KILN_TRY(read_length(ps, "a container's count", &h->count));
        h->counted = true;
        /* Every element takes at least a byte, except those of a typed container of null/true/false, which
         * take none; those too are held to one per remaining byte, so that a count cannot ask for memory the
         * document could never describe. */
        if (h->count > remaining(ps))
            return ub_fail(ps, at, "a container claims %zu elements, only %zu bytes remain", h->count, remaining(ps));
    }
    return KILN_OK;
}

/* A typed numeric array stays in the input: the document points at its count * width bytes. */
static kiln_status packed_array(ub_parser *ps, const ub_container *h, size_t offset, json_value *out)
{
    json_encoding encoding = number_encoding(h->type);
    size_t width = json_encoding_size(encoding), bytes;
    if (!mem_mul_ok(h->count, width, &bytes) || bytes > remaining(ps))
        return ub_fail(ps, ps->start + offset, "an array claims %zu elements of %zu bytes, only %zu bytes remain",
                       h->count, width, remaining(ps));
    *out = (json_value){.type = JSON_ARRAY, .encoding = encoding, .data = ps->p, .length = h->count, .offset = offset};
    ps->p += bytes;
    return KILN_OK;
}

/* The next element of a container: typed ones carry no marker. */
static kiln_status parse_element(ub_parser *ps, const ub_container *h, json_value *out)
{
    if (!h->type) return parse_value(ps, out);
    return parse_payload(ps, h->type, ps->p, out);
}

/* Whether an uncounted container has ended (its closing bracket is consumed). */
static kiln_status at_close(ub_parser *ps, uint8_t close, bool *closed)
{
    skip_noops(ps);
    KILN_TRY(need(ps, 1, close == ']' ? "an array" : "an object"));
    *closed = *ps->p == close;
    if (*closed) ps->p++;
    return KILN_OK;
}

static kiln_status parse_array(ub_parser *ps, size_t offset, json_value *out)
{
    ub_container h;
    KILN_TRY(read_container_header(ps, &h));
    if (h.counted && number_encoding(h.type) != JSON_ENC_NONE) return packed_array(ps, &h, offset, out);
    size_t first = ps->values.top;
    for (size_t i = 0;; i++) {
        bool closed = h.counted && i == h.count;
        if (!h.counted) KILN_TRY(at_close(ps, ']', &closed));
        if (closed) break;
        json_value element;
        KILN_TRY(parse_element(ps, &h, &element));
        KILN_TRY(json_builder_push(&ps->values, &element));
    }
    KILN_TRY(json_builder_close_array(&ps->values, first, false, out));
    out->offset = offset;
    return KILN_OK;
}

static kiln_status parse_object(ub_parser *ps, size_t offset, json_value *out)
{
    ub_container h;
    KILN_TRY(read_container_header(ps, &h));
    size_t first = ps->values.top;
    for (size_t i = 0;; i++) {
        bool closed = h.counted && i == h.count;
        if (!h.counted) KILN_TRY(at_close(ps, '}', &closed));
        if (closed) break;
        json_value key, value;
        KILN_TRY(read_string(ps, &key));
        KILN_TRY(parse_element(ps, &h, &value));
        KILN_TRY(json_builder_push(&ps->values, &key));
        KILN_TRY(json_builder_push(&ps->values, &value));
    }
    KILN_TRY(json_builder_close_object(&ps->values, first, out));
    out->offset = offset;
    return KILN_OK;
}

static kiln_status parse_container(ub_parser *ps, uint8_t marker, size_t offset, json_value *out)
{
    if (ps->depth >= JSON_MAX_DEPTH)
        return ub_fail(ps, ps->start + offset, "containers are nested too deeply (%d levels at most)", JSON_MAX_DEPTH);
    ps->depth++;
    kiln_status st = marker == '[' ? parse_array(ps, offset, out) : parse_object(ps, offset, out);
    ps->depth--;
    return st;
}

/* A high-precision number: a string holding a number in JSON's syntax. */
static kiln_status parse_high_precision(ub_parser *ps, const uint8_t *at, json_value *out)
{
    KILN_TRY(read_string(ps, out));
    if (out->length == 0 || json_scan_number(out->data, out->length) != out->length)
        return ub_fail(ps, at, "a high-precision number (H) is not a number");
    out->type = JSON_NUMBER;
    out->encoding = JSON_ENC_TEXT;
    out->offset = offset_of(ps, at);
    return KILN_OK;
}

/* The value a marker introduces (the marker itself already read; `at` is where it was). */
static kiln_status parse_payload(ub_parser *ps, uint8_t marker, const uint8_t *at, json_value *out)
{
    size_t offset = offset_of(ps, at);
    *out = (json_value){.offset = offset};
    json_encoding encoding = number_encoding(marker);
    if (encoding != JSON_ENC_NONE) {
        size_t width = json_encoding_size(encoding);
        KILN_TRY(need(ps, width, "a number"));
        *out = (json_value){.type = JSON_NUMBER, .encoding = encoding, .data = ps->p, .length = width,
                            .offset = offset};
        ps->p += width;
        return KILN_OK;
    }
    switch (marker) {
    case 'Z': out->type = JSON_NULL; return KILN_OK;
    case 'T': out->type = JSON_TRUE; return KILN_OK;
    case 'F': out->type = JSON_FALSE; return KILN_OK;
    case 'S':
        KILN_TRY(read_string(ps, out));
        out->offset = offset;
        return KILN_OK;
    case 'H': return parse_high_precision(ps, at, out);
    case 'C':
        KILN_TRY(need(ps, 1, "a char"));
        if (*ps->p >= 0x80) return ub_fail(ps, at, "a char (C) is not ASCII");
        *out = (json_value){.type = JSON_STRING, .data = ps->p++, .length = 1, .offset = offset};
        return KILN_OK;
    case '[':
    case '{': return parse_container(ps, marker, offset, out);
    default:
        if (marker >= 0x20 && marker < 0x7F) return ub_fail(ps, at, "'%c' is not a value's type marker", marker);
        return ub_fail(ps, at, "byte 0x%02x is not a value's type marker", marker);
    }
}

kiln_status ubjson_parse(const uint8_t *data, size_t size, region *mem, json_value *root)
{
    ub_parser ps = {.start = data, .p = data, .end = data + size, .values = {.mem = mem}};
    memset(root, 0, sizeof *root);
    kiln_status st = parse_value(&ps, root);
    if (st == KILN_OK) {
        skip_noops(&ps);
        if (ps.p < ps.end) st = ub_fail(&ps, ps.p, "more follows the document's value");
    }
    json_builder_free(&ps.values);
    return st;
}
