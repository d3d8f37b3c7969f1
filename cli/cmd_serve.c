/*
 * cmd_serve.c — `kiln serve --model-repository DIR` or `kiln serve MODEL`: the Open Inference Protocol (KServe
 * V2) over HTTP, with dynamic batching (serve/).
 *
 * The server listens at once (so liveness probes answer) and becomes ready when every model is loaded and
 * warmed up. SIGTERM or SIGINT drains it: no new connections, every accepted request answered, exit 0. The
 * signals are taken synchronously by the main thread (sigwait), so no handler runs inside the HTTP threads.
 */
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/error.h"
#include "serve/access_log.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/repository.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln serve --model-repository DIR [options]\n"
            "       kiln serve MODEL [options]\n"
            "\n"
            "Serves models over HTTP with the Open Inference Protocol (KServe V2 REST), Triton's binary-data,\n"
            "model-repository and statistics extensions, and TF-Serving's :predict.\n"
            "\n"
            "A repository holds DIR/<model>/<version>/model.onnx (or model.json / model.ubj for XGBoost, model.txt\n"
            "for LightGBM) and optionally DIR/<model>/config.json (batching, queue, sessions, version policy,\n"
            "renames: see docs/architecture.md). `kiln serve MODEL` serves one file as version 1 of a model named\n"
            "after the file.\n"
            "\n"
            "options:\n"
            "  --model-repository DIR   the repository to serve\n"
            "  --host ADDR              address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "  --port N                 TCP port (default 8000; 0 picks a free one, printed at start)\n"
            "  --threads N              HTTP event-loop threads, which also run models (default: the CPUs this\n"
            "                           process may use)\n"
            "  --poll-seconds S         rescan the repository every S seconds: load new and changed models,\n"
            "                           unload removed ones (default: off; POST /v2/repository/... instead)\n"
            "  --access-log PATH        one JSON line per request (\"-\": standard output)\n"
            "\n"
            "model defaults (a model's config.json overrides them):\n"
            "  --max-batch-size N       most rows per batch; 0 turns batching off (default: 64 when every input\n"
            "                           and output has the same free first dim, else 0)\n"
            "  --max-queue-delay-us N   how long a request may wait for its batch to fill (default 0: batch\n"
            "                           what is queued, never wait)\n"
            "  --max-queue-size N       requests queued per model version before more get 503 (default 1024)\n"
            "  --queue-timeout-us N     a request queued longer gets 503 (default 0: no limit)\n"
            "  --instances N            sessions per model version, i.e. batches that can run at once\n"
            "                           (default: threads + 1)\n"
            "\n"
            "limits (each answered with a clear error):\n"
            "  --max-body-bytes N       request bodies beyond get 413 (default 67108864)\n"
            "  --max-header-bytes N     memory for one connection's request headers; larger headers get 431\n"
            "                           (default 8192, as nginx and Apache allow)\n"
            "  --request-timeout S      a request must arrive within S seconds (else 408; a body still\n"
            "                           arriving after 2S is cut off); idle keep-alive connections close\n"
            "                           after S seconds (default 30)\n"
            "  --max-connections N      connections beyond get 503 (default 1024)\n"
            "  --drain-timeout S        on SIGTERM/SIGINT, wait up to S seconds for accepted requests\n"
            "                           (default 30)\n"
            "  -h, --help               show this help\n"
            "\n"
            "Endpoints: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/{m}[/versions/{v}][/ready],\n"
            "/v2/models[/{m}[/versions/{v}]]/stats, /metrics (Prometheus); POST /v2/models/{m}[/versions/{v}]/infer,\n"
            "/v2/repository/index, /v2/repository/models/{m}/load|unload, /v1/models/{m}:predict.\n"
            "\n"
            "example:\n"
            "  kiln serve --model-repository examples/repository\n"
            "  curl -s localhost:8000/v2/models/breast_cancer_mlp/infer -d '{\"inputs\": [{\"name\": \"features\",\n"
            "       \"shape\": [1, 30], \"datatype\": \"FP32\", \"data\": [13.5, 14.4, ...30 numbers]}]}'\n");
}

