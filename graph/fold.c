/*
 * fold.c — the load-time simplifications: constant folding, dead-node removal, and marking which values
 * the planner must compute because shapes depend on them.
 *
 * Folding evaluates, once, every node whose inputs are all constants, and every shape-only node (Shape,
 * Size) whose input shape is fully known; results become constants and the node disappears. Because nodes
 * are visited in topological order, whole chains fold in one sweep — including the
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains exporters emit for static shapes. Results larger
 * than FOLD_MAX_BYTES are left to run time: folding must not turn a tiny file into gigabytes of memory.
 */
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"
#include "ops/op.h"

#define FOLD_MAX_BYTES (64u << 20)

static bool shape_is_static(const graph_value *v)
{
    if (v->rank < 0) return false;
    for (int d = 0; d < v->rank; d++)
        if (v->dims[d] < 0) return false;
    return true;
}

static bool can_fold(const graph *g, const graph_node *n)
{
    /* plan-time ops (loops, sequences) are left to the planner: a loop's length is data, load must stay
     * bounded, and non-tensor values are never constants */
    if (n->removed || !n->op || (n->op->flags & (OP_NO_FOLD | OP_PLAN_TIME))) return false;
    bool shape_only = (n->op->flags & OP_READS_SHAPE_ONLY) != 0;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0) continue;
        const graph_value *value = &g->values[v];
        if (value->constant) continue;
        if (shape_only && shape_is_static(value) && value->dtype != KILN_UNDEFINED) continue;
        return false;
    }
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && g->values[n->outputs[k]].is_input) return false;
    return true;
}

static kiln_status fold_node(graph *g, graph_node *n)
{
    /* one block: shape-only input descriptors, then input pointers, then output pointers */
    size_t n_in = (size_t)n->n_inputs, n_out = (size_t)n->n_outputs;
    kiln_tensor *shape_only_inputs = mem_calloc(n_in + 1, sizeof *shape_only_inputs);
    kiln_tensor **in = mem_calloc(n_in + 1, sizeof *in);
    kiln_tensor **out = mem_calloc(n_out + 1, sizeof *out);
    kiln_tensor *absent = mem_calloc(n_out + 1, sizeof *absent);
    kiln_status st = shape_only_inputs && in && out && absent ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    for (int k = 0; st == KILN_OK && k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0) continue;
        const graph_value *value = &g->values[v];
        if (value->constant) {
            in[k] = (kiln_tensor *)value->constant; /* ops never write their inputs */
        } else {
            tensor_set_shape(&shape_only_inputs[k], value->dtype, value->rank, value->dims);
            in[k] = &shape_only_inputs[k];
        }
    }
    for (int k = 0; st == KILN_OK && k < n->n_outputs; k++) {
        int v = n->outputs[k];
        out[k] = v >= 0 ? region_alloc(g->mem, 1, sizeof(kiln_tensor)) : &absent[k];
        if (!out[k]) st = KILN_ERR_OUT_OF_MEMORY;
        else out[k]->dtype = v >= 0 ? g->values[v].dtype : KILN_UNDEFINED;
    }
    bool evaluated = false;
    if (st == KILN_OK) st = graph_eval_node(g, n, in, out, FOLD_MAX_BYTES, g->mem, &evaluated);
    for (int k = 0; st == KILN_OK && evaluated && k < n->n_outputs; k++) {
        int v = n->outputs[k];
        if (v < 0) continue;
        graph_value *value = &g->values[v];
        value->constant = out[k];
        value->producer = -1;
        value->rank = out[k]->rank;
        for (int d = 0; d < out[k]->rank; d++) value->dims[d] = out[k]->dims[d], value->sym[d] = GRAPH_NO_SYMBOL;
    }
    if (st == KILN_OK && evaluated) n->removed = true;
    mem_free(shape_only_inputs);
    mem_free(in);
    mem_free(out);
    mem_free(absent);
    return st;
}

kiln_status graph_fold_constants(graph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (can_fold(g, &g->nodes[i])) KILN_TRY(fold_node(g, &g->nodes[i]));
    return KILN_OK;
}

void graph_remove_dead(graph *g)
{
    bool *used = mem_calloc((size_t)g->n_values + 1, sizeof *used);
    if (!used) return; /* keeping dead nodes is harmless */
    for (int i = 0; i < g->n_outputs; i++) used[g->outputs[i]] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        bool live = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && used[n->outputs[k]]) live = true;
        if (!live) {
            n->removed = true;
            continue;
        }
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) used[n->inputs[k]] = true;
    }
    mem_free(used);
    graph_count_consumers(g);
}

void graph_mark_plan_values(graph *g)
{
    for (int v = 0; v < g->n_values; v++) g->values[v].needs_value_at_plan = false;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed || !n->op) continue;
        for (int k = 0; k < n->n_inputs && k < 32; k++)
            if (((n->value_inputs >> k) & 1u) && n->inputs[k] >= 0) g->values[n->inputs[k]].needs_value_at_plan = true;
        if (n->op->flags & OP_DATA_DEPENDENT_SHAPE)
            for (int k = 0; k < n->n_outputs; k++)
                if (n->outputs[k] >= 0) g->values[n->outputs[k]].needs_value_at_plan = true;
    }
    /* a value computed at plan time needs its producer's inputs computed too, unless the producer only
     * looks at shapes; one reverse sweep suffices in topological order */
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const graph_node *n = &g->nodes[i];
        if (n->removed || !n->op || (n->op->flags & OP_READS_SHAPE_ONLY)) continue;
        bool needed = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && g->values[n->outputs[k]].needs_value_at_plan) needed = true;
        if (!needed) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) g->values[n->inputs[k]].needs_value_at_plan = true;
    }
}
