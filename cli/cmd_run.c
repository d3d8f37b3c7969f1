/*
 * cmd_run.c — `kiln run MODEL [INPUT ...] [-o DIR] [--format npy|pb] [--threads N]`.
 *
 * The contract other tools rely on (DESIGN.md): inputs are positional, one file per graph input in graph
 * order; with -o, output K is written to DIR/output_K.npy (or .pb); exit 0 on success, else non-zero with a
 * one-line reason on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "formats/npy.h"
#include "formats/tensor_file.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln run MODEL [INPUT ...] [options]\n"
            "\n"
            "Runs MODEL once and prints its outputs (floats to 7 significant digits, for reading), or\n"
            "writes them with -o (exact values).\n"
            "\n"
            "INPUT files are NumPy .npy or ONNX TensorProto .pb, one per graph input, in the order\n"
            "'kiln info MODEL' lists them (initializers are not inputs).\n"
            "\n"
            "Sequence and optional inputs are ONNX SequenceProto / OptionalProto .pb files, or\n"
            "directories of element files: a sequence as DIR/0.npy, DIR/1.npy, ...; an optional as an\n"
            "empty directory (no value), DIR/0.npy (a tensor) or DIR/0/ (a sequence). Such outputs are\n"
            "written the same way: OUTDIR/output_K/ (elements 0.npy, 1.npy, ...) or, with --format pb,\n"
            "OUTDIR/output_K.pb. A sequence of maps (ZipMap's output of a classifier's probabilities) is\n"
            "written as OUTDIR/output_K.json, a JSON array with one {\"label\": probability, ...} object per\n"
            "row (integer labels as strings), or with --format pb as a SequenceProto of MapProto.\n"
            "\n"
            "options:\n"
            "  -o, --output-dir DIR  write DIR/output_K.npy for graph output K (DIR is created if needed)\n"
            "      --format FMT      file format with -o: npy (default) or pb (ONNX TensorProto)\n"
            "      --threads N       threads used inside the run (default 1)\n"
            "      --raw             tree and linear models: margins before the objective's transform\n"
            "                        (sigmoid, softmax, exp) instead of probabilities or predictions\n"
            "  -h, --help            show this help\n"
            "\n"
            "example:\n"
            "  kiln run model.onnx image.npy -o out/   # writes out/output_0.npy, ...\n");
}

/* mkdir -p */
static kiln_status make_directories(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return kiln_fail(KILN_ERR_IO, "%s: bad output directory", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return kiln_fail(KILN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return kiln_fail(KILN_ERR_IO, "%s: not a directory", path);
    return KILN_OK;
}

static void print_value(const kiln_tensor *t, int64_t i)
{
    if (t->dtype == KILN_BOOL) printf("%s", ((const uint8_t *)t->data)[i] ? "true" : "false");
    else if (dtype_is_float(t->dtype)) printf("%.7g", tensor_get_double(t, i));
    else if (t->dtype == KILN_UINT64) printf("%llu", (unsigned long long)((const uint64_t *)t->data)[i]);
    else if (dtype_is_integer(t->dtype)) printf("%lld", (long long)tensor_get_int(t, i));
    else if (t->dtype == KILN_STRING) printf("\"%.60s\"", ((const char *const *)t->data)[i]);
    else printf("?");
}

static void print_tensor(const char *name, const kiln_tensor *t)
{
    char shape[256];
    printf("%s: %s %s = [", name, kiln_dtype_name(t->dtype), shape_format(shape, sizeof shape, t->rank, t->dims));
    int64_t n = tensor_numel(t), shown = n < 16 ? n : 16;
    for (int64_t i = 0; i < shown; i++) {
        if (i) printf(", ");
        print_value(t, i);
    }
    if (shown < n) printf(", ... (%lld values)", (long long)n);
    printf("]\n");
}

/* A tensor as "name: dtype [dims] = [...]"; a sequence's or optional's elements as "name[i]: ...". */
static void print_output(const kiln_model *model, int k, const kiln_tensor *t)
{
    kiln_value_info info;
    kiln_model_output_info(model, k, &info);
    if (info.kind == KILN_VALUE_TENSOR) {
        print_tensor(info.name, t);
        return;
    }
    const kiln_tensor *items = t->data;
    if (info.elem_kind == KILN_VALUE_MAP) {
        printf("%s: sequence of %lld map(s)\n", info.name, (long long)t->dims[0]);
        for (int64_t i = 0; i < t->dims[0]; i++) {
            char name[512];
            snprintf(name, sizeof name, "%s[%lld] keys", info.name, (long long)i);
            print_tensor(name, &((const kiln_tensor *)items[i].data)[0]);
            snprintf(name, sizeof name, "%s[%lld] values", info.name, (long long)i);
            print_tensor(name, &((const kiln_tensor *)items[i].data)[1]);
        }
        return;
    }
    bool nested = info.kind == KILN_VALUE_OPTIONAL && info.elem_kind == KILN_VALUE_SEQUENCE;
    printf("%s: %s of %lld %s\n", info.name, info.kind == KILN_VALUE_OPTIONAL ? "optional" : "sequence",
           (long long)t->dims[0], nested ? "sequence" : "tensor(s)");
    for (int64_t i = 0; i < t->dims[0]; i++) {
        const kiln_tensor *inner = nested ? items[i].data : &items[i];
        int64_t n = nested ? items[i].dims[0] : 1;
        for (int64_t j = 0; j < n; j++) {
            char name[512];
            snprintf(name, sizeof name, nested ? "%s[%lld][%lld]" : "%s[%lld]", info.name, (long long)i, (long long)j);
            print_tensor(name, &inner[j]);
        }
    }
}


int cmd_run(int argc, char **argv)
{
    static const struct option options[] = {{"output-dir", required_argument, NULL, 'o'},
                                            {"format", required_argument, NULL, 'f'},
                                            {"threads", required_argument, NULL, 't'},
                                            {"raw", no_argument, NULL, 'r'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *out_dir = NULL, *format = "npy";
    long threads = 1;
    bool raw = false;
    int c;
    optind = 1;
    opterr = 0; /* unknown options are reported by cli_bad_option, in kiln's words */
    while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (c) {
        case 'o': out_dir = optarg; break;
        case 'f':
            if (strcmp(optarg, "npy") != 0 && strcmp(optarg, "pb") != 0)
                return cli_usage_error("run", "--format must be npy or pb, not '%s'", optarg);
            format = optarg;
            break;
        case 't':
            if (!cli_parse_long(optarg, 1, 1024, &threads))
                return cli_usage_error("run", "--threads must be a number from 1 to 1024, not '%s'", optarg);
            break;
        case 'r': raw = true; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_bad_option("run", argv);
        }
    }
    if (optind >= argc) return cli_usage_error("run", "missing MODEL");
    const char *model_path = argv[optind];
    char **input_paths = argv + optind + 1;
    int n_inputs = argc - optind - 1;

    kiln_model *model = NULL;
    kiln_session *session = NULL;
    kiln_tensor *inputs = NULL;
    int rc = EXIT_FAILED;
    if (kiln_model_load(model_path, &model) != KILN_OK) return cli_fail("run");
    int expected = kiln_model_input_count(model);
    if (n_inputs != expected) {
        rc = cli_usage_error("run", "%s has %d input%s but %d file%s given", model_path, expected,
                             expected == 1 ? "" : "s", n_inputs, n_inputs == 1 ? " was" : "s were");
        goto done;
    }
    kiln_session_options opts;
    kiln_session_options_init(&opts);
    opts.threads = (int)threads;
    opts.raw_scores = raw;
    if (kiln_session_create(model, &opts, &session) != KILN_OK) goto fail;
    inputs = calloc((size_t)n_inputs + 1, sizeof *inputs);
    if (!inputs) goto fail;
    if (cli_read_inputs(model, session, input_paths, n_inputs, inputs) != KILN_OK) goto fail;
    if (kiln_session_run(session) != KILN_OK) goto fail;
    if (out_dir && make_directories(out_dir) != KILN_OK) goto fail;
    for (int k = 0; k < kiln_model_output_count(model); k++) {
        kiln_tensor t;
        if (kiln_session_output(session, k, &t) != KILN_OK) goto fail;
        if (out_dir) {
            kiln_value_info info;
            if (kiln_model_output_info(model, k, &info) != KILN_OK) goto fail;
            if (cli_write_value(out_dir, k, format, &info, &t) != KILN_OK) goto fail;
        } else {
            print_output(model, k, &t);
        }
    }
    rc = EXIT_OK;
    goto done;
fail:
    rc = cli_fail("run");
done:
    if (inputs) cli_free_inputs(model, inputs, n_inputs);
    free(inputs);
    kiln_session_free(session);
    kiln_model_free(model);
    return rc;
}
