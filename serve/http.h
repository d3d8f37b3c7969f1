/*
 * http.h — the HTTP server of `kiln serve`: libmicrohttpd glue, routing, limits, readiness and draining.
 *
 * Endpoints (Open Inference Protocol / KServe V2 REST, with Triton's binary-data, model-repository and
 * statistics extensions, and TF-Serving's predict):
 *
 *   GET  /v2/health/live, /v2/health/ready        200, or 400 when not ready (empty bodies)
 *   GET  /v2                                      server metadata
 *   GET  /v2/models/{m}[/versions/{v}]            model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready
 *   POST /v2/models/{m}[/versions/{v}]/infer
 *   GET  /v2/models[/{m}[/versions/{v}]]/stats
 *   POST /v2/repository/index, /v2/repository/models/{m}/load, .../unload
 *   POST /v1/models/{m}[/versions/{v}]:predict    GET /v1/models/{m}[/versions/{v}] (status)
 *   GET  /metrics                                 Prometheus text
 *
 * A connection is served by one of `threads` event-loop threads. Inference runs on the thread that received
 * the request when the model is idle (see batcher.h); otherwise the connection is suspended until its batch
 * has run, so waiting requests hold no thread.
 */
#ifndef KILN_SERVE_HTTP_H
#define KILN_SERVE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln.h"
#include "serve/access_log.h"
#include "serve/metrics.h"
#include "serve/repository.h"

typedef struct server_options {
    const char *host;
    int port; /* 0: any free port (see server_port) */
    int threads;
    size_t max_body_bytes;
    size_t max_header_bytes;
    unsigned request_timeout_s; /* receiving a request, and idle keep-alive connections */
    unsigned max_connections;
} server_options;

typedef struct server server;

/* Starts listening (not yet ready: readiness waits for server_set_ready). */
kiln_status server_start(const server_options *options, repository *repo, metrics *m, access_log *log,
                         server **out);
int server_port(const server *s);
void server_set_ready(server *s, bool ready);
/* Stops accepting connections, answers requests still arriving on open ones with "Connection: close", and
 * waits until every accepted request is answered (at most timeout_s; then queued requests get 503). */
void server_drain(server *s, double timeout_s);
void server_stop(server *s);

#endif
