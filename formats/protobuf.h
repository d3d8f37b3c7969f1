/*
 * protobuf.h — a reader for the protobuf wire format, just enough for ONNX files.
 *
 * It never copies: a field's bytes are a pointer into the caller's buffer (the mmap'd model), which is what
 * makes zero-copy weights possible. Every length is checked against the bytes that remain, so a truncated or
 * hostile file ends in an error naming the byte offset, never in a read past the end.
 *
 *     pb_reader r = pb_reader_init(bytes, size, base);
 *     pb_field f;
 *     int more;
 *     while ((more = pb_next(&r, &f)) > 0)
 *         switch (f.number) { case 1: ...; }
 *     if (more < 0) return KILN_ERR_MALFORMED;   // message already set
 */
#ifndef KILN_FORMATS_PROTOBUF_H
#define KILN_FORMATS_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

enum pb_wire_type { PB_VARINT = 0, PB_FIXED64 = 1, PB_BYTES = 2, PB_FIXED32 = 5 };

typedef struct pb_reader {
    const uint8_t *p, *end;
    const uint8_t *base; /* start of the whole file, for offsets in error messages */
} pb_reader;

typedef struct pb_field {
    uint32_t number;
    int wire_type;
    uint64_t varint;     /* PB_VARINT, PB_FIXED64 and PB_FIXED32 values */
    const uint8_t *data; /* PB_BYTES payload */
    size_t len;
} pb_field;

pb_reader pb_reader_init(const void *data, size_t size, const void *base);
/* A reader over a PB_BYTES field's payload (a nested message or packed array). */
pb_reader pb_sub(const pb_reader *parent, const pb_field *field);
/* Reads the next field: 1 when one was read, 0 at the end, -1 on malformed input (with kiln_fail). */
int pb_next(pb_reader *r, pb_field *f);
/* Byte offset of the reader's position in the file. */
size_t pb_offset(const pb_reader *r);

/* Repeated scalar fields come either packed (one PB_BYTES field) or one field per element. These count and
 * decode both forms: pb_count_* add the number of elements a field holds to *count (false if malformed). */
bool pb_count_varints(const pb_field *f, size_t *count);
bool pb_count_fixed(const pb_field *f, size_t width, size_t *count);
/* Appends the field's elements to out[*n...]; `capacity` bounds the writes. */
bool pb_read_varints(const pb_field *f, int64_t *out, size_t capacity, size_t *n);
bool pb_read_fixed32(const pb_field *f, uint32_t *out, size_t capacity, size_t *n);
bool pb_read_fixed64(const pb_field *f, uint64_t *out, size_t capacity, size_t *n);

/* Field payload as a string view. */
static inline bool pb_field_is_bytes(const pb_field *f) { return f->wire_type == PB_BYTES; }

#endif
