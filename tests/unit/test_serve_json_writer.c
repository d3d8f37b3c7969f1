/*
 * test_serve_json_writer.c — the server's JSON writer (serve/json_writer.h): commas and nesting, escapes, and
 * floats in the shortest text that reads back exactly.
 *
 * The float32 fast path (double arithmetic, no printf) must agree with strtof on every value it prints and be
 * no longer than the printf path's answer; so every test value is checked against both: random bit patterns
 * over the whole float range, values near powers of ten and of two, and the decimals requests usually hold.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/json_writer.h"
#include "testlib.h"

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The shortest of %.7g..%.9g that reads back as v: what the printf path answers. */
static size_t printf_shortest(float v, char *buf)
{
    int n = 0;
    for (int digits = 7; digits <= 9; digits++) {
        n = snprintf(buf, 32, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return (size_t)n;
}

static void check_float(float v)
{
    if (!isfinite(v)) return;
    char got[40] = {0}, want[40];
    size_t n = jw_format_float32(v, got);
    assert_int_equal(n, strlen(got));
    float back = strtof(got, NULL);
    if (memcmp(&back, &v, sizeof v) != 0 && !(v == 0 && back == 0))
        fail_msg("%.9g printed as %s, which reads back as %.9g", (double)v, got, (double)back);
    size_t shortest = printf_shortest(v, want);
    if (n > shortest + 1) fail_msg("%.9g printed as %s, longer than %s", (double)v, got, want);
}

static void floats_read_back_exactly(void **state)
{
    (void)state;
    random_seed(5);
    for (int i = 0; i < 300000; i++) check_float(float_from_bits((uint32_t)random_int(0, UINT32_MAX)));
    for (int e = -45; e <= 38; e++) {
        float p = (float)pow(10.0, e);
        for (int step = -3; step <= 3; step++) {
            float v = p;
            for (int s = 0; s < abs(step); s++) v = nextafterf(v, step < 0 ? 0.0f : INFINITY);
            check_float(v);
            check_float(-v);
        }
    }
    for (int e = -149; e <= 127; e++) {
        float p = ldexpf(1.0f, e);
        check_float(p);
        check_float(nextafterf(p, 0.0f));
        check_float(nextafterf(p, INFINITY));
    }
    for (int i = 0; i < 100000; i++) check_float((float)random_int(-99999999, 99999999) / 1e4f);
}

static void common_values_print_short(void **state)
{
    (void)state;
    static const struct {
        float v;
        const char *text;
    } cases[] = {{0.1f, "0.1"},      {13.82f, "13.82"},  {-2.5f, "-2.5"},     {1e-4f, "0.0001"},
                 {1.5e-5f, "1.5e-05"}, {100.0f, "100"},  {1234567.0f, "1234567"}, {0.0f, "0"},
                 {3.4028235e38f, "3.4028235e+38"}, {0.99820197f, "0.99820197"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[40] = {0};
        jw_format_float32(cases[i].v, buf);
        assert_string_equal(buf, cases[i].text);
    }
}

static void documents_are_well_formed(void **state)
{
    (void)state;
    json_writer w;
    jw_init(&w);
    jw_object_begin(&w);
    jw_key(&w, "name");
    jw_string(&w, "a\"b\\c\n\x01");
    jw_key(&w, "data");
    jw_array_begin(&w);
    jw_int(&w, -3);
    jw_uint(&w, UINT64_MAX);
    jw_float32(&w, 0.5f);
    jw_float64(&w, 0.1);
    jw_bool(&w, true);
    jw_null(&w);
    jw_float32(&w, NAN);
    jw_array_end(&w);
    jw_key(&w, "raw");
    jw_string_n(&w, "\xff", 1);
    jw_object_end(&w);
    size_t n;
    char *text = jw_take(&w, &n);
    assert_non_null(text);
    const char *want = "{\"name\":\"a\\\"b\\\\c\\n\\u0001\",\"data\":[-3,18446744073709551615,0.5,0.1,true,null,NaN],"
                       "\"raw\":\"\\u00ff\"}";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(text, want, n);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(floats_read_back_exactly),
        cmocka_unit_test(common_values_print_short),
        cmocka_unit_test(documents_are_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
