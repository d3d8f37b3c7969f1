/*
 * fuse.c — operator fusion before type inference, in three steps:
 *   - Transpose(Transpose(x)) becomes one Transpose, or an Identity (a view) when the two cancel;
 *   - a BatchNormalization in inference form whose input is a Conv's or Gemm's output read by nothing else,
 *     with constant weight, bias and statistics, is folded into that node's weight and bias (computed in
 *     double, rounded once), as every deployment runtime does: the normalisation then costs nothing;
 *   - a Conv whose only reader is a Relu, a Clip, a Sigmoid, a HardSigmoid or a HardSwish, or whose output y
 *     is read just by Sigmoid (or HardSigmoid) and by Mul(y, sigmoid(y)) (SiLU, as exporters write Swish; a
 *     hard swish, as PaddlePaddle writes it), becomes one ai.kiln::FusedConv node that
 *     applies the activation while its outputs are still in cache, instead of separate passes over the
 *     whole tensor (onnxruntime's com.microsoft::FusedConv does the same).
 *
 * The pass runs on the sorted graph before any op is resolved, so it decides from op types and constant
 * values alone, and it leaves every check to the ops' init: FusedConv's init is Conv's. It only fuses what
 * it can prove equivalent: the Conv's output has exactly those readers, is not a graph output, and no subgraph
 * exists that could read it by name; a Clip's bounds must be known float32 scalars (initializers or
 * Constant nodes). The fused node keeps the Conv's name, inputs and attributes, takes over the activation's
 * output, and gains the attributes `activation` ("Relu", "Clip", "Sigmoid", "SiLU", "HardSigmoid" or
 * "HardSwish") and `activation_params` ([lo, hi], the clamp of the first two; [alpha, beta] of the hard ones).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/tensor.h"
#include "graph/passes.h"

static bool is_onnx_op(const graph_node *n, const char *op_type)
{
    return !n->removed && n->domain[0] == '\0' && strcmp(n->op_type, op_type) == 0;
}

/* Each value's live readers, when it has one or two and is not a graph output (else count is 0): enough
 * to recognise a Conv output read once (by Relu, Clip, Sigmoid) or twice (by Sigmoid and Mul, a SiLU). */
typedef struct value_readers {
    int count;
    int node[2];
} value_readers;

static value_readers *count_readers(const graph *g)
{
    value_readers *readers = mem_calloc((size_t)g->n_values + 1, sizeof *readers);
    if (!readers) return NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            value_readers *r = &readers[v];
            if (r->count < 2) r->node[r->count] = i;
            r->count++;
        }
    }
    for (int v = 0; v < g->n_values; v++)
        if (readers[v].count > 2 || g->values[v].is_output) readers[v].count = 0;
    return readers;
}

/* A float32 scalar known at load: an initializer, or the output of a Constant node. */
static bool known_scalar(const graph *g, int v, float *out)
{
    const kiln_tensor *t = g->values[v].constant;
    int p = g->values[v].producer;
    if (!t && p >= 0 && is_onnx_op(&g->nodes[p], "Constant") && g->nodes[p].n_attrs == 1 &&
        g->nodes[p].attrs[0].type == ATTR_TENSOR && strcmp(g->nodes[p].attrs[0].name, "value") == 0)
        t = g->nodes[p].attrs[0].t;
    if (!t || t->dtype != KILN_FLOAT32 || !t->data || tensor_numel(t) != 1) return false;
    *out = *(const float *)t->data;
    return true;
}

/* Whether `act` is an activation FusedConv takes (Relu, Clip with bounds known at load, Sigmoid), and the
 * clamp [lo, hi] of the first two. */
/* HardSigmoid's alpha and beta (defaults 0.2 and 0.5) when its attributes are just those, finite. */
static bool hard_sigmoid_params(const graph_node *act, float *alpha, float *beta)
{
    *alpha = 0.2f, *beta = 0.5f;
    if (!is_onnx_op(act, "HardSigmoid") || act->n_inputs != 1 || act->n_outputs != 1) return false;
    for (int a = 0; a < act->n_attrs; a++) {
        const graph_attr *attr = &act->attrs[a];
        if (attr->type != ATTR_FLOAT || !isfinite(attr->f)) return false;
        if (strcmp(attr->name, "alpha") == 0) *alpha = attr->f;
        else if (strcmp(attr->name, "beta") == 0) *beta = attr->f;
        else return false;
    }
    return true;
}

