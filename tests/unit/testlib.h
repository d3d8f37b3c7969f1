/*
 * testlib.h — helpers shared by the unit tests: building small ONNX models in memory (so tests do not
 * depend on fixture files for simple graphs) and comparing tensors.
 */
#ifndef KILN_TESTLIB_H
#define KILN_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* A growable protobuf writer. */
typedef struct pbw {
    uint8_t *data;
    size_t size, capacity;
} pbw;

void pbw_free(pbw *w);
void pbw_varint_field(pbw *w, int field, uint64_t v);
void pbw_bytes_field(pbw *w, int field, const void *p, size_t n);
void pbw_string_field(pbw *w, int field, const char *s);
/* Appends a nested message (its encoded bytes) as field `field`. */
void pbw_message_field(pbw *w, int field, const pbw *message);
void pbw_float_field(pbw *w, int field, float f);
/* Appends another writer's bytes as they are. */
void pbw_append(pbw *w, const pbw *other);

/* Model building: a tiny DSL over the protobuf writer. */
typedef struct test_model {
    pbw graph;
    pbw model;
    int opset;
} test_model;

void tm_init(test_model *m, int opset);
/* Adds a graph input/output with a float32/int64... type and a fixed shape (dims < 0 become dim_param
 * "N<i>"). */
void tm_input(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims);
void tm_output(test_model *m, const char *name, kiln_dtype dtype);
void tm_initializer(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data);
/* Adds a node; inputs/outputs are NULL-terminated lists; attrs is an already-encoded list of
 * AttributeProto messages (may be NULL). */
void tm_node(test_model *m, const char *op_type, const char *const *inputs, const char *const *outputs, const pbw *attrs);
/* Attribute builders appending to `attrs` (a concatenation of field-5 AttributeProto entries). */
void tm_attr_int(pbw *attrs, const char *name, int64_t v);
void tm_attr_ints(pbw *attrs, const char *name, const int64_t *v, int n);
void tm_attr_float(pbw *attrs, const char *name, float v);
/* Finishes the ModelProto; the bytes are m->model.data/size. */
void tm_finish(test_model *m);
void tm_free(test_model *m);

/* Max |a-b| over float32 arrays. */
double max_abs_diff(const float *a, const float *b, int64_t n);

#endif
