/*
 * matmul.c — MatMul (numpy matmul: 1-D operands promoted then squeezed, leading batch dims broadcast) and
 * Gemm (Y = alpha * op(A) * op(B) + beta * C, C broadcast to [M,N]).
 *
 * float32 goes through kernels/gemm.h; float64 and the integer types (which models rarely use for big
 * products) through plain loops here. Two choices keep float32 fast:
 *   - A constant 2-D float32 B (a weight) is packed once at load into the micro-kernel's panel layout, in
 *     model memory, so runs never re-pack it.
 *   - When B has no batch dims, A's batch dims are folded into M: [b, s, K] x [K, N] is one [b*s, K] x
 *     [K, N] product (A and Y are contiguous), which blocks and threads far better than b small ones.
 * ai.kiln::MatMulBias (A, B, bias) is MatMul followed by + bias along the last axis, which
 * graph/fuse_transformer.c fuses a Linear layer's MatMul + Add into: Y starts as the bias rows and the GEMM
 * accumulates onto it (beta 1), so the sum costs no pass of its own.
 * Integer products wrap around like two's complement (they accumulate in the unsigned type of the same
 * width, which C defines to wrap).
 */
#include <string.h>

#include "core/mem.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "ops/op.h"

static const kiln_dtype MATMUL_DTYPES[] = {KILN_FLOAT32, KILN_INT32,  KILN_INT64, KILN_UINT32,
                                           KILN_UINT64,  KILN_FLOAT64, KILN_UNDEFINED};

/* Inputs that the spec gives one type variable must agree. */
static kiln_status require_same_dtype(const op_init_ctx *ctx, int input, int like)
{
    if (ctx->input_dtypes[input] != ctx->input_dtypes[like])
        return kiln_fail(KILN_ERR_MALFORMED, "input %d is %s but input %d is %s", input,
                         kiln_dtype_name(ctx->input_dtypes[input]), like, kiln_dtype_name(ctx->input_dtypes[like]));
    return KILN_OK;
}

/* A constant float32 B ([K,N], or [N,K] with trans_b) packed for the GEMM micro-kernel. */
typedef struct packed_weight {
    bool present;
    gemm_packed_b b;
} packed_weight;

/* Packed whether transposed or not: the panels are the same either way, and gemm multiplies a row vector
 * (M == 1) by them too, reading the packed matrix front to back. */
static kiln_status pack_constant_b(op_init_ctx *ctx, bool trans_b, packed_weight *out)
{
    const kiln_tensor *b = ctx->constants[1];
    if (!b || b->dtype != KILN_FLOAT32 || b->rank != 2 || !b->data || tensor_numel(b) == 0) return KILN_OK;
    int64_t K = trans_b ? b->dims[1] : b->dims[0], N = trans_b ? b->dims[0] : b->dims[1];
    void *memory = op_alloc_prepacked(ctx, gemm_f32_pack_b_bytes(GEMM_VARIANT_AUTO, K, N));
    if (!memory) return KILN_ERR_OUT_OF_MEMORY;
    gemm_f32_pack_b(GEMM_VARIANT_AUTO, K, N, trans_b, b->data, b->dims[1], memory, &out->b);
    out->present = true;
    return KILN_OK;
}

/* ---- float64 and integer products -------------------------------------------------------------------- */

/* Y = alpha * op(A) * op(B) + beta * Y in double; beta == 0 does not read Y. */
static void gemm_f64(const gemm_args *shape, const double *A, const double *B, double *Y)
{
    for (int64_t i = 0; i < shape->M; i++)
        for (int64_t j = 0; j < shape->N; j++) {
            double sum = 0;
            for (int64_t k = 0; k < shape->K; k++) {
                double a = shape->trans_a ? A[k * shape->lda + i] : A[i * shape->lda + k];
                double b = shape->trans_b ? B[j * shape->ldb + k] : B[k * shape->ldb + j];
                sum += a * b;
            }
            double *y = &Y[i * shape->ldc + j];
            *y = shape->beta == 0.0f ? shape->alpha * sum : shape->alpha * sum + shape->beta * *y;
        }
}

