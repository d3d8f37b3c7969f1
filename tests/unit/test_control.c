/*
 * test_control.c — subgraphs (If, Loop, Scan) and non-tensor values: bodies read outer-scope values, nest,
 * run zero times, change shape with the data, and re-plan when their inputs change; hostile bodies (absent,
 * wrong arity, cyclic, unsupported, reading undefined names) are refused at load with a message; sequences
 * cross the public API in kiln.h's encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"
#include "testlib.h"

static const int64_t three[] = {3};

/* A branch with no inputs whose output `out` is op(x, x), x read from the enclosing graph. */
static void branch_on_outer_x(test_model *b, const char *op, const char *out)
{
    tm_init(b, 13);
    tm_node(b, op, LIST("x", "x"), LIST(out), NULL);
    tm_output(b, out, KILN_FLOAT32);
}

/* y = If(cond) then x + x else x * x, x a graph input read by both branches. */
static void build_if_model(test_run *r, const uint8_t *cond, const float *x)
{
    tr_init(r, 13);
    tr_input(r, "cond", KILN_BOOL, 0, NULL, cond);
    tr_input(r, "x", KILN_FLOAT32, 1, three, x);
    test_model then_b, else_b;
    branch_on_outer_x(&then_b, "Add", "t");
    branch_on_outer_x(&else_b, "Mul", "e");
    pbw attrs = {0};
    tm_attr_graph(&attrs, "then_branch", &then_b);
    tm_attr_graph(&attrs, "else_branch", &else_b);
    tm_node(&r->tm, "If", LIST("cond"), LIST("y"), &attrs);
    tr_output(r, "y", KILN_FLOAT32);
    pbw_free(&attrs);
    tm_free(&then_b);
    tm_free(&else_b);
}

static void if_branches_read_outer_values_and_replan(void **state)
{
    (void)state;
    uint8_t cond = 1;
    float x[3] = {1, 2, 3};
    test_run r;
    build_if_model(&r, &cond, x);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_close(r.out[0].data, (double[]){2, 4, 6}, 3, 0);
    /* the same session, other data: the plan is rebuilt because cond decides the branch */
    cond = 0;
    assert_int_equal(kiln_session_set_input(r.session, 0, KILN_BOOL, 0, NULL, &cond), KILN_OK);
    assert_int_equal(kiln_session_run(r.session), KILN_OK);
    kiln_tensor out;
    assert_int_equal(kiln_session_output(r.session, 0, &out), KILN_OK);
    assert_close(out.data, (double[]){1, 4, 9}, 3, 0);
    tr_free(&r);
}

static void if_branches_may_differ_in_shape(void **state)
{
    (void)state;
    for (uint8_t cond = 0; cond < 2; cond++) {
        float x[3] = {1, 2, 3}, c[2] = {7, 8};
        test_run r;
        tr_init(&r, 13);
        tr_input(&r, "cond", KILN_BOOL, 0, NULL, &cond);
        tr_input(&r, "x", KILN_FLOAT32, 1, three, x);
        test_model then_b, else_b;
        tm_init(&then_b, 13);
        tm_node(&then_b, "Identity", LIST("x"), LIST("t"), NULL);
        tm_output(&then_b, "t", KILN_FLOAT32);
        tm_init(&else_b, 13);
        tm_initializer(&else_b, "c", KILN_FLOAT32, 1, (int64_t[]){2}, c);
        tm_output(&else_b, "c", KILN_FLOAT32);
        pbw attrs = {0};
        tm_attr_graph(&attrs, "then_branch", &then_b);
        tm_attr_graph(&attrs, "else_branch", &else_b);
        tm_node(&r.tm, "If", LIST("cond"), LIST("y"), &attrs);
        tr_output(&r, "y", KILN_FLOAT32);
        assert_int_equal(tr_run(&r, 1), KILN_OK);
        assert_shape(&r.out[0], 1, cond ? three : (int64_t[]){2});
        assert_true(((float *)r.out[0].data)[0] == (cond ? 1.0f : 7.0f));
        pbw_free(&attrs);
        tm_free(&then_b);
        tm_free(&else_b);
        tr_free(&r);
    }
}

