/*
 * op.h — how an operator plugs into kiln.
 *
 * Each operator is an op_def registered for a (domain, op_type, opset range), with three functions in the
 * manner of TensorFlow Lite Micro's init / prepare / eval:
 *
 *   init   (load time, once per node)  parses and validates attributes into `params`, checks input dtypes
 *          and sets output dtypes, and declares which inputs' *contents* its shape function needs
 *          (`value_inputs`, e.g. Reshape's `shape`). Everything that can be known from the file alone is
 *          checked here, so an unsupported dtype or a bad attribute is reported at load.
 *   shape  (plan time, whenever input shapes change) sets every output's rank and dims from the inputs'
 *          shapes (and the contents of `value_inputs`) and asks for scratch memory. It validates shapes.
 *   eval   (run time) does the arithmetic. It allocates nothing and only fails when the data itself is
 *          invalid (an index out of range).
 *
 * Messages from these functions name what went wrong; the caller adds "node 'x' (Op)".
 */
#ifndef KILN_OPS_OP_H
#define KILN_OPS_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "graph/graph.h"
#include "kiln.h"

/* Load-time view of one node. */
typedef struct op_init_ctx op_init_ctx;
struct op_init_ctx {
    const graph *graph;
    const graph_node *node;
    int opset;
    int n_inputs, n_outputs;              /* as written in the model, optional trailing ones included */
    const kiln_dtype *input_dtypes;       /* KILN_UNDEFINED for an omitted optional input */
    const kiln_tensor *const *constants;  /* constant inputs (initializers, folded values), else NULL */
    kiln_dtype *output_dtypes;            /* init sets one per output */
    void *params;                         /* zeroed, params_size bytes, lives as long as the model */
    unsigned value_inputs;                /* init sets bit i when shape() needs input i's contents */
    region *mem;                          /* for params that need more room (lists, tables) */
    graph_load_stats stats;               /* what init built: op_alloc_prepacked and op_note_trees add here */
    /* Non-tensor values (ops flagged OP_ANY_VALUE_KIND): init sets these for outputs that are not tensors
     * (both preset to VALUE_TENSOR); op_input_type tells what an input is. */
    value_kind *output_kinds, *output_elem_kinds;
    kiln_dtype *output_key_dtypes; /* outputs that are sequences of maps: the keys' dtype */
    /* Types and validates a subgraph of this node (If/Loop/Scan bodies): `inputs` are the types the node
     * gives the body's inputs (undeclared ones are taken from them, declared ones must agree); captured
     * outer-scope values take the enclosing graph's types. The body's nodes are checked like the main
     * graph's and their problems reported with them; afterwards the body's outputs have their types. */
    kiln_status (*type_subgraph)(op_init_ctx *ctx, graph *body, int n_inputs, const value_type *inputs);
    void *checker; /* type_subgraph's state */
};

/* Plan- and run-time view of one node. */
typedef struct op_ctx op_ctx;
struct op_ctx {
    const graph_node *node;
    const void *params;
    int opset;
    int n_inputs, n_outputs;
    kiln_tensor *const *inputs;  /* NULL entries for omitted optional inputs */
    kiln_tensor *const *outputs; /* dtype preset from init; shape() fills rank and dims */
    size_t scratch_bytes;        /* shape() may request scratch memory for eval */
    void *scratch;               /* eval: scratch_bytes of memory, 64-byte aligned, contents undefined */
    int threads;                 /* threads eval will have (the session's): size per-thread scratch by it */
    bool raw_scores;             /* the session asks for scores before output transforms (kiln_session_options) */
    const parallel_runner *parallel; /* eval only; its thread count equals `threads` */
    region *strings; /* eval only: where string outputs' bytes go (region_strndup), kept until the next run;
                      * not thread-safe, so only the eval's own thread writes strings */
    /* Plan-time evaluation (OP_PLAN_TIME ops) only: where outputs are allocated, and how a subgraph runs.
     * run_graph binds `inputs` (one per body input) and the body's captured values (from this node's
     * implicit inputs), evaluates every node, and deep-copies the body's outputs into `outputs` with
     * memory from `mem`. */
    region *mem;
    kiln_status (*run_graph)(const op_ctx *ctx, const graph *body, kiln_tensor *const *inputs,
                             kiln_tensor *outputs, region *mem);
};

/* Output 0 shares input 0's memory (Reshape, Squeeze, Identity...): eval is never called; the planner
 * aliases the buffers instead. */
#define OP_ALIAS_INPUT0 (1u << 0)
/* Never evaluate ahead of time: results differ per run (random generators). */
#define OP_NO_FOLD (1u << 1)
/* Reads only its inputs' shapes, never their contents (Shape, Size): a plan can compute it without the
 * inputs' data. */
#define OP_READS_SHAPE_ONLY (1u << 2)
/* Output shapes depend on input contents (NonZero, Unique): the planner computes the node ahead. */
#define OP_DATA_DEPENDENT_SHAPE (1u << 3)
/* Runs only while planning, in one call (control flow, sequences): there is no shape function; eval sets
 * its outputs' shapes and takes their memory from ctx->mem, and may run subgraphs (ctx->run_graph). The
 * results are constants of the plan, like precomputed shape values; the planner re-plans when the inputs
 * they depend on change. Always set together with OP_DATA_DEPENDENT_SHAPE. */
#define OP_PLAN_TIME (1u << 4)
/* Inputs and outputs may be sequences and optionals, not only tensors: init checks kinds itself. */
#define OP_ANY_VALUE_KIND (1u << 5)

