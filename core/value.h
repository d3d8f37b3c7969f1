/*
 * value.h — sequences and optionals as kiln_tensor descriptors (the encoding kiln.h documents): a
 * descriptor of rank 1 whose dims[0] counts the elements and whose data points to the elements'
 * descriptors. Values are immutable once produced, so a new sequence may share its elements' data with
 * the sequence it was made from; only the small descriptor arrays are new.
 */
#ifndef KILN_CORE_VALUE_H
#define KILN_CORE_VALUE_H

#include <stdbool.h>

#include "core/mem.h"
#include "kiln.h"

/* Number of elements of a sequence or optional, or of entries of a map. */
static inline int64_t value_count(const kiln_tensor *v) { return v->dims[0]; }
/* The elements of a sequence or optional. */
static inline kiln_tensor *value_items(const kiln_tensor *v) { return (kiln_tensor *)v->data; }
/* A map's keys and values: two 1-D tensors of value_count(map) elements. */
static inline kiln_tensor *map_keys(const kiln_tensor *map) { return &value_items(map)[0]; }
static inline kiln_tensor *map_values(const kiln_tensor *map) { return &value_items(map)[1]; }

/* Makes `out` a sequence or optional of `count` elements of `dtype` whose descriptors (zeroed) come from
 * `mem`. */
kiln_status value_make_list(region *mem, kiln_dtype dtype, int64_t count, kiln_tensor *out);
/* A copy of tensor `src` whose data comes from `mem`. */
kiln_status value_copy_tensor(region *mem, const kiln_tensor *src, kiln_tensor *out);
/* Makes `out` a map of `count` entries whose keys are `keys` (1-D, `count` of them) and whose values are
 * `values` (`count` elements of `value_dtype`): both are pointed to, not copied; the pair of descriptors
 * comes from `mem`. */
kiln_status value_make_map(region *mem, const kiln_tensor *keys, kiln_dtype value_dtype, void *values,
                           kiln_tensor *out);
/* A deep copy of a value of this kind (elements and their data) into `mem`. */
kiln_status value_copy(region *mem, kiln_value_kind kind, kiln_value_kind elem_kind, const kiln_tensor *src,
                       kiln_tensor *out);
/* Joins tensors along `axis` (all other dims equal), or with new_axis stacks equal-shaped tensors along a
 * new axis `axis`, in reverse order when asked. `axis` is already normalised (0 <= axis < rank, or <= rank
 * for a new axis); shapes that do not fit are KILN_ERR_RUNTIME. No items give a 1-D empty tensor. */
kiln_status value_concat(region *mem, const kiln_tensor *items, int64_t n, int axis, bool new_axis, bool reverse,
                         kiln_dtype dtype, kiln_tensor *out);
/* t[..., start : start + length, ...] along `axis`, copied into `mem`; without keep_axis (length 1) the
 * axis is dropped. The range must lie inside t. */
kiln_status value_slice(region *mem, const kiln_tensor *t, int axis, int64_t start, int64_t length, bool keep_axis,
                        kiln_tensor *out);
/* Checks a value handed in by a caller: kind-appropriate rank and count, elements of `dtype` with sane
 * shapes and data. `what` names it in the message. */
kiln_status value_check(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype dtype, const kiln_tensor *v,
                        const char *what);

#endif
