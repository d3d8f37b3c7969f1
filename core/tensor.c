/*
 * tensor.c — shape arithmetic (see tensor.h).
 */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"

kiln_status shape_numel_checked(int rank, const int64_t *dims, int64_t *numel)
{
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0) return kiln_fail(KILN_ERR_MALFORMED, "negative dimension %lld", (long long)dims[i]);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0) {
            *numel = 0;
            return KILN_OK;
        }
        if (n > KILN_MAX_ELEMENTS / dims[i]) n = KILN_MAX_ELEMENTS + 1;
        else n *= dims[i];
    }
    if (n > KILN_MAX_ELEMENTS) return kiln_fail(KILN_ERR_MALFORMED, "tensor has more than 2^48 elements");
    *numel = n;
    return KILN_OK;
}

int64_t shape_numel(int rank, const int64_t *dims) { return shape_span(dims, 0, rank); }

int64_t shape_span(const int64_t *dims, int from, int to)
{
    int64_t n = 1;
    for (int i = from; i < to; i++) n *= dims[i];
    return n;
}

bool shape_equal(int rank_a, const int64_t *a, int rank_b, const int64_t *b)
{
    if (rank_a != rank_b) return false;
    for (int i = 0; i < rank_a; i++)
        if (a[i] != b[i]) return false;
    return true;
}

void shape_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= dims[i];
    }
}

char *shape_format(char *buf, size_t size, int rank, const int64_t *dims)
{
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < rank && used < size; i++) {
        if (dims[i] < 0) n = snprintf(buf + used, size - used, "%s?", i ? "," : "");
        else n = snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)dims[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

int64_t tensor_numel(const kiln_tensor *t) { return shape_numel(t->rank, t->dims); }

size_t tensor_bytes(const kiln_tensor *t) { return (size_t)tensor_numel(t) * kiln_dtype_size(t->dtype); }

bool tensor_contents_equal(const kiln_tensor *a, const kiln_tensor *b)
{
    if (a->dtype != KILN_STRING) return tensor_bytes(a) == 0 || memcmp(a->data, b->data, tensor_bytes(a)) == 0;
    const char *const *sa = a->data, *const *sb = b->data;
    for (int64_t i = 0, n = tensor_numel(a); i < n; i++)
        if (strcmp(sa[i], sb[i]) != 0) return false;
    return true;
}

void *tensor_copy_contents(const kiln_tensor *t, region *mem)
{
    size_t bytes = tensor_bytes(t);
    char *copy = region_alloc(mem, bytes + 1, 1);
    if (!copy) return NULL;
    if (bytes) memcpy(copy, t->data, bytes);
    if (t->dtype == KILN_STRING) {
        const char **strings = (const char **)(void *)copy;
        for (int64_t i = 0, n = tensor_numel(t); i < n; i++)
            if (!(strings[i] = region_strdup(mem, strings[i]))) return NULL;
    }
    return copy;
}

void tensor_set_shape(kiln_tensor *t, kiln_dtype dtype, int rank, const int64_t *dims)
{
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
}

bool axis_normalize(int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank) return false;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

int64_t tensor_get_int(const kiln_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_INT64: return ((const int64_t *)t->data)[i];
    case KILN_INT32: return ((const int32_t *)t->data)[i];
    case KILN_INT16: return ((const int16_t *)t->data)[i];
    case KILN_INT8: return ((const int8_t *)t->data)[i];
    case KILN_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case KILN_UINT32: return ((const uint32_t *)t->data)[i];
    case KILN_UINT16: return ((const uint16_t *)t->data)[i];
    case KILN_UINT8:
    case KILN_BOOL: return ((const uint8_t *)t->data)[i];
    default: {
        /* floats: converting an out-of-range value to int64 is undefined in C, so saturate (NaN -> 0) */
        double d = tensor_get_double(t, i);
        if (!(d == d)) return 0;
        if (d >= 9223372036854775807.0) return INT64_MAX;
        if (d <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)d;
    }
    }
}

double tensor_get_double(const kiln_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_FLOAT32: return ((const float *)t->data)[i];
    case KILN_FLOAT64: return ((const double *)t->data)[i];
    case KILN_FLOAT16: return dtype_half_to_float(((const uint16_t *)t->data)[i]);
    case KILN_BFLOAT16: return dtype_bfloat16_to_float(((const uint16_t *)t->data)[i]);
    case KILN_UINT64: return (double)((const uint64_t *)t->data)[i];
    default: return (double)tensor_get_int(t, i);
    }
}
