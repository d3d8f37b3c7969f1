/*
 * cmd_info.c — `kiln info MODEL [--json]`: what a model needs and whether kiln can run it.
 *
 * The model is loaded in inspection mode, so a model with unsupported operators is still described, with
 * every unsupported node listed, and the exit status (2) says it cannot run.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln info MODEL [--json]\n"
            "\n"
            "Describes MODEL: format and producer, opsets, inputs and outputs with dtypes and shapes (symbolic\n"
            "dims by name), the operators that run after constant folding, weight bytes (mapped in place or\n"
            "copied), the planned arena size, and every node kiln cannot run.\n"
            "\n"
            "options:\n"
            "      --json   one JSON object instead of text\n"
            "  -h, --help   show this help\n"
            "\n"
            "exit status: 0 runnable, 3 loaded but has unsupported nodes (listed), 1 cannot be read.\n");
}

enum { EXIT_UNSUPPORTED = 3 };

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* "640 bytes", "16.4 KiB", "10.7 MiB" */
static void print_bytes(size_t bytes)
{
    if (bytes >= 1u << 20) printf("%.1f MiB", (double)bytes / (1u << 20));
    else if (bytes >= 1u << 10) printf("%.1f KiB", (double)bytes / (1u << 10));
    else printf("%zu bytes", bytes);
}

typedef struct info_facts {
    kiln_model_summary summary;
    bool has_arena;
    size_t arena, peak;
    char arena_note[512]; /* why there is no arena figure */
    bool free_dims;
} info_facts;

static void gather(const kiln_model *model, info_facts *f)
{
    kiln_model_summarize(model, &f->summary);
    f->free_dims = false;
    for (int i = 0; i < kiln_model_input_count(model); i++) {
        kiln_value_info info;
        kiln_model_input_info(model, i, &info);
        for (int d = 0; d < info.rank; d++) f->free_dims |= info.dims[d] < 0;
    }
    f->has_arena = f->summary.issues == 0 && kiln_model_plan_memory(model, 1, &f->arena, &f->peak) == KILN_OK;
    snprintf(f->arena_note, sizeof f->arena_note, "not planned: %s",
             f->summary.issues ? "the model has unsupported nodes" : kiln_last_error());
}

static void print_values(const kiln_model *model, bool outputs)
{
    int n = outputs ? kiln_model_output_count(model) : kiln_model_input_count(model);
    for (int i = 0; i < n; i++) {
        kiln_value_info info;
        if (outputs) kiln_model_output_info(model, i, &info);
        else kiln_model_input_info(model, i, &info);
        char shape[256];
        printf("  %d  %-24s %-8s %s\n", i, info.name, kiln_dtype_name(info.dtype),
               cli_format_shape(&info, shape, sizeof shape));
    }
}

static void print_text(const char *path, const kiln_model *model, const info_facts *f)
{
    const kiln_model_summary *s = &f->summary;
    printf("model:      %s\n", path);
    if (strcmp(s->format, "onnx") == 0)
        printf("format:     onnx (IR version %lld%s%s)\n", (long long)s->ir_version, s->producer[0] ? ", from " : "",
               s->producer);
    else
        printf("format:     %s (%s)\n", s->format, s->producer);
    printf("opsets:    ");
    for (int i = 0; i < kiln_model_opset_count(model); i++) {
        const char *domain;
        int64_t version;
        kiln_model_opset(model, i, &domain, &version);
        printf(" %s %lld%s", domain, (long long)version, i + 1 < kiln_model_opset_count(model) ? "," : "");
    }
    printf("\ninputs:\n");
    print_values(model, false);
    printf("outputs:\n");
    print_values(model, true);
    printf("nodes:      %d run (%d in the file before folding and dead-node removal)\n", s->nodes, s->nodes_in_file);
    printf("operators: ");
    for (int i = 0; i < kiln_model_op_type_count(model); i++) {
        const char *domain, *op;
        int count;
        kiln_model_op_type(model, i, &domain, &op, &count);
        printf(" %s%s%s %d%s", strcmp(domain, "ai.onnx") ? domain : "", strcmp(domain, "ai.onnx") ? "::" : "", op,
               count, i + 1 < kiln_model_op_type_count(model) ? "," : "");
    }
    if (s->trees)
        printf("\ntrees:      %lld trees, %lld nodes, deepest path %d splits", (long long)s->trees,
               (long long)s->tree_nodes, s->tree_max_depth);
    printf("\n");
    if (s->initializers || !s->trees) {
        printf("weights:    ");
        print_bytes(s->weight_bytes_mapped + s->weight_bytes_copied);
        printf(" in %d initializers (", s->initializers);
        print_bytes(s->weight_bytes_mapped);
        printf(" used in place, ");
        print_bytes(s->weight_bytes_copied);
        printf(" copied)");
        if (s->weight_bytes_prepacked) {
            printf(", plus ");
            print_bytes(s->weight_bytes_prepacked);
            printf(" packed for GEMM at load");
        }
        printf("\n");
    }
    if (f->has_arena) {
        printf("arena:      %zu bytes (", f->arena);
        if (f->arena >= 1024) {
            print_bytes(f->arena);
            printf(", ");
        }
        printf("peak live ");
        print_bytes(f->peak);
        printf("%s)\n", f->free_dims ? "; free dims set to 1" : "");
    } else {
        printf("arena:      %s\n", f->arena_note);
    }
    printf("load:       %.2f ms\n", s->load_ms);
    if (!s->issues) {
        printf("unsupported: none\n");
        return;
    }
    printf("unsupported: %d node%s\n", s->issues, s->issues == 1 ? "" : "s");
    for (int i = 0; i < s->issues; i++) printf("  %s\n", kiln_model_issue(model, i));
}

