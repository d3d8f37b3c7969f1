/*
 * test_json.c — the JSON and UBJSON readers (formats/json.h, formats/ubjson.h).
 *
 * Numbers must read back exactly what was written (a float32 through strtof, never rounded twice through a
 * double), whatever the C locale; strings decode every escape and refuse what is not UTF-8; nesting is
 * bounded. The readers take hostile input, so every byte of small documents is cut and random garbage is
 * fed in: the answer must be a clean error naming a byte offset, never a read past the input (each input
 * sits in its own exact-size heap block, so AddressSanitizer sees a one-byte over-read). The two readers must
 * describe the same data the same way.
 */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "formats/json.h"
#include "formats/ubjson.h"
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------------------------------------- */

typedef kiln_status (*parse_fn)(const uint8_t *, size_t, region *, json_value *);

/* Parses n bytes from their own exact-size heap block; the document stays valid until region_free(mem). */
static kiln_status parse_bytes(parse_fn parse, const void *bytes, size_t n, region *mem, json_value *root,
                               uint8_t **copy)
{
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n) memcpy(*copy, bytes, n);
    return parse(*copy, n, mem, root);
}

/* A JSON text that must parse; the caller frees mem and *copy. */
static json_value parse_json(const char *text, region *mem, uint8_t **copy)
{
    json_value root;
    region_init(mem);
    kiln_status st = parse_bytes(json_parse, text, strlen(text), mem, &root, copy);
    if (st != KILN_OK) fail_msg("'%s' did not parse: %s", text, kiln_last_error());
    return root;
}

static void json_refused(const char *text, const char *words)
{
    region mem;
    region_init(&mem);
    json_value root;
    uint8_t *copy;
    assert_refused(parse_bytes(json_parse, text, strlen(text), &mem, &root, &copy), KILN_ERR_MALFORMED, words);
    free(copy);
    region_free(&mem);
}

static double json_number(const char *text)
{
    region mem;
    uint8_t *copy;
    json_value v = parse_json(text, &mem, &copy);
    double d = NAN;
    assert_int_equal(json_to_double(&v, &d), KILN_OK);
    free(copy);
    region_free(&mem);
    return d;
}

static float json_float(const char *text)
{
    region mem;
    uint8_t *copy;
    json_value v = parse_json(text, &mem, &copy);
    float f = NAN;
    if (json_to_float(&v, &f) != KILN_OK) fail_msg("'%s' is no float: %s", text, kiln_last_error());
    free(copy);
    region_free(&mem);
    return f;
}

static kiln_status json_integer(const char *text, int64_t *out)
{
    region mem;
    uint8_t *copy;
    json_value v = parse_json(text, &mem, &copy);
    kiln_status st = json_to_int64(&v, out);
    free(copy);
    region_free(&mem);
    return st;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* A growable byte buffer for writing UBJSON by hand. */
typedef struct bytes {
    uint8_t data[4096];
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->data);
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

/* A string literal's bytes (embedded NULs included, the terminator not). */
#define PUT_LITERAL(b, literal) put(b, literal, sizeof literal - 1)

static void put_byte(bytes *b, int c)
{
    uint8_t byte = (uint8_t)c;
    put(b, &byte, 1);
}

static void put_big_endian(bytes *b, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) put_byte(b, (int)(v >> (8 * i) & 0xFF));
}

static void put_f32(bytes *b, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put_big_endian(b, bits, 4);
}

/* A key or S payload: length as int8, then the bytes. */
static void put_key(bytes *b, const char *s)
{
    put_byte(b, 'i');
    put_byte(b, (int)strlen(s));
    put(b, s, strlen(s));
}

static void put_string(bytes *b, const char *s)
{
    put_byte(b, 'S');
    put_key(b, s);
}

static kiln_status parse_ubjson(const bytes *b, region *mem, json_value *root, uint8_t **copy)
{
    region_init(mem);
    return parse_bytes(ubjson_parse, b->data, b->n, mem, root, copy);
}

