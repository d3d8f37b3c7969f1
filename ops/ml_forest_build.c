/*
 * ml_forest_build.c — expanding an ml_forest (ml_forest.h) into the engine's raw trees
 * (kernels/tree_ensemble.h) and building the ensemble from them, once at load.
 *
 * The engine refuses a node reachable twice, while ONNX-ML lets several parents name one child: a node
 * reached from several parents (a shared subtree) is copied for each, within a node budget; a node that is
 * its own ancestor is refused as a cycle. Splits become the engine's numeric tests with the node's missing
 * rule; BRANCH_MEMBER, and chains of BRANCH_EQ on one feature that share their true child (how converters
 * wrote set membership before opset 5), become one categorical split on exact integer categories when every
 * value is one, which avoids copying the shared subtree per member; other values fall back to equality tests.
 */
#include <math.h>
#include <string.h>

#include "ops/ml_forest.h"

/* Categories a categorical split can hold: exact integers 0 .. ML_MAX_CATEGORY-1 (a bitset of 8 KB at most). */
#define ML_MAX_CATEGORY (1 << 16)
#define ML_MAX_CATEGORY_WORDS (1 << 24) /* all category sets together: 64 MB */

static bool is_category(double v) { return v >= 0 && v < ML_MAX_CATEGORY && v == floor(v); }

typedef struct expansion {
    const ml_forest *f;
    tree_raw_node *raw;
    int32_t *bits_at; /* per raw node: where its category words start in `bits`, or -1 */
    int32_t n_raw, cap_raw, budget;
    uint32_t *bits;
    int32_t n_bits, cap_bits;
    bool *on_path; /* per forest node: it is an ancestor of the node being expanded */
    int32_t tree, tree_start;
} expansion;

static kiln_status new_raw(expansion *x, int32_t *at)
{
    if (x->n_raw >= x->budget)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d: copying its shared subtrees would exceed %d nodes", x->tree,
                         x->budget);
    if (x->n_raw == x->cap_raw) {
        int32_t cap = x->cap_raw ? 2 * x->cap_raw : 256;
        tree_raw_node *raw = mem_realloc(x->raw, (size_t)cap * sizeof *raw);
        if (!raw) return KILN_ERR_OUT_OF_MEMORY;
        x->raw = raw;
        int32_t *bits_at = mem_realloc(x->bits_at, (size_t)cap * sizeof *bits_at);
        if (!bits_at) return KILN_ERR_OUT_OF_MEMORY;
        x->bits_at = bits_at;
        x->cap_raw = cap;
    }
    *at = x->n_raw++;
    memset(&x->raw[*at], 0, sizeof x->raw[*at]);
    x->bits_at[*at] = -1;
    return KILN_OK;
}

/* Makes raw node `at` a categorical split of node n's feature whose set can hold 0 .. max_category. */
static kiln_status new_category_set(expansion *x, int32_t at, const ml_node *n, bool missing_true, double max_category)
{
    int32_t words = (int32_t)(max_category / 32) + 1;
    if (x->n_bits + words > ML_MAX_CATEGORY_WORDS)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d: the category sets need more than %d words", x->tree,
                         ML_MAX_CATEGORY_WORDS);
    if (x->n_bits + words > x->cap_bits) {
        int32_t cap = x->cap_bits ? 2 * x->cap_bits : 1024;
        while (cap < x->n_bits + words) cap *= 2;
        uint32_t *bits = mem_realloc(x->bits, (size_t)cap * sizeof *bits);
        if (!bits) return KILN_ERR_OUT_OF_MEMORY;
        x->bits = bits;
        x->cap_bits = cap;
    }
    memset(x->bits + x->n_bits, 0, (size_t)words * sizeof *x->bits);
    x->raw[at] = (tree_raw_node){.kind = TREE_RAW_CATEGORICAL,
                                 .feature = n->feature,
                                 .category_words = words,
                                 .category_exact = true,
                                 .missing = missing_true ? TREE_MISSING_TRUE : TREE_MISSING_FALSE};
    x->bits_at[at] = x->n_bits;
    x->n_bits += words;
    return KILN_OK;
}

static void add_category(expansion *x, int32_t at, double category)
{
    uint32_t c = (uint32_t)category;
    x->bits[x->bits_at[at] + (int32_t)(c / 32)] |= 1u << (c % 32);
}

