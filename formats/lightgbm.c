/*
 * lightgbm.c — LightGBM's text model (Booster.save_model / model_to_string) as a tree_schema.
 *
 * The file is a header of `key=value` lines (num_class, num_tree_per_iteration, max_feature_idx, objective,
 * a bare `average_output` for random forests, feature_names, feature_infos, tree_sizes), then one block per
 * tree ("Tree=i", its `key=value` fields, blank lines), "end of trees" (since format v3), and a trailer of
 * feature importances and training parameters that prediction does not need.
 *
 * Reading makes two passes over the mapped text, which is never copied or modified. The first splits it into
 * sections and, per tree, remembers where each field's value is (with its line number, for messages) and
 * checks that the file backs every count it declares: num_leaves must match the leaf values actually
 * present before anything is sized from it. The second allocates the schema's arrays at their exact sizes
 * and parses the fields into them. A hostile count therefore costs at most a scan of the file.
 *
 * LightGBM numbers a tree's internal nodes 0..L-2 (the root is 0) and its leaves 0..L-1, which children
 * reference as ~leaf. In the schema a tree's nodes are its internal nodes followed by its leaves, so schema
 * node (L-1)+k of a tree is LightGBM's leaf k.
 *
 * Split semantics (LightGBM's include/LightGBM/tree.h, NumericalDecision / CategoricalDecision), mapped onto
 * the schema: the model compares the float32 input as a double (thresholds_are_double) and treats
 * |x| <= 1e-35 as 0 (zero_tiny_inputs). decision_type bit 0 marks a categorical split, bit 1 default-left,
 * bits 2-3 the missing type. Numerical splits send `x <= threshold` left; missing type None replaces NaN by
 * 0 (TREE_MISSING_AS_ZERO), Zero sends 0 and NaN the default way (nodes_zero_missing), NaN sends NaN the
 * default way. Categorical splits send x left when its truncation is in the node's bitset; NaN, negative
 * values and categories past the bitset go right (TREE_MISSING_FALSE). Tree i adds to score
 * i % num_tree_per_iteration; `average_output` divides the sums by the number of iterations.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/tree_loaders.h"
#include "kernels/tree_ensemble.h"

/* ---- text ---------------------------------------------------------------------------------------------- */

/* A piece of the mapped text and the line it is on; p == NULL for a field the file does not have. */
typedef struct text_view {
    const char *p;
    size_t n;
    int line;
} text_view;

static bool view_is(text_view v, const char *s) { return v.n == strlen(s) && memcmp(v.p, s, v.n) == 0; }

static bool view_starts_with(text_view v, const char *s)
{
    size_t n = strlen(s);
    return v.n >= n && memcmp(v.p, s, n) == 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* The next space-separated token of *v (consumed); false when none is left. */
static bool next_token(text_view *v, text_view *token)
{
    while (v->n && is_blank(*v->p)) v->p++, v->n--;
    if (!v->n) return false;
    token->p = v->p;
    token->line = v->line;
    while (v->n && !is_blank(*v->p)) v->p++, v->n--;
    token->n = (size_t)(v->p - token->p);
    return true;
}

static int64_t count_tokens(text_view v)
{
    int64_t n = 0;
    text_view token;
    while (next_token(&v, &token)) n++;
    return n;
}

/* ---- numbers ------------------------------------------------------------------------------------------- */

static bool parse_int64(text_view t, int64_t *out)
{
    size_t i = 0;
    bool negative = t.n > 0 && (t.p[0] == '-' || t.p[0] == '+') ? (i++, t.p[0] == '-') : false;
    if (i == t.n) return false;
    int64_t v = 0;
    for (; i < t.n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9') return false;
        int digit = t.p[i] - '0';
        if (v > (INT64_MAX - digit) / 10) return false;
        v = v * 10 + digit;
    }
    *out = negative ? -v : v;
    return true;
}

static bool letters_are(text_view t, size_t from, const char *word)
{
    size_t n = strlen(word);
    if (t.n - from != n) return false;
    for (size_t i = 0; i < n; i++)
        if ((t.p[from + i] | 0x20) != word[i]) return false;
    return true;
}

/* A decimal floating-point number, "inf", "infinity" or "nan" with an optional sign: the forms LightGBM
 * writes. strtod alone would accept more (hexadecimal, leading spaces) and read past an unterminated token. */
static bool is_number_syntax(text_view t)
{
    size_t i = t.n && (t.p[0] == '-' || t.p[0] == '+') ? 1 : 0;
    if (letters_are(t, i, "inf") || letters_are(t, i, "infinity") || letters_are(t, i, "nan")) return true;
    size_t digits = 0;
    while (i < t.n && t.p[i] >= '0' && t.p[i] <= '9') i++, digits++;
    if (i < t.n && t.p[i] == '.') i++;
    while (i < t.n && t.p[i] >= '0' && t.p[i] <= '9') i++, digits++;
    if (!digits) return false;
    if (i < t.n && (t.p[i] == 'e' || t.p[i] == 'E')) {
        i++;
        if (i < t.n && (t.p[i] == '-' || t.p[i] == '+')) i++;
        size_t exponent_digits = 0;
        while (i < t.n && t.p[i] >= '0' && t.p[i] <= '9') i++, exponent_digits++;
        if (!exponent_digits) return false;
    }
    return i == t.n;
}

/* Correctly rounded (strtod), on a terminated copy. Should a host program have set a locale whose decimal
 * point is not '.', strtod stops at the '.', and the copy is retried with that locale's point instead. */
static bool parse_double(text_view t, double *out)
{
    char buf[80], *end;
    if (t.n >= sizeof buf || !is_number_syntax(t)) return false;
    memcpy(buf, t.p, t.n);
    buf[t.n] = '\0';
    double v = strtod(buf, &end);
    char *dot = strchr(buf, '.');
    if (end == dot && dot) {
        const char *point = localeconv()->decimal_point;
        if (!point || !point[0] || point[1]) return false;
        *dot = point[0];
        v = strtod(buf, &end);
    }
    if (end != buf + t.n) return false;
    if (isinf(v) && !letters_are(t, t.n && (t.p[0] == '-' || t.p[0] == '+'), "inf") &&
        !letters_are(t, t.n && (t.p[0] == '-' || t.p[0] == '+'), "infinity"))
        return false; /* a finite number too large for a double */
    *out = v;
    return true;
}

/* ---- reporting ----------------------------------------------------------------------------------------- */

/* A token quoted in a message, cut short when long. */
#define QUOTE_FMT "'%.*s%s'"
#define QUOTE(t) (int)((t).n > 40 ? 40 : (t).n), (t).p, (t).n > 40 ? "..." : ""

static kiln_status bad_value(text_view token, const char *field, int64_t index, const char *what)
{
    if (index < 0)
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: %s " QUOTE_FMT " is not %s", token.line, field, QUOTE(token), what);
    return kiln_fail(KILN_ERR_MALFORMED, "line %d: %s value %lld " QUOTE_FMT " is not %s", token.line, field,
                     (long long)index, QUOTE(token), what);
}

/* One integer field value in [lo, hi]. */
static kiln_status read_int(text_view v, const char *field, int64_t lo, int64_t hi, int64_t *out)
{
    text_view token, rest = v;
    if (!next_token(&rest, &token)) return kiln_fail(KILN_ERR_MALFORMED, "line %d: %s has no value", v.line, field);
    if (count_tokens(rest)) return kiln_fail(KILN_ERR_MALFORMED, "line %d: %s has more than one value", v.line, field);
    char what[96];
    snprintf(what, sizeof what, "an integer from %lld to %lld", (long long)lo, (long long)hi);
    if (!parse_int64(token, out) || *out < lo || *out > hi) return bad_value(token, field, -1, what);
    return KILN_OK;
}

static kiln_status check_count(text_view v, const char *field, int64_t want, const char *because)
{
    int64_t n = count_tokens(v);
    if (n != want)
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: %s has %lld value%s, %s needs %lld", v.line, field,
                         (long long)n, n == 1 ? "" : "s", because, (long long)want);
    return KILN_OK;
}

