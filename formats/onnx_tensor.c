/*
 * onnx_tensor.c — TensorProto: decoding (zero-copy where the bytes allow) and encoding.
 *
 * Raw and external data are little-endian bytes; kiln's targets are little-endian, so such data is used in
 * place when its address suits the element type's alignment. Reading a float through a misaligned pointer
 * is undefined behaviour in C (and traps on some ARM cores), so misaligned data is copied instead; the
 * copy is counted, never hidden.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "formats/onnx.h"
#include "formats/protobuf.h"

/* Non-NULL data pointer for tensors without elements (memcpy and friends must not see NULL). */
static const uint64_t no_elements[1];

enum tensor_field {
    TENSOR_DIMS = 1,
    TENSOR_DATA_TYPE = 2,
    TENSOR_SEGMENT = 3,
    TENSOR_FLOAT_DATA = 4,
    TENSOR_INT32_DATA = 5,
    TENSOR_STRING_DATA = 6,
    TENSOR_INT64_DATA = 7,
    TENSOR_NAME = 8,
    TENSOR_RAW_DATA = 9,
    TENSOR_DOUBLE_DATA = 10,
    TENSOR_UINT64_DATA = 11,
    TENSOR_EXTERNAL_DATA = 13,
    TENSOR_DATA_LOCATION = 14,
};

/* The typed field a dtype's values live in when not in raw_data. */
static int typed_field_for(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32:
    case KILN_COMPLEX64: return TENSOR_FLOAT_DATA;
    case KILN_FLOAT64:
    case KILN_COMPLEX128: return TENSOR_DOUBLE_DATA;
    case KILN_INT64: return TENSOR_INT64_DATA;
    case KILN_UINT32:
    case KILN_UINT64: return TENSOR_UINT64_DATA;
    case KILN_STRING: return TENSOR_STRING_DATA;
    default: return TENSOR_INT32_DATA; /* int8/16/32, uint8/16, bool, float16, bfloat16 */
    }
}

static size_t alignment_for(kiln_dtype dtype)
{
    size_t size = kiln_dtype_size(dtype);
    if (dtype == KILN_COMPLEX64) return 4;
    if (dtype == KILN_COMPLEX128) return 8;
    return size > 8 ? 8 : size;
}

void onnx_external_files_release(onnx_external_files *files)
{
    for (int i = 0; i < files->count; i++) platform_unmap_file(&files->maps[i]);
    mem_free(files->maps);
    mem_free((void *)files->locations);
    files->maps = NULL;
    files->locations = NULL;
    files->count = files->capacity = 0;
}

/* Rejects locations that could escape the model's directory: hostile models must not read /etc/passwd. */
static bool location_is_safe(const char *location)
{
    if (!location[0] || location[0] == '/' || location[0] == '\\') return false;
    if (strchr(location, ':')) return false;
    const char *p = location;
    while (*p) {
        size_t len = strcspn(p, "/\\");
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        p += len;
        if (*p) p++;
    }
    return true;
}

static kiln_status map_external(onnx_external_files *files, const char *location, const file_mapping **out)
{
    for (int i = 0; i < files->count; i++)
        if (strcmp(files->locations[i], location) == 0) {
            *out = &files->maps[i];
            return KILN_OK;
        }
    if (!files->base_dir)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "external data '%s' cannot be used when loading from memory",
                         location);
    if (!location_is_safe(location))
        return kiln_fail(KILN_ERR_MALFORMED, "external data location '%s' leaves the model's directory", location);
    if (files->count == files->capacity) {
        int cap = files->capacity ? files->capacity * 2 : 4;
        file_mapping *maps = mem_realloc(files->maps, (size_t)cap * sizeof *maps);
        if (!maps) return KILN_ERR_OUT_OF_MEMORY;
        files->maps = maps;
        const char **locations = mem_realloc((void *)files->locations, (size_t)cap * sizeof *locations);
        if (!locations) return KILN_ERR_OUT_OF_MEMORY;
        files->locations = locations;
        files->capacity = cap;
    }
    size_t path_len = strlen(files->base_dir) + strlen(location) + 2;
    char *path = mem_alloc(path_len);
    if (!path) return KILN_ERR_OUT_OF_MEMORY;
    snprintf(path, path_len, "%s/%s", files->base_dir, location);
    kiln_status st = platform_map_file(path, &files->maps[files->count]);
    mem_free(path);
    if (st != KILN_OK) return st;
    files->locations[files->count] = location; /* points into the model's region */
    *out = &files->maps[files->count++];
    return KILN_OK;
}

