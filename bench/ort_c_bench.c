/*
 * ort_c_bench.c — onnxruntime through its C API, the third column of bench/speed_suite.py: the measurement of
 * bench/ort_bench.js without the Node binding, whose fixed cost per call (~8 us) hides onnxruntime's own time on
 * small models. Same command line, same JSON line as `kiln bench --json`:
 *
 *     cc -O2 -std=c11 -I. bench/ort_c_bench.c -o ort_c_bench -ldl          (not part of kiln's build)
 *     ort_c_bench MODEL [--threads N] [--seconds S] [--shape NAME=N or NAME=D0,D1,..] [--lib FILE]
 *                       [--ort-path DIR] [--verbose]
 *
 * The library is the libonnxruntime.so.1 shipped inside the npm package onnxruntime-node (--lib, else derived from
 * --ort-path like the other bench scripts), so both onnxruntime columns time the same build. No onnxruntime headers
 * are needed: the library is dlopen()ed and the file declares the few types and OrtApi entries it calls.
 *
 * The session matches ort_bench.js: intra-op threads N, inter-op 1, sequential execution, all graph optimisations,
 * arena and memory patterns at their defaults. Inputs are random values of the declared shapes, made like
 * `kiln bench` makes them (floats in [0,1), integers in [0,10)); symbolic dims are 1 unless --shape fixes them.
 * The input OrtValues wrap our buffers and are made once; each timed Run returns fresh outputs, released at once.
 * --verbose prints, on stderr, the library's version, every input's shape, and every output's shape and first
 * values after the first run.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_harness.h"

/* ---- the slice of onnxruntime's C API used here (include/onnxruntime/core/session/onnxruntime_c_api.h) ---- */

#define ORT_API_VERSION 30 /* onnxruntime 1.30; GetApi() serves any version from 1 up to its own */

typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus; /* NULL means success */
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtAllocator OrtAllocator; /* only ever passed back to onnxruntime */

enum { ORT_LOGGING_LEVEL_WARNING = 2 };
enum { ORT_SEQUENTIAL = 0 };
enum { ORT_ENABLE_ALL = 99 };
enum { ORT_ARENA_ALLOCATOR = 1, ORT_MEM_TYPE_DEFAULT = 0 };
enum { ORT_INVALID_ARGUMENT = 2 };
enum { /* ONNXTensorElementDataType: the values of onnx's TensorProto.DataType */
    ORT_FLOAT = 1, ORT_UINT8 = 2, ORT_INT8 = 3, ORT_INT32 = 6, ORT_INT64 = 7, ORT_BOOL = 9, ORT_DOUBLE = 11
};

typedef void (*ort_fn)(void); /* an OrtApi entry this program does not call */

/*
 * struct OrtApi is a table of function pointers that onnxruntime only ever appends to, so an entry's index is
 * fixed forever: the members below sit at the indices of the 1.30 header (API version 30), the gaps filled with
 * ort_fn placeholders, and every member used is pinned to its index by ORT_API_INDEX below. The indices were
 * counted in that header's struct OrtApi and checked against onnxruntime's own asserts in onnxruntime_c_api.cc
 * (ReleaseCustomOpDomain, the last version-1 entry, is 101; ReleaseModelMetadata is 118: the count gives both),
 * then at run time: check_api_table() below (a status made and read back through entries 0, 1, 2 and 93),
 * onnxruntime's error texts coming back from bad calls (a missing model file, a wrong input shape), and
 * `--verbose` reporting version 1.30.0, the right shapes (resnet18: input f32 [1,3,224,224], output f32 [1,1000])
 * and output values equal to `kiln run`'s on the same inputs.
 */