/* Y[M,N] = A[M,K] * B[K,N], accumulated in the unsigned type U of T's width so that overflow wraps. */
#define DEFINE_INTEGER_MATMUL(T, U)                                                                          \
    static void matmul_##T(const T *A, const T *B, T *Y, int64_t M, int64_t N, int64_t K)                    \
    {                                                                                                        \
        for (int64_t i = 0; i < M; i++)                                                                      \
            for (int64_t j = 0; j < N; j++) {                                                                \
                U sum = 0;                                                                                   \
                for (int64_t k = 0; k < K; k++) sum += (U)A[i * K + k] * (U)B[k * N + j];                    \
                Y[i * N + j] = (T)sum;                                                                       \
            }                                                                                                \
    }
DEFINE_INTEGER_MATMUL(int32_t, uint32_t)
DEFINE_INTEGER_MATMUL(int64_t, uint64_t)
DEFINE_INTEGER_MATMUL(uint32_t, uint32_t)
DEFINE_INTEGER_MATMUL(uint64_t, uint64_t)

/* ---- MatMul ------------------------------------------------------------------------------------------ */

typedef struct matmul_params {
    packed_weight weight;
} matmul_params;

static kiln_status matmul_init(op_init_ctx *ctx)
{
    matmul_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, MATMUL_DTYPES));
    KILN_TRY(require_same_dtype(ctx, 1, 0));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return pack_constant_b(ctx, false, &p->weight);
}

/* A MatMul as a batch of [M,K] x [K,N] products. A 1-D A is a [1,K] row and a 1-D B a [K,1] column. */
typedef struct matmul_shape {
    int64_t M, N, K;
    int batch_rank;
    int64_t batch[KILN_MAX_RANK];                          /* the broadcast batch dims of Y */
    int64_t a_step[KILN_MAX_RANK], b_step[KILN_MAX_RANK];  /* elements between matrices per batch dim */
    int64_t batch_count, y_count;
    bool fold_batch_into_m; /* B is one matrix shared by the whole batch: one [batch*M, K] x [K, N] product */
} matmul_shape;

/* Steps through `t`'s batch dims (all but its last `matrix_rank`), aligned to the right of the
 * `rank` broadcast batch dims; broadcast dims step 0. */
static void batch_steps(const kiln_tensor *t, int matrix_rank, int rank, int64_t matrix_elems, int64_t *steps)
{
    int own = t->rank - matrix_rank;
    int64_t step = matrix_elems;
    for (int d = rank - 1; d >= 0; d--) {
        int td = d - (rank - own);
        int64_t dim = td >= 0 ? t->dims[td] : 1;
        steps[d] = dim == 1 ? 0 : step;
        step *= dim;
    }
}

