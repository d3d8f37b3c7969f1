/*
 * xgb_c_api_bench.c — the XGBoost side of bench/trees_vs_xgboost.py: XGBoost's own C API predictor
 * (libxgboost-dev) on a model and raw float32 rows, single-threaded, printing one JSON line.
 *
 *     cc -O2 bench/xgb_c_api_bench.c -o xgb_bench -lxgboost -lm      (not part of kiln's build)
 *     xgb_bench --model model.json --data x.f32 --rows N --features F [--seconds S] [--check OUT.f32]
 *
 * Two predictor entry points are timed and the faster one is reported for each measurement, named in the output:
 *   inplace  XGBoosterPredictFromDense on the caller's array (the array interface string is written per call,
 *            as any caller must), no DMatrix;
 *   dmatrix  XGDMatrixCreateFromMat + XGBoosterPredictFromDMatrix + XGDMatrixFree per call. The DMatrix must be
 *            new each time: XGBoost caches a DMatrix's predictions and would answer a repeated one without
 *            traversing any tree.
 * Batch 1 cycles through the rows, so the branch predictor cannot learn one path.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "bench/bench_harness.h"

#define CHECK(call)                                                                                       \
    do {                                                                                                  \
        if ((call) != 0) {                                                                                \
            fprintf(stderr, "%s: %s\n", #call, XGBGetLastError());                                         \
            exit(1);                                                                                      \
        }                                                                                                 \
    } while (0)

static const char *const predict_config =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false, "
    "\"cache_id\": 0, \"missing\": NaN}";

typedef struct bench {
    BoosterHandle booster;
    const float *x;
    long rows, features;
} bench;

static const float *predict_inplace(const bench *b, const float *rows, long n)
{
    char interface[256];
    snprintf(interface, sizeof interface,
             "{\"data\": [%llu, true], \"shape\": [%ld, %ld], \"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long long)(uintptr_t)rows, n, b->features);
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    CHECK(XGBoosterPredictFromDense(b->booster, interface, predict_config, NULL, &shape, &dim, &out));
    return out;
}

static const float *predict_dmatrix(const bench *b, const float *rows, long n)
{
    DMatrixHandle m;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    CHECK(XGDMatrixCreateFromMat(rows, (bst_ulong)n, (bst_ulong)b->features, NAN, &m));
    CHECK(XGBoosterPredictFromDMatrix(b->booster, m, predict_config, &shape, &dim, &out));
    XGDMatrixFree(m); /* the output buffer belongs to the booster, not the DMatrix */
    return out;
}

/* The harness's view of each entry point: the first prediction of the call. */
static float inplace_for_harness(const void *b, const float *rows, long n) { return predict_inplace(b, rows, n)[0]; }
static float dmatrix_for_harness(const void *b, const float *rows, long n) { return predict_dmatrix(b, rows, n)[0]; }

int main(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *check = NULL;
    bench b = {0};
    double seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--rows")) b.rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--features")) b.features = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--check")) check = argv[i + 1];
    }
    if (!model || !data || b.rows < 1 || b.features < 1) {
        fprintf(stderr, "usage: xgb_bench --model M --data X.f32 --rows N --features F [--seconds S] [--check OUT]\n");
        return 2;
    }
    float *x = bench_read_rows(data, (size_t)(b.rows * b.features));
    b.x = x;
    CHECK(XGBoosterCreate(NULL, 0, &b.booster));
    CHECK(XGBoosterLoadModel(b.booster, model));
    CHECK(XGBoosterSetParam(b.booster, "nthread", "1"));
    if (check) {
        FILE *f = fopen(check, "wb");
        fwrite(predict_inplace(&b, x, b.rows), sizeof(float), (size_t)b.rows, f);
        fclose(f);
        printf("{\"written\": \"%s\"}\n", check);
        return 0;
    }
    bench_batch1_p50_us(inplace_for_harness, &b, x, b.rows, b.features, 0.2); /* warm up */
    double b1_inplace = bench_batch1_p50_us(inplace_for_harness, &b, x, b.rows, b.features, seconds / 2);
    double b1_dmatrix = bench_batch1_p50_us(dmatrix_for_harness, &b, x, b.rows, b.features, seconds / 2);
    double bt_inplace = bench_batch_ms(inplace_for_harness, &b, x, b.rows, seconds / 2);
    double bt_dmatrix = bench_batch_ms(dmatrix_for_harness, &b, x, b.rows, seconds / 2);
    printf("{\"batch1_p50_us\": %.3f, \"batch1_path\": \"%s\", \"batch_ms\": %.3f, \"batch_path\": \"%s\", "
           "\"batch1_inplace_us\": %.3f, \"batch1_dmatrix_us\": %.3f, \"batch_inplace_ms\": %.3f, "
           "\"batch_dmatrix_ms\": %.3f}\n",
           fmin(b1_inplace, b1_dmatrix), b1_inplace <= b1_dmatrix ? "inplace" : "dmatrix",
           fmin(bt_inplace, bt_dmatrix), bt_inplace <= bt_dmatrix ? "inplace" : "dmatrix", b1_inplace, b1_dmatrix,
           bt_inplace, bt_dmatrix);
    XGBoosterFree(b.booster);
    free(x);
    return 0;
}
