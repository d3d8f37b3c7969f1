/*
 * metrics.c — the registry of per model version counters and its two renderings (see metrics.h).
 *
 * The registry is a linked list under a mutex: it is walked when a version is loaded and when metrics are
 * scraped, never on the request path (a loaded version keeps a pointer to its entry).
 */
#include "serve/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

struct metrics {
    pthread_mutex_t mutex;
    version_stats *head, *tail; /* in order of creation, so output is stable */
};

static const double latency_bounds_s[METRICS_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

kiln_status metrics_create(metrics **out)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    pthread_mutex_init(&m->mutex, NULL);
    *out = m;
    return KILN_OK;
}

void metrics_free(metrics *m)
{
    if (!m) return;
    for (version_stats *s = m->head, *next; s; s = next) {
        next = s->next;
        pthread_mutex_destroy(&s->batch_mutex);
        free(s->batches);
        free((char *)s->model);
        free((char *)s->version);
        free(s);
    }
    pthread_mutex_destroy(&m->mutex);
    free(m);
}

static version_stats *stats_new(const char *model, const char *version)
{
    version_stats *s = calloc(1, sizeof *s);
    char *model_copy = strdup(model), *version_copy = strdup(version);
    if (!s || !model_copy || !version_copy) {
        free(s);
        free(model_copy);
        free(version_copy);
        return NULL;
    }
    s->model = model_copy;
    s->version = version_copy;
    pthread_mutex_init(&s->batch_mutex, NULL);
    return s;
}

version_stats *metrics_version_stats(metrics *m, const char *model, const char *version)
{
    pthread_mutex_lock(&m->mutex);
    version_stats *s = m->head;
    while (s && (strcmp(s->model, model) != 0 || strcmp(s->version, version) != 0)) s = s->next;
    if (!s && (s = stats_new(model, version)) != NULL) {
        if (m->tail) m->tail->next = s;
        else m->head = s;
        m->tail = s;
    }
    pthread_mutex_unlock(&m->mutex);
    return s;
}

static void add(atomic_uint_fast64_t *counter, uint64_t v) { atomic_fetch_add_explicit(counter, v, memory_order_relaxed); }

static uint64_t get(const atomic_uint_fast64_t *counter)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)counter, memory_order_relaxed);
}

static void add_duration(duration_stat *d, uint64_t ns)
{
    add(&d->count, 1);
    add(&d->ns, ns);
}

static uint64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void stats_request_done(version_stats *s, bool ok, const request_timing *t)
{
    add_duration(ok ? &s->success : &s->fail, t->total_ns);
    if (t->executed) {
        add_duration(&s->queue, t->queue_ns);
        add_duration(&s->compute_input, t->input_ns);
        add_duration(&s->compute_infer, t->infer_ns);
        add_duration(&s->compute_output, t->output_ns);
    }
    if (ok) {
        add(&s->inference_count, (uint64_t)t->rows);
        atomic_store_explicit(&s->last_inference_ms, wall_clock_ms(), memory_order_relaxed);
    }
    double seconds = (double)t->total_ns * 1e-9;
    int bucket = 0;
    while (bucket < METRICS_LATENCY_BUCKETS && seconds > latency_bounds_s[bucket]) bucket++;
    add(&s->latency_buckets[bucket], 1);
    add(&s->latency_sum_ns, t->total_ns);
}

