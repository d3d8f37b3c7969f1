/*
 * model.h — what a loaded model is inside the runtime.
 */
#ifndef KILN_RUNTIME_MODEL_H
#define KILN_RUNTIME_MODEL_H

#include "core/mem.h"
#include "core/platform/platform.h"
#include "formats/detect.h"
#include "formats/onnx.h"
#include "graph/graph.h"
#include "graph/passes.h"
#include "kiln.h"
#include "runtime/plan.h"

typedef struct op_type_count {
    const char *domain, *op_type;
    int nodes;
} op_type_count;

struct kiln_model {
    region mem;            /* graph, names, attributes, copied and folded tensors */
    file_mapping file;     /* the model file, when loaded from a path */
    onnx_external_files external;
    model_format format;
    onnx_model onnx;       /* for tree models: only the graph and the opsets (ai.kiln 1) */
    const char *producer;  /* "name version" */
    graph *graph;
    graph_issues issues;   /* filled by inspecting loads */
    bool runnable;         /* false when issues were found */
    int nodes_in_file;
    double load_ms;
    op_type_count *op_types;
    int n_op_types;
    plan *static_plan;     /* when every input shape is fixed: built once at load, shared by sessions */
};

/* Plans a single-threaded run for the declared input shapes with free dims set to `free_dim` (inputs whose contents decide
 * shapes cannot be planned this way: KILN_ERR_UNSUPPORTED). */
kiln_status model_plan_declared(const kiln_model *model, int64_t free_dim, plan **out);

#endif
