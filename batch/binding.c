/*
 * binding.c — which columns feed which model inputs, and text into an input's element type.
 *
 * The rule, applied to a file's header (CSV/TSV) or, for JSON Lines, to each object's keys (jsonl.c):
 *   1. By name. An input NAME with one value per row takes the column NAME; an input of F values per row
 *      takes NAME (JSON: an array of F numbers) or the columns NAME_0 .. NAME_{F-1} — the same names
 *      `kiln batch` gives output columns. Used when every input finds its columns (and --columns is not given).
 *   2. A model with a single input (the usual tabular model: `input` [N, F] for a tree ensemble, `features`
 *      [N, 30] for an MLP) takes the --columns list in that order, or else every column that is not an --id,
 *      in file order. The count must be F.
 * Anything else is an error at the start of the job that names the inputs and the columns. Columns that feed
 * nothing are ignored; --id columns pass through to the output.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/number.h"
#include "core/error.h"
#include "core/mem.h"

void binding_free(batch_binding *b)
{
    for (int i = 0; i < b->n_fields && b->field_names; i++) mem_free(b->field_names[i]);
    mem_free(b->field_names);
    mem_free(b->slot);
    memset(b, 0, sizeof *b);
}

static int find_field(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

/* "a, b, c, ... (31 columns)" for messages. */
static const char *list_names(char **names, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 8 < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= size - used) {
            snprintf(buf + used, size - used, ", ...");
            break;
        }
        used += (size_t)w;
    }
    if (n > 8) snprintf(buf + strlen(buf), size - strlen(buf), " (%d columns)", n);
    return buf;
}

/* Rule 1: every input by name. */
static bool bind_by_name(const batch_job *job, char **names, int n, int32_t *slot)
{
    for (int k = 0; k < job->n_inputs; k++) {
        const batch_input *in = &job->inputs[k];
        int whole = find_field(names, n, in->name);
        if (in->features == 1 && whole >= 0 && !SLOT_IS_ID(slot[whole])) {
            slot[whole] = (int32_t)in->first_slot;
            continue;
        }
        for (int64_t j = 0; j < in->features; j++) {
            char name[512];
            snprintf(name, sizeof name, "%s_%lld", in->name, (long long)j);
            int f = find_field(names, n, name);
            if (f < 0 || SLOT_IS_ID(slot[f])) return false;
            slot[f] = (int32_t)(in->first_slot + j);
        }
    }
    return true;
}

/* Rule 2: the single input takes --columns, or every non-id column in order. */
static kiln_status bind_single_input(const batch_job *job, const batch_file *file, char **names, int n,
                                     int32_t *slot)
{
    const batch_input *in = &job->inputs[0];
    const batch_options *o = job->opt;
    char list[1024];
    if (o->n_columns) {
        if (o->n_columns != in->features)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "--columns names %d columns but the model's input '%s' takes %lld values per row",
                             o->n_columns, in->name, (long long)in->features);
        for (int j = 0; j < o->n_columns; j++) {
            int f = find_field(names, n, o->columns[j]);
            if (f < 0)
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: no column '%s' (--columns); the header has %s", file->path,
                                 o->columns[j], list_names(names, n, list, sizeof list));
            slot[f] = (int32_t)j;
        }
        return KILN_OK;
    }
    int64_t used = 0;
    for (int f = 0; f < n; f++)
        if (!SLOT_IS_ID(slot[f])) used++;
    if (used != in->features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "%s: the model's input '%s' takes %lld values per row but the file has %lld columns besides "
                         "the --id ones (%s); choose them with --columns or pass others through with --id",
                         file->path, in->name, (long long)in->features, (long long)used,
                         list_names(names, n, list, sizeof list));
    int64_t j = 0;
    for (int f = 0; f < n; f++)
        if (!SLOT_IS_ID(slot[f])) slot[f] = (int32_t)j++;
    return KILN_OK;
}

