/*
 * op_helpers.c — what every operator's init and shape functions share: attribute readers that reject a
 * wrong attribute type instead of guessing, dtype checks that produce the "unsupported dtype" findings the
 * loader reports, and numpy broadcasting.
 */
#include <stdio.h>
#include <string.h>

#include "kernels/tree_ensemble.h"
#include "ops/op.h"

const kiln_dtype DTYPES_FLOAT[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_UNDEFINED};
const kiln_dtype DTYPES_NUMERIC[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT8,   KILN_INT16,  KILN_INT32, KILN_INT64,
                                     KILN_UINT8,   KILN_UINT16,  KILN_UINT32, KILN_UINT64, KILN_UNDEFINED};
const kiln_dtype DTYPES_ALL[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT8,   KILN_INT16,  KILN_INT32, KILN_INT64,
                                 KILN_UINT8,   KILN_UINT16,  KILN_UINT32, KILN_UINT64, KILN_BOOL,  KILN_FLOAT16,
                                 KILN_BFLOAT16, KILN_UNDEFINED};
const kiln_dtype DTYPES_INDEX[] = {KILN_INT32, KILN_INT64, KILN_UNDEFINED};
const kiln_dtype DTYPES_BOOL[] = {KILN_BOOL, KILN_UNDEFINED};

void *op_alloc_prepacked(op_init_ctx *ctx, size_t bytes)
{
    void *p = region_alloc(ctx->mem, bytes, 1);
    if (p) ctx->stats.prepacked_bytes += bytes;
    return p;
}

void op_note_trees(op_init_ctx *ctx, const tree_ensemble *e)
{
    ctx->stats.trees += e->n_trees;
    ctx->stats.tree_nodes += e->n_nodes;
    if (e->max_depth > ctx->stats.tree_max_depth) ctx->stats.tree_max_depth = e->max_depth;
}

bool op_has_input(const op_init_ctx *ctx, int i)
{
    return i < ctx->n_inputs && ctx->node->inputs[i] >= 0;
}

value_type op_value_type(const graph_value *v) { return (value_type){v->kind, v->elem_kind, v->dtype, v->key_dtype}; }

void op_set_output_type(op_init_ctx *ctx, int k, value_type t)
{
    ctx->output_dtypes[k] = t.dtype;
    ctx->output_kinds[k] = t.kind;
    ctx->output_elem_kinds[k] = t.elem_kind;
    ctx->output_key_dtypes[k] = t.key_dtype;
}

value_type op_input_type(const op_init_ctx *ctx, int i)
{
    value_type t = {VALUE_TENSOR, VALUE_TENSOR, KILN_UNDEFINED, KILN_UNDEFINED};
    if (!op_has_input(ctx, i)) return t;
    const graph_value *v = &ctx->graph->values[ctx->node->inputs[i]];
    t.kind = v->kind;
    t.elem_kind = v->elem_kind;
    t.key_dtype = v->key_dtype;
    t.dtype = ctx->input_dtypes[i];
    return t;
}

kiln_status op_require_dtype(const op_init_ctx *ctx, int input, const kiln_dtype *allowed)
{
    if (!op_has_input(ctx, input)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", input);
    kiln_dtype dtype = ctx->input_dtypes[input];
    for (const kiln_dtype *a = allowed; *a != KILN_UNDEFINED; a++)
        if (*a == dtype) return KILN_OK;
    const char *name = ctx->graph->values[ctx->node->inputs[input]].name;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d ('%s') has dtype %s, which this operator does not support",
                     input, name, kiln_dtype_name(dtype));
}

kiln_status op_require_arity(const op_init_ctx *ctx, int min_in, int max_in, int min_out, int max_out)
{
    if (ctx->n_inputs < min_in || ctx->n_inputs > max_in)
        return kiln_fail(KILN_ERR_MALFORMED, "has %d inputs, expected %d to %d", ctx->n_inputs, min_in, max_in);
    if (ctx->n_outputs < min_out || ctx->n_outputs > max_out)
        return kiln_fail(KILN_ERR_MALFORMED, "has %d outputs, expected %d to %d", ctx->n_outputs, min_out,
                         max_out);
    for (int i = 0; i < min_in; i++)
        if (!op_has_input(ctx, i)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", i);
    for (int i = 0; i < min_out; i++)
        if (ctx->node->outputs[i] < 0) return kiln_fail(KILN_ERR_MALFORMED, "output %d is required", i);
    return KILN_OK;
}

static const char *attr_type_name(attr_type type)
{
    static const char *const names[] = {"undefined", "float",  "int",     "string",  "tensor",
                                        "graph",     "floats", "ints",    "strings", "tensors",
                                        "graphs",    "sparse tensor", "sparse tensors", "type", "types"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

kiln_status attr_find(const graph_node *node, const char *name, attr_type want, const graph_attr **out)
{
    *out = graph_node_attr(node, name);
    if (*out && (*out)->type != want)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is of type %s, expected %s", name,
                         attr_type_name((*out)->type), attr_type_name(want));
    return KILN_OK;
}

kiln_status attr_int(const graph_node *node, const char *name, int64_t dflt, int64_t *out)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_INT, &a));
    *out = a ? a->i : dflt;
    return KILN_OK;
}