typedef struct ort_api {
    OrtStatus *(*CreateStatus)(int code, const char *msg);
    int (*GetErrorCode)(const OrtStatus *status);
    const char *(*GetErrorMessage)(const OrtStatus *status);
    OrtStatus *(*CreateEnv)(int log_severity_level, const char *logid, OrtEnv **out);
    ort_fn unused_4_to_6[3];
    OrtStatus *(*CreateSession)(const OrtEnv *env, const char *model_path, const OrtSessionOptions *options,
                                OrtSession **out);
    ort_fn unused_8[1];
    OrtStatus *(*Run)(OrtSession *session, const OrtRunOptions *run_options, const char *const *input_names,
                      const OrtValue *const *inputs, size_t input_len, const char *const *output_names,
                      size_t output_names_len, OrtValue **outputs);
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **options);
    ort_fn unused_11_to_12[2];
    OrtStatus *(*SetSessionExecutionMode)(OrtSessionOptions *options, int execution_mode);
    ort_fn unused_14_to_22[9];
    OrtStatus *(*SetSessionGraphOptimizationLevel)(OrtSessionOptions *options, int graph_optimization_level);
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *options, int intra_op_num_threads);
    OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *options, int inter_op_num_threads);
    ort_fn unused_26_to_29[4];
    OrtStatus *(*SessionGetInputCount)(const OrtSession *session, size_t *out);
    OrtStatus *(*SessionGetOutputCount)(const OrtSession *session, size_t *out);
    ort_fn unused_32[1];
    OrtStatus *(*SessionGetInputTypeInfo)(const OrtSession *session, size_t index, OrtTypeInfo **type_info);
    ort_fn unused_34_to_35[2];
    OrtStatus *(*SessionGetInputName)(const OrtSession *session, size_t index, OrtAllocator *allocator, char **value);
    OrtStatus *(*SessionGetOutputName)(const OrtSession *session, size_t index, OrtAllocator *allocator,
                                       char **value);
    ort_fn unused_38_to_48[11];
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *p_data, size_t p_data_len,
                                                 const int64_t *shape, size_t shape_len, int type, OrtValue **out);
    ort_fn unused_50[1];
    OrtStatus *(*GetTensorMutableData)(OrtValue *value, void **out);
    ort_fn unused_52_to_54[3];
    OrtStatus *(*CastTypeInfoToTensorInfo)(const OrtTypeInfo *type_info, const OrtTensorTypeAndShapeInfo **out);
    ort_fn unused_56_to_59[4];
    OrtStatus *(*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *info, int *out);
    OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *info, size_t *out);
    OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *info, int64_t *dim_values, size_t dim_values_length);
    OrtStatus *(*GetSymbolicDimensions)(const OrtTensorTypeAndShapeInfo *info, const char *dim_params[],
                                        size_t dim_params_length);
    ort_fn unused_64[1];
    OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *value, OrtTensorTypeAndShapeInfo **out);
    ort_fn unused_66_to_68[3];
    OrtStatus *(*CreateCpuMemoryInfo)(int type, int mem_type, OrtMemoryInfo **out);
    ort_fn unused_70_to_75[6];
    OrtStatus *(*AllocatorFree)(OrtAllocator *ort_allocator, void *p);
    ort_fn unused_77[1];
    OrtStatus *(*GetAllocatorWithDefaultOptions)(OrtAllocator **out);
    ort_fn unused_79_to_91[13];
    void (*ReleaseEnv)(OrtEnv *input);
    void (*ReleaseStatus)(OrtStatus *input);
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *input);
    void (*ReleaseSession)(OrtSession *input);
    void (*ReleaseValue)(OrtValue *input);
    ort_fn unused_97[1];
    void (*ReleaseTypeInfo)(OrtTypeInfo *input);
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *input);
    void (*ReleaseSessionOptions)(OrtSessionOptions *input);
} ort_api;

typedef struct ort_api_base {
    const ort_api *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} ort_api_base;