typedef struct serve_args {
    const char *repository, *model, *access_log;
    server_options server;
    model_config_defaults defaults;
    double poll_seconds, drain_timeout_s;
} serve_args;

static int available_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return 1;
}

enum {
    OPT_REPOSITORY = 256, OPT_HOST, OPT_PORT, OPT_THREADS, OPT_POLL, OPT_ACCESS_LOG, OPT_MAX_BATCH, OPT_DELAY,
    OPT_QUEUE_SIZE, OPT_QUEUE_TIMEOUT, OPT_INSTANCES, OPT_MAX_BODY, OPT_MAX_HEADER, OPT_REQUEST_TIMEOUT,
    OPT_MAX_CONNECTIONS, OPT_DRAIN_TIMEOUT
};

static bool parse_number(const char *name, const char *text, long min, long max, long *out)
{
    if (cli_parse_long(text, min, max, out)) return true;
    cli_usage_error("serve", "--%s must be a whole number from %ld to %ld, not '%s'", name, min, max, text);
    return false;
}

static bool parse_seconds(const char *name, const char *text, double min, double *out)
{
    if (cli_parse_double(text, min, 86400.0 * 365, out)) return true;
    cli_usage_error("serve", "--%s must be a number of seconds of at least %g, not '%s'", name, min, text);
    return false;
}

