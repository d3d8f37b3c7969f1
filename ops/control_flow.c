/*
 * control_flow.c — If, Loop and Scan: operators whose attributes are graphs.
 *
 * Design: they are OP_PLAN_TIME operators. Whether a branch is taken and how often a body runs are data,
 * and so are the shapes that come out (If's branches may differ, a loop's scan outputs grow with its trip
 * count), so the planner evaluates these nodes while planning, as it precomputes shape-deciding values:
 * their results are constants of the plan, and the plan is rebuilt when the inputs they depend on change.
 * The bodies were typed and validated at load (init calls ctx->type_subgraph, so an unsupported op in a
 * body is reported with the model's others) and run through ctx->run_graph, which also binds the values
 * a body reads from enclosing scopes (the node's implicit inputs).
 *
 * Each iteration's results go to one of two regions used in turn: iteration i reads what i-1 wrote and
 * overwrites what i-2 wrote, so a long loop holds two iterations' values, plus its scan outputs.
 */
#include <string.h>

#include "core/value.h"
#include "ops/op.h"

#define MAX_BODY_VALUES 1024

/* ---- shared helpers ----------------------------------------------------------------------------------- */

/* Inputs the model gives the node, without the implicit ones its subgraphs capture. */
static int explicit_inputs(const graph_node *node) { return node->n_inputs - node->n_implicit_inputs; }

static kiln_status require_graph(const graph_node *node, const char *name, graph **out)
{
    const graph_attr *a = NULL;
    *out = NULL;
    KILN_TRY(attr_find(node, name, ATTR_GRAPH, &a));
    if (!a) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' (a graph) is required", name);
    *out = a->g;
    return KILN_OK;
}

static kiln_status require_scalar_of(const op_init_ctx *ctx, int input, kiln_dtype dtype)
{
    if (!op_has_input(ctx, input)) return KILN_OK;
    return op_require_dtype(ctx, input, (const kiln_dtype[]){dtype, KILN_UNDEFINED});
}

/* The one element of a condition or trip count tensor. */
static kiln_status read_bool(const kiln_tensor *t, const char *what, bool *out)
{
    KILN_TRY(op_require_one_value(t, what));
    *out = ((const uint8_t *)t->data)[0] != 0;
    return KILN_OK;
}

/* A growing list of per-iteration tensors, later stacked into one scan output. */
typedef struct slice_list {
    kiln_tensor *items;
    int64_t n, cap;
} slice_list;

static kiln_status slice_list_push(slice_list *l, region *mem, const kiln_tensor *t)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 16;
        kiln_tensor *grown = mem_realloc(l->items, (size_t)cap * sizeof *grown);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        l->items = grown;
        l->cap = cap;
    }
    return value_copy_tensor(mem, t, &l->items[l->n++]);
}

static void slice_lists_free(slice_list *lists, int n)
{
    for (int k = 0; k < n; k++) mem_free(lists[k].items);
}

/* Two regions used in turn by iterations (see the file comment). */
typedef struct iteration_memory {
    region turn[2];
    region kept; /* scan output slices */
} iteration_memory;

static void iteration_memory_init(iteration_memory *m)
{
    region_init(&m->turn[0]);
    region_init(&m->turn[1]);
    region_init(&m->kept);
}

static region *iteration_region(iteration_memory *m, int64_t i)
{
    region *r = &m->turn[i & 1];
    region_free(r);
    region_init(r);
    return r;
}

static void iteration_memory_free(iteration_memory *m)
{
    region_free(&m->turn[0]);
    region_free(&m->turn[1]);
    region_free(&m->kept);
}

/* ---- If ------------------------------------------------------------------------------------------------ */

static kiln_status if_init(op_init_ctx *ctx)
{
    if (explicit_inputs(ctx->node) != 1) return kiln_fail(KILN_ERR_MALFORMED, "If takes exactly one input (cond)");
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_BOOL));
    graph *branches[2] = {NULL, NULL};
    KILN_TRY(require_graph(ctx->node, "then_branch", &branches[0]));
    KILN_TRY(require_graph(ctx->node, "else_branch", &branches[1]));
    for (int b = 0; b < 2; b++) {
        KILN_TRY(ctx->type_subgraph(ctx, branches[b], 0, NULL));
        if (branches[b]->n_outputs != ctx->n_outputs)
            return kiln_fail(KILN_ERR_MALFORMED, "%s has %d outputs, the node %d", b ? "else_branch" : "then_branch",
                             branches[b]->n_outputs, ctx->n_outputs);
    }
    for (int k = 0; k < ctx->n_outputs; k++) {
        value_type then_t = op_value_type(&branches[0]->values[branches[0]->outputs[k]]);
        value_type else_t = op_value_type(&branches[1]->values[branches[1]->outputs[k]]);
        if (then_t.kind != else_t.kind || then_t.dtype != else_t.dtype)
            return kiln_fail(KILN_ERR_MALFORMED, "the branches give output %d different types", k);
        op_set_output_type(ctx, k, then_t);
    }
    return KILN_OK;
}