static kiln_status matmul_shape_of(const kiln_tensor *a, const kiln_tensor *b, matmul_shape *s, int *rank,
                                   int64_t *dims)
{
    if (a->rank < 1 || b->rank < 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "MatMul operands must not be scalars");
    int a_matrix = a->rank == 1 ? 1 : 2, b_matrix = b->rank == 1 ? 1 : 2;
    s->M = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    s->K = a->dims[a->rank - 1];
    int64_t b_k = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    s->N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (b_k != s->K) {
        char sa[128], sb[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot multiply %s by %s: inner dims %lld and %lld differ",
                         shape_format(sa, sizeof sa, a->rank, a->dims), shape_format(sb, sizeof sb, b->rank, b->dims),
                         (long long)s->K, (long long)b_k);
    }
    KILN_TRY(shape_broadcast(a->rank - a_matrix, a->dims, b->rank - b_matrix, b->dims, &s->batch_rank, s->batch));
    *rank = s->batch_rank;
    memcpy(dims, s->batch, (size_t)s->batch_rank * sizeof *dims);
    if (a->rank > 1) dims[(*rank)++] = s->M;
    if (b->rank > 1) dims[(*rank)++] = s->N;
    /* Dims beside a zero may be anything a file says: check the products before using them. */
    if (shape_numel_checked(s->batch_rank, s->batch, &s->batch_count) != KILN_OK ||
        shape_numel_checked(*rank, dims, &s->y_count) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the product of these shapes is too large");
    /* an operand without elements makes the result empty (or all zeros): its steps are never used */
    bool nonempty = tensor_numel(a) > 0 && tensor_numel(b) > 0;
    batch_steps(a, a_matrix, s->batch_rank, nonempty ? s->M * s->K : 0, s->a_step);
    batch_steps(b, b_matrix, s->batch_rank, nonempty ? s->K * s->N : 0, s->b_step);
    s->fold_batch_into_m = b->rank <= 2;
    return KILN_OK;
}

static kiln_status matmul_shape_fn(op_ctx *ctx)
{
    matmul_shape s;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(matmul_shape_of(ctx->inputs[0], ctx->inputs[1], &s, &rank, dims));
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "result rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    op_set_output_shape(ctx, 0, rank, dims);
    if (ctx->outputs[0]->dtype == KILN_FLOAT32 && s.y_count > 0) {
        int64_t rows = s.fold_batch_into_m ? s.batch_count * s.M : s.M;
        ctx->scratch_bytes = gemm_f32_scratch_bytes(rows, s.N, s.K, parallel_threads(ctx->parallel));
    }
    return KILN_OK;
}

/* Y[M,N] = A[M,K] * B[K,N] for one matrix of the batch; offsets are in elements. */
static void matmul_one(const op_ctx *ctx, int64_t M, int64_t N, int64_t K, int64_t a_off, int64_t b_off,
                       int64_t y_off)
{
    const matmul_params *p = ctx->params;
    const kiln_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    kiln_tensor *y = ctx->outputs[0];
    switch (y->dtype) {
    case KILN_FLOAT32: {
        gemm_args g = {M, N, K, false, false, (const float *)a->data + a_off, K, (const float *)b->data + b_off, N,
                       (float *)y->data + y_off, N, 1.0f, 0.0f};
        if (p->weight.present) gemm_f32_prepacked(&g, &p->weight.b, ctx->scratch, ctx->parallel);
        else gemm_f32(&g, ctx->scratch, ctx->parallel);
        break;
    }
    case KILN_FLOAT64: {
        gemm_args g = {M, N, K, false, false, NULL, K, NULL, N, NULL, N, 1.0f, 0.0f};
        gemm_f64(&g, (const double *)a->data + a_off, (const double *)b->data + b_off, (double *)y->data + y_off);
        break;
    }
    case KILN_INT32:
        matmul_int32_t((const int32_t *)a->data + a_off, (const int32_t *)b->data + b_off,
                       (int32_t *)y->data + y_off, M, N, K);
        break;
    case KILN_INT64:
        matmul_int64_t((const int64_t *)a->data + a_off, (const int64_t *)b->data + b_off,
                       (int64_t *)y->data + y_off, M, N, K);
        break;
    case KILN_UINT32:
        matmul_uint32_t((const uint32_t *)a->data + a_off, (const uint32_t *)b->data + b_off,
                        (uint32_t *)y->data + y_off, M, N, K);
        break;
    case KILN_UINT64:
        matmul_uint64_t((const uint64_t *)a->data + a_off, (const uint64_t *)b->data + b_off,
                        (uint64_t *)y->data + y_off, M, N, K);
        break;
    default: break;
    }
}

/* Offsets of A's and B's matrices for batch entry `index` (row-major over the broadcast batch dims). */
static void batch_offsets(const matmul_shape *s, int64_t index, int64_t *a_off, int64_t *b_off)
{
    *a_off = *b_off = 0;
    for (int d = s->batch_rank - 1; d >= 0; d--) {
        int64_t coord = index % s->batch[d];
        index /= s->batch[d];
        *a_off += coord * s->a_step[d];
        *b_off += coord * s->b_step[d];
    }
}

static kiln_status matmul_eval(op_ctx *ctx)
{
    matmul_shape s;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(matmul_shape_of(ctx->inputs[0], ctx->inputs[1], &s, &rank, dims));
    if (s.y_count == 0) return KILN_OK;
    if (s.fold_batch_into_m) {
        matmul_one(ctx, s.batch_count * s.M, s.N, s.K, 0, 0, 0);
        return KILN_OK;
    }
    for (int64_t i = 0; i < s.batch_count; i++) {
        int64_t a_off, b_off;
        batch_offsets(&s, i, &a_off, &b_off);
        matmul_one(ctx, s.M, s.N, s.K, a_off, b_off, i * s.M * s.N);
    }
    return KILN_OK;
}

/* ---- MatMulInteger and QLinearMatMul ----------------------------------------------------------------- */

/* Products of int8/uint8 matrices, with MatMul's shapes, after subtracting zero points:
 *   MatMulInteger  Y (int32) = (A - a_zero_point) x (B - b_zero_point)
 *   QLinearMatMul  Y = saturate(round((A - a_zp) x (B - b_zp) * a_scale * b_scale / y_scale) + y_zp), in the
 *                  type of y_zp; rounding and saturation are kernels/quant.h's, as for every quantized op
 * Scales and zero points of A and B are per tensor (one element) or per row of A / per column of B (1-D);
 * the N-D per-matrix form is not supported. Products are exact; sums wrap in 32 bits, as the spec allows.
 * Plain loops: quantized models that matter run these through an int8 GEMM kernel, which kiln does not have
 * yet. */
static const kiln_dtype SCALE_DTYPES[] = {KILN_FLOAT32, KILN_UNDEFINED};

/* Where each input of a quantized product sits in the node; -1 when the op has no such input. */
typedef struct quantized_inputs {
    int a, b, a_zero, b_zero, a_scale, b_scale;
} quantized_inputs;

static const quantized_inputs MATMUL_INTEGER_INPUTS = {0, 1, 2, 3, -1, -1};
static const quantized_inputs QLINEAR_MATMUL_INPUTS = {0, 3, 2, 5, 1, 4};

/* One quantization parameter: absent (zero point 0), one element, or one per row of A / column of B. */
typedef struct quant_param {
    const kiln_tensor *t;
    bool per_index;
} quant_param;

static kiln_status quant_param_get(const op_ctx *ctx, int input, int64_t count, const char *per, quant_param *q)
{
    q->t = input >= 0 && input < ctx->n_inputs ? ctx->inputs[input] : NULL;
    q->per_index = false;
    if (!q->t || tensor_numel(q->t) == 1) return KILN_OK;
    if (q->t->rank == 1 && q->t->dims[0] == count) {
        q->per_index = true;
        return KILN_OK;
    }
    char sq[128];
    return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d of shape %s: only one value or one per %s (%lld) is supported",
                     input, shape_format(sq, sizeof sq, q->t->rank, q->t->dims), per, (long long)count);
}

