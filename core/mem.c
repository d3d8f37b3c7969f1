/*
 * mem.c — heap and region allocation (see mem.h).
 *
 * The region grows by chunks of 64 KiB, each new one twice the last up to 4 MiB, so a small model's region
 * stays small while a big one's weights (decoded and packed at load) sit in chunks large enough for large
 * pages (see platform_advise_large_pages: mobilenet_v2 ran 2% faster with its packed filters in them). A
 * request larger than the next chunk gets a chunk of its own, so big tables never waste a chunk's tail.
 */
#include "core/mem.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/platform/platform.h"

#define REGION_CHUNK_BYTES ((size_t)64 << 10)
#define REGION_CHUNK_MAX_BYTES ((size_t)4 << 20)

struct region_chunk {
    region_chunk *next;
    size_t capacity;
    size_t used;
    _Alignas(16) unsigned char data[];
};

static atomic_size_t allocation_count;

size_t mem_allocation_count(void) { return atomic_load_explicit(&allocation_count, memory_order_relaxed); }

static void count_allocation(void) { atomic_fetch_add_explicit(&allocation_count, 1, memory_order_relaxed); }

static void *out_of_memory(size_t bytes)
{
    kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
    return NULL;
}

void *mem_alloc(size_t bytes)
{
    count_allocation();
    void *p = malloc(bytes ? bytes : 1);
    return p ? p : out_of_memory(bytes);
}

void *mem_calloc(size_t count, size_t size)
{
    size_t bytes;
    if (!mem_mul_ok(count, size, &bytes)) return out_of_memory(SIZE_MAX);
    count_allocation();
    void *p = calloc(bytes ? bytes : 1, 1);
    return p ? p : out_of_memory(bytes);
}

void *mem_realloc(void *p, size_t bytes)
{
    count_allocation();
    void *q = realloc(p, bytes ? bytes : 1);
    return q ? q : out_of_memory(bytes);
}

void mem_free(void *p) { free(p); }

void *mem_aligned_alloc(size_t bytes)
{
    size_t rounded = mem_align_up(bytes ? bytes : 1, KILN_ALIGNMENT);
    if (rounded < bytes) return out_of_memory(bytes);
    count_allocation();
    /* a block of a large page or more (a session's arena) starts on one and gets large pages */
    bool large = rounded >= PLATFORM_LARGE_PAGE;
    if (large) rounded = mem_align_up(rounded, PLATFORM_LARGE_PAGE);
    void *p = aligned_alloc(large ? PLATFORM_LARGE_PAGE : KILN_ALIGNMENT, rounded);
    if (p && large) platform_advise_large_pages(p, rounded);
    return p ? p : out_of_memory(bytes);
}

void mem_aligned_free(void *p) { free(p); }

bool mem_mul_ok(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}

size_t mem_align_up(size_t n, size_t alignment) { return (n + alignment - 1) / alignment * alignment; }

void region_init(region *r)
{
    r->head = NULL;
    r->used_bytes = 0;
}

void region_free(region *r)
{
    region_chunk *c = r->head;
    while (c) {
        region_chunk *next = c->next;
        free(c);
        c = next;
    }
    region_init(r);
}

void region_reset(region *r)
{
    region_chunk *c = r->head;
    r->used_bytes = 0;
    if (!c) return;
    if (!c->next) {
        c->used = 0;
        return;
    }
    size_t total = 0;
    for (; c; c = c->next) total += c->capacity;
    region_free(r);
    count_allocation();
    c = malloc(sizeof *c + total);
    if (!c) return; /* the next region_alloc allocates again, and reports a failure then */
    c->capacity = total;
    c->used = 0;
    c->next = NULL;
    r->head = c;
}

void *region_alloc(region *r, size_t count, size_t size)
{
    size_t bytes;
    if (!mem_mul_ok(count, size, &bytes) || bytes > SIZE_MAX / 2) return out_of_memory(SIZE_MAX);
    bytes = mem_align_up(bytes ? bytes : 1, 16);
    region_chunk *c = r->head;
    if (!c || c->capacity - c->used < bytes) {
        size_t next = !c ? REGION_CHUNK_BYTES : c->capacity >= REGION_CHUNK_MAX_BYTES / 2 ? REGION_CHUNK_MAX_BYTES
                                                                                     : 2 * c->capacity;
        size_t capacity = bytes > next ? bytes : next;
        count_allocation();
        c = malloc(sizeof *c + capacity);
        if (!c) return out_of_memory(bytes);
        c->capacity = capacity;
        c->used = 0;
        if (capacity >= 2 * PLATFORM_LARGE_PAGE) platform_advise_large_pages(c->data, capacity);
        if (r->head && bytes > next) {
            /* keep filling the current chunk: slot the big one in behind it */
            c->next = r->head->next;
            r->head->next = c;
        } else {
            c->next = r->head;
            r->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += bytes;
    r->used_bytes += bytes;
    memset(p, 0, bytes);
    return p;
}

char *region_strndup(region *r, const char *s, size_t len)
{
    char *p = region_alloc(r, len + 1, 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *region_strdup(region *r, const char *s) { return region_strndup(r, s, strlen(s)); }

char *region_printf(region *r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0) return NULL;
    char *p = region_alloc(r, (size_t)n + 1, 1);
    if (!p) return NULL;
    va_start(args, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, args);
    va_end(args);
    return p;
}
