/*
 * metrics.h — per model version counters, shown as Prometheus text (GET /metrics) and as the V2 statistics
 * extension (GET /v2/models[/m[/versions/v]]/stats).
 *
 * Counters live in a registry keyed by (model, version) that outlives the loaded versions: reloading or
 * unloading a model does not reset its counters (Prometheus treats a reset as a restart), and a request that
 * finishes on a version already swapped out still counts. Updates are relaxed atomics on the request path;
 * only the per-batch-size table takes a mutex, once per execution.
 *
 * What is counted follows Triton's statistics extension: a request is a success or a failure with its whole
 * duration; inference_count adds each request's rows (batch size), execution_count each model run, so under
 * dynamic batching execution_count < inference_count. Queue and compute durations are added per request.
 */
#ifndef KILN_SERVE_METRICS_H
#define KILN_SERVE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "kiln.h"
#include "serve/json_writer.h"

/* Upper bounds (seconds) of the request-latency histogram's buckets; +Inf follows. */
#define METRICS_LATENCY_BUCKETS 14

typedef struct duration_stat {
    atomic_uint_fast64_t count, ns;
} duration_stat;

typedef struct batch_stat {
    int64_t batch_size;
    uint64_t count, input_ns, infer_ns, output_ns;
} batch_stat;

typedef struct version_stats {
    const char *model, *version;
    atomic_uint_fast64_t inference_count, execution_count, last_inference_ms;
    duration_stat success, fail, queue, compute_input, compute_infer, compute_output;
    atomic_uint_fast64_t latency_buckets[METRICS_LATENCY_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_ns;
    atomic_int_fast64_t pending; /* requests received and not yet answered */
    pthread_mutex_t batch_mutex;
    batch_stat *batches; /* sorted by batch size */
    int n_batches, batch_capacity;
    struct version_stats *next;
} version_stats;

typedef struct metrics metrics;

kiln_status metrics_create(metrics **out);
void metrics_free(metrics *m);

/* The counters of (model, version), created on first use; NULL when out of memory. */
version_stats *metrics_version_stats(metrics *m, const char *model, const char *version);

/* Timings of one request, in nanoseconds. */
typedef struct request_timing {
    uint64_t total_ns, queue_ns, input_ns, infer_ns, output_ns;
    int64_t rows; /* the request's batch size */
    bool executed; /* it reached the model (queue and compute times are meaningful) */
} request_timing;

void stats_request_done(version_stats *s, bool ok, const request_timing *t);
void stats_execution_done(version_stats *s, int64_t batch_rows, uint64_t input_ns, uint64_t infer_ns,
                          uint64_t output_ns);

/* Prometheus text for every model version (the HTTP layer writes the server-wide lines). */
void metrics_write_prometheus(metrics *m, json_writer *out);
/* {"model_stats": [...]} for one model's versions, one version, or everything (NULL filters); returns how many
 * entries matched. */
int metrics_write_statistics(metrics *m, const char *model, const char *version, json_writer *out);

#endif
