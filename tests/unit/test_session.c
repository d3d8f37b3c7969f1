/*
 * test_session.c — running: a steady-state run allocates nothing, new shapes re-plan, thread pools start
 * and stop cleanly, and a model is shared by sessions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "kiln.h"
#include "testlib.h"

/* x[N0,4] -> Dropout -> Flatten -> y: one kernel step (Dropout copies) and one view */
static kiln_model *copy_model(void)
{
    test_model m;
    tm_init(&m, 13);
    tm_input(&m, "x", KILN_FLOAT32, 2, (int64_t[]){-1, 4});
    tm_node(&m, "Dropout", LIST("x"), LIST("d"), NULL);
    tm_node(&m, "Flatten", LIST("d"), LIST("y"), NULL);
    tm_output(&m, "y", KILN_FLOAT32);
    tm_finish(&m);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_load_from_memory(m.model.data, m.model.size, NULL, 0, &model), KILN_OK);
    tm_free(&m); /* safe: a model without initializers keeps no pointer into its buffer */
    return model;
}

static void steady_state_runs_allocate_nothing(void **state)
{
    (void)state;
    kiln_model *model = copy_model();
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){2, 4}, data), KILN_OK);
    assert_int_equal(kiln_session_run(session), KILN_OK); /* plans */
    size_t before = mem_allocation_count();
    for (int i = 0; i < 10; i++) {
        data[0] = (float)i;
        assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){2, 4}, data), KILN_OK);
        assert_int_equal(kiln_session_run(session), KILN_OK);
        kiln_tensor out;
        assert_int_equal(kiln_session_output(session, 0, &out), KILN_OK);
        assert_true(((float *)out.data)[0] == (float)i);
    }
    assert_int_equal(mem_allocation_count(), before);
    /* a new batch size re-plans (and so allocates), then is steady again */
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){1, 4}, data), KILN_OK);
    assert_int_equal(kiln_session_run(session), KILN_OK);
    assert_true(mem_allocation_count() > before);
    before = mem_allocation_count();
    assert_int_equal(kiln_session_run(session), KILN_OK);
    assert_int_equal(mem_allocation_count(), before);
    kiln_tensor out;
    kiln_session_output(session, 0, &out);
    assert_int_equal(out.rank, 2);
    assert_int_equal(out.dims[0], 1);
    assert_true(kiln_session_arena_bytes(session) >= 16);
    kiln_session_free(session);
    kiln_model_free(model);
}

/* Profiling counts each executed node once per run; views (Flatten) run nothing. */
static void a_profiling_session_times_each_node_it_runs(void **state)
{
    (void)state;
    kiln_model *model = copy_model();
    kiln_session_options opts;
    kiln_session_options_init(&opts);
    kiln_session *plain, *profiled;
    assert_int_equal(kiln_session_create(model, &opts, &plain), KILN_OK);
    assert_int_equal(kiln_session_profile_count(plain), 0);
    opts.profile = 1;
    assert_int_equal(kiln_session_create(model, &opts, &profiled), KILN_OK);
    float data[8] = {0};
    assert_int_equal(kiln_session_set_input(profiled, 0, KILN_FLOAT32, 2, (int64_t[]){2, 4}, data), KILN_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(kiln_session_run(profiled), KILN_OK);
    int count = kiln_session_profile_count(profiled), ran = 0;
    assert_true(count >= 1);
    for (int i = 0; i < count; i++) {
        kiln_node_profile p;
        assert_int_equal(kiln_session_profile(profiled, i, &p), KILN_OK);
        assert_true(p.runs == 0 || p.runs == 3);
        if (p.runs) {
            ran++;
            assert_string_equal(p.op_type, "Dropout");
            assert_string_equal(p.name, "d"); /* unnamed: its output's name */
        }
    }
    assert_int_equal(ran, 1);
    kiln_node_profile p;
    assert_int_equal(kiln_session_profile(profiled, count, &p), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_session_profile(plain, 0, &p), KILN_ERR_INVALID_ARGUMENT);
    kiln_session_free(plain);
    kiln_session_free(profiled);
    kiln_model_free(model);
}

static void sessions_share_a_model_and_own_threads(void **state)
{
    (void)state;
    kiln_model *model = copy_model();
    kiln_session_options opts;
    kiln_session_options_init(&opts);
    assert_int_equal(opts.threads, 1);
    kiln_session *sessions[3];
    for (int i = 0; i < 3; i++) {
        opts.threads = i + 1;
        assert_int_equal(kiln_session_create(model, &opts, &sessions[i]), KILN_OK);
    }
    float data[4] = {9, 8, 7, 6};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kiln_session_set_input(sessions[i], 0, KILN_FLOAT32, 2, (int64_t[]){1, 4}, data), KILN_OK);
        assert_int_equal(kiln_session_run(sessions[i]), KILN_OK);
        kiln_tensor out;
        kiln_session_output(sessions[i], 0, &out);
        assert_memory_equal(out.data, data, sizeof data);
    }
    opts.threads = 0;
    kiln_session *bad;
    assert_int_equal(kiln_session_create(model, &opts, &bad), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_last_error(), "threads"));
    for (int i = 0; i < 3; i++) kiln_session_free(sessions[i]);
    kiln_model_free(model);
}

