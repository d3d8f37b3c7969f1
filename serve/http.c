/*
 * http.c — libmicrohttpd glue: requests in, routes, limits, suspend/resume, readiness, draining (see http.h).
 *
 * libmicrohttpd calls the access handler several times per request: once when the headers are in (where a
 * request context is made and oversize bodies are refused early), once per piece of body (appended to the
 * context's buffer), and once when the request is complete (where it is routed and answered). An inference
 * request that cannot run at once is parked: the connection is suspended, the thread returns to its event
 * loop, and the batch that runs the job resumes the connection, which brings the handler back for a last call
 * that writes the response. The request-completed callback frees the context, releases the model version and
 * writes the access log line.
 *
 * Oversize bodies: a Content-Length beyond the limit is refused with 413 at once (the connection then closes,
 * as HTTP requires when a body is left unread) if the client asked "Expect: 100-continue" or the body is huge;
 * otherwise the body is read and dropped and 413 answered on a connection that stays open.
 */
#include "serve/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/platform/platform.h"
#include "serve/tfserving.h"
#include "serve/v2_json.h"

#define MAX_PATH_SEGMENTS 8
#define MAX_PATH_BYTES 1024
/* Bodies up to this many times the limit are read and dropped (keeping the connection); beyond, closed. */
#define DISCARD_FACTOR 4

struct server {
    server_options options;
    struct MHD_Daemon *daemon;
    repository *repo;
    metrics *metrics;
    access_log *log;
    int port;
    atomic_bool ready, draining;
    atomic_int in_flight;   /* requests whose headers arrived and that are not yet completed */
    atomic_int connections; /* open connections */
    atomic_uint_fast64_t last_completion_ns;
    atomic_uint_fast64_t responses[600]; /* by status code */
};

typedef enum endpoint {
    EP_NOT_FOUND,
    EP_HEALTH_LIVE,
    EP_HEALTH_READY,
    EP_SERVER_METADATA,
    EP_MODEL_METADATA,
    EP_MODEL_READY,
    EP_INFER,
    EP_STATS,
    EP_REPOSITORY_INDEX,
    EP_REPOSITORY_LOAD,
    EP_REPOSITORY_UNLOAD,
    EP_TFS_PREDICT,
    EP_TFS_STATUS,
    EP_METRICS
} endpoint;

typedef struct route {
    endpoint ep;
    const char *model, *version; /* NULL when the path names none */
    bool post;                   /* the method the endpoint takes */
} route;

typedef struct http_request {
    server *srv;
    struct MHD_Connection *connection;
    const char *method, *url;
    uint64_t start_ns;
    route route;
    /* the body; binary tensors after the JSON start 64-byte aligned when the JSON's length is announced */
    uint8_t *body, *body_block;
    size_t body_length, body_capacity, expected_length, json_length;
    uint64_t dropped_bytes;
    bool too_large, timed_out;
    /* inference */
    model_version *version;
    infer_request infer;
    bool infer_parsed, columnar, parked;
    infer_job job;
    /* the answer */
    int status;
    uint64_t bytes_out;
    char path[]; /* the URL, cut into segments by the router (sized to it: the context stays small) */
} http_request;

/* ---- answers ------------------------------------------------------------------------------------------- */

static enum MHD_Result queue(http_request *req, int status, char *body, size_t length, const char *content_type,
                             size_t header_length)
{
    struct MHD_Response *response =
        body ? MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!response) {
        free(body);
        return MHD_NO;
    }
    if (length) MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (header_length) {
        char text[24];
        snprintf(text, sizeof text, "%zu", header_length);
        MHD_add_response_header(response, "Inference-Header-Content-Length", text);
    }
    if (atomic_load(&req->srv->draining) || req->too_large || req->timed_out)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result result = MHD_queue_response(req->connection, (unsigned)status, response);
    MHD_destroy_response(response);
    req->status = status;
    req->bytes_out = length;
    if (status >= 100 && status < 600) atomic_fetch_add_explicit(&req->srv->responses[status], 1, memory_order_relaxed);
    return result;
}

static enum MHD_Result reply_json(http_request *req, int status, json_writer *w)
{
    size_t length;
    char *body = jw_take(w, &length);
    if (!body) return queue(req, 500, NULL, 0, NULL, 0);
    return queue(req, status, body, length, "application/json", 0);
}

static enum MHD_Result reply_empty(http_request *req, int status) { return queue(req, status, NULL, 0, NULL, 0); }

