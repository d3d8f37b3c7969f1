/*
 * cmd_batch.c — `kiln batch MODEL INPUT... -o OUTPUT`: score files of any size (batch/ does the work; this
 * file reads the command line).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln batch MODEL INPUT... -o OUTPUT [options]\n"
            "\n"
            "Scores every row of the INPUT files with MODEL and writes one output row per input row, in input\n"
            "order. Files of any size stream through in constant memory; a killed job resumes where it stopped;\n"
            "N machines can split one job with --shard.\n"
            "\n"
            "INPUT  CSV or TSV with a header line (RFC 4180 quoting), JSON Lines (one object per line), or .npy\n"
            "       (rows x values); any of them gzip- or zstd-compressed (recognised by content, not name);\n"
            "       '-' reads standard input. Several files are read one after another.\n"
            "OUTPUT .csv, .tsv, .jsonl or .npy (by extension, or --format); '-' writes CSV to standard output.\n"
            "       Columns: the --id columns, then every model output flattened per row: NAME when it has one\n"
            "       value per row, else NAME_0, NAME_1, ... (a classifier: label, probabilities_0, probabilities_1).\n"
            "\n"
            "Which columns feed the model:\n"
            "  - an input NAME takes the column NAME (or NAME_0, NAME_1, ... for several values per row; in JSON\n"
            "    Lines also \"NAME\": [values]) when every input finds its columns;\n"
            "  - otherwise a model with a single input (a tree ensemble's `input` [N, F], an MLP's features)\n"
            "    takes the --columns list in order, or else every column that is not an --id, in file order.\n"
            "  Empty fields, NaN and JSON null are missing values (NaN) for float inputs.\n"
            "\n"
            "options:\n"
            "  -o, --output FILE         where the rows go ('-': standard output); it appears only when complete\n"
            "      --format FMT          output format: csv, tsv, jsonl or npy (default: from the name)\n"
            "      --input-format FMT    csv, jsonl or npy (default: recognised from the content)\n"
            "      --columns A,B,...     the columns feeding a single-input model, in order (repeatable)\n"
            "      --id COLUMN           pass COLUMN through to the output, e.g. a key (repeatable)\n"
            "      --outputs A,B,...     write only these model outputs, in this order (default: all)\n"
            "      --delimiter C         CSV field separator (default ',', or tab for .tsv files); 'tab' for a tab\n"
            "      --no-header           CSV files have no header line; columns are named 1, 2, 3, ...\n"
            "      --batch-size N        rows per model run and per block (default 4096)\n"
            "      --threads N           worker threads that parse, run the model and format rows (default 1);\n"
            "                            reading and writing overlap with them on the calling thread\n"
            "      --errors FILE         rejected rows as JSON Lines: file, line, offset, reason, raw text\n"
            "                            (default: counted, and the first few shown on stderr)\n"
            "      --max-error-rate R    fail the job when more than this fraction of rows is rejected (0..1;\n"
            "                            checked from 1000 rows on and at the end; default: no limit)\n"
            "      --resume              continue an interrupted job from its last checkpoint (OUTPUT.checkpoint),\n"
            "                            or start it when there is none; the output is identical to an\n"
            "                            uninterrupted run's\n"
            "      --checkpoint-seconds S  commit output at most this often (default 10; 0: after every block)\n"
            "      --shard I/N           be worker I of N (0 <= I < N): read only this worker's share of the\n"
            "                            input; the N outputs concatenated in order are the unsharded output\n"
            "      --raw                 tree and linear models: margins before the objective's transform\n"
            "      --quiet               no progress line and no summary\n"
            "  -h, --help                show this help\n"
            "\n"
            "Rows that cannot be read (not a number, wrong number of fields, broken quoting, refused by the model)\n"
            "never stop the job: they are rejected, counted and reported. A missing model, an unreadable input,\n"
            "a full disk or --max-error-rate exceeded stop it with exit status 1; the output name then never\n"
            "holds a partial file (OUTPUT.partial does, with OUTPUT.checkpoint to --resume from).\n"
            "\n"
            "examples:\n"
            "  kiln batch churn.json customers.csv -o scores.csv --id customer_id\n"
            "  kiln batch model.onnx day.csv.zst -o day.jsonl --threads 4 --errors rejected.jsonl\n"
            "  zcat day.csv.gz | kiln batch model.onnx - -o - --outputs probabilities > scores.csv\n"
            "  kiln batch model.onnx big.csv -o out.csv --resume          # rerun the same command after a crash\n"
            "  kiln batch model.onnx big.csv -o part-$I.csv --shard $I/8  # then: cat part-{0..7}.csv > all.csv\n");
}

/* Appends the comma-separated names of `text` to a list. */
static bool add_names(const char ***list, int *n, char *text)
{
    for (char *name = strtok(text, ","); name; name = strtok(NULL, ",")) {
        const char **grown = realloc(*list, sizeof **list * (size_t)(*n + 1));
        if (!grown) return false;
        *list = grown;
        (*list)[(*n)++] = name;
    }
    return true;
}