/* Loop body: (i, cond, s) -> (cond, s + x, s + x), x from the enclosing graph. */
static void loop_body_adding_x(test_model *body)
{
    tm_init(body, 13);
    tm_input(body, "i", KILN_INT64, 0, NULL);
    tm_input(body, "c_in", KILN_BOOL, 0, NULL);
    tm_input(body, "s_in", KILN_FLOAT32, 1, three);
    tm_node(body, "Identity", LIST("c_in"), LIST("c_out"), NULL);
    tm_node(body, "Add", LIST("s_in", "x"), LIST("s_out"), NULL);
    tm_node(body, "Identity", LIST("s_out"), LIST("scan"), NULL);
    tm_output(body, "c_out", KILN_BOOL);
    tm_output(body, "s_out", KILN_FLOAT32);
    tm_output_shaped(body, "scan", KILN_FLOAT32, 1, three);
}

static void run_loop(int64_t trips, float *final, kiln_tensor *scan_out, test_run *r)
{
    static float x[3] = {1, 2, 3}, s0[3] = {10, 20, 30};
    static int64_t m;
    m = trips;
    tr_init(r, 13);
    tr_input(r, "M", KILN_INT64, 0, NULL, &m);
    tr_input(r, "x", KILN_FLOAT32, 1, three, x);
    tr_input(r, "s0", KILN_FLOAT32, 1, three, s0);
    test_model body;
    loop_body_adding_x(&body);
    pbw attrs = {0};
    tm_attr_graph(&attrs, "body", &body);
    tm_node(&r->tm, "Loop", LIST("M", "", "s0"), LIST("s", "scans"), &attrs);
    tr_output(r, "s", KILN_FLOAT32);
    tr_output(r, "scans", KILN_FLOAT32);
    assert_int_equal(tr_run(r, 1), KILN_OK);
    memcpy(final, r->out[0].data, sizeof(float) * 3);
    *scan_out = r->out[1];
    pbw_free(&attrs);
    tm_free(&body);
}

static void loop_carries_values_and_stacks_scan_outputs(void **state)
{
    (void)state;
    float final[3];
    kiln_tensor scans;
    test_run r;
    run_loop(4, final, &scans, &r);
    assert_close(final, (double[]){14, 28, 42}, 3, 0);
    assert_shape(&scans, 2, (int64_t[]){4, 3});
    assert_close(scans.data, (double[]){11, 22, 33, 12, 24, 36, 13, 26, 39, 14, 28, 42}, 12, 0);
    tr_free(&r);
}

static void zero_trip_loop_returns_initial_values(void **state)
{
    (void)state;
    float final[3];
    kiln_tensor scans;
    test_run r;
    run_loop(0, final, &scans, &r);
    assert_close(final, (double[]){10, 20, 30}, 3, 0);
    assert_shape(&scans, 2, (int64_t[]){0, 3}); /* the body declares its scan output [3] */
    tr_free(&r);
}

/* If(cond) then Loop(M=2) adding x (read two scopes out) else the initial value. */
static void nested_loop_in_if_reads_the_outermost_scope(void **state)
{
    (void)state;
    uint8_t cond = 1;
    float x[3] = {1, 2, 3}, s0[3] = {0, 0, 0};
    int64_t m = 2;
    test_run r;
    tr_init(&r, 13);
    tr_input(&r, "cond", KILN_BOOL, 0, NULL, &cond);
    tr_input(&r, "x", KILN_FLOAT32, 1, three, x);
    tr_input(&r, "s0", KILN_FLOAT32, 1, three, s0);
    tm_initializer(&r.tm, "M", KILN_INT64, 0, NULL, &m);
    test_model body, then_b, else_b;
    loop_body_adding_x(&body);
    pbw loop_attrs = {0}, if_attrs = {0};
    tm_attr_graph(&loop_attrs, "body", &body);
    tm_init(&then_b, 13);
    tm_node(&then_b, "Loop", LIST("M", "", "s0"), LIST("t", "t_scan"), &loop_attrs);
    tm_output(&then_b, "t", KILN_FLOAT32);
    tm_init(&else_b, 13);
    tm_node(&else_b, "Identity", LIST("s0"), LIST("e"), NULL);
    tm_output(&else_b, "e", KILN_FLOAT32);
    tm_attr_graph(&if_attrs, "then_branch", &then_b);
    tm_attr_graph(&if_attrs, "else_branch", &else_b);
    tm_node(&r.tm, "If", LIST("cond"), LIST("y"), &if_attrs);
    tr_output(&r, "y", KILN_FLOAT32);
    assert_int_equal(tr_run(&r, 2), KILN_OK);
    assert_close(r.out[0].data, (double[]){2, 4, 6}, 3, 0);
    pbw_free(&loop_attrs);
    pbw_free(&if_attrs);
    tm_free(&body);
    tm_free(&then_b);
    tm_free(&else_b);
    tr_free(&r);
}

