/*
 * pool.h — the session's thread pool. Created with the session (threads - 1 workers; the caller is the
 * last thread), idle between runs, and the only place kiln starts threads.
 */
#ifndef KILN_RUNTIME_POOL_H
#define KILN_RUNTIME_POOL_H

#include "core/parallel.h"
#include "kiln.h"

typedef struct thread_pool thread_pool;

kiln_status pool_create(int threads, thread_pool **pool);
void pool_free(thread_pool *pool);
/* A runner for kernels (see core/parallel.h); valid while the pool lives. */
parallel_runner pool_runner(thread_pool *pool);

#endif
