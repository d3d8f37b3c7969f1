/*
 * tree_predict.c — tree_ensemble_predict: scores many rows by walking blocks of rows down one tree at a time,
 * and few rows by walking one row down many trees at once.
 *
 * Batches: rows are scored in blocks of BLOCK_ROWS. A block walks the whole ensemble tree by tree (the walk
 * kernels advance many rows side by side), so each tree's slots are fetched into the cache once per block
 * rather than once per row, and the block's rows stay in L1/L2 meanwhile. Blocks are independent: threads
 * take whole blocks.
 * Few rows (batch-1 latency): one row walks all trees of a chunk level by level (trees of equal depth together,
 * see tree_fast.h), so the steps of different trees overlap, then their leaves are added up.
 *
 * Either way each row's leaf values are aggregated in tree order, with the reference's arithmetic (tree_ref.c),
 * so the scores are bit-identical to tree_ensemble_predict_reference's. The kernels only find leaves; this
 * file does all the arithmetic.
 */
#include <math.h>

#include "core/platform/platform.h"
#include "kernels/tree_fast.h"

/* Rows scored together: the block's slots of one tree stay cached while all its rows walk it. */
#define BLOCK_ROWS 128
/* Below this many rows, each row walks the trees side by side instead: a block walk of so few rows is one
 * chain of dependent steps per tree (measured on a 500-tree depth-8 model, every variant: ~8 rows even). */
#define FEW_ROWS 8
/* Steps of walking (rows x trees x depth) worth a thread of their own: some 10 microseconds, against a
 * fork-join of about one. */
#define PARALLEL_MIN_STEPS (1 << 14)

/* ---- choosing kernels ----------------------------------------------------------------------------------- */

static const tree_kernels *kernels_for(tree_variant variant)
{
#if defined(KILN_HAVE_X86_KERNELS)
    const cpu_features *cpu = platform_cpu_features();
    switch (variant) {
    case TREE_VARIANT_AUTO:
        return cpu->avx512f ? &tree_kernels_avx512 : cpu->avx2_fma ? &tree_kernels_avx2 : &tree_kernels_portable;
    case TREE_VARIANT_AVX2: return cpu->avx2_fma ? &tree_kernels_avx2 : NULL;
    case TREE_VARIANT_AVX512: return cpu->avx512f ? &tree_kernels_avx512 : NULL;
    default: break;
    }
#endif
    if (variant == TREE_VARIANT_AUTO || variant == TREE_VARIANT_PORTABLE) return &tree_kernels_portable;
    return NULL;
}

bool tree_variant_available(tree_variant variant) { return kernels_for(variant) != NULL; }

const char *tree_variant_name(tree_variant variant)
{
    static const char *const names[] = {"auto", "portable", "avx2", "avx512"};
    return (unsigned)variant < TREE_VARIANT_COUNT ? names[variant] : "unknown";
}

/* ---- aggregation ----------------------------------------------------------------------------------------
 * The reference's arithmetic (tree_ref.c), written again on purpose: the reference stays independent of the
 * code it checks. */

static double aggregate_start(const tree_ensemble *e)
{
    if (e->sum_in_float32) return 0.0;
    return e->aggregate == TREE_AGG_MIN ? INFINITY : e->aggregate == TREE_AGG_MAX ? -INFINITY : 0.0;
}

/* n rows of scores (row-major, n_targets each) set to where aggregation starts. */
static void start_scores(const tree_ensemble *e, double *s, int64_t n)
{
    double start = aggregate_start(e);
    for (int64_t r = 0; r < n; r++)
        for (int32_t k = 0; k < e->n_targets; k++)
            s[r * e->n_targets + k] = e->sum_in_float32 ? (float)e->base_values[k] : start;
}

