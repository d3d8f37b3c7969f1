/*
 * testlib.c — the unit tests' shared helpers (see testlib.h): protobuf writing and model building, running
 * models through the public API, assertions, seeded random numbers.
 */
#include "testlib.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void pbw_raw(pbw *w, const void *p, size_t n)
{
    if (w->size + n > w->capacity) {
        size_t cap = w->capacity ? w->capacity : 64;
        while (cap < w->size + n) cap *= 2;
        w->data = realloc(w->data, cap);
        if (!w->data) abort();
        w->capacity = cap;
    }
    if (n) memcpy(w->data + w->size, p, n);
    w->size += n;
}

static void pbw_varint(pbw *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    pbw_raw(w, b, n);
}

void pbw_free(pbw *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}

void pbw_varint_field(pbw *w, int field, uint64_t v)
{
    pbw_varint(w, (uint64_t)field << 3);
    pbw_varint(w, v);
}

void pbw_bytes_field(pbw *w, int field, const void *p, size_t n)
{
    pbw_varint(w, (uint64_t)field << 3 | 2);
    pbw_varint(w, n);
    pbw_raw(w, p, n);
}

void pbw_string_field(pbw *w, int field, const char *s) { pbw_bytes_field(w, field, s, strlen(s)); }

void pbw_message_field(pbw *w, int field, const pbw *message) { pbw_bytes_field(w, field, message->data, message->size); }

void pbw_append(pbw *w, const pbw *other) { pbw_raw(w, other->data, other->size); }

void pbw_float_field(pbw *w, int field, float f)
{
    pbw_varint(w, (uint64_t)field << 3 | 5);
    pbw_raw(w, &f, 4);
}

void tm_init(test_model *m, int opset)
{
    memset(m, 0, sizeof *m);
    m->opset = opset;
}

static void value_info(pbw *out, int field, const char *name, kiln_dtype dtype, int rank, const int64_t *dims)
{
    pbw shape = {0}, tensor_type = {0}, type = {0}, vi = {0};
    for (int i = 0; i < rank; i++) {
        pbw dim = {0};
        if (dims[i] >= 0) pbw_varint_field(&dim, 1, (uint64_t)dims[i]);
        else {
            char param[16];
            snprintf(param, sizeof param, "N%d", i);
            pbw_string_field(&dim, 2, param);
        }
        pbw_message_field(&shape, 1, &dim);
        pbw_free(&dim);
    }
    pbw_varint_field(&tensor_type, 1, (uint64_t)dtype);
    if (rank >= 0) pbw_message_field(&tensor_type, 2, &shape);
    pbw_message_field(&type, 1, &tensor_type);
    pbw_string_field(&vi, 1, name);
    pbw_message_field(&vi, 2, &type);
    pbw_message_field(out, field, &vi);
    pbw_free(&shape);
    pbw_free(&tensor_type);
    pbw_free(&type);
    pbw_free(&vi);
}

void tm_input(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims)
{
    value_info(&m->graph, 11, name, dtype, rank, dims);
}

void tm_output(test_model *m, const char *name, kiln_dtype dtype) { value_info(&m->graph, 12, name, dtype, -1, NULL); }

void tm_output_shaped(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims)
{
    value_info(&m->graph, 12, name, dtype, rank, dims);
}

/* A TensorProto with raw data; `name` may be NULL (a tensor attribute has none). */
static void tensor_proto(pbw *t, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        pbw_varint_field(t, 1, (uint64_t)dims[i]);
        n *= dims[i];
    }
    pbw_varint_field(t, 2, (uint64_t)dtype);
    if (name) pbw_string_field(t, 8, name);
    pbw_bytes_field(t, 9, data, (size_t)n * kiln_dtype_size(dtype));
}

void tm_initializer(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    pbw t = {0};
    tensor_proto(&t, name, dtype, rank, dims, data);
    pbw_message_field(&m->graph, 5, &t);
    pbw_free(&t);
}