/* Scan (opset 11) summing rows of x[3,2] backwards, with reversed scan outputs. */
static void scan_runs_in_both_directions(void **state)
{
    (void)state;
    float init[2] = {0, 0}, x[6] = {1, 2, 3, 4, 5, 6};
    test_run r;
    tr_init(&r, 11);
    tr_input(&r, "init", KILN_FLOAT32, 1, (int64_t[]){2}, init);
    tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){3, 2}, x);
    test_model body;
    tm_init(&body, 11);
    tm_input(&body, "sum_in", KILN_FLOAT32, 1, (int64_t[]){2});
    tm_input(&body, "row", KILN_FLOAT32, 1, (int64_t[]){2});
    tm_node(&body, "Add", LIST("sum_in", "row"), LIST("sum_out"), NULL);
    tm_node(&body, "Identity", LIST("sum_out"), LIST("partial"), NULL);
    tm_output(&body, "sum_out", KILN_FLOAT32);
    tm_output(&body, "partial", KILN_FLOAT32);
    pbw attrs = {0};
    tm_attr_graph(&attrs, "body", &body);
    tm_attr_int(&attrs, "num_scan_inputs", 1);
    tm_attr_ints(&attrs, "scan_input_directions", (int64_t[]){1}, 1);
    tm_attr_ints(&attrs, "scan_output_directions", (int64_t[]){1}, 1);
    tm_node(&r.tm, "Scan", LIST("init", "x"), LIST("sum", "partials"), &attrs);
    tr_output(&r, "sum", KILN_FLOAT32);
    tr_output(&r, "partials", KILN_FLOAT32);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_close(r.out[0].data, (double[]){9, 12}, 2, 0);
    /* rows visited 2, 1, 0; partial sums stored back to front */
    assert_close(r.out[1].data, (double[]){9, 12, 8, 10, 5, 6}, 6, 0);
    pbw_free(&attrs);
    tm_free(&body);
    tr_free(&r);
}

/* ---- hostile subgraphs: refused at load with a message --------------------------------------------- */

static kiln_status load_loop_with_body(test_model *body, const char *attr_name)
{
    float s0[3] = {0, 0, 0}, x[3] = {1, 1, 1};
    int64_t m = 2;
    test_run r;
    tr_init(&r, 13);
    tr_input(&r, "s0", KILN_FLOAT32, 1, three, s0);
    tr_input(&r, "x", KILN_FLOAT32, 1, three, x);
    tm_initializer(&r.tm, "M", KILN_INT64, 0, NULL, &m);
    pbw attrs = {0};
    if (body) tm_attr_graph(&attrs, attr_name, body);
    tm_node(&r.tm, "Loop", LIST("M", "", "s0"), LIST("s", "scans"), &attrs);
    tr_output(&r, "s", KILN_FLOAT32);
    kiln_status st = tr_load(&r);
    pbw_free(&attrs);
    tr_free(&r);
    return st;
}

static void loop_without_body_is_refused(void **state)
{
    (void)state;
    test_model body;
    loop_body_adding_x(&body);
    assert_refused(load_loop_with_body(NULL, "body"), TEST_ANY_ERROR, "body");
    assert_refused(load_loop_with_body(&body, "corpse"), TEST_ANY_ERROR, "body");
    tm_free(&body);
}

static void body_of_wrong_arity_is_refused(void **state)
{
    (void)state;
    test_model body;
    tm_init(&body, 13);
    tm_input(&body, "i", KILN_INT64, 0, NULL);
    tm_input(&body, "c_in", KILN_BOOL, 0, NULL);
    tm_node(&body, "Identity", LIST("c_in"), LIST("c_out"), NULL);
    tm_output(&body, "c_out", KILN_BOOL);
    assert_refused(load_loop_with_body(&body, "body"), KILN_ERR_MALFORMED, "inputs");
    tm_free(&body);
}

static void cyclic_body_is_refused(void **state)
{
    (void)state;
    test_model body;
    loop_body_adding_x(&body);
    tm_node(&body, "Neg", LIST("b"), LIST("a"), NULL);
    tm_node(&body, "Neg", LIST("a"), LIST("b"), NULL);
    assert_refused(load_loop_with_body(&body, "body"), KILN_ERR_MALFORMED, "cycle");
    tm_free(&body);
}

