/*
 * tensor.h — shape arithmetic on kiln_tensor (the public struct doubles as the engine's tensor descriptor).
 *
 * Element counts are int64_t and every product that comes from a file is checked for overflow: a hostile
 * model can declare dims whose product wraps, and the planner must see that as an error, not a small buffer.
 */
#ifndef KILN_CORE_TENSOR_H
#define KILN_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "kiln.h"

/* Largest element count kiln accepts for one tensor (2^48): keeps byte sizes far from overflowing size_t. */
#define KILN_MAX_ELEMENTS (INT64_C(1) << 48)

/* Product of dims; KILN_ERR_MALFORMED for a negative dim or a product beyond KILN_MAX_ELEMENTS. */
kiln_status shape_numel_checked(int rank, const int64_t *dims, int64_t *numel);
/* Product of dims for shapes already validated (the planner checked them). */
int64_t shape_numel(int rank, const int64_t *dims);
/* Product of dims[from..to). */
int64_t shape_span(const int64_t *dims, int from, int to);
bool shape_equal(int rank_a, const int64_t *a, int rank_b, const int64_t *b);
/* Row-major strides in elements. */
void shape_strides(int rank, const int64_t *dims, int64_t *strides);
/* Writes "[2,3,batch]"-style text; unknown dims (<0) print as "?". Returns buf. */
char *shape_format(char *buf, size_t size, int rank, const int64_t *dims);

int64_t tensor_numel(const kiln_tensor *t);
size_t tensor_bytes(const kiln_tensor *t);
/* Sets dtype and shape; data is left alone. */
void tensor_set_shape(kiln_tensor *t, kiln_dtype dtype, int rank, const int64_t *dims);

/* String tensors (KILN_STRING) hold one `const char *` per element, each a NUL-terminated UTF-8 string
 * that lives elsewhere (the caller's input, a constant, or a session's per-run string region). */

/* True when a and b (same dtype and shape) hold the same values: bytes compared, or strings by content. */
bool tensor_contents_equal(const kiln_tensor *a, const kiln_tensor *b);
/* Copies t's contents into `mem` (strings and all) and returns the copy's data; NULL when out of memory. */
void *tensor_copy_contents(const kiln_tensor *t, region *mem);

/* Normalises a possibly negative axis against `rank`; false when it is out of [-rank, rank). */
bool axis_normalize(int64_t axis, int rank, int *out);

/* Reads element i of an integer tensor (any integer width, or bool) as int64. */
int64_t tensor_get_int(const kiln_tensor *t, int64_t i);
/* Reads element i of any numeric tensor as double. */
double tensor_get_double(const kiln_tensor *t, int64_t i);

#endif
