/*
 * fuse_transformer.c — load-time fusion of the subgraphs exporters spell out for transformer blocks, so each
 * runs as one operator over its data instead of a chain of elementwise passes:
 *
 *   LayerNorm   ReduceMean(x) -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul gamma -> Add beta
 *               (PyTorch's LayerNorm below opset 17)   =>   LayerNormalization (ONNX opset 17), axis -1
 *   GELU (erf)  x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5   (or x * (1/sqrt(2)))   =>   ai.kiln::Gelu
 *   GELU (tanh) (x + 0.044715 x^3) * sqrt(2/pi) -> Tanh -> + 1 -> * x -> * 0.5, x^3 as Pow or x * (x * x)
 *               =>   ai.kiln::Gelu, approximate "tanh"
 *   linear      MatMul(x, W) -> Add b, W constant [K,N], b constant [N]   =>   ai.kiln::MatMulBias
 *   attention   MatMul(Q, K^T) [-> / c or * c] [-> + mask] -> Softmax(last axis) -> MatMul(., V), all rank 4
 *               =>   ai.kiln::Attention(Q, K^T, V[, mask], scale), which keeps one block of scores at a time
 *
 * A pattern matches only when every intermediate value is read by the pattern alone (and is no graph
 * output), its constants have the values the formula needs, the normalised axis is the last, and the result
 * has the shape the fused operator gives. The last node of the pattern is rewritten in place into the fused
 * node — its position in the topological order is valid, since the fused node reads only values the
 * pattern's nodes read — and the others are removed. The fused operators compute the same formula in
 * float32 (LayerNormalization's moments in double), so results differ from the unfused graph by rounding
 * only; tests/unit/test_fuse_transformer.c checks each pattern against the graph it replaces.
 *
 * Runs after constant folding (weights behind Identity or Cast nodes are constants by then), on the top
 * graph only.
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"
#include "ops/op.h"

/* ---- reading the graph ------------------------------------------------------------------------------- */

static graph_node *producer_of(graph *g, int v)
{
    if (v < 0 || g->values[v].producer < 0) return NULL;
    graph_node *n = &g->nodes[g->values[v].producer];
    return n->removed ? NULL : n;
}

static bool is_op(const graph_node *n, const char *op_type)
{
    return n && !n->removed && n->domain[0] == '\0' && strcmp(n->op_type, op_type) == 0 && n->op;
}

/* The live nodes reading value v, at most `max` of them; returns how many there are (possibly more). */
static int consumers_of(graph *g, int v, graph_node **out, int max)
{
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) {
                if (count < max) out[count] = n;
                count++;
                break;
            }
    }
    return count;
}

/* The node that alone reads v (an intermediate of a pattern), or NULL. */
static graph_node *sole_consumer(graph *g, int v)
{
    graph_node *n;
    if (g->values[v].is_output || consumers_of(g, v, &n, 1) != 1) return NULL;
    return n;
}

/* Whether the pattern's result has x's rank: a one-element constant of higher rank than x (say [1, 1] with x
 * [N]) broadcasts the unfused result to more dims, which the fused operator would not. */
static bool keeps_rank(const graph *g, int x, int result)
{
    return g->values[x].rank >= 0 && g->values[result].rank == g->values[x].rank;
}

/* Value v as a float32 scalar constant (any shape of one element). */
static bool scalar_constant(const graph *g, int v, float *out)
{
    const kiln_tensor *t = v >= 0 ? g->values[v].constant : NULL;
    if (!t || t->dtype != KILN_FLOAT32 || tensor_numel(t) != 1 || !t->data) return false;
    *out = *(const float *)t->data;
    return true;
}

static bool near(float value, double want) { return fabs((double)value - want) <= 1e-6 * fabs(want); }

/* For a binary node with one input `v`: the index of its other input, or -1. */
static int other_input(const graph_node *n, int v)
{
    if (n->n_inputs != 2) return -1;
    if (n->inputs[0] == v) return n->inputs[1];
    if (n->inputs[1] == v) return n->inputs[0];
    return -1;
}

/* A ReduceMean over the last axis of x only, keeping dims. */
static bool reduces_last_axis(const graph *g, const graph_node *n, int x)
{
    int rank = g->values[x].rank;
    const graph_attr *keep = graph_node_attr(n, "keepdims");
    if (keep && keep->i != 1) return false;
    const graph_attr *axes = graph_node_attr(n, "axes");
    int64_t axis;
    if (axes && axes->count == 1 && axes->ints) axis = axes->ints[0];
    else if (!axes && n->n_inputs == 2 && n->inputs[1] >= 0) {
        const kiln_tensor *t = g->values[n->inputs[1]].constant;
        if (!t || t->dtype != KILN_INT64 || tensor_numel(t) != 1 || !t->data) return false;
        axis = *(const int64_t *)t->data;
    } else return false;
    return axis == -1 || (rank > 0 && axis == rank - 1);
}