typedef struct external_ref {
    const char *location;
    uint64_t offset, length;
    bool has_length;
} external_ref;

static kiln_status parse_external_entry(const pb_reader *parent, const pb_field *f, region *mem, external_ref *ref)
{
    pb_reader r = pb_sub(parent, f);
    pb_field e;
    const uint8_t *key = NULL, *value = NULL;
    size_t key_len = 0, value_len = 0;
    int more;
    while ((more = pb_next(&r, &e)) > 0) {
        if (e.number == 1 && pb_field_is_bytes(&e)) key = e.data, key_len = e.len;
        if (e.number == 2 && pb_field_is_bytes(&e)) value = e.data, value_len = e.len;
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (!key || !value) return KILN_OK;
    char *text = region_strndup(mem, (const char *)value, value_len);
    if (!text) return KILN_ERR_OUT_OF_MEMORY;
    if (key_len == 8 && memcmp(key, "location", 8) == 0) {
        ref->location = text;
    } else if ((key_len == 6 && memcmp(key, "offset", 6) == 0) || (key_len == 6 && memcmp(key, "length", 6) == 0)) {
        char *end;
        unsigned long long n = strtoull(text, &end, 10);
        if (!text[0] || *end || text[0] == '-')
            return kiln_fail(KILN_ERR_MALFORMED, "external data %.*s '%s' is not a number", (int)key_len, key, text);
        if (key[0] == 'o') ref->offset = n;
        else ref->length = n, ref->has_length = true;
    }
    return KILN_OK;
}

/* Everything a TensorProto says, before its data is interpreted. */
typedef struct tensor_fields {
    kiln_tensor *t;
    const char *name;
    bool has_data_type, has_raw, external;
    const uint8_t *raw;
    size_t raw_len;
    size_t typed_count; /* values found in the typed field matching the dtype */
    external_ref ext;
} tensor_fields;

static kiln_status scan_tensor(pb_reader r, region *mem, tensor_fields *tf)
{
    kiln_tensor *t = tf->t;
    pb_field f;
    int more;
    size_t n_dims = 0;
    while ((more = pb_next(&r, &f)) > 0) {
        switch (f.number) {
        case TENSOR_DIMS: {
            size_t before = n_dims;
            if (!pb_count_varints(&f, &n_dims)) return kiln_fail(KILN_ERR_MALFORMED, "bad dims field");
            if (n_dims > KILN_MAX_RANK)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "rank %zu exceeds kiln's maximum of %d", n_dims,
                                 KILN_MAX_RANK);
            size_t filled = before;
            if (!pb_read_varints(&f, t->dims, KILN_MAX_RANK, &filled))
                return kiln_fail(KILN_ERR_MALFORMED, "bad dims field");
            break;
        }
        case TENSOR_DATA_TYPE:
            if (f.wire_type != PB_VARINT || !dtype_is_known((int)f.varint))
                return kiln_fail(KILN_ERR_UNSUPPORTED, "unknown data_type %llu", (unsigned long long)f.varint);
            t->dtype = (kiln_dtype)f.varint;
            tf->has_data_type = true;
            break;
        case TENSOR_SEGMENT: return kiln_fail(KILN_ERR_UNSUPPORTED, "segmented tensors are not supported");
        case TENSOR_NAME:
            if (!pb_field_is_bytes(&f)) return kiln_fail(KILN_ERR_MALFORMED, "bad name field");
            tf->name = region_strndup(mem, (const char *)f.data, f.len);
            if (!tf->name) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case TENSOR_RAW_DATA:
            if (!pb_field_is_bytes(&f)) return kiln_fail(KILN_ERR_MALFORMED, "bad raw_data field");
            tf->has_raw = true;
            tf->raw = f.data;
            tf->raw_len = f.len;
            break;
        case TENSOR_EXTERNAL_DATA:
            if (!pb_field_is_bytes(&f)) return kiln_fail(KILN_ERR_MALFORMED, "bad external_data field");
            KILN_TRY(parse_external_entry(&r, &f, mem, &tf->ext));
            break;
        case TENSOR_DATA_LOCATION: tf->external = f.varint == 1; break;
        default: break;
        }
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    t->rank = (int)n_dims;
    if (!tf->has_data_type) return kiln_fail(KILN_ERR_MALFORMED, "tensor has no data_type");
    return KILN_OK;
}

/* Second pass: decode the typed repeated field into freshly allocated memory. */
static kiln_status decode_typed(pb_reader r, region *mem, kiln_tensor *t, int64_t numel)
{
    int field = typed_field_for(t->dtype);
    size_t values = (size_t)numel * ((t->dtype == KILN_COMPLEX64 || t->dtype == KILN_COMPLEX128) ? 2 : 1);
    size_t count = 0;
    pb_field f;
    int more;
    pb_reader scan = r;
    while ((more = pb_next(&scan, &f)) > 0) {
        if ((int)f.number != field) continue;
        bool ok = field == TENSOR_FLOAT_DATA    ? pb_count_fixed(&f, 4, &count)
                  : field == TENSOR_DOUBLE_DATA ? pb_count_fixed(&f, 8, &count)
                  : field == TENSOR_STRING_DATA ? (count++, pb_field_is_bytes(&f))
                                                : pb_count_varints(&f, &count);
        if (!ok) return kiln_fail(KILN_ERR_MALFORMED, "bad typed data field %d", field);
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (count != values)
        return kiln_fail(KILN_ERR_MALFORMED, "has %zu values, its dims need %zu", count, values);
    if (values == 0) {
        t->data = (void *)no_elements;
        return KILN_OK;
    }
    size_t elem = kiln_dtype_size(t->dtype);
    unsigned char *out = region_alloc(mem, (size_t)numel, elem);
    if (!out) return KILN_ERR_OUT_OF_MEMORY;
    t->data = out;
    if (field == TENSOR_STRING_DATA) {
        char **strings = (char **)out;
        size_t i = 0;
        while (pb_next(&r, &f) > 0)
            if ((int)f.number == field) {
                strings[i] = region_strndup(mem, (const char *)f.data, f.len);
                if (!strings[i++]) return KILN_ERR_OUT_OF_MEMORY;
            }
        return KILN_OK;
    }
    if (field == TENSOR_FLOAT_DATA || field == TENSOR_DOUBLE_DATA) {
        size_t n = 0;
        while (pb_next(&r, &f) > 0)
            if ((int)f.number == field) {
                bool ok = field == TENSOR_FLOAT_DATA ? pb_read_fixed32(&f, (uint32_t *)out, values, &n)
                                                     : pb_read_fixed64(&f, (uint64_t *)out, values, &n);
                if (!ok) return kiln_fail(KILN_ERR_MALFORMED, "bad typed data field %d", field);
            }
        return KILN_OK;
    }
    /* varint fields: decode to int64 then narrow to the element width */
    int64_t *wide = mem_alloc(values * sizeof *wide);
    if (!wide) return KILN_ERR_OUT_OF_MEMORY;
    size_t n = 0;
    while (pb_next(&r, &f) > 0)
        if ((int)f.number == field && !pb_read_varints(&f, wide, values, &n)) {
            mem_free(wide);
            return kiln_fail(KILN_ERR_MALFORMED, "bad typed data field %d", field);
        }
    for (size_t i = 0; i < values; i++) {
        int64_t v = wide[i];
        switch (elem) {
        case 1: out[i] = (unsigned char)v; break;
        case 2: ((uint16_t *)out)[i] = (uint16_t)v; break;
        case 4: ((uint32_t *)out)[i] = (uint32_t)v; break;
        default: ((int64_t *)out)[i] = v; break;
        }
    }
    mem_free(wide);
    if (t->dtype == KILN_BOOL)
        for (size_t i = 0; i < values; i++) out[i] = out[i] != 0;
    return KILN_OK;
}

/* Points the tensor at `bytes` when aligned, else copies them; checks the length. */
static kiln_status use_bytes(kiln_tensor *t, const uint8_t *bytes, size_t len, size_t need, region *mem,
                             onnx_stats *stats)
{
    if (len != need) return kiln_fail(KILN_ERR_MALFORMED, "has %zu data bytes, its dims need %zu", len, need);
    if (need == 0) {
        t->data = (void *)no_elements;
        return KILN_OK;
    }
    if (t->dtype == KILN_BOOL) {
        for (size_t i = 0; i < len; i++)
            if (bytes[i] > 1) return kiln_fail(KILN_ERR_MALFORMED, "bool value %u is neither 0 nor 1", bytes[i]);
    }
    if ((uintptr_t)bytes % alignment_for(t->dtype) == 0) {
        t->data = (void *)bytes;
        if (stats) stats->weight_bytes_mapped += len;
        return KILN_OK;
    }
    void *copy = region_alloc(mem, len, 1);
    if (!copy) return KILN_ERR_OUT_OF_MEMORY;
    memcpy(copy, bytes, len);
    t->data = copy;
    if (stats) stats->weight_bytes_copied += len;
    return KILN_OK;
}

static kiln_status read_tensor(const uint8_t *data, size_t size, const uint8_t *file_base, region *mem,
                               onnx_external_files *files, onnx_stats *stats, kiln_tensor **tensor,
                               const char **name)
{
    kiln_tensor *t = region_alloc(mem, 1, sizeof *t);
    if (!t) return KILN_ERR_OUT_OF_MEMORY;
    *tensor = t;
    tensor_fields tf = {.t = t};
    pb_reader r = pb_reader_init(data, size, file_base);
    kiln_status st = scan_tensor(r, mem, &tf);
    if (name) *name = tf.name ? tf.name : "";
    if (st != KILN_OK) return st;
    int64_t numel;
    KILN_TRY(shape_numel_checked(t->rank, t->dims, &numel));
    size_t need = (size_t)numel * kiln_dtype_size(t->dtype);
    if (t->dtype == KILN_STRING) {
        if (tf.has_raw || tf.external) return kiln_fail(KILN_ERR_MALFORMED, "string tensor with raw data");
        return decode_typed(r, mem, t, numel);
    }
    if (tf.external) {
        if (!files) return kiln_fail(KILN_ERR_UNSUPPORTED, "external data is not allowed here");
        if (!tf.ext.location) return kiln_fail(KILN_ERR_MALFORMED, "external data without a location");
        const file_mapping *map = NULL;
        KILN_TRY(map_external(files, tf.ext.location, &map));
        uint64_t length = tf.ext.has_length ? tf.ext.length
                          : tf.ext.offset <= map->size ? map->size - tf.ext.offset
                                                       : 0;
        if (tf.ext.offset > map->size || length > map->size - tf.ext.offset)
            return kiln_fail(KILN_ERR_MALFORMED, "external data range %llu+%llu is outside '%s' (%zu bytes)",
                             (unsigned long long)tf.ext.offset, (unsigned long long)length, tf.ext.location,
                             map->size);
        if (!tf.ext.has_length && length > need) length = need; /* the rest of the file may hold others */
        return use_bytes(t, map->data + tf.ext.offset, (size_t)length, need, mem, stats);
    }
    if (tf.has_raw) return use_bytes(t, tf.raw, tf.raw_len, need, mem, stats);
    KILN_TRY(decode_typed(r, mem, t, numel));
    if (stats) stats->weight_bytes_copied += need;
    return KILN_OK;
}

kiln_status onnx_read_tensor(const uint8_t *data, size_t size, const uint8_t *file_base, region *mem,
                             onnx_external_files *files, onnx_stats *stats, kiln_tensor **tensor, const char **name)
{
    const char *tensor_name = "";
    kiln_status st = read_tensor(data, size, file_base, mem, files, stats, tensor, &tensor_name);
    if (name) *name = tensor_name;
    if (st != KILN_OK) {
        if (tensor_name[0]) return kiln_fail_prefix(st, "tensor '%s'", tensor_name);
        return kiln_fail_prefix(st, "tensor");
    }
    return KILN_OK;
}

/* ---- encoding ---------------------------------------------------------------------------------------- */

typedef struct byte_buffer {
    uint8_t *data;
    size_t size, capacity;
    bool failed;
} byte_buffer;

static void put_bytes(byte_buffer *b, const void *p, size_t n)
{
    if (b->failed) return;
    if (b->size + n > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 256;
        while (cap < b->size + n) cap *= 2;
        uint8_t *q = mem_realloc(b->data, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->data = q;
        b->capacity = cap;
    }
    if (n) memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_varint(byte_buffer *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    put_bytes(b, tmp, n);
}

static void put_key(byte_buffer *b, int field, int wire_type) { put_varint(b, (uint64_t)(field << 3 | wire_type)); }

static void put_length_delimited(byte_buffer *b, int field, const void *p, size_t n)
{
    put_key(b, field, PB_BYTES);
    put_varint(b, n);
    put_bytes(b, p, n);
}

kiln_status onnx_write_tensor(const kiln_tensor *t, const char *name, uint8_t **out, size_t *size)
{
    byte_buffer b = {0};
    for (int i = 0; i < t->rank; i++) {
        put_key(&b, TENSOR_DIMS, PB_VARINT);
        put_varint(&b, (uint64_t)t->dims[i]);
    }
    put_key(&b, TENSOR_DATA_TYPE, PB_VARINT);
    put_varint(&b, (uint64_t)t->dtype);
    if (name && name[0]) put_length_delimited(&b, TENSOR_NAME, name, strlen(name));
    int64_t numel = tensor_numel(t);
    if (t->dtype == KILN_STRING) {
        const char *const *strings = t->data;
        for (int64_t i = 0; i < numel; i++) put_length_delimited(&b, TENSOR_STRING_DATA, strings[i], strlen(strings[i]));
    } else {
        put_length_delimited(&b, TENSOR_RAW_DATA, t->data, tensor_bytes(t));
    }
    if (b.failed) {
        mem_free(b.data);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    *out = b.data;
    *size = b.size;
    return KILN_OK;
}

/* ---- sequences and optionals (SequenceProto, OptionalProto) ------------------------------------------ */

/* Fields shared by SequenceProto and OptionalProto: name 1, elem_type 2, then the value fields (repeated in
 * a sequence): tensor 3, sparse tensor 4, sequence 5, map 6, optional 7. elem_type numbers: tensor 1,
 * sequence 3, map 4, optional 5. */
enum value_field {
    VALUE_NAME = 1,
    VALUE_ELEM_TYPE = 2,
    VALUE_TENSOR_FIELD = 3,
    VALUE_SEQUENCE_FIELD = 5,
    VALUE_MAP_FIELD = 6
};
enum { ELEM_TENSOR = 1, ELEM_SEQUENCE = 3, ELEM_MAP = 4 };
/* MapProto: key_type 2, keys 3 (integers), string_keys 4, values 5 (a SequenceProto of scalar tensors, as
 * onnx.numpy_helper.from_dict writes it). */
enum map_field { MAP_KEY_TYPE = 2, MAP_KEYS = 3, MAP_STRING_KEYS = 4, MAP_VALUES = 5 };

/* Encodes `body` (a nested message) into b as field `field`. */
static kiln_status put_message(byte_buffer *b, int field, kiln_status (*body)(byte_buffer *, const kiln_tensor *),
                               const kiln_tensor *v)
{
    byte_buffer inner = {0};
    kiln_status st = body(&inner, v);
    if (st == KILN_OK && inner.failed) st = KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) put_length_delimited(b, field, inner.data, inner.size);
    mem_free(inner.data);
    return st;
}

/* A map's values as a SequenceProto of scalar tensors. */
static kiln_status encode_map_values(byte_buffer *b, const kiln_tensor *values)
{
    put_key(b, VALUE_ELEM_TYPE, PB_VARINT);
    put_varint(b, ELEM_TENSOR);
    size_t esize = kiln_dtype_size(values->dtype);
    for (int64_t i = 0; i < values->dims[0]; i++) {
        kiln_tensor scalar = {.dtype = values->dtype, .rank = 0, .data = (char *)values->data + (size_t)i * esize};
        uint8_t *bytes = NULL;
        size_t size = 0;
        KILN_TRY(onnx_write_tensor(&scalar, NULL, &bytes, &size));
        put_length_delimited(b, VALUE_TENSOR_FIELD, bytes, size);
        mem_free(bytes);
    }
    return KILN_OK;
}

static kiln_status encode_map(byte_buffer *b, const kiln_tensor *map)
{
    const kiln_tensor *pair = map->data, *keys = &pair[0];
    put_key(b, MAP_KEY_TYPE, PB_VARINT);
    put_varint(b, (uint64_t)keys->dtype);
    for (int64_t i = 0; i < keys->dims[0]; i++) {
        if (keys->dtype == KILN_STRING) {
            const char *key = ((const char *const *)keys->data)[i];
            put_length_delimited(b, MAP_STRING_KEYS, key, strlen(key));
        } else {
            put_key(b, MAP_KEYS, PB_VARINT);
            put_varint(b, (uint64_t)((const int64_t *)keys->data)[i]);
        }
    }
    return put_message(b, MAP_VALUES, encode_map_values, &pair[1]);
}

static kiln_status encode_value(byte_buffer *b, kiln_value_kind kind, kiln_value_kind elem_kind, const kiln_tensor *v,
                                const char *name)
{
    if (name && name[0]) put_length_delimited(b, VALUE_NAME, name, strlen(name));
    bool holds_sequence = kind == KILN_VALUE_OPTIONAL && elem_kind == KILN_VALUE_SEQUENCE;
    bool holds_maps = kind == KILN_VALUE_SEQUENCE && elem_kind == KILN_VALUE_MAP;
    put_key(b, VALUE_ELEM_TYPE, PB_VARINT);
    put_varint(b, holds_sequence ? ELEM_SEQUENCE : holds_maps ? ELEM_MAP : ELEM_TENSOR);
    const kiln_tensor *items = v->data;
    for (int64_t i = 0; i < v->dims[0]; i++) {
        if (holds_maps) {
            KILN_TRY(put_message(b, VALUE_MAP_FIELD, encode_map, &items[i]));
            continue;
        }
        uint8_t *bytes = NULL;
        size_t size = 0;
        kiln_status st = holds_sequence ? onnx_write_value(KILN_VALUE_SEQUENCE, KILN_VALUE_TENSOR, &items[i], NULL, &bytes, &size)
                                        : onnx_write_tensor(&items[i], NULL, &bytes, &size);
        if (st != KILN_OK) return st;
        put_length_delimited(b, holds_sequence ? VALUE_SEQUENCE_FIELD : VALUE_TENSOR_FIELD, bytes, size);
        mem_free(bytes);
    }
    return KILN_OK;
}

kiln_status onnx_write_value(kiln_value_kind kind, kiln_value_kind elem_kind, const kiln_tensor *v, const char *name,
                             uint8_t **out, size_t *size)
{
    if (kind == KILN_VALUE_TENSOR) return onnx_write_tensor(v, name, out, size);
    byte_buffer b = {0};
    kiln_status st = encode_value(&b, kind, elem_kind, v, name);
    if (st == KILN_OK && b.failed) st = KILN_ERR_OUT_OF_MEMORY;
    if (st != KILN_OK) {
        mem_free(b.data);
        return st;
    }
    *out = b.data;
    *size = b.size;
    return KILN_OK;
}

/* A tensor element decoded into its own aligned heap buffer (the caller's to free). */
static kiln_status read_element(const pb_field *f, kiln_tensor *out)
{
    region mem;
    region_init(&mem);
    kiln_tensor *decoded;
    kiln_status st = onnx_read_tensor(f->data, f->len, f->data, &mem, NULL, NULL, &decoded, NULL);
    if (st == KILN_OK && decoded->dtype == KILN_STRING)
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "string tensors are not supported yet");
    if (st == KILN_OK) {
        *out = *decoded;
        size_t bytes = tensor_bytes(decoded);
        out->data = mem_aligned_alloc(bytes);
        if (!out->data) st = KILN_ERR_OUT_OF_MEMORY;
        else if (bytes) memcpy(out->data, decoded->data, bytes);
    }
    region_free(&mem);
    return st;
}

kiln_status onnx_read_value(const uint8_t *data, size_t size, kiln_value_kind kind, kiln_value_kind elem_kind,
                            kiln_dtype dtype, kiln_tensor *out)
{
    if (kind == KILN_VALUE_TENSOR) return kiln_fail(KILN_ERR_INTERNAL, "onnx_read_value reads sequences and optionals");
    bool holds_sequence = kind == KILN_VALUE_OPTIONAL && elem_kind == KILN_VALUE_SEQUENCE;
    uint32_t want = holds_sequence ? VALUE_SEQUENCE_FIELD : VALUE_TENSOR_FIELD;
    pb_reader r = pb_reader_init(data, size, data);
    pb_field f;
    int more;
    int64_t count = 0;
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number == want && pb_field_is_bytes(&f)) count++;
        else if (f.number >= 4 && f.number <= 7)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "only sequences of tensors and optionals of tensors or sequences are supported");
    }
    if (more < 0) return kiln_fail(KILN_ERR_MALFORMED, "not a valid %s", kind == KILN_VALUE_OPTIONAL ? "OptionalProto" : "SequenceProto");
    if (kind == KILN_VALUE_OPTIONAL && count > 1) return kiln_fail(KILN_ERR_MALFORMED, "an optional with %lld values", (long long)count);
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->rank = 1;
    out->dims[0] = count;
    kiln_tensor *items = mem_aligned_alloc((size_t)count * sizeof *items);
    if (!items) return KILN_ERR_OUT_OF_MEMORY;
    memset(items, 0, (size_t)count * sizeof *items);
    out->data = items;
    r = pb_reader_init(data, size, data);
    kiln_status st = KILN_OK;
    for (int64_t i = 0; st == KILN_OK && pb_next(&r, &f) > 0;) {
        if (f.number != want || !pb_field_is_bytes(&f)) continue;
        st = holds_sequence ? onnx_read_value(f.data, f.len, KILN_VALUE_SEQUENCE, KILN_VALUE_TENSOR, dtype, &items[i])
                            : read_element(&f, &items[i]);
        out->dims[0] = ++i; /* what onnx_value_free must release */
    }
    if (st != KILN_OK) onnx_value_free(kind, elem_kind, out);
    return st;
}

void onnx_value_free(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_tensor *v)
{
    if (kind != KILN_VALUE_TENSOR) {
        kiln_value_kind inner = kind == KILN_VALUE_OPTIONAL ? elem_kind : KILN_VALUE_TENSOR;
        kiln_tensor *items = v->data;
        for (int64_t i = 0; items && i < v->dims[0]; i++) onnx_value_free(inner, KILN_VALUE_TENSOR, &items[i]);
    }
    mem_aligned_free(v->data);
    v->data = NULL;
}
