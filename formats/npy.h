/*
 * npy.h — NumPy .npy files (format versions 1.0 to 3.0), the lingua franca for tensors between Python and
 * kiln's command line.
 */
#ifndef KILN_FORMATS_NPY_H
#define KILN_FORMATS_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* True when the bytes start with the .npy magic. */
bool npy_is_npy(const uint8_t *data, size_t size);
/* Parses the header alone (data[0 .. size) need only hold the header): sets t's dtype and shape (t->data
 * untouched) and where the data starts, for readers that stream the data. */
kiln_status npy_parse_header(const uint8_t *data, size_t size, kiln_tensor *t, size_t *data_offset);
/* Parses the header: sets t's dtype and shape (t->data untouched) and where the data starts. Checks that
 * the file holds all the data the header promises. */
kiln_status npy_parse(const uint8_t *data, size_t size, kiln_tensor *t, size_t *data_offset);
/* Writes a version 1.0 header (padded to 64 bytes, as NumPy does) for t into buf; returns its length, or 0
 * when buf is too small (512 bytes always suffice). */
size_t npy_format_header(const kiln_tensor *t, char *buf, size_t size);
/* Writes t to a .npy file (through a temporary file renamed into place). */
kiln_status npy_write_file(const char *path, const kiln_tensor *t);

#endif