/* A float32 constant of rank <= 1: a LayerNormalization scale or bias along the last axis. */
static bool is_affine_constant(const graph *g, int v)
{
    const kiln_tensor *t = v >= 0 ? g->values[v].constant : NULL;
    return t && t->dtype == KILN_FLOAT32 && t->rank <= 1;
}

/* ---- rewriting --------------------------------------------------------------------------------------- */

/* Turns `n` into (domain, op_type) at `opset` reading `inputs`, with float attributes `attrs`, and runs its
 * operator's init. The removed nodes' values stay in the table, unused. */
static kiln_status rewrite_node(graph *g, graph_node *n, const char *domain, const char *op_type, int opset,
                                const int *inputs, int n_inputs, const graph_attr *attrs, int n_attrs)
{
    int *in = region_alloc(g->mem, (size_t)n_inputs, sizeof *in);
    graph_attr *at = n_attrs ? region_alloc(g->mem, (size_t)n_attrs, sizeof *at) : NULL;
    if (!in || (n_attrs && !at)) return KILN_ERR_OUT_OF_MEMORY;
    memcpy(in, inputs, (size_t)n_inputs * sizeof *in);
    if (n_attrs) memcpy(at, attrs, (size_t)n_attrs * sizeof *at);
    n->domain = domain, n->op_type = op_type, n->opset = opset;
    n->inputs = in, n->n_inputs = n_inputs, n->n_implicit_inputs = 0;
    n->attrs = at, n->n_attrs = n_attrs;
    n->op = op_lookup(domain, op_type, opset);
    if (!n->op) return kiln_fail(KILN_ERR_INTERNAL, "fused operator %s is not registered", op_type);
    return graph_init_node(g, n);
}

/* Removes the pattern's other nodes (NULL entries are parts a pattern did not have). */
static void remove_nodes(graph_node *const *nodes, int count)
{
    for (int i = 0; i < count; i++)
        if (nodes[i]) nodes[i]->removed = true;
}

/* ---- LayerNorm --------------------------------------------------------------------------------------- */

/* Matches the chain from `mean` (the first ReduceMean); on success rewrites it and sets *fused. */
static kiln_status fuse_layernorm(graph *g, graph_node *mean, bool *fused)
{
    int x = mean->inputs[0];
    if (g->values[x].dtype != KILN_FLOAT32 || !reduces_last_axis(g, mean, x)) return KILN_OK;
    graph_node *sub = sole_consumer(g, mean->outputs[0]);
    if (!is_op(sub, "Sub") || sub->inputs[0] != x || sub->inputs[1] != mean->outputs[0]) return KILN_OK;
    int centred = sub->outputs[0];
    graph_node *readers[2];
    if (g->values[centred].is_output || consumers_of(g, centred, readers, 2) != 2) return KILN_OK;
    graph_node *pow = is_op(readers[0], "Pow") ? readers[0] : readers[1];
    graph_node *div = pow == readers[0] ? readers[1] : readers[0];
    float exponent, epsilon;
    if (!is_op(pow, "Pow") || pow->inputs[0] != centred || !scalar_constant(g, pow->inputs[1], &exponent) ||
        exponent != 2.0f)
        return KILN_OK;
    graph_node *var = sole_consumer(g, pow->outputs[0]);
    if (!is_op(var, "ReduceMean") || !reduces_last_axis(g, var, x)) return KILN_OK;
    graph_node *add_eps = sole_consumer(g, var->outputs[0]);
    if (!is_op(add_eps, "Add") || !scalar_constant(g, other_input(add_eps, var->outputs[0]), &epsilon) ||
        !(epsilon >= 0))
        return KILN_OK;
    graph_node *sqrt = sole_consumer(g, add_eps->outputs[0]);
    if (!is_op(sqrt, "Sqrt") || sole_consumer(g, sqrt->outputs[0]) != div) return KILN_OK;
    if (!is_op(div, "Div") || div->inputs[0] != centred || div->inputs[1] != sqrt->outputs[0]) return KILN_OK;
    graph_node *mul = sole_consumer(g, div->outputs[0]);
    int gamma = is_op(mul, "Mul") ? other_input(mul, div->outputs[0]) : -1;
    if (!is_affine_constant(g, gamma)) return KILN_OK;
    graph_node *add_beta = sole_consumer(g, mul->outputs[0]);
    int beta = is_op(add_beta, "Add") ? other_input(add_beta, mul->outputs[0]) : -1;
    if (!is_affine_constant(g, beta) || !keeps_rank(g, x, add_beta->outputs[0])) return KILN_OK;
    graph_attr attrs[2] = {{.name = "axis", .type = ATTR_INT, .i = -1},
                           {.name = "epsilon", .type = ATTR_FLOAT, .f = epsilon}};
    int inputs[3] = {x, gamma, beta};
    graph_node *gone[8] = {mean, sub, pow, var, add_eps, sqrt, div, mul};
    KILN_TRY(rewrite_node(g, add_beta, "", "LayerNormalization", 17, inputs, 3, attrs, 2));
    remove_nodes(gone, 8);
    *fused = true;
    return KILN_OK;
}