#define ORT_API_INDEX(member, index) \
    _Static_assert(offsetof(ort_api, member) == (index) * sizeof(ort_fn), #member " is OrtApi entry " #index)
ORT_API_INDEX(CreateStatus, 0);
ORT_API_INDEX(GetErrorCode, 1);
ORT_API_INDEX(GetErrorMessage, 2);
ORT_API_INDEX(CreateEnv, 3);
ORT_API_INDEX(CreateSession, 7);
ORT_API_INDEX(Run, 9);
ORT_API_INDEX(CreateSessionOptions, 10);
ORT_API_INDEX(SetSessionExecutionMode, 13);
ORT_API_INDEX(SetSessionGraphOptimizationLevel, 23);
ORT_API_INDEX(SetIntraOpNumThreads, 24);
ORT_API_INDEX(SetInterOpNumThreads, 25);
ORT_API_INDEX(SessionGetInputCount, 30);
ORT_API_INDEX(SessionGetOutputCount, 31);
ORT_API_INDEX(SessionGetInputTypeInfo, 33);
ORT_API_INDEX(SessionGetInputName, 36);
ORT_API_INDEX(SessionGetOutputName, 37);
ORT_API_INDEX(CreateTensorWithDataAsOrtValue, 49);
ORT_API_INDEX(GetTensorMutableData, 51);
ORT_API_INDEX(CastTypeInfoToTensorInfo, 55);
ORT_API_INDEX(GetTensorElementType, 60);
ORT_API_INDEX(GetDimensionsCount, 61);
ORT_API_INDEX(GetDimensions, 62);
ORT_API_INDEX(GetSymbolicDimensions, 63);
ORT_API_INDEX(GetTensorTypeAndShape, 65);
ORT_API_INDEX(CreateCpuMemoryInfo, 69);
ORT_API_INDEX(AllocatorFree, 76);
ORT_API_INDEX(GetAllocatorWithDefaultOptions, 78);
ORT_API_INDEX(ReleaseEnv, 92);
ORT_API_INDEX(ReleaseStatus, 93);
ORT_API_INDEX(ReleaseMemoryInfo, 94);
ORT_API_INDEX(ReleaseSession, 95);
ORT_API_INDEX(ReleaseValue, 96);
ORT_API_INDEX(ReleaseTypeInfo, 98);
ORT_API_INDEX(ReleaseTensorTypeAndShapeInfo, 99);
ORT_API_INDEX(ReleaseSessionOptions, 100);

/* ---- calling it ---- */

static const ort_api *ort;

/* Every failing call ends the program with one line naming the call. */
static void ort_check(OrtStatus *status, const char *call)
{
    if (!status) return;
    fprintf(stderr, "ort_c_bench: %s: ", call);
    for (const char *p = ort->GetErrorMessage(status); *p; p++) fputc(*p == '\n' ? ' ' : *p, stderr);
    fputc('\n', stderr);
    exit(1);
}

#define ORT_TRY(function, ...) ort_check(ort->function(__VA_ARGS__), #function)

static void fail(const char *message, const char *detail)
{
    fprintf(stderr, "ort_c_bench: %s%s\n", message, detail);
    exit(1);
}

/* The library's default path inside the npm package (bin/napi-v6/<os>/<arch>/). */
static void default_library_path(const char *ort_path, char *out, size_t size)
{
#if defined(__aarch64__)
    const char *arch = "arm64";
#else
    const char *arch = "x64";
#endif
    snprintf(out, size, "%s/onnxruntime-node/bin/napi-v6/linux/%s/libonnxruntime.so.1", ort_path, arch);
}

static const char *load_api(const char *library)
{
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) fail("cannot load onnxruntime: ", dlerror());
    const ort_api_base *(*get_api_base)(void) = (const ort_api_base *(*)(void))dlsym(handle, "OrtGetApiBase");
    if (!get_api_base) fail("no OrtGetApiBase in ", library);
    const ort_api_base *base = get_api_base();
    ort = base->GetApi(ORT_API_VERSION);
    if (!ort) fail("C API version 30 (onnxruntime 1.30) is not served by onnxruntime ", base->GetVersionString());
    return base->GetVersionString();
}

/* A status made and read back: entries 0, 1, 2 and 93 are what this program takes them for. */
static void check_api_table(void)
{
    OrtStatus *probe = ort->CreateStatus(ORT_INVALID_ARGUMENT, "probe");
    int ok = probe && ort->GetErrorCode(probe) == ORT_INVALID_ARGUMENT &&
             strcmp(ort->GetErrorMessage(probe), "probe") == 0;
    ort->ReleaseStatus(probe);
    if (!ok) fail("the OrtApi table does not match this program's declaration", "");
}

/* ---- the model's inputs ---- */

#define MAX_RANK 16
#define MAX_SHAPES 16

typedef struct shape_override {
    const char *name;
    size_t rank;
    int64_t dims[MAX_RANK];
} shape_override;

typedef struct options {
    const char *model, *library, *ort_path;
    int threads, verbose;
    double seconds;
    shape_override shapes[MAX_SHAPES];
    int n_shapes;
} options;

typedef struct tensor {
    int type;
    size_t rank;
    int64_t dims[MAX_RANK];
    void *data;
    size_t bytes;
} tensor;

static size_t element_size(int type)
{
    switch (type) {
    case ORT_FLOAT: case ORT_INT32: return 4;
    case ORT_INT64: case ORT_DOUBLE: return 8;
    case ORT_UINT8: case ORT_INT8: case ORT_BOOL: return 1;
    default: return 0;
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case ORT_FLOAT: return "f32";
    case ORT_DOUBLE: return "f64";
    case ORT_INT32: return "i32";
    case ORT_INT64: return "i64";
    case ORT_UINT8: return "u8";
    case ORT_INT8: return "i8";
    case ORT_BOOL: return "bool";
    default: return "other";
    }
}