static double quant_param_at(const quant_param *q, int64_t index)
{
    return q->t ? tensor_get_double(q->t, q->per_index ? index : 0) : 0.0;
}

typedef struct quantized_product {
    const kiln_tensor *a, *b;
    matmul_shape s;
    quant_param a_zero, b_zero, a_scale, b_scale;
} quantized_product;

static kiln_status quantized_product_get(const op_ctx *ctx, const quantized_inputs *in, quantized_product *q,
                                         int *rank, int64_t *dims)
{
    q->a = ctx->inputs[in->a];
    q->b = ctx->inputs[in->b];
    KILN_TRY(matmul_shape_of(q->a, q->b, &q->s, rank, dims));
    if (*rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "result rank %d exceeds kiln's maximum of %d", *rank, KILN_MAX_RANK);
    KILN_TRY(quant_param_get(ctx, in->a_zero, q->s.M, "row of A", &q->a_zero));
    KILN_TRY(quant_param_get(ctx, in->b_zero, q->s.N, "column of B", &q->b_zero));
    KILN_TRY(quant_param_get(ctx, in->a_scale, q->s.M, "row of A", &q->a_scale));
    KILN_TRY(quant_param_get(ctx, in->b_scale, q->s.N, "column of B", &q->b_scale));
    return KILN_OK;
}

/* sum over k of (A[i,k] - a_zero) * (B[k,j] - b_zero) for the matrices at a_off and b_off. */
static int32_t quantized_dot(const quantized_product *q, int64_t a_off, int64_t b_off, int64_t i, int64_t j)
{
    int32_t za = (int32_t)quant_param_at(&q->a_zero, i), zb = (int32_t)quant_param_at(&q->b_zero, j);
    int64_t K = q->s.K, N = q->s.N;
    uint32_t sum = 0;
    for (int64_t k = 0; k < K; k++)
        sum += (uint32_t)((quant_load(q->a->data, q->a->dtype, a_off + i * K + k) - za) *
                          (quant_load(q->b->data, q->b->dtype, b_off + k * N + j) - zb));
    return (int32_t)sum;
}