void tm_node(test_model *m, const char *op_type, const char *const *inputs, const char *const *outputs, const pbw *attrs)
{
    pbw node = {0};
    for (const char *const *p = inputs; p && *p; p++) pbw_string_field(&node, 1, *p);
    for (const char *const *p = outputs; p && *p; p++) pbw_string_field(&node, 2, *p);
    pbw_string_field(&node, 3, outputs[0]);
    pbw_string_field(&node, 4, op_type);
    if (attrs) pbw_append(&node, attrs);
    pbw_message_field(&m->graph, 1, &node);
    pbw_free(&node);
}

static void attr_begin(pbw *a, const char *name, int type)
{
    pbw_string_field(a, 1, name);
    pbw_varint_field(a, 20, (uint64_t)type);
}

static void attr_end(pbw *attrs, pbw *a)
{
    pbw_message_field(attrs, 5, a);
    pbw_free(a);
}

void tm_attr_int(pbw *attrs, const char *name, int64_t v)
{
    pbw a = {0};
    attr_begin(&a, name, 2);
    pbw_varint_field(&a, 3, (uint64_t)v);
    attr_end(attrs, &a);
}

void tm_attr_ints(pbw *attrs, const char *name, const int64_t *v, int n)
{
    pbw a = {0};
    attr_begin(&a, name, 7);
    for (int i = 0; i < n; i++) pbw_varint_field(&a, 8, (uint64_t)v[i]);
    attr_end(attrs, &a);
}

void tm_attr_float(pbw *attrs, const char *name, float v)
{
    pbw a = {0};
    attr_begin(&a, name, 1);
    pbw_float_field(&a, 2, v);
    attr_end(attrs, &a);
}

void tm_attr_floats(pbw *attrs, const char *name, const float *v, int n)
{
    pbw a = {0};
    attr_begin(&a, name, 6);
    for (int i = 0; i < n; i++) pbw_float_field(&a, 7, v[i]);
    attr_end(attrs, &a);
}

void tm_attr_string(pbw *attrs, const char *name, const char *value)
{
    pbw a = {0};
    attr_begin(&a, name, 3);
    pbw_string_field(&a, 4, value);
    attr_end(attrs, &a);
}

void tm_attr_strings(pbw *attrs, const char *name, const char *const *values, int n)
{
    pbw a = {0};
    attr_begin(&a, name, 8);
    for (int i = 0; i < n; i++) pbw_string_field(&a, 9, values[i]);
    attr_end(attrs, &a);
}

void tm_attr_tensor(pbw *attrs, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    pbw a = {0}, t = {0};
    attr_begin(&a, name, 4);
    tensor_proto(&t, NULL, dtype, rank, dims, data);
    pbw_message_field(&a, 5, &t);
    pbw_free(&t);
    attr_end(attrs, &a);
}

void tm_finish(test_model *m)
{
    pbw opset = {0};
    pbw_varint_field(&m->model, 1, 8); /* ir_version */
    pbw_string_field(&m->model, 2, "kiln-tests");
    pbw_string_field(&m->graph, 2, "test");
    pbw_message_field(&m->model, 7, &m->graph);
    pbw_string_field(&opset, 1, "");
    pbw_varint_field(&opset, 2, (uint64_t)m->opset);
    pbw_message_field(&m->model, 8, &opset);
    pbw_free(&opset);
}

void tm_free(test_model *m)
{
    pbw_free(&m->graph);
    pbw_free(&m->model);
}

/* ---- running a model through the public API ---------------------------------------------------------- */

void tr_init(test_run *r, int opset)
{
    memset(r, 0, sizeof *r);
    tm_init(&r->tm, opset);
}

void tr_free(test_run *r)
{
    kiln_session_free(r->session);
    kiln_model_free(r->model);
    tm_free(&r->tm);
}

void tr_input(test_run *r, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    assert_true(r->n_inputs < TEST_RUN_MAX_VALUES);
    kiln_tensor *t = &r->inputs[r->n_inputs++];
    *t = (kiln_tensor){.dtype = dtype, .rank = rank, .data = (void *)data};
    if (rank > 0) memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    tm_input(&r->tm, name, dtype, rank, dims);
}

void tr_output(test_run *r, const char *name, kiln_dtype dtype)
{
    assert_true(r->n_outputs < TEST_RUN_MAX_VALUES);
    r->n_outputs++;
    tm_output(&r->tm, name, dtype);
}