static void output_before_run_is_an_error(void **state)
{
    (void)state;
    kiln_model *model = copy_model();
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
    kiln_tensor out;
    assert_int_equal(kiln_session_output(session, 0, &out), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_session_output(session, 5, &out), KILN_ERR_INVALID_ARGUMENT);
    kiln_session_free(session);
    kiln_model_free(model);
}

/* s[1] -> Identity -> t; t is both a shape (ConstantOfShape, so computed while planning) and data (Cast, read
 * at run time). A later run whose input buffer differs but holds equal contents reuses the plan: t must not
 * still point into the first buffer. */
static void a_reused_plan_reads_the_new_input_buffer(void **state)
{
    (void)state;
    test_model m;
    tm_init(&m, 13);
    tm_input(&m, "s", KILN_INT64, 1, (int64_t[]){1});
    tm_node(&m, "Identity", LIST("s"), LIST("t"), NULL);
    tm_node(&m, "ConstantOfShape", LIST("t"), LIST("zeros"), NULL);
    pbw to_float = {0};
    tm_attr_int(&to_float, "to", KILN_FLOAT32);
    tm_node(&m, "Cast", LIST("t"), LIST("t_float"), &to_float);
    pbw_free(&to_float);
    tm_output(&m, "zeros", KILN_FLOAT32);
    tm_output(&m, "t_float", KILN_FLOAT32);
    tm_finish(&m);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_load_from_memory(m.model.data, m.model.size, NULL, 0, &model), KILN_OK);
    tm_free(&m);
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
    int64_t first[1] = {3}, second[1] = {3};
    assert_int_equal(kiln_session_set_input(session, 0, KILN_INT64, 1, (int64_t[]){1}, first), KILN_OK);
    assert_int_equal(kiln_session_run(session), KILN_OK);
    assert_int_equal(kiln_session_set_input(session, 0, KILN_INT64, 1, (int64_t[]){1}, second), KILN_OK);
    first[0] = 7; /* the caller reuses its old buffer: the session must not see it any more */
    assert_int_equal(kiln_session_run(session), KILN_OK);
    kiln_tensor zeros, t_float;
    assert_int_equal(kiln_session_output(session, 0, &zeros), KILN_OK);
    assert_int_equal(kiln_session_output(session, 1, &t_float), KILN_OK);
    assert_int_equal(zeros.dims[0], 3);
    assert_true(((float *)t_float.data)[0] == 3.0f);
    kiln_session_free(session);
    kiln_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_state_runs_allocate_nothing),
        cmocka_unit_test(sessions_share_a_model_and_own_threads),
        cmocka_unit_test(a_profiling_session_times_each_node_it_runs),
        cmocka_unit_test(output_before_run_is_an_error),
        cmocka_unit_test(a_reused_plan_reads_the_new_input_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