static kiln_status if_eval(op_ctx *ctx)
{
    bool cond;
    KILN_TRY(read_bool(ctx->inputs[0], "cond", &cond));
    graph *body = NULL;
    KILN_TRY(require_graph(ctx->node, cond ? "then_branch" : "else_branch", &body));
    kiln_tensor *results = mem_calloc((size_t)body->n_outputs + 1, sizeof *results);
    if (!results) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = ctx->run_graph(ctx, body, NULL, results, ctx->mem);
    for (int k = 0; k < ctx->n_outputs && st == KILN_OK; k++) *ctx->outputs[k] = results[k];
    mem_free(results);
    return st;
}

/* ---- Loop ---------------------------------------------------------------------------------------------- */

/* A body may return a loop-carried optional's contents instead of the optional (onnxruntime accepts it,
 * the opset-16 node tests do it): the next iteration then gets them wrapped again. */
static bool carries_as(value_type in, value_type out)
{
    if (in.dtype != out.dtype) return false;
    return in.kind == out.kind || (in.kind == VALUE_OPTIONAL && in.elem_kind == out.kind);
}

/* Node inputs: M (trip count), cond, then N loop-carried values. Body: (iteration, cond, N values) ->
 * (cond, N values, K scan slices). Node outputs: the N final values, then the K slices stacked. */
static kiln_status loop_init(op_init_ctx *ctx)
{
    int n_in = explicit_inputs(ctx->node);
    if (n_in < 2) return kiln_fail(KILN_ERR_MALFORMED, "Loop needs inputs M and cond (either may be empty)");
    int carried = n_in - 2;
    if (ctx->n_outputs >= MAX_BODY_VALUES)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Loop has more than %d outputs", MAX_BODY_VALUES - 1);
    if (carried > MAX_BODY_VALUES - 2 || ctx->n_outputs < carried)
        return kiln_fail(KILN_ERR_MALFORMED, "Loop has %d loop-carried inputs but %d outputs", carried, ctx->n_outputs);
    KILN_TRY(require_scalar_of(ctx, 0, KILN_INT64));
    KILN_TRY(require_scalar_of(ctx, 1, KILN_BOOL));
    graph *body = NULL;
    KILN_TRY(require_graph(ctx->node, "body", &body));
    value_type given[MAX_BODY_VALUES];
    given[0] = (value_type){VALUE_TENSOR, VALUE_TENSOR, KILN_INT64, KILN_UNDEFINED};
    given[1] = (value_type){VALUE_TENSOR, VALUE_TENSOR, KILN_BOOL, KILN_UNDEFINED};
    for (int k = 0; k < carried; k++) {
        if (!op_has_input(ctx, 2 + k)) return kiln_fail(KILN_ERR_MALFORMED, "loop-carried input %d is empty", k);
        given[2 + k] = op_input_type(ctx, 2 + k);
    }
    KILN_TRY(ctx->type_subgraph(ctx, body, n_in, given));
    if (body->n_outputs != 1 + ctx->n_outputs)
        return kiln_fail(KILN_ERR_MALFORMED, "the body has %d outputs, the node %d (the body also returns cond)",
                         body->n_outputs, ctx->n_outputs);
    const graph_value *cond_out = &body->values[body->outputs[0]];
    if (cond_out->kind != VALUE_TENSOR || cond_out->dtype != KILN_BOOL)
        return kiln_fail(KILN_ERR_MALFORMED, "the body's first output (cond) must be a bool tensor");
    for (int k = 0; k < ctx->n_outputs; k++) {
        value_type t = op_value_type(&body->values[body->outputs[1 + k]]);
        if (k < carried && !carries_as(given[2 + k], t))
            return kiln_fail(KILN_ERR_MALFORMED, "the body changes the type of loop-carried value %d", k);
        if (k >= carried && t.kind != VALUE_TENSOR)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "scan output %d is not a tensor", k - carried);
        op_set_output_type(ctx, k, t);
    }
    return KILN_OK;
}