/* Declared dims with symbols resolved (--shape SYMBOL=N, else 1), or the whole --shape NAME=DIMS of the input. */
static void input_shape(const OrtTensorTypeAndShapeInfo *info, const char *name, const options *o, tensor *t)
{
    for (int k = 0; k < o->n_shapes; k++)
        if (strcmp(o->shapes[k].name, name) == 0) {
            t->rank = o->shapes[k].rank;
            memcpy(t->dims, o->shapes[k].dims, sizeof t->dims);
            return;
        }
    ORT_TRY(GetDimensionsCount, info, &t->rank);
    if (t->rank > MAX_RANK) fail("too many dimensions in input ", name);
    const char *symbols[MAX_RANK];
    ORT_TRY(GetDimensions, info, t->dims, t->rank);
    ORT_TRY(GetSymbolicDimensions, info, symbols, t->rank);
    for (size_t d = 0; d < t->rank; d++) {
        if (t->dims[d] >= 0) continue;
        t->dims[d] = 1;
        for (int k = 0; k < o->n_shapes; k++)
            if (symbols[d] && o->shapes[k].rank == 1 && strcmp(o->shapes[k].name, symbols[d]) == 0)
                t->dims[d] = o->shapes[k].dims[0];
    }
}

static uint64_t next_random(uint64_t *state)
{
    /* xorshift64*, as `kiln bench` draws its inputs */
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

static void fill_random(tensor *t, uint64_t *state)
{
    size_t n = t->bytes / element_size(t->type);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = next_random(state);
        double u = (double)(r >> 11) / 9007199254740992.0;
        switch (t->type) {
        case ORT_FLOAT: ((float *)t->data)[i] = (float)u; break;
        case ORT_DOUBLE: ((double *)t->data)[i] = u; break;
        case ORT_INT64: ((int64_t *)t->data)[i] = (int64_t)(r % 10); break;
        case ORT_INT32: ((int32_t *)t->data)[i] = (int32_t)(r % 10); break;
        case ORT_BOOL: ((uint8_t *)t->data)[i] = r & 1; break;
        default: ((uint8_t *)t->data)[i] = (uint8_t)(r % 10); break;
        }
    }
}

/* Input `index` as a random tensor wrapped in an OrtValue over our buffer; its name goes to *name. */
static OrtValue *make_input(OrtSession *session, size_t index, const options *o, const OrtMemoryInfo *cpu,
                            OrtAllocator *allocator, char **name, tensor *t, uint64_t *state)
{
    OrtTypeInfo *type_info;
    const OrtTensorTypeAndShapeInfo *info;
    ORT_TRY(SessionGetInputName, session, index, allocator, name);
    ORT_TRY(SessionGetInputTypeInfo, session, index, &type_info);
    ORT_TRY(CastTypeInfoToTensorInfo, type_info, &info);
    if (!info) fail("input is not a tensor: ", *name);
    ORT_TRY(GetTensorElementType, info, &t->type);
    if (!element_size(t->type)) fail("unsupported input element type (float, double, integers, bool only): ", *name);
    input_shape(info, *name, o, t);
    ort->ReleaseTypeInfo(type_info);
    size_t n = 1;
    for (size_t d = 0; d < t->rank; d++) n *= (size_t)t->dims[d];
    t->bytes = n * element_size(t->type);
    t->data = malloc(t->bytes ? t->bytes : 1);
    if (!t->data) fail("out of memory for input ", *name);
    fill_random(t, state);
    OrtValue *value;
    ORT_TRY(CreateTensorWithDataAsOrtValue, cpu, t->data, t->bytes, t->dims, t->rank, t->type, &value);
    return value;
}

static void print_shape(const char *role, const char *name, int type, const int64_t *dims, size_t rank)
{
    fprintf(stderr, "%s %s: %s [", role, name, type_name(type));
    for (size_t d = 0; d < rank; d++) fprintf(stderr, "%s%lld", d ? "," : "", (long long)dims[d]);
    fprintf(stderr, "]");
}