static void ubjson_parses(const bytes *b, region *mem, json_value *root, uint8_t **copy)
{
    if (parse_ubjson(b, mem, root, copy) != KILN_OK) fail_msg("did not parse: %s", kiln_last_error());
}

/* ---- numbers ------------------------------------------------------------------------------------------- */

static void numbers_read_back_what_was_written(void **state)
{
    (void)state;
    assert_true(same_bits(json_float("1.234E-1"), strtof("1.234E-1", NULL)));
    assert_true(json_number("1.234E-1") == 0.1234);
    assert_true(json_number("-0") == 0.0 && signbit(json_number("-0")));
    assert_true(json_number("1e400") == INFINITY);
    assert_true(json_number("-1e400") == -INFINITY);
    assert_true(json_number("1e-400") == 0.0);
    assert_true(isnan(json_number("NaN")));
    assert_true(json_number("Infinity") == INFINITY);
    assert_true(json_number("-Infinity") == -INFINITY);
    assert_true(json_number(" \t\r\n-2.5e0 \n") == -2.5); /* whitespace around a document */
    /* The decimal just above the midpoint between 1 and the next float32: the nearest double is that
     * midpoint, so a detour through double would round to 1 (ties to even); strtof gets it right. */
    assert_true(same_bits(json_float("1.00000005960464477539062501"), nextafterf(1.0f, 2.0f)));
    assert_true(same_bits(json_float("1.00000005960464477539062499"), 1.0f));
    assert_true(json_number("1.00000005960464477539062501") == 1.0 + ldexp(1.0, -24));
}

static void every_float32_round_trips(void **state)
{
    (void)state;
    random_seed(11);
    char text[64];
    for (int i = 0; i < 20000; i++) {
        uint32_t bits = (uint32_t)random_int(0, UINT32_MAX);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f)) continue;
        snprintf(text, sizeof text, i % 2 ? "%.9g" : "%.8E", (double)f); /* XGBoost writes like the second */
        if (!same_bits(json_float(text), f)) fail_msg("%s did not read back as float 0x%08x", text, bits);
        double d = f * 1.000000123;
        snprintf(text, sizeof text, "%.17g", d);
        if (json_number(text) != d) fail_msg("%s did not read back as the double", text);
    }
}

/* Short decimals ("13.4", "-0.08172", "5e-3") take the exact fast path (m * 10^e in one rounding): every one
 * must read back exactly as strtof and strtod read it, including at the path's limits. */
static void short_decimals_read_as_strtod_reads_them(void **state)
{
    (void)state;
    random_seed(12);
    char text[64];
    static const char *const edges[] = {"16777215", "16777216", "16777217", "1e10", "1e-10", "9007199254740991",
                                        "9007199254740993", "1e22", "1e23", "-0", "-0.0", "0.1", "3.4028235e38",
                                        "1.17549435e-38", "123456789012345678901234567890"};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        if (!same_bits(json_float(edges[i]), strtof(edges[i], NULL))) fail_msg("%s: float differs", edges[i]);
        if (json_number(edges[i]) != strtod(edges[i], NULL)) fail_msg("%s: double differs", edges[i]);
    }
    for (int i = 0; i < 50000; i++) {
        long long mantissa = random_int(0, i % 3 ? 99999999 : INT32_MAX);
        int point = (int)random_int(0, 9), exponent = (int)random_int(-25, 25);
        int n = snprintf(text, sizeof text, "%s%lld", i % 5 ? "" : "-", mantissa);
        if (point > 0 && point < n - (text[0] == '-') - 1) {
            memmove(text + n - point + 1, text + n - point, (size_t)point + 1);
            text[n - point] = '.';
            n++;
        }
        if (i % 4 == 0) snprintf(text + n, sizeof text - (size_t)n, "e%d", exponent);
        if (!same_bits(json_float(text), strtof(text, NULL))) fail_msg("%s: float differs from strtof", text);
        if (json_number(text) != strtod(text, NULL)) fail_msg("%s: double differs from strtod", text);
    }
}

