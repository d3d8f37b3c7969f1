/*
 * test_loader.c — the ONNX loader and the load-time passes, on models built in memory: every unsupported
 * node reported at once, malformed structure rejected with the culprit named, zero-copy weights, external
 * data (and its path-escape guard), model-local functions, symbolic shapes, constant folding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kiln.h"
#include "testlib.h"

static void reports_every_unsupported_node(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 2, (int64_t[]){2, 3});
    tm_node(&r.tm, "NoSuchOp", LIST("x"), LIST("a"), NULL);
    tm_node(&r.tm, "AnotherMissingOp", LIST("a"), LIST("b"), NULL);
    tm_output(&r.tm, "b", KILN_FLOAT32);
    assert_int_equal(tr_load(&r), KILN_ERR_UNSUPPORTED);
    assert_null(r.model);
    const char *error = kiln_last_error();
    assert_non_null(strstr(error, "2 nodes cannot run"));
    assert_non_null(strstr(error, "NoSuchOp"));
    assert_non_null(strstr(error, "AnotherMissingOp"));
    assert_non_null(strstr(error, "opset 13"));
    /* an inspecting load succeeds and lists them */
    kiln_model *model;
    assert_int_equal(kiln_model_load_from_memory(r.tm.model.data, r.tm.model.size, NULL, KILN_LOAD_INSPECT, &model),
                     KILN_OK);
    kiln_model_summary s;
    assert_int_equal(kiln_model_summarize(model, &s), KILN_OK);
    assert_int_equal(s.issues, 2);
    assert_non_null(strstr(kiln_model_issue(model, 1), "AnotherMissingOp"));
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_ERR_UNSUPPORTED);
    kiln_model_free(model);
    tr_free(&r);
}

static void rejects_undefined_input(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 1, (int64_t[]){4});
    tm_node(&r.tm, "Identity", LIST("nowhere"), LIST("y"), NULL);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "'nowhere'");
    tr_free(&r);
}

static void rejects_cycles(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 1, (int64_t[]){4});
    tm_node(&r.tm, "Identity", LIST("b"), LIST("a"), NULL);
    tm_node(&r.tm, "Identity", LIST("a"), LIST("b"), NULL);
    tm_output(&r.tm, "b", KILN_FLOAT32);
    assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "cycle");
    tr_free(&r);
}

static void rejects_double_definition(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 1, (int64_t[]){4});
    tm_node(&r.tm, "Identity", LIST("x"), LIST("y"), NULL);
    tm_node(&r.tm, "Identity", LIST("x"), LIST("y"), NULL);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "defined more than once");
    tr_free(&r);
}

static void reports_wrong_attribute_type(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 2, (int64_t[]){2, 3});
    pbw attrs = {0};
    tm_attr_float(&attrs, "axis", 1.0f);
    tm_node(&r.tm, "Flatten", LIST("x"), LIST("y"), &attrs);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_refused(tr_load(&r), KILN_ERR_MALFORMED, "attribute 'axis' is of type float, expected int");
    pbw_free(&attrs);
    tr_free(&r);
}

static void opset_out_of_range_is_named(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 99);
    tm_input(&r.tm, "x", KILN_FLOAT32, 1, (int64_t[]){4});
    tm_node(&r.tm, "Identity", LIST("x"), LIST("y"), NULL);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_refused(tr_load(&r), KILN_ERR_UNSUPPORTED, "opsets 1 to 18, not 99");
    tr_free(&r);
}

