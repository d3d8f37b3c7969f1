/*
 * posix.c — platform services for POSIX systems (Linux, macOS, Emscripten). See platform.h.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "core/platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef KILN_NO_THREADS
#include <pthread.h>
#endif

#include "core/error.h"
#include "core/mem.h"

static const unsigned char empty_file[1];

kiln_status platform_map_file(const char *path, file_mapping *map)
{
    memset(map, 0, sizeof *map);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        map->data = empty_file;
        return KILN_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) return kiln_fail(KILN_ERR_IO, "%s: cannot map: %s", path, strerror(err));
    map->data = p;
    map->size = (size_t)st.st_size;
    map->mapped = true;
    return KILN_OK;
}

void platform_unmap_file(file_mapping *map)
{
    if (map->mapped) munmap((void *)map->data, map->size);
    memset(map, 0, sizeof *map);
}

kiln_status platform_write_file_atomic(const char *path, const void *head, size_t head_len, const void *body,
                                       size_t body_len)
{
    size_t tmp_len = strlen(path) + sizeof ".partial";
    char *tmp = mem_alloc(tmp_len);
    if (!tmp) return KILN_ERR_OUT_OF_MEMORY;
    snprintf(tmp, tmp_len, "%s.partial", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL;
    int err = errno;
    if (ok && head_len) ok = fwrite(head, 1, head_len, f) == head_len;
    if (ok && body_len) ok = fwrite(body, 1, body_len, f) == body_len;
    if (!ok) err = errno;
    if (f && fclose(f) != 0 && ok) ok = false, err = errno;
    if (ok && rename(tmp, path) != 0) ok = false, err = errno;
    if (!ok && f) remove(tmp);
    mem_free(tmp);
    if (!ok) return kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    return KILN_OK;
}

void platform_advise_large_pages(void *p, size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    uintptr_t first = ((uintptr_t)p + PLATFORM_LARGE_PAGE - 1) & ~(uintptr_t)(PLATFORM_LARGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~(uintptr_t)(PLATFORM_LARGE_PAGE - 1);
    if (end > first) (void)madvise((void *)first, end - first, MADV_HUGEPAGE); /* a hint: failure changes nothing */
#else
    (void)p, (void)bytes;
#endif
}

uint64_t platform_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int platform_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#ifndef KILN_NO_THREADS

struct platform_thread {
    pthread_t id;
    void (*fn)(void *);
    void *arg;
};
struct platform_mutex {
    pthread_mutex_t m;
};
struct platform_cond {
    pthread_cond_t c;
};

static void *thread_main(void *p)
{
    platform_thread *t = p;
    t->fn(t->arg);
    return NULL;
}

kiln_status platform_thread_start(platform_thread **thread, void (*fn)(void *), void *arg)
{
    platform_thread *t = mem_alloc(sizeof *t);
    if (!t) return KILN_ERR_OUT_OF_MEMORY;
    t->fn = fn;
    t->arg = arg;
    int err = pthread_create(&t->id, NULL, thread_main, t);
    if (err) {
        mem_free(t);
        return kiln_fail(KILN_ERR_RUNTIME, "cannot start a thread: %s", strerror(err));
    }
    *thread = t;
    return KILN_OK;
}

void platform_thread_join(platform_thread *thread)
{
    pthread_join(thread->id, NULL);
    mem_free(thread);
}

kiln_status platform_mutex_create(platform_mutex **mutex)
{
    platform_mutex *m = mem_alloc(sizeof *m);
    if (!m) return KILN_ERR_OUT_OF_MEMORY;
    pthread_mutex_init(&m->m, NULL);
    *mutex = m;
    return KILN_OK;
}

void platform_mutex_destroy(platform_mutex *mutex)
{
    if (!mutex) return;
    pthread_mutex_destroy(&mutex->m);
    mem_free(mutex);
}

void platform_mutex_lock(platform_mutex *mutex) { pthread_mutex_lock(&mutex->m); }
void platform_mutex_unlock(platform_mutex *mutex) { pthread_mutex_unlock(&mutex->m); }

kiln_status platform_cond_create(platform_cond **cond)
{
    platform_cond *c = mem_alloc(sizeof *c);
    if (!c) return KILN_ERR_OUT_OF_MEMORY;
    pthread_cond_init(&c->c, NULL);
    *cond = c;
    return KILN_OK;
}

void platform_cond_destroy(platform_cond *cond)
{
    if (!cond) return;
    pthread_cond_destroy(&cond->c);
    mem_free(cond);
}

void platform_cond_wait(platform_cond *cond, platform_mutex *mutex) { pthread_cond_wait(&cond->c, &mutex->m); }
void platform_cond_broadcast(platform_cond *cond) { pthread_cond_broadcast(&cond->c); }

#else /* KILN_NO_THREADS: single-threaded stubs */

struct platform_mutex {
    int unused;
};
struct platform_cond {
    int unused;
};

kiln_status platform_thread_start(platform_thread **thread, void (*fn)(void *), void *arg)
{
    (void)thread, (void)fn, (void)arg;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "this build of kiln has no threads");
}
void platform_thread_join(platform_thread *thread) { (void)thread; }
static struct platform_mutex the_mutex;
static struct platform_cond the_cond;
kiln_status platform_mutex_create(platform_mutex **mutex)
{
    *mutex = &the_mutex;
    return KILN_OK;
}
void platform_mutex_destroy(platform_mutex *mutex) { (void)mutex; }
void platform_mutex_lock(platform_mutex *mutex) { (void)mutex; }
void platform_mutex_unlock(platform_mutex *mutex) { (void)mutex; }
kiln_status platform_cond_create(platform_cond **cond)
{
    *cond = &the_cond;
    return KILN_OK;
}
void platform_cond_destroy(platform_cond *cond) { (void)cond; }
void platform_cond_wait(platform_cond *cond, platform_mutex *mutex) { (void)cond, (void)mutex; }
void platform_cond_broadcast(platform_cond *cond) { (void)cond; }

#endif
