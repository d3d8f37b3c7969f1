/*
 * model.c — loading a model: map, parse, validate, optimise, and plan when shapes are fixed.
 *
 * The pipeline (see graph/passes.h for each pass): read the file into the graph IR, sort, type-check every
 * node (collecting every problem), infer symbolic shapes, fold constants, drop dead nodes, and — when every
 * input shape is fixed — build the execution plan once, so the arena size is known right after load and
 * sessions start without planning.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "formats/detect.h"
#include "formats/tree_loaders.h"
#include "ops/op.h"
#include "runtime/model.h"

static bool host_is_little_endian(void)
{
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

static kiln_status count_op_types(kiln_model *m)
{
    const graph *g = m->graph;
    m->op_types = region_alloc(&m->mem, (size_t)g->n_nodes + 1, sizeof *m->op_types);
    if (!m->op_types) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->removed) continue;
        int k = 0;
        while (k < m->n_op_types &&
               (strcmp(m->op_types[k].op_type, n->op_type) != 0 || strcmp(m->op_types[k].domain, n->domain) != 0))
            k++;
        if (k == m->n_op_types) m->op_types[m->n_op_types++] = (op_type_count){n->domain, n->op_type, 0};
        m->op_types[k].nodes++;
    }
    return KILN_OK;
}

/* Tensors, sequences of tensors, optionals of either, and (outputs only) sequences of maps. */
static bool kind_is_supported(const graph_value *v, bool output)
{
    bool holds_ok = v->kind == VALUE_OPTIONAL ? v->elem_kind == VALUE_TENSOR || v->elem_kind == VALUE_SEQUENCE
                    : v->kind == VALUE_SEQUENCE ? v->elem_kind == VALUE_TENSOR || (output && v->elem_kind == VALUE_MAP)
                                                : true;
    return (v->kind == VALUE_TENSOR || v->kind == VALUE_SEQUENCE || v->kind == VALUE_OPTIONAL) && holds_ok;
}

static kiln_status check_signature(kiln_model *m)
{
    const graph *g = m->graph;
    for (int i = 0; i < g->n_inputs; i++) {
        const graph_value *v = &g->values[g->inputs[i]];
        if (!kind_is_supported(v, false))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' is a map or sparse tensor (not supported)", v->name);
        if (v->dtype == KILN_UNDEFINED) return kiln_fail(KILN_ERR_MALFORMED, "input '%s' has no element type", v->name);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const graph_value *v = &g->values[g->outputs[i]];
        if (!kind_is_supported(v, true))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is a map or sparse tensor (not supported)", v->name);
    }
    return KILN_OK;
}

static bool inputs_are_static(const graph *g)
{
    for (int i = 0; i < g->n_inputs; i++) {
        const graph_value *v = &g->values[g->inputs[i]];
        if (v->rank < 0 || v->needs_value_at_plan) return false;
        for (int d = 0; d < v->rank; d++)
            if (v->dims[d] < 0) return false;
    }
    return true;
}

kiln_status model_plan_declared(const kiln_model *m, int64_t free_dim, plan **out)
{
    const graph *g = m->graph;
    kiln_tensor *inputs = mem_calloc((size_t)g->n_inputs + 1, sizeof *inputs);
    if (!inputs) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    for (int i = 0; i < g->n_inputs && st == KILN_OK; i++) {
        const graph_value *v = &g->values[g->inputs[i]];
        if (v->needs_value_at_plan || v->rank < 0)
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' %s, so memory depends on the data", v->name,
                           v->rank < 0 ? "has no declared shape" : "decides shapes by its contents");
        inputs[i].dtype = v->dtype;
        inputs[i].rank = v->rank;
        for (int d = 0; d < v->rank; d++) inputs[i].dims[d] = v->dims[d] >= 0 ? v->dims[d] : free_dim;
    }
    if (st == KILN_OK) st = plan_build(g, inputs, 1, out);
    mem_free(inputs);
    return st;
}

/* The passes from a freshly read graph to a runnable one. */
static kiln_status prepare_graph(kiln_model *m, unsigned flags)
{
    graph *g = m->graph;
    KILN_TRY(graph_check_and_sort(g));
    m->nodes_in_file = g->n_nodes;
    KILN_TRY(graph_fuse_activations(g));
    KILN_TRY(graph_choose_layouts(g));
    KILN_TRY(graph_infer_types(g, &m->issues));
    if (m->issues.count) {
        if (!(flags & KILN_LOAD_INSPECT)) return graph_issues_fail(&m->issues);
        return count_op_types(m); /* describe it as it is; it cannot be planned */
    }
    KILN_TRY(check_signature(m));
    graph_mark_plan_values(g);
    KILN_TRY(graph_infer_symbolic(g));
    KILN_TRY(graph_fold_constants(g));
    graph_remove_dead(g);
    KILN_TRY(graph_fuse_transformer(g));
    graph_mark_plan_values(g);
    KILN_TRY(count_op_types(m));
    m->runnable = true;
    if (inputs_are_static(g)) KILN_TRY(model_plan_declared(m, 1, &m->static_plan));
    return KILN_OK;
}