kiln_status tr_load(test_run *r)
{
    if (!r->finished) tm_finish(&r->tm);
    r->finished = true;
    return kiln_model_load_from_memory(r->tm.model.data, r->tm.model.size, NULL, 0, &r->model);
}

kiln_status tr_run(test_run *r, int threads)
{
    kiln_status st;
    if (!r->model && (st = tr_load(r)) != KILN_OK) return st;
    assert_null(r->session);
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.threads = threads;
    if (kiln_session_create(r->model, &options, &r->session) != KILN_OK) fail_msg("session: %s", kiln_last_error());
    for (int i = 0; i < r->n_inputs; i++) {
        const kiln_tensor *t = &r->inputs[i];
        if (kiln_session_set_input(r->session, i, t->dtype, t->rank, t->dims, t->data) != KILN_OK)
            fail_msg("input %d: %s", i, kiln_last_error());
    }
    if ((st = kiln_session_run(r->session)) != KILN_OK) return st;
    for (int k = 0; k < r->n_outputs; k++)
        if ((st = kiln_session_output(r->session, k, &r->out[k])) != KILN_OK) return st;
    return KILN_OK;
}

void tr_ml_node(test_run *r, int ml_opset, const char *op, const char *const *inputs, int n_outputs, const pbw *attrs)
{
    static const char *const names[] = {"y0", "y1", "y2", "y3"};
    pbw node = {0}, opset = {0};
    assert_true(n_outputs <= 4);
    for (const char *const *in = inputs; *in; in++) pbw_string_field(&node, 1, *in);
    for (int k = 0; k < n_outputs; k++) {
        pbw_string_field(&node, 2, names[k]);
        tr_output(r, names[k], KILN_UNDEFINED);
    }
    pbw_string_field(&node, 3, "ml");
    pbw_string_field(&node, 4, op);
    pbw_string_field(&node, 7, "ai.onnx.ml");
    if (attrs) pbw_append(&node, attrs);
    pbw_message_field(&r->tm.graph, 1, &node);
    pbw_free(&node);
    tm_finish(&r->tm);
    r->finished = true;
    pbw_string_field(&opset, 1, "ai.onnx.ml");
    pbw_varint_field(&opset, 2, (uint64_t)ml_opset);
    pbw_message_field(&r->tm.model, 8, &opset);
    pbw_free(&opset);
}

void tr_node_on_x(test_run *r, const char *op, const char *const *more, int n_outputs, const pbw *attrs,
                  kiln_dtype dtype, int rank, const int64_t *dims, const void *x)
{
    static const char *const y[] = {"y0", "y1", "y2", "y3"};
    assert_true(n_outputs <= 4);
    const char *inputs[TEST_RUN_MAX_VALUES + 1] = {"x"}, *outputs[5] = {NULL};
    for (int i = 0; more && more[i]; i++) {
        assert_true(i + 1 < TEST_RUN_MAX_VALUES);
        inputs[i + 1] = more[i];
    }
    tr_input(r, "x", dtype, rank, dims, x);
    for (int k = 0; k < n_outputs; k++) {
        outputs[k] = y[k];
        tr_output(r, y[k], KILN_UNDEFINED);
    }
    tm_node(&r->tm, op, inputs, outputs, attrs);
}

kiln_status tr_run_node(test_run *r, const char *op, const char *const *more, int n_outputs, const pbw *attrs,
                        int threads, kiln_dtype dtype, int rank, const int64_t *dims, const void *x)
{
    tr_node_on_x(r, op, more, n_outputs, attrs, dtype, rank, dims, x);
    return tr_run(r, threads);
}

void tr_node_of_operands(test_run *r, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                         kiln_dtype out_dtype)
{
    assert_true(n_in <= TEST_RUN_MAX_VALUES);
    const char *names[TEST_RUN_MAX_VALUES + 1] = {NULL};
    for (int i = 0; i < n_in; i++) {
        names[i] = in[i].name ? in[i].name : "";
        if (!in[i].name) continue;
        if (in[i].constant)
            tm_initializer(&r->tm, in[i].name, in[i].dtype, in[i].rank, in[i].dims, in[i].data);
        else
            tr_input(r, in[i].name, in[i].dtype, in[i].rank, in[i].dims, in[i].data);
    }
    tr_output(r, "y", out_dtype);
    tm_node(&r->tm, op, names, LIST("y"), attrs);
}

