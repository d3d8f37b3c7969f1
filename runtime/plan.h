/*
 * plan.h — the execution plan: data, not code.
 *
 * A plan is built for one set of input shapes (and the contents of the few inputs that decide shapes). It
 * holds, for every value of the graph, where its bytes live — at an offset in the arena, in a constant,
 * in a caller's input buffer, or shared with another value (Reshape and friends) — and the ordered list of
 * kernel calls. The interpreter (session.c) walks the steps; codegen can print them. Building a plan is the
 * only place memory is sized; running one allocates nothing.
 */
#ifndef KILN_RUNTIME_PLAN_H
#define KILN_RUNTIME_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "graph/graph.h"
#include "graph/passes.h"
#include "kiln.h"

typedef enum slot_kind {
    SLOT_UNUSED = 0, /* nobody reads it (an unused optional output still gets scratch room) */
    SLOT_ARENA,      /* offset into the session's arena */
    SLOT_CONSTANT,   /* initializer, folded or precomputed value: tensor.data is set */
    SLOT_INPUT,      /* the caller's buffer for graph input `input` */
    SLOT_ALIAS       /* shares the memory of value `alias_of` (never itself an alias) */
} slot_kind;

typedef struct plan_slot {
    kiln_tensor tensor; /* dtype and shape for this plan; data only for SLOT_CONSTANT */
    slot_kind kind;
    size_t offset;
    int input;
    int alias_of;
} plan_slot;

typedef struct plan_step {
    int node;       /* index in graph->nodes */
    int io;         /* the node's inputs then outputs are plan->io[io ...] (value index, or -1) */
    size_t scratch_offset, scratch_bytes;
} plan_step;

typedef struct plan {
    const graph *graph;
    shape_result shapes; /* keeps precomputed contents alive */
    int n_slots;
    plan_slot *slots; /* one per graph value */
    int n_steps;
    plan_step *steps;
    int *io;
    size_t arena_bytes;
    size_t peak_live_bytes; /* lower bound on arena_bytes, for reports */
    int threads;            /* the run's thread count, which per-thread scratch was sized for */
    /* what the plan was built for */
    kiln_tensor *key;  /* per graph input: dtype and dims, and a copy of the contents of shape-deciding ones */
    region key_mem;
} plan;

/* Builds a plan for these inputs and a run on `threads` threads (one per graph input, dtype and dims set; data required for inputs marked
 * needs_value_at_plan). Shape errors name the node. */
kiln_status plan_build(const graph *g, const kiln_tensor *inputs, int threads, plan **out);
/* True when `inputs` have the shapes (and decisive contents), and the run the thread count, the plan was
 * built for. */
bool plan_matches(const plan *p, const kiln_tensor *inputs, int threads);
void plan_free(plan *p);

#endif
