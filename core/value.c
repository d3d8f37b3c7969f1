/*
 * value.c — building, copying and checking sequences and optionals (see value.h).
 */
#include "core/value.h"

#include <string.h>

#include "core/error.h"
#include "core/tensor.h"

/* Where empty lists point: data is never NULL, but nothing is read from it. */
static kiln_tensor no_elements[1];

kiln_status value_make_list(region *mem, kiln_dtype dtype, int64_t count, kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->rank = 1;
    out->dims[0] = count;
    out->data = no_elements;
    if (count == 0) return KILN_OK;
    if (count < 0 || count > (1 << 24)) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "a sequence of %lld elements",
                                                         (long long)count);
    out->data = region_alloc(mem, (size_t)count, sizeof(kiln_tensor));
    if (!out->data) return KILN_ERR_OUT_OF_MEMORY;
    memset(out->data, 0, (size_t)count * sizeof(kiln_tensor));
    return KILN_OK;
}

kiln_status value_copy_tensor(region *mem, const kiln_tensor *src, kiln_tensor *out)
{
    size_t bytes = tensor_bytes(src);
    *out = *src;
    out->data = region_alloc(mem, bytes + 1, 8);
    if (!out->data) return KILN_ERR_OUT_OF_MEMORY;
    if (bytes) memcpy(out->data, src->data, bytes);
    return KILN_OK;
}

kiln_status value_make_map(region *mem, const kiln_tensor *keys, kiln_dtype value_dtype, void *values,
                           kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = value_dtype;
    out->rank = 1;
    out->dims[0] = keys->dims[0];
    kiln_tensor *pair = region_alloc(mem, 2, sizeof *pair);
    if (!pair) return KILN_ERR_OUT_OF_MEMORY;
    pair[0] = *keys;
    pair[1] = (kiln_tensor){.dtype = value_dtype, .rank = 1, .dims = {keys->dims[0]}, .data = values};
    out->data = pair;
    return KILN_OK;
}

/* Keys and values copied (string keys: the pointers; strings are immutable and outlive the values). */
static kiln_status copy_map(region *mem, const kiln_tensor *src, kiln_tensor *out)
{
    kiln_tensor keys, values;
    KILN_TRY(value_copy_tensor(mem, map_keys(src), &keys));
    KILN_TRY(value_copy_tensor(mem, map_values(src), &values));
    return value_make_map(mem, &keys, values.dtype, values.data, out);
}

kiln_status value_copy(region *mem, kiln_value_kind kind, kiln_value_kind elem_kind, const kiln_tensor *src,
                       kiln_tensor *out)
{
    if (kind == KILN_VALUE_TENSOR) return value_copy_tensor(mem, src, out);
    if (kind == KILN_VALUE_MAP) return copy_map(mem, src, out);
    KILN_TRY(value_make_list(mem, src->dtype, value_count(src), out));
    kiln_value_kind inner = kind == KILN_VALUE_OPTIONAL || elem_kind == KILN_VALUE_MAP ? elem_kind : KILN_VALUE_TENSOR;
    for (int64_t i = 0; i < value_count(src); i++)
        KILN_TRY(value_copy(mem, inner, KILN_VALUE_TENSOR, &value_items(src)[i], &value_items(out)[i]));
    return KILN_OK;
}

/* The shape of the concatenation, checking that the items fit together. */
static kiln_status concat_shape(const kiln_tensor *items, int64_t n, int axis, bool new_axis, kiln_tensor *out)
{
    const kiln_tensor *first = &items[0];
    out->rank = first->rank + (new_axis ? 1 : 0);
    if (out->rank > KILN_MAX_RANK || axis < 0 || axis >= out->rank)
        return kiln_fail(KILN_ERR_RUNTIME, "axis %d does not fit tensors of rank %d", axis, first->rank);
    int64_t extent = 0;
    for (int64_t i = 0; i < n; i++) {
        const kiln_tensor *t = &items[i];
        bool fits = t->rank == first->rank;
        for (int d = 0; d < t->rank && fits; d++) fits = t->dims[d] == first->dims[d] || (!new_axis && d == axis);
        if (!fits) {
            char a[128], b[128];
            return kiln_fail(KILN_ERR_RUNTIME, "tensors of shapes %s and %s cannot be joined along axis %d",
                             shape_format(a, sizeof a, first->rank, first->dims), shape_format(b, sizeof b, t->rank, t->dims),
                             axis);
        }
        extent += new_axis ? 1 : t->dims[axis];
    }
    for (int d = 0, k = 0; d < out->rank; d++) {
        if (d == axis) out->dims[d] = extent, k += !new_axis;
        else out->dims[d] = first->dims[k++];
    }
    int64_t numel;
    return shape_numel_checked(out->rank, out->dims, &numel);
}