/* A tree model file becomes a one-node graph in the kiln domain (formats/tree_schema.h). */
static kiln_status read_tree_model(kiln_model *m, const uint8_t *data, size_t size)
{
    tree_schema schema;
    if (m->format == FORMAT_LIGHTGBM_TEXT) KILN_TRY(lightgbm_read(data, size, &m->mem, &schema));
    else KILN_TRY(xgboost_read(data, size, m->format == FORMAT_XGBOOST_UBJSON, &m->mem, &schema));
    KILN_TRY(tree_schema_make_graph(&m->mem, &schema, &m->onnx.graph));
    m->onnx.opsets = region_alloc(&m->mem, 1, sizeof *m->onnx.opsets);
    if (!m->onnx.opsets) return KILN_ERR_OUT_OF_MEMORY;
    m->onnx.opsets[0] = (onnx_opset){TREE_SCHEMA_DOMAIN, 1};
    m->onnx.n_opsets = 1;
    m->producer = schema.source ? schema.source : "";
    return KILN_OK;
}

static kiln_status load_bytes(kiln_model *m, const uint8_t *data, size_t size, unsigned flags)
{
    if (!host_is_little_endian()) return kiln_fail(KILN_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    m->format = format_detect(data, size);
    if (m->format == FORMAT_ONNX) {
        KILN_TRY(onnx_read_model(data, size, &m->mem, &m->external, &m->onnx));
        m->producer = region_printf(&m->mem, "%s%s%s", m->onnx.producer_name,
                                    m->onnx.producer_version[0] ? " " : "", m->onnx.producer_version);
        if (!m->producer) return KILN_ERR_OUT_OF_MEMORY;
    } else {
        KILN_TRY(read_tree_model(m, data, size));
    }
    m->graph = m->onnx.graph;
    return prepare_graph(m, flags);
}

static kiln_model *model_new(void)
{
    kiln_model *m = mem_calloc(1, sizeof *m);
    if (!m) return NULL;
    region_init(&m->mem);
    m->issues.mem = &m->mem;
    return m;
}

void kiln_model_free(kiln_model *m)
{
    if (!m) return;
    plan_free(m->static_plan);
    graph_free(m->onnx.graph);
    graph_issues_free(&m->issues);
    onnx_external_files_release(&m->external);
    platform_unmap_file(&m->file);
    region_free(&m->mem);
    mem_free(m);
}

static char *directory_of(region *mem, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return region_strdup(mem, ".");
    if (slash == path) return region_strdup(mem, "/");
    return region_strndup(mem, path, (size_t)(slash - path));
}

kiln_status kiln_model_load_ex(const char *path, unsigned flags, kiln_model **out)
{
    kiln_clear_error();
    if (!path || !out) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_model_load: NULL argument");
    *out = NULL;
    uint64_t start = platform_now_ns();
    kiln_model *m = model_new();
    if (!m) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = platform_map_file(path, &m->file);
    if (st == KILN_OK) {
        m->external.base_dir = directory_of(&m->mem, path);
        st = m->external.base_dir ? load_bytes(m, m->file.data, m->file.size, flags) : KILN_ERR_OUT_OF_MEMORY;
        if (st != KILN_OK) kiln_fail_prefix(st, "%s", path);
    }
    if (st != KILN_OK) {
        kiln_model_free(m);
        return st;
    }
    m->load_ms = (double)(platform_now_ns() - start) / 1e6;
    *out = m;
    return KILN_OK;
}

kiln_status kiln_model_load(const char *path, kiln_model **out) { return kiln_model_load_ex(path, 0, out); }

kiln_status kiln_model_load_from_memory(const void *data, size_t size, const char *base_dir, unsigned flags,
                                        kiln_model **out)
{
    kiln_clear_error();
    if (!data || !out) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_model_load_from_memory: NULL argument");
    *out = NULL;
    uint64_t start = platform_now_ns();
    kiln_model *m = model_new();
    if (!m) return KILN_ERR_OUT_OF_MEMORY;
    m->external.base_dir = base_dir ? region_strdup(&m->mem, base_dir) : NULL;
    kiln_status st = (base_dir && !m->external.base_dir) ? KILN_ERR_OUT_OF_MEMORY : load_bytes(m, data, size, flags);
    if (st != KILN_OK) {
        kiln_model_free(m);
        return st;
    }
    m->load_ms = (double)(platform_now_ns() - start) / 1e6;
    *out = m;
    return KILN_OK;
}

/* ---- introspection ----------------------------------------------------------------------------------- */

int kiln_model_input_count(const kiln_model *m) { return m ? m->graph->n_inputs : 0; }
int kiln_model_output_count(const kiln_model *m) { return m ? m->graph->n_outputs : 0; }

static void describe_value(const graph *g, int v, kiln_value_info *info)
{
    const graph_value *value = &g->values[v];
    memset(info, 0, sizeof *info);
    info->name = value->name;
    info->dtype = value->dtype != KILN_UNDEFINED ? value->dtype : value->declared_dtype;
    info->kind = value->kind;
    info->elem_kind = value->elem_kind;
    info->key_dtype = value->key_dtype;
    info->rank = value->kind == VALUE_TENSOR ? value->rank : -1;
    for (int d = 0; d < info->rank; d++) {
        info->dims[d] = value->dims[d];
        info->dim_names[d] = value->dims[d] < 0 && value->sym[d] >= 0 ? g->symbols[value->sym[d]] : NULL;
    }
}

kiln_status kiln_model_input_info(const kiln_model *m, int index, kiln_value_info *info)
{
    if (!m || !info || index < 0 || index >= m->graph->n_inputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "no input %d", index);
    describe_value(m->graph, m->graph->inputs[index], info);
    return KILN_OK;
}

kiln_status kiln_model_output_info(const kiln_model *m, int index, kiln_value_info *info)
{
    if (!m || !info || index < 0 || index >= m->graph->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "no output %d", index);
    describe_value(m->graph, m->graph->outputs[index], info);
    return KILN_OK;
}

int kiln_model_input_index(const kiln_model *m, const char *name)
{
    for (int i = 0; m && name && i < m->graph->n_inputs; i++)
        if (strcmp(m->graph->values[m->graph->inputs[i]].name, name) == 0) return i;
    return -1;
}

int kiln_model_output_index(const kiln_model *m, const char *name)
{
    for (int i = 0; m && name && i < m->graph->n_outputs; i++)
        if (strcmp(m->graph->values[m->graph->outputs[i]].name, name) == 0) return i;
    return -1;
}

kiln_status kiln_model_summarize(const kiln_model *m, kiln_model_summary *s)
{
    if (!m || !s) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_model_summarize: NULL argument");
    memset(s, 0, sizeof *s);
    s->format = format_name(m->format);
    s->ir_version = m->onnx.ir_version;
    s->producer = m->producer;
    s->nodes_in_file = m->nodes_in_file;
    for (int i = 0; i < m->graph->n_nodes; i++) s->nodes += !m->graph->nodes[i].removed;
    s->initializers = m->onnx.stats.initializers;
    s->weight_bytes_mapped = m->onnx.stats.weight_bytes_mapped;
    s->weight_bytes_copied = m->onnx.stats.weight_bytes_copied;
    s->weight_bytes_prepacked = m->graph->stats.prepacked_bytes;
    s->trees = m->graph->stats.trees;
    s->tree_nodes = m->graph->stats.tree_nodes;
    s->tree_max_depth = m->graph->stats.tree_max_depth;
    s->load_ms = m->load_ms;
    s->issues = m->issues.count;
    return KILN_OK;
}

int kiln_model_opset_count(const kiln_model *m) { return m ? m->onnx.n_opsets : 0; }

kiln_status kiln_model_opset(const kiln_model *m, int index, const char **domain, int64_t *version)
{
    if (!m || index < 0 || index >= m->onnx.n_opsets) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "no opset %d", index);
    *domain = m->onnx.opsets[index].domain[0] ? m->onnx.opsets[index].domain : "ai.onnx";
    *version = m->onnx.opsets[index].version;
    return KILN_OK;
}

