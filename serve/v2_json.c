/*
 * v2_json.c — V2 inference requests in, responses and metadata out (see v2_json.h).
 *
 * A request is parsed with kiln's JSON reader into a document in the request's region, checked against the
 * model version (names, datatypes, shapes, batch size) and its tensors decoded into the model's element types.
 * Binary tensors (the binary tensor extension) follow the JSON in the body in the order their inputs are
 * listed, each `binary_data_size` bytes; they are bound in place unless misaligned for their type.
 */
#include "serve/v2_json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

static const struct {
    kiln_dtype dtype;
    const char *name;
} datatypes[] = {
    {KILN_BOOL, "BOOL"},     {KILN_UINT8, "UINT8"},     {KILN_UINT16, "UINT16"}, {KILN_UINT32, "UINT32"},
    {KILN_UINT64, "UINT64"}, {KILN_INT8, "INT8"},       {KILN_INT16, "INT16"},   {KILN_INT32, "INT32"},
    {KILN_INT64, "INT64"},   {KILN_FLOAT16, "FP16"},    {KILN_FLOAT32, "FP32"},  {KILN_FLOAT64, "FP64"},
    {KILN_STRING, "BYTES"},  {KILN_BFLOAT16, "BF16"},
};
#define N_DATATYPES (sizeof datatypes / sizeof datatypes[0])

const char *v2_datatype_name(kiln_dtype dtype)
{
    for (size_t i = 0; i < N_DATATYPES; i++)
        if (datatypes[i].dtype == dtype) return datatypes[i].name;
    return NULL;
}

static bool datatype_parse(const json_value *v, kiln_dtype *out)
{
    for (size_t i = 0; i < N_DATATYPES; i++)
        if (json_string_is(v, datatypes[i].name)) {
            *out = datatypes[i].dtype;
            return true;
        }
    return false;
}

bool v2_fail(char *error, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(error, size, fmt, args);
    va_end(args);
    return false;
}

