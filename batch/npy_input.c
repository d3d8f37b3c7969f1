/*
 * npy_input.c — .npy input: an array whose first dimension is rows and whose remaining dimensions are the
 * values of one row (a [N, F] matrix for a tabular model). The header is read with the engine's .npy reader
 * (formats/npy.c); the data is streamed like any other file, records being rows of fixed size, so a file of
 * any size is read in constant memory and byte-range shards fall on row boundaries by arithmetic. Values are
 * converted to the model input's type with the engine's casts (kernels/cast.c).
 */
#include <string.h>

#include "batch/batch.h"
#include "core/error.h"
#include "core/tensor.h"
#include "formats/npy.h"
#include "kernels/cast.h"

kiln_status npy_input_read_header(batch_job *job, batch_file *file, const uint8_t *head, size_t len,
                                  size_t *data_start)
{
    kiln_tensor t;
    kiln_status st = npy_parse_header(head, len, &t, data_start);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", file->path);
    if (t.rank < 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: a scalar .npy has no rows", file->path);
    if (job->n_inputs != 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: a .npy file feeds a model with one input; this model has %d",
                         file->path, job->n_inputs);
    if (job->opt->n_ids || job->opt->n_columns)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: a .npy file has no named columns for --id or --columns",
                         file->path);
    const batch_input *in = &job->inputs[0];
    int64_t features = shape_numel(t.rank - 1, t.dims + 1);
    if (features != in->features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s: rows of %lld values, the model's input '%s' takes %lld",
                         file->path, (long long)features, in->name, (long long)in->features);
    if (!cast_supported(t.dtype) || !cast_supported(in->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s values cannot feed the model's %s input", file->path,
                         kiln_dtype_name(t.dtype), kiln_dtype_name(in->dtype));
    file->npy_dtype = t.dtype;
    file->npy_features = features;
    file->npy_row_bytes = (size_t)features * kiln_dtype_size(t.dtype);
    uint64_t end = (uint64_t)*data_start + (uint64_t)t.dims[0] * file->npy_row_bytes;
    if (file->seg_end > end) file->seg_end = end;
    return KILN_OK;
}

kiln_status npy_input_parse_block(batch_job *job, batch_block *b)
{
    const batch_file *file = &job->files[b->file];
    cast_elements(b->raw.data, file->npy_dtype, b->input_data[0], job->inputs[0].dtype,
                  b->n_records * file->npy_features);
    return KILN_OK;
}