static void unsupported_op_in_body_is_named(void **state)
{
    (void)state;
    test_model body;
    loop_body_adding_x(&body);
    tm_node(&body, "NoSuchOp", LIST("s_in"), LIST("junk"), NULL);
    assert_refused(load_loop_with_body(&body, "body"), KILN_ERR_UNSUPPORTED, "NoSuchOp");
    tm_free(&body);
}

static void body_reading_an_undefined_name_is_refused(void **state)
{
    (void)state;
    test_model body;
    loop_body_adding_x(&body);
    tm_node(&body, "Neg", LIST("nowhere"), LIST("junk"), NULL);
    assert_refused(load_loop_with_body(&body, "body"), KILN_ERR_MALFORMED, "nowhere");
    tm_free(&body);
}

/* ---- sequences through the public API ---------------------------------------------------------------- */

/* y = SequenceInsert(seq, x); n = SequenceLength(y); the sequence is an input and an output. */
static void sequences_cross_the_api(void **state)
{
    (void)state;
    test_model m;
    tm_init(&m, 13);
    /* a sequence input: ValueInfo { name, TypeProto { sequence_type (4) { elem_type { tensor_type } } } } */
    pbw tensor_type = {0}, elem = {0}, seq = {0}, type = {0}, vi = {0};
    pbw_varint_field(&tensor_type, 1, KILN_FLOAT32);
    pbw_message_field(&elem, 1, &tensor_type);
    pbw_message_field(&seq, 1, &elem);
    pbw_message_field(&type, 4, &seq);
    pbw_string_field(&vi, 1, "seq");
    pbw_message_field(&vi, 2, &type);
    pbw_message_field(&m.graph, 11, &vi);
    tm_input(&m, "x", KILN_FLOAT32, 1, three);
    tm_node(&m, "SequenceInsert", LIST("seq", "x"), LIST("y"), NULL);
    tm_node(&m, "SequenceLength", LIST("y"), LIST("n"), NULL);
    tm_output(&m, "n", KILN_INT64);
    tm_finish(&m);
    kiln_model *model;
    assert_int_equal(kiln_model_load_from_memory(m.model.data, m.model.size, NULL, 0, &model), KILN_OK);
    kiln_value_info info;
    assert_int_equal(kiln_model_input_info(model, 0, &info), KILN_OK);
    assert_int_equal(info.kind, KILN_VALUE_SEQUENCE);
    assert_int_equal(info.dtype, KILN_FLOAT32);
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
    float a[2] = {1, 2}, x[3] = {3, 4, 5};
    kiln_tensor items[2] = {{KILN_FLOAT32, 1, {2}, a}, {KILN_FLOAT32, 1, {3}, x}};
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 1, (int64_t[]){2}, items), KILN_OK);
    assert_int_equal(kiln_session_set_input(session, 1, KILN_FLOAT32, 1, three, x), KILN_OK);
    assert_int_equal(kiln_session_run(session), KILN_OK);
    kiln_tensor n;
    assert_int_equal(kiln_session_output(session, 0, &n), KILN_OK);
    assert_int_equal(((int64_t *)n.data)[0], 3);
    /* an element of the wrong dtype is the caller's error */
    kiln_tensor wrong[1] = {{KILN_INT64, 0, {0}, a}};
    assert_refused(kiln_session_set_input(session, 0, KILN_FLOAT32, 1, (int64_t[]){1}, wrong), KILN_ERR_INVALID_ARGUMENT,
                   "element");
    kiln_session_free(session);
    kiln_model_free(model);
    pbw_free(&tensor_type);
    pbw_free(&elem);
    pbw_free(&seq);
    pbw_free(&type);
    pbw_free(&vi);
    tm_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(if_branches_read_outer_values_and_replan),
        cmocka_unit_test(if_branches_may_differ_in_shape),
        cmocka_unit_test(loop_carries_values_and_stacks_scan_outputs),
        cmocka_unit_test(zero_trip_loop_returns_initial_values),
        cmocka_unit_test(nested_loop_in_if_reads_the_outermost_scope),
        cmocka_unit_test(scan_runs_in_both_directions),
        cmocka_unit_test(loop_without_body_is_refused),
        cmocka_unit_test(body_of_wrong_arity_is_refused),
        cmocka_unit_test(cyclic_body_is_refused),
        cmocka_unit_test(unsupported_op_in_body_is_named),
        cmocka_unit_test(body_reading_an_undefined_name_is_refused),
        cmocka_unit_test(sequences_cross_the_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