static void integers_are_exact_and_checked(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(json_integer("9223372036854775807", &v), KILN_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(json_integer("-9223372036854775808", &v), KILN_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(json_integer("-0", &v), KILN_OK);
    assert_true(v == 0);
    assert_int_equal(json_integer("1.0", &v), KILN_OK);
    assert_true(v == 1);
    assert_int_equal(json_integer("1E2", &v), KILN_OK);
    assert_true(v == 100);
    assert_refused(json_integer("9223372036854775808", &v), KILN_ERR_MALFORMED, "expected an integer");
    assert_refused(json_integer("1.5", &v), KILN_ERR_MALFORMED, "found the number 1.5");
    assert_refused(json_integer("NaN", &v), KILN_ERR_MALFORMED, "expected an integer");
    assert_refused(json_integer("1e300", &v), KILN_ERR_MALFORMED, "expected an integer");
    assert_refused(json_integer("\"7\"", &v), KILN_ERR_MALFORMED, "found a string");
}

static void malformed_numbers_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"01", "1.", ".5", "+1", "1e", "-", "1.5e+", "0x10", "nan", "inf", "-NaN", "1..2", "--1",
                         "1e5.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        region mem;
        region_init(&mem);
        json_value root;
        uint8_t *copy;
        if (parse_bytes(json_parse, bad[i], strlen(bad[i]), &mem, &root, &copy) == KILN_OK)
            fail_msg("'%s' parsed", bad[i]);
        free(copy);
        region_free(&mem);
    }
    char digits[JSON_MAX_NUMBER_CHARS + 2];
    memset(digits, '7', sizeof digits - 1);
    digits[JSON_MAX_NUMBER_CHARS] = '\0';
    assert_true(json_number(digits) > 7e127); /* the longest number accepted */
    digits[JSON_MAX_NUMBER_CHARS] = '7';
    digits[JSON_MAX_NUMBER_CHARS + 1] = '\0';
    json_refused(digits, "longer than 128 characters");
}

static void numbers_ignore_the_c_locale(void **state)
{
    (void)state;
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", "fr_FR"};
    const char *found = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !found; i++)
        if (setlocale(LC_NUMERIC, names[i]) && localeconv()->decimal_point[0] == ',') found = names[i];
    if (!found) {
        setlocale(LC_NUMERIC, "C");
        skip(); /* no locale with a decimal comma is installed */
    }
    double d = json_number("1.5");
    float f = json_float("2.25E-1");
    setlocale(LC_NUMERIC, "C");
    assert_true(d == 1.5);
    assert_true(f == 0.225f);
}

/* ---- strings ------------------------------------------------------------------------------------------- */

static void string_is(const char *text, const char *expected, size_t expected_len)
{
    region mem;
    uint8_t *copy;
    json_value v = parse_json(text, &mem, &copy);
    assert_int_equal(v.type, JSON_STRING);
    assert_int_equal(v.length, expected_len);
    assert_memory_equal(v.data, expected, expected_len);
    free(copy);
    region_free(&mem);
}

static void strings_decode_every_escape(void **state)
{
    (void)state;
    string_is("\"plain\"", "plain", 5);
    string_is("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t", 12);
    string_is("\"\\u00e9\\u00E9\"", "\xC3\xA9\xC3\xA9", 4);
    string_is("\"\\u20ac\"", "\xE2\x82\xAC", 3);
    string_is("\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80", 4);
    string_is("\"a\\u0000b\"", "a\0b", 3);
    string_is("\"\xE2\x82\xAC \xF0\x9F\x98\x80\"", "\xE2\x82\xAC \xF0\x9F\x98\x80", 8);
    /* an unescaped string is not copied */
    region mem;
    uint8_t *copy;
    json_value v = parse_json("{\"key\":\"value\"}", &mem, &copy);
    const json_value *value = json_get(&v, "key");
    assert_non_null(value);
    assert_ptr_equal(value->data, copy + 8);
    free(copy);
    region_free(&mem);
}

