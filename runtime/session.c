/*
 * session.c — running a model: bind inputs, (re)plan when shapes change, walk the plan.
 *
 * A session owns what one run needs: the arena, a tensor descriptor per value pointing into it, the
 * thread pool, and the plan (its own, or the model's static plan when every input shape is fixed). The
 * steady-state run only rewrites input pointers and calls kernels; it allocates nothing.
 */
#include <string.h>

#include "core/error.h"
#include "core/platform/platform.h"
#include "core/value.h"
#include "ops/op.h"
#include "runtime/model.h"
#include "runtime/plan.h"
#include "runtime/pool.h"

/* Where zero-byte tensors point: never dereferenced, but never NULL either. */
static uint64_t empty_tensor_storage[1];

struct kiln_session {
    const kiln_model *model;
    kiln_session_options options;
    thread_pool *pool;
    parallel_runner runner;
    kiln_tensor *bound; /* per graph input */
    bool *is_bound;
    const plan *plan;
    plan *own_plan; /* NULL when using the model's static plan */
    unsigned char *arena;
    size_t arena_capacity;
    kiln_tensor *tensors;    /* per value, for the current plan */
    kiln_tensor **io;        /* plan->io resolved to tensor pointers (NULL for omitted) */
    size_t io_capacity;
    region strings; /* the bytes of string outputs, reset before each run (see region_reset) */
    bool has_run;
    uint64_t *node_ns, *node_runs; /* per graph node, when profiling */
};

void kiln_session_options_init(kiln_session_options *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 1;
}

kiln_status kiln_session_create(const kiln_model *model, const kiln_session_options *options, kiln_session **out)
{
    kiln_clear_error();
    if (!model || !out) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_create: NULL argument");
    *out = NULL;
    if (!model->runnable)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "the model was loaded for inspection and has unsupported nodes");
    kiln_session *s = mem_calloc(1, sizeof *s);
    if (!s) return KILN_ERR_OUT_OF_MEMORY;
    region_init(&s->strings);
    s->model = model;
    kiln_session_options_init(&s->options);
    if (options) s->options = *options;
    int n_inputs = model->graph->n_inputs;
    s->bound = mem_calloc((size_t)n_inputs + 1, sizeof *s->bound);
    s->is_bound = mem_calloc((size_t)n_inputs + 1, sizeof *s->is_bound);
    s->tensors = mem_calloc((size_t)model->graph->n_values + 1, sizeof *s->tensors);
    bool profiled = true;
    if (s->options.profile) {
        s->node_ns = mem_calloc((size_t)model->graph->n_nodes + 1, sizeof *s->node_ns);
        s->node_runs = mem_calloc((size_t)model->graph->n_nodes + 1, sizeof *s->node_runs);
        profiled = s->node_ns && s->node_runs;
    }
    kiln_status st = s->bound && s->is_bound && s->tensors && profiled ? pool_create(s->options.threads, &s->pool)
                                                                        : KILN_ERR_OUT_OF_MEMORY;
    if (st != KILN_OK) {
        kiln_session_free(s);
        return st;
    }
    s->runner = pool_runner(s->pool);
    *out = s;
    return KILN_OK;
}

void kiln_session_free(kiln_session *s)
{
    if (!s) return;
    pool_free(s->pool);
    plan_free(s->own_plan);
    mem_aligned_free(s->arena);
    mem_free(s->bound);
    mem_free(s->is_bound);
    mem_free(s->tensors);
    mem_free(s->io);
    region_free(&s->strings);
    mem_free(s->node_ns);
    mem_free(s->node_runs);
    mem_free(s);
}

