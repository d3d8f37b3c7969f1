/*
 * shape_infer.c — the shape pass: concrete shapes for every value, given the inputs' shapes.
 *
 * Nodes are visited in topological order and each op's shape function sets its outputs' dims. Some shapes
 * depend on contents (Reshape's target, Slice's bounds, Range's limits); those contents were marked by
 * graph_mark_plan_values, and the nodes producing them are evaluated right here ("precomputed"), so the
 * plan treats their results as constants and the run never meets a shape it did not plan for.
 *
 * In probe mode (symbolic inference at load) inputs are stand-ins without contents; anything that cannot
 * be worked out is left unknown instead of failing.
 */
#include <string.h>

#include "core/error.h"
#include "core/value.h"
#include "graph/passes.h"
#include "ops/op.h"

/* Room for the outputs a node leaves out (optional outputs), so shape functions can write freely. */
#define MAX_OUTPUTS 64

void shape_result_free(shape_result *r)
{
    mem_free(r->values);
    mem_free(r->known);
    mem_free(r->precomputed);
    mem_free(r->scratch);
    region_free(&r->mem);
    memset(r, 0, sizeof *r);
}

static kiln_status node_failure(const graph *g, const graph_node *n, kiln_status st)
{
    char label[256];
    return kiln_fail_prefix(st, "%s", graph_node_label(g, n, label, sizeof label));
}

/* Calls the op's shape function and checks what it produced. */
static kiln_status run_shape_fn(const graph_node *n, op_ctx *ctx)
{
    for (int k = 0; k < n->n_outputs; k++) ctx->outputs[k]->rank = 0;
    ctx->scratch_bytes = 0;
    KILN_TRY(n->op->shape(ctx));
    for (int k = 0; k < n->n_outputs; k++) {
        const kiln_tensor *t = ctx->outputs[k];
        int64_t numel;
        if (t->rank < 0 || t->rank > KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "output %d would have rank %d (kiln's maximum is %d)", k, t->rank,
                             KILN_MAX_RANK);
        KILN_TRY(shape_numel_checked(t->rank, t->dims, &numel));
    }
    return KILN_OK;
}

static kiln_status eval_with_ctx(const graph *g, const graph_node *n, op_ctx *ctx, region *mem)
{
    for (int k = 0; k < n->n_outputs; k++) {
        kiln_tensor *t = ctx->outputs[k];
        if (n->op->flags & OP_ALIAS_INPUT0) {
            /* a tensor is copied, not viewed: the input may be the caller's buffer, gone by the time a plan
             * that matched on equal contents is reused (sequences always plan again) */
            bool tensor = n->outputs[k] < 0 || g->values[n->outputs[k]].kind == VALUE_TENSOR;
            t->data = tensor ? tensor_copy_contents(ctx->inputs[0], mem) : ctx->inputs[0]->data;
            if (!t->data) return KILN_ERR_OUT_OF_MEMORY;
            continue;
        }
        t->data = region_alloc(mem, (size_t)tensor_numel(t) + 1, kiln_dtype_size(t->dtype) ? kiln_dtype_size(t->dtype) : 1);
        if (!t->data) return KILN_ERR_OUT_OF_MEMORY;
    }
    if (n->op->flags & OP_ALIAS_INPUT0) return KILN_OK;
    void *scratch = mem_aligned_alloc(ctx->scratch_bytes);
    if (!scratch) return KILN_ERR_OUT_OF_MEMORY;
    ctx->scratch = scratch;
    ctx->strings = mem; /* string outputs live as long as the values computed here */
    kiln_status st = n->op->eval(ctx);
    mem_aligned_free(scratch);
    ctx->scratch = NULL;
    return st;
}

/* The tensor bound to a subgraph's captured value c: the node's implicit input of that name. */
static const kiln_tensor *captured_input(const op_ctx *ctx, const graph *body, int c)
{
    int outer = graph_find_value(body->parent, body->values[body->captures[c]].name);
    for (int k = 0; k < ctx->n_inputs; k++)
        if (outer >= 0 && ctx->node->inputs[k] == outer) return ctx->inputs[k];
    return NULL;
}

