/*
 * writer.c — output rows as CSV, JSON Lines or .npy.
 *
 * Columns: the --id values first, then each selected model output flattened per row: NAME when the output
 * has one value per row, else NAME_0, NAME_1, ... (a classifier gives label, probabilities_0,
 * probabilities_1). CSV and JSON Lines use these names (JSON Lines as keys, ids keeping their JSON type);
 * .npy output is a [rows, columns] matrix of the outputs' common type (float64 when they differ), without ids.
 *
 * Floats are written with the digits that read back to the same value (%.9g for float32, %.17g for float64),
 * integers exactly, booleans as true/false; in JSON, NaN and infinities are written as NaN, Infinity and
 * -Infinity, as Python's json module and kiln's own reader accept. Workers format their block's rows; the
 * writer stage only copies bytes.
 */
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/number.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "formats/npy.h"
#include "kernels/cast.h"

static size_t column_name(const batch_output *o, int64_t j, char *buf, size_t size)
{
    int n = o->columns == 1 ? snprintf(buf, size, "%s", o->name) : snprintf(buf, size, "%s_%lld", o->name, (long long)j);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

kiln_status writer_header(const batch_job *job, batch_text *t)
{
    if (job->output_format != BATCH_CSV) return KILN_OK;
    bool first = true, ok = true;
    char sep = job->output_delimiter;
    for (int i = 0; i < job->opt->n_ids; i++, first = false)
        ok = ok && (first || text_add(t, &sep, 1)) &&
             csv_append_field(t, job->opt->ids[i], strlen(job->opt->ids[i]), sep);
    for (int k = 0; k < job->n_outputs; k++) {
        const batch_output *o = &job->outputs[k];
        for (int64_t j = 0; j < (o->columns < 0 ? 1 : o->columns); j++, first = false) {
            char name[600];
            size_t n = column_name(o, j, name, sizeof name);
            ok = ok && (first || text_add(t, &sep, 1)) && csv_append_field(t, name, n, sep);
        }
    }
    ok = ok && text_add(t, "\n", 1);
    return ok ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
}

/* One value as text; `json` chooses JSON's spelling of booleans and non-finite floats. */
static size_t format_value(kiln_dtype dtype, const void *p, bool json, char *buf)
{
    double f;
    switch (dtype) {
    case KILN_FLOAT32: f = *(const float *)p; break;
    case KILN_FLOAT64: f = *(const double *)p; break;
    case KILN_FLOAT16: f = dtype_half_to_float(*(const uint16_t *)p); break;
    case KILN_BFLOAT16: f = dtype_bfloat16_to_float(*(const uint16_t *)p); break;
    case KILN_BOOL:
        if (*(const uint8_t *)p) return memcpy(buf, "true", 4), 4;
        return memcpy(buf, "false", 5), 5;
    case KILN_UINT64: return number_format_uint64(*(const uint64_t *)p, buf);
    default: {
        kiln_tensor t = {.dtype = dtype, .rank = 0, .data = (void *)p};
        return number_format_int64(tensor_get_int(&t, 0), buf);
    }
    }
    if (json && f != f) return memcpy(buf, "NaN", 3), 3;
    if (json && (f > 1.7976931348623157e308 || f < -1.7976931348623157e308)) {
        if (f < 0) return memcpy(buf, "-Infinity", 9), 9;
        return memcpy(buf, "Infinity", 8), 8;
    }
    return dtype == KILN_FLOAT64 ? number_format_double(f, buf) : number_format_float((float)f, buf);
}

/* Upper bound of one formatted row's bytes, ids excluded. */
static size_t row_bytes_bound(const batch_job *job)
{
    size_t n = 4;
    for (int k = 0; k < job->n_outputs; k++) {
        size_t name = strlen(job->outputs[k].name) + 32;
        n += (size_t)job->outputs[k].columns * (NUMBER_FORMAT_MAX + 2 + (job->output_format == BATCH_JSONL ? name : 0));
    }
    return n;
}

static bool append_ids(const batch_job *job, batch_block *b, int64_t r, bool json)
{
    char sep = job->output_delimiter;
    for (int i = 0; i < job->opt->n_ids; i++) {
        const batch_id_ref *ref = &b->id_refs[r * job->opt->n_ids + i];
        const char *text = b->ids.data + ref->offset;
        if (!json) {
            bool null = ref->json_literal && ref->len == 4 && memcmp(text, "null", 4) == 0;
            if (!csv_append_field(&b->out, text, null ? 0 : ref->len, sep) || !text_add(&b->out, &sep, 1)) return false;
            continue;
        }
        const char *key = job->opt->ids[i];
        bool ok = text_add(&b->out, i ? ",\"" : "{\"", 2) && text_add(&b->out, key, strlen(key)) &&
                  text_add(&b->out, "\":", 2) &&
                  (ref->json_literal ? text_add(&b->out, text, ref->len) : json_append_string(&b->out, text, ref->len));
        if (!ok) return false;
    }
    return true;
}

/* The values of one row: out[k] is output k's row. */
static void append_values(const batch_job *job, batch_text *t, const void *const *row, bool json, bool any_id)
{
    char sep = job->output_delimiter;
    char *o = t->data + t->len;
    bool first = !any_id;
    for (int k = 0; k < job->n_outputs; k++) {
        const batch_output *out = &job->outputs[k];
        size_t size = kiln_dtype_size(out->dtype);
        for (int64_t j = 0; j < out->columns; j++, first = false) {
            if (json) {
                *o++ = first ? '{' : ',';
                *o++ = '"';
                o += column_name(out, j, o, 600);
                *o++ = '"';
                *o++ = ':';
            } else if (!first) {
                *o++ = sep;
            }
            o += format_value(out->dtype, (const char *)row[k] + (size_t)j * size, json, o);
        }
    }
    if (json) *o++ = '}';
    *o++ = '\n';
    t->len = (size_t)(o - t->data);
}

static void append_npy_row(const batch_job *job, batch_text *t, const void *const *row)
{
    kiln_dtype to = writer_npy_dtype(job);
    for (int k = 0; k < job->n_outputs; k++) {
        const batch_output *out = &job->outputs[k];
        cast_elements(row[k], out->dtype, t->data + t->len, to, out->columns);
        t->len += (size_t)out->columns * kiln_dtype_size(to);
    }
}

kiln_status writer_format_rows(const batch_job *job, batch_block *b, const kiln_tensor *outputs, int64_t first,
                               int64_t count)
{
    bool json = job->output_format == BATCH_JSONL;
    size_t bound = row_bytes_bound(job);
    const void *row[64];
    for (int64_t r = first; r < first + count; r++) {
        if (b->rejected[r]) continue;
        for (int k = 0; k < job->n_outputs; k++)
            row[k] = (const char *)outputs[k].data +
                     (size_t)(r - first) * (size_t)job->outputs[k].columns * kiln_dtype_size(job->outputs[k].dtype);
        if (job->output_format == BATCH_NPY) {
            if (!text_reserve(&b->out, bound)) return KILN_ERR_OUT_OF_MEMORY;
            append_npy_row(job, &b->out, row);
        } else {
            if (!append_ids(job, b, r, json) || !text_reserve(&b->out, bound)) return KILN_ERR_OUT_OF_MEMORY;
            append_values(job, &b->out, row, json, json && job->opt->n_ids > 0);
        }
        b->rows_out++;
    }
    return KILN_OK;
}

kiln_dtype writer_npy_dtype(const batch_job *job)
{
    for (int k = 1; k < job->n_outputs; k++)
        if (job->outputs[k].dtype != job->outputs[0].dtype) return KILN_FLOAT64;
    return job->n_outputs ? job->outputs[0].dtype : KILN_FLOAT32;
}

static int64_t total_columns(const batch_job *job)
{
    int64_t n = 0;
    for (int k = 0; k < job->n_outputs; k++) n += job->outputs[k].columns < 0 ? 1 : job->outputs[k].columns;
    return n;
}

size_t writer_npy_header(const batch_job *job, int64_t rows, char *buf, size_t size)
{
    kiln_tensor t = {.dtype = writer_npy_dtype(job), .rank = 2, .dims = {rows, total_columns(job)}};
    char header[512];
    size_t n = npy_format_header(&t, header, sizeof header);
    if (!n || n > size || size - 10 > 0xffff) return 0;
    /* pad with spaces before the final newline so the data starts where the reservation ends */
    memcpy(buf, header, n - 1);
    memset(buf + n - 1, ' ', size - n);
    buf[size - 1] = '\n';
    buf[8] = (char)((size - 10) & 0xff);
    buf[9] = (char)((size - 10) >> 8);
    return size;
}

size_t writer_npy_reserved_header(const batch_job *job)
{
    kiln_tensor t = {.dtype = writer_npy_dtype(job), .rank = 2, .dims = {INT64_C(999999999999999), total_columns(job)}};
    char header[512];
    return npy_format_header(&t, header, sizeof header);
}
