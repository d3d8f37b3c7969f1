/*
 * test_batch_number.c — kiln batch's number parsing and formatting (batch/number.h) against the C library.
 *
 * The fast paths must give exactly the C library's answers: every parsed float32 equals strtof's (and
 * float64 strtod's) on the same text, including the texts where rounding through a double could go wrong
 * (halfway between two floats, 20+ digits, subnormals, overflow); every formatted float equals printf's
 * "%.9g" byte for byte (so it reads back to the same float). Millions of random values cover the cases no
 * list of examples would.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batch/number.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static float random_float_bits(void)
{
    uint32_t bits = (uint32_t)next_random();
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void check_float_text(const char *text)
{
    float got, want = strtof(text, NULL);
    assert_true(number_parse_float(text, strlen(text), &got));
    if (isnan(want)) {
        assert_true(isnan(got));
        return;
    }
    if (memcmp(&got, &want, sizeof got) != 0) fail_msg("'%s': got %.9g, strtof gives %.9g", text, got, want);
}

static void check_double_text(const char *text)
{
    double got, want = strtod(text, NULL);
    assert_true(number_parse_double(text, strlen(text), &got));
    if (memcmp(&got, &want, sizeof got) != 0) fail_msg("'%s': got %.17g, strtod gives %.17g", text, got, want);
}

static void parse_matches_strtof_on_examples(void **state)
{
    (void)state;
    const char *texts[] = {
        "0", "-0", "1", "-1", "0.1", "3.14159265", "1e10", "1E-10", "+2.5", ".5", "5.", "007", "1e38", "3.4028235e38",
        "3.4028236e38", "1e39", "-1e39", "1e-38", "1.17549435e-38", "1e-45", "1.4e-45", "7e-46", "1e-50",
        "123456789012345678901234567890", "0.000000000000000000000000000001", "16777217", "16777219",
        "33554434.999999999999", "1.00000005960464477539062500", "1.000000059604644775390625",
        "1.0000000596046447753906251", "0.10000000149011611938476562", "9007199254740993", "4.9406564584124654e-324",
        "2.2250738585072011e-308", "1.7976931348623157e308", "12345678901234567890e-10", "1e22", "1e23", "1e-22",
        "0.0000001", "  42  ", "\t-7.25",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        check_float_text(texts[i]);
        check_double_text(texts[i]);
    }
}

static void parse_matches_strtof_on_random_floats(void **state)
{
    (void)state;
    char text[64];
    for (int i = 0; i < 2000000; i++) {
        float f = random_float_bits();
        if (!isfinite(f)) continue;
        /* shortest-ish, 9 digits, and a few digits (which usually fall between floats) */
        int precision = (int)(next_random() % 12) + 1;
        snprintf(text, sizeof text, (next_random() & 1) ? "%.*g" : "%.*e", precision, (double)f);
        check_float_text(text);
    }
}

static void parse_matches_strtod_on_random_doubles(void **state)
{
    (void)state;
    char text[64];
    for (int i = 0; i < 500000; i++) {
        uint64_t bits = next_random();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) continue;
        snprintf(text, sizeof text, "%.*g", (int)(next_random() % 18) + 1, d);
        check_double_text(text);
    }
}

static void parse_refuses_what_is_not_a_number(void **state)
{
    (void)state;
    const char *bad[] = {"", " ", "abc", "1.2.3", "1e", "1e+", "--1", "+-1", "0x10", "1,5", "1 2", "e5", ".", "-",
                         "nan(123)", "infinit", "1e5x"};
    float f;
    double d;
    int64_t i;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (number_parse_float(bad[k], strlen(bad[k]), &f)) fail_msg("'%s' parsed as a float", bad[k]);
        if (number_parse_double(bad[k], strlen(bad[k]), &d)) fail_msg("'%s' parsed as a double", bad[k]);
        if (number_parse_int64(bad[k], strlen(bad[k]), &i)) fail_msg("'%s' parsed as an integer", bad[k]);
    }
    assert_true(number_parse_float("NaN", 3, &f) && isnan(f));
    assert_true(number_parse_float("-inf", 4, &f) && isinf(f) && f < 0);
    assert_true(number_parse_float("Infinity", 8, &f) && isinf(f) && f > 0);
}

static void parse_integers(void **state)
{
    (void)state;
    int64_t v;
    assert_true(number_parse_int64("9223372036854775807", 19, &v) && v == INT64_MAX);
    assert_true(number_parse_int64("-9223372036854775808", 20, &v) && v == INT64_MIN);
    assert_false(number_parse_int64("9223372036854775808", 19, &v));
    assert_true(number_parse_int64("3.0", 3, &v) && v == 3);
    assert_true(number_parse_int64("1e3", 3, &v) && v == 1000);
    assert_false(number_parse_int64("3.5", 3, &v));
    assert_false(number_parse_int64("nan", 3, &v));
}

static void check_format(float f)
{
    char got[NUMBER_FORMAT_MAX + 1], want[64];
    size_t n = number_format_float(f, got);
    got[n] = '\0';
    snprintf(want, sizeof want, "%.9g", (double)f);
    if (strcmp(got, want) != 0) fail_msg("%a: got '%s', printf gives '%s'", (double)f, got, want);
    float back;
    if (isfinite(f)) {
        assert_true(number_parse_float(got, n, &back));
        assert_memory_equal(&back, &f, sizeof f);
    }
}

static void format_matches_printf(void **state)
{
    (void)state;
    const float examples[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1e-5f, 1e-4f, 0.00012345f, 123456789.0f, 1e9f, 999999999.0f,
                              9.99999999e8f, 1e10f, 3.4028235e38f, 1.17549435e-38f, 1e-45f, 0.5f, 2.5f, 1e-28f,
                              0.999999999f, 100.0f, 65504.0f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) check_format(examples[i]);
    for (int i = 0; i < 3000000; i++) check_format(random_float_bits());
    for (int i = 0; i < 1000000; i++) check_format((float)(next_random() % 2000000) / 1000.0f); /* short decimals */
}

static void format_integers(void **state)
{
    (void)state;
    char buf[NUMBER_FORMAT_MAX + 1];
    buf[number_format_int64(INT64_MIN, buf)] = '\0';
    assert_string_equal(buf, "-9223372036854775808");
    buf[number_format_int64(0, buf)] = '\0';
    assert_string_equal(buf, "0");
    buf[number_format_uint64(UINT64_MAX, buf)] = '\0';
    assert_string_equal(buf, "18446744073709551615");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_matches_strtof_on_examples),
        cmocka_unit_test(parse_matches_strtof_on_random_floats),
        cmocka_unit_test(parse_matches_strtod_on_random_doubles),
        cmocka_unit_test(parse_refuses_what_is_not_a_number),
        cmocka_unit_test(parse_integers),
        cmocka_unit_test(format_matches_printf),
        cmocka_unit_test(format_integers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
