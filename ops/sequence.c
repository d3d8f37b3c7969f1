/*
 * sequence.c — sequences and optionals: SequenceConstruct, SequenceEmpty, SequenceAt, SequenceInsert,
 * SequenceErase, SequenceLength, SplitToSequence, ConcatFromSequence, SequenceMap, Optional,
 * OptionalHasElement, OptionalGetElement.
 *
 * Design: a sequence's length is data, so these are OP_PLAN_TIME operators evaluated while planning (see
 * control_flow.c), with values encoded as core/value.h describes. Values are immutable, so a sequence
 * made from another shares its elements' data; a tensor entering a sequence is copied into the plan's
 * memory, since the tensor may be a caller's buffer that the plan must not outlive.
 */
#include <string.h>

#include "core/value.h"
#include "ops/op.h"

#define SEQUENCE_FLAGS (OP_PLAN_TIME | OP_DATA_DEPENDENT_SHAPE | OP_ANY_VALUE_KIND)
#define MAX_PIECES (1 << 24) /* the longest sequence value_make_list builds */

static kiln_status require_kind(const op_init_ctx *ctx, int i, value_kind kind)
{
    static const char *const names[] = {"a tensor", "a sequence", "a map", "an optional", "a sparse tensor"};
    if (!op_has_input(ctx, i)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", i);
    value_type got = op_input_type(ctx, i);
    if (got.kind != kind)
        return kiln_fail(KILN_ERR_MALFORMED, "input %d must be %s, not %s", i, names[kind], names[got.kind]);
    if (got.kind == VALUE_SEQUENCE && got.elem_kind == VALUE_MAP)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d is a sequence of maps (ZipMap's output: not an input)", i);
    return KILN_OK;
}

static void set_sequence_output(op_init_ctx *ctx, kiln_dtype dtype)
{
    op_set_output_type(ctx, 0, (value_type){VALUE_SEQUENCE, VALUE_TENSOR, dtype, KILN_UNDEFINED});
}

/* A position input (int32 or int64 scalar) wrapped into [0, limit + extra), where negative positions
 * count from `limit`. `extra` is 1 where a position may name the end (SequenceInsert). */
static kiln_status read_position(const kiln_tensor *t, int64_t limit, int extra, int64_t *out)
{
    KILN_TRY(op_require_one_value(t, "position"));
    int64_t pos = tensor_get_int(t, 0);
    int64_t wrapped = pos < 0 ? pos + limit : pos;
    if (wrapped < 0 || wrapped >= limit + extra)
        return kiln_fail(KILN_ERR_RUNTIME, "position %lld is out of range for a sequence of %lld", (long long)pos,
                         (long long)limit);
    *out = wrapped;
    return KILN_OK;
}

static kiln_status require_position_dtype(const op_init_ctx *ctx, int i)
{
    if (!op_has_input(ctx, i)) return KILN_OK;
    KILN_TRY(require_kind(ctx, i, VALUE_TENSOR));
    return op_require_dtype(ctx, i, DTYPES_INDEX);
}

/* ---- construction and access ------------------------------------------------------------------------- */

static kiln_status construct_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 4096, 1, 1));
    for (int i = 0; i < ctx->n_inputs; i++) {
        KILN_TRY(require_kind(ctx, i, VALUE_TENSOR));
        if (ctx->input_dtypes[i] != ctx->input_dtypes[0])
            return kiln_fail(KILN_ERR_MALFORMED, "input %d is %s, input 0 %s: a sequence holds one dtype", i,
                             kiln_dtype_name(ctx->input_dtypes[i]), kiln_dtype_name(ctx->input_dtypes[0]));
    }
    set_sequence_output(ctx, ctx->input_dtypes[0]);
    return KILN_OK;
}

static kiln_status construct_eval(op_ctx *ctx)
{
    kiln_tensor *out = ctx->outputs[0];
    KILN_TRY(value_make_list(ctx->mem, out->dtype, ctx->n_inputs, out));
    for (int i = 0; i < ctx->n_inputs; i++) KILN_TRY(value_copy_tensor(ctx->mem, ctx->inputs[i], &value_items(out)[i]));
    return KILN_OK;
}

static kiln_status empty_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 0, 0, 1, 1));
    int64_t dtype;
    KILN_TRY(attr_int(ctx->node, "dtype", KILN_FLOAT32, &dtype));
    if (dtype <= KILN_UNDEFINED || dtype > KILN_BFLOAT16 || dtype == KILN_STRING || !kiln_dtype_size((kiln_dtype)dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "dtype %lld is not supported", (long long)dtype);
    set_sequence_output(ctx, (kiln_dtype)dtype);
    return KILN_OK;
}

