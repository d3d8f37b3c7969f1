/*
 * tensor_file.c — reading a tensor from .npy or TensorProto, writing TensorProto (see tensor_file.h).
 */
#include "formats/tensor_file.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"
#include "core/tensor.h"
#include "formats/npy.h"
#include "formats/onnx.h"

/* A string tensor in one buffer, as tensor_file_free expects: the pointers, then the strings they point to. */
static kiln_status copy_out_strings(const kiln_tensor *src, kiln_tensor *t)
{
    *t = *src;
    int64_t numel = tensor_numel(src);
    const char *const *strings = src->data;
    size_t bytes = (size_t)numel * sizeof(char *);
    for (int64_t i = 0; i < numel; i++) bytes += strlen(strings[i]) + 1;
    char **copy = mem_aligned_alloc(bytes);
    if (!copy) return KILN_ERR_OUT_OF_MEMORY;
    char *text = (char *)(copy + numel);
    for (int64_t i = 0; i < numel; i++) {
        size_t len = strlen(strings[i]) + 1;
        copy[i] = memcpy(text, strings[i], len);
        text += len;
    }
    t->data = copy;
    return KILN_OK;
}

static kiln_status copy_out(const kiln_tensor *src, const void *data, kiln_tensor *t)
{
    if (src->dtype == KILN_STRING) return copy_out_strings(src, t);
    *t = *src;
    size_t bytes = tensor_bytes(src);
    t->data = mem_aligned_alloc(bytes);
    if (!t->data) return KILN_ERR_OUT_OF_MEMORY;
    if (bytes) memcpy(t->data, data, bytes);
    return KILN_OK;
}

kiln_status tensor_file_read(const char *path, kiln_tensor *t)
{
    memset(t, 0, sizeof *t);
    file_mapping map;
    KILN_TRY(platform_map_file(path, &map));
    kiln_status st;
    if (npy_is_npy(map.data, map.size)) {
        kiln_tensor header;
        size_t offset;
        st = npy_parse(map.data, map.size, &header, &offset);
        if (st == KILN_OK) st = copy_out(&header, map.data + offset, t);
    } else {
        region mem;
        region_init(&mem);
        kiln_tensor *decoded;
        st = onnx_read_tensor(map.data, map.size, map.data, &mem, NULL, NULL, &decoded, NULL);
        if (st == KILN_OK) st = copy_out(decoded, decoded->data, t);
        region_free(&mem);
        if (st != KILN_OK && map.size && !npy_is_npy(map.data, map.size))
            kiln_fail_prefix(st, "not a .npy file, and not a valid TensorProto");
    }
    platform_unmap_file(&map);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

void tensor_file_free(kiln_tensor *t)
{
    mem_aligned_free(t->data);
    t->data = NULL;
}

kiln_status tensor_file_write_pb(const char *path, const kiln_tensor *t, const char *name)
{
    uint8_t *bytes;
    size_t size;
    KILN_TRY(onnx_write_tensor(t, name, &bytes, &size));
    kiln_status st = platform_write_file_atomic(path, bytes, size, NULL, 0);
    mem_free(bytes);
    return st;
}

kiln_status value_file_read_pb(const char *path, kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype dtype,
                               kiln_tensor *v)
{
    memset(v, 0, sizeof *v);
    file_mapping map;
    KILN_TRY(platform_map_file(path, &map));
    kiln_status st = onnx_read_value(map.data, map.size, kind, elem_kind, dtype, v);
    platform_unmap_file(&map);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

void value_file_free(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_tensor *v)
{
    onnx_value_free(kind, elem_kind, v);
}

kiln_status value_file_write_pb(const char *path, kiln_value_kind kind, kiln_value_kind elem_kind,
                                const kiln_tensor *v, const char *name)
{
    uint8_t *bytes;
    size_t size;
    KILN_TRY(onnx_write_value(kind, elem_kind, v, name, &bytes, &size));
    kiln_status st = platform_write_file_atomic(path, bytes, size, NULL, 0);
    mem_free(bytes);
    return st;
}
