/*
 * cli_values.c — sequences and optionals on the command line (`kiln run`, `kiln bench`).
 *
 * A sequence or optional input is given either as one ONNX SequenceProto / OptionalProto .pb file (as the
 * ONNX test suites store them) or as a directory of element files: a sequence as DIR/0.npy, DIR/1.npy, ...
 * (.pb TensorProto files work too), an optional as an empty directory (no value), DIR/0.npy (a tensor) or
 * DIR/0/ (a sequence directory). Outputs are written the same way: output_K.pb with --format pb, or the
 * directory output_K/ with npy. A sequence of maps (ZipMap's output), which NumPy has no file for, is
 * written as output_K.json: a JSON array with one object per map, {"key": value, ...} (integer keys written
 * as JSON strings, as JSON requires; floats with 9 significant digits, enough to give back the float32).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/mem.h"
#include "formats/npy.h"
#include "formats/tensor_file.h"

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/i.npy, else DIR/i.pb; false when neither exists. */
static bool element_path(const char *dir, int64_t i, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%lld.npy", dir, (long long)i);
    if (is_file(buf)) return true;
    snprintf(buf, size, "%s/%lld.pb", dir, (long long)i);
    return is_file(buf);
}

static kiln_status new_list(kiln_dtype dtype, int64_t count, kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = dtype;
    out->rank = 1;
    out->data = mem_aligned_alloc((size_t)count * sizeof(kiln_tensor));
    if (!out->data) return KILN_ERR_OUT_OF_MEMORY;
    memset(out->data, 0, (size_t)count * sizeof(kiln_tensor));
    return KILN_OK;
}

static kiln_status read_sequence_dir(const char *dir, kiln_dtype dtype, kiln_tensor *out)
{
    char path[4096];
    int64_t count = 0;
    while (count < (1 << 24) && element_path(dir, count, path, sizeof path)) count++;
    KILN_TRY(new_list(dtype, count, out));
    kiln_tensor *items = out->data;
    for (int64_t i = 0; i < count; i++) {
        element_path(dir, i, path, sizeof path);
        out->dims[0] = i + 1;
        kiln_status st = tensor_file_read(path, &items[i]);
        if (st != KILN_OK) {
            value_file_free(KILN_VALUE_SEQUENCE, KILN_VALUE_TENSOR, out);
            return st;
        }
    }
    return KILN_OK;
}

static kiln_status read_optional_dir(const char *dir, kiln_value_kind elem_kind, kiln_dtype dtype, kiln_tensor *out)
{
    char path[4096];
    bool has_tensor = elem_kind == KILN_VALUE_TENSOR && element_path(dir, 0, path, sizeof path);
    bool has_sequence = false;
    if (elem_kind == KILN_VALUE_SEQUENCE) {
        snprintf(path, sizeof path, "%s/0", dir);
        has_sequence = is_directory(path);
    }
    KILN_TRY(new_list(dtype, has_tensor || has_sequence ? 1 : 0, out));
    if (!has_tensor && !has_sequence) return KILN_OK;
    kiln_tensor *item = out->data;
    kiln_status st = has_tensor ? tensor_file_read(path, item) : read_sequence_dir(path, dtype, item);
    out->dims[0] = st == KILN_OK ? 1 : 0;
    if (st != KILN_OK) value_file_free(KILN_VALUE_OPTIONAL, elem_kind, out);
    return st;
}

kiln_status cli_read_value(const char *path, const kiln_value_info *info, kiln_tensor *out)
{
    memset(out, 0, sizeof *out);
    if (info->kind == KILN_VALUE_TENSOR) return tensor_file_read(path, out);
    if (!is_directory(path)) return value_file_read_pb(path, info->kind, info->elem_kind, info->dtype, out);
    kiln_status st = info->kind == KILN_VALUE_SEQUENCE ? read_sequence_dir(path, info->dtype, out)
                                                        : read_optional_dir(path, info->elem_kind, info->dtype, out);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

void cli_free_value(const kiln_value_info *info, kiln_tensor *value)
{
    value_file_free(info->kind, info->elem_kind, value);
}

static kiln_status make_directory(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return kiln_fail(KILN_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
    return KILN_OK;
}

/* A sequence as DIR/0.npy, DIR/1.npy, ... */
static kiln_status write_sequence_dir(const char *dir, const kiln_tensor *seq)
{
    KILN_TRY(make_directory(dir));
    const kiln_tensor *items = seq->data;
    char path[8192]; /* dir may itself be a 4096-byte path plus an element name */
    for (int64_t i = 0; i < seq->dims[0]; i++) {
        snprintf(path, sizeof path, "%s/%lld.npy", dir, (long long)i);
        KILN_TRY(npy_write_file(path, &items[i]));
    }
    return KILN_OK;
}

static void write_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinities: they are written as null. */
static void write_json_number(FILE *f, double v)
{
    if (v != v || v - v != 0) fputs("null", f);
    else fprintf(f, "%.9g", v);
}

/* A sequence of maps as a JSON array of objects, one line per map. */
static kiln_status write_maps_json(const char *path, const kiln_tensor *seq)
{
    FILE *f = fopen(path, "w");
    if (!f) return kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    const kiln_tensor *maps = seq->data;
    fputc('[', f);
    for (int64_t m = 0; m < seq->dims[0]; m++) {
        const kiln_tensor *keys = maps[m].data, *values = keys + 1;
        fputs(m ? ",\n{" : "\n{", f);
        for (int64_t i = 0; i < keys->dims[0]; i++) {
            char number[32];
            if (i) fputs(", ", f);
            if (keys->dtype == KILN_STRING) {
                write_json_string(f, ((const char *const *)keys->data)[i]);
            } else {
                snprintf(number, sizeof number, "%lld", (long long)((const int64_t *)keys->data)[i]);
                write_json_string(f, number);
            }
            fputs(": ", f);
            write_json_number(f, values->dtype == KILN_FLOAT64 ? ((const double *)values->data)[i]
                                                               : ((const float *)values->data)[i]);
        }
        fputc('}', f);
    }
    fputs("\n]\n", f);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) return kiln_fail(KILN_ERR_IO, "%s: write failed", path);
    return KILN_OK;
}

kiln_status cli_write_value(const char *dir, int k, const char *format, const kiln_value_info *info,
                            const kiln_tensor *v)
{
    char path[4096];
    bool pb = strcmp(format, "pb") == 0, maps = info->kind == KILN_VALUE_SEQUENCE && info->elem_kind == KILN_VALUE_MAP;
    snprintf(path, sizeof path, "%s/output_%d%s", dir, k,
             pb ? ".pb" : maps ? ".json" : info->kind == KILN_VALUE_TENSOR ? ".npy" : "");
    if (pb) return value_file_write_pb(path, info->kind, info->elem_kind, v, info->name);
    if (maps) return write_maps_json(path, v);
    if (info->kind == KILN_VALUE_TENSOR) return npy_write_file(path, v);
    if (info->kind == KILN_VALUE_SEQUENCE) return write_sequence_dir(path, v);
    KILN_TRY(make_directory(path));
    if (v->dims[0] == 0) return KILN_OK;
    const kiln_tensor *item = v->data;
    char element[4096 + 16];
    snprintf(element, sizeof element, "%s/0%s", path, info->elem_kind == KILN_VALUE_SEQUENCE ? "" : ".npy");
    return info->elem_kind == KILN_VALUE_SEQUENCE ? write_sequence_dir(element, item) : npy_write_file(element, item);
}