static void set_numeric(expansion *x, int32_t at, const ml_node *n, tree_compare compare, double threshold)
{
    x->raw[at] = (tree_raw_node){.kind = TREE_RAW_NUMERIC,
                                 .feature = n->feature,
                                 .compare = compare,
                                 .threshold = threshold,
                                 .threshold_is_double = x->f->doubles,
                                 .missing = n->missing_true ? TREE_MISSING_TRUE : TREE_MISSING_COMPARE};
}

static kiln_status emit(expansion *x, int32_t node, int depth, int32_t *out);

static kiln_status emit_children(expansion *x, int32_t at, int32_t true_node, int32_t false_node, int depth)
{
    int32_t t, f;
    KILN_TRY(emit(x, true_node, depth + 1, &t));
    KILN_TRY(emit(x, false_node, depth + 1, &f));
    x->raw[at].true_child = t - x->tree_start;
    x->raw[at].false_child = f - x->tree_start;
    return KILN_OK;
}

/* Whether `next` continues the BRANCH_EQ chain that `first` starts (same feature, same true child). */
static bool joins_chain(const expansion *x, const ml_node *first, int32_t next)
{
    const ml_node *n = &x->f->nodes[next];
    return !x->on_path[next] && n->mode == ML_EQ && n->feature == first->feature && n->child[0] == first->child[0] &&
           is_category(n->threshold);
}

/* A chain of BRANCH_EQ nodes down the false branches, sharing their true child, as one categorical split
 * (NaN goes to the true child when any of them tracks missing values there). Falls back to a plain equality
 * split when the chain has one node. The chain's nodes stay marked as ancestors while its children are
 * expanded: reaching one of them below would be a cycle. */
static kiln_status emit_eq(expansion *x, int32_t node, int32_t at, int depth)
{
    const ml_node *first = &x->f->nodes[node], *last = first;
    int32_t length = 1;
    double max = first->threshold;
    bool missing_true = first->missing_true;
    if (is_category(first->threshold))
        for (int32_t next = first->child[1]; joins_chain(x, first, next); next = last->child[1], length++) {
            last = &x->f->nodes[next];
            x->on_path[next] = true;
            max = last->threshold > max ? last->threshold : max;
            missing_true |= last->missing_true;
        }
    kiln_status st = KILN_OK;
    if (length == 1) set_numeric(x, at, first, TREE_CMP_EQ, first->threshold);
    else st = new_category_set(x, at, first, missing_true, max);
    for (int32_t k = 0, n = node; st == KILN_OK && length > 1 && k < length; k++, n = x->f->nodes[n].child[1])
        add_category(x, at, x->f->nodes[n].threshold);
    if (st == KILN_OK) st = emit_children(x, at, first->child[0], last->child[1], depth);
    for (int32_t k = 0, n = node; k < length; k++, n = x->f->nodes[n].child[1])
        if (k > 0) x->on_path[n] = false;
    return st;
}

/* x == members[i] ? true subtree : the next member's test (or the false subtree after the last). */
static kiln_status emit_member_chain(expansion *x, const ml_node *n, int32_t i, int32_t at, int depth)
{
    if (depth > TREE_MAX_DEPTH)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d is deeper than %d levels", x->tree, TREE_MAX_DEPTH);
    set_numeric(x, at, n, TREE_CMP_EQ, x->f->members[n->first + i]);
    int32_t t, f;
    KILN_TRY(emit(x, n->child[0], depth + 1, &t));
    if (i + 1 < n->count) {
        KILN_TRY(new_raw(x, &f));
        KILN_TRY(emit_member_chain(x, n, i + 1, f, depth + 1));
    } else {
        KILN_TRY(emit(x, n->child[1], depth + 1, &f));
    }
    x->raw[at].true_child = t - x->tree_start;
    x->raw[at].false_child = f - x->tree_start;
    return KILN_OK;
}

/* BRANCH_MEMBER: a categorical split when every member is a category, else a chain of equality tests. */
static kiln_status emit_member(expansion *x, const ml_node *n, int32_t at, int depth)
{
    const double *members = x->f->members + n->first;
    double max = 0;
    for (int32_t i = 0; i < n->count; i++) {
        if (!is_category(members[i])) return emit_member_chain(x, n, 0, at, depth);
        max = members[i] > max ? members[i] : max;
    }
    KILN_TRY(new_category_set(x, at, n, n->missing_true, max));
    for (int32_t i = 0; i < n->count; i++) add_category(x, at, members[i]);
    return emit_children(x, at, n->child[0], n->child[1], depth);
}

