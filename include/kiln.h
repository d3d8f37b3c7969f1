/*
 * kiln.h — the public C API of kiln, the whole contract between the engine and every front end,
 * binding and user program.
 *
 * The life of a prediction:
 *
 *     kiln_model *model;                      // immutable once loaded; share it between threads
 *     kiln_model_load("model.onnx", &model);  // validates everything; fails here, never later
 *     kiln_session *session;                  // one per thread: owns the arena and the thread pool
 *     kiln_session_options opts;
 *     kiln_session_options_init(&opts);
 *     opts.threads = 2;
 *     kiln_session_create(model, &opts, &session);
 *     kiln_session_set_input(session, 0, KILN_FLOAT32, 2, dims, data);  // borrowed, not copied
 *     kiln_session_run(session);              // plans memory on first run or when shapes change
 *     kiln_tensor out;
 *     kiln_session_output(session, 0, &out);  // points into the session; valid until the next run
 *
 * Every function that can fail returns a kiln_status; kiln_last_error() then names the file, node and
 * tensor involved and what was expected. Bad input never crashes the process.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(KILN_SHARED_BUILD)
#define KILN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

/* Highest tensor rank kiln handles; a model with a higher rank is rejected at load. */
#define KILN_MAX_RANK 8

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARGUMENT, /* the caller passed something wrong: NULL, bad index, wrong dtype or shape */
    KILN_ERR_IO,               /* a file could not be opened, mapped, read or written */
    KILN_ERR_MALFORMED,        /* a model or tensor file is not valid: truncated, inconsistent, hostile */
    KILN_ERR_UNSUPPORTED,      /* valid, but uses an operator, opset or dtype kiln does not implement */
    KILN_ERR_OUT_OF_MEMORY,
    KILN_ERR_RUNTIME,          /* the data itself is invalid for the model, e.g. an index out of range */
    KILN_ERR_INTERNAL          /* a bug in kiln; please report it */
} kiln_status;

/* Element types, numbered as ONNX's TensorProto.DataType so files and API agree. */
typedef enum kiln_dtype {
    KILN_UNDEFINED = 0,
    KILN_FLOAT32 = 1,
    KILN_UINT8 = 2,
    KILN_INT8 = 3,
    KILN_UINT16 = 4,
    KILN_INT16 = 5,
    KILN_INT32 = 6,
    KILN_INT64 = 7,
    KILN_STRING = 8,
    KILN_BOOL = 9,
    KILN_FLOAT16 = 10,
    KILN_FLOAT64 = 11,
    KILN_UINT32 = 12,
    KILN_UINT64 = 13,
    KILN_COMPLEX64 = 14,
    KILN_COMPLEX128 = 15,
    KILN_BFLOAT16 = 16
} kiln_dtype;

/* A dense, row-major tensor. `data` is owned by whoever produced the struct (see each function). A
 * KILN_STRING tensor's data is an array of `const char *`, one NUL-terminated UTF-8 string per element; the
 * strings, like the array, belong to the producer (for outputs: the session, until its next run). */
typedef struct kiln_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    void *data;
} kiln_tensor;

/* What a graph input or output is. Non-tensor values travel as kiln_tensor descriptors too:
 *   a sequence of tensors: dtype = the elements' dtype, rank 1, dims[0] = number of elements, and `data`
 *     points to that many kiln_tensor elements (each with its own data);
 *   an optional: the same with dims[0] = 0 (no value) or 1, `data` pointing to the one element — a tensor,
 *     or a sequence descriptor when elem_kind is KILN_VALUE_SEQUENCE;
 *   a map: dtype = the values' dtype, rank 1, dims[0] = number of entries, and `data` pointing to two
 *     kiln_tensor: the keys (1-D, int64 or string, key_dtype) then the values (1-D, same length), entry i
 *     being keys[i] -> values[i]. Maps occur as the elements of a sequence (elem_kind KILN_VALUE_MAP: ZipMap's
 *     output), which kiln produces as outputs but does not take as inputs.
 * `data` is never NULL, even when dims[0] is 0. Sparse tensors are recognised but not run. */
