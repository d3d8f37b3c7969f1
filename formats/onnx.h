/*
 * onnx.h — reading ONNX files: models (ModelProto) into kiln's graph IR, and standalone tensors
 * (TensorProto .pb files, as the ONNX test suites ship their inputs and outputs).
 *
 * The reader works over bytes that stay mapped for the model's life. Tensor data that is stored as
 * raw_data, or in an external file, and is suitably aligned is not copied: the tensor points into the
 * mapping. Everything else (typed repeated fields, misaligned raw data) is decoded into the model's region,
 * and the bytes so copied are counted in onnx_stats so `kiln info` can report them.
 */
#ifndef KILN_FORMATS_ONNX_H
#define KILN_FORMATS_ONNX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/platform/platform.h"
#include "graph/graph.h"
#include "kiln.h"

/* Files holding external tensor data, mapped once each and unmapped with the model. */
typedef struct onnx_external_files {
    const char *base_dir; /* directory of the model file; NULL: external data is refused */
    int count, capacity;
    const char **locations;
    file_mapping *maps;
} onnx_external_files;

void onnx_external_files_release(onnx_external_files *files);

typedef struct onnx_stats {
    size_t weight_bytes_mapped; /* tensor data used in place, zero-copy */
    size_t weight_bytes_copied; /* decoded or realigned into memory */
    int initializers;
} onnx_stats;

typedef struct onnx_opset {
    const char *domain; /* "" for ai.onnx */
    int64_t version;
} onnx_opset;

typedef struct onnx_model {
    int64_t ir_version;
    const char *producer_name;
    const char *producer_version;
    int64_t model_version;
    int n_opsets;
    onnx_opset *opsets;
    int n_functions;
    graph *graph;
    onnx_stats stats;
} onnx_model;

/* Parses a ModelProto. Model-local functions are inlined into the graph. Small allocations go to `mem`;
 * external files are recorded in `files` (release them after the model). */
kiln_status onnx_read_model(const uint8_t *data, size_t size, region *mem, onnx_external_files *files,
                            onnx_model *model);

/* Decodes one TensorProto message. `name` (optional) receives the tensor's name. Data is copied into `mem`
 * unless it can be used in place (raw or external data, aligned); `stats` (optional) counts both. */
kiln_status onnx_read_tensor(const uint8_t *data, size_t size, const uint8_t *file_base, region *mem,
                             onnx_external_files *files, onnx_stats *stats, kiln_tensor **tensor, const char **name);

/* Serialises a tensor as a TensorProto with raw_data into a heap buffer (free with mem_free). */
kiln_status onnx_write_tensor(const kiln_tensor *tensor, const char *name, uint8_t **out, size_t *size);

/* Sequences and optionals (encoded as kiln.h describes) from and to SequenceProto / OptionalProto. Read
 * values own their memory, every element and list in its own aligned heap block (free with
 * onnx_value_free); `dtype` is the elements' dtype the model expects (an empty sequence does not say). */
kiln_status onnx_read_value(const uint8_t *data, size_t size, kiln_value_kind kind, kiln_value_kind elem_kind,
                            kiln_dtype dtype, kiln_tensor *out);
void onnx_value_free(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_tensor *value);
/* Serialises a value (a tensor as onnx_write_tensor) into a heap buffer (free with mem_free). */
kiln_status onnx_write_value(kiln_value_kind kind, kiln_value_kind elem_kind, const kiln_tensor *value,
                             const char *name, uint8_t **out, size_t *size);

#endif