/* A list of exactly `count` integers, each in [lo, hi], into out (as int32). */
static kiln_status read_ints(text_view v, const char *field, int64_t count, const char *because, int64_t lo,
                             int64_t hi, int32_t *out)
{
    KILN_TRY(check_count(v, field, count, because));
    char what[96];
    snprintf(what, sizeof what, "an integer from %lld to %lld", (long long)lo, (long long)hi);
    text_view token;
    for (int64_t i = 0; next_token(&v, &token); i++) {
        int64_t x;
        if (!parse_int64(token, &x) || x < lo || x > hi) return bad_value(token, field, i, what);
        out[i] = (int32_t)x;
    }
    return KILN_OK;
}

static kiln_status read_doubles(text_view v, const char *field, int64_t count, const char *because, double *out)
{
    KILN_TRY(check_count(v, field, count, because));
    text_view token;
    for (int64_t i = 0; next_token(&v, &token); i++)
        if (!parse_double(token, &out[i])) return bad_value(token, field, i, "a number a double can hold");
    return KILN_OK;
}

/* ---- sections ------------------------------------------------------------------------------------------ */

enum header_field {
    H_VERSION, H_NUM_CLASS, H_TREES_PER_ITERATION, H_LABEL_INDEX, H_MAX_FEATURE_IDX, H_OBJECTIVE,
    H_AVERAGE_OUTPUT, H_FEATURE_NAMES, H_FEATURE_INFOS, H_TREE_SIZES, N_HEADER_FIELDS
};
static const char *const header_names[N_HEADER_FIELDS] = {
    "version", "num_class", "num_tree_per_iteration", "label_index", "max_feature_idx", "objective",
    "average_output", "feature_names", "feature_infos", "tree_sizes",
};

enum tree_field {
    T_NUM_LEAVES, T_NUM_CAT, T_SPLIT_FEATURE, T_THRESHOLD, T_DECISION_TYPE, T_LEFT_CHILD, T_RIGHT_CHILD,
    T_LEAF_VALUE, T_CAT_BOUNDARIES, T_CAT_THRESHOLD, T_IS_LINEAR,
    /* not needed for prediction, but their lengths must agree too */
    T_SPLIT_GAIN, T_INTERNAL_VALUE, T_INTERNAL_WEIGHT, T_INTERNAL_COUNT, T_LEAF_WEIGHT, T_LEAF_COUNT,
    N_TREE_FIELDS
};
static const char *const tree_names[N_TREE_FIELDS] = {
    "num_leaves", "num_cat", "split_feature", "threshold", "decision_type", "left_child", "right_child",
    "leaf_value", "cat_boundaries", "cat_threshold", "is_linear", "split_gain", "internal_value",
    "internal_weight", "internal_count", "leaf_weight", "leaf_count",
};

/* One "Tree=i" block, as found by the first pass. */
typedef struct tree_block {
    text_view field[N_TREE_FIELDS];
    const char *start; /* of its "Tree=" line */
    size_t bytes;      /* up to the next tree or the end of the trees (what tree_sizes counts) */
    int line;
    int32_t leaves, category_sets, category_words;
} tree_block;