typedef struct loop_state {
    int carried, scans;
    int64_t trips; /* the trip count M, or INT64_MAX */
    bool cond;
    kiln_tensor *values[MAX_BODY_VALUES]; /* the body's inputs for the next iteration */
    kiln_tensor results[MAX_BODY_VALUES]; /* the body's outputs of the last iteration */
    kiln_tensor wrapped[MAX_BODY_VALUES]; /* optionals rebuilt around results (see carries_as) */
    const kiln_tensor *last[MAX_BODY_VALUES]; /* the loop-carried values as the node outputs them */
} loop_state;

static kiln_status loop_start(op_ctx *ctx, loop_state *s)
{
    s->carried = explicit_inputs(ctx->node) - 2;
    s->scans = ctx->n_outputs - s->carried;
    s->trips = INT64_MAX;
    s->cond = true;
    if (ctx->inputs[0]) {
        KILN_TRY(op_require_one_value(ctx->inputs[0], "M"));
        s->trips = ((const int64_t *)ctx->inputs[0]->data)[0];
    }
    if (ctx->inputs[1]) KILN_TRY(read_bool(ctx->inputs[1], "cond", &s->cond));
    for (int k = 0; k < s->carried; k++) s->values[2 + k] = ctx->inputs[2 + k];
    return KILN_OK;
}

/* Feeds result k to the next iteration, as an optional again if the body unwrapped one. */
static kiln_status loop_carry(const graph *body, loop_state *s, int k, region *turn)
{
    const graph_value *in = &body->values[body->inputs[2 + k]], *out = &body->values[body->outputs[1 + k]];
    s->last[k] = &s->results[1 + k];
    s->values[2 + k] = &s->results[1 + k];
    if (in->kind == out->kind) return KILN_OK;
    KILN_TRY(value_make_list(turn, out->dtype, 1, &s->wrapped[k]));
    value_items(&s->wrapped[k])[0] = s->results[1 + k];
    s->values[2 + k] = &s->wrapped[k];
    return KILN_OK;
}

/* The final loop-carried value k: the last result, or the initial value when no iteration ran (unwrapped
 * from its optional when the body unwraps it). */
static kiln_status loop_final(op_ctx *ctx, const graph *body, const loop_state *s, int k)
{
    const graph_value *in = &body->values[body->inputs[2 + k]], *out = &body->values[body->outputs[1 + k]];
    const kiln_tensor *v = s->last[k];
    if (!v) {
        v = ctx->inputs[2 + k];
        if (in->kind != out->kind && value_count(v) == 0)
            return kiln_fail(KILN_ERR_RUNTIME, "loop-carried value %d is an empty optional and the loop never ran", k);
        if (in->kind != out->kind) v = &value_items(v)[0];
    }
    return value_copy(ctx->mem, out->kind, out->elem_kind, v, ctx->outputs[k]);
}

static kiln_status loop_iterate(op_ctx *ctx, const graph *body, loop_state *s, slice_list *scans,
                                iteration_memory *m)
{
    for (int64_t i = 0; i < s->trips && s->cond; i++) {
        int64_t iteration = i;
        uint8_t cond = 1;
        kiln_tensor iteration_t = {.dtype = KILN_INT64, .rank = 0, .data = &iteration};
        kiln_tensor cond_t = {.dtype = KILN_BOOL, .rank = 0, .data = &cond};
        s->values[0] = &iteration_t;
        s->values[1] = &cond_t;
        region *turn = iteration_region(m, i);
        KILN_TRY(ctx->run_graph(ctx, body, s->values, s->results, turn));
        KILN_TRY(read_bool(&s->results[0], "the body's cond output", &s->cond));
        for (int k = 0; k < s->carried; k++) KILN_TRY(loop_carry(body, s, k, turn));
        for (int k = 0; k < s->scans; k++) KILN_TRY(slice_list_push(&scans[k], &m->kept, &s->results[1 + s->carried + k]));
    }
    return KILN_OK;
}

/* A scan output of a loop that never ran: [0] followed by the body's declared output shape when that is
 * fully known (as onnxruntime does), else just [0]. */
static void shape_empty_scan(const graph_value *declared, kiln_tensor *out)
{
    if (declared->rank < 0 || declared->rank + 1 > KILN_MAX_RANK) return;
    for (int d = 0; d < declared->rank; d++)
        if (declared->dims[d] < 0) return;
    out->rank = declared->rank + 1;
    out->dims[0] = 0;
    for (int d = 0; d < declared->rank; d++) out->dims[1 + d] = declared->dims[d];
}

