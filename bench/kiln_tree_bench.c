/*
 * kiln_tree_bench.c — the kiln side of bench/trees_vs_xgboost.py: a tree model through kiln's public C API
 * (include/kiln.h) on raw float32 rows, single-threaded, printing one JSON line. Timing covers whole
 * kiln_session_set_input + kiln_session_run + kiln_session_output calls, as a program embedding kiln makes them.
 *
 *     cc -O2 -I include bench/kiln_tree_bench.c build/libkiln.a -lm -lpthread -o kiln_bench
 *     kiln_bench --model model.json [--fallback-model model_kiln.onnx] --data x.f32 --rows N --features F
 *                [--seconds S] [--threads T] [--check OUT.f32]
 *
 * The fallback is loaded when kiln cannot load --model (an XGBoost JSON before kiln's native loader existed);
 * the JSON line names the model used. Batch 1 cycles through the rows, one different row per call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_harness.h"
#include "kiln.h"

static void check(kiln_status st, const char *what)
{
    if (st != KILN_OK) {
        fprintf(stderr, "%s: %s\n", what, kiln_last_error());
        exit(1);
    }
}

typedef struct bench {
    kiln_session *session;
    int probabilities; /* output index */
    const float *x;
    long rows, features;
} bench;

static const float *predict(const bench *b, const float *rows, long n)
{
    int64_t dims[2] = {n, b->features};
    kiln_tensor out;
    check(kiln_session_set_input(b->session, 0, KILN_FLOAT32, 2, dims, rows), "set_input");
    check(kiln_session_run(b->session), "run");
    check(kiln_session_output(b->session, b->probabilities, &out), "output");
    return out.data;
}

/* The harness's view of a prediction: P(class 1) of the first row. */
static float predict_for_harness(const void *b, const float *rows, long n) { return predict(b, rows, n)[1]; }

int main(int argc, char **argv)
{
    const char *model_path = NULL, *fallback = NULL, *data = NULL, *out_path = NULL;
    bench b = {0};
    double seconds = 2;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model_path = argv[i + 1];
        else if (!strcmp(argv[i], "--fallback-model")) fallback = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--rows")) b.rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--features")) b.features = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--check")) out_path = argv[i + 1];
    }
    if (!model_path || !data || b.rows < 1 || b.features < 1) {
        fprintf(stderr, "usage: kiln_bench --model M [--fallback-model M2] --data X.f32 --rows N --features F "
                        "[--seconds S] [--threads T] [--check OUT]\n");
        return 2;
    }
    kiln_model *model;
    if (kiln_model_load(model_path, &model) != KILN_OK) {
        if (!fallback) check(KILN_ERR_UNSUPPORTED, model_path);
        model_path = fallback;
        check(kiln_model_load(model_path, &model), model_path);
    }
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.threads = threads;
    check(kiln_session_create(model, &options, &b.session), "session");
    b.probabilities = kiln_model_output_index(model, "probabilities");
    if (b.probabilities < 0) check(KILN_ERR_INVALID_ARGUMENT, "the model has no 'probabilities' output");
    float *x = bench_read_rows(data, (size_t)(b.rows * b.features));
    b.x = x;
    if (out_path) {
        const float *p = predict(&b, x, b.rows);
        FILE *f = fopen(out_path, "wb");
        for (long r = 0; r < b.rows; r++) fwrite(&p[2 * r + 1], sizeof(float), 1, f);
        fclose(f);
        printf("{\"model\": \"%s\", \"written\": \"%s\"}\n", model_path, out_path);
        return 0;
    }
    bench_batch1_p50_us(predict_for_harness, &b, x, b.rows, b.features, 0.2); /* warm up: plans the batch-1 arena */
    double b1 = bench_batch1_p50_us(predict_for_harness, &b, x, b.rows, b.features, seconds / 2);
    predict(&b, x, b.rows); /* re-plans for the whole batch once, outside the timing */
    double bt = bench_batch_ms(predict_for_harness, &b, x, b.rows, seconds / 2);
    printf("{\"model\": \"%s\", \"threads\": %d, \"batch1_p50_us\": %.3f, \"batch_ms\": %.3f}\n", model_path, threads,
           b1, bt);
    kiln_session_free(b.session);
    kiln_model_free(model);
    free(x);
    return 0;
}
