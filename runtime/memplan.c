/*
 * memplan.c — greedy-by-size offset assignment (the strategy of TensorFlow Lite Micro's
 * GreedyMemoryPlanner): buffers are placed largest first, each at the lowest offset where it does not
 * collide with an already placed buffer that is alive at the same time. Placing large buffers first leaves
 * the small ones to fill the gaps between them. The peak of live bytes at any one step is a lower bound
 * for any plan; memplan_peak_live() computes it so tests and `kiln info` can show how close the plan is.
 */
#include "runtime/memplan.h"

#include <stdlib.h>

#include "core/error.h"
#include "core/mem.h"

static int by_size_descending(const void *a, const void *b)
{
    const memplan_buffer *x = *(memplan_buffer *const *)a, *y = *(memplan_buffer *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->first_use - y->first_use; /* deterministic order for equal sizes */
}

static int by_offset(const void *a, const void *b)
{
    const memplan_buffer *x = *(memplan_buffer *const *)a, *y = *(memplan_buffer *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool lifetimes_overlap(const memplan_buffer *a, const memplan_buffer *b)
{
    return a->first_use <= b->last_use && b->first_use <= a->last_use;
}

kiln_status memplan_assign(memplan_buffer *buffers, int count, size_t alignment, size_t *arena_bytes)
{
    *arena_bytes = 0;
    if (count == 0) return KILN_OK;
    memplan_buffer **order = mem_calloc((size_t)count, sizeof *order);
    memplan_buffer **placed = mem_calloc((size_t)count, sizeof *placed);
    memplan_buffer **conflicts = mem_calloc((size_t)count, sizeof *conflicts);
    if (!order || !placed || !conflicts) {
        mem_free(order);
        mem_free(placed);
        mem_free(conflicts);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < count; i++) order[i] = &buffers[i];
    qsort(order, (size_t)count, sizeof *order, by_size_descending);
    int n_placed = 0;
    size_t arena = 0;
    for (int i = 0; i < count; i++) {
        memplan_buffer *b = order[i];
        size_t need = mem_align_up(b->bytes, alignment);
        /* the placed buffers alive at the same time, by offset; take the first gap that fits */
        int n_conflicts = 0;
        for (int j = 0; j < n_placed; j++)
            if (lifetimes_overlap(b, placed[j])) conflicts[n_conflicts++] = placed[j];
        qsort(conflicts, (size_t)n_conflicts, sizeof *conflicts, by_offset);
        size_t offset = 0;
        for (int j = 0; j < n_conflicts; j++) {
            if (conflicts[j]->offset >= offset + need) break;
            size_t end = mem_align_up(conflicts[j]->offset + conflicts[j]->bytes, alignment);
            if (end > offset) offset = end;
        }
        b->offset = offset;
        placed[n_placed++] = b;
        if (offset + need > arena) arena = offset + need;
    }
    mem_free(order);
    mem_free(placed);
    mem_free(conflicts);
    *arena_bytes = arena;
    return KILN_OK;
}

size_t memplan_peak_live(const memplan_buffer *buffers, int count, size_t alignment)
{
    int last_step = 0;
    for (int i = 0; i < count; i++)
        if (buffers[i].last_use > last_step) last_step = buffers[i].last_use;
    size_t peak = 0;
    for (int step = 0; step <= last_step; step++) {
        size_t live = 0;
        for (int i = 0; i < count; i++)
            if (buffers[i].first_use <= step && step <= buffers[i].last_use)
                live += mem_align_up(buffers[i].bytes, alignment);
        if (live > peak) peak = live;
    }
    return peak;
}