static kiln_status matmul_integer_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 4, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, QUANT_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 1, QUANT_DTYPES));
    for (int zp = 2; zp < 4; zp++)
        if (op_has_input(ctx, zp)) KILN_TRY(require_same_dtype(ctx, zp, zp - 2));
    ctx->output_dtypes[0] = KILN_INT32;
    return KILN_OK;
}

static kiln_status qlinear_matmul_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 8, 8, 1, 1)); /* a, a_scale, a_zero_point, the same for b, then y's */
    for (int operand = 0; operand <= 3; operand += 3) {
        KILN_TRY(op_require_dtype(ctx, operand, QUANT_DTYPES));
        KILN_TRY(op_require_dtype(ctx, operand + 1, SCALE_DTYPES));
        KILN_TRY(require_same_dtype(ctx, operand + 2, operand));
    }
    KILN_TRY(op_require_dtype(ctx, 6, SCALE_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 7, QUANT_DTYPES));
    ctx->output_dtypes[0] = ctx->input_dtypes[7];
    return KILN_OK;
}

static const quantized_inputs *quantized_inputs_of(const op_ctx *ctx)
{
    return ctx->n_inputs == 8 ? &QLINEAR_MATMUL_INPUTS : &MATMUL_INTEGER_INPUTS;
}

static kiln_status quantized_shape(op_ctx *ctx)
{
    quantized_product q;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(quantized_product_get(ctx, quantized_inputs_of(ctx), &q, &rank, dims));
    if (ctx->n_inputs == 8 && (tensor_numel(ctx->inputs[6]) != 1 || tensor_numel(ctx->inputs[7]) != 1))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "y_scale and y_zero_point must have one element");
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

static kiln_status matmul_integer_eval(op_ctx *ctx)
{
    quantized_product q;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(quantized_product_get(ctx, &MATMUL_INTEGER_INPUTS, &q, &rank, dims));
    int32_t *y = ctx->outputs[0]->data;
    for (int64_t n = 0; n < q.s.batch_count && q.s.y_count > 0; n++) {
        int64_t a_off, b_off;
        batch_offsets(&q.s, n, &a_off, &b_off);
        for (int64_t i = 0; i < q.s.M; i++)
            for (int64_t j = 0; j < q.s.N; j++) *y++ = quantized_dot(&q, a_off, b_off, i, j);
    }
    return KILN_OK;
}

static kiln_status qlinear_matmul_eval(op_ctx *ctx)
{
    quantized_product q;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(quantized_product_get(ctx, &QLINEAR_MATMUL_INPUTS, &q, &rank, dims));
    kiln_tensor *y = ctx->outputs[0];
    double y_scale = tensor_get_double(ctx->inputs[6], 0);
    int32_t y_zero = (int32_t)tensor_get_int(ctx->inputs[7], 0);
    int64_t out = 0;
    for (int64_t n = 0; n < q.s.batch_count && q.s.y_count > 0; n++) {
        int64_t a_off, b_off;
        batch_offsets(&q.s, n, &a_off, &b_off);
        for (int64_t i = 0; i < q.s.M; i++)
            for (int64_t j = 0; j < q.s.N; j++, out++) {
                double scale = quant_param_at(&q.a_scale, i) * quant_param_at(&q.b_scale, j) / y_scale;
                int32_t v = quant_saturate(quantized_dot(&q, a_off, b_off, i, j) * scale, y_zero, y->dtype);
                quant_store(y->data, y->dtype, out, v);
            }
    }
    return KILN_OK;
}

/* ---- Gemm -------------------------------------------------------------------------------------------- */

typedef struct gemm_params {
    bool trans_a, trans_b;
    float alpha, beta;
    packed_weight weight;
} gemm_params;

