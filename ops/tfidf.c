/*
 * tfidf.c — TfIdfVectorizer (opset 9): counts the n-grams of each row of tokens (integers or strings) that
 * appear in a pool learned in training, and weights the counts (TF, IDF or TFIDF).
 *
 * An n-gram starting at position i with skip distance d takes the tokens at i, i + d, ..., i + (n - 1) d, for
 * d = 1 .. max_skip_count + 1 and n = min_gram_length .. max_gram_length; unigrams are counted once per
 * position, not once per distance (as onnxruntime does). At load, each n-gram length's pool entries are sorted
 * so that a lookup is a binary search over that length's entries rather than a scan of the pool. Counts are
 * kept per pool entry in scratch and only then written to the output coordinates `ngram_indexes` names, which
 * is where the weights apply. Rows are counted one after another: the work is small beside a model's other
 * operators. Tokens are int32 or int64 (pool_int64s) or strings (pool_strings); both kinds are held as
 * tfidf_token so one search serves them.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* Longest n-gram kiln accepts: the key of a lookup lives on the stack. Real models use 1 to 3. */
#define TFIDF_MAX_GRAM 64

typedef enum tfidf_mode { TFIDF_TF, TFIDF_IDF, TFIDF_TFIDF } tfidf_mode;

typedef union tfidf_token {
    int64_t number;
    const char *text;
} tfidf_token;

/* One pool n-gram, found by its tokens; `entry` is its position among all pool n-grams (ngram_indexes' and
 * weights' index). */
typedef struct tfidf_gram {
    const tfidf_token *tokens;
    int64_t entry;
    int n;
    bool text; /* the tokens are strings */
} tfidf_gram;

typedef struct tfidf_params {
    tfidf_mode mode;
    int min_gram, max_gram;
    int64_t max_skip;
    int64_t entries;         /* pool n-grams in all */
    int64_t width;           /* output coordinates: max(ngram_indexes) + 1 */
    bool text;               /* string tokens (pool_strings) */
    const int64_t *indexes;  /* [entries] output coordinate of each entry */
    const float *weights;    /* [entries], or NULL for ones */
    tfidf_gram *grams[TFIDF_MAX_GRAM + 1]; /* grams[n]: the n-grams, sorted by tokens */
    int64_t count[TFIDF_MAX_GRAM + 1];
} tfidf_params;

static int compare_grams(const void *a, const void *b)
{
    const tfidf_gram *x = a, *y = b;
    for (int k = 0; k < x->n; k++) {
        const tfidf_token *u = &x->tokens[k], *v = &y->tokens[k];
        int order = x->text ? strcmp(u->text, v->text) : (u->number > v->number) - (u->number < v->number);
        if (order) return order;
    }
    return 0;
}

/* ---- init: the pool ---------------------------------------------------------------------------------- */

static kiln_status read_required(const graph_node *node, const char *name, attr_type type, const graph_attr **a)
{
    KILN_TRY(attr_find(node, name, type, a));
    if (!*a) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is required", name);
    return KILN_OK;
}

/* Splits the pool into its n-gram lengths (ngram_counts gives where each length starts) and sorts each. */
static kiln_status tfidf_build_pool(op_init_ctx *ctx, tfidf_params *p, const graph_attr *counts, const graph_attr *pool)
{
    int64_t entry = 0;
    tfidf_token *tokens = region_alloc(ctx->mem, (size_t)pool->count + 1, sizeof *tokens);
    if (!tokens) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < pool->count; i++) {
        if (p->text) tokens[i].text = pool->strings[i];
        else tokens[i].number = pool->ints[i];
    }
    for (int level = 0; level < counts->count; level++) {
        int n = level + 1;
        int64_t start = counts->ints[level], end = level + 1 < counts->count ? counts->ints[level + 1] : pool->count;
        if (start < 0 || end < start || end > pool->count)
            return kiln_fail(KILN_ERR_MALFORMED, "ngram_counts[%d] = %lld does not start a range of the %d-long pool",
                             level, (long long)start, pool->count);
        if ((end - start) % n != 0)
            return kiln_fail(KILN_ERR_MALFORMED, "the pool's %d-grams span %lld values, not a multiple of %d", n,
                             (long long)(end - start), n);
        if (n > TFIDF_MAX_GRAM) {
            if (end > start) return kiln_fail(KILN_ERR_UNSUPPORTED, "%d-grams are longer than kiln's %d", n, TFIDF_MAX_GRAM);
            continue;
        }
        p->count[n] = (end - start) / n;
        if (p->count[n] == 0) continue;
        p->grams[n] = region_alloc(ctx->mem, (size_t)p->count[n], sizeof(tfidf_gram));
        if (!p->grams[n]) return KILN_ERR_OUT_OF_MEMORY;
        for (int64_t g = 0; g < p->count[n]; g++)
            p->grams[n][g] = (tfidf_gram){tokens + start + g * n, entry++, n, p->text};
        qsort(p->grams[n], (size_t)p->count[n], sizeof(tfidf_gram), compare_grams);
    }
    p->entries = entry;
    return KILN_OK;
}

