/*
 * test_memplan.c — the memory planner: no two buffers alive at once may overlap, the arena covers every
 * buffer, and the plan is never smaller than the peak of live bytes (the lower bound).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "runtime/memplan.h"
#include "testlib.h"

static void assert_valid_plan(const memplan_buffer *b, int n, size_t arena)
{
    for (int i = 0; i < n; i++) {
        assert_true(b[i].offset % 64 == 0);
        assert_true(b[i].offset + b[i].bytes <= arena);
        for (int j = i + 1; j < n; j++) {
            bool live_together = b[i].first_use <= b[j].last_use && b[j].first_use <= b[i].last_use;
            bool disjoint = b[i].offset + b[i].bytes <= b[j].offset || b[j].offset + b[j].bytes <= b[i].offset;
            if (live_together) assert_true(disjoint);
        }
    }
}

static void chain_reuses_memory(void **state)
{
    (void)state;
    /* a -> b -> c -> d, each read only by the next: two buffers suffice */
    memplan_buffer b[4] = {{1000, 0, 1, 0}, {1000, 1, 2, 0}, {1000, 2, 3, 0}, {1000, 3, 4, 0}};
    size_t arena;
    assert_int_equal(memplan_assign(b, 4, 64, &arena), KILN_OK);
    assert_valid_plan(b, 4, arena);
    assert_int_equal(arena, 2 * 1024);
    assert_int_equal(memplan_peak_live(b, 4, 64), 2 * 1024);
}

static void random_lifetimes_never_overlap(void **state)
{
    (void)state;
    random_seed(12345);
    for (int trial = 0; trial < 200; trial++) {
        memplan_buffer b[40];
        int n = random_int(1, 40);
        for (int i = 0; i < n; i++) {
            int first = random_int(0, 29);
            b[i] = (memplan_buffer){(size_t)random_int(1, 5000), first, first + random_int(0, 9), 0};
        }
        size_t arena;
        assert_int_equal(memplan_assign(b, n, 64, &arena), KILN_OK);
        assert_valid_plan(b, n, arena);
        assert_true(arena >= memplan_peak_live(b, n, 64));
    }
}

static void empty_plan(void **state)
{
    (void)state;
    size_t arena = 123;
    assert_int_equal(memplan_assign(NULL, 0, 64, &arena), KILN_OK);
    assert_int_equal(arena, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_reuses_memory),
        cmocka_unit_test(random_lifetimes_never_overlap),
        cmocka_unit_test(empty_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
