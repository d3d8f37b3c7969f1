/*
 * fuzz_models.c — hostile model files: every truncation of a model (all lengths for small files, a dense
 * sample for larger ones) and thousands of random byte corruptions must end in a clean error or a model
 * that runs — never a crash, an out-of-bounds read, undefined behaviour or a leak. Run under
 * AddressSanitizer and UndefinedBehaviorSanitizer in CI, where any of those aborts the test.
 *
 * Each mutated copy lives in its own exact-size heap block, so a read one byte past the end is caught. When
 * a mutant loads, it is also run on zero-filled inputs of its declared shapes (free dims set to 2; sequences
 * and optionals empty), since
 * corrupted shapes and attributes must fail at load or plan time, not crash a kernel.
 *
 * usage: fuzz_models [--flips N] [--seed S] MODEL.onnx ...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#define FULL_TRUNCATION_LIMIT (64 * 1024) /* files up to this size are cut at every length */
#define SAMPLED_TRUNCATIONS 3000
#define MAX_RUN_ELEMENTS (1 << 20)           /* inputs larger than this are not allocated by the harness */
#define MAX_RUN_ARENA ((size_t)256 << 20)

static uint64_t rng_state;

static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

typedef struct counts {
    long loaded, rejected, ran, run_failed;
} counts;

/* Binds zero inputs of the declared shapes and runs once; skips absurd sizes. */
static void try_run(kiln_model *model, counts *c)
{
    size_t arena = 0;
    if (kiln_model_plan_memory(model, 2, &arena, NULL) == KILN_OK && arena > MAX_RUN_ARENA) return;
    kiln_session *session;
    if (kiln_session_create(model, NULL, &session) != KILN_OK) return;
    int n = kiln_model_input_count(model);
    void **buffers = calloc((size_t)n + 1, sizeof *buffers);
    int ok = buffers != NULL;
    for (int i = 0; ok && i < n; i++) {
        kiln_value_info info;
        kiln_model_input_info(model, i, &info);
        if (info.kind != KILN_VALUE_TENSOR && kiln_dtype_size(info.dtype) != 0) {
            /* a sequence or optional: bound empty (kiln.h's encoding: no elements, data not NULL) */
            buffers[i] = calloc(1, sizeof(kiln_tensor));
            ok = buffers[i] && kiln_session_set_input(session, i, info.dtype, 1, (int64_t[]){0}, buffers[i]) == KILN_OK;
            continue;
        }
        if (info.rank < 0 || info.dtype == KILN_STRING || kiln_dtype_size(info.dtype) == 0) {
            ok = 0;
            break;
        }
        int64_t dims[KILN_MAX_RANK], numel = 1;
        for (int d = 0; d < info.rank; d++) {
            dims[d] = info.dims[d] >= 0 ? info.dims[d] : 2;
            numel = dims[d] && numel > MAX_RUN_ELEMENTS / dims[d] ? MAX_RUN_ELEMENTS + 1 : numel * dims[d];
        }
        if (numel > MAX_RUN_ELEMENTS) {
            ok = 0;
            break;
        }
        buffers[i] = calloc((size_t)numel + 1, kiln_dtype_size(info.dtype));
        ok = buffers[i] && kiln_session_set_input(session, i, info.dtype, info.rank, dims, buffers[i]) == KILN_OK;
    }
    if (ok) {
        if (kiln_session_run(session) == KILN_OK) c->ran++;
        else c->run_failed++;
    }
    for (int i = 0; buffers && i < n; i++) free(buffers[i]);
    free(buffers);
    kiln_session_free(session);
}

static int try_load(const unsigned char *bytes, size_t size, counts *c)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, bytes, size);
    kiln_model *model = NULL;
    kiln_status st = kiln_model_load_from_memory(copy, size, NULL, 0, &model);
    int ok = 1;
    if (st == KILN_OK) {
        c->loaded++;
        try_run(model, c);
        kiln_model_free(model);
    } else {
        c->rejected++;
        const char *message = kiln_last_error();
        if (!message[0] || strchr(message, '\n')) {
            fprintf(stderr, "error message is not one non-empty line: '%s'\n", message);
            ok = 0;
        }
    }
    free(copy);
    return ok;
}

static int fuzz_file(const char *path, long flips)
{
    size_t size;
    unsigned char *data = read_file(path, &size);
    if (!data) {
        fprintf(stderr, "fuzz_models: cannot read %s\n", path);
        return 0;
    }
    counts c = {0};
    int ok = 1;
    if (size <= FULL_TRUNCATION_LIMIT) {
        for (size_t len = 0; len < size && ok; len++) ok = try_load(data, len, &c);
    } else {
        for (size_t len = 0; len < 4096 && ok; len++) ok = try_load(data, len, &c);
        for (int i = 0; i < SAMPLED_TRUNCATIONS && ok; i++) ok = try_load(data, (size_t)(next_random() % size), &c);
    }
    long truncations_loaded = c.loaded;
    unsigned char *mutant = malloc(size);
    for (long i = 0; i < flips && ok && mutant; i++) {
        memcpy(mutant, data, size);
        int n_changes = 1 + (int)(next_random() % 4);
        for (int k = 0; k < n_changes; k++) {
            size_t at = (size_t)(next_random() % size);
            /* half the time a random byte; otherwise values that stress varints and lengths */
            static const unsigned char nasty[] = {0x00, 0x7f, 0x80, 0xff, 0x01, 0x0a, 0x12};
            mutant[at] = next_random() % 2 ? (unsigned char)next_random() : nasty[next_random() % sizeof nasty];
        }
        ok = try_load(mutant, size, &c);
    }
    free(mutant);
    printf("%s: %zu bytes; truncations %s, %ld of them loaded; %ld corruptions; %ld loads in all, %ld rejected "
           "cleanly, %ld ran, %ld failed cleanly at run time\n",
           path, size, size <= FULL_TRUNCATION_LIMIT ? "at every length" : "sampled", truncations_loaded, flips,
           c.loaded, c.rejected, c.ran, c.run_failed);
    free(data);
    return ok;
}

int main(int argc, char **argv)
{
    long flips = 2000;
    rng_state = 0x2545f4914f6cdd1dull;
    int first = 1;
    while (first < argc && strncmp(argv[first], "--", 2) == 0) {
        if (strcmp(argv[first], "--flips") == 0 && first + 1 < argc) flips = atol(argv[++first]);
        else if (strcmp(argv[first], "--seed") == 0 && first + 1 < argc) rng_state = strtoull(argv[++first], NULL, 10) * 0x9e3779b97f4a7c15ull | 1;
        else {
            fprintf(stderr, "usage: fuzz_models [--flips N] [--seed S] MODEL.onnx ...\n");
            return 2;
        }
        first++;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: fuzz_models [--flips N] [--seed S] MODEL.onnx ...\n");
        return 2;
    }
    int ok = 1;
    for (int i = first; i < argc && ok; i++) ok = fuzz_file(argv[i], flips);
    return ok ? 0 : 1;
}