/* ---- GELU (erf form) --------------------------------------------------------------------------------- */

/* x / sqrt(2) or x * (1 / sqrt(2)): the argument of GELU's erf. */
static bool scales_by_inverse_sqrt2(const graph *g, const graph_node *n, int *x)
{
    float c;
    if (n->n_inputs != 2) return false;
    if (is_op(n, "Div") && scalar_constant(g, n->inputs[1], &c) && near(c, sqrt(2.0))) {
        *x = n->inputs[0];
        return true;
    }
    if (!is_op(n, "Mul")) return false;
    for (int k = 0; k < 2; k++)
        if (scalar_constant(g, n->inputs[1 - k], &c) && near(c, 1.0 / sqrt(2.0))) {
            *x = n->inputs[k];
            return true;
        }
    return false;
}

/* GELU's end from `activated` (erf or tanh of its argument): + 1, then * x * 0.5 or * (x * 0.5). On success
 * returns the node computing the result, with the nodes between in gone[0..1]; else NULL. */
static graph_node *match_gelu_tail(graph *g, int activated, int x, graph_node *gone[2])
{
    float c;
    graph_node *plus_one = sole_consumer(g, activated);
    if (!is_op(plus_one, "Add") || !scalar_constant(g, other_input(plus_one, activated), &c) || c != 1.0f)
        return NULL;
    graph_node *first = sole_consumer(g, plus_one->outputs[0]), *last;
    if (!is_op(first, "Mul")) return NULL;
    int other = other_input(first, plus_one->outputs[0]);
    if (other == x) { /* (1 + f) * x, then * 0.5 */
        last = sole_consumer(g, first->outputs[0]);
        if (!is_op(last, "Mul") || !scalar_constant(g, other_input(last, first->outputs[0]), &c) || c != 0.5f)
            return NULL;
    } else { /* (1 + f) * (x * 0.5) */
        graph_node *half = producer_of(g, other);
        if (!is_op(half, "Mul") || other_input(half, x) < 0 || sole_consumer(g, other) != first ||
            !scalar_constant(g, other_input(half, x), &c) || c != 0.5f)
            return NULL;
        last = first;
        first = half;
    }
    gone[0] = plus_one, gone[1] = first;
    return last;
}

static kiln_status rewrite_gelu(graph *g, graph_node *last, int x, bool tanh_form, graph_node *const *gone,
                                int n_gone, bool *fused)
{
    if (!keeps_rank(g, x, last->outputs[0])) return KILN_OK;
    graph_attr attr = {.name = "approximate", .type = ATTR_STRING, .s = "tanh", .s_len = 4};
    KILN_TRY(rewrite_node(g, last, "ai.kiln", "Gelu", 1, &x, 1, &attr, tanh_form ? 1 : 0));
    remove_nodes(gone, n_gone);
    *fused = true;
    return KILN_OK;
}

/* Matches x*(1/sqrt2) -> Erf -> GELU's end (match_gelu_tail); on success rewrites it and sets *fused. */
static kiln_status fuse_gelu_erf(graph *g, graph_node *erf, bool *fused)
{
    graph_node *scale = producer_of(g, erf->inputs[0]), *gone[4] = {erf};
    int x;
    if (!scale || !scales_by_inverse_sqrt2(g, scale, &x) || g->values[x].dtype != KILN_FLOAT32 ||
        sole_consumer(g, scale->outputs[0]) != erf)
        return KILN_OK;
    graph_node *last = match_gelu_tail(g, erf->outputs[0], x, gone + 2);
    gone[1] = scale;
    return last ? rewrite_gelu(g, last, x, false, gone, 4, fused) : KILN_OK;
}

