/*
 * strmap.c — string-to-int hash map (see strmap.h). FNV-1a hashing; the table doubles when half full so
 * probe sequences stay short.
 */
#include "core/strmap.h"

#include <stdint.h>
#include <string.h>

#include "core/mem.h"

static uint64_t hash_string(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

void strmap_init(strmap *m) { memset(m, 0, sizeof *m); }

void strmap_free(strmap *m)
{
    mem_free(m->keys);
    mem_free(m->values);
    strmap_init(m);
}

static void insert_slot(const char **keys, int *values, size_t capacity, const char *key, int value)
{
    size_t i = hash_string(key) & (capacity - 1);
    while (keys[i] && strcmp(keys[i], key) != 0) i = (i + 1) & (capacity - 1);
    keys[i] = key;
    values[i] = value;
}

static kiln_status grow(strmap *m)
{
    size_t capacity = m->capacity ? m->capacity * 2 : 64;
    const char **keys = mem_calloc(capacity, sizeof *keys);
    int *values = mem_calloc(capacity, sizeof *values);
    if (!keys || !values) {
        mem_free(keys);
        mem_free(values);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < m->capacity; i++)
        if (m->keys[i]) insert_slot(keys, values, capacity, m->keys[i], m->values[i]);
    mem_free(m->keys);
    mem_free(m->values);
    m->keys = keys;
    m->values = values;
    m->capacity = capacity;
    return KILN_OK;
}

kiln_status strmap_put(strmap *m, const char *key, int value)
{
    if ((m->count + 1) * 2 > m->capacity) {
        kiln_status st = grow(m);
        if (st != KILN_OK) return st;
    }
    size_t i = hash_string(key) & (m->capacity - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->capacity - 1);
    if (!m->keys[i]) m->count++;
    m->keys[i] = key;
    m->values[i] = value;
    return KILN_OK;
}

int strmap_get(const strmap *m, const char *key, int missing)
{
    if (!m->capacity) return missing;
    size_t i = hash_string(key) & (m->capacity - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0) return m->values[i];
        i = (i + 1) & (m->capacity - 1);
    }
    return missing;
}
