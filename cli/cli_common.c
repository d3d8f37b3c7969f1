/*
 * cli_common.c — helpers shared by the subcommands (see cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include "cli/cli.h"
#include "core/error.h"
#include "formats/tensor_file.h"

int cli_fail(const char *cmd)
{
    fprintf(stderr, "kiln %s: %s\n", cmd, kiln_last_error());
    return EXIT_FAILED;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "kiln %s: ", cmd);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, " (see 'kiln %s --help')\n", cmd);
    return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char **argv)
{
    const char *arg = argv[optind - 1];
    if (optopt && strncmp(arg, "--", 2) != 0) return cli_usage_error(cmd, "option -%c is unknown or needs a value", optopt);
    return cli_usage_error(cmd, "option '%s' is unknown or needs a value", arg);
}

bool cli_parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !text[0] || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || !text[0] || *end || !(v >= min && v <= max)) return false;
    *out = v;
    return true;
}

bool cli_parse_dims(const char *text, int *rank, int64_t *dims)
{
    int n = 0;
    const char *p = text;
    if (!*p) {
        *rank = 0; /* a scalar */
        return true;
    }
    while (*p) {
        if (n == KILN_MAX_RANK) return false;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0) return false;
        dims[n++] = v;
        p = end;
        if (*p == ',' || *p == 'x') p++;
        else if (*p) return false;
    }
    *rank = n;
    return true;
}

void cli_free_inputs(const kiln_model *model, kiln_tensor *tensors, int n)
{
    for (int i = 0; i < n; i++) {
        kiln_value_info info;
        if (kiln_model_input_info(model, i, &info) == KILN_OK) cli_free_value(&info, &tensors[i]);
    }
}

kiln_status cli_read_inputs(const kiln_model *model, kiln_session *session, char **paths, int n_paths,
                            kiln_tensor *tensors)
{
    for (int i = 0; i < n_paths; i++) {
        kiln_value_info info;
        kiln_status st = kiln_model_input_info(model, i, &info);
        if (st == KILN_OK) st = cli_read_value(paths[i], &info, &tensors[i]);
        if (st == KILN_OK) {
            /* numpy has no bfloat16: .npy files and the ONNX test data carry it as its uint16 bit pattern */
            if (tensors[i].dtype == KILN_UINT16 && info.dtype == KILN_BFLOAT16)
                tensors[i].dtype = KILN_BFLOAT16;
            st = kiln_session_set_input(session, i, tensors[i].dtype, tensors[i].rank, tensors[i].dims,
                                        tensors[i].data);
            if (st != KILN_OK) kiln_fail_prefix(st, "%s", paths[i]);
        }
        if (st != KILN_OK) {
            cli_free_inputs(model, tensors, i + 1);
            return st;
        }
    }
    return KILN_OK;
}

const char *cli_format_shape(const kiln_value_info *info, char *buf, size_t size)
{
    if (info->kind == KILN_VALUE_SEQUENCE && info->elem_kind == KILN_VALUE_MAP) {
        snprintf(buf, size, "(sequence of maps from %s to %s)", kiln_dtype_name(info->key_dtype),
                 kiln_dtype_name(info->dtype));
        return buf;
    }
    if (info->kind == KILN_VALUE_SEQUENCE || info->kind == KILN_VALUE_OPTIONAL) {
        snprintf(buf, size, "(%s)", info->kind == KILN_VALUE_SEQUENCE         ? "sequence of tensors"
                                    : info->elem_kind == KILN_VALUE_SEQUENCE ? "optional sequence of tensors"
                                                                             : "optional tensor");
        return buf;
    }
    if (info->rank < 0) {
        snprintf(buf, size, "(unknown shape)");
        return buf;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < info->rank && used < size; d++) {
        const char *sep = d ? "," : "";
        if (info->dims[d] >= 0) used += (size_t)snprintf(buf + used, size - used, "%s%lld", sep, (long long)info->dims[d]);
        else if (info->dim_names[d]) used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, info->dim_names[d]);
        else used += (size_t)snprintf(buf + used, size - used, "%s?", sep);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}
