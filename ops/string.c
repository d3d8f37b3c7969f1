/*
 * string.c — StringNormalizer (opset 10): drops stopwords from a [C] or [1, C] string tensor and changes the
 * case of what remains.
 *
 * How many strings survive depends on the contents, so the node is OP_DATA_DEPENDENT_SHAPE: the planner runs it
 * ahead and shape() counts the survivors. When none survive the output is one empty string ([1] or [1, 1]),
 * as the spec asks. Stopwords are sorted at load (lower-cased when matching ignores case) and found by binary
 * search. Output strings are always copies in ctx->strings, never the input's own pointers, because a
 * precomputed output outlives the input the caller bound.
 *
 * Case folding and case changes apply to ASCII letters only; other characters pass unchanged. That is exactly
 * what the "C" and English locales do, so `locale` may be absent, empty, "C", "POSIX" or start with "en";
 * other locales (Turkish dotted i, German sharp s...) are refused at load rather than folded wrongly.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

typedef enum case_action { CASE_NONE, CASE_LOWER, CASE_UPPER } case_action;

typedef struct normalizer_params {
    case_action action;
    bool case_sensitive;
    int n_stopwords;
    const char **stopwords; /* sorted by strcmp; lower-cased when !case_sensitive */
} normalizer_params;

static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

/* strcmp after lower-casing both when the match ignores case. */
static int compare_words(const char *a, const char *b, bool case_sensitive)
{
    for (;; a++, b++) {
        char x = case_sensitive ? *a : ascii_lower(*a), y = case_sensitive ? *b : ascii_lower(*b);
        if (x != y || !x) return (unsigned char)x - (unsigned char)y;
    }
}

static int compare_sorted(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool is_stopword(const normalizer_params *p, const char *word)
{
    int lo = 0, hi = p->n_stopwords;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int order = compare_words(word, p->stopwords[mid], p->case_sensitive);
        if (order == 0) return true;
        if (order < 0) hi = mid;
        else lo = mid + 1;
    }
    return false;
}

static kiln_status check_locale(const graph_node *node)
{
    const char *locale;
    KILN_TRY(attr_string(node, "locale", "", &locale));
    if (!locale[0] || strcmp(locale, "C") == 0 || strcmp(locale, "POSIX") == 0 || strncmp(locale, "en", 2) == 0)
        return KILN_OK;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "locale '%s': kiln folds ASCII letters only (locales C, POSIX, en*)", locale);
}

static kiln_status normalizer_init(op_init_ctx *ctx)
{
    static const char *const actions[] = {"NONE", "LOWER", "UPPER", NULL};
    normalizer_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){KILN_STRING, KILN_UNDEFINED}));
    int action;
    KILN_TRY(attr_choice(ctx->node, "case_change_action", "NONE", actions, &action));
    p->action = (case_action)action;
    int64_t sensitive;
    KILN_TRY(attr_int(ctx->node, "is_case_sensitive", 0, &sensitive));
    p->case_sensitive = sensitive != 0;
    KILN_TRY(check_locale(ctx->node));
    const graph_attr *stopwords;
    KILN_TRY(attr_find(ctx->node, "stopwords", ATTR_STRINGS, &stopwords));
    if (stopwords && stopwords->count > 0) {
        p->n_stopwords = stopwords->count;
        p->stopwords = region_alloc(ctx->mem, (size_t)p->n_stopwords, sizeof *p->stopwords);
        if (!p->stopwords) return KILN_ERR_OUT_OF_MEMORY;
        for (int i = 0; i < p->n_stopwords; i++) {
            char *word = region_strdup(ctx->mem, stopwords->strings[i]);
            if (!word) return KILN_ERR_OUT_OF_MEMORY;
            for (char *c = word; *c && !p->case_sensitive; c++) *c = ascii_lower(*c);
            p->stopwords[i] = word;
        }
        qsort(p->stopwords, (size_t)p->n_stopwords, sizeof *p->stopwords, compare_sorted);
    }
    ctx->output_dtypes[0] = KILN_STRING;
    return KILN_OK;
}

static kiln_status normalizer_shape(op_ctx *ctx)
{
    const normalizer_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    if (!(x->rank == 1 || (x->rank == 2 && x->dims[0] == 1))) {
        char shape[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input has shape %s, expected [C] or [1, C]",
                         shape_format(shape, sizeof shape, x->rank, x->dims));
    }
    int64_t kept = 0, n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) kept += !is_stopword(p, ((const char *const *)x->data)[i]);
    int64_t dims[2] = {1, kept > 0 ? kept : 1};
    op_set_output_shape(ctx, 0, x->rank, x->rank == 1 ? &dims[1] : dims);
    return KILN_OK;
}

static kiln_status normalizer_eval(op_ctx *ctx)
{
    const normalizer_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    const char **out = ctx->outputs[0]->data;
    int64_t kept = 0, n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        const char *word = ((const char *const *)x->data)[i];
        if (is_stopword(p, word)) continue;
        char *copy = region_strdup(ctx->strings, word);
        if (!copy) return KILN_ERR_OUT_OF_MEMORY;
        for (char *c = copy; *c && p->action != CASE_NONE; c++)
            *c = p->action == CASE_LOWER ? ascii_lower(*c) : ascii_upper(*c);
        out[kept++] = copy;
    }
    if (kept == 0) out[0] = "";
    return KILN_OK;
}

const op_def ops_string[] = {
    {"", "StringNormalizer", 10, 18, sizeof(normalizer_params), normalizer_init, normalizer_shape, normalizer_eval,
     OP_DATA_DEPENDENT_SHAPE},
    OP_TABLE_END,
};
