/*
 * elementwise.c — the broadcasting loop under every elementwise operator (see elementwise.h).
 *
 * ew_run first describes the iteration as an ew_loop: the output's dims with size-1 dims dropped and
 * neighbouring dims merged wherever every input can step through them as one (both advancing contiguously,
 * or both broadcast), plus each input's stride per merged dim, 0 where it is broadcast. After merging, the
 * innermost dim is the row a kernel computes, and each input's stride along it is 1 or 0: that is the
 * `varies` flag kernels specialise on. The output is then cut into element ranges for the thread pool;
 * each range is walked row piece by row piece with an odometer over the outer dims.
 *
 * It also adapts the vectorised float32 functions of kernels/vmath.h to the kernel interface, so that an
 * operator's init can swap its reference kernel for one of them.
 */
#include "kernels/vmath.h"
#include "ops/elementwise.h"

/* Elements per parallel task: large enough that scheduling costs nothing next to the arithmetic. */
#define EW_GRAIN 16384

typedef struct ew_loop {
    int rank; /* merged dims, >= 1; dims[rank - 1] is the row length */
    int64_t dims[KILN_MAX_RANK];
    int n_in;
    int64_t strides[EW_MAX_INPUTS][KILN_MAX_RANK]; /* in elements; 0 where the input is broadcast */
    bool varies[EW_MAX_INPUTS];                     /* stride 1 along the row (else 0) */
    const char *in[EW_MAX_INPUTS];
    size_t in_size[EW_MAX_INPUTS]; /* bytes per element */
    char *out;
    size_t out_size;
    ew_kernel kernel;
    const void *params;
} ew_loop;

/* Input strides over out's dims (right-aligned, numpy style), 0 on broadcast dims. */
static void broadcast_strides(const kiln_tensor *out, const kiln_tensor *in, int64_t *strides)
{
    int64_t step = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int k = d - (out->rank - in->rank);
        int64_t dim = k >= 0 ? in->dims[k] : 1;
        strides[d] = dim == 1 ? 0 : step;
        step *= dim;
    }
}

/* Builds the merged iteration of out's shape; strides[j] are input j's strides over out's dims. */
static void loop_merge_dims(ew_loop *l, const kiln_tensor *out, int64_t strides[][KILN_MAX_RANK])
{
    l->rank = 0;
    for (int d = 0; d < out->rank; d++) {
        int64_t dim = out->dims[d];
        if (dim == 1) continue;
        int last = l->rank - 1;
        bool mergeable = last >= 0;
        for (int j = 0; j < l->n_in && mergeable; j++) mergeable = l->strides[j][last] == strides[j][d] * dim;
        if (mergeable) {
            l->dims[last] *= dim;
        } else {
            last = l->rank++;
            l->dims[last] = dim;
        }
        for (int j = 0; j < l->n_in; j++) l->strides[j][last] = strides[j][d];
    }
    if (l->rank == 0) { /* a scalar, or all dims 1: one row of one element */
        l->rank = 1;
        l->dims[0] = 1;
        for (int j = 0; j < l->n_in; j++) l->strides[j][0] = 0;
    }
    for (int j = 0; j < l->n_in; j++) l->varies[j] = l->strides[j][l->rank - 1] != 0;
}

/* Computes output elements [begin, end). */
static void loop_run_range(void *arg, int64_t begin, int64_t end)
{
    const ew_loop *l = arg;
    int outer = l->rank - 1;
    int64_t row_len = l->dims[outer];
    int64_t row = begin / row_len, col = begin % row_len;
    int64_t index[KILN_MAX_RANK], offset[EW_MAX_INPUTS] = {0};
    for (int d = outer - 1; d >= 0; d--) {
        index[d] = row % l->dims[d];
        row /= l->dims[d];
        for (int j = 0; j < l->n_in; j++) offset[j] += index[d] * l->strides[j][d];
    }
    const void *ptrs[EW_MAX_INPUTS];
    while (begin < end) {
        int64_t n = row_len - col < end - begin ? row_len - col : end - begin;
        for (int j = 0; j < l->n_in; j++)
            ptrs[j] = l->in[j] + (size_t)(offset[j] + (l->varies[j] ? col : 0)) * l->in_size[j];
        l->kernel(l->params, l->out + (size_t)begin * l->out_size, ptrs, l->varies, n);
        begin += n;
        col = 0;
        for (int d = outer - 1; d >= 0; d--) { /* odometer: next row */
            for (int j = 0; j < l->n_in; j++) offset[j] += l->strides[j][d];
            if (++index[d] < l->dims[d]) break;
            for (int j = 0; j < l->n_in; j++) offset[j] -= l->strides[j][d] * l->dims[d];
            index[d] = 0;
        }
    }
}