static enum MHD_Result reply_error(http_request *req, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static enum MHD_Result reply_error(http_request *req, int status, const char *fmt, ...)
{
    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    json_writer w;
    jw_init(&w);
    v2_write_error(&w, message);
    return reply_json(req, status, &w);
}

/* ---- routing ------------------------------------------------------------------------------------------- */

static bool is(const char *segment, const char *word) { return segment && strcmp(segment, word) == 0; }

/* /v2/models/{m}[/versions/{v}][/ready|/infer|/stats], with seg[0] == "models" */
static route route_v2_model(char **seg, int n)
{
    route r = {.ep = EP_NOT_FOUND};
    if (n < 2) return r;
    if (n == 2 && is(seg[1], "stats")) return (route){.ep = EP_STATS};
    r.model = seg[1];
    int rest = 2;
    if (n >= 4 && is(seg[2], "versions")) {
        r.version = seg[3];
        rest = 4;
    }
    if (n == rest) r.ep = EP_MODEL_METADATA;
    else if (n == rest + 1 && is(seg[rest], "ready")) r.ep = EP_MODEL_READY;
    else if (n == rest + 1 && is(seg[rest], "infer")) r.ep = EP_INFER, r.post = true;
    else if (n == rest + 1 && is(seg[rest], "stats")) r.ep = EP_STATS;
    return r;
}

/* /v1/models/{m}[/versions/{v}][:predict], with seg[0] == "models" */
static route route_v1_model(char **seg, int n)
{
    route r = {.ep = EP_NOT_FOUND};
    if (n != 2 && !(n == 4 && is(seg[2], "versions"))) return r;
    char *last = seg[n - 1];
    char *colon = strrchr(last, ':');
    if (colon && strcmp(colon, ":predict") == 0) {
        *colon = '\0';
        r.ep = EP_TFS_PREDICT;
        r.post = true;
    } else if (!colon) {
        r.ep = EP_TFS_STATUS;
    } else {
        return r;
    }
    r.model = seg[1];
    r.version = n == 4 ? seg[3] : NULL;
    return r;
}

static route route_path(char *path)
{
    char *seg[MAX_PATH_SEGMENTS + 1], *rest;
    int n = 0;
    for (char *p = strtok_r(path, "/", &rest); p; p = strtok_r(NULL, "/", &rest)) {
        if (n == MAX_PATH_SEGMENTS) return (route){.ep = EP_NOT_FOUND};
        seg[n++] = p;
    }
    seg[n] = NULL;
    if (n == 1 && is(seg[0], "metrics")) return (route){.ep = EP_METRICS};
    if (n >= 1 && is(seg[0], "v2")) {
        if (n == 1) return (route){.ep = EP_SERVER_METADATA};
        if (n == 3 && is(seg[1], "health") && is(seg[2], "live")) return (route){.ep = EP_HEALTH_LIVE};
        if (n == 3 && is(seg[1], "health") && is(seg[2], "ready")) return (route){.ep = EP_HEALTH_READY};
        if (is(seg[1], "models")) return route_v2_model(seg + 1, n - 1);
        if (n == 3 && is(seg[1], "repository") && is(seg[2], "index"))
            return (route){.ep = EP_REPOSITORY_INDEX, .post = true};
        if (n == 5 && is(seg[1], "repository") && is(seg[2], "models") && is(seg[4], "load"))
            return (route){.ep = EP_REPOSITORY_LOAD, .model = seg[3], .post = true};
        if (n == 5 && is(seg[1], "repository") && is(seg[2], "models") && is(seg[4], "unload"))
            return (route){.ep = EP_REPOSITORY_UNLOAD, .model = seg[3], .post = true};
    }
    if (n >= 2 && is(seg[0], "v1") && is(seg[1], "models")) return route_v1_model(seg + 1, n - 1);
    return (route){.ep = EP_NOT_FOUND};
}

/* ---- inference ----------------------------------------------------------------------------------------- */

static int lookup_status(lookup_result r) { return r == LOOKUP_NOT_READY ? 503 : 404; }

static bool acquire(http_request *req, enum MHD_Result *result)
{
    char why[640];
    lookup_result r = repository_acquire(req->srv->repo, req->route.model, req->route.version, &req->version, why,
                                         sizeof why);
    if (r == LOOKUP_OK) return true;
    *result = reply_error(req, lookup_status(r), "%s", why);
    return false;
}

static int failure_status(const infer_job *job)
{
    if (job->outcome == JOB_REJECTED) return 503;
    switch (job->status) {
    case KILN_ERR_INVALID_ARGUMENT:
    case KILN_ERR_MALFORMED:
    case KILN_ERR_RUNTIME: return 400;
    default: return 500;
    }
}

static void record(http_request *req, bool ok)
{
    const infer_job *job = &req->job;
    bool executed = req->infer_parsed && job->outcome != JOB_REJECTED;
    request_timing t = {
        .total_ns = platform_now_ns() - req->start_ns,
        .queue_ns = executed ? job->started_ns - job->enqueued_ns : 0,
        .input_ns = job->input_ns,
        .infer_ns = job->infer_ns,
        .output_ns = job->output_ns,
        .rows = req->infer.rows,
        .executed = executed,
    };
    stats_request_done(req->version->stats, ok, &t);
}

static enum MHD_Result respond_inference(http_request *req)
{
    const infer_job *job = &req->job;
    if (job->outcome != JOB_OK) {
        record(req, false);
        return reply_error(req, failure_status(job), "%s", job->error);
    }
    json_writer w;
    jw_init(&w);
    size_t json_length = 0;
    if (req->route.ep == EP_TFS_PREDICT)
        tfs_write_predict_response(req->version, &req->infer, req->columnar, job->outputs, &w);
    else v2_write_infer_response(req->version, &req->infer, job->outputs, &w, &json_length);
    record(req, !w.failed);
    if (!json_length) return reply_json(req, w.failed ? 500 : 200, &w);
    size_t length;
    char *body = jw_take(&w, &length);
    if (!body) return queue(req, 500, NULL, 0, NULL, 0);
    return queue(req, 200, body, length, "application/octet-stream", json_length);
}

static void resume_parked(void *arg)
{
    http_request *req = arg;
    MHD_resume_connection(req->connection);
}

/* The length of the JSON part of a binary-extension body (the whole body without the extension). */
static bool json_part_length(http_request *req, size_t *out)
{
    const char *header =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Inference-Header-Content-Length");
    *out = req->body_length;
    if (!header) return true;
    char *end;
    unsigned long long n = strtoull(header, &end, 10);
    if (!header[0] || *end || n > req->body_length) return false;
    *out = (size_t)n;
    return true;
}

static bool parse_inference(http_request *req, char *error, size_t error_size)
{
    if (req->route.ep == EP_TFS_PREDICT)
        return tfs_parse_predict_request(req->version, req->body, req->body_length, &req->infer, &req->columnar, error,
                                         error_size);
    size_t json_length;
    if (!json_part_length(req, &json_length)) {
        memset(&req->infer, 0, sizeof req->infer);
        snprintf(error, error_size, "Inference-Header-Content-Length must be a byte count within the body (%zu bytes)",
                 req->body_length);
        return false;
    }
    return v2_parse_infer_request(req->version, req->body, req->body_length, json_length, &req->infer, error,
                                  error_size);
}

static enum MHD_Result handle_infer(http_request *req)
{
    enum MHD_Result result;
    if (!acquire(req, &result)) return result;
    atomic_fetch_add_explicit(&req->version->stats->pending, 1, memory_order_relaxed);
    char error[1024];
    req->infer_parsed = parse_inference(req, error, sizeof error);
    if (!req->infer_parsed) {
        record(req, false);
        return reply_error(req, 400, "%s", error);
    }
    infer_job *job = &req->job;
    job->inputs = req->infer.inputs;
    job->rows = req->infer.rows;
    job->outputs = region_alloc(&req->infer.mem, (size_t)req->version->n_outputs + 1, sizeof *job->outputs);
    job->wake = resume_parked;
    job->wake_arg = req;
    if (!job->outputs) {
        record(req, false);
        return reply_error(req, 500, "out of memory");
    }
    if (batcher_submit(req->version->batcher, job) == SUBMIT_QUEUED && infer_job_park_begin(job)) {
        req->parked = true;
        MHD_suspend_connection(req->connection);
        if (infer_job_park_end(job)) MHD_resume_connection(req->connection);
        return MHD_YES;
    }
    return respond_inference(req);
}

/* ---- the other endpoints ------------------------------------------------------------------------------- */

static enum MHD_Result handle_model_metadata(http_request *req)
{
    enum MHD_Result result;
    if (!acquire(req, &result)) return result;
    int64_t versions[256];
    int n = repository_version_numbers(req->srv->repo, req->route.model, versions, 256);
    json_writer w;
    jw_init(&w);
    v2_write_model_metadata(req->version, versions, n, &w);
    return reply_json(req, 200, &w);
}

/* 200 when ready; 400 with an empty body when known but not ready (V2 health semantics); 404 when unknown. */
static enum MHD_Result handle_model_ready(http_request *req)
{
    char why[640];
    lookup_result r = repository_acquire(req->srv->repo, req->route.model, req->route.version, &req->version, why,
                                         sizeof why);
    if (r == LOOKUP_OK) return reply_empty(req, 200);
    if (r == LOOKUP_NOT_READY) return reply_empty(req, 400);
    return reply_error(req, 404, "%s", why);
}

static enum MHD_Result handle_tfs_status(http_request *req)
{
    enum MHD_Result result;
    if (!acquire(req, &result)) return result;
    json_writer w;
    jw_init(&w);
    jw_object_begin(&w);
    jw_key(&w, "model_version_status");
    jw_array_begin(&w);
    jw_object_begin(&w);
    jw_key(&w, "version");
    jw_string(&w, req->version->version_text);
    jw_key(&w, "state");
    jw_string(&w, "AVAILABLE");
    jw_key(&w, "status");
    jw_object_begin(&w);
    jw_key(&w, "error_code");
    jw_string(&w, "OK");
    jw_key(&w, "error_message");
    jw_string(&w, "");
    jw_object_end(&w);
    jw_object_end(&w);
    jw_array_end(&w);
    jw_object_end(&w);
    return reply_json(req, 200, &w);
}

static enum MHD_Result handle_stats(http_request *req)
{
    json_writer w;
    jw_init(&w);
    int matched = metrics_write_statistics(req->srv->metrics, req->route.model, req->route.version, &w);
    if (matched == 0 && req->route.model) {
        jw_free(&w);
        return reply_error(req, 404, "no statistics for model '%s'%s%s", req->route.model,
                           req->route.version ? " version " : "", req->route.version ? req->route.version : "");
    }
    return reply_json(req, 200, &w);
}

/* The optional JSON body of repository calls; NULL root when empty. */
static bool parse_optional_body(http_request *req, region *mem, json_value *root, enum MHD_Result *result)
{
    root->type = JSON_NULL;
    if (req->body_length == 0) return true;
    if (json_parse(req->body, req->body_length, mem, root) == KILN_OK && root->type == JSON_OBJECT) return true;
    *result = reply_error(req, 400, "the body must be a JSON object (%s)",
                          root->type == JSON_OBJECT ? "" : kiln_last_error());
    return false;
}

static enum MHD_Result handle_repository_index(http_request *req)
{
    region mem;
    region_init(&mem);
    json_value root;
    enum MHD_Result result;
    if (!parse_optional_body(req, &mem, &root, &result)) {
        region_free(&mem);
        return result;
    }
    const json_value *ready = json_get(&root, "ready");
    json_writer w;
    jw_init(&w);
    repository_write_index(req->srv->repo, ready && ready->type == JSON_TRUE, &w);
    region_free(&mem);
    return reply_json(req, 200, &w);
}

static enum MHD_Result handle_repository_load(http_request *req)
{
    region mem;
    region_init(&mem);
    json_value root;
    enum MHD_Result result;
    if (!parse_optional_body(req, &mem, &root, &result)) {
        region_free(&mem);
        return result;
    }
    const json_value *config = json_get(json_get(&root, "parameters"), "config");
    if (config && config->type != JSON_STRING) {
        region_free(&mem);
        return reply_error(req, 400, "parameter 'config' must be a string holding the config.json text");
    }
    bool known = repository_has_model(req->srv->repo, req->route.model);
    kiln_status st = known ? repository_load(req->srv->repo, req->route.model, config ? config->data : NULL,
                                             config ? config->length : 0)
                           : KILN_OK;
    region_free(&mem);
    if (!known) return reply_error(req, 404, "the repository has no model '%s'", req->route.model);
    if (st != KILN_OK) return reply_error(req, 400, "%s", kiln_last_error());
    return reply_empty(req, 200);
}

static enum MHD_Result handle_repository_unload(http_request *req)
{
    if (repository_unload(req->srv->repo, req->route.model) != KILN_OK)
        return reply_error(req, 404, "%s", kiln_last_error());
    return reply_empty(req, 200);
}

static enum MHD_Result handle_metrics(http_request *req)
{
    server *s = req->srv;
    json_writer w;
    jw_init(&w);
    jw_printf(&w, "# HELP kiln_ready Whether the server is ready (models loaded and warmed up, not draining).\n"
                  "# TYPE kiln_ready gauge\nkiln_ready %d\n",
              atomic_load(&s->ready) ? 1 : 0);
    jw_printf(&w, "# HELP kiln_http_open_connections Open client connections.\n"
                  "# TYPE kiln_http_open_connections gauge\nkiln_http_open_connections %d\n",
              atomic_load(&s->connections));
    jw_printf(&w, "# HELP kiln_http_requests_in_flight HTTP requests received and not yet answered.\n"
                  "# TYPE kiln_http_requests_in_flight gauge\nkiln_http_requests_in_flight %d\n",
              atomic_load(&s->in_flight) - 1); /* not counting this scrape */
    jw_printf(&w, "# HELP kiln_http_responses_total HTTP responses by status code.\n"
                  "# TYPE kiln_http_responses_total counter\n");
    for (int code = 100; code < 600; code++) {
        uint64_t n = atomic_load_explicit(&s->responses[code], memory_order_relaxed);
        if (n) jw_printf(&w, "kiln_http_responses_total{code=\"%d\"} %llu\n", code, (unsigned long long)n);
    }
    metrics_write_prometheus(s->metrics, &w);
    size_t length;
    char *body = jw_take(&w, &length);
    if (!body) return queue(req, 500, NULL, 0, NULL, 0);
    return queue(req, 200, body, length, "text/plain; version=0.0.4; charset=utf-8", 0);
}

static enum MHD_Result dispatch(http_request *req)
{
    server *s = req->srv;
    switch (req->route.ep) {
    case EP_HEALTH_LIVE: return reply_empty(req, 200);
    case EP_HEALTH_READY: return reply_empty(req, atomic_load(&s->ready) ? 200 : 400);
    case EP_SERVER_METADATA: {
        json_writer w;
        jw_init(&w);
        v2_write_server_metadata(&w);
        return reply_json(req, 200, &w);
    }
    case EP_MODEL_METADATA: return handle_model_metadata(req);
    case EP_MODEL_READY: return handle_model_ready(req);
    case EP_INFER:
    case EP_TFS_PREDICT: return handle_infer(req);
    case EP_TFS_STATUS: return handle_tfs_status(req);
    case EP_STATS: return handle_stats(req);
    case EP_REPOSITORY_INDEX: return handle_repository_index(req);
    case EP_REPOSITORY_LOAD: return handle_repository_load(req);
    case EP_REPOSITORY_UNLOAD: return handle_repository_unload(req);
    case EP_METRICS: return handle_metrics(req);
    case EP_NOT_FOUND: break;
    }
    return reply_error(req, 404, "no such endpoint: %s %s", req->method, req->url);
}

/* ---- the request life cycle ---------------------------------------------------------------------------- */

static bool method_is(const char *method, const char *want) { return strcmp(method, want) == 0; }

/* The first call: headers are in. Routes the path and refuses what can be refused before the body. */
static enum MHD_Result on_headers(http_request *req)
{
    server *s = req->srv;
    if ((unsigned)atomic_load(&s->connections) > s->options.max_connections)
        return reply_error(req, 503, "too many connections (the limit is %u)", s->options.max_connections);
    if (strlen(req->url) >= MAX_PATH_BYTES)
        return reply_error(req, 414, "the URL is longer than %d bytes", MAX_PATH_BYTES - 1);
    strcpy(req->path, req->url);
    req->route = route_path(req->path);
    bool get = method_is(req->method, "GET") || method_is(req->method, "HEAD"), post = method_is(req->method, "POST");
    if (req->route.ep != EP_NOT_FOUND && (req->route.post ? !post : !get))
        return reply_error(req, 405, "%s %s: this endpoint takes %s", req->method, req->url,
                           req->route.post ? "POST" : "GET");
    const char *length = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!length) return MHD_YES;
    unsigned long long n = strtoull(length, NULL, 10);
    if (n <= s->options.max_body_bytes) {
        req->expected_length = (size_t)n;
        const char *json =
            MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Inference-Header-Content-Length");
        unsigned long long json_length = json ? strtoull(json, NULL, 10) : 0;
        req->json_length = json_length <= n ? (size_t)json_length : 0;
        return MHD_YES;
    }
    const char *expect = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    req->too_large = true;
    if ((expect && strcasecmp(expect, "100-continue") == 0) || n / DISCARD_FACTOR > s->options.max_body_bytes)
        return reply_error(req, 413, "the body is %llu bytes; the limit is %zu (kiln serve --max-body-bytes)", n,
                           s->options.max_body_bytes);
    return MHD_YES;
}