static void finish_scores(const tree_ensemble *e, double *s, int64_t n)
{
    if (e->sum_in_float32) return;
    double start = aggregate_start(e);
    for (int64_t i = 0; i < n * e->n_targets; i++) {
        int32_t k = (int32_t)(i % e->n_targets);
        if (e->aggregate == TREE_AGG_AVERAGE && e->average_divisor[k] > 0) s[i] /= e->average_divisor[k];
        if ((e->aggregate == TREE_AGG_MIN || e->aggregate == TREE_AGG_MAX) && s[i] == start) s[i] = 0.0;
        s[i] += e->base_values[k];
    }
}

static inline void aggregate(const tree_ensemble *e, double *s, double w)
{
    if (e->sum_in_float32) *s = (float)((float)*s + (float)w);
    else if (e->aggregate == TREE_AGG_MIN) *s = w < *s ? w : *s;
    else if (e->aggregate == TREE_AGG_MAX) *s = w > *s ? w : *s;
    else *s += w;
}

/* Adds the leaf tree t ended in (slot, relative to its base) to one row's scores s[0 .. n_targets). */
static inline void add_leaf(const tree_ensemble *e, const tree_fast_tree *t, int32_t slot, double *s)
{
    const tree_fast *f = e->fast;
    int64_t at = (int64_t)t->base + slot;
    if (f->value32 || f->value) {
        aggregate(e, &s[e->tree_target[t->tree]], f->value32 ? f->value32[at] : f->value[at]);
    } else {
        int32_t leaf = f->leaf[at];
        for (int32_t w = e->leaf_first[leaf]; w < e->leaf_first[leaf + 1]; w++)
            aggregate(e, &s[e->leaf_weights[w].target], e->leaf_weights[w].weight);
    }
}

/* Adds the leaves trees [first, last) ended in (slots[t - first]) to one row's scores. A single score is
 * carried in a register: through memory, every addition would wait for the previous one's store. */
static void add_row_leaves(const tree_ensemble *e, int32_t first, int32_t last, const int32_t *slots, double *s)
{
    const tree_fast *f = e->fast;
    if (f->value32 && e->n_targets == 1) {
        float sum = (float)*s;
        for (int32_t t = first; t < last; t++) sum += f->value32[f->trees[t].base + slots[t - first]];
        *s = sum;
    } else if (f->value && e->n_targets == 1 && (e->aggregate == TREE_AGG_SUM || e->aggregate == TREE_AGG_AVERAGE)) {
        double sum = *s;
        for (int32_t t = first; t < last; t++) sum += f->value[f->trees[t].base + slots[t - first]];
        *s = sum;
    } else {
        for (int32_t t = first; t < last; t++) add_leaf(e, &f->trees[t], slots[t - first], s);
    }
}

/* Adds the leaves n rows ended in at tree t (slots[r]) to their scores (rows n_targets apart); the common
 * single-target cases in loops of their own. */
static void add_block_leaves(const tree_ensemble *e, const tree_fast_tree *t, const int32_t *slots, int n, double *s)
{
    const tree_fast *f = e->fast;
    int64_t targets = e->n_targets;
    if (f->value32) {
        const float *value = f->value32 + t->base;
        double *d = s + e->tree_target[t->tree];
        for (int r = 0; r < n; r++) d[r * targets] = (float)((float)d[r * targets] + value[slots[r]]);
    } else if (f->value && (e->aggregate == TREE_AGG_SUM || e->aggregate == TREE_AGG_AVERAGE)) {
        const double *value = f->value + t->base;
        double *d = s + e->tree_target[t->tree];
        for (int r = 0; r < n; r++) d[r * targets] += value[slots[r]];
    } else {
        for (int r = 0; r < n; r++) add_leaf(e, t, slots[r], s + r * targets);
    }
}

/* ---- walking ------------------------------------------------------------------------------------------ */

typedef struct predict_job {
    const tree_ensemble *e;
    const tree_kernels *kernels;
    const float *x;
    int64_t rows, stride;
    double *scores;
} predict_job;

