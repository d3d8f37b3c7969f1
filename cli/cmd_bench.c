/*
 * cmd_bench.c — `kiln bench MODEL [INPUT ...] [--threads N] [--seconds S] [--shape NAME=DIMS] [--json]`.
 *
 * Loads the model (timed: cold start is a number we track), binds the given inputs or random ones of the
 * declared shapes, warms up, then runs back to back for the requested time and reports latency
 * percentiles. With --json it prints exactly one line in the format DESIGN.md fixes for other tools.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/mem.h"
#include "core/platform/platform.h"
#include "core/tensor.h"

#define MAX_SHAPE_OVERRIDES 64
#define MAX_RECORDED_RUNS 10000000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln bench MODEL [INPUT ...] [options]\n"
            "\n"
            "Runs MODEL repeatedly and reports latency percentiles and throughput. Without INPUT files the\n"
            "inputs are random, of the declared shapes: floats uniform in [0,1), integers in [0,10), bools\n"
            "random. Symbolic dims are 1 unless --shape fixes them.\n"
            "\n"
            "options:\n"
            "      --threads N        threads used inside each run (default 1)\n"
            "      --seconds S        how long to measure (default 3)\n"
            "      --warmup N         untimed runs first (default 3)\n"
            "      --shape NAME=DIMS  NAME is an input (DIMS its whole shape, e.g. input=8,3,224,224) or a\n"
            "                         symbolic dim (DIMS one size, e.g. batch=8); repeatable\n"
            "      --json             print one JSON line: {\"model\", \"threads\", \"runs\", \"load_ms\",\n"
            "                         \"p50_us\", \"p90_us\", \"p99_us\", \"min_us\"}\n"
            "      --profile[=N]      also time every node and print where a run's time goes: by operator,\n"
            "                         then the N slowest nodes (default 20, 0 for all; on stderr with --json;\n"
            "                         timing adds ~20 ns a node)\n"
            "  -h, --help             show this help\n");
}

typedef struct shape_override {
    const char *name;
    int rank;
    int64_t dims[KILN_MAX_RANK];
} shape_override;

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, long n, double p)
{
    double rank = p / 100.0 * (double)(n - 1);
    long lo = (long)floor(rank);
    long hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

static uint64_t next_random(uint64_t *state)
{
    /* xorshift64*: plenty for benchmark inputs, and the same numbers on every platform */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static void fill_random(kiln_tensor *t, uint64_t *state)
{
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = next_random(state);
        double u = (double)(r >> 11) / 9007199254740992.0;
        switch (t->dtype) {
        case KILN_FLOAT32: ((float *)t->data)[i] = (float)u; break;
        case KILN_FLOAT64: ((double *)t->data)[i] = u; break;
        case KILN_BOOL: ((uint8_t *)t->data)[i] = r & 1; break;
        case KILN_INT64: ((int64_t *)t->data)[i] = (int64_t)(r % 10); break;
        case KILN_INT32: ((int32_t *)t->data)[i] = (int32_t)(r % 10); break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)(r % 10); break;
        }
    }
}

/* The shape a random input gets: an override for the input, else declared dims with symbols resolved. */
static kiln_status random_input_shape(const kiln_value_info *info, const shape_override *overrides, int n_overrides,
                                      kiln_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->dtype = info->dtype;
    for (int k = 0; k < n_overrides; k++)
        if (strcmp(overrides[k].name, info->name) == 0) {
            t->rank = overrides[k].rank;
            memcpy(t->dims, overrides[k].dims, sizeof t->dims);
            return KILN_OK;
        }
    if (info->rank < 0) return KILN_ERR_INVALID_ARGUMENT;
    t->rank = info->rank;
    for (int d = 0; d < info->rank; d++) {
        t->dims[d] = info->dims[d] >= 0 ? info->dims[d] : 1;
        for (int k = 0; k < n_overrides && info->dims[d] < 0; k++)
            if (info->dim_names[d] && overrides[k].rank == 1 && strcmp(overrides[k].name, info->dim_names[d]) == 0)
                t->dims[d] = overrides[k].dims[0];
    }
    return KILN_OK;
}

