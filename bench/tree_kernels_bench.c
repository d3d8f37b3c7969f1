/*
 * tree_kernels_bench.c — kiln's tree engine (kernels/tree_predict.c) alone, variant by variant, on the model of
 * bench/trees_vs_xgboost.py: what each walk kernel (portable C, AVX2, AVX-512) achieves without the session
 * around it, single-threaded. Built and run by trees_vs_xgboost.py; by hand:
 *
 *     cc -O2 -I . -I include bench/tree_kernels_bench.c build/libkiln.a -lm -lpthread -o tree_kernels_bench
 *     tree_kernels_bench TREES.txt X.f32 ROWS [SECONDS]
 *
 * TREES.txt (written by trees_vs_xgboost.py from XGBoost's JSON) is "n_trees n_features base_margin", then per
 * tree its node count and one line per node: "left right feature threshold default_left leaf_value"
 * (left = -1 for a leaf). Splits are XGBoost's: float32 x < threshold, missing to the default side, leaves
 * summed in float32 from the base margin. Prints one JSON line per variant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_harness.h"
#include "kernels/tree_ensemble.h"
#include "kernels/tree_fast.h"

static void die(const char *what)
{
    fprintf(stderr, "tree_kernels_bench: %s\n", what);
    exit(1);
}

/* Reads TREES.txt into `raw` (arrays malloc'd and never freed: the program ends). */
static void read_trees(const char *path, tree_raw_ensemble *raw, double *base)
{
    FILE *f = fopen(path, "r");
    int n_trees, n_features;
    if (!f || fscanf(f, "%d %d %lf", &n_trees, &n_features, base) != 3 || n_trees < 1) die("bad trees file");
    tree_raw_tree *trees = calloc((size_t)n_trees, sizeof *trees);
    for (int t = 0; t < n_trees; t++) {
        int n;
        if (fscanf(f, "%d", &n) != 1 || n < 1) die("bad tree");
        tree_raw_node *nodes = calloc((size_t)n, sizeof *nodes);
        tree_leaf_weight *weights = calloc((size_t)n, sizeof *weights);
        for (int i = 0; i < n; i++) {
            int left, right, feature, default_left;
            double threshold, value;
            if (fscanf(f, "%d %d %d %lf %d %lf", &left, &right, &feature, &threshold, &default_left, &value) != 6)
                die("bad node");
            if (left < 0) {
                weights[i] = (tree_leaf_weight){0, value};
                nodes[i] = (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = &weights[i], .n_weights = 1};
                continue;
            }
            nodes[i] = (tree_raw_node){.kind = TREE_RAW_NUMERIC, .feature = feature, .compare = TREE_CMP_LT,
                                       .threshold = threshold,
                                       .missing = default_left ? TREE_MISSING_TRUE : TREE_MISSING_FALSE,
                                       .true_child = left, .false_child = right};
        }
        trees[t] = (tree_raw_tree){nodes, n, 0};
    }
    fclose(f);
    *raw = (tree_raw_ensemble){.n_features = n_features, .n_targets = 1, .trees = trees, .n_trees = n_trees,
                               .base_values = base, .sum_in_float32 = true};
}

/* One walk variant, as the harness calls it. */
typedef struct variant_run {
    tree_variant variant;
    const tree_ensemble *e;
    double *scores;
} variant_run;

static float predict_variant(const void *ctx, const float *rows, long n)
{
    const variant_run *r = ctx;
    tree_ensemble_predict_with_variant(r->variant, r->e, rows, n, r->e->n_features, r->scores, NULL);
    return (float)r->scores[0];
}

int main(int argc, char **argv)
{
    if (argc < 4) die("usage: tree_kernels_bench TREES.txt X.f32 ROWS [SECONDS]");
    tree_raw_ensemble raw;
    double base;
    read_trees(argv[1], &raw, &base);
    long rows = atol(argv[3]);
    double seconds = argc > 4 ? atof(argv[4]) : 1.0;
    size_t count = (size_t)rows * (size_t)raw.n_features;
    float *x = bench_read_rows(argv[2], count);
    double *scores = malloc((size_t)rows * sizeof *scores), *want = malloc((size_t)rows * sizeof *want);
    if (!scores || !want) die("out of memory");
    region mem;
    region_init(&mem);
    tree_ensemble e;
    if (tree_ensemble_build(&raw, &mem, &e) != KILN_OK) die("the trees do not build");
    tree_ensemble_predict_reference(&e, x, rows, raw.n_features, want);
    for (int v = TREE_VARIANT_PORTABLE; v < TREE_VARIANT_COUNT; v++) {
        if (!tree_variant_available((tree_variant)v)) continue;
        tree_ensemble_predict_with_variant((tree_variant)v, &e, x, rows, raw.n_features, scores, NULL);
        bool same = memcmp(scores, want, (size_t)rows * sizeof *scores) == 0;
        variant_run run = {(tree_variant)v, &e, scores};
        double batch1 = bench_batch1_p50_us(predict_variant, &run, x, rows, raw.n_features, seconds);
        double batch = bench_batch_ms(predict_variant, &run, x, rows, seconds);
        printf("{\"variant\": \"%s\", \"batch1_p50_us\": %.3f, \"batch_ms\": %.3f, \"equals_reference\": %s}\n",
               tree_variant_name((tree_variant)v), batch1, batch, same ? "true" : "false");
    }
    region_free(&mem);
    return 0;
}