int kiln_model_op_type_count(const kiln_model *m) { return m ? m->n_op_types : 0; }

kiln_status kiln_model_op_type(const kiln_model *m, int index, const char **domain, const char **op_type, int *nodes)
{
    if (!m || index < 0 || index >= m->n_op_types) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "no op type %d", index);
    *domain = m->op_types[index].domain[0] ? m->op_types[index].domain : "ai.onnx";
    *op_type = m->op_types[index].op_type;
    *nodes = m->op_types[index].nodes;
    return KILN_OK;
}

const char *kiln_model_issue(const kiln_model *m, int index)
{
    if (!m || index < 0 || index >= m->issues.count) return NULL;
    return m->issues.items[index].text;
}

kiln_status kiln_model_plan_memory(const kiln_model *m, int64_t free_dim_size, size_t *arena_bytes,
                                   size_t *peak_live_bytes)
{
    kiln_clear_error();
    if (!m || !arena_bytes) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_model_plan_memory: NULL argument");
    if (!m->runnable) return kiln_fail(KILN_ERR_UNSUPPORTED, "the model has unsupported nodes");
    plan *p = m->static_plan;
    if (!p) KILN_TRY(model_plan_declared(m, free_dim_size, &p));
    *arena_bytes = p->arena_bytes;
    if (peak_live_bytes) *peak_live_bytes = p->peak_live_bytes;
    if (p != m->static_plan) plan_free(p);
    return KILN_OK;
}
