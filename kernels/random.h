/*
 * random.h — the random numbers of kiln's random operators (Dropout in training mode, Bernoulli, and any
 * Random* operator): one counter-based generator.
 *
 * Value i of a stream is a hash of (key, i) — SplitMix64's finaliser over the key plus i times its odd
 * increment — so any element can be computed alone: threads split an output freely, and the result never
 * depends on the thread count. A node with a `seed` attribute gets the key of that seed and so the same numbers
 * on every run and every machine (they cannot equal numpy's, whose generator is a different algorithm). A node
 * without one gets a fresh key per run from the clock and the node's address.
 */
#ifndef KILN_KERNELS_RANDOM_H
#define KILN_KERNELS_RANDOM_H

#include <stdint.h>

/* The key of an ONNX `seed` attribute (a float, or an int for Dropout: both convert exactly). */
uint64_t rng_key_from_seed(double seed);
/* A key that differs per call, for nodes without a seed; `salt` tells nodes apart within one run. */
uint64_t rng_key_unseeded(const void *salt);
/* Value i of stream `key`, uniform in [0, 1) with 53 random bits. */
double rng_uniform(uint64_t key, uint64_t i);

#endif
