/*
 * job.c — setting a job up before anything is read: the model (loaded once, shared by every worker's
 * session), what each input takes per row, the outputs written and their columns, the input files (opened
 * once to fail early and to see which are compressed), the output format. Everything that can be checked
 * before the first row is checked here, so a mistake costs a clear message, not a half-written file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch/batch.h"
#include "batch/source.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"
#include "core/tensor.h"

static bool fillable(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: case KILN_FLOAT64: case KILN_BOOL: case KILN_INT8: case KILN_INT16: case KILN_INT32:
    case KILN_INT64: case KILN_UINT8: case KILN_UINT16: case KILN_UINT32: case KILN_UINT64: return true;
    default: return false;
    }
}

static kiln_status describe_inputs(batch_job *job)
{
    job->n_inputs = kiln_model_input_count(job->model);
    job->inputs = mem_calloc((size_t)(job->n_inputs ? job->n_inputs : 1), sizeof *job->inputs);
    if (!job->inputs) return KILN_ERR_OUT_OF_MEMORY;
    if (job->n_inputs == 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has no inputs to feed rows to");
    for (int k = 0; k < job->n_inputs; k++) {
        batch_input *in = &job->inputs[k];
        kiln_value_info info;
        KILN_TRY(kiln_model_input_info(job->model, k, &info));
        in->index = k;
        in->name = info.name;
        in->dtype = info.dtype;
        in->rank = info.rank;
        if (info.rank < 1)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' has %s; kiln batch needs a first (batch) dimension",
                             info.name, info.rank == 0 ? "no dimensions" : "an unknown shape");
        memcpy(in->dims, info.dims, sizeof in->dims);
        in->features = 1;
        for (int d = 1; d < info.rank; d++) {
            if (info.dims[d] < 0)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s': dimension %d is not fixed by the model, so the values "
                                 "of a row cannot be counted", info.name, d);
            in->features *= info.dims[d];
        }
        if (in->features < 1) return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' takes no values per row", info.name);
        if (!fillable(in->dtype))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' is %s; kiln batch fills numeric and boolean inputs",
                             info.name, kiln_dtype_name(in->dtype));
        in->first_slot = job->n_slots;
        job->n_slots += in->features;
        int64_t fixed = info.dims[0] >= 0 ? info.dims[0] : 0;
        if (k > 0 && fixed != job->fixed_rows)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "the inputs disagree on the batch dimension");
        job->fixed_rows = fixed;
    }
    if (job->fixed_rows == 0 && job->inputs[0].dims[0] == 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "the model fixes its batch dimension to 0 rows");
    return KILN_OK;
}

static kiln_status describe_output(batch_job *job, int index, batch_output *out)
{
    kiln_value_info info;
    KILN_TRY(kiln_model_output_info(job->model, index, &info));
    out->index = index;
    out->name = info.name;
    out->dtype = info.dtype;
    if (info.kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_UNSUPPORTED,
                         "output '%s' is a %s, not a tensor, which kiln batch cannot write; leave it out with "
                         "--outputs (a classifier's ZipMap'd probabilities: convert it without ZipMap)",
                         info.name, info.kind == KILN_VALUE_SEQUENCE ? "sequence" : "non-tensor value");
    if (kiln_dtype_size(info.dtype) == 0 || info.dtype == KILN_STRING || info.dtype == KILN_COMPLEX64 ||
        info.dtype == KILN_COMPLEX128)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is %s, which kiln batch cannot write; leave it out with --outputs",
                         info.name, kiln_dtype_name(info.dtype));
    if (info.rank == 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is a scalar, not one value per row; leave it out with --outputs",
                         info.name);
    out->columns = info.rank > 0 ? 1 : -1;
    for (int d = 1; d < info.rank && out->columns > 0; d++) out->columns = info.dims[d] >= 0 ? out->columns * info.dims[d] : -1;
    return KILN_OK;
}

static kiln_status describe_outputs(batch_job *job)
{
    const batch_options *o = job->opt;
    int n = o->n_outputs ? o->n_outputs : kiln_model_output_count(job->model);
    job->outputs = mem_calloc((size_t)(n ? n : 1), sizeof *job->outputs);
    if (!job->outputs) return KILN_ERR_OUT_OF_MEMORY;
    if (n > 64) return kiln_fail(KILN_ERR_UNSUPPORTED, "the model has %d outputs; choose at most 64 with --outputs", n);
    job->n_outputs = n;
    for (int k = 0; k < n; k++) {
        int index = k;
        if (o->n_outputs) {
            index = kiln_model_output_index(job->model, o->outputs[k]);
            if (index < 0) {
                char names[1024] = "";
                for (int i = 0; i < kiln_model_output_count(job->model); i++) {
                    kiln_value_info info;
                    kiln_model_output_info(job->model, i, &info);
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", info.name);
                }
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "--outputs: the model has no output '%s' (it has %s)",
                                 o->outputs[k], names);
            }
        }
        KILN_TRY(describe_output(job, index, &job->outputs[k]));
    }
    return KILN_OK;
}

static kiln_status describe_files(batch_job *job)
{
    const batch_options *o = job->opt;
    job->n_files = o->n_inputs;
    job->files = mem_calloc((size_t)o->n_inputs, sizeof *job->files);
    if (!job->files) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < o->n_inputs; i++) {
        batch_file *f = &job->files[i];
        f->path = o->inputs[i];
        f->format = o->input_format;
        if (strcmp(f->path, "-") == 0) {
            if (o->n_inputs > 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "standard input (-) must be the only input");
            continue;
        }
        struct stat st;
        if (stat(f->path, &st) != 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
        f->size = (uint64_t)st.st_size;
        f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        batch_source source; /* opened now to fail before any output exists, and to see the codec */
        KILN_TRY(source_open(f->path, &source));
        f->seekable = source.seekable;
        source_close(&source);
    }
    return KILN_OK;
}