typedef enum kiln_value_kind {
    KILN_VALUE_TENSOR = 0,
    KILN_VALUE_SEQUENCE = 1,
    KILN_VALUE_MAP = 2,
    KILN_VALUE_OPTIONAL = 3,
    KILN_VALUE_SPARSE = 4
} kiln_value_kind;

/* Name and type of a graph input or output. A dim is -1 when it is not fixed by the model; `dim_names[i]`
 * then holds its symbolic name (e.g. "batch") or NULL when it has none. Strings belong to the model. For a
 * sequence or optional, dtype is its elements' and the shape is not given (rank -1); for a map, its values'. */
typedef struct kiln_value_info {
    const char *name;
    kiln_dtype dtype;
    int rank; /* -1 when the model does not say */
    int64_t dims[KILN_MAX_RANK];
    const char *dim_names[KILN_MAX_RANK];
    kiln_value_kind kind;
    kiln_value_kind elem_kind; /* what an optional or a sequence holds */
    kiln_dtype key_dtype;      /* maps and sequences of maps: the keys' dtype (else KILN_UNDEFINED) */
} kiln_value_info;

typedef struct kiln_model kiln_model;
typedef struct kiln_session kiln_session;

/* ---- errors ------------------------------------------------------------------------------------------ */

/* Message for the last failure on the calling thread ("" when none). Valid until the thread's next call. */
KILN_API const char *kiln_last_error(void);
KILN_API const char *kiln_status_name(kiln_status status);
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);
/* Bytes per element: 0 for KILN_UNDEFINED, sizeof(char *) for KILN_STRING (one pointer per element). */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);
KILN_API const char *kiln_version(void);

/* ---- models ------------------------------------------------------------------------------------------ */

/* Load flags. */
#define KILN_LOAD_INSPECT 1u /* succeed even when operators are unsupported, so tools can describe the model */

/* Maps and validates a model file. The loader reports every unsupported operator in one error. */
KILN_API kiln_status kiln_model_load(const char *path, kiln_model **model);
KILN_API kiln_status kiln_model_load_ex(const char *path, unsigned flags, kiln_model **model);
/* Loads from a caller-owned buffer that must outlive the model (weights point into it). External-data
 * tensors are resolved against `base_dir` (NULL: external data is refused). */
KILN_API kiln_status kiln_model_load_from_memory(const void *data, size_t size, const char *base_dir,
                                                 unsigned flags, kiln_model **model);
KILN_API void kiln_model_free(kiln_model *model);

KILN_API int kiln_model_input_count(const kiln_model *model);
KILN_API int kiln_model_output_count(const kiln_model *model);
KILN_API kiln_status kiln_model_input_info(const kiln_model *model, int index, kiln_value_info *info);
KILN_API kiln_status kiln_model_output_info(const kiln_model *model, int index, kiln_value_info *info);
/* Index of the input or output called `name`, or -1. */
KILN_API int kiln_model_input_index(const kiln_model *model, const char *name);
KILN_API int kiln_model_output_index(const kiln_model *model, const char *name);

/* ---- introspection (what `kiln info` shows) ------------------------------------------------------------ */

typedef struct kiln_model_summary {
    const char *format;         /* "onnx", "xgboost-json", "xgboost-ubjson", "lightgbm-text" */
    int64_t ir_version;
    const char *producer;       /* e.g. "pytorch 1.13.1" */
    int nodes_in_file;          /* after inlining model-local functions */
    int nodes;                  /* that run, after constant folding and dead-node removal */
    int initializers;
    size_t weight_bytes_mapped; /* tensor data used in place from the mapped file */
    size_t weight_bytes_copied; /* decoded or realigned copies (misaligned raw data, typed fields) */
    size_t weight_bytes_prepacked; /* weights rearranged once at load for faster kernels (GEMM panels) */
    int64_t trees, tree_nodes;  /* tree ensembles: trees and nodes reachable from their roots */
    int32_t tree_max_depth;     /* deepest root-to-leaf path */
    double load_ms;
    int issues;                 /* problems found (see kiln_model_issue); non-zero only with KILN_LOAD_INSPECT */
} kiln_model_summary;

