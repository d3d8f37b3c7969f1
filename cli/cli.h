/*
 * cli.h — what the kiln subcommands share: error reporting with the agreed exit codes, number parsing,
 * and reading input tensors in graph-input order.
 *
 * Exit codes: 0 success, 1 the work failed (one-line reason on stderr), 2 the command line was wrong.
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>

#include "kiln.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "kiln CMD: <kiln_last_error()>" and returns EXIT_FAILED. */
int cli_fail(const char *cmd);
/* Prints "kiln CMD: <message>" and a pointer to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Reports the option getopt_long just rejected (unknown, or missing its value); returns EXIT_USAGE. */
int cli_bad_option(const char *cmd, char **argv);

bool cli_parse_long(const char *text, long min, long max, long *out);
bool cli_parse_double(const char *text, double min, double max, double *out);
/* "1,3,224,224" -> dims; false on bad syntax or more than KILN_MAX_RANK dims. */
bool cli_parse_dims(const char *text, int *rank, int64_t *dims);

/* Reads one file per graph input (in order) into `tensors` and binds them to the session. On failure,
 * tensors already read are freed. */
kiln_status cli_read_inputs(const kiln_model *model, kiln_session *session, char **paths, int n_paths,
                            kiln_tensor *tensors);
void cli_free_inputs(const kiln_model *model, kiln_tensor *tensors, int n);

/* Sequences and optionals (cli_values.c): read from a SequenceProto/OptionalProto .pb file or a directory
 * of element files; written as DIR/output_K.pb (format "pb") or the directory DIR/output_K/. Tensors are
 * read and written as usual. */
kiln_status cli_read_value(const char *path, const kiln_value_info *info, kiln_tensor *out);
void cli_free_value(const kiln_value_info *info, kiln_tensor *value);
kiln_status cli_write_value(const char *dir, int k, const char *format, const kiln_value_info *info,
                            const kiln_tensor *value);
/* "[batch,3,224,224]" for a value info. */
const char *cli_format_shape(const kiln_value_info *info, char *buf, size_t size);

#endif
