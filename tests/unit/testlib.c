/*
 * testlib.c — protobuf writing and model building for unit tests (see testlib.h).
 */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pbw_raw(pbw *w, const void *p, size_t n)
{
    if (w->size + n > w->capacity) {
        size_t cap = w->capacity ? w->capacity : 64;
        while (cap < w->size + n) cap *= 2;
        w->data = realloc(w->data, cap);
        if (!w->data) abort();
        w->capacity = cap;
    }
    if (n) memcpy(w->data + w->size, p, n);
    w->size += n;
}

static void pbw_varint(pbw *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    pbw_raw(w, b, n);
}

void pbw_free(pbw *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}

void pbw_varint_field(pbw *w, int field, uint64_t v)
{
    pbw_varint(w, (uint64_t)field << 3);
    pbw_varint(w, v);
}

void pbw_bytes_field(pbw *w, int field, const void *p, size_t n)
{
    pbw_varint(w, (uint64_t)field << 3 | 2);
    pbw_varint(w, n);
    pbw_raw(w, p, n);
}

void pbw_string_field(pbw *w, int field, const char *s) { pbw_bytes_field(w, field, s, strlen(s)); }

void pbw_message_field(pbw *w, int field, const pbw *message) { pbw_bytes_field(w, field, message->data, message->size); }

void pbw_append(pbw *w, const pbw *other) { pbw_raw(w, other->data, other->size); }

void pbw_float_field(pbw *w, int field, float f)
{
    pbw_varint(w, (uint64_t)field << 3 | 5);
    pbw_raw(w, &f, 4);
}

void tm_init(test_model *m, int opset)
{
    memset(m, 0, sizeof *m);
    m->opset = opset;
}

static void value_info(pbw *out, int field, const char *name, kiln_dtype dtype, int rank, const int64_t *dims)
{
    pbw shape = {0}, tensor_type = {0}, type = {0}, vi = {0};
    for (int i = 0; i < rank; i++) {
        pbw dim = {0};
        if (dims[i] >= 0) pbw_varint_field(&dim, 1, (uint64_t)dims[i]);
        else {
            char param[16];
            snprintf(param, sizeof param, "N%d", i);
            pbw_string_field(&dim, 2, param);
        }
        pbw_message_field(&shape, 1, &dim);
        pbw_free(&dim);
    }
    pbw_varint_field(&tensor_type, 1, (uint64_t)dtype);
    if (rank >= 0) pbw_message_field(&tensor_type, 2, &shape);
    pbw_message_field(&type, 1, &tensor_type);
    pbw_string_field(&vi, 1, name);
    pbw_message_field(&vi, 2, &type);
    pbw_message_field(out, field, &vi);
    pbw_free(&shape);
    pbw_free(&tensor_type);
    pbw_free(&type);
    pbw_free(&vi);
}

void tm_input(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims)
{
    value_info(&m->graph, 11, name, dtype, rank, dims);
}

void tm_output(test_model *m, const char *name, kiln_dtype dtype) { value_info(&m->graph, 12, name, dtype, -1, NULL); }

void tm_initializer(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    pbw t = {0};
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        pbw_varint_field(&t, 1, (uint64_t)dims[i]);
        n *= dims[i];
    }
    pbw_varint_field(&t, 2, (uint64_t)dtype);
    pbw_string_field(&t, 8, name);
    pbw_bytes_field(&t, 9, data, (size_t)n * kiln_dtype_size(dtype));
    pbw_message_field(&m->graph, 5, &t);
    pbw_free(&t);
}

void tm_node(test_model *m, const char *op_type, const char *const *inputs, const char *const *outputs, const pbw *attrs)
{
    pbw node = {0};
    for (const char *const *p = inputs; p && *p; p++) pbw_string_field(&node, 1, *p);
    for (const char *const *p = outputs; p && *p; p++) pbw_string_field(&node, 2, *p);
    pbw_string_field(&node, 3, outputs[0]);
    pbw_string_field(&node, 4, op_type);
    if (attrs) pbw_append(&node, attrs);
    pbw_message_field(&m->graph, 1, &node);
    pbw_free(&node);
}

static void attr_begin(pbw *a, const char *name, int type)
{
    pbw_string_field(a, 1, name);
    pbw_varint_field(a, 20, (uint64_t)type);
}

static void attr_end(pbw *attrs, pbw *a)
{
    pbw_message_field(attrs, 5, a);
    pbw_free(a);
}

void tm_attr_int(pbw *attrs, const char *name, int64_t v)
{
    pbw a = {0};
    attr_begin(&a, name, 2);
    pbw_varint_field(&a, 3, (uint64_t)v);
    attr_end(attrs, &a);
}

void tm_attr_ints(pbw *attrs, const char *name, const int64_t *v, int n)
{
    pbw a = {0};
    attr_begin(&a, name, 7);
    for (int i = 0; i < n; i++) pbw_varint_field(&a, 8, (uint64_t)v[i]);
    attr_end(attrs, &a);
}

void tm_attr_float(pbw *attrs, const char *name, float v)
{
    pbw a = {0};
    attr_begin(&a, name, 1);
    pbw_float_field(&a, 2, v);
    attr_end(attrs, &a);
}

void tm_finish(test_model *m)
{
    pbw opset = {0};
    pbw_varint_field(&m->model, 1, 8); /* ir_version */
    pbw_string_field(&m->model, 2, "kiln-tests");
    pbw_string_field(&m->graph, 2, "test");
    pbw_message_field(&m->model, 7, &m->graph);
    pbw_string_field(&opset, 1, "");
    pbw_varint_field(&opset, 2, (uint64_t)m->opset);
    pbw_message_field(&m->model, 8, &opset);
    pbw_free(&opset);
}

void tm_free(test_model *m)
{
    pbw_free(&m->graph);
    pbw_free(&m->model);
}

double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}