static int bind_random_inputs(const kiln_model *model, kiln_session *session, const shape_override *overrides,
                              int n_overrides, kiln_tensor *inputs)
{
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < kiln_model_input_count(model); i++) {
        kiln_value_info info;
        kiln_model_input_info(model, i, &info);
        if (random_input_shape(&info, overrides, n_overrides, &inputs[i]) != KILN_OK)
            return cli_usage_error("bench", "input '%s' has no declared shape; give --shape %s=DIMS", info.name, info.name);
        if (info.dtype == KILN_STRING)
            return cli_usage_error("bench", "input '%s' is a string tensor; give an INPUT file", info.name);
        inputs[i].data = mem_aligned_alloc(tensor_bytes(&inputs[i]));
        if (!inputs[i].data) return cli_fail("bench");
        fill_random(&inputs[i], &state);
        if (kiln_session_set_input(session, i, inputs[i].dtype, inputs[i].rank, inputs[i].dims, inputs[i].data) !=
            KILN_OK)
            return cli_fail("bench");
    }
    return EXIT_OK;
}

typedef struct bench_options {
    long threads, warmup;
    double seconds;
    bool json, profile;
    long profile_nodes; /* slowest nodes listed; 0 for all */
    shape_override overrides[MAX_SHAPE_OVERRIDES];
    int n_overrides;
} bench_options;

static int parse_options(int argc, char **argv, bench_options *o)
{
    static const struct option options[] = {{"threads", required_argument, NULL, 't'},
                                            {"seconds", required_argument, NULL, 's'},
                                            {"warmup", required_argument, NULL, 'w'},
                                            {"shape", required_argument, NULL, 'S'},
                                            {"json", no_argument, NULL, 'j'},
                                            {"profile", optional_argument, NULL, 'p'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0; /* unknown options are reported by cli_bad_option, in kiln's words */
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!cli_parse_long(optarg, 1, 1024, &o->threads))
                return cli_usage_error("bench", "--threads must be a number from 1 to 1024, not '%s'", optarg);
            break;
        case 's':
            if (!cli_parse_double(optarg, 0.001, 86400, &o->seconds))
                return cli_usage_error("bench", "--seconds must be a positive number, not '%s'", optarg);
            break;
        case 'w':
            if (!cli_parse_long(optarg, 0, 1000000, &o->warmup))
                return cli_usage_error("bench", "--warmup must be a count, not '%s'", optarg);
            break;
        case 'S': {
            char *eq = strchr(optarg, '=');
            shape_override *s = &o->overrides[o->n_overrides];
            if (o->n_overrides == MAX_SHAPE_OVERRIDES) return cli_usage_error("bench", "too many --shape options");
            if (!eq || eq == optarg || !cli_parse_dims(eq + 1, &s->rank, s->dims))
                return cli_usage_error("bench", "--shape wants NAME=DIMS like input=1,3,224,224, not '%s'", optarg);
            *eq = '\0';
            s->name = optarg;
            o->n_overrides++;
            break;
        }
        case 'j': o->json = true; break;
        case 'p':
            o->profile = true;
            if (optarg && !cli_parse_long(optarg, 0, 1000000, &o->profile_nodes))
                return cli_usage_error("bench", "--profile=N wants a count of nodes, not '%s'", optarg);
            break;
        case 'h': usage(stdout); return -1;
        default: return cli_bad_option("bench", argv);
        }
    }
    if (optind >= argc) return cli_usage_error("bench", "missing MODEL");
    return EXIT_OK;
}

/* The session's node timings so far (after the warm-up runs, which the report leaves out). */
static kiln_node_profile *profile_snapshot(const kiln_session *session)
{
    int count = kiln_session_profile_count(session);
    kiln_node_profile *p = calloc((size_t)count + 1, sizeof *p);
    for (int i = 0; p && i < count; i++) kiln_session_profile(session, i, &p[i]);
    return p;
}

