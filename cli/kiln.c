/*
 * kiln.c — the `kiln` command: dispatches to one file per subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", cmd_run, "run a model on input tensors and write its outputs"},
    {"info", cmd_info, "describe a model: inputs, outputs, operators, memory, anything unsupported"},
    {"bench", cmd_bench, "measure a model's latency and throughput"},
    {"batch", cmd_batch, "score files of any size: CSV, JSON Lines, .npy in; resumable, shardable"},
#ifdef KILN_HAVE_SERVE /* needs libmicrohttpd */
    {"serve", cmd_serve, "serve models over HTTP: Open Inference Protocol (KServe V2), dynamic batching"},
#endif
};

static void print_help(FILE *out)
{
    fprintf(out,
            "kiln %s - deploy trained models from one engine\n"
            "\n"
            "usage: kiln <command> [options]\n"
            "\n"
            "commands:\n",
            kiln_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Run 'kiln <command> --help' for a command's options.\n"
            "Models: ONNX (opsets 1-18 of the default domain, ai.onnx.ml; external data, model-local\n"
            "functions, control flow), XGBoost JSON/UBJSON and LightGBM text, told apart by content.\n"
            "Tensors: NumPy .npy or ONNX TensorProto .pb files.\n"
            "Exit status: 0 success, 1 failure (reason on stderr), 2 bad command line.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("kiln %s\n", kiln_version());
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s' (see 'kiln --help')\n", name);
    return EXIT_USAGE;
}