static bool activation_bounds(const graph *g, const graph_node *act, float *lo, float *hi)
{
    *lo = -INFINITY, *hi = INFINITY;
    if (is_onnx_op(act, "Sigmoid")) return act->n_inputs == 1 && act->n_outputs == 1;
    if (is_onnx_op(act, "HardSigmoid")) return hard_sigmoid_params(act, lo, hi); /* lo, hi: alpha, beta */
    if (is_onnx_op(act, "HardSwish")) {
        *lo = 1.0f / 6.0f, *hi = 0.5f;
        return act->n_inputs == 1 && act->n_outputs == 1 && act->n_attrs == 0;
    }
    if (is_onnx_op(act, "Relu")) {
        *lo = 0.0f;
        return act->n_inputs == 1 && act->n_outputs == 1;
    }
    if (!is_onnx_op(act, "Clip") || act->n_outputs != 1 || act->n_inputs < 1) return false;
    if (act->opset < 11) {
        for (int a = 0; a < act->n_attrs; a++) {
            const graph_attr *attr = &act->attrs[a];
            if (attr->type != ATTR_FLOAT) return false;
            if (strcmp(attr->name, "min") == 0) *lo = attr->f;
            else if (strcmp(attr->name, "max") == 0) *hi = attr->f;
            else return false;
        }
        return act->n_inputs == 1;
    }
    if (act->n_inputs > 3 || act->n_attrs != 0) return false;
    if (act->n_inputs > 1 && act->inputs[1] >= 0 && !known_scalar(g, act->inputs[1], lo)) return false;
    if (act->n_inputs > 2 && act->inputs[2] >= 0 && !known_scalar(g, act->inputs[2], hi)) return false;
    return !isnan(*lo) && !isnan(*hi);
}

/* The Conv node's attributes plus the two that describe the activation, in region memory. */
static kiln_status add_activation_attrs(graph *g, graph_node *conv, const char *name, float lo, float hi)
{
    graph_attr *attrs = region_alloc(g->mem, (size_t)conv->n_attrs + 2, sizeof *attrs);
    float *params = region_alloc(g->mem, 2, sizeof *params);
    if (!attrs || !params) return KILN_ERR_OUT_OF_MEMORY;
    if (conv->n_attrs) memcpy(attrs, conv->attrs, (size_t)conv->n_attrs * sizeof *attrs);
    params[0] = lo, params[1] = hi;
    attrs[conv->n_attrs] = (graph_attr){.name = "activation", .type = ATTR_STRING, .s = name, .s_len = strlen(name)};
    attrs[conv->n_attrs + 1] = (graph_attr){.name = "activation_params", .type = ATTR_FLOATS, .count = 2, .floats = params};
    conv->attrs = attrs;
    conv->n_attrs += 2;
    return KILN_OK;
}

/* The activation node reading conv's output y, and the node whose output the fused node takes over:
 * y -> Relu/Clip/Sigmoid, or y -> Sigmoid -> Mul(y, sigmoid) (SiLU). Returns the name of the fused activation,
 * or NULL. */
static const char *match_activation(const graph *g, const value_readers *readers, int y, float *lo, float *hi,
                                    int *removed, int *n_removed, int *last)
{
    const value_readers *r = &readers[y];
    if (r->count == 1) {
        const graph_node *act = &g->nodes[r->node[0]];
        /* activation_bounds checks the arity before anything reads outputs[0] */
        if (!activation_bounds(g, act, lo, hi) || act->inputs[0] != y || act->outputs[0] < 0) return NULL;
        removed[0] = *last = r->node[0], *n_removed = 1;
        return act->op_type;
    }
    if (r->count != 2) return NULL;
    for (int s = 0; s < 2; s++) {
        const graph_node *sig = &g->nodes[r->node[s]], *mul = &g->nodes[r->node[1 - s]];
        float alpha, beta;
        bool hard = hard_sigmoid_params(sig, &alpha, &beta);
        if ((!hard && !is_onnx_op(sig, "Sigmoid")) || sig->n_inputs != 1 || sig->n_outputs != 1 || sig->outputs[0] < 0)
            continue;
        int sv = sig->outputs[0];
        if (readers[sv].count != 1 || readers[sv].node[0] != r->node[1 - s]) continue;
        if (!is_onnx_op(mul, "Mul") || mul->n_inputs != 2 || mul->n_outputs != 1 || mul->outputs[0] < 0) continue;
        bool operands = (mul->inputs[0] == y && mul->inputs[1] == sv) || (mul->inputs[0] == sv && mul->inputs[1] == y);
        if (!operands) continue;
        removed[0] = r->node[s], removed[1] = *last = r->node[1 - s], *n_removed = 2;
        if (hard) { /* x * HardSigmoid(x): a hard swish with this HardSigmoid's alpha and beta */
            *lo = alpha, *hi = beta;
            return "HardSwish";
        }
        *lo = -INFINITY, *hi = INFINITY;
        return "SiLU";
    }
    return NULL;
}

