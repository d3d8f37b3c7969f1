/*
 * layout.c — where activations travel channel-blocked instead of as ONNX's channel planes.
 *
 * A depthwise convolution computes sixteen channels to a vector, and the pointwise convolutions around it
 * (MobileNet's and EfficientNet's expansion before, projection after) can write and read sixteen channels
 * of a position as one vector; between them, planes only cost transposes. So when a pointwise Conv's
 * output is read by nothing but a depthwise Conv, or a depthwise Conv's by nothing but a pointwise Conv,
 * and the channels come in whole blocks of sixteen (kernels/conv.h's channel-blocked layout), both become
 * ai.kiln::FusedConv nodes that say so: `blocked_output` 1 on the writer, `blocked_input` 1 on the reader.
 * The value keeps its shape and size (the channels are a multiple of the block), so nothing else in the
 * plan changes; nothing else reads it.
 *
 * Like graph/fuse.c the pass decides from op types, attributes and constant weights alone, before types are
 * inferred; FusedConv's init then checks the shapes again when they are known. It runs only where the
 * kernels make the layout pay (conv_blocked_layout_pays), and refuses a model file that sets these
 * attributes itself: they describe memory kiln lays out, which a file cannot know.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "graph/passes.h"
#include "kernels/conv.h"

static bool is_conv(const graph_node *n)
{
    if (n->removed || n->n_outputs != 1 || n->n_inputs < 2 || n->inputs[0] < 0 || n->inputs[1] < 0) return false;
    bool onnx = n->domain[0] == '\0' && strcmp(n->op_type, "Conv") == 0;
    return onnx || (strcmp(n->domain, GRAPH_KILN_DOMAIN) == 0 && strcmp(n->op_type, "FusedConv") == 0);
}

/* The node's integer attribute `name`, or `dflt` when absent (false when present but not an integer). */
static bool int_attr(const graph_node *n, const char *name, int64_t dflt, int64_t *out)
{
    const graph_attr *a = graph_node_attr(n, name);
    *out = dflt;
    if (!a) return true;
    if (a->type != ATTR_INT) return false;
    *out = a->i;
    return true;
}

/* Whether the integer-list attribute `name` is absent or all `value`. */
static bool ints_all(const graph_node *n, const char *name, int64_t value)
{
    const graph_attr *a = graph_node_attr(n, name);
    if (!a) return true;
    if (a->type != ATTR_INTS) return false;
    for (int i = 0; i < a->count; i++)
        if (a->ints[i] != value) return false;
    return true;
}

/* The conv's constant 4-D float weight, or NULL. */
static const kiln_tensor *conv_weight(const graph *g, const graph_node *n)
{
    const kiln_tensor *w = g->values[n->inputs[1]].constant;
    return w && w->dtype == KILN_FLOAT32 && w->rank == 4 ? w : NULL;
}

/* A 2-D depthwise Conv whose channels fill whole blocks. */
static bool blockable_depthwise(const graph *g, const graph_node *n)
{
    const kiln_tensor *w = conv_weight(g, n);
    int64_t group;
    return w && w->dims[1] == 1 && w->dims[0] % CONV_BLOCK == 0 && int_attr(n, "group", 1, &group) &&
           group == w->dims[0];
}

/* A 2-D pointwise Conv (1x1, stride 1, no padding, one group) with `in` input and `out` output channels
 * (either -1: any). */
static bool blockable_pointwise(const graph *g, const graph_node *n, int64_t in, int64_t out)
{
    const kiln_tensor *w = conv_weight(g, n);
    int64_t group;
    const graph_attr *auto_pad = graph_node_attr(n, "auto_pad");
    bool unpadded = !auto_pad || (auto_pad->type == ATTR_STRING && (strcmp(auto_pad->s, "NOTSET") == 0 ||
                                                                    strcmp(auto_pad->s, "VALID") == 0));
    return w && (in < 0 || w->dims[1] == in) && (out < 0 || w->dims[0] == out) && w->dims[2] == 1 &&
           w->dims[3] == 1 && int_attr(n, "group", 1, &group) && group == 1 && ints_all(n, "kernel_shape", 1) &&
           ints_all(n, "strides", 1) && ints_all(n, "pads", 0) && unpadded;
}

/* Sets the node's integer attribute `name` to 1 (a new attribute: the pass refused files that had it) and
 * makes it a FusedConv. */
static kiln_status mark(graph *g, graph_node *n, const char *name)
{
    graph_attr *attrs = region_alloc(g->mem, (size_t)n->n_attrs + 1, sizeof *attrs);
    if (!attrs) return KILN_ERR_OUT_OF_MEMORY;
    if (n->n_attrs) memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof *attrs);
    attrs[n->n_attrs] = (graph_attr){.name = name, .type = ATTR_INT, .i = 1};
    n->attrs = attrs;
    n->n_attrs++;
    n->domain = GRAPH_KILN_DOMAIN, n->op_type = "FusedConv", n->opset = 1;
    return KILN_OK;
}

/* The only node reading value v, through its first input and no other, or -1. */
static int sole_reader(const graph *g, int v)
{
    int reader = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            if (n->inputs[k] != v) continue;
            if (reader >= 0 || k != 0) return -1;
            reader = i;
        }
    }
    return reader;
}

kiln_status graph_choose_layouts(graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (!n->removed && (graph_node_attr(n, "blocked_input") || graph_node_attr(n, "blocked_output")))
            return kiln_fail(KILN_ERR_MALFORMED,
                             "node '%s': blocked_input and blocked_output are kiln's own; a model file cannot set them",
                             n->name);
    }
    if (!conv_blocked_layout_pays() || graph_has_subgraphs(g)) return KILN_OK;
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *depthwise = &g->nodes[i];
        if (!is_conv(depthwise) || !blockable_depthwise(g, depthwise)) continue;
        int64_t channels = conv_weight(g, depthwise)->dims[0];
        /* the pointwise Conv before it (an expansion) ... */
        int u = depthwise->inputs[0], producer = g->values[u].producer;
        if (producer >= 0 && !g->values[u].is_output && sole_reader(g, u) == i && is_conv(&g->nodes[producer]) &&
            blockable_pointwise(g, &g->nodes[producer], -1, channels)) {
            KILN_TRY(mark(g, &g->nodes[producer], "blocked_output"));
            KILN_TRY(mark(g, depthwise, "blocked_input"));
        }
        /* ... and the one after it (a projection) */
        int v = depthwise->outputs[0];
        int reader = v >= 0 && !g->values[v].is_output ? sole_reader(g, v) : -1;
        if (reader >= 0 && is_conv(&g->nodes[reader]) && blockable_pointwise(g, &g->nodes[reader], channels, -1)) {
            KILN_TRY(mark(g, depthwise, "blocked_output"));
            KILN_TRY(mark(g, &g->nodes[reader], "blocked_input"));
        }
    }
    return KILN_OK;
}
