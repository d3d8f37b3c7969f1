/*
 * pool.c — a fork-join thread pool for parallel_for.
 *
 * One job at a time (a session runs one node at a time): the caller publishes the job, bumps a generation
 * counter and wakes the workers; everyone, the caller included, then claims chunks from an atomic counter
 * until none are left. Chunks are claimed dynamically so a slow core does not hold up the rest. No
 * allocation happens per job.
 *
 * A worker *joins* a job before touching it, and only while the job is open. When the caller has claimed
 * its last chunk every chunk is taken, so it closes the job and waits for the workers that joined — not for
 * all of them: on a busy machine a worker the OS has not scheduled yet would otherwise hold every job up
 * (2 threads were then slower than 1). A worker that wakes after the job closed just waits for the next.
 *
 * Before sleeping on a condition variable, a thread polls for POOL_POLL_NS: waking a sleeping thread took
 * ~45 us per job on an idle 2-vCPU VM (2 us when polling), which would swamp kernels that call parallel_for
 * several times per node. Polling costs at most that long of one core after the last job of a run.
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
    bool open;        /* workers may still join the current job */
    int busy_workers; /* workers that joined it and have not finished */
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

/* Returns when (*value == target) == equal, or after POOL_POLL_NS, whichever comes first. */
static void poll_for(atomic_int_fast64_t *value, int64_t target, bool equal)
{
    uint64_t deadline = platform_now_ns() + POOL_POLL_NS;
    while ((atomic_load(value) == target) != equal && platform_now_ns() < deadline) continue;
}

static void worker_main(void *arg)
{
    thread_pool *p = arg;
    uint64_t seen = 0;
    platform_mutex_lock(p->mutex);
    for (;;) {
        if (!p->stopping && p->generation == seen) {
            platform_mutex_unlock(p->mutex);
            poll_for(&p->published_generation, (int64_t)seen, false); /* a new job */
            platform_mutex_lock(p->mutex);
        }
        while (!p->stopping && p->generation == seen) platform_cond_wait(p->wake, p->mutex);
        if (p->stopping) break;
        seen = p->generation;
        if (!p->open) continue; /* woke too late: the caller has taken every chunk of that job */
        p->busy_workers++;
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
    p->open = true;
    p->busy_workers = 0;
    p->generation++;
    atomic_store(&p->published_generation, (int64_t)p->generation);
    platform_cond_broadcast(p->wake);
    platform_mutex_unlock(p->mutex);
    run_chunks(p);
    /* every chunk is claimed: no one else may join; wait for those that did */
    platform_mutex_lock(p->mutex);
    p->open = false;
    if (p->busy_workers > 0) {
        atomic_store(&p->unfinished_workers, p->busy_workers);
        platform_mutex_unlock(p->mutex);
        poll_for(&p->unfinished_workers, 0, true);
        platform_mutex_lock(p->mutex);
    }
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
