/*
 * validate.c — structural checks and topological order.
 *
 * ONNX requires nodes in topological order, but not every writer obeys, so kiln sorts (Kahn's algorithm,
 * keeping file order among ready nodes so the plan reads like the model). A cycle, or an input nobody
 * defines, is reported with the value's name.
 */
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"

/* A value a node reads must come from a node, an initializer, a graph input or (in subgraphs) an
 * enclosing graph. */
static bool value_is_defined(const graph *g, int v)
{
    const graph_value *value = &g->values[v];
    if (value->producer >= 0 || value->constant || value->is_input) return true;
    for (const graph *outer = g->parent; outer; outer = outer->parent)
        if (graph_find_value(outer, value->name) >= 0) return true;
    return false;
}

static kiln_status check_references(const graph *g)
{
    char label[256];
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !value_is_defined(g, n->inputs[k]))
                return kiln_fail(KILN_ERR_MALFORMED, "%s: input '%s' is not produced by any node, initializer or "
                                                     "graph input",
                                 graph_node_label(g, n, label, sizeof label), g->values[n->inputs[k]].name);
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!value_is_defined(g, g->outputs[i]))
            return kiln_fail(KILN_ERR_MALFORMED, "graph output '%s' is not produced by any node",
                             g->values[g->outputs[i]].name);
    return KILN_OK;
}

/* Consumers of each value as compressed rows: consumers[first[v] .. first[v+1]) are node indices. */
typedef struct consumer_table {
    int *first;
    int *nodes;
} consumer_table;

static kiln_status build_consumers(const graph *g, consumer_table *t)
{
    t->first = mem_calloc((size_t)g->n_values + 1, sizeof *t->first);
    size_t edges = 0;
    for (int i = 0; i < g->n_nodes; i++) edges += (size_t)g->nodes[i].n_inputs;
    t->nodes = mem_calloc(edges + 1, sizeof *t->nodes);
    if (!t->first || !t->nodes) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0) t->first[g->nodes[i].inputs[k] + 1]++;
    for (int v = 0; v < g->n_values; v++) t->first[v + 1] += t->first[v];
    int *fill = mem_calloc((size_t)g->n_values + 1, sizeof *fill);
    if (!fill) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0) t->nodes[t->first[v] + fill[v]++] = i;
        }
    mem_free(fill);
    return KILN_OK;
}

kiln_status graph_check_and_sort(graph *g)
{
    KILN_TRY(check_references(g));
    int n = g->n_nodes;
    if (n <= 0) return KILN_OK;
    consumer_table consumers = {0};
    int *pending = mem_calloc((size_t)n, sizeof *pending); /* inputs not yet available, per node */
    int *order = mem_calloc((size_t)n, sizeof *order);
    bool *placed_flag = mem_calloc((size_t)n, sizeof *placed_flag);
    graph_node *sorted = mem_calloc((size_t)n, sizeof *sorted);
    kiln_status st = pending && order && placed_flag && sorted ? build_consumers(g, &consumers)
                                                               : KILN_ERR_OUT_OF_MEMORY;
    if (st != KILN_OK) goto done;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && g->values[v].producer >= 0) pending[i]++;
        }
    /* Sweeps in file order: an already-sorted file finishes in one sweep. A sweep that places nothing
     * means a cycle. */
    int placed = 0;
    while (placed < n) {
        int before = placed;
        for (int i = 0; i < n; i++) {
            if (placed_flag[i] || pending[i]) continue;
            placed_flag[i] = true;
            order[placed++] = i;
            for (int o = 0; o < g->nodes[i].n_outputs; o++) {
                int v = g->nodes[i].outputs[o];
                if (v < 0) continue;
                for (int c = consumers.first[v]; c < consumers.first[v + 1]; c++) pending[consumers.nodes[c]]--;
            }
        }
        if (placed == before) {
            for (int i = 0; i < n; i++)
                if (!placed_flag[i]) {
                    char label[256];
                    st = kiln_fail(KILN_ERR_MALFORMED, "the graph has a cycle through %s",
                                   graph_node_label(g, &g->nodes[i], label, sizeof label));
                    goto done;
                }
        }
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < g->nodes[i].n_outputs; o++)
            if (g->nodes[i].outputs[o] >= 0) g->values[g->nodes[i].outputs[o]].producer = i;
done:
    mem_free(consumers.first);
    mem_free(consumers.nodes);
    mem_free(pending);
    mem_free(order);
    mem_free(placed_flag);
    mem_free(sorted);
    return st;
}