static bool parse_format(const char *text, batch_format *format, char *delimiter)
{
    if (strcmp(text, "csv") == 0) *format = BATCH_CSV;
    else if (strcmp(text, "tsv") == 0) *format = BATCH_CSV, *delimiter = '\t';
    else if (strcmp(text, "jsonl") == 0) *format = BATCH_JSONL;
    else if (strcmp(text, "npy") == 0) *format = BATCH_NPY;
    else return false;
    return true;
}

static bool parse_shard(const char *text, int *index, int *count)
{
    char extra;
    return sscanf(text, "%d/%d%c", index, count, &extra) == 2 && *count >= 1 && *index >= 0 && *index < *count &&
           *count <= 1000000;
}

enum {
    OPT_FORMAT = 256, OPT_INPUT_FORMAT, OPT_COLUMNS, OPT_ID, OPT_OUTPUTS, OPT_DELIMITER, OPT_NO_HEADER, OPT_BATCH_SIZE,
    OPT_THREADS, OPT_ERRORS, OPT_MAX_ERROR_RATE, OPT_RESUME, OPT_CHECKPOINT, OPT_SHARD, OPT_RAW, OPT_QUIET
};

static int parse_option(int c, batch_options *o, char **argv)
{
    long n;
    switch (c) {
    case 'o': o->output = optarg; break;
    case OPT_FORMAT:
        if (!parse_format(optarg, &o->output_format, &o->output_delimiter))
            return cli_usage_error("batch", "--format must be csv, tsv, jsonl or npy, not '%s'", optarg);
        break;
    case OPT_INPUT_FORMAT:
        if (!parse_format(optarg, &o->input_format, &o->delimiter))
            return cli_usage_error("batch", "--input-format must be csv, tsv, jsonl or npy, not '%s'", optarg);
        break;
    case OPT_COLUMNS: if (!add_names(&o->columns, &o->n_columns, optarg)) return cli_usage_error("batch", "out of memory"); break;
    case OPT_ID: if (!add_names(&o->ids, &o->n_ids, optarg)) return cli_usage_error("batch", "out of memory"); break;
    case OPT_OUTPUTS: if (!add_names(&o->outputs, &o->n_outputs, optarg)) return cli_usage_error("batch", "out of memory"); break;
    case OPT_DELIMITER:
        if (strcmp(optarg, "tab") == 0 || strcmp(optarg, "\\t") == 0) o->delimiter = '\t';
        else if (strlen(optarg) == 1 && optarg[0] != '"' && optarg[0] != '\n' && optarg[0] != '\r') o->delimiter = optarg[0];
        else return cli_usage_error("batch", "--delimiter must be one character (or 'tab'), not '%s'", optarg);
        break;
    case OPT_NO_HEADER: o->no_header = true; break;
    case OPT_BATCH_SIZE:
        if (!cli_parse_long(optarg, 1, 1 << 20, &n))
            return cli_usage_error("batch", "--batch-size must be a number from 1 to 1048576, not '%s'", optarg);
        o->batch_size = n;
        break;
    case OPT_THREADS:
        if (!cli_parse_long(optarg, 1, 256, &n))
            return cli_usage_error("batch", "--threads must be a number from 1 to 256, not '%s'", optarg);
        o->threads = (int)n;
        break;
    case OPT_ERRORS: o->errors_path = optarg; break;
    case OPT_MAX_ERROR_RATE:
        if (!cli_parse_double(optarg, 0, 1, &o->max_error_rate))
            return cli_usage_error("batch", "--max-error-rate must be a fraction from 0 to 1, not '%s'", optarg);
        break;
    case OPT_RESUME: o->resume = true; break;
    case OPT_CHECKPOINT:
        if (!cli_parse_double(optarg, 0, 1e9, &o->checkpoint_seconds))
            return cli_usage_error("batch", "--checkpoint-seconds must be a number of seconds, not '%s'", optarg);
        break;
    case OPT_SHARD:
        if (!parse_shard(optarg, &o->shard_index, &o->shard_count))
            return cli_usage_error("batch", "--shard must be I/N with 0 <= I < N, not '%s'", optarg);
        break;
    case OPT_RAW: o->raw_scores = true; break;
    case OPT_QUIET: o->quiet = true; break;
    case 'h': return -1; /* help: the caller prints it */
    default: return cli_bad_option("batch", argv);
    }
    return EXIT_OK;
}