typedef struct lgb_reader {
    const char *at, *end; /* the unread text */
    int line;             /* number of the line at `at` */
    text_view header[N_HEADER_FIELDS];
    tree_block *trees;
    int32_t n_trees, trees_capacity;
    bool end_marker; /* "end of trees" was found */
    /* from the header */
    int32_t n_classes, n_targets, n_features;
    /* totals and maxima over the trees, from the first pass */
    int64_t total_nodes, total_leaves, total_words;
    int32_t widest, most_sets;
    /* scratch for one tree in the second pass, sized by the widest */
    int32_t *decision, *boundaries, *queue;
    uint8_t *has_parent;
} lgb_reader;

static bool next_line(lgb_reader *r, text_view *line)
{
    if (r->at >= r->end) return false;
    const char *newline = memchr(r->at, '\n', (size_t)(r->end - r->at));
    const char *stop = newline ? newline : r->end;
    *line = (text_view){r->at, (size_t)(stop - r->at), r->line};
    if (line->n && line->p[line->n - 1] == '\r') line->n--;
    r->at = newline ? newline + 1 : r->end;
    r->line++;
    return true;
}

static bool split_key(text_view line, text_view *key, text_view *value)
{
    const char *eq = memchr(line.p, '=', line.n);
    if (!eq) return false;
    *key = (text_view){line.p, (size_t)(eq - line.p), line.line};
    *value = (text_view){eq + 1, line.n - (size_t)(eq + 1 - line.p), line.line};
    return true;
}

static int field_index(const char *const *names, int n, text_view key)
{
    for (int i = 0; i < n; i++)
        if (view_is(key, names[i])) return i;
    return -1;
}

static bool is_trailer_start(text_view line)
{
    return view_is(line, "feature importances:") || view_is(line, "feature_importances:") ||
           view_is(line, "parameters:") || view_starts_with(line, "pandas_categorical:");
}

/* Header lines up to the first tree; leaves that line unread. */
static kiln_status read_header(lgb_reader *r)
{
    text_view line, key, value;
    for (;;) {
        const char *start = r->at;
        int number = r->line;
        if (!next_line(r, &line)) return kiln_fail(KILN_ERR_MALFORMED, "the file ends before its first tree");
        if (view_starts_with(line, "Tree=") || view_is(line, "end of trees")) {
            r->at = start, r->line = number;
            return KILN_OK;
        }
        if (!line.n) continue;
        if (!split_key(line, &key, &value)) key = line, value = (text_view){line.p + line.n, 0, line.line};
        int f = field_index(header_names, N_HEADER_FIELDS, key);
        if (f < 0) continue; /* LightGBM ignores header keys it does not use; so does kiln */
        if (r->header[f].p)
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: a second '%s' (the first is on line %d)", line.line,
                             header_names[f], r->header[f].line);
        r->header[f] = value;
    }
}

static kiln_status add_block(lgb_reader *r, tree_block **out)
{
    if (r->n_trees == r->trees_capacity) {
        int32_t capacity = r->trees_capacity ? r->trees_capacity * 2 : 64;
        if (capacity > INT32_MAX / 4) return kiln_fail(KILN_ERR_UNSUPPORTED, "the model has too many trees");
        tree_block *grown = mem_realloc(r->trees, (size_t)capacity * sizeof *grown);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        r->trees = grown;
        r->trees_capacity = capacity;
    }
    *out = &r->trees[r->n_trees++];
    memset(*out, 0, sizeof **out);
    return KILN_OK;
}

/* The fields of tree `index`, whose "Tree=" line has been read; stops at the first blank line. */
static kiln_status read_block_fields(lgb_reader *r, tree_block *b, int index)
{
    text_view line, key, value;
    while (next_line(r, &line) && line.n) {
        if (!split_key(line, &key, &value))
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: expected key=value in tree %d, found " QUOTE_FMT,
                             line.line, index, QUOTE(line));
        if (view_is(key, "Tree"))
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d's fields must end with a blank line", line.line,
                             index);
        int f = field_index(tree_names, N_TREE_FIELDS, key);
        if (f < 0) continue; /* shrinkage, leaf_parent, ...: not needed to predict */
        if (b->field[f].p)
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d has a second '%s' (the first is on line %d)",
                             line.line, index, tree_names[f], b->field[f].line);
        b->field[f] = value;
    }
    return KILN_OK;
}

/* The "Tree=i" blocks up to "end of trees", the trailer or the end of the file. */
static kiln_status find_trees(lgb_reader *r)
{
    text_view line;
    tree_block *previous = NULL;
    for (;;) {
        const char *start = r->at;
        bool more = next_line(r, &line);
        if (!more || view_is(line, "end of trees") || is_trailer_start(line)) {
            if (previous) previous->bytes = (size_t)((more ? line.p : r->end) - previous->start);
            r->end_marker = more && view_is(line, "end of trees");
            if (more && !r->end_marker) r->at = start, r->line = line.line;
            return KILN_OK;
        }
        if (!line.n) continue;
        text_view key, value;
        int64_t index;
        if (!split_key(line, &key, &value) || !view_is(key, "Tree"))
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: expected 'Tree=%d' or 'end of trees', found " QUOTE_FMT,
                             line.line, r->n_trees, QUOTE(line));
        if (!parse_int64(value, &index) || index != r->n_trees)
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: expected 'Tree=%d', found " QUOTE_FMT, line.line,
                             r->n_trees, QUOTE(line));
        if (previous) previous->bytes = (size_t)(line.p - previous->start);
        tree_block *b = NULL;
        KILN_TRY(add_block(r, &b));
        b->start = line.p;
        b->line = line.line;
        KILN_TRY(read_block_fields(r, b, (int)index));
        previous = b;
    }
}