static kiln_status gemm_init(op_init_ctx *ctx)
{
    gemm_params *p = ctx->params;
    /* C became optional in opset 11 */
    KILN_TRY(op_require_arity(ctx, ctx->opset >= 11 ? 2 : 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(require_same_dtype(ctx, 1, 0));
    if (op_has_input(ctx, 2)) KILN_TRY(require_same_dtype(ctx, 2, 0));
    int64_t trans_a, trans_b;
    KILN_TRY(attr_int(ctx->node, "transA", 0, &trans_a));
    KILN_TRY(attr_int(ctx->node, "transB", 0, &trans_b));
    KILN_TRY(attr_float(ctx->node, "alpha", 1.0f, &p->alpha));
    KILN_TRY(attr_float(ctx->node, "beta", 1.0f, &p->beta));
    p->trans_a = trans_a != 0;
    p->trans_b = trans_b != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return pack_constant_b(ctx, p->trans_b, &p->weight);
}

/* C broadcast to [M,N] (unidirectionally): element (i, j) is C[i * row_step + j * col_step]. */
typedef struct gemm_bias {
    const kiln_tensor *c;
    int64_t row_step, col_step;
} gemm_bias;

static kiln_status gemm_dims(const op_ctx *ctx, gemm_args *g, gemm_bias *bias)
{
    const gemm_params *p = ctx->params;
    const kiln_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    if (a->rank != 2 || b->rank != 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "A and B must be 2-D, got ranks %d and %d", a->rank, b->rank);
    *g = (gemm_args){
        .M = p->trans_a ? a->dims[1] : a->dims[0],
        .K = p->trans_a ? a->dims[0] : a->dims[1],
        .N = p->trans_b ? b->dims[0] : b->dims[1],
        .trans_a = p->trans_a, .trans_b = p->trans_b,
        .lda = a->dims[1], .ldb = b->dims[1],
        .alpha = p->alpha, .beta = p->beta,
    };
    int64_t b_k = p->trans_b ? b->dims[1] : b->dims[0];
    if (b_k != g->K)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "op(A) has %lld columns but op(B) has %lld rows", (long long)g->K,
                         (long long)b_k);
    g->ldc = g->N;
    bias->c = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    if (!bias->c) return KILN_OK;
    const kiln_tensor *c = bias->c;
    int64_t rows = c->rank >= 2 ? c->dims[c->rank - 2] : 1, cols = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    if (c->rank > 2 || (rows != 1 && rows != g->M) || (cols != 1 && cols != g->N)) {
        char sc[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "C of shape %s does not broadcast to [%lld,%lld]",
                         shape_format(sc, sizeof sc, c->rank, c->dims), (long long)g->M, (long long)g->N);
    }
    bias->row_step = rows == 1 ? 0 : cols;
    bias->col_step = cols == 1 ? 0 : 1;
    return KILN_OK;
}

static kiln_status gemm_shape_fn(op_ctx *ctx)
{
    gemm_args g = {0};
    gemm_bias bias = {0};
    KILN_TRY(gemm_dims(ctx, &g, &bias));
    int64_t dims[2] = {g.M, g.N}, count;
    if (shape_numel_checked(2, dims, &count) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the product of these shapes is too large");
    op_set_output_shape(ctx, 0, 2, dims);
    if (ctx->outputs[0]->dtype == KILN_FLOAT32 && count > 0)
        ctx->scratch_bytes = gemm_f32_scratch_bytes(g.M, g.N, g.K, parallel_threads(ctx->parallel));
    return KILN_OK;
}

/* Y = C broadcast to [M,N], of element type T. A C whose rows are contiguous (a bias vector, or a whole
 * matrix) is copied a row at a time: the element loop, strided in general, is not vectorised. */
#define DEFINE_BROADCAST_BIAS(T)                                                                             \
    static void broadcast_bias_##T(const gemm_bias *bias, int64_t M, int64_t N, T *y)                        \
    {                                                                                                        \
        const T *c = bias->c->data;                                                                          \
        for (int64_t i = 0; i < M; i++) {                                                                    \
            const T *row = c + i * bias->row_step;                                                           \
            if (bias->col_step == 1) memcpy(y + i * N, row, (size_t)N * sizeof *y);                          \
            else                                                                                             \
                for (int64_t j = 0; j < N; j++) y[i * N + j] = row[j * bias->col_step];                      \
        }                                                                                                    \
    }
DEFINE_BROADCAST_BIAS(float)
DEFINE_BROADCAST_BIAS(double)

static kiln_status gemm_eval(op_ctx *ctx)
{
    const gemm_params *p = ctx->params;
    gemm_args g = {0};
    gemm_bias bias = {0};
    KILN_TRY(gemm_dims(ctx, &g, &bias));
    kiln_tensor *y = ctx->outputs[0];
    if (g.M == 0 || g.N == 0) return KILN_OK;
    /* Without C, or with beta == 0, the product overwrites Y; otherwise Y starts as C and accumulates. */
    bool use_c = bias.c && g.beta != 0.0f;
    if (!use_c) g.beta = 0.0f;
    if (y->dtype == KILN_FLOAT64) {
        if (use_c) broadcast_bias_double(&bias, g.M, g.N, y->data);
        gemm_f64(&g, ctx->inputs[0]->data, ctx->inputs[1]->data, y->data);
        return KILN_OK;
    }
    if (use_c) broadcast_bias_float(&bias, g.M, g.N, y->data);
    g.A = ctx->inputs[0]->data;
    g.B = ctx->inputs[1]->data;
    g.C = y->data;
    if (p->weight.present) gemm_f32_prepacked(&g, &p->weight.b, ctx->scratch, ctx->parallel);
    else gemm_f32(&g, ctx->scratch, ctx->parallel);
    return KILN_OK;
}

/* ---- MatMul + bias (ai.kiln, created by graph/fuse_transformer.c) ------------------------------------ */

/* float32 A (any rank >= 1), B [K,N] and bias [N]: MatMul's shapes, B folded as one matrix. */
static kiln_status matmul_bias_init(op_init_ctx *ctx)
{
    static const kiln_dtype FLOAT32_ONLY[] = {KILN_FLOAT32, KILN_UNDEFINED};
    matmul_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    for (int i = 0; i < 3; i++) KILN_TRY(op_require_dtype(ctx, i, FLOAT32_ONLY));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return pack_constant_b(ctx, false, &p->weight);
}

static kiln_status matmul_bias_check(const op_ctx *ctx)
{
    const kiln_tensor *b = ctx->inputs[1], *bias = ctx->inputs[2];
    if (b->rank != 2 || bias->rank != 1 || bias->dims[0] != b->dims[1])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "MatMulBias needs B [K,N] and bias [N]");
    return KILN_OK;
}

static kiln_status matmul_bias_shape(op_ctx *ctx)
{
    KILN_TRY(matmul_bias_check(ctx));
    return matmul_shape_fn(ctx);
}

static kiln_status matmul_bias_eval(op_ctx *ctx)
{
    const matmul_params *p = ctx->params;
    matmul_shape s;
    int rank = 0;
    int64_t dims[KILN_MAX_RANK + 2];
    KILN_TRY(matmul_bias_check(ctx));
    KILN_TRY(matmul_shape_of(ctx->inputs[0], ctx->inputs[1], &s, &rank, dims));
    if (s.y_count == 0) return KILN_OK;
    float *y = ctx->outputs[0]->data;
    int64_t rows = s.batch_count * s.M;
    for (int64_t i = 0; i < rows; i++) memcpy(y + i * s.N, ctx->inputs[2]->data, (size_t)s.N * sizeof(float));
    gemm_args g = {rows, s.N, s.K, false, false, ctx->inputs[0]->data, s.K, ctx->inputs[1]->data, s.N, y, s.N,
                   1.0f, 1.0f};
    if (p->weight.present) gemm_f32_prepacked(&g, &p->weight.b, ctx->scratch, ctx->parallel);
    else gemm_f32(&g, ctx->scratch, ctx->parallel);
    return KILN_OK;
}

const op_def ops_matmul[] = {
    {"", "MatMul", 1, 18, sizeof(matmul_params), matmul_init, matmul_shape_fn, matmul_eval, 0},
    {"", "MatMulInteger", 10, 18, 0, matmul_integer_init, quantized_shape, matmul_integer_eval, 0},
    {"", "QLinearMatMul", 10, 18, 0, qlinear_matmul_init, quantized_shape, qlinear_matmul_eval, 0},
    {"", "Gemm", 7, 18, sizeof(gemm_params), gemm_init, gemm_shape_fn, gemm_eval, 0},
    {"ai.kiln", "MatMulBias", 1, 1, sizeof(matmul_params), matmul_bias_init, matmul_bias_shape, matmul_bias_eval, 0},
    OP_TABLE_END,
};