kiln_status value_concat(region *mem, const kiln_tensor *items, int64_t n, int axis, bool new_axis, bool reverse,
                         kiln_dtype dtype, kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->rank = 1;
    if (n > 0) KILN_TRY(concat_shape(items, n, axis, new_axis, out));
    size_t esize = kiln_dtype_size(dtype);
    out->data = region_alloc(mem, (size_t)tensor_numel(out) * esize + 1, 8);
    if (!out->data) return KILN_ERR_OUT_OF_MEMORY;
    if (n == 0) return KILN_OK;
    /* each item contributes one contiguous chunk to every row of the output's leading dims */
    int64_t outer = shape_numel(axis, out->dims), row = shape_numel(out->rank - axis, out->dims + axis);
    int64_t inner = shape_numel(out->rank - axis - 1, out->dims + axis + 1), offset = 0;
    for (int64_t p = 0; p < n; p++) {
        const kiln_tensor *t = &items[reverse ? n - 1 - p : p];
        int64_t chunk = (new_axis ? 1 : t->dims[axis]) * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out->data + (size_t)(o * row + offset) * esize, (const char *)t->data + (size_t)(o * chunk) * esize,
                   (size_t)chunk * esize);
        offset += chunk;
    }
    return KILN_OK;
}

kiln_status value_slice(region *mem, const kiln_tensor *t, int axis, int64_t start, int64_t length, bool keep_axis,
                        kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = t->dtype;
    out->rank = keep_axis ? t->rank : t->rank - 1;
    for (int d = 0, k = 0; d < t->rank; d++) {
        if (d != axis) out->dims[k++] = t->dims[d];
        else if (keep_axis) out->dims[k++] = length;
    }
    size_t esize = kiln_dtype_size(t->dtype);
    int64_t outer = shape_numel(axis, t->dims), inner = shape_numel(t->rank - axis - 1, t->dims + axis + 1);
    out->data = region_alloc(mem, (size_t)(outer * length * inner) * esize + 1, 8);
    if (!out->data) return KILN_ERR_OUT_OF_MEMORY;
    size_t chunk = (size_t)(length * inner) * esize;
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)out->data + (size_t)o * chunk, (const char *)t->data + (size_t)((o * t->dims[axis] + start) * inner) * esize,
               chunk);
    return KILN_OK;
}

static kiln_status check_tensor(kiln_dtype dtype, const kiln_tensor *t, const char *what)
{
    int64_t numel;
    if (t->dtype != dtype)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: an element is %s, the model expects %s", what,
                         kiln_dtype_name(t->dtype), kiln_dtype_name(dtype));
    if (t->rank < 0 || t->rank > KILN_MAX_RANK || shape_numel_checked(t->rank, t->dims, &numel) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: an element has an invalid shape", what);
    if (!t->data) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: an element has no data", what);
    return KILN_OK;
}

kiln_status value_check(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype dtype, const kiln_tensor *v,
                        const char *what)
{
    if (kind == KILN_VALUE_TENSOR) return check_tensor(dtype, v, what);
    if (kind != KILN_VALUE_SEQUENCE && kind != KILN_VALUE_OPTIONAL)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: maps and sparse tensors are not supported", what);
    int64_t max = kind == KILN_VALUE_OPTIONAL ? 1 : (1 << 24);
    if (v->rank != 1 || v->dims[0] < 0 || v->dims[0] > max || (!v->data && v->dims[0] > 0) || v->dtype != dtype)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: not a valid %s of %s", what,
                         kind == KILN_VALUE_OPTIONAL ? "optional" : "sequence", kiln_dtype_name(dtype));
    kiln_value_kind inner = kind == KILN_VALUE_OPTIONAL ? elem_kind : KILN_VALUE_TENSOR;
    for (int64_t i = 0; i < value_count(v); i++)
        KILN_TRY(value_check(inner, KILN_VALUE_TENSOR, dtype, &value_items(v)[i], what));
    return KILN_OK;
}