/* After the trees: only a parameters section that is opened must be closed (a cut-off file). */
static kiln_status check_trailer(lgb_reader *r)
{
    text_view line;
    int opened = 0;
    while (next_line(r, &line)) {
        if (view_is(line, "parameters:")) opened = line.line;
        if (view_is(line, "end of parameters")) opened = 0;
    }
    if (opened)
        return kiln_fail(KILN_ERR_MALFORMED, "the parameters section opened on line %d never ends (a truncated file?)",
                         opened);
    return KILN_OK;
}

/* ---- header -------------------------------------------------------------------------------------------- */

static kiln_status require_header(const lgb_reader *r, int f)
{
    if (!r->header[f].p) return kiln_fail(KILN_ERR_MALFORMED, "the header has no '%s'", header_names[f]);
    return KILN_OK;
}

static kiln_status read_header_values(lgb_reader *r)
{
    int64_t v;
    KILN_TRY(require_header(r, H_NUM_CLASS));
    KILN_TRY(read_int(r->header[H_NUM_CLASS], "num_class", 1, TREE_MAX_TARGETS, &v));
    r->n_classes = r->n_targets = (int32_t)v;
    if (r->header[H_TREES_PER_ITERATION].p) {
        KILN_TRY(read_int(r->header[H_TREES_PER_ITERATION], "num_tree_per_iteration", 1, TREE_MAX_TARGETS, &v));
        r->n_targets = (int32_t)v;
    }
    KILN_TRY(require_header(r, H_LABEL_INDEX));
    KILN_TRY(read_int(r->header[H_LABEL_INDEX], "label_index", INT32_MIN, INT32_MAX, &v));
    KILN_TRY(require_header(r, H_MAX_FEATURE_IDX));
    KILN_TRY(read_int(r->header[H_MAX_FEATURE_IDX], "max_feature_idx", 0, TREE_MAX_FEATURES - 1, &v));
    r->n_features = (int32_t)v + 1;
    char because[48];
    snprintf(because, sizeof because, "max_feature_idx=%d", r->n_features - 1);
    KILN_TRY(require_header(r, H_FEATURE_NAMES));
    KILN_TRY(check_count(r->header[H_FEATURE_NAMES], "feature_names", r->n_features, because));
    KILN_TRY(require_header(r, H_FEATURE_INFOS));
    KILN_TRY(check_count(r->header[H_FEATURE_INFOS], "feature_infos", r->n_features, because));
    return KILN_OK;
}

/* Format v3 and later end the trees with "end of trees"; older files rely on tree_sizes alone. */
static bool writes_end_marker(text_view version)
{
    int64_t number;
    if (!version.p || version.n < 2 || version.p[0] != 'v') return false;
    return parse_int64((text_view){version.p + 1, version.n - 1, version.line}, &number) && number >= 3;
}

/* tree_sizes gives each tree's length in bytes (LightGBM seeks with them): a cut-off or edited tree shows.
 * The last tree may run on over blank lines when no "end of trees" follows it (format v2). */
static kiln_status check_tree_sizes(const lgb_reader *r)
{
    text_view sizes = r->header[H_TREE_SIZES], token;
    if (!sizes.p) return KILN_OK;
    char because[48];
    snprintf(because, sizeof because, "a file with %d trees", r->n_trees);
    KILN_TRY(check_count(sizes, "tree_sizes", r->n_trees, because));
    for (int32_t t = 0; next_token(&sizes, &token); t++) {
        int64_t want;
        const tree_block *b = &r->trees[t];
        if (!parse_int64(token, &want) || want < 0) return bad_value(token, "tree_sizes", t, "a size in bytes");
        bool fits = (uint64_t)want == b->bytes;
        if (!fits && t == r->n_trees - 1 && (uint64_t)want < b->bytes) {
            fits = true;
            for (size_t i = (size_t)want; i < b->bytes; i++) fits = fits && (b->start[i] == '\n' || b->start[i] == '\r');
        }
        if (!fits)
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d is %zu bytes long, tree_sizes says %lld (a truncated "
                             "or edited file?)", b->line, t, b->bytes, (long long)want);
    }
    return KILN_OK;
}

/* ---- objective ----------------------------------------------------------------------------------------- */

typedef struct objective_rule {
    const char *name;
    tree_schema_transform transform;
    bool classifier;
    bool squares_with_sqrt; /* trained on sign(y)*sqrt(|y|) ("sqrt", reg_sqrt): predictions are squared back */
    bool needs_sigmoid;     /* takes "sigmoid:<slope>" */
    bool needs_num_class;   /* takes "num_class:<K>" */
} objective_rule;

/* LightGBM's ObjectiveFunction::ConvertOutput per objective (src/objective/). Huber ignores "sqrt"; the
 * exp-link objectives override the squaring; ranking and custom objectives output raw scores. */
static const objective_rule objectives[] = {
    {"regression", TREE_TRANSFORM_NONE, false, true, false, false},
    {"regression_l1", TREE_TRANSFORM_NONE, false, true, false, false},
    {"quantile", TREE_TRANSFORM_NONE, false, true, false, false},
    {"fair", TREE_TRANSFORM_NONE, false, true, false, false},
    {"mape", TREE_TRANSFORM_NONE, false, true, false, false},
    {"huber", TREE_TRANSFORM_NONE, false, false, false, false},
    {"poisson", TREE_TRANSFORM_EXP, false, false, false, false},
    {"gamma", TREE_TRANSFORM_EXP, false, false, false, false},
    {"tweedie", TREE_TRANSFORM_EXP, false, false, false, false},
    {"binary", TREE_TRANSFORM_LOGISTIC, true, false, true, false},
    {"multiclass", TREE_TRANSFORM_SOFTMAX, true, false, false, true},
    {"multiclassova", TREE_TRANSFORM_LOGISTIC, true, false, true, true},
    {"cross_entropy", TREE_TRANSFORM_LOGISTIC, false, false, false, false},
    {"cross_entropy_lambda", TREE_TRANSFORM_SOFTPLUS, false, false, false, false},
    {"lambdarank", TREE_TRANSFORM_NONE, false, false, false, false},
    {"rank_xendcg", TREE_TRANSFORM_NONE, false, false, false, false},
    {"custom", TREE_TRANSFORM_NONE, false, false, false, false},
};