void tr_compute(test_run *r, int opset, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                kiln_dtype out_dtype, int threads)
{
    tr_init(r, opset);
    tr_node_of_operands(r, op, attrs, n_in, in, out_dtype);
    kiln_status st = tr_run(r, threads);
    if (st != KILN_OK) fail_msg("%s: %s", op, kiln_last_error());
    if (out_dtype != KILN_UNDEFINED) assert_int_equal(r->out[0].dtype, out_dtype);
}

kiln_status tr_load_status(int opset, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                           kiln_dtype out_dtype)
{
    test_run r;
    tr_init(&r, opset);
    tr_node_of_operands(&r, op, attrs, n_in, in, out_dtype);
    kiln_status st = tr_load(&r);
    tr_free(&r);
    return st;
}

/* ---- assertions -------------------------------------------------------------------------------------- */

void assert_refused(kiln_status status, kiln_status expected, const char *words)
{
    if (expected == TEST_ANY_ERROR)
        assert_int_not_equal(status, KILN_OK);
    else
        assert_int_equal(status, expected);
    if (!strstr(kiln_last_error(), words)) fail_msg("message '%s' lacks '%s'", kiln_last_error(), words);
}

void assert_shape(const kiln_tensor *t, int rank, const int64_t *dims)
{
    assert_int_equal(t->rank, rank);
    for (int d = 0; d < rank; d++) assert_int_equal(t->dims[d], dims[d]);
}

bool tr_model_has_op(const kiln_model *model, const char *op_type)
{
    for (int i = 0; i < kiln_model_op_type_count(model); i++) {
        const char *domain, *type;
        int nodes;
        assert_int_equal(kiln_model_op_type(model, i, &domain, &type, &nodes), KILN_OK);
        if (strcmp(type, op_type) == 0) return true;
    }
    return false;
}

float test_activation(int act, float lo, float hi, float v)
{
    switch (act) {
    case 1: return v < lo ? lo : v > hi ? hi : v;
    case 2: return 1.0f / (1.0f + expf(-v));
    case 3: return v / (1.0f + expf(-v));
    case 4: return fmaxf(0.0f, fminf(1.0f, lo * v + hi));
    case 5: return v * fmaxf(0.0f, fminf(1.0f, lo * v + hi));
    default: return v;
    }
}

void assert_close(const float *got, const double *want, int64_t n, double tolerance)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i]) && isnan(got[i])) continue;
        if (isinf(want[i]) && got[i] == want[i]) continue;
        double err = fabs(got[i] - want[i]);
        if (!(err <= tolerance * (1 + fabs(want[i]))))
            fail_msg("element %lld is %.9g, expected %.9g", (long long)i, got[i], want[i]);
    }
}

double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}

/* ---- seeded random numbers --------------------------------------------------------------------------- */

static uint32_t random_state = 12345;

void random_seed(uint32_t seed) { random_state = seed; }

double random_uniform(double lo, double hi)
{
    random_state = random_state * 1103515245u + 12345u;
    /* bits 8..31: the low bits of an LCG cycle with short periods */
    return lo + (hi - lo) * ((random_state >> 8) & 0xffffff) / (double)0x1000000;
}

int64_t random_int(int64_t lo, int64_t hi) { return lo + (int64_t)random_uniform(0, (double)(hi - lo + 1) - 1e-9); }

float *random_floats(int64_t n, double lo, double hi)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)random_uniform(lo, hi);
    return x;
}

void random_shape(int min_rank, int max_rank, int64_t max_dim, int *rank, int64_t *dims)
{
    *rank = (int)random_int(min_rank, max_rank);
    for (int d = 0; d < *rank; d++) dims[d] = random_int(1, max_dim);
}

void tm_attr_graph(pbw *attrs, const char *name, test_model *body)
{
    pbw a = {0};
    attr_begin(&a, name, 5);
    pbw_string_field(&body->graph, 2, name);
    pbw_message_field(&a, 6, &body->graph);
    attr_end(attrs, &a);
}
