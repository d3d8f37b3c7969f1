/*
 * parallel.h — the interface through which kernels split work across the session's threads.
 *
 * Kernels sit below the runtime that owns the thread pool, so they see only this small function-pointer
 * interface; runtime/pool.c implements it. A NULL runner, one thread, or too little work runs the whole range
 * on the calling thread, so kernels call parallel_for unconditionally.
 */
#ifndef KILN_CORE_PARALLEL_H
#define KILN_CORE_PARALLEL_H

#include <stdint.h>

/* Processes items [begin, end). Called concurrently on disjoint ranges. */
typedef void (*parallel_fn)(void *arg, int64_t begin, int64_t end);

typedef struct parallel_runner {
    int threads;
    /* Splits [0, n) into ranges of at least `grain` items and runs fn on them, the caller included; returns
     * when all are done. */
    void (*run)(void *impl, int64_t n, int64_t grain, parallel_fn fn, void *arg);
    void *impl;
} parallel_runner;

static inline void parallel_for(const parallel_runner *runner, int64_t n, int64_t grain, parallel_fn fn,
                                void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!runner || runner->threads <= 1 || n <= grain) fn(arg, 0, n);
    else runner->run(runner->impl, n, grain, fn, arg);
}

static inline int parallel_threads(const parallel_runner *runner) { return runner ? runner->threads : 1; }

/* The grain for parallel_for over items of `work_per_item` units each: enough items that a chunk holds at least
 * `min_work` units (one item when a single one does), so scheduling stays cheap beside the work. */
static inline int64_t parallel_grain(int64_t work_per_item, int64_t min_work)
{
    return work_per_item >= min_work ? 1 : min_work / (work_per_item > 0 ? work_per_item : 1);
}

#endif