kiln_status binding_for_header(const batch_job *job, const batch_file *file, char **names, int n,
                               batch_binding *b)
{
    const batch_options *o = job->opt;
    memset(b, 0, sizeof *b);
    b->n_fields = n;
    b->field_names = names;
    b->slot = mem_alloc(sizeof *b->slot * (size_t)(n ? n : 1));
    if (!b->slot) return KILN_ERR_OUT_OF_MEMORY;
    for (int f = 0; f < n; f++) b->slot[f] = SLOT_IGNORED;
    char list[1024];
    for (int i = 0; i < o->n_ids; i++) {
        int f = find_field(names, n, o->ids[i]);
        if (f < 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: no column '%s' (--id); the header has %s", file->path,
                             o->ids[i], list_names(names, n, list, sizeof list));
        b->slot[f] = SLOT_ID(i);
    }
    if (!o->n_columns && bind_by_name(job, names, n, b->slot)) return KILN_OK;
    for (int f = 0; f < n; f++)
        if (!SLOT_IS_ID(b->slot[f])) b->slot[f] = SLOT_IGNORED;
    if (job->n_inputs == 1) return bind_single_input(job, file, names, n, b->slot);
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                     "%s: the model has %d inputs and they are fed by name: each input NAME needs a column NAME "
                     "(or NAME_0, NAME_1, ... for several values per row); the header has %s",
                     file->path, job->n_inputs, list_names(names, n, list, sizeof list));
}

static const char *store_integer(kiln_dtype dtype, const char *text, size_t len, void *dst)
{
    int64_t v;
    if (len == 0) return "is empty, and the model wants an integer";
    if (!number_parse_int64(text, len, &v)) return "is not an integer";
    switch (dtype) {
    case KILN_INT64: *(int64_t *)dst = v; return NULL;
    case KILN_INT32:
        if (v < INT32_MIN || v > INT32_MAX) return "is out of range for int32";
        *(int32_t *)dst = (int32_t)v;
        return NULL;
    case KILN_INT16:
        if (v < INT16_MIN || v > INT16_MAX) return "is out of range for int16";
        *(int16_t *)dst = (int16_t)v;
        return NULL;
    case KILN_INT8:
        if (v < INT8_MIN || v > INT8_MAX) return "is out of range for int8";
        *(int8_t *)dst = (int8_t)v;
        return NULL;
    case KILN_UINT8:
        if (v < 0 || v > UINT8_MAX) return "is out of range for uint8";
        *(uint8_t *)dst = (uint8_t)v;
        return NULL;
    case KILN_UINT16:
        if (v < 0 || v > UINT16_MAX) return "is out of range for uint16";
        *(uint16_t *)dst = (uint16_t)v;
        return NULL;
    case KILN_UINT32:
        if (v < 0 || v > (int64_t)UINT32_MAX) return "is out of range for uint32";
        *(uint32_t *)dst = (uint32_t)v;
        return NULL;
    case KILN_UINT64:
        if (v < 0) return "is out of range for uint64";
        *(uint64_t *)dst = (uint64_t)v;
        return NULL;
    default: return "has a type kiln batch cannot fill";
    }
}

const char *binding_store_text(kiln_dtype dtype, const char *text, size_t len, void *dst)
{
    switch (dtype) {
    case KILN_FLOAT32:
        if (len == 0) *(float *)dst = NAN;
        else if (!number_parse_float(text, len, (float *)dst)) return "is not a number";
        return NULL;
    case KILN_FLOAT64:
        if (len == 0) *(double *)dst = NAN;
        else if (!number_parse_double(text, len, (double *)dst)) return "is not a number";
        return NULL;
    case KILN_BOOL: {
        int64_t v;
        if ((len == 4 && strncmp(text, "true", 4) == 0) || (len == 4 && strncmp(text, "True", 4) == 0)) v = 1;
        else if ((len == 5 && strncmp(text, "false", 5) == 0) || (len == 5 && strncmp(text, "False", 5) == 0)) v = 0;
        else if (!number_parse_int64(text, len, &v) || (v != 0 && v != 1)) return "is not a boolean (0, 1, true, false)";
        *(uint8_t *)dst = (uint8_t)v;
        return NULL;
    }
    default: return store_integer(dtype, text, len, dst);
    }
}
