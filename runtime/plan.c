/*
 * plan.c — from a graph and concrete input shapes to an execution plan (see plan.h).
 *
 * 1. The shape pass gives every value its shape and precomputes shape-deciding values.
 * 2. Every value gets a home: constants and precomputed values keep theirs, graph inputs live in the
 *    caller's buffer, outputs of view operators (OP_ALIAS_INPUT0) share their input's memory, and
 *    everything else gets an arena buffer.
 * 3. A buffer lives from the step that writes it to the last step that reads it, directly or through a
 *    view; graph outputs live to the end. Scratch lives for its one step.
 * 4. The memory planner packs the buffers into one arena.
 */
#include "runtime/plan.h"

#include <string.h>

#include "core/error.h"
#include "ops/op.h"
#include "runtime/memplan.h"

#define PLAN_ALIGNMENT 64

void plan_free(plan *p)
{
    if (!p) return;
    shape_result_free(&p->shapes);
    mem_free(p->slots);
    mem_free(p->steps);
    mem_free(p->io);
    mem_free(p->key);
    region_free(&p->key_mem);
    mem_free(p);
}

/* The value whose memory v uses (itself unless it is a view). */
static int storage_of(const plan *p, int v) { return p->slots[v].kind == SLOT_ALIAS ? p->slots[v].alias_of : v; }

static void assign_home(plan *p, const graph *g, int v, const int *input_index)
{
    plan_slot *s = &p->slots[v];
    const graph_value *value = &g->values[v];
    s->tensor = p->shapes.values[v];
    s->alias_of = -1;
    s->input = -1;
    if (value->constant || (value->producer >= 0 && p->shapes.precomputed[value->producer])) {
        s->kind = SLOT_CONSTANT;
    } else if (value->is_input) {
        s->kind = SLOT_INPUT;
        s->input = input_index[v];
        s->tensor.data = NULL;
    } else {
        s->kind = SLOT_UNUSED; /* arena or alias, decided when its producer is planned */
        s->tensor.data = NULL;
    }
}

/* Makes output 0 of a view node share input 0's memory. */
static void plan_view(plan *p, const graph_node *n)
{
    int out = n->outputs[0];
    if (out < 0 || n->inputs[0] < 0) return;
    int root = storage_of(p, n->inputs[0]);
    plan_slot *s = &p->slots[out];
    if (p->slots[root].kind == SLOT_CONSTANT) {
        s->kind = SLOT_CONSTANT;
        s->tensor.data = p->slots[root].tensor.data;
    } else {
        s->kind = SLOT_ALIAS;
        s->alias_of = root;
    }
}

typedef struct plan_builder {
    plan *p;
    const graph *g;
    int *last_use;   /* per value (storage roots only) */
    int *first_use;
    memplan_buffer *buffers;
    int *buffer_value; /* value index for each buffer, or -(step+1) for a step's scratch */
    int n_buffers;
} plan_builder;

static kiln_status build_steps(plan_builder *b)
{
    plan *p = b->p;
    const graph *g = b->g;
    size_t io_count = 0;
    for (int i = 0; i < g->n_nodes; i++) io_count += (size_t)(g->nodes[i].n_inputs + g->nodes[i].n_outputs);
    p->steps = mem_calloc((size_t)g->n_nodes + 1, sizeof *p->steps);
    p->io = mem_calloc(io_count + 1, sizeof *p->io);
    if (!p->steps || !p->io) return KILN_ERR_OUT_OF_MEMORY;
    int io = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed || p->shapes.precomputed[i]) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            if (n->inputs[k] < 0) continue;
            int root = storage_of(p, n->inputs[k]);
            if (b->last_use[root] < i) b->last_use[root] = i;
        }
        if (n->op->flags & OP_ALIAS_INPUT0) {
            plan_view(p, n);
            continue;
        }
        plan_step *step = &p->steps[p->n_steps++];
        step->node = i;
        step->io = io;
        step->scratch_bytes = p->shapes.scratch[i];
        for (int k = 0; k < n->n_inputs; k++) p->io[io++] = n->inputs[k];
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            p->io[io++] = v;
            if (v < 0) continue;
            p->slots[v].kind = SLOT_ARENA;
            b->first_use[v] = i;
            if (b->last_use[v] < i) b->last_use[v] = i; /* written even when nobody reads it */
        }
    }
    for (int i = 0; i < g->n_outputs; i++) b->last_use[storage_of(p, g->outputs[i])] = g->n_nodes;
    return KILN_OK;
}

