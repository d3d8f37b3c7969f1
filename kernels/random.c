/*
 * random.c — the counter-based generator of random.h.
 */
#include "kernels/random.h"

#include <string.h>

#include "core/platform/platform.h"

#define SPLITMIX_INCREMENT 0x9e3779b97f4a7c15u

static uint64_t splitmix_finalize(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t rng_key_from_seed(double seed)
{
    uint64_t bits;
    memcpy(&bits, &seed, sizeof bits);
    return splitmix_finalize(bits + SPLITMIX_INCREMENT);
}

uint64_t rng_key_unseeded(const void *salt)
{
    return splitmix_finalize(platform_now_ns() ^ splitmix_finalize((uint64_t)(uintptr_t)salt));
}

double rng_uniform(uint64_t key, uint64_t i)
{
    uint64_t bits = splitmix_finalize(key + (i + 1) * SPLITMIX_INCREMENT);
    return (double)(bits >> 11) * (1.0 / 9007199254740992.0); /* 2^-53 */
}