static kiln_status empty_eval(op_ctx *ctx)
{
    return value_make_list(ctx->mem, ctx->outputs[0]->dtype, 0, ctx->outputs[0]);
}

static kiln_status at_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    KILN_TRY(require_position_dtype(ctx, 1));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status at_eval(op_ctx *ctx)
{
    const kiln_tensor *seq = ctx->inputs[0];
    int64_t pos = 0;
    KILN_TRY(read_position(ctx->inputs[1], value_count(seq), 0, &pos));
    return value_copy_tensor(ctx->mem, &value_items(seq)[pos], ctx->outputs[0]);
}

static kiln_status length_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

static kiln_status length_eval(op_ctx *ctx)
{
    kiln_tensor count = {.dtype = KILN_INT64, .rank = 0, .data = &ctx->inputs[0]->dims[0]};
    return value_copy_tensor(ctx->mem, &count, ctx->outputs[0]);
}

/* ---- insert and erase -------------------------------------------------------------------------------- */

static kiln_status insert_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    KILN_TRY(require_kind(ctx, 1, VALUE_TENSOR));
    KILN_TRY(require_position_dtype(ctx, 2));
    if (ctx->input_dtypes[1] != ctx->input_dtypes[0])
        return kiln_fail(KILN_ERR_MALFORMED, "inserting a %s tensor into a sequence of %s",
                         kiln_dtype_name(ctx->input_dtypes[1]), kiln_dtype_name(ctx->input_dtypes[0]));
    set_sequence_output(ctx, ctx->input_dtypes[0]);
    return KILN_OK;
}

static kiln_status insert_eval(op_ctx *ctx)
{
    const kiln_tensor *seq = ctx->inputs[0];
    int64_t n = value_count(seq), pos = n;
    if (ctx->n_inputs > 2 && ctx->inputs[2]) KILN_TRY(read_position(ctx->inputs[2], n, 1, &pos));
    kiln_tensor *out = ctx->outputs[0];
    KILN_TRY(value_make_list(ctx->mem, seq->dtype, n + 1, out));
    kiln_tensor *items = value_items(out);
    for (int64_t i = 0; i < n; i++) items[i < pos ? i : i + 1] = value_items(seq)[i];
    return value_copy_tensor(ctx->mem, ctx->inputs[1], &items[pos]);
}

static kiln_status erase_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    KILN_TRY(require_position_dtype(ctx, 1));
    set_sequence_output(ctx, ctx->input_dtypes[0]);
    return KILN_OK;
}

static kiln_status erase_eval(op_ctx *ctx)
{
    const kiln_tensor *seq = ctx->inputs[0];
    int64_t n = value_count(seq), pos = n - 1;
    if (ctx->n_inputs > 1 && ctx->inputs[1]) KILN_TRY(read_position(ctx->inputs[1], n, 0, &pos));
    if (pos < 0) return kiln_fail(KILN_ERR_RUNTIME, "cannot erase from an empty sequence");
    kiln_tensor *out = ctx->outputs[0];
    KILN_TRY(value_make_list(ctx->mem, seq->dtype, n - 1, out));
    for (int64_t i = 0; i < n; i++)
        if (i != pos) value_items(out)[i < pos ? i : i - 1] = value_items(seq)[i];
    return KILN_OK;
}

/* ---- split and concatenate --------------------------------------------------------------------------- */

typedef struct split_params {
    int64_t axis;
    bool keepdims;
} split_params;

static kiln_status split_init(op_init_ctx *ctx)
{
    split_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_TENSOR));
    KILN_TRY(require_position_dtype(ctx, 1));
    int64_t keepdims;
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    KILN_TRY(attr_int(ctx->node, "keepdims", 1, &keepdims));
    p->keepdims = keepdims != 0;
    set_sequence_output(ctx, ctx->input_dtypes[0]);
    return KILN_OK;
}

/* Lengths of the pieces: `split` absent gives pieces of 1 (squeezed unless keepdims), a scalar gives
 * pieces of that size (the last may be shorter), a 1-D tensor gives the lengths themselves. */