static kiln_status assign_offsets(plan_builder *b)
{
    plan *p = b->p;
    const graph *g = b->g;
    b->buffers = mem_calloc((size_t)(g->n_values + p->n_steps) + 1, sizeof *b->buffers);
    b->buffer_value = mem_calloc((size_t)(g->n_values + p->n_steps) + 1, sizeof *b->buffer_value);
    if (!b->buffers || !b->buffer_value) return KILN_ERR_OUT_OF_MEMORY;
    for (int v = 0; v < g->n_values; v++) {
        if (p->slots[v].kind != SLOT_ARENA) continue;
        size_t bytes = tensor_bytes(&p->slots[v].tensor);
        if (bytes == 0) continue;
        b->buffers[b->n_buffers] = (memplan_buffer){bytes, b->first_use[v], b->last_use[v], 0};
        b->buffer_value[b->n_buffers++] = v;
    }
    for (int s = 0; s < p->n_steps; s++) {
        if (p->steps[s].scratch_bytes == 0) continue;
        int node = p->steps[s].node;
        b->buffers[b->n_buffers] = (memplan_buffer){p->steps[s].scratch_bytes, node, node, 0};
        b->buffer_value[b->n_buffers++] = -(s + 1);
    }
    KILN_TRY(memplan_assign(b->buffers, b->n_buffers, PLAN_ALIGNMENT, &p->arena_bytes));
    p->peak_live_bytes = memplan_peak_live(b->buffers, b->n_buffers, PLAN_ALIGNMENT);
    for (int i = 0; i < b->n_buffers; i++) {
        int v = b->buffer_value[i];
        if (v >= 0) p->slots[v].offset = b->buffers[i].offset;
        else p->steps[-v - 1].scratch_offset = b->buffers[i].offset;
    }
    return KILN_OK;
}

static kiln_status remember_key(plan *p, const graph *g, const kiln_tensor *inputs)
{
    p->key = mem_calloc((size_t)g->n_inputs + 1, sizeof *p->key);
    if (!p->key) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n_inputs; i++) {
        p->key[i] = inputs[i];
        p->key[i].data = NULL;
        if (!g->values[g->inputs[i]].needs_value_at_plan || g->values[g->inputs[i]].kind != VALUE_TENSOR) continue;
        p->key[i].data = tensor_copy_contents(&inputs[i], &p->key_mem);
        if (!p->key[i].data) return KILN_ERR_OUT_OF_MEMORY;
    }
    return KILN_OK;
}

kiln_status plan_build(const graph *g, const kiln_tensor *inputs, int threads, plan **out)
{
    plan *p = mem_calloc(1, sizeof *p);
    if (!p) return KILN_ERR_OUT_OF_MEMORY;
    region_init(&p->key_mem);
    p->graph = g;
    p->threads = threads;
    plan_builder b = {.p = p, .g = g};
    kiln_status st = graph_infer_shapes(g, inputs, SHAPE_EXACT, threads, &p->shapes);
    if (st != KILN_OK) {
        mem_free(p);
        return st;
    }
    p->n_slots = g->n_values;
    p->slots = mem_calloc((size_t)g->n_values + 1, sizeof *p->slots);
    b.last_use = mem_calloc((size_t)g->n_values + 1, sizeof *b.last_use);
    b.first_use = mem_calloc((size_t)g->n_values + 1, sizeof *b.first_use);
    int *input_index = mem_calloc((size_t)g->n_values + 1, sizeof *input_index);
    if (!p->slots || !b.last_use || !b.first_use || !input_index) st = KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        for (int i = 0; i < g->n_inputs; i++) input_index[g->inputs[i]] = i;
        for (int v = 0; v < g->n_values; v++) {
            assign_home(p, g, v, input_index);
            b.last_use[v] = -1;
        }
        st = build_steps(&b);
    }
    if (st == KILN_OK) st = assign_offsets(&b);
    if (st == KILN_OK) st = remember_key(p, g, inputs);
    mem_free(b.last_use);
    mem_free(b.first_use);
    mem_free(b.buffers);
    mem_free(b.buffer_value);
    mem_free(input_index);
    if (st != KILN_OK) {
        plan_free(p);
        return st;
    }
    *out = p;
    return KILN_OK;
}

bool plan_matches(const plan *p, const kiln_tensor *inputs, int threads)
{
    const graph *g = p->graph;
    if (p->threads != threads) return false;
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln_tensor *k = &p->key[i], *t = &inputs[i];
        if (g->values[g->inputs[i]].kind != VALUE_TENSOR) return false; /* sequences: plan again */
        if (k->dtype != t->dtype || !shape_equal(k->rank, k->dims, t->rank, t->dims)) return false;
        if (k->data && !tensor_contents_equal(k, t)) return false;
    }
    return true;
}