kiln_status kiln_session_set_input(kiln_session *s, int index, kiln_dtype dtype, int rank, const int64_t *dims,
                                   const void *data)
{
    kiln_clear_error();
    if (!s) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_set_input: NULL session");
    const graph *g = s->model->graph;
    if (index < 0 || index >= g->n_inputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input index %d is out of range (the model has %d inputs)", index,
                         g->n_inputs);
    const graph_value *v = &g->values[g->inputs[index]];
    if (dtype != v->dtype)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': got %s, the model expects %s", v->name,
                         kiln_dtype_name(dtype), kiln_dtype_name(v->dtype));
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': invalid rank %d", v->name, rank);
    if (v->rank >= 0 && rank != v->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': got rank %d, the model expects rank %d", v->name, rank,
                         v->rank);
    int64_t numel;
    if (shape_numel_checked(rank, dims, &numel) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': invalid shape", v->name);
    for (int d = 0; d < rank && v->rank >= 0; d++)
        if (v->dims[d] >= 0 && dims[d] != v->dims[d]) {
            char got[128], want[128];
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': got shape %s, the model expects %s (dim %d)",
                             v->name, shape_format(got, sizeof got, rank, dims),
                             shape_format(want, sizeof want, v->rank, v->dims), d);
        }
    if (!data && numel > 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s': NULL data", v->name);
    if (v->kind != VALUE_TENSOR) {
        kiln_tensor given = {.dtype = dtype, .rank = rank, .data = (void *)data};
        memcpy(given.dims, dims, (size_t)rank * sizeof *dims);
        KILN_TRY(value_check(v->kind, v->elem_kind, v->dtype, &given, v->name));
    }
    kiln_tensor *t = &s->bound[index];
    tensor_set_shape(t, dtype, rank, dims);
    t->data = numel > 0 ? (void *)data : empty_tensor_storage;
    s->is_bound[index] = true;
    return KILN_OK;
}

/* Points every value's descriptor at its home in the new plan and resolves step operands. */
static kiln_status bind_plan(kiln_session *s)
{
    const plan *p = s->plan;
    if (p->arena_bytes > s->arena_capacity) {
        mem_aligned_free(s->arena);
        s->arena_capacity = 0;
        s->arena = mem_aligned_alloc(p->arena_bytes);
        if (!s->arena) return KILN_ERR_OUT_OF_MEMORY;
        s->arena_capacity = p->arena_bytes;
    }
    for (int v = 0; v < p->n_slots; v++) {
        const plan_slot *slot = &p->slots[v];
        s->tensors[v] = slot->tensor;
        if (slot->kind == SLOT_ARENA)
            s->tensors[v].data = tensor_bytes(&slot->tensor) ? s->arena + slot->offset : (void *)empty_tensor_storage;
    }
    for (int v = 0; v < p->n_slots; v++)
        if (p->slots[v].kind == SLOT_ALIAS && p->slots[p->slots[v].alias_of].kind == SLOT_ARENA)
            s->tensors[v].data = s->tensors[p->slots[v].alias_of].data;
    const graph *g = p->graph;
    size_t io_count = 0;
    for (int i = 0; i < p->n_steps; i++) {
        const graph_node *n = &g->nodes[p->steps[i].node];
        io_count = (size_t)p->steps[i].io + (size_t)(n->n_inputs + n->n_outputs);
    }
    if (io_count > s->io_capacity) {
        mem_free(s->io);
        s->io_capacity = 0;
        s->io = mem_calloc(io_count, sizeof *s->io);
        if (!s->io) return KILN_ERR_OUT_OF_MEMORY;
        s->io_capacity = io_count;
    }
    for (size_t k = 0; k < io_count; k++) s->io[k] = p->io[k] >= 0 ? &s->tensors[p->io[k]] : NULL;
    return KILN_OK;
}

static kiln_status ensure_plan(kiln_session *s)
{
    int threads = s->runner.threads;
    if (s->plan && plan_matches(s->plan, s->bound, threads)) return KILN_OK;
    const kiln_model *m = s->model;
    plan *fresh = NULL;
    if (m->static_plan && plan_matches(m->static_plan, s->bound, threads)) {
        s->plan = m->static_plan;
    } else {
        KILN_TRY(plan_build(m->graph, s->bound, threads, &fresh));
        s->plan = fresh;
    }
    plan_free(s->own_plan);
    s->own_plan = fresh;
    kiln_status st = bind_plan(s);
    if (st != KILN_OK) s->plan = NULL; /* half-bound: plan again next time */
    return st;
}

