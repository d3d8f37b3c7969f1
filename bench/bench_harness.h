/*
 * bench_harness.h — what kiln's C benchmark programs share: a monotonic clock, medians, reading raw float32
 * rows, and the two measurements every tree benchmark reports for each predictor —
 *
 *   batch-1 latency:  the median over `seconds` of single-row predictions, one row after another (a different
 *                     row each call, so no predictor can answer from a cache), at least 100 of them;
 *   batch time:       the median over `seconds` of whole-batch predictions, at least 3.
 *
 * Header-only: each benchmark is one C file compiled on its own by its driver script.
 */
#ifndef KILN_BENCH_HARNESS_H
#define KILN_BENCH_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Predicts `n` rows starting at `rows`; returns the first output value (consumed so no call is elided). */
typedef float (*bench_predict_fn)(const void *ctx, const float *rows, long n);

static inline double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int bench_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* `count` float32 values from a raw little-endian file; exits with a message on failure. */
static inline float *bench_read_rows(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    float *x = malloc(count * sizeof *x);
    if (!f || !x || fread(x, sizeof *x, count, f) != count) {
        fprintf(stderr, "cannot read %zu floats from %s\n", count, path);
        exit(1);
    }
    fclose(f);
    return x;
}

static inline double bench_batch1_p50_us(bench_predict_fn predict, const void *ctx, const float *x, long rows,
                                         long features, double seconds)
{
    size_t cap = 1 << 22, n = 0;
    double *t = malloc(cap * sizeof *t);
    double end = bench_now_us() + seconds * 1e6;
    volatile float sink = 0;
    for (long r = 0; t && n < cap && (bench_now_us() < end || n < 100); r = (r + 1) % rows) {
        double t0 = bench_now_us();
        sink += predict(ctx, x + r * features, 1);
        t[n++] = bench_now_us() - t0;
    }
    (void)sink;
    double p50 = t ? bench_median(t, n) : 0;
    free(t);
    return p50;
}

static inline double bench_batch_ms(bench_predict_fn predict, const void *ctx, const float *x, long rows,
                                    double seconds)
{
    double t[1000];
    size_t n = 0;
    double end = bench_now_us() + seconds * 1e6;
    volatile float sink = 0;
    while (n < 1000 && (bench_now_us() < end || n < 3)) {
        double t0 = bench_now_us();
        sink += predict(ctx, x, rows);
        t[n++] = (bench_now_us() - t0) / 1000;
    }
    (void)sink;
    return bench_median(t, n);
}

#endif
