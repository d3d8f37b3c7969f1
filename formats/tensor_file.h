/*
 * tensor_file.h — one tensor from a file, whichever of the formats kiln reads: .npy, or an ONNX
 * TensorProto (.pb, as the ONNX test suites store their inputs). The format is told from the contents.
 */
#ifndef KILN_FORMATS_TENSOR_FILE_H
#define KILN_FORMATS_TENSOR_FILE_H

#include "kiln.h"

/* Reads the file into a new 64-byte aligned buffer owned by the caller (free with tensor_file_free). */
kiln_status tensor_file_read(const char *path, kiln_tensor *t);
void tensor_file_free(kiln_tensor *t);
/* Writes a TensorProto with raw_data (atomically, like npy_write_file). */
kiln_status tensor_file_write_pb(const char *path, const kiln_tensor *t, const char *name);

/* Sequences and optionals (kiln.h's encoding) in SequenceProto / OptionalProto files. A read value owns
 * its memory (free with value_file_free, which also frees what tensor_file_read returned); `dtype` is
 * the elements' dtype the model expects. */
kiln_status value_file_read_pb(const char *path, kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype dtype,
                               kiln_tensor *v);
void value_file_free(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_tensor *v);
kiln_status value_file_write_pb(const char *path, kiln_value_kind kind, kiln_value_kind elem_kind,
                                const kiln_tensor *v, const char *name);

#endif