KILN_API kiln_status kiln_model_summarize(const kiln_model *model, kiln_model_summary *summary);
KILN_API int kiln_model_opset_count(const kiln_model *model);
KILN_API kiln_status kiln_model_opset(const kiln_model *model, int index, const char **domain, int64_t *version);
/* Distinct operator types among the nodes that run, with how many nodes use each. */
KILN_API int kiln_model_op_type_count(const kiln_model *model);
KILN_API kiln_status kiln_model_op_type(const kiln_model *model, int index, const char **domain,
                                        const char **op_type, int *nodes);
/* "node 'x' (Op, opset 13): message" for each problem found by an inspecting load. */
KILN_API const char *kiln_model_issue(const kiln_model *model, int index);
/* Plans a run with the declared input shapes, free dims set to `free_dim_size`, and reports the arena size
 * and the peak of simultaneously live bytes (a lower bound no plan can beat). */
KILN_API kiln_status kiln_model_plan_memory(const kiln_model *model, int64_t free_dim_size, size_t *arena_bytes,
                                            size_t *peak_live_bytes);

/* ---- sessions ---------------------------------------------------------------------------------------- */

typedef struct kiln_session_options {
    int threads;    /* threads used inside one run, including the caller's; default 1 */
    int raw_scores; /* tree and linear models: output margins before the objective's transform
                     * (sigmoid, softmax, exp); default 0 */
    int profile;    /* time every node of every run (see kiln_session_profile); default 0 */
} kiln_session_options;

KILN_API void kiln_session_options_init(kiln_session_options *options);

/* The model must outlive the session. Sessions are not thread-safe; use one per thread. */
KILN_API kiln_status kiln_session_create(const kiln_model *model, const kiln_session_options *options,
                                         kiln_session **session);
KILN_API void kiln_session_free(kiln_session *session);

/* Binds input `index` to caller memory, read during kiln_session_run (not copied; keep it alive).
 * dtype and rank must match the model; fixed dims must match; symbolic dims may take any size. A sequence
 * or optional input is given as its descriptor (see kiln_value_kind): the elements' dtype, rank 1,
 * dims = {count}, data = the elements; such inputs are re-planned on every run. */
KILN_API kiln_status kiln_session_set_input(kiln_session *session, int index, kiln_dtype dtype, int rank,
                                            const int64_t *dims, const void *data);
/* Runs the model on the bound inputs. Plans memory the first time and whenever input shapes change;
 * otherwise allocates nothing. */
KILN_API kiln_status kiln_session_run(kiln_session *session);
/* Output `index` of the last run. `out->data` points into the session and stays valid until the next run
 * or until the session is freed. */
KILN_API kiln_status kiln_session_output(const kiln_session *session, int index, kiln_tensor *out);
/* Bytes of the session's current arena (the planned working memory of one run). */
KILN_API size_t kiln_session_arena_bytes(const kiln_session *session);

/* Where the time of a profiling session went, node by node (options.profile set at creation). The nodes
 * are those of the optimised graph: fused nodes (domain "ai.kiln") stand for the ones they replaced. */
typedef struct kiln_node_profile {
    const char *name;    /* the node's name, or its first output's when it has none */
    const char *domain;  /* "" for the default ONNX domain */
    const char *op_type;
    uint64_t runs;       /* runs that executed the node since the session was created */
    uint64_t total_ns;   /* wall time inside the node over those runs */
} kiln_node_profile;

/* Number of entries kiln_session_profile reports; 0 when the session does not profile. */
KILN_API int kiln_session_profile_count(const kiln_session *session);
KILN_API kiln_status kiln_session_profile(const kiln_session *session, int index, kiln_node_profile *out);

#ifdef __cplusplus
}
#endif
#endif