/* An output's type and shape, and its first values if it holds floats (to compare with another runtime). */
static void print_output(const char *name, OrtValue *value)
{
    OrtTensorTypeAndShapeInfo *info;
    int type;
    size_t rank, n = 1;
    int64_t dims[MAX_RANK];
    ORT_TRY(GetTensorTypeAndShape, value, &info);
    ORT_TRY(GetTensorElementType, info, &type);
    ORT_TRY(GetDimensionsCount, info, &rank);
    if (rank > MAX_RANK) fail("too many dimensions in output ", name);
    ORT_TRY(GetDimensions, info, dims, rank);
    ort->ReleaseTensorTypeAndShapeInfo(info);
    print_shape("output", name, type, dims, rank);
    for (size_t d = 0; d < rank; d++) n *= (size_t)dims[d];
    if (type == ORT_FLOAT) {
        float *data;
        ORT_TRY(GetTensorMutableData, value, (void **)&data);
        for (size_t i = 0; i < n && i < 4; i++) fprintf(stderr, "%s%.6g", i ? " " : " first values ", data[i]);
    }
    fprintf(stderr, "\n");
}

/* ---- the benchmark ---- */

static void usage(void)
{
    fprintf(stderr, "usage: ort_c_bench MODEL [--threads N] [--seconds S] [--shape NAME=N or NAME=D0,D1,..]\n"
                    "                         [--lib libonnxruntime.so.1] [--ort-path NODE_MODULES] [--verbose]\n");
    exit(2);
}

static void parse_shape(char *arg, shape_override *s)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg) fail("--shape wants NAME=N or NAME=D0,D1,.., not ", arg);
    *eq = '\0';
    s->name = arg;
    s->rank = 0;
    for (char *p = eq + 1, *end; *p; p = *end ? end + 1 : end) {
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || (*end && *end != ',') || s->rank == MAX_RANK) fail("bad dims in --shape ", arg);
        s->dims[s->rank++] = d;
    }
    if (s->rank == 0) fail("no dims in --shape ", arg);
}

static options parse_options(int argc, char **argv)
{
    options o = {.threads = 1, .seconds = 3, .ort_path = ".cache/npm/node_modules"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--threads") == 0 && has_value) o.threads = atoi(argv[++i]);
        else if (strcmp(a, "--seconds") == 0 && has_value) o.seconds = atof(argv[++i]);
        else if (strcmp(a, "--lib") == 0 && has_value) o.library = argv[++i];
        else if (strcmp(a, "--ort-path") == 0 && has_value) o.ort_path = argv[++i];
        else if (strcmp(a, "--shape") == 0 && has_value && o.n_shapes < MAX_SHAPES)
            parse_shape(argv[++i], &o.shapes[o.n_shapes++]);
        else if (strcmp(a, "--verbose") == 0) o.verbose = 1;
        else if (a[0] != '-' && !o.model) o.model = a;
        else usage();
    }
    if (!o.model || o.threads < 1 || !(o.seconds >= 0)) usage();
    return o;
}

static OrtSession *open_session(const OrtEnv *env, const options *o, double *load_ms)
{
    OrtSessionOptions *session_options;
    OrtSession *session;
    ORT_TRY(CreateSessionOptions, &session_options);
    ORT_TRY(SetIntraOpNumThreads, session_options, o->threads);
    ORT_TRY(SetInterOpNumThreads, session_options, 1);
    ORT_TRY(SetSessionExecutionMode, session_options, ORT_SEQUENTIAL);
    ORT_TRY(SetSessionGraphOptimizationLevel, session_options, ORT_ENABLE_ALL);
    double t0 = bench_now_us();
    ORT_TRY(CreateSession, env, o->model, session_options, &session);
    *load_ms = (bench_now_us() - t0) / 1e3;
    ort->ReleaseSessionOptions(session_options);
    return session;
}

