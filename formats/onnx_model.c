/*
 * onnx_model.c — ModelProto and GraphProto into kiln's graph IR.
 *
 * Protobuf lets fields arrive in any order and ONNX writers put opset_import after the graph, so the model
 * is read in two passes: the first collects opsets, functions and where the graph's bytes are; the second
 * builds the graph, knowing each node's opset.
 *
 * Model-local functions (ModelProto.functions) are inlined while nodes are read: a call expands into the
 * function's body with its formal inputs and outputs renamed to the caller's, its internal values given
 * names unique to the call, and attribute references (ref_attr_name) replaced by the caller's attributes.
 * Later passes therefore never see a function call.
 */
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "formats/onnx.h"
#include "formats/protobuf.h"

#define MAX_GRAPH_DEPTH 32    /* subgraphs inside subgraphs, and nested function calls */
#define MAX_ONNX_FUNCTIONS 4096

enum model_field { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3,
                   MODEL_MODEL_VERSION = 5, MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8, MODEL_FUNCTIONS = 25 };
enum graph_field { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_SPARSE_INITIALIZER = 15,
                   GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum node_field { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
                  NODE_DOMAIN = 7 };
enum function_field { FUNCTION_NAME = 1, FUNCTION_INPUT = 4, FUNCTION_OUTPUT = 5, FUNCTION_ATTRIBUTE = 6,
                      FUNCTION_NODE = 7, FUNCTION_OPSET_IMPORT = 9, FUNCTION_DOMAIN = 10,
                      FUNCTION_ATTRIBUTE_PROTO = 11 };
enum attr_field { ATTRF_NAME = 1, ATTRF_F = 2, ATTRF_I = 3, ATTRF_S = 4, ATTRF_T = 5, ATTRF_G = 6,
                  ATTRF_FLOATS = 7, ATTRF_INTS = 8, ATTRF_STRINGS = 9, ATTRF_TENSORS = 10, ATTRF_GRAPHS = 11,
                  ATTRF_TP = 14, ATTRF_TYPE_PROTOS = 15, ATTRF_TYPE = 20, ATTRF_REF_ATTR_NAME = 21,
                  ATTRF_SPARSE_TENSOR = 22, ATTRF_SPARSE_TENSORS = 23 };

typedef struct bytes_view {
    const uint8_t *data;
    size_t len;
} bytes_view;

/* A model-local function, kept as views of its protobuf fields until a call expands it. */
typedef struct onnx_function {
    const char *domain, *name;
    int n_inputs, n_outputs, n_nodes, n_opsets, n_defaults;
    const char **inputs, **outputs;
    bytes_view *nodes;
    onnx_opset *opsets;
    graph_attr *defaults; /* attribute_proto: defaults for attributes the caller leaves out */
} onnx_function;

typedef struct loader {
    region *mem;
    const uint8_t *base;
    onnx_external_files *files;
    onnx_stats *stats;
    onnx_function *functions;
    int n_functions;
    int calls; /* function expansions so far, to name their internal values uniquely */
} loader;

/* How names and opsets resolve while reading nodes: at top level names are taken as written; inside an
 * expanded function they are mapped to the caller's. */
typedef struct scope {
    const onnx_opset *opsets;
    int n_opsets;
    const onnx_function *fn; /* NULL at graph level */
    const char *prefix;      /* unique per call, for the function's internal names */
    const char *const *actual_inputs;
    int n_actual_inputs;
    const char *const *actual_outputs;
    int n_actual_outputs;
    const graph_node *caller; /* for ref_attr_name */
    int depth;
} scope;

static kiln_status read_graph(loader *ld, bytes_view bytes, const scope *sc, graph *g, int depth);
static kiln_status read_type(loader *ld, bytes_view type, graph *g, graph_value *value, int depth);

static const char *view_string(loader *ld, const pb_field *f)
{
    return region_strndup(ld->mem, (const char *)f->data, f->len);
}

static kiln_status expect_bytes(const pb_field *f, const char *what)
{
    if (!pb_field_is_bytes(f)) return kiln_fail(KILN_ERR_MALFORMED, "%s has the wrong wire type", what);
    return KILN_OK;
}

/* ---- opsets ------------------------------------------------------------------------------------------ */

static kiln_status read_opset(loader *ld, const pb_reader *parent, const pb_field *f, onnx_opset *out)
{
    KILN_TRY(expect_bytes(f, "opset_import"));
    pb_reader r = pb_sub(parent, f);
    pb_field e;
    int more;
    out->domain = "";
    out->version = 0;
    while ((more = pb_next(&r, &e)) > 0) {
        if (e.number == 1 && pb_field_is_bytes(&e)) out->domain = view_string(ld, &e);
        if (e.number == 2 && e.wire_type == PB_VARINT) out->version = (int64_t)e.varint;
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (!out->domain) return KILN_ERR_OUT_OF_MEMORY;
    if (strcmp(out->domain, "ai.onnx") == 0) out->domain = "";
    return KILN_OK;
}

static int opset_for(const scope *sc, const char *domain)
{
    if (strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0; i < sc->n_opsets; i++)
        if (strcmp(sc->opsets[i].domain, domain) == 0)
            return sc->opsets[i].version > 1000000 ? 1000000 : (int)sc->opsets[i].version;
    return 0;
}

/* ---- attributes -------------------------------------------------------------------------------------- */

static kiln_status read_attribute(loader *ld, const pb_reader *parent, const pb_field *field, graph *g,
                                  const scope *sc, int depth, graph_attr *a, const char **ref_attr_name)
{
    KILN_TRY(expect_bytes(field, "attribute"));
    pb_reader r = pb_sub(parent, field);
    pb_field f;
    int more;
    size_t n_floats = 0, n_ints = 0, n_strings = 0, n_tensors = 0, n_graphs = 0;
    bool seen[24] = {0};
    *ref_attr_name = NULL;
    a->name = "";
    /* pass 1: scalars, and sizes of the repeated fields */
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number < 24) seen[f.number] = true;
        switch (f.number) {
        case ATTRF_NAME:
            KILN_TRY(expect_bytes(&f, "attribute name"));
            if (!(a->name = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case ATTRF_REF_ATTR_NAME:
            KILN_TRY(expect_bytes(&f, "ref_attr_name"));
            if (!(*ref_attr_name = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case ATTRF_TYPE: a->type = (attr_type)(f.varint <= ATTR_TYPE_PROTOS ? f.varint : 0); break;
        case ATTRF_F: {
            uint32_t bits = (uint32_t)f.varint;
            if (f.wire_type != PB_FIXED32) return kiln_fail(KILN_ERR_MALFORMED, "attribute f is not a float");
            memcpy(&a->f, &bits, sizeof a->f);
            break;
        }
        case ATTRF_I: a->i = (int64_t)f.varint; break;
        case ATTRF_S:
            KILN_TRY(expect_bytes(&f, "attribute s"));
            if (!(a->s = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            a->s_len = f.len;
            break;
        case ATTRF_FLOATS:
            if (!pb_count_fixed(&f, 4, &n_floats)) return kiln_fail(KILN_ERR_MALFORMED, "bad floats attribute");
            break;
        case ATTRF_INTS:
            if (!pb_count_varints(&f, &n_ints)) return kiln_fail(KILN_ERR_MALFORMED, "bad ints attribute");
            break;
        case ATTRF_STRINGS: n_strings++; break;
        case ATTRF_TENSORS: n_tensors++; break;
        case ATTRF_GRAPHS: n_graphs++; break;
        default: break;
        }
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (a->type == ATTR_UNDEFINED) {
        /* very old writers leave out `type`: infer it from the field that is present */
        static const struct { int field; attr_type type; } by_field[] = {
            {ATTRF_F, ATTR_FLOAT},     {ATTRF_I, ATTR_INT},         {ATTRF_S, ATTR_STRING},
            {ATTRF_T, ATTR_TENSOR},    {ATTRF_G, ATTR_GRAPH},       {ATTRF_FLOATS, ATTR_FLOATS},
            {ATTRF_INTS, ATTR_INTS},   {ATTRF_STRINGS, ATTR_STRINGS}, {ATTRF_TENSORS, ATTR_TENSORS},
            {ATTRF_GRAPHS, ATTR_GRAPHS}};
        for (size_t i = 0; i < sizeof by_field / sizeof by_field[0]; i++)
            if (seen[by_field[i].field]) a->type = by_field[i].type;
    }
    if (*ref_attr_name) return KILN_OK; /* value comes from the caller */
    size_t n_list = a->type == ATTR_FLOATS    ? n_floats
                    : a->type == ATTR_INTS    ? n_ints
                    : a->type == ATTR_STRINGS ? n_strings
                    : a->type == ATTR_TENSORS ? n_tensors
                    : a->type == ATTR_GRAPHS  ? n_graphs
                                              : 0;
    if (n_list > (1u << 24)) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is too long", a->name);
    a->count = (int)n_list;
    if (a->type == ATTR_FLOATS && !(a->floats = region_alloc(ld->mem, n_list, sizeof *a->floats)))
        return KILN_ERR_OUT_OF_MEMORY;
    if (a->type == ATTR_INTS && !(a->ints = region_alloc(ld->mem, n_list, sizeof *a->ints)))
        return KILN_ERR_OUT_OF_MEMORY;
    if (a->type == ATTR_STRINGS && (!(a->strings = region_alloc(ld->mem, n_list, sizeof *a->strings)) ||
                                    !(a->string_lens = region_alloc(ld->mem, n_list, sizeof *a->string_lens))))
        return KILN_ERR_OUT_OF_MEMORY;
    if (a->type == ATTR_TENSORS && !(a->tensors = region_alloc(ld->mem, n_list, sizeof *a->tensors)))
        return KILN_ERR_OUT_OF_MEMORY;
    if (a->type == ATTR_GRAPHS && !(a->graphs = region_alloc(ld->mem, n_list, sizeof *a->graphs)))
        return KILN_ERR_OUT_OF_MEMORY;
    /* pass 2: the values of the field that matches the type */
    r = pb_sub(parent, field);
    size_t i_floats = 0, i_ints = 0, i_strings = 0, i_tensors = 0, i_graphs = 0;
    while (pb_next(&r, &f) > 0) {
        if (f.number == ATTRF_T && a->type == ATTR_TENSOR) {
            KILN_TRY(expect_bytes(&f, "attribute t"));
            KILN_TRY(onnx_read_tensor(f.data, f.len, ld->base, ld->mem, ld->files, ld->stats, &a->t, NULL));
        } else if ((f.number == ATTRF_G && a->type == ATTR_GRAPH) || (f.number == ATTRF_GRAPHS && a->type == ATTR_GRAPHS && !g)) {
            if (!g) return kiln_fail(KILN_ERR_UNSUPPORTED, "graph-valued function attribute defaults are not supported");
            KILN_TRY(expect_bytes(&f, "attribute g"));
            KILN_TRY(graph_create(ld->mem, g, &a->g));
            KILN_TRY(read_graph(ld, (bytes_view){f.data, f.len}, sc, a->g, depth + 1));
        } else if (f.number == ATTRF_TP && a->type == ATTR_TYPE_PROTO && g) {
            /* a TypeProto (Optional's `type`): read as the type of a value that is not in the graph */
            KILN_TRY(expect_bytes(&f, "attribute tp"));
            graph_value typed = {.name = a->name, .rank = -1};
            KILN_TRY(read_type(ld, (bytes_view){f.data, f.len}, g, &typed, 0));
            a->tp = (value_type){typed.kind, typed.elem_kind, typed.dtype, typed.key_dtype};
        } else if (f.number == ATTRF_FLOATS && a->type == ATTR_FLOATS) {
            if (!pb_read_fixed32(&f, (uint32_t *)a->floats, n_list, &i_floats))
                return kiln_fail(KILN_ERR_MALFORMED, "bad floats attribute");
        } else if (f.number == ATTRF_INTS && a->type == ATTR_INTS) {
            if (!pb_read_varints(&f, a->ints, n_list, &i_ints))
                return kiln_fail(KILN_ERR_MALFORMED, "bad ints attribute");
        } else if (f.number == ATTRF_STRINGS && a->type == ATTR_STRINGS) {
            KILN_TRY(expect_bytes(&f, "attribute strings"));
            if (!(a->strings[i_strings] = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            a->string_lens[i_strings++] = f.len;
        } else if (f.number == ATTRF_TENSORS && a->type == ATTR_TENSORS) {
            KILN_TRY(expect_bytes(&f, "attribute tensors"));
            KILN_TRY(onnx_read_tensor(f.data, f.len, ld->base, ld->mem, ld->files, ld->stats,
                                      &a->tensors[i_tensors++], NULL));
        } else if (f.number == ATTRF_GRAPHS && a->type == ATTR_GRAPHS) {
            KILN_TRY(expect_bytes(&f, "attribute graphs"));
            KILN_TRY(graph_create(ld->mem, g, &a->graphs[i_graphs]));
            KILN_TRY(read_graph(ld, (bytes_view){f.data, f.len}, sc, a->graphs[i_graphs++], depth + 1));
        }
    }
    if ((a->type == ATTR_TENSOR && !a->t) || (a->type == ATTR_GRAPH && !a->g))
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has no value", a->name);
    if (a->type == ATTR_STRING && !a->s) a->s = "";
    return KILN_OK;
}

/* ---- functions --------------------------------------------------------------------------------------- */

static kiln_status read_function(loader *ld, const pb_reader *parent, const pb_field *field, onnx_function *fn)
{
    KILN_TRY(expect_bytes(field, "function"));
    pb_reader r = pb_sub(parent, field);
    pb_field f;
    int more;
    fn->domain = fn->name = "";
    int n_in = 0, n_out = 0, n_nodes = 0, n_opsets = 0, n_defaults = 0;
    while ((more = pb_next(&r, &f)) > 0) {
        n_in += f.number == FUNCTION_INPUT;
        n_out += f.number == FUNCTION_OUTPUT;
        n_nodes += f.number == FUNCTION_NODE;
        n_opsets += f.number == FUNCTION_OPSET_IMPORT;
        n_defaults += f.number == FUNCTION_ATTRIBUTE_PROTO;
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    fn->inputs = region_alloc(ld->mem, (size_t)n_in + 1, sizeof *fn->inputs);
    fn->outputs = region_alloc(ld->mem, (size_t)n_out + 1, sizeof *fn->outputs);
    fn->nodes = region_alloc(ld->mem, (size_t)n_nodes + 1, sizeof *fn->nodes);
    fn->opsets = region_alloc(ld->mem, (size_t)n_opsets + 1, sizeof *fn->opsets);
    fn->defaults = region_alloc(ld->mem, (size_t)n_defaults + 1, sizeof *fn->defaults);
    if (!fn->inputs || !fn->outputs || !fn->nodes || !fn->opsets || !fn->defaults) return KILN_ERR_OUT_OF_MEMORY;
    r = pb_sub(parent, field);
    while (pb_next(&r, &f) > 0) {
        switch (f.number) {
        case FUNCTION_NAME:
            KILN_TRY(expect_bytes(&f, "function name"));
            if (!(fn->name = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case FUNCTION_DOMAIN:
            KILN_TRY(expect_bytes(&f, "function domain"));
            if (!(fn->domain = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case FUNCTION_INPUT:
            KILN_TRY(expect_bytes(&f, "function input"));
            if (!(fn->inputs[fn->n_inputs++] = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case FUNCTION_OUTPUT:
            KILN_TRY(expect_bytes(&f, "function output"));
            if (!(fn->outputs[fn->n_outputs++] = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            break;
        case FUNCTION_NODE:
            KILN_TRY(expect_bytes(&f, "function node"));
            fn->nodes[fn->n_nodes++] = (bytes_view){f.data, f.len};
            break;
        case FUNCTION_OPSET_IMPORT: KILN_TRY(read_opset(ld, &r, &f, &fn->opsets[fn->n_opsets++])); break;
        case FUNCTION_ATTRIBUTE_PROTO: {
            const char *ref;
            scope none = {0};
            KILN_TRY(read_attribute(ld, &r, &f, NULL, &none, 0, &fn->defaults[fn->n_defaults++], &ref));
            break;
        }
        default: break;
        }
    }
    return KILN_OK;
}

static const onnx_function *find_function(const loader *ld, const char *domain, const char *name)
{
    for (int i = 0; i < ld->n_functions; i++)
        if (strcmp(ld->functions[i].name, name) == 0 && strcmp(ld->functions[i].domain, domain) == 0)
            return &ld->functions[i];
    return NULL;
}

/* The graph-level name for a name written inside the current scope. */
static const char *map_name(loader *ld, const scope *sc, const char *name)
{
    if (!sc->fn || !name[0]) return name;
    for (int i = 0; i < sc->fn->n_inputs; i++)
        if (strcmp(sc->fn->inputs[i], name) == 0) return i < sc->n_actual_inputs ? sc->actual_inputs[i] : "";
    for (int i = 0; i < sc->fn->n_outputs; i++)
        if (strcmp(sc->fn->outputs[i], name) == 0) return i < sc->n_actual_outputs ? sc->actual_outputs[i] : "";
    return region_printf(ld->mem, "%s%s", sc->prefix, name);
}

/* ---- nodes ------------------------------------------------------------------------------------------- */

typedef struct node_text {
    const char *name, *op_type, *domain;
    int n_inputs, n_outputs, n_attrs;
    const char **inputs, **outputs; /* already mapped to graph-level names */
} node_text;

static kiln_status read_node_text(loader *ld, pb_reader r, const scope *sc, node_text *nt)
{
    pb_field f;
    int more;
    pb_reader scan = r;
    memset(nt, 0, sizeof *nt);
    nt->name = nt->op_type = nt->domain = "";
    while ((more = pb_next(&scan, &f)) > 0) {
        nt->n_inputs += f.number == NODE_INPUT;
        nt->n_outputs += f.number == NODE_OUTPUT;
        nt->n_attrs += f.number == NODE_ATTRIBUTE;
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    nt->inputs = region_alloc(ld->mem, (size_t)nt->n_inputs + 1, sizeof *nt->inputs);
    nt->outputs = region_alloc(ld->mem, (size_t)nt->n_outputs + 1, sizeof *nt->outputs);
    if (!nt->inputs || !nt->outputs) return KILN_ERR_OUT_OF_MEMORY;
    int i_in = 0, i_out = 0;
    while (pb_next(&r, &f) > 0) {
        const char *text;
        switch (f.number) {
        case NODE_INPUT:
        case NODE_OUTPUT:
        case NODE_NAME:
        case NODE_OP_TYPE:
        case NODE_DOMAIN:
            KILN_TRY(expect_bytes(&f, "node field"));
            if (!(text = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
            if (f.number == NODE_INPUT) nt->inputs[i_in++] = text;
            else if (f.number == NODE_OUTPUT) nt->outputs[i_out++] = text;
            else if (f.number == NODE_NAME) nt->name = text;
            else if (f.number == NODE_OP_TYPE) nt->op_type = text;
            else nt->domain = strcmp(text, "ai.onnx") == 0 ? "" : text;
            break;
        default: break;
        }
    }
    for (int i = 0; i < nt->n_inputs; i++)
        if (!(nt->inputs[i] = map_name(ld, sc, nt->inputs[i]))) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < nt->n_outputs; i++)
        if (!(nt->outputs[i] = map_name(ld, sc, nt->outputs[i]))) return KILN_ERR_OUT_OF_MEMORY;
    if (sc->fn && nt->name[0] && !(nt->name = region_printf(ld->mem, "%s%s", sc->prefix, nt->name)))
        return KILN_ERR_OUT_OF_MEMORY;
    if (!nt->op_type[0]) return kiln_fail(KILN_ERR_MALFORMED, "node '%s' has no op_type", nt->name);
    return KILN_OK;
}

/* The caller's attribute that `ref` refers to, or the function's default for it, or NULL. */
static const graph_attr *resolve_attr_ref(const scope *sc, const char *ref)
{
    if (sc->caller) {
        const graph_attr *a = graph_node_attr(sc->caller, ref);
        if (a) return a;
    }
    for (int i = 0; sc->fn && i < sc->fn->n_defaults; i++)
        if (strcmp(sc->fn->defaults[i].name, ref) == 0) return &sc->fn->defaults[i];
    return NULL;
}

static kiln_status add_node(loader *ld, bytes_view bytes, const scope *sc, graph *g, int depth);

static kiln_status expand_function(loader *ld, const onnx_function *fn, const node_text *nt,
                                   const graph_node *call, const scope *sc, graph *g, int depth)
{
    if (sc->depth >= MAX_GRAPH_DEPTH)
        return kiln_fail(KILN_ERR_MALFORMED, "functions nest deeper than %d calls (recursive?)", MAX_GRAPH_DEPTH);
    scope inner = {
        .opsets = fn->opsets,
        .n_opsets = fn->n_opsets,
        .fn = fn,
        .prefix = region_printf(ld->mem, "%s/%s#%d/", nt->name[0] ? nt->name : fn->name, fn->name, ld->calls++),
        .actual_inputs = nt->inputs,
        .n_actual_inputs = nt->n_inputs,
        .actual_outputs = nt->outputs,
        .n_actual_outputs = nt->n_outputs,
        .caller = call,
        .depth = sc->depth + 1,
    };
    if (!inner.prefix) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < fn->n_nodes; i++) KILN_TRY(add_node(ld, fn->nodes[i], &inner, g, depth));
    return KILN_OK;
}

static kiln_status bind_node_values(graph *g, graph_node *n, const node_text *nt)
{
    for (int i = 0; i < nt->n_inputs; i++)
        if (nt->inputs[i][0]) KILN_TRY(graph_intern_value(g, nt->inputs[i], &n->inputs[i]));
    for (int i = 0; i < nt->n_outputs; i++) {
        if (!nt->outputs[i][0]) continue;
        int v;
        KILN_TRY(graph_intern_value(g, nt->outputs[i], &v));
        graph_value *value = &g->values[v];
        if (value->producer >= 0 || value->constant || value->is_input)
            return kiln_fail(KILN_ERR_MALFORMED, "value '%s' is defined more than once", value->name);
        value->producer = (int)(n - g->nodes);
        n->outputs[i] = v;
    }
    return KILN_OK;
}

static kiln_status add_node(loader *ld, bytes_view bytes, const scope *sc, graph *g, int depth)
{
    pb_reader r = pb_reader_init(bytes.data, bytes.len, ld->base);
    node_text nt;
    KILN_TRY(read_node_text(ld, r, sc, &nt));
    int index;
    KILN_TRY(graph_add_node(g, nt.n_inputs, nt.n_outputs, nt.n_attrs, &index));
    graph_node *n = &g->nodes[index];
    n->name = nt.name;
    n->op_type = nt.op_type;
    n->domain = nt.domain;
    n->opset = opset_for(sc, nt.domain);
    /* attributes (read before values so a function call can consult them) */
    pb_field f;
    int n_attrs = 0;
    while (pb_next(&r, &f) > 0) {
        if (f.number != NODE_ATTRIBUTE) continue;
        graph_attr a = {0};
        const char *ref;
        kiln_status st = read_attribute(ld, &r, &f, g, sc, depth, &a, &ref);
        if (st != KILN_OK) return kiln_fail_prefix(st, "node '%s' (%s)", nt.name, nt.op_type);
        if (ref) {
            const graph_attr *given = resolve_attr_ref(sc, ref);
            if (!given) continue; /* the caller left it out: the op's default applies */
            const char *own_name = a.name;
            a = *given;
            a.name = own_name;
        }
        n = &g->nodes[index]; /* reading a subgraph may not move nodes of g, but stay safe */
        n->attrs[n_attrs++] = a;
    }
    n = &g->nodes[index];
    n->n_attrs = n_attrs;
    const onnx_function *fn = find_function(ld, nt.domain, nt.op_type);
    if (fn) {
        /* the call node only carried the attributes; its body replaces it */
        graph_node call = *n;
        g->n_nodes--;
        return expand_function(ld, fn, &nt, &call, sc, g, depth);
    }
    kiln_status st = bind_node_values(g, &g->nodes[index], &nt);
    for (int i = 0; i < n_attrs && st == KILN_OK; i++) {
        const graph_attr *a = &g->nodes[index].attrs[i];
        if (a->type == ATTR_GRAPH) st = graph_add_captures(g, index, a->g);
        for (int k = 0; a->type == ATTR_GRAPHS && k < a->count && st == KILN_OK; k++)
            st = graph_add_captures(g, index, a->graphs[k]);
    }
    if (st != KILN_OK) return kiln_fail_prefix(st, "node '%s' (%s)", nt.name, nt.op_type);
    return KILN_OK;
}

/* ---- value infos (graph inputs and outputs) ---------------------------------------------------------- */

static kiln_status read_tensor_type(loader *ld, pb_reader r, graph *g, graph_value *v)
{
    pb_field f;
    int more;
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number == 1 && f.wire_type == PB_VARINT) {
            if (f.varint != 0 && !dtype_is_known((int)f.varint))
                return kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s' has unknown elem_type %llu", v->name,
                                 (unsigned long long)f.varint);
            v->dtype = (kiln_dtype)f.varint;
        } else if (f.number == 2 && pb_field_is_bytes(&f)) {
            pb_reader shape = pb_sub(&r, &f);
            pb_field d;
            int rank = 0;
            while ((more = pb_next(&shape, &d)) > 0) {
                if (d.number != 1 || !pb_field_is_bytes(&d)) continue;
                if (rank >= KILN_MAX_RANK)
                    return kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s' has rank above kiln's maximum of %d",
                                     v->name, KILN_MAX_RANK);
                pb_reader dim = pb_sub(&shape, &d);
                pb_field e;
                v->dims[rank] = -1;
                v->sym[rank] = GRAPH_NO_SYMBOL;
                while ((more = pb_next(&dim, &e)) > 0) {
                    if (e.number == 1 && e.wire_type == PB_VARINT) {
                        if ((int64_t)e.varint < 0)
                            return kiln_fail(KILN_ERR_MALFORMED, "value '%s' has negative dim", v->name);
                        v->dims[rank] = (int64_t)e.varint;
                    } else if (e.number == 2 && pb_field_is_bytes(&e) && e.len) {
                        const char *param = view_string(ld, &e);
                        if (!param) return KILN_ERR_OUT_OF_MEMORY;
                        KILN_TRY(graph_intern_symbol(g, param, &v->sym[rank]));
                    }
                }
                if (more < 0) return KILN_ERR_MALFORMED;
                if (v->dims[rank] >= 0) v->sym[rank] = GRAPH_NO_SYMBOL;
                rank++;
            }
            if (more < 0) return KILN_ERR_MALFORMED;
            v->rank = rank;
        }
    }
    return more < 0 ? KILN_ERR_MALFORMED : KILN_OK;
}

/* The elem_type of a TypeProto.Tensor inside a sequence or optional: the value's (element) dtype. */
static kiln_status read_element_dtype(pb_reader r, graph_value *v)
{
    pb_field f;
    int more;
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number != 1 || f.wire_type != PB_VARINT) continue;
        if (f.varint != 0 && !dtype_is_known((int)f.varint))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s' has unknown elem_type %llu", v->name,
                             (unsigned long long)f.varint);
        v->dtype = (kiln_dtype)f.varint;
    }
    return more < 0 ? KILN_ERR_MALFORMED : KILN_OK;
}

/* Reads a TypeProto into value v: its kind, and the element type of tensors. Sequences and optionals
 * nest (TypeProto.Sequence and .Optional hold an elem_type TypeProto, field 1): a sequence's elements
 * give its dtype, an optional's element gives its elem_kind and dtype; a map (alone or as a sequence's
 * element) gives key_dtype and, through its value type, dtype. Elements' shapes are not kept. */
static kiln_status read_type(loader *ld, bytes_view type, graph *g, graph_value *value, int depth)
{
    if (depth > 2) return kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s' nests types too deeply", value->name);
    pb_reader tr = pb_reader_init(type.data, type.len, ld->base);
    pb_field f, e;
    int more;
    while ((more = pb_next(&tr, &f)) > 0) {
        if (!pb_field_is_bytes(&f)) continue;
        value_kind kind;
        switch (f.number) {
        case 1: kind = VALUE_TENSOR; break;
        case 4: kind = VALUE_SEQUENCE; break;
        case 5: kind = VALUE_MAP; break;
        case 8: kind = VALUE_SPARSE; break;
        case 9: kind = VALUE_OPTIONAL; break;
        default: continue;
        }
        if (depth == 0) value->kind = kind;
        else if (depth == 1 && (value->kind == VALUE_OPTIONAL || kind == VALUE_MAP)) value->elem_kind = kind;
        if (kind == VALUE_TENSOR) {
            if (depth == 0) KILN_TRY(read_tensor_type(ld, pb_sub(&tr, &f), g, value));
            else KILN_TRY(read_element_dtype(pb_sub(&tr, &f), value));
            continue;
        }
        if (kind != VALUE_SEQUENCE && kind != VALUE_OPTIONAL && kind != VALUE_MAP) continue;
        /* Sequence and Optional: elem_type 1; Map: key_type 1 (a dtype number), value_type 2 */
        pb_reader inner = pb_sub(&tr, &f);
        while ((more = pb_next(&inner, &e)) > 0) {
            if (kind == VALUE_MAP && e.number == 1 && e.wire_type == PB_VARINT)
                value->key_dtype = dtype_is_known((int)e.varint) ? (kiln_dtype)e.varint : KILN_UNDEFINED;
            else if (e.number == (kind == VALUE_MAP ? 2u : 1u) && pb_field_is_bytes(&e))
                KILN_TRY(read_type(ld, (bytes_view){e.data, e.len}, g, value, depth + 1));
        }
        if (more < 0) return KILN_ERR_MALFORMED;
    }
    return more < 0 ? KILN_ERR_MALFORMED : KILN_OK;
}

/* Reads a ValueInfoProto into the value it names. */
static kiln_status read_value_info(loader *ld, const pb_reader *parent, const pb_field *field, graph *g,
                                   const scope *sc, int *index)
{
    KILN_TRY(expect_bytes(field, "value info"));
    pb_reader r = pb_sub(parent, field);
    pb_field f;
    int more;
    const char *name = NULL;
    bytes_view type = {0};
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number == 1 && pb_field_is_bytes(&f) && !(name = view_string(ld, &f))) return KILN_ERR_OUT_OF_MEMORY;
        if (f.number == 2 && pb_field_is_bytes(&f)) type = (bytes_view){f.data, f.len};
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (!name || !name[0]) return kiln_fail(KILN_ERR_MALFORMED, "graph input or output without a name");
    if (!(name = map_name(ld, sc, name))) return KILN_ERR_OUT_OF_MEMORY;
    KILN_TRY(graph_intern_value(g, name, index));
    return read_type(ld, type, g, &g->values[*index], 0);
}

/* Unnamed free dims of graph inputs get a symbol of their own ("x_dim0"), so every free dim can be probed
 * and reported. */
static kiln_status name_free_dims(graph *g, graph_value *v)
{
    for (int d = 0; d < v->rank; d++) {
        if (v->dims[d] >= 0 || v->sym[d] != GRAPH_NO_SYMBOL) continue;
        const char *name = region_printf(g->mem, "%s_dim%d", v->name, d);
        if (!name) return KILN_ERR_OUT_OF_MEMORY;
        int id;
        KILN_TRY(graph_intern_symbol(g, name, &id));
        g->values[v - g->values].sym[d] = id;
    }
    return KILN_OK;
}

/* ---- graphs ------------------------------------------------------------------------------------------ */

static kiln_status read_graph(loader *ld, bytes_view bytes, const scope *sc, graph *g, int depth)
{
    if (depth > MAX_GRAPH_DEPTH) return kiln_fail(KILN_ERR_MALFORMED, "subgraphs nest deeper than %d", MAX_GRAPH_DEPTH);
    pb_reader r = pb_reader_init(bytes.data, bytes.len, ld->base);
    pb_field f;
    int more, n_inputs = 0, n_outputs = 0;
    /* pass 1: name, initializers, and counts */
    while ((more = pb_next(&r, &f)) > 0) {
        if (f.number == GRAPH_NAME && pb_field_is_bytes(&f) && !(g->name = view_string(ld, &f)))
            return KILN_ERR_OUT_OF_MEMORY;
        n_inputs += f.number == GRAPH_INPUT;
        n_outputs += f.number == GRAPH_OUTPUT;
        if (f.number == GRAPH_SPARSE_INITIALIZER)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "sparse initializers are not supported");
        if (f.number == GRAPH_INITIALIZER) {
            KILN_TRY(expect_bytes(&f, "initializer"));
            kiln_tensor *t;
            const char *name;
            KILN_TRY(onnx_read_tensor(f.data, f.len, ld->base, ld->mem, ld->files, ld->stats, &t, &name));
            if (!name[0]) return kiln_fail(KILN_ERR_MALFORMED, "initializer without a name");
            int v;
            KILN_TRY(graph_intern_value(g, name, &v));
            if (g->values[v].constant) return kiln_fail(KILN_ERR_MALFORMED, "initializer '%s' appears twice", name);
            g->values[v].constant = t;
            g->values[v].dtype = t->dtype;
            g->values[v].rank = t->rank;
            for (int d = 0; d < t->rank; d++) g->values[v].dims[d] = t->dims[d];
            ld->stats->initializers++;
        }
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    g->inputs = region_alloc(ld->mem, (size_t)n_inputs + 1, sizeof *g->inputs);
    g->outputs = region_alloc(ld->mem, (size_t)n_outputs + 1, sizeof *g->outputs);
    if (!g->inputs || !g->outputs) return KILN_ERR_OUT_OF_MEMORY;
    /* pass 2: inputs (an input that is also an initializer is a constant with a default; it stays a
     * constant, as onnxruntime treats it unless overridden) */
    r = pb_reader_init(bytes.data, bytes.len, ld->base);
    while (pb_next(&r, &f) > 0) {
        if (f.number != GRAPH_INPUT) continue;
        int v;
        const kiln_tensor *constant;
        scope top = *sc;
        top.fn = NULL;
        KILN_TRY(read_value_info(ld, &r, &f, g, &top, &v));
        constant = g->values[v].constant;
        if (constant) {
            g->values[v].dtype = constant->dtype;
            g->values[v].rank = constant->rank;
            for (int d = 0; d < constant->rank; d++) g->values[v].dims[d] = constant->dims[d], g->values[v].sym[d] = -1;
            continue;
        }
        if (g->values[v].is_input) return kiln_fail(KILN_ERR_MALFORMED, "input '%s' is listed twice", g->values[v].name);
        g->values[v].is_input = true;
        KILN_TRY(name_free_dims(g, &g->values[v]));
        g->inputs[g->n_inputs++] = v;
    }
    /* pass 3: nodes */
    r = pb_reader_init(bytes.data, bytes.len, ld->base);
    while (pb_next(&r, &f) > 0) {
        if (f.number != GRAPH_NODE) continue;
        KILN_TRY(expect_bytes(&f, "node"));
        KILN_TRY(add_node(ld, (bytes_view){f.data, f.len}, sc, g, depth));
    }
    /* pass 4: outputs, with their declared types kept for checking against inference */
    r = pb_reader_init(bytes.data, bytes.len, ld->base);
    while (pb_next(&r, &f) > 0) {
        if (f.number != GRAPH_OUTPUT) continue;
        scope top = *sc;
        top.fn = NULL;
        graph_value saved = {0};
        int v = -1;
        KILN_TRY(expect_bytes(&f, "graph output"));
        /* the declaration must not overwrite what nodes or initializers define: read it into a scratch copy */
        pb_reader vr = pb_sub(&r, &f);
        pb_field nf;
        const char *name = NULL;
        while (pb_next(&vr, &nf) > 0)
            if (nf.number == 1 && pb_field_is_bytes(&nf) && !(name = view_string(ld, &nf))) return KILN_ERR_OUT_OF_MEMORY;
        if (!name || !name[0]) return kiln_fail(KILN_ERR_MALFORMED, "graph output without a name");
        int existing = graph_find_value(g, name);
        if (existing >= 0) saved = g->values[existing];
        KILN_TRY(read_value_info(ld, &r, &f, g, &top, &v));
        graph_value *value = &g->values[v];
        if (existing >= 0 && (saved.producer >= 0 || saved.constant || saved.is_input)) {
            /* keep the defining side's facts; the declaration is checked against them after inference */
            kiln_dtype declared = value->dtype;
            graph_value declared_value = *value;
            *value = saved;
            value->kind = declared_value.kind;
            value->elem_kind = declared_value.elem_kind;
            value->key_dtype = declared_value.key_dtype;
            /* a body's declared output shape is all that says what a Loop that never runs stacks */
            if (g->parent && value->rank < 0) {
                value->rank = declared_value.rank;
                memcpy(value->dims, declared_value.dims, sizeof value->dims);
                memcpy(value->sym, declared_value.sym, sizeof value->sym);
            }
            value->declared_dtype = declared;
        } else {
            value->declared_dtype = value->dtype;
        }
        value->is_output = true;
        g->outputs[g->n_outputs++] = v;
    }
    return KILN_OK;
}

kiln_status onnx_read_model(const uint8_t *data, size_t size, region *mem, onnx_external_files *files,
                            onnx_model *model)
{
    memset(model, 0, sizeof *model);
    loader ld = {.mem = mem, .base = data, .files = files, .stats = &model->stats};
    pb_reader r = pb_reader_init(data, size, data);
    pb_field f;
    int more;
    bytes_view graph_bytes = {0};
    bool has_graph = false;
    model->producer_name = model->producer_version = "";
    while ((more = pb_next(&r, &f)) > 0) {
        switch (f.number) {
        case MODEL_IR_VERSION: model->ir_version = (int64_t)f.varint; break;
        case MODEL_MODEL_VERSION: model->model_version = (int64_t)f.varint; break;
        case MODEL_PRODUCER_NAME:
        case MODEL_PRODUCER_VERSION: {
            KILN_TRY(expect_bytes(&f, "producer"));
            const char *s = view_string(&ld, &f);
            if (!s) return KILN_ERR_OUT_OF_MEMORY;
            if (f.number == MODEL_PRODUCER_NAME) model->producer_name = s;
            else model->producer_version = s;
            break;
        }
        case MODEL_GRAPH:
            KILN_TRY(expect_bytes(&f, "graph"));
            graph_bytes = (bytes_view){f.data, f.len};
            has_graph = true;
            break;
        case MODEL_OPSET_IMPORT: model->n_opsets++; break;
        case MODEL_FUNCTIONS: ld.n_functions++; break;
        default: break;
        }
    }
    if (more < 0) return KILN_ERR_MALFORMED;
    if (!has_graph) return kiln_fail(KILN_ERR_MALFORMED, "not an ONNX model: no graph");
    if (ld.n_functions > MAX_ONNX_FUNCTIONS) return kiln_fail(KILN_ERR_MALFORMED, "too many functions");
    model->opsets = region_alloc(mem, (size_t)model->n_opsets + 1, sizeof *model->opsets);
    ld.functions = region_alloc(mem, (size_t)ld.n_functions + 1, sizeof *ld.functions);
    if (!model->opsets || !ld.functions) return KILN_ERR_OUT_OF_MEMORY;
    int i_opset = 0, i_function = 0;
    r = pb_reader_init(data, size, data);
    while (pb_next(&r, &f) > 0) {
        if (f.number == MODEL_OPSET_IMPORT) KILN_TRY(read_opset(&ld, &r, &f, &model->opsets[i_opset++]));
        if (f.number == MODEL_FUNCTIONS) {
            kiln_status st = read_function(&ld, &r, &f, &ld.functions[i_function++]);
            if (st != KILN_OK) return kiln_fail_prefix(st, "function %d", i_function - 1);
        }
    }
    model->n_functions = ld.n_functions;
    if (model->n_opsets == 0) {
        /* IR version 1-2 models predate opset_import and mean ai.onnx version 1 */
        model->opsets[0] = (onnx_opset){"", 1};
        model->n_opsets = 1;
    }
    KILN_TRY(graph_create(mem, NULL, &model->graph));
    scope top = {.opsets = model->opsets, .n_opsets = model->n_opsets};
    return read_graph(&ld, graph_bytes, &top, model->graph, 0);
}
