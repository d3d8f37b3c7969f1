/*
 * testlib.h — helpers shared by the unit tests, so that every test file builds, runs and checks models the
 * same way:
 *
 *   - building small ONNX models in memory (a protobuf writer and a model builder), so tests do not depend
 *     on fixture files for simple graphs;
 *   - running such a model through the public API (load from memory, session, bound inputs, outputs), in
 *     general or as the one-node model most operator tests need;
 *   - the assertions those tests repeat: refusals with a message, shapes, closeness to a reference;
 *   - seeded random numbers, float buffers and shapes, identical on every platform, and row-major indexing.
 *
 * The assertion helpers use cmocka: include <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h> as usual.
 */
#ifndef KILN_TESTLIB_H
#define KILN_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* A NULL-terminated list of names, as tm_node and tr_run_node take them. */
#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- protobuf writing -------------------------------------------------------------------------------- */

/* A growable protobuf writer. */
typedef struct pbw {
    uint8_t *data;
    size_t size, capacity;
} pbw;

void pbw_free(pbw *w);
void pbw_varint_field(pbw *w, int field, uint64_t v);
void pbw_bytes_field(pbw *w, int field, const void *p, size_t n);
void pbw_string_field(pbw *w, int field, const char *s);
/* Appends a nested message (its encoded bytes) as field `field`. */
void pbw_message_field(pbw *w, int field, const pbw *message);
void pbw_float_field(pbw *w, int field, float f);
/* Appends another writer's bytes as they are. */
void pbw_append(pbw *w, const pbw *other);

/* ---- model building: a tiny DSL over the protobuf writer -------------------------------------------- */

typedef struct test_model {
    pbw graph;
    pbw model;
    int opset;
} test_model;

void tm_init(test_model *m, int opset);
/* Adds a graph input/output with a float32/int64... type and a fixed shape (dims < 0 become dim_param
 * "N<i>"). */
void tm_input(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims);
void tm_output(test_model *m, const char *name, kiln_dtype dtype);
/* An output declared with a shape (a subgraph's declared output shape matters to a Loop that never runs). */
void tm_output_shaped(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims);
void tm_initializer(test_model *m, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data);
/* Adds a node; inputs/outputs are NULL-terminated lists; attrs is an already-encoded list of
 * AttributeProto messages (may be NULL). */
void tm_node(test_model *m, const char *op_type, const char *const *inputs, const char *const *outputs, const pbw *attrs);
/* Attribute builders appending to `attrs` (a concatenation of field-5 AttributeProto entries). */
void tm_attr_int(pbw *attrs, const char *name, int64_t v);
void tm_attr_ints(pbw *attrs, const char *name, const int64_t *v, int n);
void tm_attr_float(pbw *attrs, const char *name, float v);
void tm_attr_floats(pbw *attrs, const char *name, const float *v, int n);
void tm_attr_string(pbw *attrs, const char *name, const char *value);
void tm_attr_strings(pbw *attrs, const char *name, const char *const *values, int n);
/* A tensor-valued attribute (Constant's and ConstantOfShape's value). */
void tm_attr_tensor(pbw *attrs, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data);
/* A graph-valued attribute (If's branches, Loop's and Scan's body): the graph `body` built with tm_input,
 * tm_node and tm_output (not tm_finish), named after the attribute. */
void tm_attr_graph(pbw *attrs, const char *name, test_model *body);
/* Finishes the ModelProto; the bytes are m->model.data/size. */
void tm_finish(test_model *m);
void tm_free(test_model *m);

/* ---- running a model through the public API ---------------------------------------------------------- */

#define TEST_RUN_MAX_VALUES 16

/* A model built in memory, loaded from its bytes and run in a session. Declare graph inputs (with the data
 * to bind to them) and outputs with tr_input and tr_output; add initializers and nodes to `tm` with
 * tm_initializer and tm_node; then tr_load and/or tr_run. The bytes live as long as the model, as
 * kiln_model_load_from_memory requires (weights may point into them). */
typedef struct test_run {
    test_model tm;
    kiln_model *model;
    kiln_session *session;
    bool finished; /* tm_finish has been called: the model is built */
    int n_inputs, n_outputs;
    kiln_tensor inputs[TEST_RUN_MAX_VALUES]; /* bound in declaration order by tr_run */
    kiln_tensor out[TEST_RUN_MAX_VALUES];    /* the outputs, after a successful tr_run */
} test_run;

void tr_init(test_run *r, int opset);
/* Frees the session, the model and the bytes. */
void tr_free(test_run *r);
/* Declares a graph input and the data tr_run binds to it (borrowed: keep it alive until the run). */
void tr_input(test_run *r, const char *name, kiln_dtype dtype, int rank, const int64_t *dims, const void *data);
/* Declares a graph output; KILN_UNDEFINED leaves its dtype to inference, another dtype must match it at load. */
void tr_output(test_run *r, const char *name, kiln_dtype dtype);
/* Finishes the model and loads it: the status of kiln_model_load_from_memory. */
kiln_status tr_load(test_run *r);
/* Loads the model (unless tr_load did), creates a session with `threads` threads, binds every declared input,
 * runs, and fetches every declared output into r->out. Creating the session and binding the inputs are the
 * test's own plumbing, so a failure there fails the test at once; otherwise returns the first failure of
 * loading, running or fetching the outputs. */