static int check_options(const batch_options *o)
{
    if (!o->model_path) return cli_usage_error("batch", "missing MODEL");
    if (o->n_inputs == 0) return cli_usage_error("batch", "missing INPUT (a file, or - for standard input)");
    if (!o->output) return cli_usage_error("batch", "missing -o OUTPUT (a file, or - for standard output)");
    if (o->resume && strcmp(o->output, "-") == 0)
        return cli_usage_error("batch", "--resume needs an output file: standard output cannot be resumed");
    if (o->n_ids > 64) return cli_usage_error("batch", "at most 64 --id columns");
    if (o->errors_path && strcmp(o->errors_path, o->output) == 0)
        return cli_usage_error("batch", "--errors and -o name the same file");
    return EXIT_OK;
}

int cmd_batch(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},       {"format", required_argument, NULL, OPT_FORMAT},
        {"input-format", required_argument, NULL, OPT_INPUT_FORMAT},
        {"columns", required_argument, NULL, OPT_COLUMNS}, {"id", required_argument, NULL, OPT_ID},
        {"outputs", required_argument, NULL, OPT_OUTPUTS}, {"delimiter", required_argument, NULL, OPT_DELIMITER},
        {"no-header", no_argument, NULL, OPT_NO_HEADER},  {"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"errors", required_argument, NULL, OPT_ERRORS},
        {"max-error-rate", required_argument, NULL, OPT_MAX_ERROR_RATE},
        {"resume", no_argument, NULL, OPT_RESUME},        {"checkpoint-seconds", required_argument, NULL, OPT_CHECKPOINT},
        {"shard", required_argument, NULL, OPT_SHARD},    {"raw", no_argument, NULL, OPT_RAW},
        {"quiet", no_argument, NULL, OPT_QUIET},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    batch_options o = {.batch_size = 4096, .threads = 1, .max_error_rate = -1, .shard_count = 1,
                       .checkpoint_seconds = 10};
    int rc = EXIT_OK, c;
    optind = 1;
    opterr = 0;
    /* "+" stops at the first operand only when POSIXLY_CORRECT; options may follow the files as usual */
    while (rc == EXIT_OK && (c = getopt_long(argc, argv, "-o:h", options, NULL)) != -1) {
        if (c == 1) { /* an operand: MODEL, then inputs */
            if (!o.model_path) o.model_path = optarg;
            else {
                const char **grown = realloc(o.inputs, sizeof *o.inputs * (size_t)(o.n_inputs + 1));
                if (!grown) rc = cli_usage_error("batch", "out of memory");
                else (o.inputs = grown)[o.n_inputs++] = optarg;
            }
            continue;
        }
        rc = parse_option(c, &o, argv);
    }
    if (rc == -1) {
        usage(stdout);
        rc = EXIT_OK;
    } else if (rc == EXIT_OK) {
        rc = check_options(&o);
        if (rc == EXIT_OK) rc = batch_run(&o);
    }
    free(o.inputs);
    free(o.columns);
    free(o.ids);
    free(o.outputs);
    return rc;
}