void ew_run(const parallel_runner *parallel, ew_kernel kernel, const void *params, kiln_tensor *out, int n_in,
            const kiln_tensor *const *in)
{
    int64_t total = tensor_numel(out);
    if (total == 0) return;
    ew_loop l = {.n_in = n_in, .out = out->data, .out_size = kiln_dtype_size(out->dtype), .kernel = kernel,
                 .params = params};
    int64_t strides[EW_MAX_INPUTS][KILN_MAX_RANK];
    for (int j = 0; j < n_in; j++) {
        broadcast_strides(out, in[j], strides[j]);
        l.in[j] = in[j]->data;
        l.in_size[j] = kiln_dtype_size(in[j]->dtype);
    }
    loop_merge_dims(&l, out, strides);
    parallel_for(parallel, total, EW_GRAIN, loop_run_range, &l);
}

kiln_status ew_eval_node(op_ctx *ctx)
{
    const ew_node *p = ctx->params;
    ew_run(ctx->parallel, p->kernel, &p->attrs, ctx->outputs[0], ctx->n_inputs,
           (const kiln_tensor *const *)ctx->inputs);
    return KILN_OK;
}

/* Runs a vmath function over one row; a broadcast input gives one value, computed once. */
static void vector_row(vmath_f32_fn fn, void *out, const void *in, bool varies, int64_t n)
{
    if (varies) {
        fn(out, in, n);
        return;
    }
    float value;
    fn(&value, in, 1);
    for (int64_t i = 0; i < n; i++) ((float *)out)[i] = value;
}

#define VECTOR_KERNEL(f)                                                                                    \
    static void vector_##f(const void *params, void *out, const void *const *in, const bool *varies, int64_t n) \
    {                                                                                                       \
        (void)params;                                                                                       \
        vector_row(vmath_fast_f32()->f, out, in[0], varies[0], n);                                          \
    }
VECTOR_KERNEL(exp)
VECTOR_KERNEL(sigmoid)
VECTOR_KERNEL(tanh)
VECTOR_KERNEL(erf)

void ew_prefer_vectorised(const op_init_ctx *ctx, ew_vector_fn fn, ew_kernel *kernel)
{
    static const ew_kernel vector_kernels[] = {
        [EW_VECTOR_EXP] = vector_exp, [EW_VECTOR_SIGMOID] = vector_sigmoid,
        [EW_VECTOR_TANH] = vector_tanh, [EW_VECTOR_ERF] = vector_erf,
    };
    if (ctx->input_dtypes[0] == KILN_FLOAT32 && vmath_fast_f32()) *kernel = vector_kernels[fn];
}

kiln_status ew_pick(const op_init_ctx *ctx, int input, const ew_kernel *table, ew_kernel *kernel)
{
    kiln_dtype supported[EW_DTYPE_SLOTS + 1];
    int n = 0;
    for (int dtype = 0; dtype < EW_DTYPE_SLOTS; dtype++)
        if (table[dtype]) supported[n++] = (kiln_dtype)dtype;
    supported[n] = KILN_UNDEFINED;
    KILN_TRY(op_require_dtype(ctx, input, supported));
    *kernel = table[ctx->input_dtypes[input]];
    return KILN_OK;
}

kiln_status ew_require_same_dtype(const op_init_ctx *ctx, int input, int like)
{
    if (!op_has_input(ctx, input)) return KILN_OK;
    kiln_dtype want = ctx->input_dtypes[like], have = ctx->input_dtypes[input];
    if (have != want)
        return kiln_fail(KILN_ERR_MALFORMED, "input %d has dtype %s, expected %s like input %d", input,
                         kiln_dtype_name(have), kiln_dtype_name(want), like);
    return KILN_OK;
}

kiln_status ew_shape_broadcast(op_ctx *ctx)
{
    int rank = 0;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < ctx->n_inputs; i++) {
        const kiln_tensor *t = ctx->inputs[i];
        if (t) KILN_TRY(shape_broadcast(rank, dims, t->rank, t->dims, &rank, dims));
    }
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}
