/*
 * typecheck.c — resolving each node's operator and running its init: the load-time validation pass.
 *
 * Dtypes flow forward through the sorted graph: a node's init sees its inputs' dtypes and sets its outputs'.
 * A node that cannot be typed (unknown op, bad attribute, unsupported dtype) becomes an issue and its
 * outputs stay untyped; nodes downstream of it are still looked up — an unknown operator is reported
 * wherever it is — but their dtype checks are skipped, since they would only echo the first problem.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"
#include "ops/op.h"

#define MAX_NODE_ARITY 4096

static kiln_status report(graph_issues *issues, const graph *g, const graph_node *n, kiln_status status,
                          const char *message)
{
    char label[300], where[340];
    graph_node_label(g, n, label, sizeof label);
    snprintf(where, sizeof where, "%s, opset %d", label, n->opset);
    /* "label, opset 13" reads oddly after a closing parenthesis; fold it in */
    size_t len = strlen(label);
    if (len && label[len - 1] == ')') snprintf(where, sizeof where, "%.*s, opset %d)", (int)(len - 1), label, n->opset);
    return graph_issues_add(issues, status, where, message);
}

static kiln_status report_unknown_op(graph_issues *issues, const graph *g, const graph_node *n)
{
    char message[256];
    int lo = 0, hi = 0;
    const char *domain = n->domain[0] ? n->domain : "ai.onnx";
    if (n->opset == 0)
        snprintf(message, sizeof message, "the model does not import domain '%s'", domain);
    else if (op_known(n->domain, n->op_type, &lo, &hi))
        snprintf(message, sizeof message, "%s is implemented for %s opsets %d to %d, not %d", n->op_type, domain,
                 lo, hi, n->opset);
    else
        snprintf(message, sizeof message, "operator %s::%s is not implemented", domain, n->op_type);
    return report(issues, g, n, KILN_ERR_UNSUPPORTED, message);
}

/* A body input takes the type the node gives it unless the file declares one, which must then agree. */
static kiln_status bind_body_input(graph_value *v, const value_type *given)
{
    if (v->dtype == KILN_UNDEFINED) {
        v->kind = given->kind;
        v->elem_kind = given->elem_kind;
        v->key_dtype = given->key_dtype;
        v->dtype = given->dtype;
        return KILN_OK;
    }
    if (v->kind != given->kind || v->dtype != given->dtype)
        return kiln_fail(KILN_ERR_MALFORMED, "subgraph input '%s' is declared %s%s but receives %s%s", v->name,
                         v->kind == VALUE_TENSOR ? "" : "a non-tensor of ", kiln_dtype_name(v->dtype),
                         given->kind == VALUE_TENSOR ? "" : "a non-tensor of ", kiln_dtype_name(given->dtype));
    return KILN_OK;
}

static kiln_status type_subgraph(op_init_ctx *ctx, graph *body, int n_inputs, const value_type *inputs)
{
    graph_issues *issues = ctx->checker;
    const char *name = body->name[0] ? body->name : "(unnamed)";
    if (n_inputs != body->n_inputs)
        return kiln_fail(KILN_ERR_MALFORMED, "subgraph '%s' has %d inputs where %d are expected", name,
                         body->n_inputs, n_inputs);
    for (int i = 0; i < n_inputs; i++) KILN_TRY(bind_body_input(&body->values[body->inputs[i]], &inputs[i]));
    for (int c = 0; c < body->n_captures; c++) {
        graph_value *v = &body->values[body->captures[c]];
        int outer = graph_find_value(body->parent, v->name);
        if (outer < 0 || body->parent->values[outer].dtype == KILN_UNDEFINED)
            return kiln_fail(KILN_ERR_MALFORMED, "subgraph '%s' reads '%s', which has no type", name, v->name);
        const graph_value *o = &body->parent->values[outer];
        v->kind = o->kind;
        v->elem_kind = o->elem_kind;
        v->key_dtype = o->key_dtype;
        v->dtype = o->dtype;
    }
    kiln_status st = graph_check_and_sort(body);
    if (st != KILN_OK) return kiln_fail_prefix(st, "subgraph '%s'", name);
    int before = issues->count;
    KILN_TRY(graph_infer_types(body, issues));
    if (issues->count > before)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "subgraph '%s' has nodes kiln cannot run", name);
    for (int i = 0; i < body->n_outputs; i++)
        if (body->values[body->outputs[i]].dtype == KILN_UNDEFINED)
            return kiln_fail(KILN_ERR_MALFORMED, "subgraph '%s' output '%s' has no type", name,
                             body->values[body->outputs[i]].name);
    return KILN_OK;
}