static kiln_status split_lengths(const kiln_tensor *split, int64_t extent, region *mem, int64_t **lengths,
                                 int64_t *count)
{
    int64_t piece = 1;
    if (split && split->rank == 1) {
        *count = split->dims[0];
        if (*count > MAX_PIECES) return kiln_fail(KILN_ERR_UNSUPPORTED, "splitting into %lld pieces", (long long)*count);
        int64_t total = 0;
        *lengths = region_alloc(mem, (size_t)*count + 1, sizeof **lengths);
        if (!*lengths) return KILN_ERR_OUT_OF_MEMORY;
        for (int64_t i = 0; i < *count; i++) {
            (*lengths)[i] = tensor_get_int(split, i);
            if ((*lengths)[i] < 0) return kiln_fail(KILN_ERR_RUNTIME, "split has a negative length");
            total += (*lengths)[i];
        }
        if (total != extent)
            return kiln_fail(KILN_ERR_RUNTIME, "split lengths add up to %lld, not the axis' %lld", (long long)total,
                             (long long)extent);
        return KILN_OK;
    }
    if (split) {
        KILN_TRY(op_require_one_value(split, "split"));
        piece = tensor_get_int(split, 0);
        if (piece <= 0) return kiln_fail(KILN_ERR_RUNTIME, "split size %lld must be positive", (long long)piece);
    }
    *count = (extent + piece - 1) / piece;
    if (*count > MAX_PIECES) return kiln_fail(KILN_ERR_UNSUPPORTED, "splitting into %lld pieces", (long long)*count);
    *lengths = region_alloc(mem, (size_t)*count + 1, sizeof **lengths);
    if (!*lengths) return KILN_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < *count; i++) (*lengths)[i] = extent - i * piece < piece ? extent - i * piece : piece;
    return KILN_OK;
}

static kiln_status split_eval(op_ctx *ctx)
{
    const split_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    const kiln_tensor *split = ctx->n_inputs > 1 ? ctx->inputs[1] : NULL;
    int axis;
    if (!axis_normalize(p->axis, in->rank, &axis))
        return kiln_fail(KILN_ERR_RUNTIME, "axis %lld is out of range for rank %d", (long long)p->axis, in->rank);
    int64_t *lengths = NULL, count = 0;
    KILN_TRY(split_lengths(split, in->dims[axis], ctx->mem, &lengths, &count));
    bool squeeze = !split && !p->keepdims;
    kiln_tensor *out = ctx->outputs[0];
    KILN_TRY(value_make_list(ctx->mem, in->dtype, count, out));
    for (int64_t i = 0, start = 0; i < count; start += lengths[i++])
        KILN_TRY(value_slice(ctx->mem, in, axis, start, lengths[i], !squeeze, &value_items(out)[i]));
    return KILN_OK;
}

typedef struct concat_params {
    int64_t axis;
    bool new_axis;
} concat_params;

