/*
 * graph.c — building and querying the IR (see graph.h). Tables grow by doubling on the heap; everything
 * they point to lives in the model's region.
 */
#include "graph/graph.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

kiln_status graph_create(region *mem, graph *parent, graph **out)
{
    graph *g = mem_calloc(1, sizeof *g);
    if (!g) return KILN_ERR_OUT_OF_MEMORY;
    g->mem = mem;
    g->parent = parent;
    g->name = "";
    strmap_init(&g->names);
    if (parent) {
        graph *top = parent;
        while (top->parent) top = top->parent;
        g->next_subgraph = top->next_subgraph;
        top->next_subgraph = g;
    }
    *out = g;
    return KILN_OK;
}

static void free_one(graph *g)
{
    mem_free(g->values);
    mem_free(g->nodes);
    mem_free(g->symbols);
    strmap_free(&g->names);
    mem_free(g);
}

void graph_free(graph *g)
{
    if (!g) return;
    graph *sub = g->next_subgraph;
    while (sub) {
        graph *next = sub->next_subgraph;
        free_one(sub);
        sub = next;
    }
    free_one(g);
}

/* Grows *array (of `size`-byte elements) so that index `needed` fits. */
static kiln_status grow_table(void **array, int *capacity, int needed, size_t size)
{
    if (needed < *capacity) return KILN_OK;
    if (needed >= (1 << 28)) return kiln_fail(KILN_ERR_MALFORMED, "graph has too many values or nodes");
    int cap = *capacity ? *capacity : 16;
    while (cap <= needed) cap *= 2;
    void *p = mem_realloc(*array, (size_t)cap * size);
    if (!p) return KILN_ERR_OUT_OF_MEMORY;
    memset((char *)p + (size_t)*capacity * size, 0, (size_t)(cap - *capacity) * size);
    *array = p;
    *capacity = cap;
    return KILN_OK;
}

int graph_find_value(const graph *g, const char *name) { return strmap_get(&g->names, name, -1); }

kiln_status graph_intern_value(graph *g, const char *name, int *index)
{
    int found = graph_find_value(g, name);
    if (found >= 0) {
        *index = found;
        return KILN_OK;
    }
    KILN_TRY(grow_table((void **)&g->values, &g->cap_values, g->n_values, sizeof *g->values));
    graph_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = region_strdup(g->mem, name);
    if (!v->name) return KILN_ERR_OUT_OF_MEMORY;
    v->rank = -1;
    v->producer = -1;
    for (int i = 0; i < KILN_MAX_RANK; i++) {
        v->dims[i] = -1;
        v->sym[i] = GRAPH_NO_SYMBOL;
    }
    KILN_TRY(strmap_put(&g->names, v->name, g->n_values));
    *index = g->n_values++;
    return KILN_OK;
}

kiln_status graph_add_node(graph *g, int n_inputs, int n_outputs, int n_attrs, int *index)
{
    KILN_TRY(grow_table((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes));
    graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = n->op_type = n->domain = "";
    n->n_inputs = n_inputs;
    n->n_outputs = n_outputs;
    n->n_attrs = n_attrs;
    n->inputs = region_alloc(g->mem, (size_t)n_inputs + 1, sizeof *n->inputs);
    n->outputs = region_alloc(g->mem, (size_t)n_outputs + 1, sizeof *n->outputs);
    n->attrs = region_alloc(g->mem, (size_t)n_attrs + 1, sizeof *n->attrs);
    if (!n->inputs || !n->outputs || !n->attrs) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < n_inputs; i++) n->inputs[i] = -1;
    for (int i = 0; i < n_outputs; i++) n->outputs[i] = -1;
    *index = g->n_nodes++;
    return KILN_OK;
}