/* Whether the request has taken longer than `times` request timeouts. */
static bool over_time(const http_request *req, unsigned times)
{
    return platform_now_ns() - req->start_ns > (uint64_t)req->srv->options.request_timeout_s * times * 1000000000u;
}

/* Room for `needed` body bytes, placed so that the bytes after the announced JSON are 64-byte aligned. */
static bool grow_body(http_request *req, size_t needed)
{
    /* the announced length when there is one (small bodies then come from malloc's per-thread cache) */
    size_t capacity = req->body_capacity ? req->body_capacity : req->expected_length ? req->expected_length : 4096;
    while (capacity < needed) capacity *= 2;
    if (capacity > req->srv->options.max_body_bytes) capacity = req->srv->options.max_body_bytes;
    uint8_t *block = malloc(capacity + 128);
    if (!block) return false;
    uintptr_t aligned = ((uintptr_t)block + 63) / 64 * 64; /* then the JSON's end moved onto a 64-byte boundary */
    uint8_t *body = block + (aligned - (uintptr_t)block) + (64 - req->json_length % 64) % 64;
    if (req->body_length) memcpy(body, req->body, req->body_length);
    free(req->body_block);
    req->body_block = block;
    req->body = body;
    req->body_capacity = capacity;
    return true;
}

/* A piece of body. Returns false to drop the connection: a client streaming far past the size limit, or still
 * sending at twice the request timeout. (libmicrohttpd 0.9 cannot answer in the middle of a body, so a body
 * that overruns the timeout is read and dropped, and answered 408 when it ends within that grace.) */