typedef struct objective_params {
    bool sqrt;
    double sigmoid;    /* 0 when absent */
    int64_t num_class; /* -1 when absent */
} objective_params;

/* The tokens after the objective's name: "sqrt" and key:value pairs (unknown keys are LightGBM's own). */
static kiln_status read_objective_params(text_view v, objective_params *p)
{
    text_view token;
    *p = (objective_params){false, 0, -1};
    while (next_token(&v, &token)) {
        if (view_is(token, "sqrt")) {
            p->sqrt = true;
            continue;
        }
        const char *colon = memchr(token.p, ':', token.n);
        if (!colon) return bad_value(token, "objective parameter", -1, "'sqrt' or key:value");
        text_view key = {token.p, (size_t)(colon - token.p), token.line};
        text_view value = {colon + 1, token.n - key.n - 1, token.line};
        if (view_is(key, "sigmoid") && (!parse_double(value, &p->sigmoid) || !(p->sigmoid > 0) || isinf(p->sigmoid)))
            return bad_value(token, "objective parameter", -1, "a positive finite sigmoid slope");
        if (view_is(key, "num_class") && (!parse_int64(value, &p->num_class) || p->num_class < 1))
            return bad_value(token, "objective parameter", -1, "a positive num_class");
    }
    return KILN_OK;
}

static kiln_status check_objective_shape(const lgb_reader *r, const objective_rule *rule, const objective_params *p,
                                         int line)
{
    if (rule->needs_sigmoid && p->sigmoid <= 0)
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: objective %s needs sigmoid:<slope>", line, rule->name);
    if (rule->needs_num_class && (p->num_class != r->n_classes || r->n_classes < 2 || r->n_targets != r->n_classes))
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: objective %s with num_class:%lld does not fit num_class=%d and "
                         "num_tree_per_iteration=%d", line, rule->name, (long long)p->num_class, r->n_classes,
                         r->n_targets);
    if (rule->classifier && !rule->needs_num_class && (r->n_classes != 1 || r->n_targets != 1))
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: a %s model has one score per row, not num_class=%d with "
                         "num_tree_per_iteration=%d", line, rule->name, r->n_classes, r->n_targets);
    return KILN_OK;
}

static kiln_status read_objective(const lgb_reader *r, tree_schema *s)
{
    text_view v = r->header[H_OBJECTIVE], name;
    s->transform = TREE_TRANSFORM_NONE;
    s->sigmoid_scale = 1;
    if (!v.p) return KILN_OK; /* trained with a custom objective: the scores are the model's output */
    if (!next_token(&v, &name)) return kiln_fail(KILN_ERR_MALFORMED, "line %d: objective is empty", v.line);
    const objective_rule *rule = NULL;
    for (size_t i = 0; i < sizeof objectives / sizeof objectives[0]; i++)
        if (view_is(name, objectives[i].name)) rule = &objectives[i];
    if (!rule)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "line %d: objective " QUOTE_FMT " is not one kiln knows", name.line,
                         QUOTE(name));
    objective_params p;
    KILN_TRY(read_objective_params(v, &p));
    KILN_TRY(check_objective_shape(r, rule, &p, name.line));
    s->transform = rule->squares_with_sqrt && p.sqrt ? TREE_TRANSFORM_SIGNED_SQUARE : rule->transform;
    if (rule->needs_sigmoid) s->sigmoid_scale = p.sigmoid;
    s->classifier = rule->classifier;
    s->n_classes = rule->classifier ? (r->n_classes == 1 ? 2 : r->n_classes) : 0;
    return KILN_OK;
}

/* ---- trees, first pass: sizes ---------------------------------------------------------------------------- */

static kiln_status require_field(const tree_block *b, int32_t t, int f)
{
    if (!b->field[f].p) return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d has no '%s'", b->line, t, tree_names[f]);
    return KILN_OK;
}

/* Checks the counts everything else is sized from, against the values the file actually holds. */
static kiln_status measure_tree(lgb_reader *r, int32_t t)
{
    tree_block *b = &r->trees[t];
    int64_t leaves, sets, linear = 0;
    char because[48];
    KILN_TRY(require_field(b, t, T_NUM_LEAVES));
    KILN_TRY(read_int(b->field[T_NUM_LEAVES], "num_leaves", 1, INT32_MAX / 4, &leaves));
    snprintf(because, sizeof because, "num_leaves=%lld", (long long)leaves);
    KILN_TRY(require_field(b, t, T_LEAF_VALUE));
    KILN_TRY(check_count(b->field[T_LEAF_VALUE], "leaf_value", leaves, because));
    KILN_TRY(require_field(b, t, T_NUM_CAT));
    KILN_TRY(read_int(b->field[T_NUM_CAT], "num_cat", 0, leaves - 1, &sets));
    if (b->field[T_IS_LINEAR].p) KILN_TRY(read_int(b->field[T_IS_LINEAR], "is_linear", 0, 1, &linear));
    if (linear)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "line %d: tree %d is a linear tree (is_linear=1, linear_tree=true); "
                         "kiln supports trees with constant leaves only", b->field[T_IS_LINEAR].line, t);
    static const int split_fields[] = {T_SPLIT_FEATURE, T_THRESHOLD, T_LEFT_CHILD, T_RIGHT_CHILD};
    for (size_t i = 0; leaves > 1 && i < sizeof split_fields / sizeof split_fields[0]; i++)
        KILN_TRY(require_field(b, t, split_fields[i]));
    int64_t words = 0;
    if (sets > 0) {
        KILN_TRY(require_field(b, t, T_CAT_BOUNDARIES));
        KILN_TRY(require_field(b, t, T_CAT_THRESHOLD));
        words = count_tokens(b->field[T_CAT_THRESHOLD]);
    }
    b->leaves = (int32_t)leaves;
    b->category_sets = (int32_t)sets;
    b->category_words = (int32_t)words;
    r->total_nodes += 2 * leaves - 1;
    r->total_leaves += leaves;
    r->total_words += words;
    if (r->total_nodes > INT32_MAX / 2 || r->total_words > INT32_MAX / 2)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "line %d: the model has more nodes than kiln supports", b->line);
    if (leaves > r->widest) r->widest = (int32_t)leaves;
    if (sets > r->most_sets) r->most_sets = (int32_t)sets;
    return KILN_OK;
}