kiln_status graph_intern_symbol(graph *g, const char *name, int *id)
{
    for (int i = 0; i < g->n_symbols; i++)
        if (strcmp(g->symbols[i], name) == 0) {
            *id = i;
            return KILN_OK;
        }
    KILN_TRY(grow_table((void **)&g->symbols, &g->cap_symbols, g->n_symbols, sizeof *g->symbols));
    g->symbols[g->n_symbols] = region_strdup(g->mem, name);
    if (!g->symbols[g->n_symbols]) return KILN_ERR_OUT_OF_MEMORY;
    *id = g->n_symbols++;
    return KILN_OK;
}

const graph_attr *graph_node_attr(const graph_node *node, const char *name)
{
    for (int i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0) return &node->attrs[i];
    return NULL;
}

bool graph_has_subgraphs(const graph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            attr_type t = g->nodes[i].attrs[a].type;
            if (t == ATTR_GRAPH || t == ATTR_GRAPHS) return true;
        }
    return false;
}

const char *graph_node_name(const graph *g, const graph_node *node)
{
    if (!node->name[0] && node->n_outputs > 0 && node->outputs[0] >= 0) return g->values[node->outputs[0]].name;
    return node->name;
}

const char *graph_node_label(const graph *g, const graph_node *node, char *buf, size_t size)
{
    const char *name = graph_node_name(g, node);
    if (node->domain[0])
        snprintf(buf, size, "node '%s' (%s::%s)", name, node->domain, node->op_type);
    else
        snprintf(buf, size, "node '%s' (%s)", name, node->op_type);
    return buf;
}

void graph_count_consumers(graph *g)
{
    for (int v = 0; v < g->n_values; v++) g->values[v].consumers = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) g->values[n->inputs[k]].consumers++;
    }
    for (int i = 0; i < g->n_outputs; i++) g->values[g->outputs[i]].consumers++;
}

/* Marks the values of `sub` that no node computes and that are neither constants nor inputs, but that a
 * node or an output reads: they come from an enclosing scope. Returns how many. */
static int mark_free_values(const graph *sub, bool *free_value)
{
    int count = 0;
    for (int i = 0; i <= sub->n_nodes; i++) {
        const int *reads = i < sub->n_nodes ? sub->nodes[i].inputs : sub->outputs;
        int n = i < sub->n_nodes ? sub->nodes[i].n_inputs : sub->n_outputs;
        for (int k = 0; k < n; k++) {
            int v = reads[k];
            if (v < 0 || free_value[v]) continue;
            const graph_value *value = &sub->values[v];
            if (value->producer >= 0 || value->constant || value->is_input) continue;
            free_value[v] = true;
            count++;
        }
    }
    return count;
}

kiln_status graph_add_captures(graph *g, int node, graph *sub)
{
    bool *free_value = mem_calloc((size_t)sub->n_values + 1, sizeof *free_value);
    if (!free_value) return KILN_ERR_OUT_OF_MEMORY;
    int count = mark_free_values(sub, free_value);
    graph_node *n = &g->nodes[node];
    sub->captures = region_alloc(g->mem, (size_t)count + 1, sizeof *sub->captures);
    int *inputs = region_alloc(g->mem, (size_t)(n->n_inputs + count) + 1, sizeof *inputs);
    kiln_status st = sub->captures && inputs ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) memcpy(inputs, n->inputs, (size_t)n->n_inputs * sizeof *inputs);
    int n_inputs = n->n_inputs;
    sub->n_captures = 0;
    for (int v = 0; v < sub->n_values && st == KILN_OK; v++) {
        if (!free_value[v]) continue;
        sub->captures[sub->n_captures++] = v;
        int outer;
        st = graph_intern_value(g, sub->values[v].name, &outer);
        bool present = false;
        for (int k = n->n_inputs - n->n_implicit_inputs; k < n_inputs && st == KILN_OK; k++) present |= inputs[k] == outer;
        if (st == KILN_OK && !present) inputs[n_inputs++] = outer;
    }
    mem_free(free_value);
    if (st != KILN_OK) return st;
    n = &g->nodes[node];
    n->n_implicit_inputs += n_inputs - n->n_inputs;
    n->n_inputs = n_inputs;
    n->inputs = inputs;
    return KILN_OK;
}
