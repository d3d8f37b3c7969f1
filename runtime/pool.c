/*
 * pool.c — a fork-join thread pool for parallel_for.
 *
 * One job at a time (a session runs one node at a time): the caller publishes the job, bumps a generation
 * counter and wakes the workers; everyone, the caller included, then claims chunks from an atomic counter
 * until none are left; the caller waits until every worker has reported back. Chunks are claimed
 * dynamically so a slow core does not hold up the rest. No allocation happens per job.
 *
 * Before sleeping on a condition variable, a thread polls for POOL_POLL_NS: waking a sleeping thread took
 * ~45 us per job on an idle 2-vCPU VM (2 us when polling), which would swamp kernels that call parallel_for
 * several times per node (GEMM does twice per cache block). Polling costs at most that long of one core
 * after the last job of a run.
 */
#include "runtime/pool.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"

#define POOL_POLL_NS 50000

struct thread_pool {
    int threads; /* including the caller */
    platform_thread **workers;
    platform_mutex *mutex;
    platform_cond *wake;     /* workers wait here for a new generation */
    platform_cond *finished; /* the caller waits here for workers to finish */
    uint64_t generation;
    int busy_workers;
    /* copies of generation and busy_workers that threads poll without the mutex */
    atomic_int_fast64_t published_generation, unfinished_workers;
    bool stopping;
    /* the current job */
    parallel_fn fn;
    void *arg;
    int64_t n, chunk;
    atomic_int_fast64_t next;
};

static void run_chunks(thread_pool *p)
{
    for (;;) {
        int64_t begin = atomic_fetch_add(&p->next, p->chunk);
        if (begin >= p->n) break;
        int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
        p->fn(p->arg, begin, end);
    }
}

/* Returns when *value == wanted or after POOL_POLL_NS, whichever comes first. */
static void poll_until(atomic_int_fast64_t *value, int64_t wanted)
{
    uint64_t deadline = platform_now_ns() + POOL_POLL_NS;
    while (atomic_load(value) != wanted && platform_now_ns() < deadline) continue;
}

static void worker_main(void *arg)
{
    thread_pool *p = arg;
    uint64_t seen = 0;
    platform_mutex_lock(p->mutex);
    for (;;) {
        if (!p->stopping && p->generation == seen) {
            platform_mutex_unlock(p->mutex);
            poll_until(&p->published_generation, (int64_t)seen + 1); /* every job waits for all workers */
            platform_mutex_lock(p->mutex);
        }
        while (!p->stopping && p->generation == seen) platform_cond_wait(p->wake, p->mutex);
        if (p->stopping) break;
        seen = p->generation;
        platform_mutex_unlock(p->mutex);
        run_chunks(p);
        platform_mutex_lock(p->mutex);
        atomic_store(&p->unfinished_workers, --p->busy_workers);
        if (p->busy_workers == 0) platform_cond_broadcast(p->finished);
    }
    platform_mutex_unlock(p->mutex);
}

static void pool_run(void *impl, int64_t n, int64_t grain, parallel_fn fn, void *arg)
{
    thread_pool *p = impl;
    /* about four chunks per thread balances load without making chunks tiny */
    int64_t chunk = (n + (int64_t)p->threads * 4 - 1) / ((int64_t)p->threads * 4);
    if (chunk < grain) chunk = grain;
    platform_mutex_lock(p->mutex);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    p->busy_workers = p->threads - 1;
    atomic_store(&p->unfinished_workers, p->busy_workers);
    p->generation++;
    atomic_store(&p->published_generation, (int64_t)p->generation);
    platform_cond_broadcast(p->wake);
    platform_mutex_unlock(p->mutex);
    run_chunks(p);
    poll_until(&p->unfinished_workers, 0);
    platform_mutex_lock(p->mutex);
    while (p->busy_workers > 0) platform_cond_wait(p->finished, p->mutex);
    platform_mutex_unlock(p->mutex);
}

kiln_status pool_create(int threads, thread_pool **out)
{
    if (threads < 1 || threads > 1024)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "threads must be between 1 and 1024, not %d", threads);
    thread_pool *p = mem_calloc(1, sizeof *p);
    if (!p) return KILN_ERR_OUT_OF_MEMORY;
    p->threads = 1;
    *out = p;
    if (threads == 1) return KILN_OK;
    p->workers = mem_calloc((size_t)threads, sizeof *p->workers);
    kiln_status st = p->workers ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) st = platform_mutex_create(&p->mutex);
    if (st == KILN_OK) st = platform_cond_create(&p->wake);
    if (st == KILN_OK) st = platform_cond_create(&p->finished);
    for (int i = 0; st == KILN_OK && i < threads - 1; i++) {
        st = platform_thread_start(&p->workers[i], worker_main, p);
        if (st == KILN_OK) p->threads++;
    }
    if (st != KILN_OK) {
        pool_free(p);
        *out = NULL;
    }
    return st;
}

void pool_free(thread_pool *p)
{
    if (!p) return;
    if (p->threads > 1) {
        platform_mutex_lock(p->mutex);
        p->stopping = true;
        platform_cond_broadcast(p->wake);
        platform_mutex_unlock(p->mutex);
        for (int i = 0; i < p->threads - 1; i++) platform_thread_join(p->workers[i]);
    }
    platform_cond_destroy(p->wake);
    platform_cond_destroy(p->finished);
    platform_mutex_destroy(p->mutex);
    mem_free(p->workers);
    mem_free(p);
}

parallel_runner pool_runner(thread_pool *p)
{
    parallel_runner r = {.threads = p->threads, .run = pool_run, .impl = p};
    return r;
}
