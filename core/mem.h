/*
 * mem.h — heap allocation for the engine, and a region (bump) allocator for data that lives and dies
 * together (a model's graph, a plan's tables).
 *
 * Every allocator here records a kiln_fail() message when it returns NULL, so callers can simply
 * `if (!p) return KILN_ERR_OUT_OF_MEMORY;`. Buffers that kernels read with SIMD loads come from
 * mem_aligned_alloc() (64-byte alignment: one cache line, one AVX-512 vector).
 */
#ifndef KILN_CORE_MEM_H
#define KILN_CORE_MEM_H

#include <stdbool.h>
#include <stddef.h>

#define KILN_ALIGNMENT 64

void *mem_alloc(size_t bytes);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t bytes);
void mem_free(void *p);
/* 64-byte aligned; free with mem_aligned_free. A request of 0 bytes returns a valid unique pointer. */
void *mem_aligned_alloc(size_t bytes);
void mem_aligned_free(void *p);
/* How many allocations the engine has made so far (every mem_* call that returns new memory). Tests use it
 * to prove that a steady-state run allocates nothing. */
size_t mem_allocation_count(void);
/* a*b without wrapping; false on overflow. */
bool mem_mul_ok(size_t a, size_t b, size_t *out);
size_t mem_align_up(size_t n, size_t alignment);

/* A region hands out memory that is freed all at once. */
typedef struct region_chunk region_chunk;
typedef struct region {
    region_chunk *head;
    size_t used_bytes; /* sum of requests, for reporting */
} region;

void region_init(region *r);
void region_free(region *r);
/* Zeroed, aligned to 16 bytes; NULL (with message) when out of memory or when count*size overflows. */
void *region_alloc(region *r, size_t count, size_t size);
/* Forgets every allocation but keeps the memory for the next ones: several chunks are merged into one of
 * their total size, so a region reset before each run (a session's strings) stops allocating once it has
 * held the largest run. */
void region_reset(region *r);
/* Copies `len` bytes into a NUL-terminated string in the region. */
char *region_strndup(region *r, const char *s, size_t len);
char *region_strdup(region *r, const char *s);
char *region_printf(region *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
