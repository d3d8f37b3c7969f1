/*
 * graph.h — kiln's intermediate representation of a model: values, nodes and their attributes.
 *
 * A graph is a list of nodes over a table of values. A value is produced by at most one node (SSA, as in
 * ONNX) and identified by its index; node inputs and outputs are value indices (-1 for an omitted optional
 * input). Each value carries what is known before any input arrives: dtype (always known after type
 * inference), rank and dims, where a dim is either a number or a symbol such as `batch`, and — for
 * initializers and folded results — its constant contents.
 *
 * Everything small the graph owns (names, attribute arrays, tensor descriptors) lives in the graph's region
 * and dies with it; tensor data either points into the model file mapping or into region memory.
 */
#ifndef KILN_GRAPH_GRAPH_H
#define KILN_GRAPH_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/strmap.h"
#include "kiln.h"

struct op_def;
typedef struct graph graph;

/* What kind of thing flows along a value (the public kiln_value_kind). Tensors, sequences of tensors or of
 * maps (ZipMap's output) and optionals (of a tensor or a sequence) run; other maps and sparse tensors are only
 * recognised, so that the loader can say precisely what is unsupported. At run time a sequence, an optional or
 * a map travels as a kiln_tensor descriptor whose data points to its elements (see kiln.h, kiln_value_kind). */
typedef kiln_value_kind value_kind;
#define VALUE_TENSOR KILN_VALUE_TENSOR
#define VALUE_SEQUENCE KILN_VALUE_SEQUENCE
#define VALUE_MAP KILN_VALUE_MAP
#define VALUE_OPTIONAL KILN_VALUE_OPTIONAL
#define VALUE_SPARSE KILN_VALUE_SPARSE

/* The type of a value short of its shape: what subgraph typing (If/Loop/Scan bodies) passes around. */
typedef struct value_type {
    value_kind kind;
    value_kind elem_kind; /* optionals: a tensor or a sequence; sequences: a tensor or a map */
    kiln_dtype dtype;
    kiln_dtype key_dtype; /* maps and sequences of maps: the keys' dtype */
} value_type;

/* Attribute types, numbered as ONNX's AttributeProto.AttributeType. */
typedef enum attr_type {
    ATTR_UNDEFINED = 0,
    ATTR_FLOAT = 1,
    ATTR_INT = 2,
    ATTR_STRING = 3,
    ATTR_TENSOR = 4,
    ATTR_GRAPH = 5,
    ATTR_FLOATS = 6,
    ATTR_INTS = 7,
    ATTR_STRINGS = 8,
    ATTR_TENSORS = 9,
    ATTR_GRAPHS = 10,
    ATTR_SPARSE_TENSOR = 11,
    ATTR_SPARSE_TENSORS = 12,
    ATTR_TYPE_PROTO = 13,
    ATTR_TYPE_PROTOS = 14
} attr_type;

typedef struct graph_attr {
    const char *name;
    attr_type type;
    float f;
    int64_t i;
    const char *s; /* bytes, NUL-terminated for convenience; s_len excludes the NUL */
    size_t s_len;
    kiln_tensor *t;
    graph *g;
    int count; /* elements of the list forms below */
    float *floats;
    int64_t *ints;
    const char **strings;
    size_t *string_lens;
    kiln_tensor **tensors;
    graph **graphs;
    value_type tp; /* ATTR_TYPE_PROTO: the type, short of its shape */
} graph_attr;

/* Symbol id for a dim that is not a number; -1 means "no symbol" (a number, or simply unknown). */
#define GRAPH_NO_SYMBOL (-1)

typedef struct graph_value {
    const char *name;
    value_kind kind;
    value_kind elem_kind;           /* optionals: a tensor or a sequence; sequences: a tensor or a map */
    kiln_dtype key_dtype;           /* maps and sequences of maps: the keys' dtype */
    kiln_dtype dtype;               /* KILN_UNDEFINED until type inference; element dtype of non-tensors */
    kiln_dtype declared_dtype;      /* graph outputs: the dtype the file declares, checked against inference */
    int rank;                       /* -1 when unknown */
    int64_t dims[KILN_MAX_RANK];    /* -1 when not a fixed number */
    int sym[KILN_MAX_RANK];         /* symbol of a non-fixed dim, or GRAPH_NO_SYMBOL */
    const kiln_tensor *constant;    /* initializer or folded result; NULL when computed at run time */
    int producer;                   /* node index, -1 for graph inputs, constants and outer-scope values */
    int consumers;                  /* live nodes reading this value */
    bool is_input;                  /* a graph input the caller binds */
    bool is_output;                 /* a graph output */
    bool needs_value_at_plan;       /* its contents decide a shape: the planner computes it ahead */
} graph_value;