/* v = x^3 as Pow(x, 3) or x * (x * x) (products in either order), every step read only by the next: the node
 * computing it and, for the products, the square in *square. */
static graph_node *cube_of(graph *g, int v, int x, graph_node **square)
{
    graph_node *n = producer_of(g, v);
    float c;
    *square = NULL;
    if (is_op(n, "Pow") && n->n_inputs == 2 && n->inputs[0] == x && scalar_constant(g, n->inputs[1], &c))
        return c == 3.0f ? n : NULL;
    int sq = is_op(n, "Mul") ? other_input(n, x) : -1;
    graph_node *s = sq >= 0 ? producer_of(g, sq) : NULL;
    if (!is_op(s, "Mul") || s->n_inputs != 2 || s->inputs[0] != x || s->inputs[1] != x || sole_consumer(g, sq) != n)
        return NULL;
    *square = s;
    return n;
}

/* For term = 0.044715 * v (either order): v, or -1. */
static int cubic_term(const graph *g, const graph_node *cubic)
{
    float c;
    if (!is_op(cubic, "Mul") || cubic->n_inputs != 2) return -1;
    for (int k = 0; k < 2; k++)
        if (scalar_constant(g, cubic->inputs[1 - k], &c) && near(c, 0.044715)) return cubic->inputs[k];
    return -1;
}

/* Matches 0.044715 * x^3 -> + x -> * sqrt(2/pi) -> Tanh -> GELU's end (constants' products in either order);
 * on success rewrites it and sets *fused. */
static kiln_status fuse_gelu_tanh(graph *g, graph_node *tanh, bool *fused)
{
    graph_node *scale = producer_of(g, tanh->inputs[0]);
    float c;
    int inner = -1;
    if (!is_op(scale, "Mul") || scale->n_inputs != 2 || sole_consumer(g, tanh->inputs[0]) != tanh) return KILN_OK;
    for (int k = 0; k < 2; k++)
        if (scalar_constant(g, scale->inputs[1 - k], &c) && near(c, sqrt(2.0 / 3.14159265358979323846)))
            inner = scale->inputs[k];
    graph_node *sum = producer_of(g, inner);
    if (!is_op(sum, "Add") || sum->n_inputs != 2 || sole_consumer(g, inner) != scale) return KILN_OK;
    for (int k = 0; k < 2; k++) {
        int x = sum->inputs[k], term = sum->inputs[1 - k];
        graph_node *cubic = producer_of(g, term), *square, *cube;
        int cubed = cubic_term(g, cubic);
        if (cubed < 0 || g->values[x].dtype != KILN_FLOAT32 || sole_consumer(g, term) != sum ||
            sole_consumer(g, cubed) != cubic || !(cube = cube_of(g, cubed, x, &square)))
            continue;
        graph_node *gone[8] = {scale, sum, cubic, cube, tanh, square};
        graph_node *last = match_gelu_tail(g, tanh->outputs[0], x, gone + 6);
        return last ? rewrite_gelu(g, last, x, true, gone, 8, fused) : KILN_OK;
    }
    return KILN_OK;
}

/* ---- attention ---------------------------------------------------------------------------------------- */

static bool has_rank(const graph *g, int v, int rank)
{
    return v >= 0 && g->values[v].rank == rank && g->values[v].dtype == KILN_FLOAT32;
}

/* A Softmax over the last axis of a rank-4 value, with opset 13's semantics (one axis, not a flattening). */
static bool is_last_axis_softmax(const graph *g, const graph_node *n)
{
    if (!is_op(n, "Softmax") || n->opset < 13 || !has_rank(g, n->inputs[0], 4)) return false;
    const graph_attr *axis = graph_node_attr(n, "axis");
    return !axis || axis->i == -1 || axis->i == 3;
}

/* From value v back to the MatMul(Q, K^T) producing it, through an optional division or multiplication by a
 * scalar constant: returns the MatMul (and the scale node in *scaling, or NULL), or NULL. Every value on the
 * way must be read by its successor alone. */
static graph_node *trace_scores(graph *g, int v, float *scale, graph_node **scaling)
{
    graph_node *n = producer_of(g, v);
    float c;
    *scale = 1.0f, *scaling = NULL;
    if (n && (is_op(n, "Div") || is_op(n, "Mul")) && n->n_inputs == 2) {
        bool divide = is_op(n, "Div");
        int k = divide || !scalar_constant(g, n->inputs[0], &c) ? 0 : 1; /* the input that is not the constant */
        if (!scalar_constant(g, n->inputs[1 - k], &c) || c == 0.0f || !(fabsf(c) < INFINITY)) return NULL;
        *scale = divide ? 1.0f / c : c;
        *scaling = n;
        v = n->inputs[k];
        if (sole_consumer(g, v) != n) return NULL;
        n = producer_of(g, v);
    }
    if (!is_op(n, "MatMul") || !has_rank(g, n->inputs[0], 4) || !has_rank(g, n->inputs[1], 4)) return NULL;
    return n;
}