/* ---- BatchNormalization folded into the Conv or Gemm before it ----------------------------------------- */

/* The float32 contents of constant v when it has `count` elements, else NULL. */
static const float *constant_floats(const graph *g, int v, int64_t count)
{
    const kiln_tensor *t = v >= 0 ? g->values[v].constant : NULL;
    if (!t || t->dtype != KILN_FLOAT32 || !t->data || tensor_numel(t) != count) return NULL;
    return t->data;
}

/* A BatchNormalization in inference form reading y as its only reader: its per-channel factor
 * s = scale / sqrt(var + epsilon) and shift beta - mean * s, in double (channels of `channels`). */
typedef struct batch_norm_fold {
    int bn; /* its node */
    const float *scale, *beta, *mean, *var;
    double epsilon;
} batch_norm_fold;

static bool match_batch_norm(const graph *g, const value_readers *readers, int y, int64_t channels,
                             batch_norm_fold *f)
{
    if (readers[y].count != 1) return false;
    const graph_node *bn = &g->nodes[readers[y].node[0]];
    if (!is_onnx_op(bn, "BatchNormalization") || bn->n_inputs != 5 || bn->inputs[0] != y || bn->outputs[0] < 0)
        return false;
    for (int k = 1; k < bn->n_outputs; k++)
        if (bn->outputs[k] >= 0) return false; /* training outputs asked for */
    const graph_attr *training = graph_node_attr(bn, "training_mode"), *eps = graph_node_attr(bn, "epsilon");
    if (training && (training->type != ATTR_INT || training->i != 0)) return false;
    if (eps && eps->type != ATTR_FLOAT) return false;
    *f = (batch_norm_fold){.bn = readers[y].node[0], .epsilon = eps ? eps->f : 1e-5};
    f->scale = constant_floats(g, bn->inputs[1], channels), f->beta = constant_floats(g, bn->inputs[2], channels);
    f->mean = constant_floats(g, bn->inputs[3], channels), f->var = constant_floats(g, bn->inputs[4], channels);
    return f->scale && f->beta && f->mean && f->var;
}

/* A new float32 constant of the given shape in the graph's memory, named after `base`; -1 when the name is taken. */
static int add_constant(graph *g, const char *base, const char *suffix, int rank, const int64_t *dims, float **data,
                        kiln_status *st)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    if (graph_find_value(g, name) >= 0) return -1;
    kiln_tensor *t = region_alloc(g->mem, 1, sizeof *t);
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) numel *= dims[d];
    *data = region_alloc(g->mem, (size_t)numel + 1, sizeof(float));
    int v = -1;
    *st = t && *data ? graph_intern_value(g, name, &v) : KILN_ERR_OUT_OF_MEMORY;
    if (*st != KILN_OK) return -1;
    tensor_set_shape(t, KILN_FLOAT32, rank, dims);
    t->data = *data;
    graph_value *value = &g->values[v];
    value->kind = VALUE_TENSOR, value->dtype = KILN_FLOAT32, value->rank = rank, value->constant = t;
    for (int d = 0; d < rank; d++) value->dims[d] = dims[d];
    return v;
}

/* The weight (`channels` output channels; channel c's values at w[(o * channels + c) * inner + i]) and bias
 * (absent: zeros) of a linear node followed by the normalisation f, as one weight and bias:
 * w' = w * s, b' = (b - mean) * s + beta. Rewires the node to them and to f's output, unless the new
 * names are taken (then nothing changes). */