/* What operators build at load, summed over a graph, for `kiln info`. */
typedef struct graph_load_stats {
    size_t prepacked_bytes; /* constant weights rearranged for kernels (GEMM panels) */
    int64_t trees, tree_nodes;
    int32_t tree_max_depth;
} graph_load_stats;

typedef struct graph_node {
    const char *name;
    const char *op_type;
    const char *domain; /* "" for the default ONNX domain */
    int opset;          /* version of `domain` in force for this node */
    int n_inputs, n_outputs;
    int *inputs, *outputs;
    int n_implicit_inputs; /* the last inputs: outer-scope values its subgraphs read (see graph_add_captures) */
    int n_attrs;
    graph_attr *attrs;
    const struct op_def *op; /* resolved by type inference; NULL when unsupported */
    void *params;            /* the op's parsed attributes */
    unsigned value_inputs;   /* bit i: the op's shape function needs input i's contents */
    bool removed;            /* folded or dead; skipped by every later pass */
} graph_node;

struct graph {
    region *mem;
    const char *name;
    graph_value *values;
    int n_values, cap_values;
    graph_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs; /* graph inputs the caller binds, in declaration order */
    int n_inputs;
    int *outputs;
    int n_outputs;
    strmap names; /* value name -> value index */
    const char **symbols; /* names of symbolic dims, indexed by symbol id */
    int n_symbols, cap_symbols;
    graph_load_stats stats; /* what op init functions built (packed weights, tree ensembles) */
    graph *parent; /* enclosing graph of a subgraph (If/Loop/Scan bodies) */
    int *captures; /* subgraphs: values read from the enclosing scopes (neither computed, constant nor input) */
    int n_captures;
    graph *next_subgraph; /* every subgraph is chained to the top graph, which frees them all */
};

/* A graph whose small allocations come from `mem` (shared with the model). A subgraph (parent != NULL)
 * belongs to the top graph: freeing the top graph frees it, even if no attribute ended up holding it. */
kiln_status graph_create(region *mem, graph *parent, graph **out);
/* Frees a top graph and all its subgraphs. */
void graph_free(graph *g);

/* Index of the value called `name`, or -1. */
int graph_find_value(const graph *g, const char *name);
/* Index of the value called `name`, adding an empty one when absent. `name` is copied. */
kiln_status graph_intern_value(graph *g, const char *name, int *index);
/* Adds a node with room for its inputs, outputs and attributes; returns its index. */
kiln_status graph_add_node(graph *g, int n_inputs, int n_outputs, int n_attrs, int *index);
/* Symbol id for `name`, added when new. */
kiln_status graph_intern_symbol(graph *g, const char *name, int *id);

const graph_attr *graph_node_attr(const graph_node *node, const char *name);
/* Whether any node holds a subgraph (If, Loop, Scan): names it reads from the outer scope are then not
 * visible as node inputs, so passes that rewrite values by their readers leave such graphs alone. */
bool graph_has_subgraphs(const graph *g);

/* The node's name, or its first output's when it has none (exporters often leave names empty). */
const char *graph_node_name(const graph *g, const graph_node *node);
/* "node 'conv1' (Conv)" for messages, named as graph_node_name says. */
const char *graph_node_label(const graph *g, const graph_node *node, char *buf, size_t size);

/* Finds the values a freshly read subgraph takes from its enclosing scopes (sub->captures), and makes
 * them implicit inputs of the node `node` of the enclosing graph g that owns the subgraph, as onnxruntime
 * does. So every pass sees the dependency: sorting, liveness, dead-node removal and plan values need no
 * knowledge of subgraphs. Nested subgraphs were read first, so their captures are already inputs of their
 * nodes in `sub` and propagate outwards. */
kiln_status graph_add_captures(graph *g, int node, graph *sub);

/* Recounts `consumers` for every value from the live nodes and graph outputs. */
void graph_count_consumers(graph *g);

#endif
