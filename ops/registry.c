/*
 * registry.c — the table of every operator kiln implements, gathered from the family files.
 *
 * Lookup is a linear scan: it runs once per node at load, over a few hundred entries, which costs
 * microseconds; a hash table would buy nothing measurable.
 */
#include <string.h>

#include "ops/op.h"

#define FAMILIES(X)                                                                                         \
    X(unary) X(activation) X(binary) X(variadic) X(matmul) X(conv) X(pool) X(normalization) X(softmax)      \
    X(reduce) X(topk) X(shape) X(transpose) X(concat_split) X(slice) X(gather) X(expand_tile) X(pad)        \
    X(generate) X(cast) X(resize) X(trilu) X(cumsum) X(elements) X(loss) X(select) X(scatter_nd)            \
    X(sequence_reverse) X(unpool) X(det) X(einsum) X(window) X(detection) X(grid_sample) X(roi_align)       \
    X(spectral) X(optimizer) X(tfidf) X(random) X(string) X(quantize) X(rnn) X(control_flow) X(sequence)    \
    X(kiln_tree) X(ml_tree) X(ml_linear) X(ml_preprocess) X(kiln_transformer)

#define DECLARE_FAMILY(name) extern const op_def ops_##name[];
FAMILIES(DECLARE_FAMILY)

#define LIST_FAMILY(name) ops_##name,
static const op_def *const families[] = {FAMILIES(LIST_FAMILY)};

static bool same_domain(const char *a, const char *b)
{
    /* "" and "ai.onnx" both name the default domain */
    if (strcmp(a, "ai.onnx") == 0) a = "";
    if (strcmp(b, "ai.onnx") == 0) b = "";
    return strcmp(a, b) == 0;
}

const op_def *op_lookup(const char *domain, const char *op_type, int opset)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_def *d = families[f]; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0 && same_domain(d->domain, domain) && opset >= d->since_opset &&
                opset <= d->until_opset)
                return d;
    return NULL;
}

bool op_known(const char *domain, const char *op_type, int *min_opset, int *max_opset)
{
    bool found = false;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_def *d = families[f]; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0 && same_domain(d->domain, domain)) {
                if (!found || d->since_opset < *min_opset) *min_opset = d->since_opset;
                if (!found || d->until_opset > *max_opset) *max_opset = d->until_opset;
                found = true;
            }
    return found;
}

void op_for_each(void (*fn)(const op_def *def, void *arg), void *arg)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const op_def *d = families[f]; d->op_type; d++) fn(d, arg);
}