/* Rows [r0, r0 + n) of the job, n <= BLOCK_ROWS, tree by tree. */
static void predict_block(const predict_job *j, int64_t r0, int n)
{
    const tree_ensemble *e = j->e;
    const float *x = j->x + r0 * j->stride;
    double *s = j->scores + r0 * e->n_targets;
    int32_t slots[BLOCK_ROWS];
    start_scores(e, s, n);
    for (int32_t t = 0; t < e->n_trees; t++) {
        const tree_fast_tree *ft = &e->fast->trees[t];
        if (ft->layout == TREE_LAYOUT_GENERAL)
            for (int r = 0; r < n; r++) slots[r] = tree_ensemble_walk_tree(e, t, x + r * j->stride) - e->roots[t];
        else j->kernels->walk_rows(e->fast, ft, x, j->stride, n, slots);
        add_block_leaves(e, ft, slots, n, s);
    }
    finish_scores(e, s, n);
}

static void predict_blocks(void *arg, int64_t begin, int64_t end)
{
    const predict_job *j = arg;
    for (int64_t b = begin; b < end; b++) {
        int64_t r0 = b * BLOCK_ROWS;
        predict_block(j, r0, (int)(j->rows - r0 < BLOCK_ROWS ? j->rows - r0 : BLOCK_ROWS));
    }
}

/* One row, chunk by chunk of trees: all of a chunk's walks first, then its leaves in tree order. */
static void predict_row(const predict_job *j, int64_t r)
{
    const tree_ensemble *e = j->e;
    const tree_fast *f = e->fast;
    const float *row = j->x + r * j->stride;
    double *s = j->scores + r * e->n_targets;
    int32_t slots[TREE_CHUNK];
    start_scores(e, s, 1);
    for (int32_t c = 0, first = 0; first < e->n_trees; c++, first += TREE_CHUNK) {
        int32_t last = e->n_trees - first < TREE_CHUNK ? e->n_trees : first + TREE_CHUNK;
        j->kernels->walk_trees(f, f->by_depth + f->chunk_start[c], f->chunk_start[c + 1] - f->chunk_start[c], row,
                               first, slots);
        for (int32_t t = first; f->has_general && t < last; t++)
            if (f->trees[t].layout == TREE_LAYOUT_GENERAL)
                slots[t - first] = tree_ensemble_walk_tree(e, t, row) - e->roots[t];
        add_row_leaves(e, first, last, slots, s);
    }
    finish_scores(e, s, 1);
}

static void predict_rows(void *arg, int64_t begin, int64_t end)
{
    for (int64_t r = begin; r < end; r++) predict_row(arg, r);
}

void tree_ensemble_predict_with_variant(tree_variant variant, const tree_ensemble *e, const float *x, int64_t rows,
                                        int64_t row_stride, double *scores, const parallel_runner *parallel)
{
    const tree_kernels *kernels = kernels_for(variant);
    if (!e->fast || !kernels) {
        tree_ensemble_predict_reference(e, x, rows, row_stride, scores);
        return;
    }
    if (row_stride > kernels->max_stride) kernels = &tree_kernels_portable;
    predict_job job = {e, kernels, x, rows, row_stride, scores};
    int64_t steps_per_row = (int64_t)(e->n_trees + 1) * (e->max_depth + 1);
    if (rows < FEW_ROWS) {
        parallel_for(parallel, rows, (PARALLEL_MIN_STEPS + steps_per_row - 1) / steps_per_row, predict_rows, &job);
        return;
    }
    int64_t blocks = (rows + BLOCK_ROWS - 1) / BLOCK_ROWS, steps_per_block = BLOCK_ROWS * steps_per_row;
    parallel_for(parallel, blocks, (PARALLEL_MIN_STEPS + steps_per_block - 1) / steps_per_block, predict_blocks, &job);
}

void tree_ensemble_predict(const tree_ensemble *e, const float *x, int64_t rows, int64_t row_stride, double *scores,
                           const parallel_runner *parallel)
{
    tree_ensemble_predict_with_variant(TREE_VARIANT_AUTO, e, x, rows, row_stride, scores, parallel);
}