static kiln_status tfidf_read_lengths(const graph_node *node, tfidf_params *p)
{
    int64_t min_gram, max_gram;
    const graph_attr *a;
    KILN_TRY(read_required(node, "min_gram_length", ATTR_INT, &a));
    KILN_TRY(read_required(node, "max_gram_length", ATTR_INT, &a));
    KILN_TRY(read_required(node, "max_skip_count", ATTR_INT, &a));
    KILN_TRY(attr_int(node, "min_gram_length", 0, &min_gram));
    KILN_TRY(attr_int(node, "max_gram_length", 0, &max_gram));
    KILN_TRY(attr_int(node, "max_skip_count", 0, &p->max_skip));
    if (min_gram < 1 || max_gram < min_gram)
        return kiln_fail(KILN_ERR_MALFORMED, "gram lengths [%lld, %lld] are not a range of positive lengths",
                         (long long)min_gram, (long long)max_gram);
    if (max_gram > TFIDF_MAX_GRAM)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "max_gram_length %lld exceeds kiln's %d", (long long)max_gram,
                         TFIDF_MAX_GRAM);
    if (p->max_skip < 0 || p->max_skip > INT32_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "max_skip_count is %lld", (long long)p->max_skip);
    p->min_gram = (int)min_gram;
    p->max_gram = (int)max_gram;
    return KILN_OK;
}