static kiln_status concat_init(op_init_ctx *ctx)
{
    concat_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    if (!graph_node_attr(ctx->node, "axis")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'axis' is required");
    int64_t new_axis;
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    KILN_TRY(attr_int(ctx->node, "new_axis", 0, &new_axis));
    p->new_axis = new_axis != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status concat_eval(op_ctx *ctx)
{
    const concat_params *p = ctx->params;
    const kiln_tensor *seq = ctx->inputs[0];
    if (value_count(seq) == 0) return kiln_fail(KILN_ERR_RUNTIME, "cannot concatenate an empty sequence");
    int axis, rank = value_items(seq)[0].rank + (p->new_axis ? 1 : 0);
    if (!axis_normalize(p->axis, rank, &axis))
        return kiln_fail(KILN_ERR_RUNTIME, "axis %lld is out of range for rank %d", (long long)p->axis, rank);
    return value_concat(ctx->mem, value_items(seq), value_count(seq), axis, p->new_axis, false, seq->dtype,
                        ctx->outputs[0]);
}

/* ---- SequenceMap ------------------------------------------------------------------------------------- */

/* Input 0 is a sequence; the others are sequences (mapped element by element, all of one length) or
 * tensors (passed whole to every call). Each body output becomes a sequence of its per-element results. */
typedef struct map_params {
    int n_inputs;
    bool *is_sequence; /* per input */
} map_params;

static kiln_status map_init(op_init_ctx *ctx)
{
    map_params *p = ctx->params;
    const graph_attr *a;
    KILN_TRY(attr_find(ctx->node, "body", ATTR_GRAPH, &a));
    if (!a) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'body' (a graph) is required");
    p->n_inputs = ctx->n_inputs - ctx->node->n_implicit_inputs;
    if (p->n_inputs < 1 || ctx->n_outputs < 1) return kiln_fail(KILN_ERR_MALFORMED, "SequenceMap needs a sequence and an output");
    KILN_TRY(require_kind(ctx, 0, VALUE_SEQUENCE));
    value_type *given = region_alloc(ctx->mem, (size_t)p->n_inputs + 1, sizeof *given);
    p->is_sequence = region_alloc(ctx->mem, (size_t)p->n_inputs + 1, sizeof *p->is_sequence);
    if (!given || !p->is_sequence) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < p->n_inputs; i++) {
        given[i] = op_input_type(ctx, i);
        if (given[i].kind != VALUE_SEQUENCE && given[i].kind != VALUE_TENSOR)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d is neither a sequence nor a tensor", i);
        p->is_sequence[i] = given[i].kind == VALUE_SEQUENCE;
        given[i].kind = VALUE_TENSOR;
    }
    KILN_TRY(ctx->type_subgraph(ctx, a->g, p->n_inputs, given));
    if (a->g->n_outputs != ctx->n_outputs)
        return kiln_fail(KILN_ERR_MALFORMED, "the body has %d outputs, the node %d", a->g->n_outputs, ctx->n_outputs);
    for (int k = 0; k < ctx->n_outputs; k++) {
        value_type t = op_value_type(&a->g->values[a->g->outputs[k]]);
        if (t.kind != VALUE_TENSOR) return kiln_fail(KILN_ERR_UNSUPPORTED, "body output %d is not a tensor", k);
        op_set_output_type(ctx, k, (value_type){VALUE_SEQUENCE, VALUE_TENSOR, t.dtype, KILN_UNDEFINED});
    }
    return KILN_OK;
}

static kiln_status map_run(op_ctx *ctx, const graph *body, int64_t n, kiln_tensor **inputs, kiln_tensor *results)
{
    const map_params *p = ctx->params;
    for (int k = 0; k < ctx->n_outputs; k++)
        KILN_TRY(value_make_list(ctx->mem, ctx->outputs[k]->dtype, n, ctx->outputs[k]));
    for (int64_t e = 0; e < n; e++) {
        for (int i = 0; i < p->n_inputs; i++)
            inputs[i] = p->is_sequence[i] ? &value_items(ctx->inputs[i])[e] : ctx->inputs[i];
        KILN_TRY(ctx->run_graph(ctx, body, inputs, results, ctx->mem));
        for (int k = 0; k < ctx->n_outputs; k++) value_items(ctx->outputs[k])[e] = results[k];
    }
    return KILN_OK;
}

static kiln_status map_eval(op_ctx *ctx)
{
    const map_params *p = ctx->params;
    const graph *body = graph_node_attr(ctx->node, "body")->g;
    int64_t n = value_count(ctx->inputs[0]);
    for (int i = 1; i < p->n_inputs; i++)
        if (p->is_sequence[i] && value_count(ctx->inputs[i]) != n)
            return kiln_fail(KILN_ERR_RUNTIME, "input sequences have different lengths (%lld and %lld)", (long long)n,
                             (long long)value_count(ctx->inputs[i]));
    kiln_tensor **inputs = mem_calloc((size_t)p->n_inputs + 1, sizeof *inputs);
    kiln_tensor *results = mem_calloc((size_t)ctx->n_outputs + 1, sizeof *results);
    kiln_status st = inputs && results ? map_run(ctx, body, n, inputs, results) : KILN_ERR_OUT_OF_MEMORY;
    mem_free(inputs);
    mem_free(results);
    return st;
}

/* ---- optionals --------------------------------------------------------------------------------------- */

typedef struct optional_params {
    value_type input; /* what input 0 is; VALUE_TENSOR of KILN_UNDEFINED when omitted */
} optional_params;

static kiln_status optional_init(op_init_ctx *ctx)
{
    optional_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 0, 1, 1, 1));
    value_type elem;
    p->input = op_input_type(ctx, 0);
    if (op_has_input(ctx, 0)) {
        elem = p->input;
        if ((elem.kind != VALUE_TENSOR && elem.kind != VALUE_SEQUENCE) || elem.elem_kind == VALUE_MAP)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "an optional holds a tensor or a sequence of tensors");
    } else {
        const graph_attr *a;
        KILN_TRY(attr_find(ctx->node, "type", ATTR_TYPE_PROTO, &a));
        if (!a) return kiln_fail(KILN_ERR_MALFORMED, "an empty Optional needs attribute 'type'");
        elem = a->tp;
        if ((elem.kind != VALUE_TENSOR && elem.kind != VALUE_SEQUENCE) || elem.dtype == KILN_UNDEFINED)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'type' must be a tensor or sequence type");
    }
    op_set_output_type(ctx, 0, (value_type){VALUE_OPTIONAL, elem.kind, elem.dtype, KILN_UNDEFINED});
    return KILN_OK;
}