/* ---- trees, second pass: values ------------------------------------------------------------------------ */

/* The schema's arrays, writable while they are filled. */
typedef struct schema_arrays {
    int32_t *roots, *kind, *feature, *compare, *missing, *zero_missing, *true_child, *false_child;
    int32_t *category_first, *category_count, *leaf_first, *leaf_count, *leaf_targets;
    double *threshold, *leaf_weights;
    uint32_t *category_words;
} schema_arrays;

/* Where tree t's nodes, leaves and category words start in the schema's arrays. */
typedef struct tree_place {
    int32_t tree, root, first_leaf, first_word;
} tree_place;

/* The tree's leaves: schema nodes root+(L-1)+k, each adding leaf_value[k] to the tree's score. */
static kiln_status read_leaves(const lgb_reader *r, const tree_block *b, tree_place at, schema_arrays *a)
{
    char because[48];
    snprintf(because, sizeof because, "num_leaves=%d", b->leaves);
    KILN_TRY(read_doubles(b->field[T_LEAF_VALUE], "leaf_value", b->leaves, because, a->leaf_weights + at.first_leaf));
    for (int32_t k = 0; k < b->leaves; k++) {
        int32_t node = at.root + b->leaves - 1 + k;
        a->kind[node] = TREE_SCHEMA_LEAF;
        a->leaf_first[node] = at.first_leaf + k;
        a->leaf_count[node] = 1;
        a->leaf_targets[at.first_leaf + k] = at.tree % r->n_targets;
    }
    return KILN_OK;
}

/* Fields present but unused must still have one value per node or per leaf. */
static kiln_status check_other_lengths(const tree_block *b)
{
    static const int per_split[] = {T_SPLIT_FEATURE, T_THRESHOLD, T_DECISION_TYPE, T_LEFT_CHILD, T_RIGHT_CHILD,
                                    T_SPLIT_GAIN, T_INTERNAL_VALUE, T_INTERNAL_WEIGHT, T_INTERNAL_COUNT};
    static const int per_leaf[] = {T_LEAF_WEIGHT, T_LEAF_COUNT};
    char because[48];
    snprintf(because, sizeof because, "num_leaves=%d", b->leaves);
    for (size_t i = 0; i < sizeof per_split / sizeof per_split[0]; i++)
        if (b->field[per_split[i]].p)
            KILN_TRY(check_count(b->field[per_split[i]], tree_names[per_split[i]], b->leaves - 1, because));
    for (size_t i = 0; i < sizeof per_leaf / sizeof per_leaf[0]; i++)
        if (b->field[per_leaf[i]].p) KILN_TRY(check_count(b->field[per_leaf[i]], tree_names[per_leaf[i]], b->leaves, because));
    return KILN_OK;
}

/* cat_boundaries (num_cat+1 offsets from 0 to the word count, non-decreasing) and the cat_threshold words. */
static kiln_status read_category_sets(lgb_reader *r, const tree_block *b, tree_place at, schema_arrays *a)
{
    char because[48];
    snprintf(because, sizeof because, "num_cat=%d", b->category_sets);
    text_view bounds = b->field[T_CAT_BOUNDARIES], words = b->field[T_CAT_THRESHOLD], token;
    KILN_TRY(read_ints(bounds, "cat_boundaries", b->category_sets + 1, because, 0, b->category_words, r->boundaries));
    for (int32_t i = 0; i <= b->category_sets; i++) {
        bool ordered = i == 0 ? r->boundaries[0] == 0 : r->boundaries[i] >= r->boundaries[i - 1];
        if (!ordered || (i == b->category_sets && r->boundaries[i] != b->category_words))
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: cat_boundaries must rise from 0 to the %d cat_threshold "
                             "words", bounds.line, b->category_words);
    }
    for (int32_t i = 0; next_token(&words, &token); i++) {
        int64_t w;
        if (!parse_int64(token, &w) || w < 0 || w > UINT32_MAX)
            return bad_value(token, "cat_threshold", i, "a 32-bit word");
        a->category_words[at.first_word + i] = (uint32_t)w;
    }
    return KILN_OK;
}

/* Decodes decision_type (LightGBM's tree.h: bit 0 categorical, bit 1 default left, bits 2-3 missing type)
 * into the schema's split of internal node i. */