static void bad_strings_are_refused(void **state)
{
    (void)state;
    json_refused("\"\\ud83d\"", "bad escape");         /* a high surrogate alone */
    json_refused("\"\\ude00\"", "bad escape");         /* a low surrogate alone */
    json_refused("\"\\ud83d\\u0041\"", "bad escape");  /* a high surrogate and no low one */
    json_refused("\"\\x41\"", "bad escape");
    json_refused("\"\\u12G4\"", "bad escape");
    json_refused("\"\\u12\"", "bad escape");
    json_refused("\"a\x01\"", "control character");
    json_refused("\"\xC3\x28\"", "not valid UTF-8");
    json_refused("\"\xC0\xAF\"", "not valid UTF-8");  /* overlong '/' */
    json_refused("\"\xED\xA0\x80\"", "not valid UTF-8"); /* an encoded surrogate */
    json_refused("\"\xF4\x90\x80\x80\"", "not valid UTF-8"); /* above U+10FFFF */
    json_refused("\"\xE2\x82\"", "not valid UTF-8");  /* cut inside a character */
    json_refused("\"abc", "end of the document");
    json_refused("\"abc\\\"", "end of the document");
}

/* ---- structure ----------------------------------------------------------------------------------------- */

static void documents_have_the_written_structure(void **state)
{
    (void)state;
    region mem;
    uint8_t *copy;
    json_value root = parse_json(" {\"a\": [1, 2.5, -3e1], \"b\": [1, \"x\", null, true, false, {}, []],"
                                 " \"a\": 7, \"c\": {\"d\": []}} ", &mem, &copy);
    assert_int_equal(root.type, JSON_OBJECT);
    assert_int_equal(root.length, 4);
    const json_value *a = json_get(&root, "a"); /* the first of two */
    assert_int_equal(a->type, JSON_ARRAY);
    assert_int_equal(a->encoding, JSON_ENC_TEXT); /* all numbers: packed */
    assert_int_equal(a->length, 3);
    double expected[] = {1, 2.5, -30};
    for (size_t i = 0; i < 3; i++) {
        json_value element;
        double d;
        json_array_at(a, i, &element);
        assert_int_equal(json_to_double(&element, &d), KILN_OK);
        assert_true(d == expected[i]);
    }
    const json_value *b = json_get(&root, "b");
    assert_int_equal(b->encoding, JSON_ENC_NONE);
    const json_type types[] = {JSON_NUMBER, JSON_STRING, JSON_NULL, JSON_TRUE, JSON_FALSE, JSON_OBJECT, JSON_ARRAY};
    assert_int_equal(b->length, 7);
    for (size_t i = 0; i < 7; i++) {
        json_value element;
        json_array_at(b, i, &element);
        assert_int_equal(element.type, types[i]);
    }
    assert_int_equal(json_get(json_get(&root, "c"), "d")->length, 0);
    assert_null(json_get(&root, "missing"));
    assert_null(json_get(a, "a")); /* not an object */
    free(copy);
    region_free(&mem);
}

static void errors_name_the_byte(void **state)
{
    (void)state;
    json_refused("", "byte 0: expected a value, found the end of the document");
    json_refused("   ", "byte 3: expected a value");
    json_refused("[1,,2]", "byte 3: expected a value, found ','");
    json_refused("[1 2]", "byte 3: expected ',' or ']' in an array, found '2'");
    json_refused("{\"a\" 1}", "byte 5: expected ':' after a member name");
    json_refused("{\"a\":1,}", "byte 7: expected a member name");
    json_refused("{1:2}", "byte 1: expected a member name");
    json_refused("[1] x", "byte 4: more follows");
    json_refused("[tru]", "byte 1: expected a value");
    json_refused("[1,\x80]", "byte 3: expected a value, found byte 0x80");
    json_refused("[1,", "byte 3: expected a value, found the end of the document");
}