static kiln_status init_node(graph *g, graph_node *n, graph_issues *issues)
{
    if (n->n_inputs > MAX_NODE_ARITY || n->n_outputs > MAX_NODE_ARITY)
        return report(issues, g, n, KILN_ERR_MALFORMED, "has too many inputs or outputs");
    kiln_dtype in_types[MAX_NODE_ARITY];
    const kiln_tensor *constants[MAX_NODE_ARITY];
    kiln_dtype out_types[MAX_NODE_ARITY];
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        in_types[k] = v >= 0 ? g->values[v].dtype : KILN_UNDEFINED;
        constants[k] = v >= 0 ? g->values[v].constant : NULL;
        if (v >= 0 && in_types[k] == KILN_UNDEFINED) return KILN_OK; /* upstream problem, already reported */
        if (v >= 0 && g->values[v].kind != VALUE_TENSOR && !(n->op->flags & OP_ANY_VALUE_KIND))
            return report(issues, g, n, KILN_ERR_UNSUPPORTED, "takes only tensors, not sequences or optionals");
    }
    value_kind out_kinds[MAX_NODE_ARITY], out_elem_kinds[MAX_NODE_ARITY];
    kiln_dtype out_key_dtypes[MAX_NODE_ARITY];
    for (int k = 0; k < n->n_outputs; k++) {
        out_types[k] = out_key_dtypes[k] = KILN_UNDEFINED;
        out_kinds[k] = out_elem_kinds[k] = VALUE_TENSOR;
    }
    void *params = n->op->params_size ? region_alloc(g->mem, 1, n->op->params_size) : NULL;
    if (n->op->params_size && !params) return KILN_ERR_OUT_OF_MEMORY;
    op_init_ctx ctx = {
        .graph = g,
        .node = n,
        .opset = n->opset,
        .n_inputs = n->n_inputs,
        .n_outputs = n->n_outputs,
        .input_dtypes = in_types,
        .constants = constants,
        .output_dtypes = out_types,
        .params = params,
        .mem = g->mem,
        .output_kinds = out_kinds,
        .output_elem_kinds = out_elem_kinds,
        .output_key_dtypes = out_key_dtypes,
        .type_subgraph = type_subgraph,
        .checker = issues,
    };
    kiln_clear_error();
    int issues_before = issues->count;
    kiln_status st = n->op->init ? n->op->init(&ctx) : KILN_OK;
    if (st == KILN_ERR_OUT_OF_MEMORY) return st;
    if (st != KILN_OK && issues->count > issues_before) return KILN_OK; /* its subgraph's nodes said why */
    if (st != KILN_OK) return report(issues, g, n, st, kiln_last_error());
    for (int k = 0; k < n->n_outputs; k++) {
        int v = n->outputs[k];
        if (v < 0) continue;
        if (out_types[k] == KILN_UNDEFINED)
            return report(issues, g, n, KILN_ERR_INTERNAL, "operator init left an output without a dtype");
        g->values[v].dtype = out_types[k];
        g->values[v].kind = out_kinds[k];
        g->values[v].elem_kind = out_elem_kinds[k];
        g->values[v].key_dtype = out_key_dtypes[k];
    }
    n->params = params;
    n->value_inputs = ctx.value_inputs;
    g->stats.prepacked_bytes += ctx.stats.prepacked_bytes;
    g->stats.trees += ctx.stats.trees;
    g->stats.tree_nodes += ctx.stats.tree_nodes;
    if (ctx.stats.tree_max_depth > g->stats.tree_max_depth) g->stats.tree_max_depth = ctx.stats.tree_max_depth;
    return KILN_OK;
}

kiln_status graph_init_node(graph *g, graph_node *n)
{
    graph_issues issues = {.mem = g->mem};
    kiln_status st = init_node(g, n, &issues);
    if (st == KILN_OK && issues.count) st = graph_issues_fail(&issues);
    graph_issues_free(&issues);
    return st;
}

kiln_status graph_infer_types(graph *g, graph_issues *issues)
{
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        n->op = op_lookup(n->domain, n->op_type, n->opset);
        if (!n->op) {
            KILN_TRY(report_unknown_op(issues, g, n));
            continue;
        }
        KILN_TRY(init_node(g, n, issues));
    }
    /* declared output dtypes must agree with what the nodes produce */
    for (int i = 0; i < g->n_outputs; i++) {
        const graph_value *v = &g->values[g->outputs[i]];
        if (v->producer < 0 || v->dtype == KILN_UNDEFINED || v->declared_dtype == KILN_UNDEFINED) continue;
        if (v->dtype != v->declared_dtype) {
            char message[256];
            snprintf(message, sizeof message, "produces %s for graph output '%s', which the model declares as %s",
                     kiln_dtype_name(v->dtype), v->name, kiln_dtype_name(v->declared_dtype));
            KILN_TRY(report(issues, g, &g->nodes[v->producer], KILN_ERR_MALFORMED, message));
        }
    }
    return KILN_OK;
}