/* Non-tensors say what they are: "kind" (sequence, optional), "elem_kind" (tensor, sequence, map) and for maps
 * "key_dtype"; their "dtype" is their elements' (a map's values'). Tensors carry none of these keys. */
static void print_json_kind(const kiln_value_info *info)
{
    static const char *const kinds[] = {"tensor", "sequence", "map", "optional", "sparse_tensor"};
    if (info->kind == KILN_VALUE_TENSOR || (unsigned)info->kind > KILN_VALUE_SPARSE) return;
    kiln_value_kind elem = (unsigned)info->elem_kind > KILN_VALUE_SPARSE ? KILN_VALUE_TENSOR : info->elem_kind;
    printf(",\"kind\":\"%s\",\"elem_kind\":\"%s\"", kinds[info->kind], kinds[elem]);
    if (elem == KILN_VALUE_MAP) printf(",\"key_dtype\":\"%s\"", kiln_dtype_name(info->key_dtype));
}

static void print_json_values(const kiln_model *model, bool outputs)
{
    int n = outputs ? kiln_model_output_count(model) : kiln_model_input_count(model);
    printf("[");
    for (int i = 0; i < n; i++) {
        kiln_value_info info;
        if (outputs) kiln_model_output_info(model, i, &info);
        else kiln_model_input_info(model, i, &info);
        printf("%s{\"name\":", i ? "," : "");
        json_string(info.name);
        printf(",\"dtype\":\"%s\",\"shape\":", kiln_dtype_name(info.dtype));
        if (info.rank < 0) printf("null");
        else {
            printf("[");
            for (int d = 0; d < info.rank; d++) {
                if (d) printf(",");
                if (info.dims[d] >= 0) printf("%lld", (long long)info.dims[d]);
                else if (info.dim_names[d]) json_string(info.dim_names[d]);
                else printf("null");
            }
            printf("]");
        }
        print_json_kind(&info);
        printf("}");
    }
    printf("]");
}

static void print_json(const char *path, const kiln_model *model, const info_facts *f)
{
    const kiln_model_summary *s = &f->summary;
    printf("{\"model\":");
    json_string(path);
    printf(",\"format\":\"%s\",\"ir_version\":%lld,\"producer\":", s->format, (long long)s->ir_version);
    json_string(s->producer);
    printf(",\"opsets\":{");
    for (int i = 0; i < kiln_model_opset_count(model); i++) {
        const char *domain;
        int64_t version;
        kiln_model_opset(model, i, &domain, &version);
        printf("%s", i ? "," : "");
        json_string(domain);
        printf(":%lld", (long long)version);
    }
    printf("},\"inputs\":");
    print_json_values(model, false);
    printf(",\"outputs\":");
    print_json_values(model, true);
    printf(",\"nodes\":%d,\"nodes_in_file\":%d,\"operators\":{", s->nodes, s->nodes_in_file);
    for (int i = 0; i < kiln_model_op_type_count(model); i++) {
        const char *domain, *op;
        int count;
        kiln_model_op_type(model, i, &domain, &op, &count);
        printf("%s", i ? "," : "");
        json_string(op);
        printf(":%d", count);
    }
    printf("},\"initializers\":%d,\"weight_bytes_mapped\":%zu,\"weight_bytes_copied\":%zu,"
           "\"weight_bytes_prepacked\":%zu,\"trees\":%lld,\"tree_nodes\":%lld,\"tree_max_depth\":%d,",
           s->initializers, s->weight_bytes_mapped, s->weight_bytes_copied, s->weight_bytes_prepacked,
           (long long)s->trees, (long long)s->tree_nodes, s->tree_max_depth);
    if (f->has_arena) printf("\"arena_bytes\":%zu,\"peak_live_bytes\":%zu,", f->arena, f->peak);
    else printf("\"arena_bytes\":null,\"peak_live_bytes\":null,");
    printf("\"load_ms\":%.3f,\"unsupported\":[", s->load_ms);
    for (int i = 0; i < s->issues; i++) {
        printf("%s", i ? "," : "");
        json_string(kiln_model_issue(model, i));
    }
    printf("]}\n");
}

int cmd_info(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    optind = 1;
    opterr = 0; /* unknown options are reported by cli_bad_option, in kiln's words */
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_bad_option("info", argv);
        }
    }
    if (optind != argc - 1) return cli_usage_error("info", optind >= argc ? "missing MODEL" : "too many arguments");
    const char *path = argv[optind];
    kiln_model *model;
    if (kiln_model_load_ex(path, KILN_LOAD_INSPECT, &model) != KILN_OK) return cli_fail("info");
    info_facts facts;
    gather(model, &facts);
    if (json) print_json(path, model, &facts);
    else print_text(path, model, &facts);
    int rc = facts.summary.issues ? EXIT_UNSUPPORTED : EXIT_OK;
    kiln_model_free(model);
    return rc;
}