static void nesting_is_limited(void **state)
{
    (void)state;
    char text[2 * 100000 + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        if (depth == JSON_MAX_DEPTH) {
            region mem;
            uint8_t *copy;
            parse_json(text, &mem, &copy);
            free(copy);
            region_free(&mem);
        } else {
            json_refused(text, "nested too deeply");
        }
    }
    memset(text, '[', 100000); /* deep enough to overflow a stack without the limit */
    text[100000] = '\0';
    json_refused(text, "nested too deeply");
    for (int i = 0; i < 100000; i += 5) memcpy(text + i, "{\"a\":", 5);
    json_refused(text, "nested too deeply");
}

static const char small_document[] =
    "{\"learner\": {\"name\": \"gbtree\\u0021\", \"values\": [1.5E-1, -2, 3e+2, NaN, -Infinity],"
    " \"flags\": [true, false, null], \"nested\": {\"x\": [[], {}], \"s\": \"\\\"q\\\"\"}}, \"v\": [1, 7, 4]}";

static void every_truncation_is_refused(void **state)
{
    (void)state;
    size_t n = strlen(small_document);
    for (size_t cut = 0; cut < n; cut++) {
        region mem;
        region_init(&mem);
        json_value root;
        uint8_t *copy;
        kiln_status st = parse_bytes(json_parse, small_document, cut, &mem, &root, &copy);
        if (st != KILN_ERR_MALFORMED) fail_msg("the first %zu bytes parsed", cut);
        if (!strstr(kiln_last_error(), "JSON: byte ")) fail_msg("message without an offset: %s", kiln_last_error());
        free(copy);
        region_free(&mem);
    }
    region mem;
    uint8_t *copy;
    parse_json(small_document, &mem, &copy);
    free(copy);
    region_free(&mem);
}

static void garbage_never_crashes(void **state)
{
    (void)state;
    random_seed(5);
    static const char alphabet[] = "{}[]:,\"\\u0123456789abcdefEe.+-ntrueflsaNIfy \t\n\x80\xC3\xFF";
    size_t n = strlen(small_document), parsed = 0;
    uint8_t buf[512];
    for (int i = 0; i < 20000; i++) {
        size_t len;
        if (i % 2) { /* a corrupted document */
            len = n;
            memcpy(buf, small_document, n);
            for (int flips = (int)random_int(1, 4); flips > 0; flips--)
                buf[random_int(0, (int64_t)n - 1)] = (uint8_t)alphabet[random_int(0, sizeof alphabet - 2)];
        } else { /* tokens at random */
            len = (size_t)random_int(0, 64);
            for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)alphabet[random_int(0, sizeof alphabet - 2)];
        }
        region mem;
        region_init(&mem);
        json_value root;
        uint8_t *copy;
        kiln_status st = parse_bytes(json_parse, buf, len, &mem, &root, &copy);
        assert_true(st == KILN_OK || st == KILN_ERR_MALFORMED);
        parsed += st == KILN_OK;
        free(copy);
        region_free(&mem);
    }
    assert_true(parsed > 0);
}

/* ---- UBJSON -------------------------------------------------------------------------------------------- */