static kiln_status loop_eval(op_ctx *ctx)
{
    graph *body = NULL;
    KILN_TRY(require_graph(ctx->node, "body", &body));
    loop_state *s = mem_calloc(1, sizeof *s);
    slice_list *scans = mem_calloc((size_t)ctx->n_outputs + 1, sizeof *scans);
    iteration_memory m;
    iteration_memory_init(&m);
    kiln_status st = s && scans ? loop_start(ctx, s) : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) st = loop_iterate(ctx, body, s, scans, &m);
    for (int k = 0; st == KILN_OK && k < s->carried; k++) st = loop_final(ctx, body, s, k);
    for (int k = 0; st == KILN_OK && k < s->scans; k++) {
        kiln_tensor *out = ctx->outputs[s->carried + k];
        st = value_concat(ctx->mem, scans[k].items, scans[k].n, 0, true, false, out->dtype, out);
        if (st == KILN_OK && scans[k].n == 0) shape_empty_scan(&body->values[body->outputs[1 + s->carried + k]], out);
    }
    if (scans) slice_lists_free(scans, ctx->n_outputs);
    mem_free(scans);
    mem_free(s);
    iteration_memory_free(&m);
    return st;
}

/* ---- Scan ---------------------------------------------------------------------------------------------- */

/* Node inputs (opset 9+): N states, then M scan inputs; opset 8 puts an optional sequence_lens first and
 * has a batch axis 0 in front of everything. Body: (N states, M slices) -> (N states, K slices). */
typedef struct scan_params {
    int states, scan_inputs, scan_outputs;
    bool batched; /* opset 8 */
    int input_axes[MAX_BODY_VALUES];
    bool input_reverse[MAX_BODY_VALUES];
    int output_axes[MAX_BODY_VALUES];
    bool output_reverse[MAX_BODY_VALUES];
} scan_params;

static kiln_status read_axis_list(const graph_node *node, const char *name, int count, int *out)
{
    int64_t values[MAX_BODY_VALUES];
    int n;
    KILN_TRY(attr_ints(node, name, values, MAX_BODY_VALUES, &n));
    if (n != 0 && n != count) return kiln_fail(KILN_ERR_MALFORMED, "'%s' has %d entries, not %d", name, n, count);
    for (int i = 0; i < count; i++) {
        if (n && (values[i] < -KILN_MAX_RANK || values[i] >= KILN_MAX_RANK))
            return kiln_fail(KILN_ERR_MALFORMED, "'%s' has an invalid axis %lld", name, (long long)values[i]);
        out[i] = n ? (int)values[i] : 0;
    }
    return KILN_OK;
}

static kiln_status read_directions(const graph_node *node, const char *name, int count, bool *out)
{
    int axes[MAX_BODY_VALUES];
    KILN_TRY(read_axis_list(node, name, count, axes));
    for (int i = 0; i < count; i++) {
        if (axes[i] != 0 && axes[i] != 1) return kiln_fail(KILN_ERR_MALFORMED, "'%s' must hold 0 or 1", name);
        out[i] = axes[i] == 1;
    }
    return KILN_OK;
}

static kiln_status scan_read_attributes(op_init_ctx *ctx, scan_params *p, int n_in)
{
    int64_t m;
    KILN_TRY(attr_int(ctx->node, "num_scan_inputs", -1, &m));
    int first = p->batched ? 1 : 0;
    if (m < 1 || m > n_in - first)
        return kiln_fail(KILN_ERR_MALFORMED, "num_scan_inputs (%lld) must be between 1 and the inputs", (long long)m);
    p->scan_inputs = (int)m;
    p->states = n_in - first - p->scan_inputs;
    p->scan_outputs = ctx->n_outputs - p->states;
    if (p->scan_outputs < 0) return kiln_fail(KILN_ERR_MALFORMED, "Scan has fewer outputs than states");
    if (p->batched) return read_directions(ctx->node, "directions", p->scan_inputs, p->input_reverse);
    KILN_TRY(read_directions(ctx->node, "scan_input_directions", p->scan_inputs, p->input_reverse));
    KILN_TRY(read_directions(ctx->node, "scan_output_directions", p->scan_outputs, p->output_reverse));
    KILN_TRY(read_axis_list(ctx->node, "scan_input_axes", p->scan_inputs, p->input_axes));
    return read_axis_list(ctx->node, "scan_output_axes", p->scan_outputs, p->output_axes);
}