static bool on_body(http_request *req, const char *data, size_t size)
{
    size_t limit = req->srv->options.max_body_bytes;
    if (req->timed_out || over_time(req, 1)) {
        req->timed_out = true;
        req->dropped_bytes += size;
        return !over_time(req, 2);
    }
    if (req->too_large || size > limit - req->body_length) {
        req->too_large = true;
        req->dropped_bytes += size;
        return req->dropped_bytes / DISCARD_FACTOR <= limit;
    }
    if (req->body_length + size > req->body_capacity && !grow_body(req, req->body_length + size)) return false;
    memcpy(req->body + req->body_length, data, size);
    req->body_length += size;
    return true;
}

static enum MHD_Result on_complete(http_request *req)
{
    if (req->parked) return respond_inference(req); /* resumed: the job is done */
    if (req->timed_out)
        return reply_error(req, 408, "the request took longer than %u s to arrive", req->srv->options.request_timeout_s);
    if (req->too_large)
        return reply_error(req, 413, "the body is larger than the limit of %zu bytes (kiln serve --max-body-bytes)",
                           req->srv->options.max_body_bytes);
    return dispatch(req);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req + strlen(url) + 1);
        if (!req) return MHD_NO;
        req->srv = cls;
        req->connection = connection;
        req->method = method;
        req->url = url;
        req->start_ns = platform_now_ns();
        *con_cls = req;
        atomic_fetch_add(&req->srv->in_flight, 1);
        return on_headers(req);
    }
    if (*upload_data_size) {
        bool keep = on_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    return on_complete(req);
}