static kiln_status emit_split(expansion *x, int32_t node, int32_t at, int depth)
{
    static const tree_compare compares[] = {[ML_LEQ] = TREE_CMP_LE,
                                            [ML_LT] = TREE_CMP_LT,
                                            [ML_GTE] = TREE_CMP_GE,
                                            [ML_GT] = TREE_CMP_GT,
                                            [ML_NEQ] = TREE_CMP_NE};
    const ml_node *n = &x->f->nodes[node];
    if (n->mode == ML_MEMBER) return emit_member(x, n, at, depth);
    if (n->mode == ML_EQ) return emit_eq(x, node, at, depth);
    set_numeric(x, at, n, compares[n->mode], n->threshold);
    return emit_children(x, at, n->child[0], n->child[1], depth);
}

/* Emits the subtree under forest node `node` (a copy of it each time it is reached); *out is its raw index. */
static kiln_status emit(expansion *x, int32_t node, int depth, int32_t *out)
{
    if (depth > TREE_MAX_DEPTH)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d is deeper than %d levels", x->tree, TREE_MAX_DEPTH);
    if (x->on_path[node])
        return kiln_fail(KILN_ERR_MALFORMED, "tree %d: node %d leads back to itself (a cycle)", x->tree, node);
    KILN_TRY(new_raw(x, out));
    const ml_node *n = &x->f->nodes[node];
    if (n->mode == ML_LEAF) {
        x->raw[*out] =
            (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = x->f->weights + n->first, .n_weights = n->count};
        return KILN_OK;
    }
    x->on_path[node] = true;
    kiln_status st = emit_split(x, node, *out, depth);
    x->on_path[node] = false;
    return st;
}

static kiln_status expand_forest(expansion *x, tree_raw_tree *trees)
{
    const ml_forest *f = x->f;
    int64_t budget = 16 * (int64_t)f->n_nodes + 65536;
    x->budget = (int32_t)(budget < INT32_MAX / 4 ? budget : INT32_MAX / 4);
    x->on_path = mem_calloc((size_t)f->n_nodes, sizeof *x->on_path);
    if (!x->on_path) return KILN_ERR_OUT_OF_MEMORY;
    for (int32_t t = 0; t < f->n_trees; t++) {
        int32_t root;
        x->tree = t;
        x->tree_start = x->n_raw;
        KILN_TRY(emit(x, f->roots[t], 0, &root));
        trees[t] = (tree_raw_tree){NULL, x->n_raw - x->tree_start, 0};
    }
    /* the arrays have stopped moving: point the trees and category splits into them */
    for (int32_t t = 0, start = 0; t < f->n_trees; start += trees[t].n_nodes, t++) trees[t].nodes = x->raw + start;
    for (int32_t i = 0; i < x->n_raw; i++)
        if (x->bits_at[i] >= 0) x->raw[i].category_bits = x->bits + x->bits_at[i];
    return KILN_OK;
}

/* Builds the engine's ensemble. AVERAGE is summed here and divided when the scores are finished (as
 * onnxruntime does, by the number of trees); float sums accumulate in float32 in tree order. */
kiln_status ml_forest_build(const ml_forest *f, tree_aggregate aggregate, bool float_sums, region *mem,
                            tree_ensemble *e)
{
    expansion x = {.f = f};
    tree_raw_tree *trees = mem_calloc((size_t)f->n_trees, sizeof *trees);
    kiln_status st = trees ? expand_forest(&x, trees) : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        int32_t n_features = 1;
        for (int32_t i = 0; i < x.n_raw; i++)
            if (x.raw[i].kind != TREE_RAW_LEAF && x.raw[i].feature + 1 > n_features) n_features = x.raw[i].feature + 1;
        bool summed = aggregate == TREE_AGG_SUM || aggregate == TREE_AGG_AVERAGE;
        tree_raw_ensemble raw = {
            .n_features = n_features,
            .n_targets = f->n_targets,
            .trees = trees,
            .n_trees = f->n_trees,
            .aggregate = summed ? TREE_AGG_SUM : aggregate,
            .sum_in_float32 = float_sums && summed,
        };
        st = tree_ensemble_build(&raw, mem, e);
    }
    mem_free(trees);
    mem_free(x.raw);
    mem_free(x.bits_at);
    mem_free(x.bits);
    mem_free(x.on_path);
    return st;
}