static kiln_status scan_init(op_init_ctx *ctx)
{
    scan_params *p = ctx->params;
    p->batched = ctx->opset < 9;
    int n_in = explicit_inputs(ctx->node);
    if (n_in > MAX_BODY_VALUES || ctx->n_outputs > MAX_BODY_VALUES)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Scan has too many inputs or outputs");
    KILN_TRY(scan_read_attributes(ctx, p, n_in));
    if (p->batched && op_has_input(ctx, 0))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "sequence_lens (Scan-8 with ragged sequences) is not supported");
    int first = p->batched ? 1 : 0;
    value_type given[MAX_BODY_VALUES];
    for (int i = 0; i < p->states + p->scan_inputs; i++) {
        if (!op_has_input(ctx, first + i)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is empty", first + i);
        given[i] = op_input_type(ctx, first + i);
        if (given[i].kind != VALUE_TENSOR) return kiln_fail(KILN_ERR_UNSUPPORTED, "Scan takes only tensors");
    }
    graph *body = NULL;
    KILN_TRY(require_graph(ctx->node, "body", &body));
    KILN_TRY(ctx->type_subgraph(ctx, body, p->states + p->scan_inputs, given));
    if (body->n_outputs != ctx->n_outputs)
        return kiln_fail(KILN_ERR_MALFORMED, "the body has %d outputs, the node %d", body->n_outputs, ctx->n_outputs);
    for (int k = 0; k < ctx->n_outputs; k++) {
        value_type t = op_value_type(&body->values[body->outputs[k]]);
        if (t.kind != VALUE_TENSOR || (k < p->states && t.dtype != given[k].dtype))
            return kiln_fail(KILN_ERR_MALFORMED, "body output %d does not match the state it updates", k);
        op_set_output_type(ctx, k, t);
    }
    return KILN_OK;
}

/* The length of the scan: every scan input's extent along its axis, which must agree. */
static kiln_status scan_length(const scan_params *p, kiln_tensor *const *scans, int *axes, int64_t *length)
{
    *length = -1;
    for (int j = 0; j < p->scan_inputs; j++) {
        const kiln_tensor *t = scans[j];
        int axis = p->batched ? 0 : p->input_axes[j];
        if (axis < 0) axis += t->rank;
        if (axis < 0 || axis >= t->rank)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scan input %d has rank %d, too small for its axis", j, t->rank);
        axes[j] = axis;
        if (*length >= 0 && t->dims[axis] != *length)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scan inputs have different lengths (%lld and %lld)",
                             (long long)*length, (long long)t->dims[axis]);
        *length = t->dims[axis];
    }
    return KILN_OK;
}

/* One scan over `states` and `scans` (opset 9 semantics), results into outputs[] from `mem`. */
static kiln_status scan_once(op_ctx *ctx, const graph *body, kiln_tensor *const *states,
                             kiln_tensor *const *scans, kiln_tensor *outputs, region *mem)
{
    const scan_params *p = ctx->params;
    int axes[MAX_BODY_VALUES];
    int64_t length;
    KILN_TRY(scan_length(p, scans, axes, &length));
    kiln_tensor *inputs[MAX_BODY_VALUES], *results = mem_calloc(MAX_BODY_VALUES, sizeof *results);
    kiln_tensor *slices = mem_calloc(MAX_BODY_VALUES, sizeof *slices);
    slice_list *lists = mem_calloc((size_t)p->scan_outputs + 1, sizeof *lists);
    iteration_memory m;
    iteration_memory_init(&m);
    kiln_status st = results && slices && lists ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    for (int k = 0; k < p->states; k++) inputs[k] = states[k];
    for (int64_t t = 0; st == KILN_OK && t < length; t++) {
        region *turn = iteration_region(&m, t);
        for (int j = 0; j < p->scan_inputs && st == KILN_OK; j++) {
            int64_t at = p->input_reverse[j] ? length - 1 - t : t;
            st = value_slice(turn, scans[j], axes[j], at, 1, false, &slices[j]);
            inputs[p->states + j] = &slices[j];
        }
        if (st == KILN_OK) st = ctx->run_graph(ctx, body, inputs, results, turn);
        for (int k = 0; k < p->states && st == KILN_OK; k++) {
            slices[p->scan_inputs + k] = results[k]; /* keep the state descriptors apart from the next results */
            inputs[k] = &slices[p->scan_inputs + k];
        }
        for (int k = 0; k < p->scan_outputs && st == KILN_OK; k++)
            st = slice_list_push(&lists[k], &m.kept, &results[p->states + k]);
    }
    for (int k = 0; k < p->states && st == KILN_OK; k++) st = value_copy_tensor(mem, inputs[k], &outputs[k]);
    for (int k = 0; k < p->scan_outputs && st == KILN_OK; k++) {
        kiln_tensor *out = &outputs[p->states + k];
        int rank = lists[k].n ? lists[k].items[0].rank + 1 : 1;
        int axis = p->output_axes[k] < 0 ? p->output_axes[k] + rank : p->output_axes[k];
        st = value_concat(mem, lists[k].items, lists[k].n, axis, true, p->output_reverse[k],
                          ctx->outputs[p->states + k]->dtype, out);
    }
    if (lists) slice_lists_free(lists, p->scan_outputs);
    mem_free(lists);
    mem_free(results);
    mem_free(slices);
    iteration_memory_free(&m);
    return st;
}