static void ubjson_reads_every_marker(void **state)
{
    (void)state;
    bytes b = {.n = 0};
    put_byte(&b, '[');
    put_byte(&b, 'i'), put_byte(&b, 0xFE);                     /* -2 */
    put_byte(&b, 'U'), put_byte(&b, 0xFE);                     /* 254 */
    put_byte(&b, 'I'), put_big_endian(&b, 0x8000, 2);          /* -32768 */
    put_byte(&b, 'l'), put_big_endian(&b, 0xFFFFFFFF, 4);      /* -1 */
    put_byte(&b, 'L'), put_big_endian(&b, (uint64_t)1 << 62, 8);
    put_byte(&b, 'd'), put_f32(&b, 0.1f);
    put_byte(&b, 'D'), put_big_endian(&b, 0x3FF8000000000000u, 8); /* 1.5 */
    put_byte(&b, 'H'), put_key(&b, "1.25E-1");
    put_byte(&b, 'N');
    put_byte(&b, 'Z'), put_byte(&b, 'T'), put_byte(&b, 'F');
    put_byte(&b, 'C'), put_byte(&b, 'x');
    put_string(&b, "caf\xC3\xA9");
    put_byte(&b, ']');
    region mem;
    json_value root;
    uint8_t *copy;
    ubjson_parses(&b, &mem, &root, &copy);
    assert_int_equal(root.type, JSON_ARRAY);
    assert_int_equal(root.length, 13);
    const int64_t integers[] = {-2, 254, -32768, -1, (int64_t)1 << 62};
    json_value v;
    for (size_t i = 0; i < 5; i++) {
        int64_t got;
        json_array_at(&root, i, &v);
        assert_int_equal(json_to_int64(&v, &got), KILN_OK);
        assert_true(got == integers[i]);
    }
    float f;
    double d;
    json_array_at(&root, 5, &v);
    assert_int_equal(json_to_float(&v, &f), KILN_OK);
    assert_true(f == 0.1f);
    json_array_at(&root, 6, &v);
    assert_int_equal(json_to_double(&v, &d), KILN_OK);
    assert_true(d == 1.5);
    json_array_at(&root, 7, &v);
    assert_int_equal(json_to_double(&v, &d), KILN_OK);
    assert_true(d == 0.125);
    const json_type types[] = {JSON_NULL, JSON_TRUE, JSON_FALSE, JSON_STRING, JSON_STRING};
    for (size_t i = 0; i < 5; i++) {
        json_array_at(&root, 8 + i, &v);
        assert_int_equal(v.type, types[i]);
    }
    assert_true(json_string_is(&v, "caf\xC3\xA9"));
    json_array_at(&root, 11, &v);
    assert_true(json_string_is(&v, "x"));
    free(copy);
    region_free(&mem);
}

static void ubjson_typed_arrays_stay_in_place(void **state)
{
    (void)state;
    bytes b = {.n = 0};
    put_byte(&b, '{');
    put_key(&b, "f"), PUT_LITERAL(&b, "[$d#i\x03");
    put_f32(&b, 1.0f), put_f32(&b, -0.5f), put_f32(&b, NAN);
    put_key(&b, "u"), PUT_LITERAL(&b, "[$U#U\x02\x00\x01");
    put_key(&b, "l"), PUT_LITERAL(&b, "[$l#L"), put_big_endian(&b, 2, 8), put_big_endian(&b, 0xFFFFFFFF, 4),
        put_big_endian(&b, 7, 4);
    put_key(&b, "counted"), PUT_LITERAL(&b, "[#i\x02"), put_string(&b, "a"), put_byte(&b, 'T');
    put_key(&b, "typed_object"), PUT_LITERAL(&b, "{$i#i\x02"), put_key(&b, "p"), put_byte(&b, 5), put_key(&b, "q"),
        put_byte(&b, 6);
    put_key(&b, "strings"), PUT_LITERAL(&b, "[$S#i\x02"), put_key(&b, "ab"), put_key(&b, "");
    put_key(&b, "empty"), PUT_LITERAL(&b, "[]");
    put_byte(&b, 'N'), put_byte(&b, '}');
    region mem;
    json_value root;
    uint8_t *copy;
    ubjson_parses(&b, &mem, &root, &copy);
    const json_value *f = json_get(&root, "f");
    assert_int_equal(f->encoding, JSON_ENC_F32);
    assert_int_equal(f->length, 3);
    assert_ptr_equal(f->data, copy + 10); /* not copied */
    json_value v;
    float x;
    json_array_at(f, 1, &v);
    assert_int_equal(json_to_float(&v, &x), KILN_OK);
    assert_true(x == -0.5f);
    json_array_at(f, 2, &v);
    assert_int_equal(json_to_float(&v, &x), KILN_OK);
    assert_true(isnan(x));
    int64_t i64;
    json_array_at(json_get(&root, "u"), 1, &v);
    assert_int_equal(json_to_int64(&v, &i64), KILN_OK);
    assert_true(i64 == 1);
    json_array_at(json_get(&root, "l"), 0, &v);
    assert_int_equal(json_to_int64(&v, &i64), KILN_OK);
    assert_true(i64 == -1);
    const json_value *counted = json_get(&root, "counted");
    assert_int_equal(counted->length, 2);
    json_array_at(counted, 1, &v);
    assert_int_equal(v.type, JSON_TRUE);
    const json_value *q = json_get(json_get(&root, "typed_object"), "q");
    assert_int_equal(json_to_int64(q, &i64), KILN_OK);
    assert_true(i64 == 6);
    json_array_at(json_get(&root, "strings"), 0, &v);
    assert_true(json_string_is(&v, "ab"));
    assert_int_equal(json_get(&root, "empty")->length, 0);
    free(copy);
    region_free(&mem);
}

