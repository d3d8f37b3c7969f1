/*
 * tfserving.c — TF-Serving's :predict requests and responses (see tfserving.h).
 *
 * A tensor's shape is read off its JSON: the length of each array along the first elements (row format adds
 * the number of instances in front). The data is then decoded by the V2 decoder, which checks that the
 * nesting follows that shape everywhere, so ragged arrays are refused rather than misread.
 */
#include "serve/tfserving.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct tfs_state {
    const model_version *v;
    infer_request *req;
    char *error;
    size_t error_size;
} tfs_state;

/* Appends the dims of a JSON value's nesting (following first elements) to dims[*rank..]. */
static bool nesting_dims(tfs_state *ts, const json_value *value, int *rank, int64_t *dims, const char *what)
{
    json_value v = *value;
    while (v.type == JSON_ARRAY) {
        if (*rank == KILN_MAX_RANK)
            return v2_fail(ts->error, ts->error_size, "%s: nested deeper than %d dims", what, KILN_MAX_RANK);
        dims[(*rank)++] = (int64_t)v.length;
        if (v.length == 0) break;
        json_value first;
        json_array_at(&v, 0, &first);
        v = first;
    }
    return true;
}

/* Checks the shape against the model and allocates the tensor's data. */
static bool prepare_input(tfs_state *ts, int index, kiln_tensor *t, const char *what)
{
    const served_tensor *want = &ts->v->inputs[index];
    t->dtype = want->dtype;
    bool ok = want->rank < 0 || want->rank == t->rank;
    for (int d = 0; ok && d < t->rank; d++) ok = want->dims[d] < 0 || want->dims[d] == t->dims[d];
    int64_t numel;
    if (!ok || shape_numel_checked(t->rank, t->dims, &numel) != KILN_OK) {
        char have[160], expected[160];
        shape_format(have, sizeof have, t->rank, t->dims);
        shape_format(expected, sizeof expected, want->rank, want->dims);
        return v2_fail(ts->error, ts->error_size, "%s: the values have shape %s; the model wants %s (?: any size)", what,
                    have, expected);
    }
    size_t bytes = tensor_bytes(t);
    t->data = region_alloc(&ts->req->mem, bytes ? bytes : 1, 1);
    return t->data || v2_fail(ts->error, ts->error_size, "out of memory");
}

/* A one-element array holding `value`, so a scalar can go through the array decoder. */
static json_value wrap(const json_value *value)
{
    return (json_value){.type = JSON_ARRAY, .encoding = JSON_ENC_NONE, .length = 1, .data = value};
}

static const json_value *member(tfs_state *ts, const json_value *object, const char *name, const char *what)
{
    const json_value *v = object->type == JSON_OBJECT ? json_get(object, name) : NULL;
    if (!v) v2_fail(ts->error, ts->error_size, "%s has no value for input '%s'", what, name);
    return v;
}

/* Columnar: the whole tensor of input `index` is `value`. */
static bool read_column(tfs_state *ts, int index, const json_value *value)
{
    char what[160];
    snprintf(what, sizeof what, "input '%s'", ts->v->inputs[index].name);
    kiln_tensor *t = &ts->req->inputs[index];
    t->rank = 0;
    if (!nesting_dims(ts, value, &t->rank, t->dims, what) || !prepare_input(ts, index, t, what)) return false;
    json_value scalar = wrap(value);
    return v2_decode_data(value->type == JSON_ARRAY ? value : &scalar, t, t->data, &ts->req->mem, what, ts->error,
                          ts->error_size);
}

/* Row format: row k of input `index` is instances[k] (or instances[k][name] when `named`). */
static bool read_rows(tfs_state *ts, int index, const json_value *instances, bool named)
{
    const served_tensor *info = &ts->v->inputs[index];
    char what[160];
    snprintf(what, sizeof what, "input '%s'", info->name);
    kiln_tensor *t = &ts->req->inputs[index];
    t->rank = 1;
    t->dims[0] = (int64_t)instances->length;
    json_value first;
    json_array_at(instances, 0, &first);
    const json_value *row0 = named ? member(ts, &first, info->name, "instance 0") : &first;
    if (!row0 || !nesting_dims(ts, row0, &t->rank, t->dims, what) || !prepare_input(ts, index, t, what)) return false;
    kiln_tensor row = *t;
    row.rank = t->rank - 1;
    memmove(row.dims, t->dims + 1, (size_t)row.rank * sizeof *row.dims);
    size_t row_bytes = tensor_bytes(&row);
    for (size_t k = 0; k < instances->length; k++) {
        json_value instance;
        json_array_at(instances, k, &instance);
        char row_what[200];
        snprintf(row_what, sizeof row_what, "instance %zu, %s", k, what);
        const json_value *value = named ? member(ts, &instance, info->name, row_what) : &instance;
        if (!value) return false;
        json_value scalar = wrap(value);
        if (!v2_decode_data(value->type == JSON_ARRAY ? value : &scalar, &row, (char *)t->data + k * row_bytes,
                            &ts->req->mem, row_what, ts->error, ts->error_size))
            return false;
    }
    return true;
}

static bool read_instances(tfs_state *ts, const json_value *instances)
{
    if (instances->type != JSON_ARRAY || instances->length == 0)
        return v2_fail(ts->error, ts->error_size, "'instances' must be a non-empty array of rows");
    json_value first;
    json_array_at(instances, 0, &first);
    bool named = first.type == JSON_OBJECT;
    if (!named && ts->v->n_inputs != 1)
        return v2_fail(ts->error, ts->error_size,
                    "model '%s' has %d inputs: each instance must be an object {\"input name\": value, ...}",
                    ts->v->model_name, ts->v->n_inputs);
    for (int i = 0; i < ts->v->n_inputs; i++)
        if (!read_rows(ts, i, instances, named)) return false;
    return true;
}