/* The table entry for batch_size, inserted in order; NULL when out of memory. Called under batch_mutex. */
static batch_stat *batch_entry(version_stats *s, int64_t batch_size)
{
    int i = 0;
    while (i < s->n_batches && s->batches[i].batch_size < batch_size) i++;
    if (i < s->n_batches && s->batches[i].batch_size == batch_size) return &s->batches[i];
    if (s->n_batches == s->batch_capacity) {
        int capacity = s->batch_capacity ? 2 * s->batch_capacity : 8;
        batch_stat *grown = realloc(s->batches, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        s->batches = grown;
        s->batch_capacity = capacity;
    }
    memmove(&s->batches[i + 1], &s->batches[i], (size_t)(s->n_batches - i) * sizeof *s->batches);
    s->n_batches++;
    s->batches[i] = (batch_stat){.batch_size = batch_size};
    return &s->batches[i];
}

void stats_execution_done(version_stats *s, int64_t batch_rows, uint64_t input_ns, uint64_t infer_ns,
                          uint64_t output_ns)
{
    add(&s->execution_count, 1);
    pthread_mutex_lock(&s->batch_mutex);
    batch_stat *b = batch_entry(s, batch_rows);
    if (b) {
        b->count++;
        b->input_ns += input_ns;
        b->infer_ns += infer_ns;
        b->output_ns += output_ns;
    }
    pthread_mutex_unlock(&s->batch_mutex);
}

/* ---- Prometheus text ----------------------------------------------------------------------------------- */

/* Label values are quoted: backslash, quote and newline must be escaped. */
static void write_label_value(json_writer *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') jw_printf(out, "\\%c", *s);
        else if (*s == '\n') jw_raw(out, "\\n", 2);
        else jw_raw(out, s, 1);
    }
}

static void write_labels(json_writer *out, const version_stats *s)
{
    jw_raw(out, "{model=\"", 8);
    write_label_value(out, s->model);
    jw_raw(out, "\",version=\"", 11);
    write_label_value(out, s->version);
    jw_raw(out, "\"", 1);
}

typedef uint64_t (*stat_reader)(const version_stats *s);

static void write_family(json_writer *out, metrics *m, const char *name, const char *type, const char *help,
                         stat_reader read)
{
    jw_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (version_stats *s = m->head; s; s = s->next) {
        jw_printf(out, "%s", name);
        write_labels(out, s);
        jw_printf(out, "} %llu\n", (unsigned long long)read(s));
    }
}

static uint64_t read_success(const version_stats *s) { return get(&s->success.count); }
static uint64_t read_failure(const version_stats *s) { return get(&s->fail.count); }
static uint64_t read_inferences(const version_stats *s) { return get(&s->inference_count); }
static uint64_t read_executions(const version_stats *s) { return get(&s->execution_count); }
static uint64_t read_success_us(const version_stats *s) { return get(&s->success.ns) / 1000; }
static uint64_t read_queue_us(const version_stats *s) { return get(&s->queue.ns) / 1000; }
static uint64_t read_input_us(const version_stats *s) { return get(&s->compute_input.ns) / 1000; }
static uint64_t read_infer_us(const version_stats *s) { return get(&s->compute_infer.ns) / 1000; }
static uint64_t read_output_us(const version_stats *s) { return get(&s->compute_output.ns) / 1000; }
static uint64_t read_pending(const version_stats *s)
{
    int_fast64_t n = atomic_load_explicit((atomic_int_fast64_t *)&s->pending, memory_order_relaxed);
    return n > 0 ? (uint64_t)n : 0;
}

static void write_latency_histogram(json_writer *out, metrics *m)
{
    const char *name = "kiln_inference_request_duration_seconds";
    jw_printf(out, "# HELP %s Time from receiving an inference request to answering it.\n# TYPE %s histogram\n",
              name, name);
    for (version_stats *s = m->head; s; s = s->next) {
        uint64_t cumulative = 0;
        for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
            cumulative += get(&s->latency_buckets[b]);
            jw_printf(out, "%s_bucket", name);
            write_labels(out, s);
            if (b < METRICS_LATENCY_BUCKETS) jw_printf(out, ",le=\"%g\"} %llu\n", latency_bounds_s[b],
                                                       (unsigned long long)cumulative);
            else jw_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        jw_printf(out, "%s_sum", name);
        write_labels(out, s);
        jw_printf(out, "} %.9f\n%s_count", (double)get(&s->latency_sum_ns) * 1e-9, name);
        write_labels(out, s);
        jw_printf(out, "} %llu\n", (unsigned long long)cumulative);
    }
}