static void client_address(struct MHD_Connection *connection, char *buf, size_t size)
{
    buf[0] = '\0';
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr) return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)size);
}

static void write_access_log(const http_request *req)
{
    char remote[64];
    client_address(req->connection, remote, sizeof remote);
    const model_version *v = req->version;
    access_entry e = {
        .remote = remote,
        .method = req->method,
        .path = req->url,
        .status = req->status,
        .bytes_in = req->body_length + req->dropped_bytes,
        .bytes_out = req->bytes_out,
        .duration_us = (platform_now_ns() - req->start_ns) / 1000,
        .model = v ? v->model_name : req->route.model,
        .version = v ? v->version_text : req->route.version,
        .id = req->infer.id,
        .id_length = req->infer.id_length,
    };
    access_log_write(req->srv->log, &e);
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode code)
{
    (void)connection;
    (void)code;
    server *s = cls;
    http_request *req = *con_cls;
    if (!req) return;
    if (s->log) write_access_log(req);
    if (req->version) {
        atomic_fetch_sub_explicit(&req->version->stats->pending, 1, memory_order_relaxed);
        model_version_release(req->version);
    }
    infer_request_free(&req->infer);
    free(req->job.output_data);
    free(req->body_block);
    free(req);
    *con_cls = NULL;
    if (atomic_load_explicit(&s->draining, memory_order_relaxed)) /* only draining asks */
        atomic_store(&s->last_completion_ns, platform_now_ns());
    atomic_fetch_sub(&s->in_flight, 1);
}