static kiln_status decode_split(const lgb_reader *r, const tree_block *b, tree_place at, int32_t i, schema_arrays *a)
{
    enum { MISSING_NONE, MISSING_ZERO, MISSING_NAN };
    int32_t node = at.root + i, type = r->decision[i];
    int32_t missing_type = (type >> 2) & 3;
    tree_missing default_way = (type & 2) ? TREE_MISSING_TRUE : TREE_MISSING_FALSE;
    a->compare[node] = TREE_CMP_LE;
    if (type & 1) { /* categorical: threshold is the index of the node's category set */
        double set = a->threshold[node];
        if (!(set >= 0 && set < b->category_sets && set == floor(set)))
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: threshold value %d (%g) of a categorical split is not a "
                             "category set below num_cat=%d", b->field[T_THRESHOLD].line, i, set, b->category_sets);
        int32_t k = (int32_t)set;
        a->kind[node] = TREE_SCHEMA_CATEGORICAL;
        a->category_first[node] = at.first_word + r->boundaries[k];
        a->category_count[node] = r->boundaries[k + 1] - r->boundaries[k];
        a->missing[node] = TREE_MISSING_FALSE; /* NaN goes right */
        return KILN_OK;
    }
    if (missing_type > MISSING_NAN)
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: decision_type value %d (%d) has missing type 3, which does not "
                         "exist", b->field[T_DECISION_TYPE].line, i, type);
    a->kind[node] = TREE_SCHEMA_NUMERIC;
    a->missing[node] = missing_type == MISSING_NONE ? TREE_MISSING_AS_ZERO : default_way;
    a->zero_missing[node] = missing_type == MISSING_ZERO;
    return KILN_OK;
}

/* LightGBM's child references (node i >= 0, leaf k as ~k = -1-k) as global schema node indices. */
static void globalize_children(const tree_block *b, tree_place at, int32_t *children)
{
    for (int32_t i = 0; i < b->leaves - 1; i++) {
        int32_t c = children[at.root + i];
        children[at.root + i] = at.root + (c >= 0 ? c : b->leaves - 1 + ~c);
    }
}

static void name_node(const tree_block *b, int32_t local, char *buf, size_t size)
{
    if (local < b->leaves - 1) snprintf(buf, size, "node %d", local);
    else snprintf(buf, size, "leaf %d", local - (b->leaves - 1));
}

/* Every node but the root has exactly one parent, and all are reachable from the root: a tree, with no
 * cycles and no stray nodes. */
static kiln_status check_structure(lgb_reader *r, const tree_block *b, tree_place at, const schema_arrays *a)
{
    int32_t internal = b->leaves - 1, nodes = 2 * b->leaves - 1;
    int line = b->field[T_LEFT_CHILD].line;
    char name[32];
    memset(r->has_parent, 0, (size_t)nodes);
    for (int32_t i = 0; i < 2 * internal; i++) {
        int32_t local = (i % 2 ? a->false_child : a->true_child)[at.root + i / 2] - at.root;
        name_node(b, local, name, sizeof name);
        if (local == 0) return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d: node %d's child is the root (a cycle)",
                                         line, at.tree, i / 2);
        if (r->has_parent[local])
            return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d: %s is the child of two nodes", line, at.tree, name);
        r->has_parent[local] = 1;
    }
    int32_t head = 0, tail = 0;
    r->queue[tail++] = 0;
    while (head < tail) {
        int32_t local = r->queue[head++];
        if (local >= internal) continue;
        r->queue[tail++] = a->true_child[at.root + local] - at.root;
        r->queue[tail++] = a->false_child[at.root + local] - at.root;
    }
    if (tail != nodes)
        return kiln_fail(KILN_ERR_MALFORMED, "line %d: tree %d: %d of its %d nodes cannot be reached from the root "
                         "(a cycle?)", line, at.tree, nodes - tail, nodes);
    return KILN_OK;
}

static kiln_status read_splits(lgb_reader *r, const tree_block *b, tree_place at, schema_arrays *a)
{
    int32_t n = b->leaves - 1;
    char because[48];
    snprintf(because, sizeof because, "num_leaves=%d", b->leaves);
    KILN_TRY(read_ints(b->field[T_SPLIT_FEATURE], "split_feature", n, because, 0, r->n_features - 1, a->feature + at.root));
    KILN_TRY(read_doubles(b->field[T_THRESHOLD], "threshold", n, because, a->threshold + at.root));
    memset(r->decision, 0, (size_t)n * sizeof *r->decision); /* absent: numerical, missing type None */
    if (b->field[T_DECISION_TYPE].p)
        KILN_TRY(read_ints(b->field[T_DECISION_TYPE], "decision_type", n, because, 0, 15, r->decision));
    KILN_TRY(read_ints(b->field[T_LEFT_CHILD], "left_child", n, because, -b->leaves, n - 1, a->true_child + at.root));
    KILN_TRY(read_ints(b->field[T_RIGHT_CHILD], "right_child", n, because, -b->leaves, n - 1, a->false_child + at.root));
    globalize_children(b, at, a->true_child);
    globalize_children(b, at, a->false_child);
    if (b->category_sets) KILN_TRY(read_category_sets(r, b, at, a));
    for (int32_t i = 0; i < n; i++) KILN_TRY(decode_split(r, b, at, i, a));
    return check_structure(r, b, at, a);
}

static kiln_status read_tree(lgb_reader *r, tree_place at, schema_arrays *a)
{
    const tree_block *b = &r->trees[at.tree];
    a->roots[at.tree] = at.root;
    KILN_TRY(check_other_lengths(b));
    KILN_TRY(read_leaves(r, b, at, a));
    return b->leaves > 1 ? read_splits(r, b, at, a) : KILN_OK;
}

/* ---- the schema ---------------------------------------------------------------------------------------- */