void metrics_write_prometheus(metrics *m, json_writer *out)
{
    static const struct {
        const char *name, *type, *help;
        stat_reader read;
    } families[] = {
        {"kiln_inference_request_success_total", "counter", "Inference requests answered successfully.",
         read_success},
        {"kiln_inference_request_failure_total", "counter", "Inference requests that failed (any 4xx or 5xx).",
         read_failure},
        {"kiln_inference_count_total", "counter", "Inferences performed (a request of batch size N counts N).",
         read_inferences},
        {"kiln_inference_exec_count_total", "counter",
         "Model executions (one per batch; fewer than inferences when requests are batched).", read_executions},
        {"kiln_inference_request_duration_us_total", "counter",
         "Cumulative time of successful requests, from receipt to answer.", read_success_us},
        {"kiln_inference_queue_duration_us_total", "counter", "Cumulative time requests waited for a batch.",
         read_queue_us},
        {"kiln_inference_compute_input_duration_us_total", "counter",
         "Cumulative time gathering batch inputs (per request).", read_input_us},
        {"kiln_inference_compute_infer_duration_us_total", "counter",
         "Cumulative time running the model (per request).", read_infer_us},
        {"kiln_inference_compute_output_duration_us_total", "counter",
         "Cumulative time splitting batch outputs (per request).", read_output_us},
        {"kiln_inference_pending_requests", "gauge", "Inference requests received and not yet answered.",
         read_pending},
    };
    pthread_mutex_lock(&m->mutex);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        write_family(out, m, families[i].name, families[i].type, families[i].help, families[i].read);
    write_latency_histogram(out, m);
    pthread_mutex_unlock(&m->mutex);
}

/* ---- the statistics extension -------------------------------------------------------------------------- */

static void write_duration(json_writer *out, const char *key, uint64_t count, uint64_t ns)
{
    jw_key(out, key);
    jw_object_begin(out);
    jw_key(out, "count");
    jw_uint(out, count);
    jw_key(out, "ns");
    jw_uint(out, ns);
    jw_object_end(out);
}

static void write_duration_stat(json_writer *out, const char *key, const duration_stat *d)
{
    write_duration(out, key, get(&d->count), get(&d->ns));
}

static void write_batch_stats(json_writer *out, version_stats *s)
{
    jw_key(out, "batch_stats");
    jw_array_begin(out);
    pthread_mutex_lock(&s->batch_mutex);
    for (int i = 0; i < s->n_batches; i++) {
        const batch_stat *b = &s->batches[i];
        jw_object_begin(out);
        jw_key(out, "batch_size");
        jw_int(out, b->batch_size);
        write_duration(out, "compute_input", b->count, b->input_ns);
        write_duration(out, "compute_infer", b->count, b->infer_ns);
        write_duration(out, "compute_output", b->count, b->output_ns);
        jw_object_end(out);
    }
    pthread_mutex_unlock(&s->batch_mutex);
    jw_array_end(out);
}

static void write_model_stat(json_writer *out, version_stats *s)
{
    jw_object_begin(out);
    jw_key(out, "name");
    jw_string(out, s->model);
    jw_key(out, "version");
    jw_string(out, s->version);
    jw_key(out, "last_inference");
    jw_uint(out, get(&s->last_inference_ms));
    jw_key(out, "inference_count");
    jw_uint(out, get(&s->inference_count));
    jw_key(out, "execution_count");
    jw_uint(out, get(&s->execution_count));
    jw_key(out, "inference_stats");
    jw_object_begin(out);
    write_duration_stat(out, "success", &s->success);
    write_duration_stat(out, "fail", &s->fail);
    write_duration_stat(out, "queue", &s->queue);
    write_duration_stat(out, "compute_input", &s->compute_input);
    write_duration_stat(out, "compute_infer", &s->compute_infer);
    write_duration_stat(out, "compute_output", &s->compute_output);
    write_duration(out, "cache_hit", 0, 0);
    jw_object_end(out);
    write_batch_stats(out, s);
    jw_object_end(out);
}

int metrics_write_statistics(metrics *m, const char *model, const char *version, json_writer *out)
{
    int matched = 0;
    jw_object_begin(out);
    jw_key(out, "model_stats");
    jw_array_begin(out);
    pthread_mutex_lock(&m->mutex);
    for (version_stats *s = m->head; s; s = s->next) {
        if ((model && strcmp(s->model, model) != 0) || (version && strcmp(s->version, version) != 0)) continue;
        write_model_stat(out, s);
        matched++;
    }
    pthread_mutex_unlock(&m->mutex);
    jw_array_end(out);
    jw_object_end(out);
    return matched;
}
