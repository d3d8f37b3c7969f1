/*
 * text.c — the growable byte buffers blocks carry (raw records, ids, formatted rows, error entries). They keep
 * their capacity from block to block, so a job in its steady state allocates nothing.
 */
#include <string.h>

#include "batch/batch.h"
#include "core/mem.h"

bool text_reserve(batch_text *t, size_t more)
{
    if (t->cap - t->len >= more) return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap - t->len < more) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *grown = mem_realloc(t->data, cap);
    if (!grown) return false;
    t->data = grown;
    t->cap = cap;
    return true;
}

void text_append(batch_text *t, const void *bytes, size_t n)
{
    if (n) memcpy(t->data + t->len, bytes, n);
    t->len += n;
}

bool text_add(batch_text *t, const void *bytes, size_t n)
{
    if (!text_reserve(t, n)) return false;
    text_append(t, bytes, n);
    return true;
}

void text_free(batch_text *t)
{
    mem_free(t->data);
    memset(t, 0, sizeof *t);
}