/* One option; false after printing a usage error. */
static bool apply_option(serve_args *a, int c, const struct option *options, int index)
{
    long n;
    const char *name = index >= 0 ? options[index].name : "?";
    switch (c) {
    case OPT_REPOSITORY: a->repository = optarg; return true;
    case OPT_HOST: a->server.host = optarg; return true;
    case OPT_ACCESS_LOG: a->access_log = optarg; return true;
    case OPT_PORT: return parse_number(name, optarg, 0, 65535, &n) && (a->server.port = (int)n, true);
    case OPT_THREADS: return parse_number(name, optarg, 1, 1024, &n) && (a->server.threads = (int)n, true);
    case OPT_POLL: return parse_seconds(name, optarg, 0.01, &a->poll_seconds);
    case OPT_DRAIN_TIMEOUT: return parse_seconds(name, optarg, 0, &a->drain_timeout_s);
    case OPT_MAX_BATCH:
        return parse_number(name, optarg, 0, MODEL_CONFIG_MAX_BATCH, &n) && (a->defaults.max_batch_size = (int)n, true);
    case OPT_DELAY:
        return parse_number(name, optarg, 0, 60000000, &n) && (a->defaults.max_queue_delay_us = n, true);
    case OPT_QUEUE_SIZE:
        return parse_number(name, optarg, 1, 1 << 24, &n) && (a->defaults.max_queue_size = (int)n, true);
    case OPT_QUEUE_TIMEOUT:
        return parse_number(name, optarg, 0, 3600000000L, &n) && (a->defaults.queue_timeout_us = n, true);
    case OPT_INSTANCES: return parse_number(name, optarg, 1, 256, &n) && (a->defaults.instances = (int)n, true);
    case OPT_MAX_BODY:
        return parse_number(name, optarg, 1024, 1L << 40, &n) && (a->server.max_body_bytes = (size_t)n, true);
    case OPT_MAX_HEADER:
        return parse_number(name, optarg, 2048, 1 << 24, &n) && (a->server.max_header_bytes = (size_t)n, true);
    case OPT_REQUEST_TIMEOUT:
        return parse_number(name, optarg, 1, 86400, &n) && (a->server.request_timeout_s = (unsigned)n, true);
    case OPT_MAX_CONNECTIONS:
        return parse_number(name, optarg, 1, 1000000, &n) && (a->server.max_connections = (unsigned)n, true);
    default: break;
    }
    return false;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a)
{
    static const struct option options[] = {
        {"model-repository", required_argument, NULL, OPT_REPOSITORY},
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"poll-seconds", required_argument, NULL, OPT_POLL},
        {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
        {"max-batch-size", required_argument, NULL, OPT_MAX_BATCH},
        {"max-queue-delay-us", required_argument, NULL, OPT_DELAY},
        {"max-queue-size", required_argument, NULL, OPT_QUEUE_SIZE},
        {"queue-timeout-us", required_argument, NULL, OPT_QUEUE_TIMEOUT},
        {"instances", required_argument, NULL, OPT_INSTANCES},
        {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
        {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER},
        {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *a = (serve_args){
        .server = {.host = "127.0.0.1", .port = 8000, .threads = available_cpus(), .max_body_bytes = 64u << 20,
                   .max_header_bytes = 8192, .request_timeout_s = 30, .max_connections = 1024},
        .defaults = {.max_batch_size = MODEL_CONFIG_AUTO, .max_queue_size = 1024},
        .drain_timeout_s = 30,
    };
    int c, index;
    optind = 1;
    opterr = 0;
    while ((index = -1, c = getopt_long(argc, argv, "h", options, &index)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return EXIT_OK;
        }
        if (c == '?' || c == ':') return cli_bad_option("serve", argv);
        if (!apply_option(a, c, options, index)) return EXIT_USAGE;
    }
    if (optind < argc) a->model = argv[optind++];
    if (optind < argc) return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (!a->repository == !a->model)
        return cli_usage_error("serve", "give either --model-repository DIR or one MODEL file");
    return -1;
}

/* Waits for SIGTERM or SIGINT (blocked in every thread, so only this wait sees them). */
static int wait_for_signal(const sigset_t *signals)
{
    int sig = 0;
    while (sigwait(signals, &sig) != 0) continue;
    return sig;
}

static int run_server(const serve_args *a, const sigset_t *signals)
{
    metrics *m = NULL;
    repository *repo = NULL;
    access_log *log = NULL;
    server *srv = NULL;
    int rc = EXIT_FAILED;
    repository_options ro = {.path = a->repository ? a->repository : a->model, .single_model = a->model != NULL,
                             .defaults = a->defaults, .default_instances = a->server.threads + 1};
    if (metrics_create(&m) != KILN_OK) goto fail;
    ro.metrics = m;
    if (a->access_log && access_log_open(a->access_log, &log) != KILN_OK) goto fail;
    if (repository_open(&ro, &repo) != KILN_OK) goto fail;
    if (server_start(&a->server, repo, m, log, &srv) != KILN_OK) goto fail;
    fprintf(stderr, "kiln serve: listening on http://%s:%d (%d thread%s)\n", a->server.host, server_port(srv),
            a->server.threads, a->server.threads == 1 ? "" : "s");
    if (repository_load_all(repo) != KILN_OK) goto fail;
    if (a->poll_seconds > 0 && repository_start_polling(repo, a->poll_seconds) != KILN_OK) goto fail;
    server_set_ready(srv, true);
    fprintf(stderr, "kiln serve: ready (%d model%s)\n", repository_model_count(repo),
            repository_model_count(repo) == 1 ? "" : "s");
    int sig = wait_for_signal(signals);
    fprintf(stderr, "kiln serve: %s: draining (up to %g s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM", a->drain_timeout_s);
    server_drain(srv, a->drain_timeout_s);
    rc = EXIT_OK;
    goto done;
fail:
    rc = cli_fail("serve");
done:
    server_stop(srv);
    repository_close(repo);
    access_log_close(log);
    metrics_free(m);
    if (rc == EXIT_OK) fprintf(stderr, "kiln serve: stopped\n");
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    serve_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    /* block before any thread exists, so every thread inherits the mask */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    return run_server(&a, &signals);
}