static batch_format format_from_name(const char *path, char *delimiter)
{
    const char *dot = strrchr(path, '.');
    *delimiter = ',';
    if (!dot) return BATCH_AUTO;
    if (strcmp(dot, ".csv") == 0) return BATCH_CSV;
    if (strcmp(dot, ".tsv") == 0 || strcmp(dot, ".tab") == 0) return *delimiter = '\t', BATCH_CSV;
    if (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".json") == 0) return BATCH_JSONL;
    if (strcmp(dot, ".npy") == 0) return BATCH_NPY;
    return BATCH_AUTO;
}

static kiln_status choose_output_format(batch_job *job)
{
    const batch_options *o = job->opt;
    bool to_stdout = strcmp(o->output, "-") == 0;
    char delimiter;
    batch_format by_name = to_stdout ? BATCH_AUTO : format_from_name(o->output, &delimiter);
    job->output_format = o->output_format != BATCH_AUTO ? o->output_format : by_name != BATCH_AUTO ? by_name : BATCH_CSV;
    job->output_delimiter = o->output_delimiter ? o->output_delimiter : by_name == BATCH_CSV ? delimiter : ',';
    if (o->output_format == BATCH_AUTO && by_name == BATCH_AUTO && !to_stdout)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot tell the output format from '%s': name it .csv, .tsv, "
                         ".jsonl or .npy, or give --format", o->output);
    if (job->output_format == BATCH_NPY) {
        if (to_stdout) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy output needs a file: its header is written last");
        if (o->n_ids) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy output holds model outputs only; --id needs CSV or JSON Lines");
        if (o->shard_count > 1)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy files do not concatenate; shard into CSV or JSON Lines");
    }
    return KILN_OK;
}

kiln_status job_open(batch_job *job, const batch_options *o)
{
    memset(job, 0, sizeof *job);
    job->opt = o;
    KILN_TRY(platform_mutex_create(&job->lock));
    KILN_TRY(choose_output_format(job));
    kiln_status st = kiln_model_load(o->model_path, &job->model);
    if (st != KILN_OK) return st;
    st = describe_inputs(job);
    if (st == KILN_OK) st = describe_outputs(job);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", o->model_path);
    if (o->n_columns && job->n_inputs != 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "--columns feeds a model with one input; this one has %d, fed by name",
                         job->n_inputs);
    KILN_TRY(describe_files(job));
    return shard_plan(job);
}

void job_close(batch_job *job)
{
    for (int i = 0; i < job->n_files; i++) binding_free(&job->files[i].binding);
    mem_free(job->files);
    mem_free(job->inputs);
    mem_free(job->outputs);
    kiln_model_free(job->model);
    if (job->lock) platform_mutex_destroy(job->lock);
    memset(job, 0, sizeof *job);
}