static void initializers_are_zero_copy_when_aligned(void **state)
{
    (void)state;
    /* Place a weight so that its raw bytes land 4-byte aligned in the buffer, and another misaligned: the
     * first must be used in place, the second copied, and both counted. */
    static const float w[4] = {1, 2, 3, 4};
    for (int pad = 0; pad < 4; pad++) {
        test_model m;
        tm_init(&m, 13);
        char name[8] = "w";
        for (int i = 0; i < pad; i++) name[1 + i] = 'x';
        tm_initializer(&m, name, KILN_FLOAT32, 1, (int64_t[]){4}, w);
        tm_node(&m, "Identity", LIST(name), LIST("y"), NULL);
        tm_output(&m, "y", KILN_FLOAT32);
        tm_finish(&m);
        /* copy into a buffer whose start is 64-byte aligned, so alignment within the file decides */
        void *buffer = aligned_alloc(64, (m.model.size + 63) / 64 * 64);
        memcpy(buffer, m.model.data, m.model.size);
        kiln_model *model;
        assert_int_equal(kiln_model_load_from_memory(buffer, m.model.size, NULL, 0, &model), KILN_OK);
        kiln_model_summary s;
        kiln_model_summarize(model, &s);
        assert_int_equal(s.weight_bytes_mapped + s.weight_bytes_copied, sizeof w);
        const uint8_t *raw = memmem(buffer, m.model.size, w, sizeof w);
        assert_non_null(raw);
        assert_int_equal(s.weight_bytes_mapped, ((uintptr_t)raw % 4 == 0) ? sizeof w : 0);
        /* the output of Identity on a constant points at the weight itself when mapped */
        kiln_session *session;
        assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
        assert_int_equal(kiln_session_run(session), KILN_OK);
        kiln_tensor out;
        assert_int_equal(kiln_session_output(session, 0, &out), KILN_OK);
        assert_memory_equal(out.data, w, sizeof w);
        if (s.weight_bytes_mapped) assert_ptr_equal(out.data, raw);
        kiln_session_free(session);
        kiln_model_free(model);
        free(buffer);
        tm_free(&m);
    }
}

/* A model whose initializer lives in a side file: model.onnx + weights.bin. */
static void write_external_model(const char *dir, const char *location, uint64_t offset)
{
    static const float w[3] = {0.5f, -1.0f, 2.0f};
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    char zeros[64] = {0};
    fwrite(zeros, 1, (size_t)offset, f);
    fwrite(w, 1, sizeof w, f);
    fclose(f);

    pbw t = {0}, entry = {0};
    pbw_varint_field(&t, 1, 3);
    pbw_varint_field(&t, 2, KILN_FLOAT32);
    pbw_string_field(&t, 8, "w");
    pbw_string_field(&entry, 1, "location");
    pbw_string_field(&entry, 2, location);
    pbw_message_field(&t, 13, &entry);
    pbw_free(&entry);
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)offset);
    pbw_string_field(&entry, 1, "offset");
    pbw_string_field(&entry, 2, text);
    pbw_message_field(&t, 13, &entry);
    pbw_free(&entry);
    pbw_varint_field(&t, 14, 1); /* data_location = EXTERNAL */
    test_model m;
    tm_init(&m, 13);
    pbw_message_field(&m.graph, 5, &t);
    pbw_free(&t);
    tm_node(&m, "Identity", LIST("w"), LIST("y"), NULL);
    tm_output(&m, "y", KILN_FLOAT32);
    tm_finish(&m);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    f = fopen(path, "wb");
    fwrite(m.model.data, 1, m.model.size, f);
    fclose(f);
    tm_free(&m);
}

