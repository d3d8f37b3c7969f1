/*
 * protobuf.c — protobuf wire-format reader (see protobuf.h).
 *
 * Groups (wire types 3 and 4) were deprecated before ONNX existed and are rejected rather than skipped.
 */
#include "formats/protobuf.h"

#include <string.h>

#include "core/error.h"

pb_reader pb_reader_init(const void *data, size_t size, const void *base)
{
    pb_reader r;
    r.p = data;
    r.end = r.p + size;
    r.base = base ? base : data;
    return r;
}

pb_reader pb_sub(const pb_reader *parent, const pb_field *field)
{
    return pb_reader_init(field->data, field->len, parent->base);
}

size_t pb_offset(const pb_reader *r) { return (size_t)(r->p - r->base); }

/* Decodes one varint from [*p, end); false when it is truncated or longer than 10 bytes. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return false;
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *value = v;
            return true;
        }
    }
    return false;
}

static int malformed(const pb_reader *r, const char *what)
{
    kiln_fail(KILN_ERR_MALFORMED, "protobuf: %s at byte %zu", what, pb_offset(r));
    return -1;
}

int pb_next(pb_reader *r, pb_field *f)
{
    if (r->p >= r->end) return 0;
    memset(f, 0, sizeof *f);
    uint64_t key;
    if (!read_varint(&r->p, r->end, &key)) return malformed(r, "truncated field key");
    uint64_t number = key >> 3;
    if (number == 0 || number > 0x1fffffff) return malformed(r, "invalid field number");
    f->number = (uint32_t)number;
    f->wire_type = (int)(key & 7);
    switch (f->wire_type) {
    case PB_VARINT:
        if (!read_varint(&r->p, r->end, &f->varint)) return malformed(r, "truncated varint");
        return 1;
    case PB_FIXED64:
        if (r->end - r->p < 8) return malformed(r, "truncated 64-bit field");
        for (int i = 7; i >= 0; i--) f->varint = (f->varint << 8) | r->p[i];
        r->p += 8;
        return 1;
    case PB_FIXED32:
        if (r->end - r->p < 4) return malformed(r, "truncated 32-bit field");
        for (int i = 3; i >= 0; i--) f->varint = (f->varint << 8) | r->p[i];
        r->p += 4;
        return 1;
    case PB_BYTES: {
        uint64_t len;
        if (!read_varint(&r->p, r->end, &len)) return malformed(r, "truncated length");
        if (len > (uint64_t)(r->end - r->p)) {
            kiln_fail(KILN_ERR_MALFORMED, "protobuf: field %u at byte %zu claims %llu bytes but %zu remain (truncated "
                      "or corrupt file?)", f->number, pb_offset(r), (unsigned long long)len, (size_t)(r->end - r->p));
            return -1;
        }
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default: return malformed(r, "unsupported wire type");
    }
}

bool pb_count_varints(const pb_field *f, size_t *count)
{
    if (f->wire_type == PB_VARINT) {
        (*count)++;
        return true;
    }
    if (f->wire_type != PB_BYTES) return false;
    /* a varint ends at each byte without the continuation bit */
    size_t n = 0;
    for (size_t i = 0; i < f->len; i++) n += !(f->data[i] & 0x80);
    if (f->len && (f->data[f->len - 1] & 0x80)) return false;
    *count += n;
    return true;
}

bool pb_count_fixed(const pb_field *f, size_t width, size_t *count)
{
    int scalar_type = width == 4 ? PB_FIXED32 : PB_FIXED64;
    if (f->wire_type == scalar_type) {
        (*count)++;
        return true;
    }
    if (f->wire_type != PB_BYTES || f->len % width) return false;
    *count += f->len / width;
    return true;
}

bool pb_read_varints(const pb_field *f, int64_t *out, size_t capacity, size_t *n)
{
    if (f->wire_type == PB_VARINT) {
        if (*n >= capacity) return false;
        out[(*n)++] = (int64_t)f->varint;
        return true;
    }
    if (f->wire_type != PB_BYTES) return false;
    const uint8_t *p = f->data, *end = f->data + f->len;
    while (p < end) {
        uint64_t v;
        if (*n >= capacity || !read_varint(&p, end, &v)) return false;
        out[(*n)++] = (int64_t)v;
    }
    return true;
}

static bool read_fixed(const pb_field *f, void *out, size_t width, size_t capacity, size_t *n)
{
    int scalar_type = width == 4 ? PB_FIXED32 : PB_FIXED64;
    unsigned char *dst = out;
    if (f->wire_type == scalar_type) {
        if (*n >= capacity) return false;
        /* fixed fields were decoded little-endian into varint; store in host order */
        if (width == 4) {
            uint32_t v = (uint32_t)f->varint;
            memcpy(dst + *n * width, &v, width);
        } else {
            memcpy(dst + *n * width, &f->varint, width);
        }
        (*n)++;
        return true;
    }
    if (f->wire_type != PB_BYTES || f->len % width) return false;
    size_t count = f->len / width;
    if (count > capacity - *n) return false;
    for (size_t i = 0; i < count; i++) {
        uint64_t v = 0;
        for (size_t b = width; b-- > 0;) v = (v << 8) | f->data[i * width + b];
        if (width == 4) {
            uint32_t v32 = (uint32_t)v;
            memcpy(dst + (*n + i) * width, &v32, width);
        } else {
            memcpy(dst + (*n + i) * width, &v, width);
        }
    }
    *n += count;
    return true;
}

bool pb_read_fixed32(const pb_field *f, uint32_t *out, size_t capacity, size_t *n)
{
    return read_fixed(f, out, 4, capacity, n);
}

bool pb_read_fixed64(const pb_field *f, uint64_t *out, size_t capacity, size_t *n)
{
    return read_fixed(f, out, 8, capacity, n);
}