static kiln_status fold_into(graph *g, graph_node *node, int weight_input, int bias_input, int64_t outer,
                             int64_t channels, int64_t inner, const float *bias, const batch_norm_fold *f)
{
    const kiln_tensor *w = g->values[node->inputs[weight_input]].constant;
    const char *base = g->values[node->outputs[0]].name;
    float *w_data, *b_data;
    kiln_status st = KILN_OK;
    int w_value = add_constant(g, base, "/folded_batchnorm_weight", w->rank, w->dims, &w_data, &st);
    int b_value = w_value < 0 ? -1 : add_constant(g, base, "/folded_batchnorm_bias", 1, &channels, &b_data, &st);
    if (b_value < 0) return st;
    int *inputs = node->n_inputs > bias_input ? node->inputs
                                               : region_alloc(g->mem, (size_t)bias_input + 1, sizeof *inputs);
    if (!inputs) return KILN_ERR_OUT_OF_MEMORY;
    for (int c = 0; c < channels; c++) {
        double s = (double)f->scale[c] / sqrt((double)f->var[c] + f->epsilon);
        b_data[c] = (float)(((bias ? (double)bias[c] : 0.0) - (double)f->mean[c]) * s + (double)f->beta[c]);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (o * channels + c) * inner + i;
                w_data[at] = (float)((double)((const float *)w->data)[at] * s);
            }
    }
    if (inputs != node->inputs) memcpy(inputs, node->inputs, (size_t)node->n_inputs * sizeof *inputs);
    inputs[weight_input] = w_value, inputs[bias_input] = b_value;
    node->inputs = inputs, node->n_inputs = bias_input + 1;
    g->values[node->outputs[0]].producer = -1;
    node->outputs[0] = g->nodes[f->bn].outputs[0];
    g->values[node->outputs[0]].producer = (int)(node - g->nodes);
    g->nodes[f->bn].removed = true;
    return KILN_OK;
}

/* Conv(x, w[, b]) -> BatchNormalization: the normalisation goes into w and b (output channels: w's dim 0). */
static kiln_status fold_conv_batch_norm(graph *g, const value_readers *readers, graph_node *conv)
{
    const kiln_tensor *w = conv->n_inputs >= 2 && conv->inputs[1] >= 0 ? g->values[conv->inputs[1]].constant : NULL;
    if (!w || w->dtype != KILN_FLOAT32 || w->rank < 3 || !w->data || w->dims[0] < 1) return KILN_OK;
    int64_t channels = w->dims[0];
    const float *bias = NULL;
    if (conv->n_inputs > 2 && conv->inputs[2] >= 0 && !(bias = constant_floats(g, conv->inputs[2], channels)))
        return KILN_OK;
    batch_norm_fold f;
    if (!match_batch_norm(g, readers, conv->outputs[0], channels, &f)) return KILN_OK;
    return fold_into(g, conv, 1, 2, 1, channels, tensor_numel(w) / channels, bias, &f);
}

/* Gemm(a, b[, c]) -> BatchNormalization with alpha, beta and transA as they come but c absent or one value per
 * column: the normalisation goes into b's columns (rows when transB) and c. */
static kiln_status fold_gemm_batch_norm(graph *g, const value_readers *readers, graph_node *gemm)
{
    const kiln_tensor *b = gemm->n_inputs >= 2 && gemm->inputs[1] >= 0 ? g->values[gemm->inputs[1]].constant : NULL;
    if (!b || b->dtype != KILN_FLOAT32 || b->rank != 2 || !b->data) return KILN_OK;
    const graph_attr *trans_b = graph_node_attr(gemm, "transB"), *beta = graph_node_attr(gemm, "beta");
    if ((trans_b && trans_b->type != ATTR_INT) || (beta && (beta->type != ATTR_FLOAT || beta->f != 1.0f)))
        return KILN_OK;
    bool transposed = trans_b && trans_b->i != 0;
    int64_t channels = b->dims[transposed ? 0 : 1], other = b->dims[transposed ? 1 : 0];
    const float *bias = NULL;
    if (gemm->n_inputs > 2 && gemm->inputs[2] >= 0 && !(bias = constant_floats(g, gemm->inputs[2], channels)))
        return KILN_OK;
    batch_norm_fold f;
    if (channels < 1 || !match_batch_norm(g, readers, gemm->outputs[0], channels, &f)) return KILN_OK;
    return transposed ? fold_into(g, gemm, 1, 2, 1, channels, other, bias, &f)
                      : fold_into(g, gemm, 1, 2, other, channels, 1, bias, &f);
}

/* ---- transposes composed ------------------------------------------------------------------------------------ */