static kiln_status allocate_arrays(lgb_reader *r, region *mem, schema_arrays *a)
{
    size_t nodes = (size_t)r->total_nodes, leaves = (size_t)r->total_leaves;
    int32_t **per_node[] = {&a->kind, &a->feature, &a->compare, &a->missing, &a->zero_missing, &a->true_child,
                            &a->false_child, &a->category_first, &a->category_count, &a->leaf_first, &a->leaf_count};
    for (size_t i = 0; i < sizeof per_node / sizeof per_node[0]; i++)
        if (!(*per_node[i] = region_alloc(mem, nodes, sizeof(int32_t)))) return KILN_ERR_OUT_OF_MEMORY;
    a->roots = region_alloc(mem, (size_t)r->n_trees, sizeof *a->roots);
    a->threshold = region_alloc(mem, nodes, sizeof *a->threshold);
    a->leaf_targets = region_alloc(mem, leaves, sizeof *a->leaf_targets);
    a->leaf_weights = region_alloc(mem, leaves, sizeof *a->leaf_weights);
    a->category_words = region_alloc(mem, (size_t)r->total_words, sizeof *a->category_words);
    /* scratch for one tree at a time */
    r->decision = mem_alloc((size_t)r->widest * sizeof *r->decision);
    r->boundaries = mem_alloc(((size_t)r->most_sets + 1) * sizeof *r->boundaries);
    r->queue = mem_alloc((size_t)r->widest * 2 * sizeof *r->queue);
    r->has_parent = mem_alloc((size_t)r->widest * 2);
    if (!a->roots || !a->threshold || !a->leaf_targets || !a->leaf_weights || !a->category_words || !r->decision ||
        !r->boundaries || !r->queue || !r->has_parent)
        return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

static void publish_arrays(const lgb_reader *r, const schema_arrays *a, tree_schema *s)
{
    s->n_features = r->n_features;
    s->n_targets = r->n_targets;
    s->n_trees = r->n_trees;
    s->n_nodes = (int32_t)r->total_nodes;
    s->tree_roots = a->roots;
    s->nodes_kind = a->kind;
    s->nodes_feature = a->feature;
    s->nodes_compare = a->compare;
    s->nodes_threshold = a->threshold;
    s->nodes_missing = a->missing;
    s->nodes_zero_missing = a->zero_missing;
    s->nodes_true = a->true_child;
    s->nodes_false = a->false_child;
    s->nodes_category_first = a->category_first;
    s->nodes_category_count = a->category_count;
    s->nodes_leaf_first = a->leaf_first;
    s->nodes_leaf_count = a->leaf_count;
    s->category_words = r->total_words ? a->category_words : NULL;
    s->n_category_words = (int32_t)r->total_words;
    s->leaf_targets = a->leaf_targets;
    s->leaf_weights = a->leaf_weights;
    s->n_leaf_weights = (int32_t)r->total_leaves;
}

static kiln_status read_all_trees(lgb_reader *r, region *mem, tree_schema *s)
{
    schema_arrays a;
    KILN_TRY(allocate_arrays(r, mem, &a));
    tree_place at = {0, 0, 0, 0};
    for (; at.tree < r->n_trees; at.tree++) {
        KILN_TRY(read_tree(r, at, &a));
        at.root += 2 * r->trees[at.tree].leaves - 1;
        at.first_leaf += r->trees[at.tree].leaves;
        at.first_word += r->trees[at.tree].category_words;
    }
    publish_arrays(r, &a, s);
    return KILN_OK;
}

/* Everything the model is, apart from its trees. */
static kiln_status describe_model(const lgb_reader *r, region *mem, tree_schema *s)
{
    KILN_TRY(read_objective(r, s));
    if (r->n_trees % r->n_targets)
        return kiln_fail(KILN_ERR_MALFORMED, "the model has %d trees, not a multiple of num_tree_per_iteration=%d",
                         r->n_trees, r->n_targets);
    s->thresholds_are_double = true;
    s->zero_tiny_inputs = true;
    s->aggregate = r->header[H_AVERAGE_OUTPUT].p ? TREE_AGG_AVERAGE : TREE_AGG_SUM;
    s->average_divisor = r->n_trees / r->n_targets; /* LightGBM averages over iterations */
    text_view version = r->header[H_VERSION], objective = r->header[H_OBJECTIVE];
    s->source = region_printf(mem, "lightgbm %.*s %.*s", (int)version.n, version.p ? version.p : "",
                              (int)objective.n, objective.p ? objective.p : "(custom objective)");
    if (!s->source) return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

static kiln_status read_model(lgb_reader *r, region *mem, tree_schema *s)
{
    KILN_TRY(read_header(r));
    KILN_TRY(read_header_values(r));
    KILN_TRY(find_trees(r));
    if (!r->end_marker && writes_end_marker(r->header[H_VERSION]))
        return kiln_fail(KILN_ERR_MALFORMED, "the file ends without 'end of trees' (truncated?)");
    if (!r->end_marker && !r->header[H_TREE_SIZES].p)
        return kiln_fail(KILN_ERR_MALFORMED, "the file has neither 'end of trees' nor tree_sizes, so a truncated file "
                         "could not be told from a whole one");
    KILN_TRY(check_trailer(r));
    if (r->n_trees == 0) return kiln_fail(KILN_ERR_MALFORMED, "the model has no trees");
    KILN_TRY(check_tree_sizes(r));
    for (int32_t t = 0; t < r->n_trees; t++) KILN_TRY(measure_tree(r, t));
    KILN_TRY(describe_model(r, mem, s));
    return read_all_trees(r, mem, s);
}

kiln_status lightgbm_read(const uint8_t *data, size_t size, region *mem, tree_schema *schema)
{
    memset(schema, 0, sizeof *schema);
    if (size > INT32_MAX) return kiln_fail(KILN_ERR_UNSUPPORTED, "LightGBM models over 2 GB are not supported");
    lgb_reader r = {.at = (const char *)data, .end = (const char *)data + size, .line = 1};
    kiln_status st = read_model(&r, mem, schema);
    mem_free(r.trees);
    mem_free(r.decision);
    mem_free(r.boundaries);
    mem_free(r.queue);
    mem_free(r.has_parent);
    return st;
}