/* Matches backwards from `softmax` (see the file comment); on success rewrites it and sets *fused. */
static kiln_status fuse_attention(graph *g, graph_node *softmax, bool *fused)
{
    int in = softmax->inputs[0], mask = -1;
    if (!is_last_axis_softmax(g, softmax) || sole_consumer(g, in) != softmax) return KILN_OK;
    float scale;
    graph_node *scaling, *add = NULL, *product = trace_scores(g, in, &scale, &scaling);
    graph_node *masked = producer_of(g, in);
    if (!product && is_op(masked, "Add") && masked->n_inputs == 2) /* scores + mask, in either order */
        for (int k = 0; k < 2 && !product; k++) {
            int scores = masked->inputs[k];
            mask = masked->inputs[1 - k];
            if (sole_consumer(g, scores) != masked || g->values[mask].dtype != KILN_FLOAT32 ||
                g->values[mask].rank < 0 || g->values[mask].rank > 4)
                continue;
            product = trace_scores(g, scores, &scale, &scaling);
            add = masked;
        }
    if (!product) return KILN_OK;
    graph_node *weighted = sole_consumer(g, softmax->outputs[0]);
    if (!is_op(weighted, "MatMul") || weighted->inputs[0] != softmax->outputs[0] ||
        !has_rank(g, weighted->inputs[1], 4))
        return KILN_OK;
    int inputs[4] = {product->inputs[0], product->inputs[1], weighted->inputs[1], mask};
    graph_attr attr = {.name = "scale", .type = ATTR_FLOAT, .f = scale};
    graph_node *gone[4] = {softmax, product, scaling, add};
    KILN_TRY(rewrite_node(g, weighted, "ai.kiln", "Attention", 1, inputs, add ? 4 : 3, &attr, 1));
    remove_nodes(gone, 4);
    *fused = true;
    return KILN_OK;
}

/* ---- MatMul + bias ------------------------------------------------------------------------------------ */

static bool is_float_constant_of_rank(const graph *g, int v, int rank)
{
    const kiln_tensor *t = v >= 0 ? g->values[v].constant : NULL;
    return t && t->dtype == KILN_FLOAT32 && t->rank == rank && t->data;
}

/* MatMul(x, W) -> Add(., b) (either order) with W [K,N] and b [N] constants; on success rewrites the Add. */
static kiln_status fuse_matmul_bias(graph *g, graph_node *matmul, bool *fused)
{
    int w = matmul->inputs[1];
    if (matmul->n_inputs != 2 || g->values[matmul->inputs[0]].dtype != KILN_FLOAT32 ||
        !is_float_constant_of_rank(g, w, 2))
        return KILN_OK;
    graph_node *add = sole_consumer(g, matmul->outputs[0]);
    int bias = is_op(add, "Add") ? other_input(add, matmul->outputs[0]) : -1;
    if (!is_float_constant_of_rank(g, bias, 1) || g->values[bias].constant->dims[0] != g->values[w].constant->dims[1])
        return KILN_OK;
    int inputs[3] = {matmul->inputs[0], w, bias};
    KILN_TRY(rewrite_node(g, add, "ai.kiln", "MatMulBias", 1, inputs, 3, NULL, 0));
    matmul->removed = true;
    *fused = true;
    return KILN_OK;
}

/* ---- the pass ---------------------------------------------------------------------------------------- */

kiln_status graph_fuse_transformer(graph *g)
{
    bool fused = false;
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (is_op(n, "Softmax")) KILN_TRY(fuse_attention(g, n, &fused));
    }
    /* attention first: its scores MatMul followed by a mask Add must not be taken for a linear layer */
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (is_op(n, "ReduceMean")) KILN_TRY(fuse_layernorm(g, n, &fused));
        else if (is_op(n, "Erf") && n->n_inputs == 1) KILN_TRY(fuse_gelu_erf(g, n, &fused));
        else if (is_op(n, "Tanh") && n->n_inputs == 1) KILN_TRY(fuse_gelu_tanh(g, n, &fused));
        else if (is_op(n, "MatMul")) KILN_TRY(fuse_matmul_bias(g, n, &fused));
    }
    if (fused) graph_count_consumers(g);
    return KILN_OK;
}