static void external_data_is_mapped(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_external_model(dir, "weights.bin", 16);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    kiln_model *model;
    assert_int_equal(kiln_model_load(path, &model), KILN_OK);
    kiln_model_summary s;
    kiln_model_summarize(model, &s);
    assert_int_equal(s.weight_bytes_mapped, 12);
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, NULL, &session), KILN_OK);
    assert_int_equal(kiln_session_run(session), KILN_OK);
    kiln_tensor out;
    kiln_session_output(session, 0, &out);
    assert_true(((float *)out.data)[2] == 2.0f);
    kiln_session_free(session);
    kiln_model_free(model);

    /* a location outside the model's directory is refused, and so is a range past the file's end */
    write_external_model(dir, "../weights.bin", 0);
    assert_int_equal(kiln_model_load(path, &model), KILN_ERR_MALFORMED);
    assert_non_null(strstr(kiln_last_error(), "leaves the model's directory"));
    write_external_model(dir, "weights.bin", 0);
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    assert_int_equal(truncate(path, 8), 0);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    assert_int_equal(kiln_model_load(path, &model), KILN_ERR_MALFORMED);
    assert_non_null(strstr(kiln_last_error(), "tensor 'w'"));
    snprintf(path, sizeof path, "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

static void model_local_functions_are_inlined(void **state)
{
    (void)state;
    /* function Flat2(X) -> (Y): Y = Flatten(Identity(X), axis = @axis_ref) */
    pbw fn = {0}, node = {0}, attr = {0}, opset = {0};
    pbw_string_field(&fn, 1, "Flat2");
    pbw_string_field(&fn, 10, "local");
    pbw_string_field(&fn, 4, "X");
    pbw_string_field(&fn, 5, "Y");
    pbw_string_field(&fn, 6, "axis_ref");
    pbw_string_field(&node, 1, "X");
    pbw_string_field(&node, 2, "T");
    pbw_string_field(&node, 4, "Identity");
    pbw_message_field(&fn, 7, &node);
    pbw_free(&node);
    pbw_string_field(&node, 1, "T");
    pbw_string_field(&node, 2, "Y");
    pbw_string_field(&node, 4, "Flatten");
    pbw_string_field(&attr, 1, "axis");
    pbw_varint_field(&attr, 20, 2);
    pbw_string_field(&attr, 21, "axis_ref");
    pbw_message_field(&node, 5, &attr);
    pbw_message_field(&fn, 7, &node);
    pbw_string_field(&opset, 1, "");
    pbw_varint_field(&opset, 2, 13);
    pbw_message_field(&fn, 9, &opset);

    test_model m;
    tm_init(&m, 13);
    tm_input(&m, "x", KILN_FLOAT32, 3, (int64_t[]){2, 3, 4});
    pbw call = {0}, call_attrs = {0};
    pbw_string_field(&call, 1, "x");
    pbw_string_field(&call, 2, "y");
    pbw_string_field(&call, 4, "Flat2");
    pbw_string_field(&call, 7, "local");
    tm_attr_int(&call_attrs, "axis_ref", 2);
    pbw_append(&call, &call_attrs); /* tm_attr_* emits node attribute fields (5) */
    pbw_message_field(&m.graph, 1, &call);
    tm_output(&m, "y", KILN_FLOAT32);
    tm_finish(&m);
    pbw local_opset = {0};
    pbw_string_field(&local_opset, 1, "local");
    pbw_varint_field(&local_opset, 2, 1);
    pbw_message_field(&m.model, 8, &local_opset);
    pbw_message_field(&m.model, 25, &fn);

    kiln_model *model;
    assert_int_equal(kiln_model_load_from_memory(m.model.data, m.model.size, NULL, 0, &model), KILN_OK);
    kiln_value_info info;
    assert_int_equal(kiln_model_output_info(model, 0, &info), KILN_OK);
    assert_int_equal(info.rank, 2);
    assert_int_equal(info.dims[0], 6); /* Flatten at axis 2 of [2,3,4] */
    assert_int_equal(info.dims[1], 4);
    kiln_model_free(model);
    pbw_free(&fn);
    pbw_free(&node);
    pbw_free(&attr);
    pbw_free(&opset);
    pbw_free(&call);
    pbw_free(&call_attrs);
    pbw_free(&local_opset);
    tm_free(&m);
}

static void symbolic_dims_flow_through_shape_chains(void **state)
{
    (void)state;
    /* y = Reshape(x, Shape(x)), z = Flatten(x): y keeps [N0, 6]; z is [N0, 6] too (axis 1) */
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 3, (int64_t[]){-1, 2, 3});
    tm_node(&r.tm, "Shape", LIST("x"), LIST("s"), NULL);
    tm_node(&r.tm, "Reshape", LIST("x", "s"), LIST("y"), NULL);
    tm_node(&r.tm, "Flatten", LIST("y"), LIST("z"), NULL);
    tm_output(&r.tm, "z", KILN_FLOAT32);
    assert_int_equal(tr_load(&r), KILN_OK);
    kiln_value_info info;
    kiln_model_output_info(r.model, 0, &info);
    assert_int_equal(info.rank, 2);
    assert_int_equal(info.dims[0], -1);
    assert_string_equal(info.dim_names[0], "N0");
    assert_int_equal(info.dims[1], 6);
    /* and it runs for two different batch sizes, re-planning in between */
    kiln_session *session;
    assert_int_equal(kiln_session_create(r.model, NULL, &session), KILN_OK);
    float data[5 * 6];
    for (int i = 0; i < 30; i++) data[i] = (float)i;
    for (int64_t batch = 1; batch <= 5; batch += 4) {
        assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 3, (int64_t[]){batch, 2, 3}, data), KILN_OK);
        assert_int_equal(kiln_session_run(session), KILN_OK);
        kiln_tensor out;
        kiln_session_output(session, 0, &out);
        assert_int_equal(out.dims[0], batch);
        assert_true(((float *)out.data)[batch * 6 - 1] == (float)(batch * 6 - 1));
    }
    kiln_session_free(session);
    tr_free(&r);
}