static int compare_by_time(const void *a, const void *b)
{
    uint64_t x = ((const kiln_node_profile *)a)->total_ns, y = ((const kiln_node_profile *)b)->total_ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

enum { PROFILE_TOP_NODES = 20 };

/* Sums the nodes of each operator type into `ops` (by the first node of the type); returns how many. */
static int sum_by_operator(const kiln_node_profile *nodes, int count, kiln_node_profile *ops, int *per_op)
{
    int n_ops = 0;
    for (int i = 0; i < count; i++) {
        int k = 0;
        while (k < n_ops && (strcmp(ops[k].op_type, nodes[i].op_type) || strcmp(ops[k].domain, nodes[i].domain))) k++;
        if (k == n_ops) {
            ops[n_ops] = nodes[i];
            ops[n_ops].total_ns = 0;
            per_op[n_ops++] = 0;
        }
        ops[k].total_ns += nodes[i].total_ns;
        per_op[k]++;
    }
    return n_ops;
}

/* Time per measured run by operator type, then the slowest nodes, each with its share of the total. */
static int print_profile(FILE *out, const kiln_session *session, const kiln_node_profile *warm, long top)
{
    int count = kiln_session_profile_count(session), n_ran = 0;
    kiln_node_profile *nodes = calloc((size_t)count + 1, sizeof *nodes), *ops = calloc((size_t)count + 1, sizeof *ops);
    int *per_op = calloc((size_t)count + 1, sizeof *per_op);
    if (!nodes || !ops || !per_op) {
        free(nodes), free(ops), free(per_op);
        return cli_fail("bench");
    }
    uint64_t total = 0, runs = 0;
    for (int i = 0; i < count; i++) {
        kiln_node_profile p;
        kiln_session_profile(session, i, &p);
        if (p.runs == warm[i].runs) continue; /* folded away, or never reached */
        p.total_ns -= warm[i].total_ns;
        runs = p.runs - warm[i].runs > runs ? p.runs - warm[i].runs : runs;
        total += p.total_ns;
        nodes[n_ran++] = p;
    }
    double per_run = runs ? 1e3 * (double)runs : 1.0, whole = total ? (double)total : 1.0;
    qsort(nodes, (size_t)n_ran, sizeof *nodes, compare_by_time);
    int n_ops = sum_by_operator(nodes, n_ran, ops, per_op);
    fprintf(out, "\nprofile: %.1f us a run inside %d nodes\n", (double)total / per_run, n_ran);
    fprintf(out, "%-28s %6s %12s %7s\n", "operator", "nodes", "us/run", "share");
    for (int k = 0; k < n_ops; k++)
        fprintf(out, "%-28s %6d %12.1f %6.1f%%\n", ops[k].op_type, per_op[k], (double)ops[k].total_ns / per_run,
                100.0 * (double)ops[k].total_ns / whole);
    fprintf(out, "\n%12s %7s  %-20s %s\n", "us/run", "share", "operator", "slowest nodes");
    for (int i = 0; i < n_ran && (top == 0 || i < top); i++)
        fprintf(out, "%12.1f %6.1f%%  %-20s %s\n", (double)nodes[i].total_ns / per_run,
                100.0 * (double)nodes[i].total_ns / whole, nodes[i].op_type, nodes[i].name);
    free(nodes), free(ops), free(per_op);
    return EXIT_OK;
}

static double elapsed_us(uint64_t start) { return (double)(platform_now_ns() - start) / 1e3; }

int cmd_bench(int argc, char **argv)
{
    bench_options o = {.threads = 1, .warmup = 3, .seconds = 3.0, .profile_nodes = PROFILE_TOP_NODES};
    int rc = parse_options(argc, argv, &o);
    if (rc < 0) return EXIT_OK;
    if (rc != EXIT_OK) return rc;
    const char *model_path = argv[optind];
    char **input_paths = argv + optind + 1;
    int n_files = argc - optind - 1;

    kiln_model *model = NULL;
    kiln_session *session = NULL;
    kiln_tensor *inputs = NULL;
    double *latencies = NULL;
    kiln_node_profile *warm_profile = NULL;
    int n_inputs = 0;
    uint64_t load_start = platform_now_ns();
    if (kiln_model_load(model_path, &model) != KILN_OK) return cli_fail("bench");
    double load_ms = elapsed_us(load_start) / 1e3;
    n_inputs = kiln_model_input_count(model);
    kiln_session_options opts;
    kiln_session_options_init(&opts);
    opts.threads = (int)o.threads;
    opts.profile = o.profile;
    rc = EXIT_FAILED;
    inputs = calloc((size_t)n_inputs + 1, sizeof *inputs);
    if (!inputs || kiln_session_create(model, &opts, &session) != KILN_OK) goto fail;
    if (n_files) {
        if (n_files != n_inputs) {
            rc = cli_usage_error("bench", "%s has %d inputs but %d files were given", model_path, n_inputs, n_files);
            goto done;
        }
        if (cli_read_inputs(model, session, input_paths, n_files, inputs) != KILN_OK) goto fail;
    } else if ((rc = bind_random_inputs(model, session, o.overrides, o.n_overrides, inputs)) != EXIT_OK) {
        goto done;
    }
    for (long i = 0; i < o.warmup + 1; i++) /* at least one: the first run plans */
        if (kiln_session_run(session) != KILN_OK) goto fail;
    long capacity = 1024, runs = 0;
    latencies = malloc((size_t)capacity * sizeof *latencies);
    if (!latencies || (o.profile && !(warm_profile = profile_snapshot(session)))) goto fail;
    uint64_t bench_start = platform_now_ns();
    uint64_t budget_ns = (uint64_t)(o.seconds * 1e9);
    while ((platform_now_ns() - bench_start < budget_ns || runs < 1) && runs < MAX_RECORDED_RUNS) {
        if (runs == capacity) {
            double *more = realloc(latencies, (size_t)capacity * 2 * sizeof *latencies);
            if (!more) break;
            latencies = more;
            capacity *= 2;
        }
        uint64_t start = platform_now_ns();
        if (kiln_session_run(session) != KILN_OK) goto fail;
        latencies[runs++] = elapsed_us(start);
    }
    double wall_s = (double)(platform_now_ns() - bench_start) / 1e9;
    qsort(latencies, (size_t)runs, sizeof *latencies, compare_doubles);
    double p50 = percentile(latencies, runs, 50), p90 = percentile(latencies, runs, 90),
           p99 = percentile(latencies, runs, 99), min = latencies[0];
    if (o.json) {
        printf("{\"model\":\"");
        for (const char *p = model_path; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        printf("\",\"threads\":%ld,\"runs\":%ld,\"load_ms\":%.3f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
               "\"min_us\":%.1f}\n",
               o.threads, runs, load_ms, p50, p90, p99, min);
    } else {
        printf("model:      %s\n", model_path);
        printf("threads:    %ld\n", o.threads);
        printf("load:       %.2f ms\n", load_ms);
        printf("arena:      %zu bytes\n", kiln_session_arena_bytes(session));
        printf("runs:       %ld in %.2f s (%.1f runs/s)\n", runs, wall_s, (double)runs / wall_s);
        printf("latency:    min %.1f us, p50 %.1f us, p90 %.1f us, p99 %.1f us\n", min, p50, p90, p99);
    }
    if (o.profile && print_profile(o.json ? stderr : stdout, session, warm_profile, o.profile_nodes) != EXIT_OK) goto fail;
    rc = EXIT_OK;
    goto done;
fail:
    rc = cli_fail("bench");
done:
    if (inputs) {
        if (n_files) cli_free_inputs(model, inputs, n_inputs);
        else
            for (int i = 0; i < n_inputs; i++) mem_aligned_free(inputs[i].data);
    }
    free(inputs);
    free(latencies);
    free(warm_profile);
    kiln_session_free(session);
    kiln_model_free(model);
    return rc;
}