/* The explicit `perm` of a Transpose node when it is a permutation, or NULL. */
static const graph_attr *transpose_perm(const graph_node *n)
{
    bool wired = is_onnx_op(n, "Transpose") && n->n_inputs == 1 && n->n_outputs == 1 && n->inputs[0] >= 0;
    const graph_attr *perm = wired ? graph_node_attr(n, "perm") : NULL;
    if (!perm || perm->type != ATTR_INTS || perm->count < 1 || perm->count > KILN_MAX_RANK) return NULL;
    bool seen[KILN_MAX_RANK] = {false};
    for (int i = 0; i < perm->count; i++) {
        if (perm->ints[i] < 0 || perm->ints[i] >= perm->count || seen[perm->ints[i]]) return NULL; /* init reports it */
        seen[perm->ints[i]] = true;
    }
    return perm;
}

/* Transpose(Transpose(x, p), q) reads x with the one permutation p[q[i]], and a Transpose that permutes
 * nothing becomes an Identity (a view): each pair of layout changes costs one copy, or none. The inner
 * Transpose stays for its other readers; dead-node removal drops it when there are none. */
static kiln_status compose_transposes(graph *g, graph_node *outer)
{
    const graph_attr *q = transpose_perm(outer);
    if (!q) return KILN_OK;
    int inner_node = g->values[outer->inputs[0]].producer;
    const graph_attr *p = inner_node >= 0 ? transpose_perm(&g->nodes[inner_node]) : NULL;
    int64_t composed[KILN_MAX_RANK];
    bool identity = true;
    for (int i = 0; i < q->count; i++) {
        composed[i] = p && p->count == q->count ? p->ints[q->ints[i]] : q->ints[i];
        identity &= composed[i] == i;
    }
    if (p && p->count == q->count) outer->inputs[0] = g->nodes[inner_node].inputs[0];
    if (identity) {
        outer->op_type = "Identity", outer->n_attrs = 0;
        return KILN_OK;
    }
    if (!p || p->count != q->count) return KILN_OK;
    graph_attr *attrs = region_alloc(g->mem, 1, sizeof *attrs);
    int64_t *ints = region_alloc(g->mem, (size_t)q->count, sizeof *ints);
    if (!attrs || !ints) return KILN_ERR_OUT_OF_MEMORY;
    memcpy(ints, composed, (size_t)q->count * sizeof *ints);
    *attrs = (graph_attr){.name = "perm", .type = ATTR_INTS, .count = q->count, .ints = ints};
    outer->attrs = attrs, outer->n_attrs = 1;
    return KILN_OK;
}

/* ---- the pass -------------------------------------------------------------------------------------------- */

kiln_status graph_fuse_activations(graph *g)
{
    if (graph_has_subgraphs(g)) return KILN_OK;
    kiln_status st = KILN_OK;
    for (int i = 0; i < g->n_nodes && st == KILN_OK; i++) st = compose_transposes(g, &g->nodes[i]);
    value_readers *readers = st == KILN_OK ? count_readers(g) : NULL;
    if (!readers) return st == KILN_OK ? KILN_ERR_OUT_OF_MEMORY : st;
    for (int i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        graph_node *gemm = &g->nodes[i];
        if (is_onnx_op(gemm, "Gemm") && gemm->n_outputs == 1 && gemm->outputs[0] >= 0)
            st = fold_gemm_batch_norm(g, readers, gemm);
    }
    for (int i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        graph_node *conv = &g->nodes[i];
        if (!is_onnx_op(conv, "Conv") || conv->n_outputs != 1 || conv->outputs[0] < 0) continue;
        st = fold_conv_batch_norm(g, readers, conv);
        if (st != KILN_OK) break;
        float lo, hi;
        int removed[2], n_removed = 0, last = -1;
        const char *name = match_activation(g, readers, conv->outputs[0], &lo, &hi, removed, &n_removed, &last);
        if (!name) continue;
        st = add_activation_attrs(g, conv, name, lo, hi);
        if (st != KILN_OK) break;
        g->values[conv->outputs[0]].producer = -1;
        for (int k = 0; k < n_removed; k++) {
            graph_node *gone = &g->nodes[removed[k]];
            if (gone->outputs[0] >= 0) g->values[gone->outputs[0]].producer = -1;
            gone->removed = true;
        }
        conv->outputs[0] = g->nodes[last].outputs[0];
        g->values[conv->outputs[0]].producer = i;
        conv->domain = GRAPH_KILN_DOMAIN;
        conv->op_type = "FusedConv";
        conv->opset = 1;
    }
    mem_free(readers);
    return st;
}