static void connection_changed(void *cls, struct MHD_Connection *connection, void **socket_context,
                               enum MHD_ConnectionNotificationCode code)
{
    (void)connection;
    (void)socket_context;
    server *s = cls;
    atomic_fetch_add(&s->connections, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static void log_http_error(void *cls, const char *fmt, va_list args)
{
    (void)cls;
    char message[512];
    vsnprintf(message, sizeof message, fmt, args);
    size_t n = strlen(message);
    while (n && message[n - 1] == '\n') message[--n] = '\0';
    fprintf(stderr, "kiln serve: http: %s\n", message);
}

/* ---- the server ---------------------------------------------------------------------------------------- */

static kiln_status resolve(const char *host, int port, struct sockaddr_storage *addr, bool *ipv6)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *found;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &found);
    if (rc != 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot resolve --host '%s': %s", host, gai_strerror(rc));
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    *ipv6 = found->ai_family == AF_INET6;
    freeaddrinfo(found);
    return KILN_OK;
}

kiln_status server_start(const server_options *options, repository *repo, metrics *m, access_log *log,
                         server **out)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    s->options = *options;
    s->repo = repo;
    s->metrics = m;
    s->log = log;
    struct sockaddr_storage addr;
    bool ipv6 = false;
    kiln_status st = resolve(options->host, options->port, &addr, &ipv6);
    if (st != KILN_OK) {
        free(s);
        return st;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO | (ipv6 ? MHD_USE_IPv6 : 0);
    /* a pool of one is no pool: libmicrohttpd wants the option left out (an empty option array) */
    struct MHD_OptionItem pool[] = {
        {options->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)options->threads, NULL},
        {MHD_OPTION_END, 0, NULL}};
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)options->port, NULL, NULL, access_handler, s, MHD_OPTION_EXTERNAL_LOGGER, log_http_error, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_ARRAY, pool, MHD_OPTION_CONNECTION_LIMIT,
        options->max_connections + 64, MHD_OPTION_CONNECTION_TIMEOUT, options->request_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, options->max_header_bytes, MHD_OPTION_NOTIFY_COMPLETED, request_completed,
        s, MHD_OPTION_NOTIFY_CONNECTION, connection_changed, s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return kiln_fail(KILN_ERR_IO, "cannot listen on %s:%d (in use, or not an address of this machine?)",
                         options->host, options->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : options->port;
    *out = s;
    return KILN_OK;
}

int server_port(const server *s) { return s->port; }

void server_set_ready(server *s, bool ready) { atomic_store(&s->ready, ready); }

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Idle keep-alive connections are not waited for longer than this after the last request completed. */
#define DRAIN_IDLE_NS 500000000u

void server_drain(server *s, double timeout_s)
{
    atomic_store(&s->ready, false);
    atomic_store(&s->draining, true);
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    uint64_t start = platform_now_ns(), deadline = start + (uint64_t)(timeout_s * 1e9);
    atomic_store(&s->last_completion_ns, start);
    bool rejected = false;
    for (;;) {
        uint64_t now = platform_now_ns();
        int in_flight = atomic_load(&s->in_flight), connections = atomic_load(&s->connections);
        if (in_flight == 0 && (connections == 0 || now - atomic_load(&s->last_completion_ns) > DRAIN_IDLE_NS)) break;
        if (now > deadline && !rejected) {
            fprintf(stderr, "kiln serve: drain timeout: refusing %d queued request(s)\n", in_flight);
            repository_reject_queued(s->repo, "the server is shutting down");
            rejected = true;
        }
        if (now > deadline + 5000000000u) break; /* requests still running a model: give up on them */
        sleep_ms(5);
    }
}

void server_stop(server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
