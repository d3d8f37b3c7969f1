/*
 * passes.h — what happens to a graph between reading a file and planning a run, in order:
 *
 *   graph_check_and_sort   every input defined, no cycles, nodes in topological order
 *   graph_fuse_activations BatchNormalization folded into the Conv or Gemm before it; a Conv followed by its
 *                          Relu, Clip, Sigmoid or SiLU becomes one ai.kiln::FusedConv node
 *   graph_choose_layouts   a depthwise Conv and the pointwise Conv reading it exchange channel blocks
 *                          instead of planes (layout.c)
 *   graph_infer_types      each node's op is found and its init checks attributes and dtypes;
 *                          every problem is collected, not just the first
 *   graph_mark_plan_values which values decide shapes and must be computed while planning
 *   graph_infer_symbolic   shapes with symbolic dims, by probing the shape pass with stand-in sizes
 *   graph_fold_constants   nodes whose inputs are all known are computed once, at load
 *   graph_remove_dead      nodes no output depends on are dropped
 *   graph_fuse_transformer LayerNorm and GELU subgraphs become one operator each (fuse_transformer.c)
 *
 * graph_infer_shapes is the shape pass itself: given concrete input shapes (and the contents of inputs
 * that decide shapes) it gives every value its shape and computes the shape-deciding values. The planner
 * runs it for each new set of input shapes; graph_infer_symbolic runs it with stand-ins.
 */
#ifndef KILN_GRAPH_PASSES_H
#define KILN_GRAPH_PASSES_H

#include <stdbool.h>

#include "graph/graph.h"

/* One problem found in a node: unsupported op/opset/dtype, or a malformed attribute. */
typedef struct graph_issue {
    kiln_status status;
    const char *where;   /* "node 'conv1' (Conv, opset 13)" */
    const char *message;
    const char *text;    /* "where: message" */
} graph_issue;

typedef struct graph_issues {
    region *mem;
    graph_issue *items;
    int count, capacity;
} graph_issues;

kiln_status graph_issues_add(graph_issues *issues, kiln_status status, const char *where, const char *message);
/* One error combining every issue ("2 problems: node 'a' (Foo, opset 13): ...; node 'b' ..."). */
kiln_status graph_issues_fail(const graph_issues *issues);
void graph_issues_free(graph_issues *issues);

kiln_status graph_check_and_sort(graph *g);
/* The domain of kiln's own operators (fused nodes, tree ensembles). */
#define GRAPH_KILN_DOMAIN "ai.kiln"
kiln_status graph_fuse_activations(graph *g);
kiln_status graph_choose_layouts(graph *g);
/* Resolves ops and runs their init; problems go to `issues` (the call fails only on out-of-memory). */
kiln_status graph_infer_types(graph *g, graph_issues *issues);
void graph_mark_plan_values(graph *g);
kiln_status graph_fold_constants(graph *g);
void graph_remove_dead(graph *g);
kiln_status graph_infer_symbolic(graph *g);
kiln_status graph_fuse_transformer(graph *g);
/* Runs the init of one node whose op is resolved (a node a pass created or rewrote); fails with its message. */
kiln_status graph_init_node(graph *g, graph_node *n);

/* ---- the shape pass ---------------------------------------------------------------------------------- */

typedef enum shape_mode {
    SHAPE_EXACT, /* real inputs: every failure is an error */
    SHAPE_PROBE, /* stand-in inputs, contents unknown: failures leave values unknown */
    SHAPE_EVAL   /* real inputs with contents: every node is computed (how subgraph bodies run) */
} shape_mode;

typedef struct shape_result {
    int n_values, n_nodes;
    kiln_tensor *values; /* shapes for every value; data for constants and precomputed values */
    bool *known;         /* per value: shape known (always true in SHAPE_EXACT after success) */
    bool *precomputed;   /* per node: computed during the pass, so the run skips it */
    size_t *scratch;     /* per node: scratch bytes its eval needs */
    region mem;          /* contents of precomputed values */
} shape_result;

/* `threads` is how many threads the run will use (ops size per-thread scratch by it).
 * `inputs` has one tensor per graph input (g->inputs order), then for a subgraph one per captured value
 * (g->captures order), with dtype and dims set; `data` must be set in SHAPE_EVAL mode, and
 * for inputs marked needs_value_at_plan in SHAPE_EXACT mode, and may be NULL in SHAPE_PROBE mode. */
kiln_status graph_infer_shapes(const graph *g, const kiln_tensor *inputs, shape_mode mode, int threads,
                               shape_result *result);
void shape_result_free(shape_result *result);

/* Runs one node ahead of time on inputs whose contents are known: its shape function, then eval into
 * memory from `mem`. Outputs' dtypes must be set. When the outputs would exceed `max_output_bytes` (0: no
 * limit) nothing is evaluated and *evaluated stays false. Used by constant folding. */
kiln_status graph_eval_node(const graph *g, const graph_node *node, kiln_tensor *const *inputs,
                            kiln_tensor *const *outputs, size_t max_output_bytes, region *mem, bool *evaluated);

#endif