kiln_status tr_run(test_run *r, int threads);
/* Whether the loaded model (after kiln's passes) runs a node of this op type, in any domain. */
bool tr_model_has_op(const kiln_model *model, const char *op_type);

/* The model most operator tests need, on a test_run after tr_init: node `op` reads graph input "x" (of the
 * given dtype and shape, bound to `x`) and then the inputs named in `more` (initializers the caller added to
 * r->tm, "" for an omitted one; NULL when there are none), and writes n_outputs outputs "y0", "y1", ...
 * whose dtypes are left to inference. */
void tr_node_on_x(test_run *r, const char *op, const char *const *more, int n_outputs, const pbw *attrs,
                  kiln_dtype dtype, int rank, const int64_t *dims, const void *x);
/* On a test_run after tr_init and tr_input: node `op` of domain ai.onnx.ml reads `inputs` (NULL-terminated) and
 * writes outputs "y0", "y1"... (dtypes left to inference); finishes the model with an ai.onnx.ml opset import. */
void tr_ml_node(test_run *r, int ml_opset, const char *op, const char *const *inputs, int n_outputs, const pbw *attrs);
/* tr_node_on_x, then tr_run with `threads` threads: the first failure of loading or running. */
kiln_status tr_run_node(test_run *r, const char *op, const char *const *more, int n_outputs, const pbw *attrs,
                        int threads, kiln_dtype dtype, int rank, const int64_t *dims, const void *x);

/* An input of a node built by tr_node_of_operands: a graph input bound to `data` at run time, an initializer holding
 * `data` when `constant`, or an omitted optional input when `name` is NULL. */
typedef struct test_operand {
    const char *name;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const void *data;
    bool constant;
} test_operand;

/* On a test_run after tr_init: node `op` reads `in` (declared in order as graph inputs or initializers)
 * and writes one output "y" declared as `out_dtype` (KILN_UNDEFINED: left to inference). */
void tr_node_of_operands(test_run *r, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                         kiln_dtype out_dtype);
/* tr_init, tr_node_of_operands and tr_run with `threads` threads, asserting that they succeed and that the output has
 * dtype out_dtype (unless KILN_UNDEFINED); the result is r->out[0]. */
void tr_compute(test_run *r, int opset, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                kiln_dtype out_dtype, int threads);
/* Builds that node alone at `opset`, loads it and frees it again: the status of the load. */
kiln_status tr_load_status(int opset, const char *op, const pbw *attrs, int n_in, const test_operand *in,
                           kiln_dtype out_dtype);

/* ---- assertions -------------------------------------------------------------------------------------- */

/* assert_refused's `expected` when any failure will do. */
#define TEST_ANY_ERROR ((kiln_status)-1)

/* A refusal: `status` is `expected` (any failure for TEST_ANY_ERROR) and kiln_last_error() contains `words`,
 * so the message names the problem. */
void assert_refused(kiln_status status, kiln_status expected, const char *words);
/* t has exactly this rank and these dims. */
void assert_shape(const kiln_tensor *t, int rank, const int64_t *dims);
/* Each got[i] is within tolerance * (1 + |want[i]|) of want[i]; a NaN matches a NaN and an infinity the
 * same infinity (a reference's empty mean or empty max). */
void assert_close(const float *got, const double *want, int64_t n, double tolerance);
/* A fused activation (a gemm_activation of kernels/gemm.h: 0 none, 1 clamp, 2 sigmoid, 3 SiLU, 4 hard sigmoid,
 * 5 hard swish) computed plainly, from its definition: the oracle for every fused epilogue. lo and hi are
 * the clamp's bounds, or the hard activations' alpha and beta. */
float test_activation(int act, float lo, float hi, float v);
enum { TEST_ACTIVATIONS = 6 };
/* Max |a-b| over float32 arrays; infinite when one is NaN and the other is not. */
double max_abs_diff(const float *a, const float *b, int64_t n);

/* ---- seeded random numbers --------------------------------------------------------------------------- */

/* One linear congruential generator for every test: the same sequence on every platform and C library
 * (rand() is not), so a failure seen anywhere replays everywhere. Each test program starts from the same
 * state; a test that must not depend on the tests before it calls random_seed first. */
void random_seed(uint32_t seed);
/* Uniform in [lo, hi). */
double random_uniform(double lo, double hi);
/* Uniform in [lo, hi], both ends included. */
int64_t random_int(int64_t lo, int64_t hi);
/* n floats uniform in [lo, hi), malloc'd with exactly n elements (one when n is 0), so that reading past
 * them is an AddressSanitizer error. */
float *random_floats(int64_t n, double lo, double hi);
/* A rank in [min_rank, max_rank] and that many dims in [1, max_dim]. */
void random_shape(int min_rank, int max_rank, int64_t max_dim, int *rank, int64_t *dims);

/* ---- row-major indexing ------------------------------------------------------------------------------ */

/* The coordinates of flat index i in a row-major tensor of these dims, and back. Inline: the naive references
 * call them for every element of every output. */
static inline void unravel(int64_t i, int rank, const int64_t *dims, int64_t *coords)
{
    for (int d = rank - 1; d >= 0; d--) {
        coords[d] = i % dims[d];
        i /= dims[d];
    }
}

static inline int64_t ravel(int rank, const int64_t *dims, const int64_t *coords)
{
    int64_t i = 0;
    for (int d = 0; d < rank; d++) i = i * dims[d] + coords[d];
    return i;
}

#endif