static void ubjson_refused(const bytes *b, const char *words)
{
    region mem;
    json_value root;
    uint8_t *copy;
    assert_refused(parse_ubjson(b, &mem, &root, &copy), KILN_ERR_MALFORMED, words);
    free(copy);
    region_free(&mem);
}

static void ubjson_errors_are_clean(void **state)
{
    (void)state;
    struct { const char *data; size_t n; const char *words; } cases[] = {
        {"[$d#i\xFF", 6, "count is negative"},
        {"[$d#l\x00\x10\x00\x00", 9, "claims 1048576 elements"},
        {"[$d#i\x02\x00\x00\x00\x00", 10, "an array claims 2 elements of 4 bytes"},
        {"[$d\x01", 4, "no count"},
        {"[$N#i\x01", 6, "not a type"},
        {"[#S\x01", 4, "count must be an integer"},
        {"[q]", 3, "'q' is not a value's type marker"},
        {"S\x69\x05" "ab", 5, "claims 5 bytes"},
        {"S\x69\x02\xC3\x28", 5, "not valid UTF-8"},
        {"H\x69\x03" "1.x", 6, "not a number"},
        {"C\x80", 2, "not ASCII"},
        {"{i\x01" "a", 4, "the document ends"},
        {"Z Z", 3, "more follows"},
        {"", 0, "the document ends"},
        {"L\x00\x00", 3, "ends inside a number"},
        {"\xFF", 1, "byte 0xff is not"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = {.n = 0};
        put(&b, cases[i].data, cases[i].n);
        ubjson_refused(&b, cases[i].words);
    }
    bytes deep = {.n = 0};
    for (int i = 0; i <= JSON_MAX_DEPTH; i++) put_byte(&deep, '[');
    ubjson_refused(&deep, "nested too deeply");
}

/* One document in both encodings; every prefix of the UBJSON one is refused too. */
static void write_both(bytes *ub, const char **json)
{
    *json = "{\"name\":\"tree\",\"w\":[0.5,-2.0,1e+30],\"i\":[3,-4],\"more\":[{\"z\":null},true]}";
    ub->n = 0;
    put_byte(ub, '{');
    put_key(ub, "name"), put_string(ub, "tree");
    put_key(ub, "w"), PUT_LITERAL(ub, "[$d#i\x03"), put_f32(ub, 0.5f), put_f32(ub, -2.0f), put_f32(ub, 1e30f);
    put_key(ub, "i"), PUT_LITERAL(ub, "[$i#i\x02\x03\xFC");
    put_key(ub, "more"), put_byte(ub, '['), put_byte(ub, '{'), put_key(ub, "z"), put_byte(ub, 'Z'), put_byte(ub, '}'),
        put_byte(ub, 'T'), put_byte(ub, ']');
    put_byte(ub, '}');
}

static void same_values(const json_value *a, const json_value *b)
{
    bool a_bool = a->type == JSON_TRUE || a->type == JSON_FALSE;
    assert_int_equal(a->type, b->type);
    if (a->type != JSON_NUMBER) assert_int_equal(a->length, b->length); /* a number's length is its encoding's */
    if (a->type == JSON_NUMBER) {
        float fa, fb;
        assert_int_equal(json_to_float(a, &fa), KILN_OK);
        assert_int_equal(json_to_float(b, &fb), KILN_OK);
        assert_true(same_bits(fa, fb));
    } else if (a->type == JSON_STRING) {
        assert_memory_equal(a->data, b->data, a->length);
    } else if (a->type == JSON_ARRAY) {
        for (size_t i = 0; i < a->length; i++) {
            json_value ea, eb;
            json_array_at(a, i, &ea);
            json_array_at(b, i, &eb);
            same_values(&ea, &eb);
        }
    } else if (a->type == JSON_OBJECT) {
        const json_member *ma = a->data, *mb = b->data;
        for (size_t i = 0; i < a->length; i++) {
            same_values(&ma[i].key, &mb[i].key);
            same_values(&ma[i].value, &mb[i].value);
        }
    } else {
        assert_true(a_bool || a->type == JSON_NULL);
    }
}

static void both_encodings_give_one_document(void **state)
{
    (void)state;
    bytes ub;
    const char *text;
    write_both(&ub, &text);
    region json_mem, ub_mem;
    uint8_t *json_copy, *ub_copy;
    json_value from_json = parse_json(text, &json_mem, &json_copy), from_ub;
    ubjson_parses(&ub, &ub_mem, &from_ub, &ub_copy);
    same_values(&from_json, &from_ub);
    free(json_copy);
    free(ub_copy);
    region_free(&json_mem);
    region_free(&ub_mem);
    for (size_t cut = 0; cut < ub.n; cut++) {
        bytes part = ub;
        part.n = cut;
        region mem;
        json_value root;
        uint8_t *copy;
        if (parse_ubjson(&part, &mem, &root, &copy) != KILN_ERR_MALFORMED) fail_msg("the first %zu bytes parsed", cut);
        if (!strstr(kiln_last_error(), "UBJSON: byte ")) fail_msg("message without an offset: %s", kiln_last_error());
        free(copy);
        region_free(&mem);
    }
}

static void ubjson_garbage_never_crashes(void **state)
{
    (void)state;
    bytes ub;
    const char *text;
    write_both(&ub, &text);
    random_seed(9);
    static const uint8_t markers[] = "[]{}$#iUIlLdDHCSZNTF\x00\x01\x02\x7F\x80\xFF";
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        bytes b = ub;
        if (i % 2) {
            for (int flips = (int)random_int(1, 3); flips > 0; flips--)
                b.data[random_int(0, (int64_t)b.n - 1)] = markers[random_int(0, sizeof markers - 2)];
        } else {
            b.n = (size_t)random_int(0, 48);
            for (size_t k = 0; k < b.n; k++) b.data[k] = markers[random_int(0, sizeof markers - 2)];
        }
        region mem;
        json_value root;
        uint8_t *copy;
        kiln_status st = parse_ubjson(&b, &mem, &root, &copy);
        assert_true(st == KILN_OK || st == KILN_ERR_MALFORMED);
        parsed += st == KILN_OK;
        free(copy);
        region_free(&mem);
    }
    assert_true(parsed > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_read_back_what_was_written),
        cmocka_unit_test(every_float32_round_trips),
        cmocka_unit_test(short_decimals_read_as_strtod_reads_them),
        cmocka_unit_test(integers_are_exact_and_checked),
        cmocka_unit_test(malformed_numbers_are_refused),
        cmocka_unit_test(numbers_ignore_the_c_locale),
        cmocka_unit_test(strings_decode_every_escape),
        cmocka_unit_test(bad_strings_are_refused),
        cmocka_unit_test(documents_have_the_written_structure),
        cmocka_unit_test(errors_name_the_byte),
        cmocka_unit_test(nesting_is_limited),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(ubjson_reads_every_marker),
        cmocka_unit_test(ubjson_typed_arrays_stay_in_place),
        cmocka_unit_test(ubjson_errors_are_clean),
        cmocka_unit_test(both_encodings_give_one_document),
        cmocka_unit_test(ubjson_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