static bool read_columns(tfs_state *ts, const json_value *inputs)
{
    if (ts->v->n_inputs == 1 && inputs->type != JSON_OBJECT) return read_column(ts, 0, inputs);
    if (inputs->type != JSON_OBJECT)
        return v2_fail(ts->error, ts->error_size, "model '%s' has %d inputs: 'inputs' must be an object by input name",
                    ts->v->model_name, ts->v->n_inputs);
    for (int i = 0; i < ts->v->n_inputs; i++) {
        const json_value *value = member(ts, inputs, ts->v->inputs[i].name, "'inputs'");
        if (!value || !read_column(ts, i, value)) return false;
    }
    return true;
}

/* The batch size, as the V2 path checks it. */
static bool check_rows(tfs_state *ts)
{
    const model_version *v = ts->v;
    infer_request *req = ts->req;
    req->rows = 1;
    if (v->max_batch_size == 0) return true;
    req->rows = req->inputs[0].dims[0];
    for (int i = 1; i < v->n_inputs; i++)
        if (req->inputs[i].dims[0] != req->rows)
            return v2_fail(ts->error, ts->error_size, "inputs disagree on the number of rows");
    if (req->rows < 1 || req->rows > v->max_batch_size)
        return v2_fail(ts->error, ts->error_size, "%lld rows; model '%s' takes 1 to %d", (long long)req->rows,
                    v->model_name, v->max_batch_size);
    return true;
}

bool tfs_parse_predict_request(const model_version *v, const uint8_t *body, size_t length, infer_request *req,
                               bool *columnar, char *error, size_t error_size)
{
    memset(req, 0, sizeof *req);
    region_init(&req->mem);
    tfs_state ts = {.v = v, .req = req, .error = error, .error_size = error_size};
    json_value root;
    if (json_parse(body, length, &req->mem, &root) != KILN_OK)
        return v2_fail(error, error_size, "the request is not valid JSON: %s", kiln_last_error());
    const json_value *instances = json_get(&root, "instances"), *inputs = json_get(&root, "inputs");
    if (root.type != JSON_OBJECT || (!instances == !inputs))
        return v2_fail(error, error_size, "the request must be an object with either 'instances' or 'inputs'");
    req->inputs = region_alloc(&req->mem, (size_t)v->n_inputs + 1, sizeof *req->inputs);
    req->outputs = region_alloc(&req->mem, (size_t)v->n_outputs + 1, sizeof *req->outputs);
    req->binary = region_alloc(&req->mem, (size_t)v->n_outputs + 1, sizeof *req->binary);
    if (!req->inputs || !req->outputs || !req->binary) return v2_fail(error, error_size, "out of memory");
    for (int k = 0; k < v->n_outputs; k++) req->outputs[k] = k;
    req->n_outputs = v->n_outputs;
    *columnar = inputs != NULL;
    bool ok = inputs ? read_columns(&ts, inputs) : read_instances(&ts, instances);
    return ok && check_rows(&ts);
}

/* The elements [offset, ...) of t from dim `depth` on, as nested arrays. */
static void write_nested(json_writer *out, const kiln_tensor *t, int depth, int64_t offset)
{
    if (depth == t->rank) {
        v2_write_element(out, t, offset);
        return;
    }
    int64_t stride = shape_span(t->dims, depth + 1, t->rank);
    jw_array_begin(out);
    for (int64_t i = 0; i < t->dims[depth]; i++) write_nested(out, t, depth + 1, offset + i * stride);
    jw_array_end(out);
}

static bool all_have_rows(const model_version *v, const kiln_tensor *outputs, int64_t rows)
{
    for (int k = 0; k < v->n_outputs; k++)
        if (outputs[k].rank < 1 || outputs[k].dims[0] != rows) return false;
    return true;
}

/* {"predictions": [{"out1": row, "out2": row}, ...]} for several outputs with a batch dim. */
static void write_named_rows(json_writer *out, const model_version *v, const kiln_tensor *outputs, int64_t rows)
{
    jw_array_begin(out);
    for (int64_t r = 0; r < rows; r++) {
        jw_object_begin(out);
        for (int k = 0; k < v->n_outputs; k++) {
            jw_key(out, v->outputs[k].name);
            write_nested(out, &outputs[k], 1, r * shape_span(outputs[k].dims, 1, outputs[k].rank));
        }
        jw_object_end(out);
    }
    jw_array_end(out);
}

void tfs_write_predict_response(const model_version *v, const infer_request *req, bool columnar,
                                const kiln_tensor *outputs, json_writer *out)
{
    (void)req;
    jw_object_begin(out);
    jw_key(out, columnar ? "outputs" : "predictions");
    if (v->n_outputs == 1) {
        write_nested(out, &outputs[0], 0, 0); /* row format: the list of rows is the tensor itself */
    } else if (!columnar && v->n_outputs > 0 && all_have_rows(v, outputs, outputs[0].dims[0])) {
        write_named_rows(out, v, outputs, outputs[0].dims[0]);
    } else {
        jw_object_begin(out);
        for (int k = 0; k < v->n_outputs; k++) {
            jw_key(out, v->outputs[k].name);
            write_nested(out, &outputs[k], 0, 0);
        }
        jw_object_end(out);
    }
    jw_object_end(out);
}