/* Scan-8: one scan per batch entry (axis 0 of every input), the results stacked back along axis 0. */
static kiln_status scan_batched(op_ctx *ctx, const graph *body)
{
    const scan_params *p = ctx->params;
    int n = p->states + p->scan_inputs, n_out = ctx->n_outputs;
    int64_t batch = ctx->inputs[1]->rank > 0 ? ctx->inputs[1]->dims[0] : -1;
    for (int i = 0; i < n; i++)
        if (ctx->inputs[1 + i]->rank < 1 || ctx->inputs[1 + i]->dims[0] != batch)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d does not have the batch size %lld", 1 + i, (long long)batch);
    kiln_tensor *parts = mem_calloc((size_t)(n + n_out * batch) + 1, sizeof *parts);
    kiln_tensor **views = mem_calloc((size_t)n + 1, sizeof *views);
    region work;
    region_init(&work);
    kiln_status st = parts && views ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    for (int64_t b = 0; b < batch && st == KILN_OK; b++) {
        for (int i = 0; i < n && st == KILN_OK; i++) {
            st = value_slice(&work, ctx->inputs[1 + i], 0, b, 1, false, &parts[i]);
            views[i] = &parts[i];
        }
        kiln_tensor *results = &parts[n + b * n_out];
        if (st == KILN_OK) st = scan_once(ctx, body, views, views + p->states, results, &work);
    }
    /* results are grouped by batch entry; regroup per output to stack them */
    kiln_tensor *column = st == KILN_OK ? mem_calloc((size_t)batch + 1, sizeof *column) : NULL;
    if (st == KILN_OK && !column) st = KILN_ERR_OUT_OF_MEMORY;
    for (int k = 0; k < n_out && st == KILN_OK; k++) {
        for (int64_t b = 0; b < batch; b++) column[b] = parts[n + b * n_out + k];
        st = value_concat(ctx->mem, column, batch, 0, true, false, ctx->outputs[k]->dtype, ctx->outputs[k]);
    }
    mem_free(column);
    mem_free(parts);
    mem_free(views);
    region_free(&work);
    return st;
}

static kiln_status scan_eval(op_ctx *ctx)
{
    const scan_params *p = ctx->params;
    graph *body = NULL;
    KILN_TRY(require_graph(ctx->node, "body", &body));
    if (p->batched) return scan_batched(ctx, body);
    kiln_tensor *results = mem_calloc((size_t)ctx->n_outputs + 1, sizeof *results);
    if (!results) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = scan_once(ctx, body, ctx->inputs, ctx->inputs + p->states, results, ctx->mem);
    for (int k = 0; k < ctx->n_outputs && st == KILN_OK; k++) *ctx->outputs[k] = results[k];
    mem_free(results);
    return st;
}

#define CONTROL_FLAGS (OP_PLAN_TIME | OP_DATA_DEPENDENT_SHAPE | OP_ANY_VALUE_KIND)

const op_def ops_control_flow[] = {
    {"", "If", 1, 18, 0, if_init, NULL, if_eval, CONTROL_FLAGS},
    {"", "Loop", 1, 18, 0, loop_init, NULL, loop_eval, CONTROL_FLAGS},
    {"", "Scan", 8, 18, sizeof(scan_params), scan_init, NULL, scan_eval, CONTROL_FLAGS},
    OP_TABLE_END,
};