kiln_status attr_float(const graph_node *node, const char *name, float dflt, float *out)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_FLOAT, &a));
    *out = a ? a->f : dflt;
    return KILN_OK;
}

kiln_status attr_string(const graph_node *node, const char *name, const char *dflt, const char **out)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_STRING, &a));
    *out = a ? a->s : dflt;
    return KILN_OK;
}

kiln_status attr_ints(const graph_node *node, const char *name, int64_t *out, int capacity, int *count)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_INTS, &a));
    *count = 0;
    if (!a) return KILN_OK;
    if (a->count > capacity)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has %d values, at most %d allowed", name, a->count,
                         capacity);
    if (a->count) memcpy(out, a->ints, (size_t)a->count * sizeof *out);
    *count = a->count;
    return KILN_OK;
}

kiln_status attr_floats(const graph_node *node, const char *name, float *out, int capacity, int *count)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_FLOATS, &a));
    *count = 0;
    if (!a) return KILN_OK;
    if (a->count > capacity)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has %d values, at most %d allowed", name, a->count,
                         capacity);
    if (a->count) memcpy(out, a->floats, (size_t)a->count * sizeof *out);
    *count = a->count;
    return KILN_OK;
}

kiln_status attr_choice(const graph_node *node, const char *name, const char *dflt, const char *const *names,
                        int *index)
{
    const char *s;
    KILN_TRY(attr_string(node, name, dflt, &s));
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) {
            *index = i;
            return KILN_OK;
        }
    char allowed[256];
    size_t used = 0;
    for (int i = 0; names[i] && used < sizeof allowed; i++) {
        int n = snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "", names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is '%s', expected one of: %s", name, s, allowed);
}

kiln_status attr_tensor(const graph_node *node, const char *name, const kiln_tensor **out)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_TENSOR, &a));
    *out = a ? a->t : NULL;
    return KILN_OK;
}

kiln_status shape_broadcast(int rank_a, const int64_t *a, int rank_b, const int64_t *b, int *rank_out,
                            int64_t *out)
{
    int rank = rank_a > rank_b ? rank_a : rank_b;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        int64_t da = i < rank - rank_a ? 1 : a[i - (rank - rank_a)];
        int64_t db = i < rank - rank_b ? 1 : b[i - (rank - rank_b)];
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shapes %s and %s cannot be broadcast together",
                             shape_format(sa, sizeof sa, rank_a, a), shape_format(sb, sizeof sb, rank_b, b));
        }
        dims[i] = da == 1 ? db : da;
    }
    for (int i = 0; i < rank; i++) out[i] = dims[i];
    *rank_out = rank;
    return KILN_OK;
}

kiln_status op_wrap_index(int64_t index, int64_t dim, int axis, int64_t *wrapped)
{
    if (index < -dim || index >= dim)
        return kiln_fail(KILN_ERR_RUNTIME, "index %lld is out of range for axis %d of size %lld", (long long)index,
                         axis, (long long)dim);
    *wrapped = index < 0 ? index + dim : index;
    return KILN_OK;
}

kiln_status op_require_one_value(const kiln_tensor *t, const char *what)
{
    if (tensor_numel(t) != 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s must hold one value, it has %lld", what,
                         (long long)tensor_numel(t));
    return KILN_OK;
}

kiln_status op_shape_like_input0(op_ctx *ctx)
{
    op_set_output_shape(ctx, 0, ctx->inputs[0]->rank, ctx->inputs[0]->dims);
    return KILN_OK;
}

void op_set_output_shape(op_ctx *ctx, int i, int rank, const int64_t *dims)
{
    kiln_tensor *t = ctx->outputs[i];
    t->rank = rank;
    for (int d = 0; d < rank; d++) t->dims[d] = dims[d];
}