/* op_ctx.run_graph: a subgraph runs as a shape pass that evaluates every node (SHAPE_EVAL). */
static kiln_status run_graph(const op_ctx *ctx, const graph *body, kiln_tensor *const *inputs,
                             kiln_tensor *outputs, region *mem)
{
    int n_bound = body->n_inputs + body->n_captures;
    kiln_tensor *bound = mem_calloc((size_t)n_bound + 1, sizeof *bound);
    if (!bound) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int i = 0; i < body->n_inputs; i++) bound[i] = *inputs[i];
    for (int c = 0; c < body->n_captures && st == KILN_OK; c++) {
        const kiln_tensor *t = captured_input(ctx, body, c);
        if (t) bound[body->n_inputs + c] = *t;
        else st = kiln_fail(KILN_ERR_INTERNAL, "captured value '%s' is not an input of the node",
                            body->values[body->captures[c]].name);
    }
    shape_result r;
    if (st == KILN_OK) st = graph_infer_shapes(body, bound, SHAPE_EVAL, 1, &r);
    mem_free(bound);
    if (st != KILN_OK) return st;
    for (int k = 0; k < body->n_outputs && st == KILN_OK; k++) {
        const graph_value *v = &body->values[body->outputs[k]];
        st = value_copy(mem, v->kind, v->elem_kind, &r.values[body->outputs[k]], &outputs[k]);
    }
    shape_result_free(&r);
    return st;
}

/* Evaluates an OP_PLAN_TIME node: its eval sets output shapes and allocates from `mem`. */
static kiln_status eval_plan_time(const graph_node *n, op_ctx *ctx, region *mem)
{
    for (int k = 0; k < n->n_outputs; k++) {
        ctx->outputs[k]->rank = 0;
        ctx->outputs[k]->data = NULL;
    }
    ctx->mem = mem;
    ctx->run_graph = run_graph;
    KILN_TRY(n->op->eval(ctx));
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && !ctx->outputs[k]->data)
            return kiln_fail(KILN_ERR_INTERNAL, "output %d was not produced", k);
    return KILN_OK;
}

static void init_ctx(op_ctx *ctx, const graph_node *n, kiln_tensor *const *inputs, kiln_tensor *const *outputs,
                     int threads)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->threads = threads;
    ctx->node = n;
    ctx->params = n->params;
    ctx->opset = n->opset;
    ctx->n_inputs = n->n_inputs;
    ctx->n_outputs = n->n_outputs;
    ctx->inputs = inputs;
    ctx->outputs = outputs;
}

kiln_status graph_eval_node(const graph *g, const graph_node *n, kiln_tensor *const *inputs,
                            kiln_tensor *const *outputs, size_t max_output_bytes, region *mem, bool *evaluated)
{
    op_ctx ctx;
    init_ctx(&ctx, n, inputs, outputs, 1);
    *evaluated = false;
    if (n->op->flags & OP_PLAN_TIME) {
        kiln_status st = eval_plan_time(n, &ctx, mem);
        if (st != KILN_OK) return node_failure(g, n, st);
        *evaluated = true;
        return KILN_OK;
    }
    kiln_status st = run_shape_fn(n, &ctx);
    if (st != KILN_OK) return node_failure(g, n, st);
    size_t bytes = 0;
    for (int k = 0; k < n->n_outputs; k++) bytes += tensor_bytes(outputs[k]);
    if (max_output_bytes && bytes > max_output_bytes) return KILN_OK;
    st = eval_with_ctx(g, n, &ctx, mem);
    if (st != KILN_OK) return node_failure(g, n, st);
    *evaluated = true;
    return KILN_OK;
}