static void static_shape_chains_fold_at_load(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 2, (int64_t[]){4, 6});
    tm_node(&r.tm, "Shape", LIST("x"), LIST("s"), NULL);
    tm_node(&r.tm, "Reshape", LIST("x", "s"), LIST("y"), NULL);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_int_equal(tr_load(&r), KILN_OK);
    kiln_model_summary s;
    kiln_model_summarize(r.model, &s);
    assert_int_equal(s.nodes_in_file, 2);
    assert_int_equal(s.nodes, 1); /* Shape folded to a constant */
    size_t arena, peak;
    assert_int_equal(kiln_model_plan_memory(r.model, 1, &arena, &peak), KILN_OK);
    assert_int_equal(arena, 0); /* Reshape of an input is a view: nothing to allocate */
    tr_free(&r);
}

static void wrong_inputs_are_refused_clearly(void **state)
{
    (void)state;
    test_run r;
    tr_init(&r, 13);
    tm_input(&r.tm, "x", KILN_FLOAT32, 2, (int64_t[]){-1, 3});
    tm_node(&r.tm, "Identity", LIST("x"), LIST("y"), NULL);
    tm_output(&r.tm, "y", KILN_FLOAT32);
    assert_int_equal(tr_load(&r), KILN_OK);
    kiln_session *session;
    assert_int_equal(kiln_session_create(r.model, NULL, &session), KILN_OK);
    float data[12] = {0};
    assert_int_equal(kiln_session_run(session), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_last_error(), "input 'x' was not set"));
    assert_int_equal(kiln_session_set_input(session, 0, KILN_INT64, 2, (int64_t[]){4, 3}, data), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_last_error(), "got int64, the model expects float32"));
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){4, 2}, data), KILN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(kiln_last_error(), "got shape [4,2], the model expects [?,3]"));
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 1, (int64_t[]){4}, data), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_session_set_input(session, 3, KILN_FLOAT32, 2, (int64_t[]){4, 3}, data), KILN_ERR_INVALID_ARGUMENT);
    kiln_session_free(session);
    tr_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reports_every_unsupported_node),
        cmocka_unit_test(rejects_undefined_input),
        cmocka_unit_test(rejects_cycles),
        cmocka_unit_test(rejects_double_definition),
        cmocka_unit_test(reports_wrong_attribute_type),
        cmocka_unit_test(opset_out_of_range_is_named),
        cmocka_unit_test(initializers_are_zero_copy_when_aligned),
        cmocka_unit_test(external_data_is_mapped),
        cmocka_unit_test(model_local_functions_are_inlined),
        cmocka_unit_test(symbolic_dims_flow_through_shape_chains),
        cmocka_unit_test(static_shape_chains_fold_at_load),
        cmocka_unit_test(wrong_inputs_are_refused_clearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
