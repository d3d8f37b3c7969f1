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

#endif