static kiln_status alloc_result(const graph *g, shape_result *r)
{
    memset(r, 0, sizeof *r);
    region_init(&r->mem);
    r->n_values = g->n_values;
    r->n_nodes = g->n_nodes;
    r->values = mem_calloc((size_t)g->n_values + 1, sizeof *r->values);
    r->known = mem_calloc((size_t)g->n_values + 1, sizeof *r->known);
    r->precomputed = mem_calloc((size_t)g->n_nodes + 1, sizeof *r->precomputed);
    r->scratch = mem_calloc((size_t)g->n_nodes + 1, sizeof *r->scratch);
    if (!r->values || !r->known || !r->precomputed || !r->scratch) return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

/* Shapes for one node. Returns KILN_OK with outputs left unknown when, in probe mode, something is
 * missing. */
static kiln_status infer_node(const graph *g, int index, shape_mode mode, int threads, shape_result *r)
{
    const graph_node *n = &g->nodes[index];
    kiln_tensor *in[MAX_OUTPUTS * 64];
    kiln_tensor *out[MAX_OUTPUTS];
    kiln_tensor absent[MAX_OUTPUTS];
    if (n->n_outputs > MAX_OUTPUTS || n->n_inputs > MAX_OUTPUTS * 64)
        return node_failure(g, n, kiln_fail(KILN_ERR_UNSUPPORTED, "too many inputs or outputs"));
    bool plan_time = (n->op->flags & OP_PLAN_TIME) != 0;
    /* probing runs no loops: a loop's length is data, and load time must stay bounded */
    if (plan_time && mode == SHAPE_PROBE) return KILN_OK;
    bool precompute = mode == SHAPE_EVAL || (n->op->flags & OP_DATA_DEPENDENT_SHAPE) != 0;
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && g->values[n->outputs[k]].needs_value_at_plan) precompute = true;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        in[k] = v >= 0 ? &r->values[v] : NULL;
        if (v < 0) continue;
        if (!r->known[v]) return KILN_OK; /* probe mode only: an unknown shape upstream */
        bool need_data = precompute ? !(n->op->flags & OP_READS_SHAPE_ONLY) : ((n->value_inputs >> k) & 1u);
        if (need_data && !r->values[v].data) {
            if (mode == SHAPE_PROBE) return KILN_OK;
            return node_failure(g, n, kiln_fail(KILN_ERR_INTERNAL, "contents of '%s' are needed to plan but unknown",
                                                g->values[v].name));
        }
    }
    for (int k = 0; k < n->n_outputs; k++) {
        int v = n->outputs[k];
        out[k] = v >= 0 ? &r->values[v] : &absent[k];
        memset(out[k], 0, sizeof *out[k]);
        out[k]->dtype = v >= 0 ? g->values[v].dtype : KILN_UNDEFINED;
    }
    /* a precomputed node runs here, single-threaded; the others are sized for the run's threads */
    op_ctx ctx;
    init_ctx(&ctx, n, in, out, precompute ? 1 : threads);
    kiln_status st = plan_time ? eval_plan_time(n, &ctx, &r->mem) : run_shape_fn(n, &ctx);
    if (st == KILN_OK && precompute && !plan_time) st = eval_with_ctx(g, n, &ctx, &r->mem);
    if (st == KILN_ERR_OUT_OF_MEMORY) return st;
    if (st != KILN_OK) {
        if (mode == SHAPE_PROBE) return KILN_OK;
        return node_failure(g, n, st);
    }
    if (!precompute)
        for (int k = 0; k < n->n_outputs; k++) out[k]->data = NULL;
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0) r->known[n->outputs[k]] = true;
    r->precomputed[index] = precompute;
    r->scratch[index] = ctx.scratch_bytes;
    return KILN_OK;
}

kiln_status graph_infer_shapes(const graph *g, const kiln_tensor *inputs, shape_mode mode, int threads,
                               shape_result *r)
{
    kiln_status st = alloc_result(g, r);
    if (st != KILN_OK) goto fail;
    for (int v = 0; v < g->n_values; v++) {
        const graph_value *value = &g->values[v];
        r->values[v].dtype = value->dtype;
        if (value->constant) {
            r->values[v] = *value->constant;
            r->known[v] = true;
        }
    }
    for (int i = 0; i < g->n_inputs + g->n_captures; i++) {
        int v = i < g->n_inputs ? g->inputs[i] : g->captures[i - g->n_inputs];
        r->values[v] = inputs[i];
        r->known[v] = inputs[i].rank >= 0;
        if (mode == SHAPE_EXACT && g->values[v].needs_value_at_plan && !inputs[i].data) {
            st = kiln_fail(KILN_ERR_INTERNAL, "input '%s' decides shapes but has no contents", g->values[v].name);
            goto fail;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].removed) continue;
        if (!g->nodes[i].op) {
            st = kiln_fail(KILN_ERR_INTERNAL, "node %d has no operator", i);
            goto fail;
        }
        st = infer_node(g, i, mode, threads, r);
        if (st != KILN_OK) goto fail;
    }
    return KILN_OK;
fail:
    shape_result_free(r);
    return st;
}