static kiln_status run_step(kiln_session *s, const plan_step *step)
{
    const graph_node *n = &s->plan->graph->nodes[step->node];
    op_ctx ctx = {
        .node = n,
        .params = n->params,
        .opset = n->opset,
        .n_inputs = n->n_inputs,
        .n_outputs = n->n_outputs,
        .inputs = &s->io[step->io],
        .outputs = &s->io[step->io + n->n_inputs],
        .scratch_bytes = step->scratch_bytes,
        .scratch = step->scratch_bytes ? s->arena + step->scratch_offset : NULL,
        .threads = s->runner.threads,
        .raw_scores = s->options.raw_scores != 0,
        .parallel = &s->runner,
        .strings = &s->strings,
    };
    uint64_t start = s->node_ns ? platform_now_ns() : 0;
    kiln_status st = n->op->eval(&ctx);
    if (s->node_ns) {
        s->node_ns[step->node] += platform_now_ns() - start;
        s->node_runs[step->node]++;
    }
    if (st != KILN_OK) {
        char label[256];
        return kiln_fail_prefix(st, "%s", graph_node_label(s->plan->graph, n, label, sizeof label));
    }
    return KILN_OK;
}

kiln_status kiln_session_run(kiln_session *s)
{
    kiln_clear_error();
    if (!s) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_run: NULL session");
    const graph *g = s->model->graph;
    for (int i = 0; i < g->n_inputs; i++)
        if (!s->is_bound[i])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' was not set", g->values[g->inputs[i]].name);
    s->has_run = false;
    KILN_TRY(ensure_plan(s));
    region_reset(&s->strings);
    const plan *p = s->plan;
    for (int i = 0; i < g->n_inputs; i++) s->tensors[g->inputs[i]].data = s->bound[i].data;
    for (int v = 0; v < p->n_slots; v++)
        if (p->slots[v].kind == SLOT_ALIAS && p->slots[p->slots[v].alias_of].kind == SLOT_INPUT)
            s->tensors[v].data = s->tensors[p->slots[v].alias_of].data;
    for (int i = 0; i < p->n_steps; i++) KILN_TRY(run_step(s, &p->steps[i]));
    s->has_run = true;
    return KILN_OK;
}

int kiln_session_profile_count(const kiln_session *s)
{
    return s && s->node_ns ? s->model->graph->n_nodes : 0;
}

kiln_status kiln_session_profile(const kiln_session *s, int index, kiln_node_profile *out)
{
    kiln_clear_error();
    if (!s || !out) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_profile: NULL argument");
    int count = kiln_session_profile_count(s);
    if (index < 0 || index >= count)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "profile index %d is out of range (the session has %d entries)",
                         index, count);
    const graph *g = s->model->graph;
    const graph_node *n = &g->nodes[index];
    *out = (kiln_node_profile){.name = graph_node_name(g, n), .domain = n->domain, .op_type = n->op_type,
                               .runs = s->node_runs[index], .total_ns = s->node_ns[index]};
    return KILN_OK;
}

kiln_status kiln_session_output(const kiln_session *s, int index, kiln_tensor *out)
{
    kiln_clear_error();
    if (!s || !out) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_output: NULL argument");
    const graph *g = s->model->graph;
    if (index < 0 || index >= g->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output index %d is out of range (the model has %d outputs)",
                         index, g->n_outputs);
    if (!s->has_run) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "no successful run yet");
    *out = s->tensors[g->outputs[index]];
    return KILN_OK;
}

size_t kiln_session_arena_bytes(const kiln_session *s) { return s && s->plan ? s->plan->arena_bytes : 0; }
