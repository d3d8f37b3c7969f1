/*
 * json.h — JSON documents, and the one in-memory form that structured model files are read into.
 *
 * XGBoost saves models as JSON text or as UBJSON, a binary encoding of the same data model. Both readers
 * (json_parse here, ubjson_parse in ubjson.h) produce the same tree of json_value, so a loader reads one tree
 * of values whatever the file's encoding.
 *
 * The tree is compact and zero-copy where it can be: strings without escapes and all numbers point into the
 * input, which must outlive the document. Numbers stay as they were written (decimal text, or UBJSON's
 * big-endian binary) and are converted when read, so a float32 written in decimal is read with strtof, which
 * gives exactly the float that was written (a detour through double could round twice), and a double with
 * strtod. Arrays whose elements are all numbers (a tree model's per-node arrays, thousands long) are stored
 * packed: one pointer per element for decimal text, the input's own bytes for UBJSON's typed arrays.
 *
 * Input is untrusted: every read is bounded by the input's end, nesting is limited to JSON_MAX_DEPTH and
 * decimal numbers to JSON_MAX_NUMBER_CHARS characters, strings must be valid UTF-8, and errors give the byte
 * offset ("JSON: byte 1041: expected ',' or ']' in an array").
 *
 * Beyond RFC 8259 the reader accepts NaN, Infinity and -Infinity as numbers, as XGBoost writes them.
 */
#ifndef KILN_FORMATS_JSON_H
#define KILN_FORMATS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "kiln.h"

#define JSON_MAX_DEPTH 64
#define JSON_MAX_NUMBER_CHARS 128

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

/* How a number, or every element of a packed array, is stored. */
typedef enum json_encoding {
    JSON_ENC_NONE, /* not a number; for arrays: an array of json_value */
    JSON_ENC_TEXT, /* decimal text in JSON's syntax */
    JSON_ENC_I8,   /* big-endian binary, as UBJSON writes numbers */
    JSON_ENC_U8,
    JSON_ENC_I16,
    JSON_ENC_I32,
    JSON_ENC_I64,
    JSON_ENC_F32,
    JSON_ENC_F64
} json_encoding;

typedef struct json_value {
    uint8_t type;     /* json_type */
    uint8_t encoding; /* json_encoding of a number, or of a packed array's elements */
    size_t length;    /* strings: bytes; numbers: bytes of text or binary; arrays: elements; objects: members */
    /* strings: the bytes (not NUL-terminated); numbers: their text or binary bytes; arrays: json_value[], or
     * for packed arrays `const char *[]` (TEXT: where each number's text starts) or the elements' bytes;
     * objects: json_member[] */
    const void *data;
    size_t offset;    /* where the value starts in the input (for packed elements: where their array starts) */
} json_value;

typedef struct json_member {
    json_value key; /* a JSON_STRING */
    json_value value;
} json_member;

/* Parses a whole JSON document (one value, surrounded by optional whitespace). Allocates in `mem`. */
kiln_status json_parse(const uint8_t *data, size_t size, region *mem, json_value *root);

const char *json_type_name(json_type type);

/* The value of `key` in an object (the first, if written twice), or NULL when absent or v is no object. */
const json_value *json_get(const json_value *object, const char *key);
/* Whether v is a string equal to s. */
bool json_string_is(const json_value *v, const char *s);
/* Element i (< length) of an array. Elements of packed arrays are made into values in *out. */
void json_array_at(const json_value *array, size_t i, json_value *out);

/* A number's value. Each fails with a message naming the byte offset when v is not a number of that kind:
 * json_to_int64 wants an integral value within int64 (1.0 and 1E2 are integers, 1.5 is not). */
kiln_status json_to_double(const json_value *v, double *out);
kiln_status json_to_float(const json_value *v, float *out);
kiln_status json_to_int64(const json_value *v, int64_t *out);

/* Bytes per element of a binary encoding (0 for NONE and TEXT). */
size_t json_encoding_size(json_encoding encoding);

/* The length of the JSON number (or NaN, Infinity, -Infinity) at the start of text[0 .. avail), or 0 when
 * there is none or it is longer than JSON_MAX_NUMBER_CHARS. */
size_t json_scan_number(const char *text, size_t avail);
/* Whether text is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool json_utf8_valid(const uint8_t *text, size_t len);

/* ---- for the readers (json.c, ubjson.c) ------------------------------------------------------------------
 * The values of open containers wait on a stack and are copied into the region, packed where possible, when
 * their container closes; `first` is the stack height when it opened. An object's members are pushed as
 * key, value, key, value... Arrays of decimal numbers are packed when pack_text says that each number's text
 * is followed by a byte that ends it (true of JSON text, not of UBJSON's length-prefixed H numbers). */
typedef struct json_builder {
    region *mem;
    json_value *stack;
    size_t top, capacity;
} json_builder;

kiln_status json_builder_push(json_builder *b, const json_value *v);
kiln_status json_builder_close_array(json_builder *b, size_t first, bool pack_text, json_value *array);
kiln_status json_builder_close_object(json_builder *b, size_t first, json_value *object);
void json_builder_free(json_builder *b);

#endif
