/*
 * platform.h — the few operating-system services the engine needs: mapping a file read-only, a monotonic
 * clock, threads with a mutex and condition variable, and CPU feature queries. Everything above core/ calls
 * these instead of POSIX directly, so a port (Windows, a microcontroller, WebAssembly) replaces one file.
 *
 * Builds without threads (-DKILN_NO_THREADS, e.g. bare-metal) get stubs whose thread_start fails; the thread
 * pool then runs everything on the caller's thread.
 */
#ifndef KILN_CORE_PLATFORM_H
#define KILN_CORE_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct file_mapping {
    const unsigned char *data;
    size_t size;
    bool mapped; /* false when the contents were read into the heap (no mmap on this platform) */
} file_mapping;

/* Maps `path` read-only. An empty file maps to size 0 with a non-NULL data pointer. */
kiln_status platform_map_file(const char *path, file_mapping *map);
void platform_unmap_file(file_mapping *map);

/* Writes `head` then `body` to `path` through "<path>.partial" renamed into place, so that a reader never
 * finds a half-written file under the final name; on failure nothing is left behind. */
kiln_status platform_write_file_atomic(const char *path, const void *head, size_t head_len, const void *body,
                                       size_t body_len);

/* Asks for large pages behind a big, long-lived block (a session's arena, weights packed at load) where the
 * system offers them on request (Linux transparent huge pages in "madvise" mode): kernels sweeping megabytes
 * then miss the TLB far less (mobilenet_v2 ran 5% faster). A hint, applied to the whole PLATFORM_LARGE_PAGE
 * pages inside the block; does nothing where unsupported. */
#define PLATFORM_LARGE_PAGE ((size_t)2 << 20)
void platform_advise_large_pages(void *p, size_t bytes);

/* Monotonic time in nanoseconds from an arbitrary origin. */
uint64_t platform_now_ns(void);

typedef struct platform_thread platform_thread;
typedef struct platform_mutex platform_mutex;
typedef struct platform_cond platform_cond;

kiln_status platform_thread_start(platform_thread **thread, void (*fn)(void *), void *arg);
void platform_thread_join(platform_thread *thread);
kiln_status platform_mutex_create(platform_mutex **mutex);
void platform_mutex_destroy(platform_mutex *mutex);
void platform_mutex_lock(platform_mutex *mutex);
void platform_mutex_unlock(platform_mutex *mutex);
kiln_status platform_cond_create(platform_cond **cond);
void platform_cond_destroy(platform_cond *cond);
void platform_cond_wait(platform_cond *cond, platform_mutex *mutex);
void platform_cond_broadcast(platform_cond *cond);

/* Number of CPUs the process may run on (at least 1). */
int platform_cpu_count(void);

/* CPU features the kernels dispatch on; all false on other architectures. */
typedef struct cpu_features {
    bool avx2_fma;
    bool avx512f;
} cpu_features;

const cpu_features *platform_cpu_features(void);

#endif