typedef struct op_def {
    const char *domain;  /* "" for ai.onnx */
    const char *op_type;
    int since_opset, until_opset; /* inclusive; the op's semantics over this range are implemented */
    size_t params_size;
    kiln_status (*init)(op_init_ctx *ctx);
    kiln_status (*shape)(op_ctx *ctx);
    kiln_status (*eval)(op_ctx *ctx);
    unsigned flags;
} op_def;

/* Each operator family file defines a table `const op_def ops_<family>[]` ending with an all-zero entry. */
#define OP_TABLE_END {0}

/* The op_def for a node, or NULL. `opset` is the node's opset for its domain. */
const op_def *op_lookup(const char *domain, const char *op_type, int opset);
/* True when some version of (domain, op_type) is registered: distinguishes "unknown operator" from
 * "unsupported opset" in messages. */
bool op_known(const char *domain, const char *op_type, int *min_opset, int *max_opset);
/* Calls fn for every registered op (for `kiln info --ops` and tests). */
void op_for_each(void (*fn)(const op_def *def, void *arg), void *arg);

/* Memory for a constant weight rearranged for a kernel (e.g. GEMM panels), owned by the model. Counted, so
 * `kiln info` shows what pre-packing costs beside the weights themselves. */
void *op_alloc_prepacked(op_init_ctx *ctx, size_t bytes);

struct tree_ensemble;
/* Adds a built tree ensemble to the model's statistics (trees, nodes, depth). */
void op_note_trees(op_init_ctx *ctx, const struct tree_ensemble *ensemble);

/* ---- helpers for init functions ---------------------------------------------------------------------- */

/* Fails unless input i is present and its dtype is one of `allowed` (a KILN_UNDEFINED-terminated list). */
kiln_status op_require_dtype(const op_init_ctx *ctx, int input, const kiln_dtype *allowed);
/* Fails unless the op has between min and max inputs / outputs, and the first min_in / min_out are given. */
kiln_status op_require_arity(const op_init_ctx *ctx, int min_in, int max_in, int min_out, int max_out);
/* What input i is (kind, element kind, dtype); a VALUE_TENSOR of KILN_UNDEFINED when omitted. */
value_type op_input_type(const op_init_ctx *ctx, int i);
/* The type of a graph value (kind, element kind, dtype). */
value_type op_value_type(const graph_value *v);
/* Sets output k's dtype and kind. */
void op_set_output_type(op_init_ctx *ctx, int k, value_type t);
/* True when input i is given (not omitted). */
bool op_has_input(const op_init_ctx *ctx, int i);

/* Attribute readers: absent attributes give the default; a present one of the wrong type is an error. */
kiln_status attr_int(const graph_node *node, const char *name, int64_t dflt, int64_t *out);
kiln_status attr_float(const graph_node *node, const char *name, float dflt, float *out);
kiln_status attr_string(const graph_node *node, const char *name, const char *dflt, const char **out);
/* Copies an int list; *count is 0 when absent. Fails when longer than `capacity`. */
kiln_status attr_ints(const graph_node *node, const char *name, int64_t *out, int capacity, int *count);
kiln_status attr_floats(const graph_node *node, const char *name, float *out, int capacity, int *count);
/* A string attribute that must be one of `names` (NULL-terminated): *index is its position. An unknown value
 * is KILN_ERR_MALFORMED, naming the allowed ones. */
kiln_status attr_choice(const graph_node *node, const char *name, const char *dflt, const char *const *names,
                        int *index);
/* The attribute itself when present with type `want`, NULL when absent; an error naming both types when it
 * has another type. For reading long lists in place (ONNX-ML tree arrays) instead of copying them. */
kiln_status attr_find(const graph_node *node, const char *name, attr_type want, const graph_attr **out);
/* The tensor attribute or NULL when absent. */
kiln_status attr_tensor(const graph_node *node, const char *name, const kiln_tensor **out);

/* ---- helpers for shape functions --------------------------------------------------------------------- */

/* Multidirectional (numpy) broadcast of a and b into out's rank/dims. */
kiln_status shape_broadcast(int rank_a, const int64_t *a, int rank_b, const int64_t *b, int *rank_out,
                            int64_t *out);
/* Sets output i's rank and dims (dtype untouched). */
void op_set_output_shape(op_ctx *ctx, int i, int rank, const int64_t *dims);
/* An index read from data, wrapped from [-dim, dim) into [0, dim); KILN_ERR_RUNTIME naming it and the axis
 * when it is outside. */
kiln_status op_wrap_index(int64_t index, int64_t dim, int axis, int64_t *wrapped);
/* Fails unless `t` holds exactly one value (a scalar input such as TopK's k); `what` names it. */
kiln_status op_require_one_value(const kiln_tensor *t, const char *what);
/* A shape function for ops whose output 0 has input 0's shape. */
kiln_status op_shape_like_input0(op_ctx *ctx);

/* Dtype lists for op_require_dtype. */
extern const kiln_dtype DTYPES_FLOAT[];       /* float32, float64 (float16 and bfloat16 kernels come later) */
extern const kiln_dtype DTYPES_NUMERIC[];     /* floats and all integer widths */
extern const kiln_dtype DTYPES_ALL[];         /* every non-string dtype incl. bool */
extern const kiln_dtype DTYPES_INDEX[];       /* int32, int64 */
extern const kiln_dtype DTYPES_BOOL[];

#endif