/* The latency of p percent of the sorted runs, interpolated between neighbours as `kiln bench` does. */
static double percentile(const double *sorted, size_t n, double p)
{
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank, hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

typedef struct io {
    size_t n_inputs, n_outputs;
    char **input_names, **output_names;
    OrtValue **inputs, **outputs;
} io;

static void run_once(OrtSession *session, io *x)
{
    memset(x->outputs, 0, x->n_outputs * sizeof *x->outputs);
    ORT_TRY(Run, session, NULL, (const char *const *)x->input_names, (const OrtValue *const *)x->inputs, x->n_inputs,
            (const char *const *)x->output_names, x->n_outputs, x->outputs);
}

static void release_outputs(io *x)
{
    for (size_t k = 0; k < x->n_outputs; k++) ort->ReleaseValue(x->outputs[k]);
}

/* Runs back to back for `seconds` (at least once); returns the sorted latencies in us and their count. */
static double *time_runs(OrtSession *session, io *x, double seconds, size_t *runs)
{
    size_t n = 0, capacity = 1024;
    double *t = malloc(capacity * sizeof *t);
    double start = bench_now_us();
    while (t && (bench_now_us() - start < seconds * 1e6 || n == 0)) {
        if (n == capacity) {
            double *more = realloc(t, 2 * capacity * sizeof *t);
            if (!more) break;
            t = more;
            capacity *= 2;
        }
        double t0 = bench_now_us();
        run_once(session, x);
        t[n++] = bench_now_us() - t0;
        release_outputs(x);
    }
    if (!t) fail("out of memory for the latencies", "");
    qsort(t, n, sizeof *t, bench_compare_doubles);
    *runs = n;
    return t;
}

int main(int argc, char **argv)
{
    options o = parse_options(argc, argv);
    char library[4096];
    if (o.library) snprintf(library, sizeof library, "%s", o.library);
    else default_library_path(o.ort_path, library, sizeof library);
    const char *version = load_api(library);
    check_api_table();
    if (o.verbose) fprintf(stderr, "onnxruntime %s, C API version %d, from %s\n", version, ORT_API_VERSION, library);

    OrtEnv *env;
    OrtMemoryInfo *cpu;
    OrtAllocator *allocator;
    double load_ms;
    ORT_TRY(CreateEnv, ORT_LOGGING_LEVEL_WARNING, "ort_c_bench", &env);
    ORT_TRY(CreateCpuMemoryInfo, ORT_ARENA_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &cpu);
    ORT_TRY(GetAllocatorWithDefaultOptions, &allocator);
    OrtSession *session = open_session(env, &o, &load_ms);

    io x;
    ORT_TRY(SessionGetInputCount, session, &x.n_inputs);
    ORT_TRY(SessionGetOutputCount, session, &x.n_outputs);
    x.input_names = calloc(x.n_inputs + 1, sizeof *x.input_names);
    x.inputs = calloc(x.n_inputs + 1, sizeof *x.inputs);
    x.output_names = calloc(x.n_outputs + 1, sizeof *x.output_names);
    x.outputs = calloc(x.n_outputs + 1, sizeof *x.outputs);
    tensor *tensors = calloc(x.n_inputs + 1, sizeof *tensors);
    if (!x.input_names || !x.inputs || !x.output_names || !x.outputs || !tensors) fail("out of memory", "");
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < x.n_inputs; i++) {
        x.inputs[i] = make_input(session, i, &o, cpu, allocator, &x.input_names[i], &tensors[i], &state);
        if (o.verbose) {
            print_shape("input", x.input_names[i], tensors[i].type, tensors[i].dims, tensors[i].rank);
            fprintf(stderr, "\n");
        }
    }
    for (size_t k = 0; k < x.n_outputs; k++) ORT_TRY(SessionGetOutputName, session, k, allocator, &x.output_names[k]);

    for (int warm = 0; warm < 3; warm++) {
        run_once(session, &x);
        for (size_t k = 0; o.verbose && warm == 0 && k < x.n_outputs; k++)
            print_output(x.output_names[k], x.outputs[k]);
        release_outputs(&x);
    }
    size_t runs;
    double *t = time_runs(session, &x, o.seconds, &runs);

    printf("{\"model\":\"");
    for (const char *p = o.model; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar(*p);
    }
    printf("\",\"threads\":%d,\"runs\":%zu,\"load_ms\":%.3f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
           "\"min_us\":%.1f}\n",
           o.threads, runs, load_ms, percentile(t, runs, 50), percentile(t, runs, 90), percentile(t, runs, 99), t[0]);

    free(t);
    for (size_t i = 0; i < x.n_inputs; i++) {
        ort->ReleaseValue(x.inputs[i]);
        free(tensors[i].data);
        ORT_TRY(AllocatorFree, allocator, x.input_names[i]);
    }
    for (size_t k = 0; k < x.n_outputs; k++) ORT_TRY(AllocatorFree, allocator, x.output_names[k]);
    free(tensors);
    free(x.input_names);
    free(x.inputs);
    free(x.output_names);
    free(x.outputs);
    ort->ReleaseSession(session);
    ort->ReleaseMemoryInfo(cpu);
    ort->ReleaseEnv(env);
    return 0;
}