static kiln_status optional_eval(op_ctx *ctx)
{
    const optional_params *p = ctx->params;
    const kiln_tensor *in = ctx->n_inputs > 0 ? ctx->inputs[0] : NULL;
    kiln_tensor *out = ctx->outputs[0];
    KILN_TRY(value_make_list(ctx->mem, out->dtype, in ? 1 : 0, out));
    if (!in) return KILN_OK;
    return value_copy(ctx->mem, p->input.kind, VALUE_TENSOR, in, &value_items(out)[0]);
}

/* Opset 18 lets both take a plain tensor or sequence (it is "present") or nothing (absent). */
static kiln_status optional_input_init(op_init_ctx *ctx, int min_inputs)
{
    optional_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, min_inputs, 1, 1, 1));
    p->input = op_input_type(ctx, 0);
    if (ctx->opset < 18 && p->input.kind != VALUE_OPTIONAL)
        return kiln_fail(KILN_ERR_MALFORMED, "input 0 must be an optional (before opset 18)");
    if (p->input.kind == VALUE_MAP || p->input.kind == VALUE_SPARSE || p->input.elem_kind == VALUE_MAP)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "maps and sparse tensors are not supported");
    return KILN_OK;
}

static kiln_status has_element_init(op_init_ctx *ctx)
{
    KILN_TRY(optional_input_init(ctx, 0));
    ctx->output_dtypes[0] = KILN_BOOL;
    return KILN_OK;
}

static kiln_status has_element_eval(op_ctx *ctx)
{
    const optional_params *p = ctx->params;
    const kiln_tensor *in = ctx->n_inputs > 0 ? ctx->inputs[0] : NULL;
    uint8_t has = in && (p->input.kind != VALUE_OPTIONAL || value_count(in) > 0);
    kiln_tensor answer = {.dtype = KILN_BOOL, .rank = 0, .data = &has};
    return value_copy_tensor(ctx->mem, &answer, ctx->outputs[0]);
}

static kiln_status get_element_init(op_init_ctx *ctx)
{
    optional_params *p = ctx->params;
    KILN_TRY(optional_input_init(ctx, 1));
    value_kind kind = p->input.kind == VALUE_OPTIONAL ? p->input.elem_kind : p->input.kind;
    op_set_output_type(ctx, 0, (value_type){kind, VALUE_TENSOR, p->input.dtype, KILN_UNDEFINED});
    return KILN_OK;
}

static kiln_status get_element_eval(op_ctx *ctx)
{
    const optional_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    if (p->input.kind == VALUE_OPTIONAL) {
        if (value_count(in) == 0) return kiln_fail(KILN_ERR_RUNTIME, "the optional input is empty");
        return value_copy(ctx->mem, p->input.elem_kind, VALUE_TENSOR, &value_items(in)[0], ctx->outputs[0]);
    }
    return value_copy(ctx->mem, p->input.kind, VALUE_TENSOR, in, ctx->outputs[0]);
}

const op_def ops_sequence[] = {
    {"", "SequenceConstruct", 11, 18, 0, construct_init, NULL, construct_eval, SEQUENCE_FLAGS},
    {"", "SequenceEmpty", 11, 18, 0, empty_init, NULL, empty_eval, SEQUENCE_FLAGS},
    {"", "SequenceAt", 11, 18, 0, at_init, NULL, at_eval, SEQUENCE_FLAGS},
    {"", "SequenceLength", 11, 18, 0, length_init, NULL, length_eval, SEQUENCE_FLAGS},
    {"", "SequenceInsert", 11, 18, 0, insert_init, NULL, insert_eval, SEQUENCE_FLAGS},
    {"", "SequenceErase", 11, 18, 0, erase_init, NULL, erase_eval, SEQUENCE_FLAGS},
    {"", "SplitToSequence", 11, 18, sizeof(split_params), split_init, NULL, split_eval, SEQUENCE_FLAGS},
    {"", "ConcatFromSequence", 11, 18, sizeof(concat_params), concat_init, NULL, concat_eval, SEQUENCE_FLAGS},
    {"", "SequenceMap", 17, 18, sizeof(map_params), map_init, NULL, map_eval, SEQUENCE_FLAGS},
    {"", "Optional", 15, 18, sizeof(optional_params), optional_init, NULL, optional_eval, SEQUENCE_FLAGS},
    {"", "OptionalHasElement", 15, 18, sizeof(optional_params), has_element_init, NULL, has_element_eval,
     SEQUENCE_FLAGS},
    {"", "OptionalGetElement", 15, 18, sizeof(optional_params), get_element_init, NULL, get_element_eval,
     SEQUENCE_FLAGS},
    OP_TABLE_END,
};