static kiln_status tfidf_init(op_init_ctx *ctx)
{
    static const char *const modes[] = {"TF", "IDF", "TFIDF", NULL};
    tfidf_params *p = ctx->params;
    const graph_node *node = ctx->node;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    const graph_attr *pool, *strings;
    KILN_TRY(attr_find(node, "pool_int64s", ATTR_INTS, &pool));
    KILN_TRY(attr_find(node, "pool_strings", ATTR_STRINGS, &strings));
    if (!pool == !strings) return kiln_fail(KILN_ERR_MALFORMED, "needs exactly one of pool_int64s and pool_strings");
    p->text = strings != NULL;
    KILN_TRY(op_require_dtype(ctx, 0, p->text ? (const kiln_dtype[]){KILN_STRING, KILN_UNDEFINED} : DTYPES_INDEX));
    int mode;
    if (!graph_node_attr(node, "mode")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'mode' is required");
    KILN_TRY(attr_choice(node, "mode", "", modes, &mode));
    p->mode = (tfidf_mode)mode;
    KILN_TRY(tfidf_read_lengths(node, p));
    const graph_attr *counts, *indexes, *weights;
    KILN_TRY(read_required(node, "ngram_counts", ATTR_INTS, &counts));
    KILN_TRY(read_required(node, "ngram_indexes", ATTR_INTS, &indexes));
    KILN_TRY(attr_find(node, "weights", ATTR_FLOATS, &weights));
    KILN_TRY(tfidf_build_pool(ctx, p, counts, p->text ? strings : pool));
    if (indexes->count != p->entries)
        return kiln_fail(KILN_ERR_MALFORMED, "ngram_indexes has %d values for %lld pool n-grams", indexes->count,
                         (long long)p->entries);
    if (weights && weights->count != p->entries)
        return kiln_fail(KILN_ERR_MALFORMED, "weights has %d values for %lld pool n-grams", weights->count,
                         (long long)p->entries);
    for (int64_t e = 0; e < p->entries; e++) {
        if (indexes->ints[e] < 0 || indexes->ints[e] >= KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_MALFORMED, "ngram_indexes[%lld] = %lld is not an output coordinate",
                             (long long)e, (long long)indexes->ints[e]);
        if (indexes->ints[e] >= p->width) p->width = indexes->ints[e] + 1;
    }
    p->indexes = indexes->ints;
    p->weights = weights ? weights->floats : NULL;
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status tfidf_shape(op_ctx *ctx)
{
    const tfidf_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    if (x->rank != 1 && x->rank != 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input has rank %d, expected 1 ([C]) or 2 ([N, C])", x->rank);
    int64_t dims[2] = {x->dims[0], p->width};
    if (x->rank == 1) op_set_output_shape(ctx, 0, 1, &dims[1]);
    else op_set_output_shape(ctx, 0, 2, dims);
    if (x->rank == 2 && dims[0] > 0 && p->width > KILN_MAX_ELEMENTS / dims[0])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the output [%lld, %lld] is too large", (long long)dims[0],
                         (long long)p->width);
    ctx->scratch_bytes = (size_t)(p->entries + 1) * sizeof(int64_t) + TFIDF_MAX_GRAM * sizeof(tfidf_token);
    return KILN_OK;
}

/* ---- eval --------------------------------------------------------------------------------------------- */

/* The pool entry of the n tokens in key, or -1. */
static int64_t tfidf_find(const tfidf_params *p, const tfidf_token *key, int n)
{
    int64_t lo = 0, hi = p->count[n];
    const tfidf_gram *grams = p->grams[n];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int order = compare_grams(&(tfidf_gram){key, 0, n, p->text}, &grams[mid]);
        if (order == 0) return grams[mid].entry;
        if (order < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

/* Adds the n-grams of x's tokens [base, base + length) to counts[entry]. */
static void tfidf_count_row(const tfidf_params *p, const kiln_tensor *x, int64_t base, int64_t length,
                            int64_t *counts, tfidf_token *key)
{
    for (int64_t distance = 1; distance <= p->max_skip + 1; distance++) {
        int shortest = distance == 1 || p->min_gram > 1 ? p->min_gram : 2; /* unigrams only once */
        for (int64_t start = 0; start < length; start++)
            for (int n = shortest; n <= p->max_gram; n++) {
                if ((n - 1) * distance >= length - start) break;
                if (p->count[n] == 0) continue;
                for (int k = 0; k < n; k++) {
                    int64_t at = base + start + k * distance;
                    if (p->text) key[k].text = ((const char *const *)x->data)[at];
                    else key[k].number = tensor_get_int(x, at);
                }
                int64_t entry = tfidf_find(p, key, n);
                if (entry >= 0) counts[entry]++;
            }
    }
}

static void tfidf_write_row(const tfidf_params *p, const int64_t *counts, float *y)
{
    memset(y, 0, (size_t)p->width * sizeof(float));
    for (int64_t e = 0; e < p->entries; e++) {
        float weight = p->weights ? p->weights[e] : 1.0f;
        float tf = (float)counts[e];
        float value = p->mode == TFIDF_TF ? tf : p->mode == TFIDF_IDF ? (counts[e] > 0) * weight : tf * weight;
        y[p->indexes[e]] = value; /* an index named twice takes its last entry's value, as onnxruntime's does */
    }
}

static kiln_status tfidf_eval(op_ctx *ctx)
{
    const tfidf_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows = x->rank == 2 ? x->dims[0] : 1, length = x->dims[x->rank - 1];
    int64_t *counts = ctx->scratch;
    tfidf_token *key = (tfidf_token *)(counts + p->entries + 1);
    for (int64_t r = 0; r < rows; r++) {
        memset(counts, 0, (size_t)p->entries * sizeof(int64_t));
        tfidf_count_row(p, x, r * length, length, counts, key);
        tfidf_write_row(p, counts, (float *)ctx->outputs[0]->data + r * p->width);
    }
    return KILN_OK;
}

const op_def ops_tfidf[] = {
    {"", "TfIdfVectorizer", 9, 18, sizeof(tfidf_params), tfidf_init, tfidf_shape, tfidf_eval, 0},
    OP_TABLE_END,
};
