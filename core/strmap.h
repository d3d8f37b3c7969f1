/*
 * strmap.h — a string-to-int hash map (open addressing, linear probing) for name lookups while a graph is
 * built: value names to value ids, function names to function bodies. Keys are borrowed, not copied.
 */
#ifndef KILN_CORE_STRMAP_H
#define KILN_CORE_STRMAP_H

#include <stddef.h>

#include "kiln.h"

typedef struct strmap {
    const char **keys;
    int *values;
    size_t capacity; /* a power of two, or 0 */
    size_t count;
} strmap;

void strmap_init(strmap *m);
void strmap_free(strmap *m);
/* Inserts or replaces. The key must stay alive as long as the map. */
kiln_status strmap_put(strmap *m, const char *key, int value);
/* The value stored for key, or `missing`. */
int strmap_get(const strmap *m, const char *key, int missing);

#endif
