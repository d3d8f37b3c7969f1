/*
 * memplan.h — the static memory planner: offsets for buffers with known sizes and lifetimes, so that one
 * arena serves a whole run and buffers whose lifetimes do not overlap share bytes.
 */
#ifndef KILN_RUNTIME_MEMPLAN_H
#define KILN_RUNTIME_MEMPLAN_H

#include <stddef.h>

#include "kiln.h"

typedef struct memplan_buffer {
    size_t bytes;
    int first_use, last_use; /* inclusive, in step (node) order */
    size_t offset;           /* out */
} memplan_buffer;

/* Assigns offsets (aligned to `alignment`) and returns the arena size in *arena_bytes. */
kiln_status memplan_assign(memplan_buffer *buffers, int count, size_t alignment, size_t *arena_bytes);

/* The most bytes alive at any one step: no plan can use less. O(steps x buffers); for tests and reports. */
size_t memplan_peak_live(const memplan_buffer *buffers, int count, size_t alignment);

#endif