static void format_dims(char *buf, size_t size, int rank, const int64_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? "," : "", (long long)dims[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* ---- tensor data --------------------------------------------------------------------------------------- */

typedef struct decoder {
    const kiln_tensor *t;
    region *strings; /* BYTES elements are copied here, NUL-terminated */
    unsigned char *out;
    size_t element_size;
    int64_t count, next; /* elements expected, elements seen */
    const char *what;
    char *error;
    size_t error_size;
} decoder;

/* "the number 300", "a string": what a bad element was, for messages. */
static void describe_value(const json_value *v, char *buf, size_t size)
{
    if (v->type == JSON_NUMBER && v->encoding == JSON_ENC_TEXT)
        snprintf(buf, size, "%.*s", (int)(v->length < 40 ? v->length : 40), (const char *)v->data);
    else snprintf(buf, size, "%s", json_type_name((json_type)v->type));
}

static bool bad_element(decoder *dec, const json_value *v, const char *expected)
{
    char found[64];
    describe_value(v, found, sizeof found);
    return v2_fail(dec->error, dec->error_size, "%s: element %lld: expected %s, found %s", dec->what,
                (long long)dec->next, expected, found);
}

/* Unsigned 64-bit integers beyond INT64_MAX, written as plain digits. */
static bool text_to_uint64(const json_value *v, uint64_t *out)
{
    if (v->type != JSON_NUMBER || v->encoding != JSON_ENC_TEXT || v->length == 0 || v->length > 20) return false;
    const char *text = v->data;
    uint64_t value = 0;
    for (size_t i = 0; i < v->length; i++) {
        if (text[i] < '0' || text[i] > '9') return false;
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10) return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

static bool integer_range(kiln_dtype dtype, int64_t *min, int64_t *max)
{
    switch (dtype) {
    case KILN_INT8: *min = INT8_MIN, *max = INT8_MAX; return true;
    case KILN_INT16: *min = INT16_MIN, *max = INT16_MAX; return true;
    case KILN_INT32: *min = INT32_MIN, *max = INT32_MAX; return true;
    case KILN_INT64: *min = INT64_MIN, *max = INT64_MAX; return true;
    case KILN_UINT8: *min = 0, *max = UINT8_MAX; return true;
    case KILN_UINT16: *min = 0, *max = UINT16_MAX; return true;
    case KILN_UINT32: *min = 0, *max = UINT32_MAX; return true;
    default: return false;
    }
}

static void store_integer(void *to, kiln_dtype dtype, int64_t v)
{
    switch (dtype) {
    case KILN_INT8: *(int8_t *)to = (int8_t)v; break;
    case KILN_INT16: *(int16_t *)to = (int16_t)v; break;
    case KILN_INT32: *(int32_t *)to = (int32_t)v; break;
    case KILN_INT64: *(int64_t *)to = v; break;
    case KILN_UINT8: *(uint8_t *)to = (uint8_t)v; break;
    case KILN_UINT16: *(uint16_t *)to = (uint16_t)v; break;
    case KILN_UINT32: *(uint32_t *)to = (uint32_t)v; break;
    default: break;
    }
}

static bool decode_number(decoder *dec, const json_value *v, void *to)
{
    kiln_dtype dtype = dec->t->dtype;
    float f;
    switch (dtype) {
    case KILN_FLOAT32: return json_to_float(v, to) == KILN_OK || bad_element(dec, v, "a number");
    case KILN_FLOAT64: return json_to_double(v, to) == KILN_OK || bad_element(dec, v, "a number");
    case KILN_FLOAT16:
    case KILN_BFLOAT16:
        if (json_to_float(v, &f) != KILN_OK) return bad_element(dec, v, "a number");
        *(uint16_t *)to = dtype == KILN_FLOAT16 ? dtype_float_to_half(f) : dtype_float_to_bfloat16(f);
        return true;
    case KILN_BOOL:
        if (v->type != JSON_TRUE && v->type != JSON_FALSE) return bad_element(dec, v, "true or false");
        *(uint8_t *)to = v->type == JSON_TRUE;
        return true;
    case KILN_STRING: {
        if (v->type != JSON_STRING) return bad_element(dec, v, "a string");
        char *copy = region_strndup(dec->strings, v->data, v->length);
        if (!copy) return v2_fail(dec->error, dec->error_size, "out of memory");
        *(const char **)to = copy;
        return true;
    }
    case KILN_UINT64: {
        int64_t i;
        if (json_to_int64(v, &i) == KILN_OK && i >= 0) *(uint64_t *)to = (uint64_t)i;
        else if (!text_to_uint64(v, to)) return bad_element(dec, v, "an integer within UINT64's range");
        return true;
    }
    default: break;
    }
    int64_t i, min, max;
    if (!integer_range(dtype, &min, &max)) return bad_element(dec, v, "a supported datatype");
    if (json_to_int64(v, &i) != KILN_OK || i < min || i > max) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer within %s's range", v2_datatype_name(dtype));
        return bad_element(dec, v, expected);
    }
    store_integer(to, dtype, i);
    return true;
}

static bool decode_scalar(decoder *dec, const json_value *v)
{
    if (dec->next >= dec->count) {
        dec->next++;
        return true; /* counted, so the message can say how many there were */
    }
    if (!decode_number(dec, v, dec->out + (size_t)dec->next * dec->element_size)) return false;
    dec->next++;
    return true;
}

/* Arrays nested exactly as the shape: at depth d an array of dims[d] elements, scalars at depth rank. */
static bool decode_nested(decoder *dec, const json_value *v, int depth)
{
    const kiln_tensor *t = dec->t;
    if (depth == t->rank) {
        if (v->type == JSON_ARRAY)
            return v2_fail(dec->error, dec->error_size, "%s: 'data' is nested deeper than the shape's %d dims",
                        dec->what, t->rank);
        return decode_scalar(dec, v);
    }
    if (v->type != JSON_ARRAY || (int64_t)v->length != t->dims[depth]) {
        char shape[160];
        format_dims(shape, sizeof shape, t->rank, t->dims);
        return v2_fail(dec->error, dec->error_size,
                    "%s: nested 'data' does not follow shape %s (at depth %d: %s where %lld elements were expected)",
                    dec->what, shape, depth, v->type == JSON_ARRAY ? "an array of another length" : "a scalar",
                    (long long)t->dims[depth]);
    }
    for (size_t i = 0; i < v->length; i++) {
        json_value element;
        json_array_at(v, i, &element);
        if (!decode_nested(dec, &element, depth + 1)) return false;
    }
    return true;
}

static bool decode_flat(decoder *dec, const json_value *data)
{
    for (size_t i = 0; i < data->length; i++) {
        json_value element;
        json_array_at(data, i, &element);
        if (element.type == JSON_ARRAY)
            return v2_fail(dec->error, dec->error_size,
                        "%s: 'data' mixes arrays and values (give it flat, or nested exactly as the shape)",
                        dec->what);
        if (!decode_scalar(dec, &element)) return false;
    }
    return true;
}

bool v2_decode_data(const json_value *data, const kiln_tensor *t, void *out, region *strings, const char *what,
                    char *error, size_t error_size)
{
    decoder dec = {.t = t, .strings = strings, .out = out, .element_size = kiln_dtype_size(t->dtype), .count = tensor_numel(t),
                   .what = what, .error = error, .error_size = error_size};
    if (data->type != JSON_ARRAY)
        return v2_fail(error, error_size, "%s: 'data' must be an array, not %s", what,
                    json_type_name((json_type)data->type));
    json_value first = {0};
    if (data->length) json_array_at(data, 0, &first);
    bool nested = data->length && first.type == JSON_ARRAY && t->rank > 1;
    if (!(nested ? decode_nested(&dec, data, 0) : decode_flat(&dec, data))) return false;
    if (dec.next != dec.count) {
        char shape[160];
        format_dims(shape, sizeof shape, t->rank, t->dims);
        return v2_fail(error, error_size, "%s: 'data' holds %lld values but shape %s needs %lld", what,
                    (long long)dec.next, shape, (long long)dec.count);
    }
    return true;
}

/* ---- requests ------------------------------------------------------------------------------------------ */

typedef struct parse_state {
    const model_version *v;
    infer_request *req;
    const uint8_t *body;
    size_t length, binary_offset;
    bool *seen;
    char *error;
    size_t error_size;
} parse_state;

static bool list_names(const served_tensor *t, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s'%s'", i ? ", " : "", t[i].name);
    return true;
}

static bool check_shape(parse_state *ps, const served_tensor *want, const kiln_tensor *got, const char *what)
{
    bool ok = want->rank < 0 || want->rank == got->rank;
    for (int d = 0; ok && d < got->rank; d++) ok = want->dims[d] < 0 || want->dims[d] == got->dims[d];
    if (ok) return true;
    char have[160], expected[160];
    format_dims(have, sizeof have, got->rank, got->dims);
    format_dims(expected, sizeof expected, want->rank, want->dims);
    return v2_fail(ps->error, ps->error_size, "%s: shape %s does not match the model's %s (-1: any size)", what, have,
                expected);
}

static bool read_shape(parse_state *ps, const json_value *shape, kiln_tensor *t, const char *what)
{
    if (!shape || shape->type != JSON_ARRAY)
        return v2_fail(ps->error, ps->error_size, "%s: 'shape' must be an array of dims", what);
    if (shape->length > KILN_MAX_RANK)
        return v2_fail(ps->error, ps->error_size, "%s: 'shape' has %zu dims; kiln handles at most %d", what,
                    shape->length, KILN_MAX_RANK);
    t->rank = (int)shape->length;
    for (size_t d = 0; d < shape->length; d++) {
        json_value dim;
        json_array_at(shape, d, &dim);
        if (json_to_int64(&dim, &t->dims[d]) != KILN_OK || t->dims[d] < 0)
            return v2_fail(ps->error, ps->error_size, "%s: 'shape' must hold non-negative integers", what);
    }
    int64_t numel;
    if (shape_numel_checked(t->rank, t->dims, &numel) != KILN_OK)
        return v2_fail(ps->error, ps->error_size, "%s: 'shape' describes too many elements", what);
    return true;
}

static bool binary_size(parse_state *ps, const json_value *params, int64_t *size, const char *what)
{
    const json_value *p = json_get(params, "binary_data_size");
    *size = -1;
    if (!p) return true;
    if (json_to_int64(p, size) != KILN_OK || *size < 0)
        return v2_fail(ps->error, ps->error_size, "%s: 'binary_data_size' must be a non-negative integer", what);
    return true;
}

/* BYTES in binary: each element is a 4-byte little-endian length and that many bytes; copied NUL-terminated
 * into the request's region, with the tensor's array of pointers. */
static bool bind_binary_strings(parse_state *ps, kiln_tensor *t, int64_t size, const char *what)
{
    if ((uint64_t)size > ps->length - ps->binary_offset)
        return v2_fail(ps->error, ps->error_size, "%s: the body ends before its %lld bytes of binary data", what,
                    (long long)size);
    const uint8_t *at = ps->body + ps->binary_offset, *end = at + size;
    ps->binary_offset += (size_t)size;
    int64_t n = tensor_numel(t);
    const char **elements = region_alloc(&ps->req->mem, n ? (size_t)n : 1, sizeof *elements);
    if (!elements) return v2_fail(ps->error, ps->error_size, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (end - at < 4)
            return v2_fail(ps->error, ps->error_size, "%s: binary data ends at element %lld of %lld", what, (long long)i,
                        (long long)n);
        uint32_t length = (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
        at += 4;
        if ((uint64_t)(end - at) < length)
            return v2_fail(ps->error, ps->error_size, "%s: element %lld's %u bytes run past 'binary_data_size'", what,
                        (long long)i, length);
        elements[i] = region_strndup(&ps->req->mem, (const char *)at, length);
        if (!elements[i]) return v2_fail(ps->error, ps->error_size, "out of memory");
        at += length;
    }
    if (at != end)
        return v2_fail(ps->error, ps->error_size, "%s: 'binary_data_size' is %lld but the %lld elements take %lld bytes",
                    what, (long long)size, (long long)n, (long long)(size - (end - at)));
    t->data = (void *)elements;
    return true;
}

/* Binds the input's bytes that follow the JSON, in place when aligned for the dtype. */
static bool bind_binary(parse_state *ps, kiln_tensor *t, int64_t size, const char *what)
{
    if (t->dtype == KILN_STRING) return bind_binary_strings(ps, t, size, what);
    size_t expected = tensor_bytes(t);
    if ((uint64_t)size != expected)
        return v2_fail(ps->error, ps->error_size, "%s: 'binary_data_size' is %lld but shape and datatype need %zu bytes",
                    what, (long long)size, expected);
    if (ps->length - ps->binary_offset < expected)
        return v2_fail(ps->error, ps->error_size, "%s: the body ends before its %zu bytes of binary data", what,
                    expected);
    const uint8_t *at = ps->body + ps->binary_offset;
    ps->binary_offset += expected;
    size_t align = kiln_dtype_size(t->dtype);
    if (align > 1 && (uintptr_t)at % align != 0) {
        void *copy = region_alloc(&ps->req->mem, expected ? expected : 1, 1);
        if (!copy) return v2_fail(ps->error, ps->error_size, "out of memory");
        memcpy(copy, at, expected);
        at = copy;
    }
    t->data = (void *)at;
    return true;
}

static bool read_datatype(parse_state *ps, const json_value *datatype, const served_tensor *want, const char *what)
{
    kiln_dtype dtype;
    if (!datatype || datatype->type != JSON_STRING)
        return v2_fail(ps->error, ps->error_size, "%s: 'datatype' must be a string such as \"FP32\"", what);
    if (!datatype_parse(datatype, &dtype))
        return v2_fail(ps->error, ps->error_size,
                    "%s: unknown datatype \"%.*s\" (BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES)", what,
                    (int)(datatype->length < 32 ? datatype->length : 32), (const char *)datatype->data);
    if (dtype != want->dtype)
        return v2_fail(ps->error, ps->error_size, "%s: datatype %s does not match the model's %s", what,
                    v2_datatype_name(dtype), v2_datatype_name(want->dtype));
    return true;
}

static bool read_input(parse_state *ps, const json_value *in)
{
    const model_version *v = ps->v;
    if (in->type != JSON_OBJECT) return v2_fail(ps->error, ps->error_size, "each of 'inputs' must be an object");
    const json_value *name = json_get(in, "name");
    if (!name || name->type != JSON_STRING) return v2_fail(ps->error, ps->error_size, "an input has no 'name' string");
    int index = model_version_input_index(v, name->data, name->length);
    if (index < 0) {
        char names[256];
        list_names(v->inputs, v->n_inputs, names, sizeof names);
        return v2_fail(ps->error, ps->error_size, "model '%s' has no input '%.*s' (its inputs: %s)", v->model_name,
                    (int)(name->length < 64 ? name->length : 64), (const char *)name->data, names);
    }
    const served_tensor *want = &v->inputs[index];
    char what[160];
    snprintf(what, sizeof what, "input '%s'", want->name);
    if (ps->seen[index]) return v2_fail(ps->error, ps->error_size, "%s is given twice", what);
    ps->seen[index] = true;
    kiln_tensor *t = &ps->req->inputs[index];
    if (!read_datatype(ps, json_get(in, "datatype"), want, what)) return false;
    t->dtype = want->dtype;
    if (!read_shape(ps, json_get(in, "shape"), t, what) || !check_shape(ps, want, t, what)) return false;
    int64_t size;
    if (!binary_size(ps, json_get(in, "parameters"), &size, what)) return false;
    const json_value *data = json_get(in, "data");
    if (size >= 0) {
        if (data) return v2_fail(ps->error, ps->error_size, "%s: has both 'data' and 'binary_data_size'", what);
        return bind_binary(ps, t, size, what);
    }
    if (!data) return v2_fail(ps->error, ps->error_size, "%s: has no 'data' (nor 'binary_data_size')", what);
    size_t bytes = tensor_bytes(t);
    t->data = region_alloc(&ps->req->mem, bytes ? bytes : 1, 1);
    if (!t->data) return v2_fail(ps->error, ps->error_size, "out of memory");
    return v2_decode_data(data, t, t->data, &ps->req->mem, what, ps->error, ps->error_size);
}

static bool read_inputs(parse_state *ps, const json_value *inputs)
{
    const model_version *v = ps->v;
    if (!inputs || inputs->type != JSON_ARRAY)
        return v2_fail(ps->error, ps->error_size, "the request has no 'inputs' array");
    for (size_t i = 0; i < inputs->length; i++) {
        json_value in;
        json_array_at(inputs, i, &in);
        if (!read_input(ps, &in)) return false;
    }
    for (int i = 0; i < v->n_inputs; i++)
        if (!ps->seen[i])
            return v2_fail(ps->error, ps->error_size, "model '%s' needs input '%s', which the request lacks",
                        v->model_name, v->inputs[i].name);
    if (ps->binary_offset != ps->length)
        return v2_fail(ps->error, ps->error_size, "the body has %zu bytes after the JSON that no input claims",
                    ps->length - ps->binary_offset);
    return true;
}

/* The batch size: dim 0, the same for every input, from 1 to max_batch_size. */
static bool read_rows(parse_state *ps)
{
    const model_version *v = ps->v;
    infer_request *req = ps->req;
    req->rows = 1;
    if (v->max_batch_size == 0) return true;
    req->rows = req->inputs[0].dims[0];
    for (int i = 1; i < v->n_inputs; i++)
        if (req->inputs[i].dims[0] != req->rows)
            return v2_fail(ps->error, ps->error_size, "inputs '%s' and '%s' disagree on the batch size (%lld and %lld)",
                        v->inputs[0].name, v->inputs[i].name, (long long)req->rows, (long long)req->inputs[i].dims[0]);
    if (req->rows < 1 || req->rows > v->max_batch_size)
        return v2_fail(ps->error, ps->error_size, "the batch size is %lld; model '%s' takes 1 to %d", (long long)req->rows,
                    v->model_name, v->max_batch_size);
    return true;
}

static bool read_bool_parameter(parse_state *ps, const json_value *params, const char *key, bool *out)
{
    const json_value *p = json_get(params, key);
    if (!p) return true;
    if (p->type != JSON_TRUE && p->type != JSON_FALSE)
        return v2_fail(ps->error, ps->error_size, "parameter '%s' must be true or false", key);
    *out = p->type == JSON_TRUE;
    return true;
}

static bool read_outputs(parse_state *ps, const json_value *outputs, bool binary_default)
{
    const model_version *v = ps->v;
    infer_request *req = ps->req;
    size_t n = outputs ? outputs->length : (size_t)v->n_outputs;
    if (outputs && outputs->type != JSON_ARRAY)
        return v2_fail(ps->error, ps->error_size, "'outputs' must be an array of {\"name\": ...}");
    req->outputs = region_alloc(&req->mem, n + 1, sizeof *req->outputs);
    req->binary = region_alloc(&req->mem, n + 1, sizeof *req->binary);
    if (!req->outputs || !req->binary) return v2_fail(ps->error, ps->error_size, "out of memory");
    for (size_t i = 0; i < n; i++) {
        req->binary[i] = binary_default;
        if (!outputs) {
            req->outputs[i] = (int)i;
            continue;
        }
        json_value out;
        json_array_at(outputs, i, &out);
        const json_value *name = json_get(&out, "name");
        if (!name || name->type != JSON_STRING)
            return v2_fail(ps->error, ps->error_size, "each of 'outputs' must be an object with a 'name' string");
        int index = model_version_output_index(v, name->data, name->length);
        if (index < 0) {
            char names[256];
            list_names(v->outputs, v->n_outputs, names, sizeof names);
            return v2_fail(ps->error, ps->error_size, "model '%s' has no output '%.*s' (its outputs: %s)",
                        v->model_name, (int)(name->length < 64 ? name->length : 64), (const char *)name->data,
                        names);
        }
        for (size_t k = 0; k < i; k++)
            if (req->outputs[k] == index)
                return v2_fail(ps->error, ps->error_size, "output '%s' is requested twice", v->outputs[index].name);
        req->outputs[i] = index;
        if (!read_bool_parameter(ps, json_get(&out, "parameters"), "binary_data", &req->binary[i])) return false;
    }
    req->n_outputs = (int)n;
    return true;
}

static bool parse_document(parse_state *ps, const json_value *root)
{
    infer_request *req = ps->req;
    if (root->type != JSON_OBJECT) return v2_fail(ps->error, ps->error_size, "the request must be a JSON object");
    const json_value *id = json_get(root, "id");
    if (id) {
        if (id->type != JSON_STRING) return v2_fail(ps->error, ps->error_size, "'id' must be a string");
        req->id = id->data;
        req->id_length = id->length;
    }
    const json_value *params = json_get(root, "parameters");
    if (params && params->type != JSON_OBJECT)
        return v2_fail(ps->error, ps->error_size, "'parameters' must be an object");
    bool binary_output = false;
    if (!read_bool_parameter(ps, params, "binary_data_output", &binary_output)) return false;
    req->inputs = region_alloc(&req->mem, (size_t)ps->v->n_inputs + 1, sizeof *req->inputs);
    ps->seen = region_alloc(&req->mem, (size_t)ps->v->n_inputs + 1, sizeof *ps->seen);
    if (!req->inputs || !ps->seen) return v2_fail(ps->error, ps->error_size, "out of memory");
    return read_inputs(ps, json_get(root, "inputs")) && read_rows(ps) &&
           read_outputs(ps, json_get(root, "outputs"), binary_output);
}

bool v2_parse_infer_request(const model_version *v, const uint8_t *body, size_t length, size_t json_length,
                            infer_request *req, char *error, size_t error_size)
{
    memset(req, 0, sizeof *req);
    region_init(&req->mem);
    parse_state ps = {.v = v, .req = req, .body = body, .length = length, .binary_offset = json_length,
                      .error = error, .error_size = error_size};
    json_value root;
    if (json_parse(body, json_length, &req->mem, &root) != KILN_OK)
        return v2_fail(error, error_size, "the request is not valid JSON: %s", kiln_last_error());
    return parse_document(&ps, &root);
}

void infer_request_free(infer_request *req) { region_free(&req->mem); }

/* ---- responses ----------------------------------------------------------------------------------------- */

/* The i-th string of a BYTES tensor ("" for a missing one). */
static const char *string_at(const kiln_tensor *t, int64_t i)
{
    const char *s = ((const char *const *)t->data)[i];
    return s ? s : "";
}

void v2_write_element(json_writer *out, const kiln_tensor *t, int64_t i)
{
    const void *p = (const char *)t->data + (size_t)i * kiln_dtype_size(t->dtype);
    switch (t->dtype) {
    case KILN_FLOAT32: jw_float32(out, *(const float *)p); return;
    case KILN_FLOAT64: jw_float64(out, *(const double *)p); return;
    case KILN_FLOAT16: jw_float32(out, dtype_half_to_float(*(const uint16_t *)p)); return;
    case KILN_BFLOAT16: jw_float32(out, dtype_bfloat16_to_float(*(const uint16_t *)p)); return;
    case KILN_BOOL: jw_bool(out, *(const uint8_t *)p != 0); return;
    case KILN_STRING: jw_string(out, string_at(t, i)); return;
    case KILN_UINT64: jw_uint(out, *(const uint64_t *)p); return;
    default: jw_int(out, tensor_get_int(t, i)); return;
    }
}

static void write_dims(json_writer *out, int rank, const int64_t *dims)
{
    jw_array_begin(out);
    if (rank < 0) jw_int(out, -1);
    for (int d = 0; d < rank; d++) jw_int(out, dims[d]);
    jw_array_end(out);
}

/* Bytes of t in the binary extension: its data, or for BYTES a 4-byte length before each element. */
static size_t binary_bytes(const kiln_tensor *t)
{
    if (t->dtype != KILN_STRING) return tensor_bytes(t);
    size_t total = 0;
    for (int64_t i = 0, n = tensor_numel(t); i < n; i++) total += 4 + strlen(string_at(t, i));
    return total;
}

static void write_binary(json_writer *out, const kiln_tensor *t)
{
    if (t->dtype != KILN_STRING) {
        jw_raw(out, t->data, tensor_bytes(t));
        return;
    }
    for (int64_t i = 0, n = tensor_numel(t); i < n; i++) {
        const char *s = string_at(t, i);
        uint32_t length = (uint32_t)strlen(s);
        const uint8_t prefix[4] = {(uint8_t)length, (uint8_t)(length >> 8), (uint8_t)(length >> 16),
                                   (uint8_t)(length >> 24)};
        jw_raw(out, prefix, 4);
        jw_raw(out, s, length);
    }
}

static void write_output(json_writer *out, const served_tensor *info, const kiln_tensor *t, bool binary)
{
    jw_object_begin(out);
    jw_key(out, "name");
    jw_string(out, info->name);
    jw_key(out, "datatype");
    jw_string(out, v2_datatype_name(t->dtype));
    jw_key(out, "shape");
    write_dims(out, t->rank, t->dims);
    if (binary) {
        jw_key(out, "parameters");
        jw_object_begin(out);
        jw_key(out, "binary_data_size");
        jw_uint(out, binary_bytes(t));
        jw_object_end(out);
    } else {
        jw_key(out, "data");
        jw_array_begin(out);
        int64_t n = tensor_numel(t);
        for (int64_t i = 0; i < n; i++) v2_write_element(out, t, i);
        jw_array_end(out);
    }
    jw_object_end(out);
}

void v2_write_infer_response(const model_version *v, const infer_request *req, const kiln_tensor *outputs,
                             json_writer *out, size_t *json_length)
{
    jw_object_begin(out);
    jw_key(out, "model_name");
    jw_string(out, v->model_name);
    jw_key(out, "model_version");
    jw_string(out, v->version_text);
    if (req->id) {
        jw_key(out, "id");
        jw_string_n(out, req->id, req->id_length);
    }
    jw_key(out, "outputs");
    jw_array_begin(out);
    bool any_binary = false;
    for (int i = 0; i < req->n_outputs; i++) {
        write_output(out, &v->outputs[req->outputs[i]], &outputs[req->outputs[i]], req->binary[i]);
        any_binary = any_binary || req->binary[i];
    }
    jw_array_end(out);
    jw_object_end(out);
    *json_length = any_binary ? out->length : 0;
    for (int i = 0; i < req->n_outputs; i++)
        if (req->binary[i]) write_binary(out, &outputs[req->outputs[i]]);
}

static void write_tensor_metadata(json_writer *out, const served_tensor *t, int n)
{
    jw_array_begin(out);
    for (int i = 0; i < n; i++) {
        jw_object_begin(out);
        jw_key(out, "name");
        jw_string(out, t[i].name);
        jw_key(out, "datatype");
        jw_string(out, v2_datatype_name(t[i].dtype));
        jw_key(out, "shape");
        write_dims(out, t[i].rank, t[i].dims);
        jw_object_end(out);
    }
    jw_array_end(out);
}

void v2_write_model_metadata(const model_version *v, const int64_t *versions, int n_versions, json_writer *out)
{
    jw_object_begin(out);
    jw_key(out, "name");
    jw_string(out, v->model_name);
    jw_key(out, "versions");
    jw_array_begin(out);
    for (int i = 0; i < n_versions; i++) {
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)versions[i]);
        jw_string(out, text);
    }
    jw_array_end(out);
    jw_key(out, "platform");
    jw_string(out, v->platform);
    jw_key(out, "inputs");
    write_tensor_metadata(out, v->inputs, v->n_inputs);
    jw_key(out, "outputs");
    write_tensor_metadata(out, v->outputs, v->n_outputs);
    jw_key(out, "parameters");
    jw_object_begin(out);
    jw_key(out, "max_batch_size");
    jw_int(out, v->max_batch_size);
    jw_object_end(out);
    jw_object_end(out);
}

void v2_write_server_metadata(json_writer *out)
{
    static const char *const extensions[] = {"binary_tensor_data", "model_repository", "statistics"};
    jw_object_begin(out);
    jw_key(out, "name");
    jw_string(out, "kiln");
    jw_key(out, "version");
    jw_string(out, kiln_version());
    jw_key(out, "extensions");
    jw_array_begin(out);
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++) jw_string(out, extensions[i]);
    jw_array_end(out);
    jw_object_end(out);
}

void v2_write_error(json_writer *out, const char *message)
{
    jw_object_begin(out);
    jw_key(out, "error");
    jw_string(out, message);
    jw_object_end(out);
}
