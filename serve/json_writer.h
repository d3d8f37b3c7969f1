/*
 * json_writer.h — the server's JSON output: a growable buffer with a writer that places commas itself.
 *
 * Responses are written once, front to back, so the writer is a cursor, not a document: containers are opened
 * and closed, keys and values appended, and a bit per nesting level remembers whether the container already
 * holds an item (and so needs a ',' before the next). Numbers are formatted without printf where that is the
 * hot path (integers), and floats in the shortest form that reads back to the same value.
 *
 * An allocation failure sets `failed` and makes every later call a no-op, so callers check once at the end.
 * The buffer is plain malloc'd memory that can be handed to the HTTP library, which frees it with free().
 */
#ifndef KILN_SERVE_JSON_WRITER_H
#define KILN_SERVE_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 32

typedef struct json_writer {
    char *data;
    size_t length, capacity;
    bool failed;
    int depth;
    uint32_t has_items; /* bit d: the container at depth d already holds an item */
    bool after_key;     /* a key was written; its value needs no comma */
} json_writer;

void jw_init(json_writer *w);
void jw_free(json_writer *w);
/* Empties the text, keeping the buffer. */
void jw_reset(json_writer *w);
/* Hands the buffer to the caller (free() it); the writer is left empty. NULL after a failure. */
char *jw_take(json_writer *w, size_t *length);

void jw_object_begin(json_writer *w);
void jw_object_end(json_writer *w);
void jw_array_begin(json_writer *w);
void jw_array_end(json_writer *w);
/* A member name; the next value written is its value. */
void jw_key(json_writer *w, const char *key);

void jw_string(json_writer *w, const char *s);
void jw_string_n(json_writer *w, const char *s, size_t n);
void jw_int(json_writer *w, int64_t v);
void jw_uint(json_writer *w, uint64_t v);
void jw_bool(json_writer *w, bool v);
void jw_null(json_writer *w);
/* Shortest decimal that reads back (strtof/strtod) as the same value; NaN and infinities are written as
 * NaN, Infinity and -Infinity, which JSON lacks but Python's json and most readers accept. */
void jw_float32(json_writer *w, float v);
void jw_float64(json_writer *w, double v);

/* Appends bytes verbatim, outside the JSON structure (the binary tensors that follow a binary response). */
void jw_raw(json_writer *w, const void *bytes, size_t n);
/* Appends printf-formatted text verbatim (Prometheus text, which is not JSON). */
void jw_printf(json_writer *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The shortest round-trip text of a float into buf (at least 32 bytes); returns its length. */
size_t jw_format_float32(float v, char *buf);
size_t jw_format_float64(double v, char *buf);

#endif
