/*
 * shape.c — operators that only change how a tensor's bytes are viewed (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout) and those that report a shape (Shape, Size).
 *
 * The view operators are OP_ALIAS_INPUT0: their output shares their input's memory, so they cost nothing at
 * run time and have no eval. Shape and Size are OP_READS_SHAPE_ONLY: they never touch their input's
 * contents, which lets the planner compute them (and fold them at load when shapes are fixed).
 */
#include <string.h>

#include "kernels/random.h"
#include "ops/op.h"

/* ---- Reshape ----------------------------------------------------------------------------------------- */

typedef struct reshape_params {
    bool allowzero;
} reshape_params;

static kiln_status reshape_init(op_init_ctx *ctx)
{
    reshape_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    int64_t allowzero;
    KILN_TRY(attr_int(ctx->node, "allowzero", 0, &allowzero));
    p->allowzero = allowzero != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    ctx->value_inputs = 1u << 1;
    return KILN_OK;
}

static kiln_status reshape_shape(op_ctx *ctx)
{
    const reshape_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0], *shape = ctx->inputs[1];
    if (shape->rank != 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape input must be 1-D");
    int rank = (int)shape->dims[0];
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "target rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < rank; i++) {
        int64_t d = ((const int64_t *)shape->data)[i];
        if (d == 0 && !p->allowzero) {
            if (i >= in->rank) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape copies dim %d, input has rank %d", i, in->rank);
            d = in->dims[i];
        }
        if (d == -1) {
            if (infer >= 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape has more than one -1");
            infer = i;
            d = 1;
        } else if (d < 0) {
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape has invalid dim %lld", (long long)d);
        }
        dims[i] = d;
        if (i != infer) {
            if (d != 0 && known > KILN_MAX_ELEMENTS / d) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape is too large");
            known *= d;
        }
    }
    int64_t total = tensor_numel(in);
    if (infer >= 0) {
        if (known == 0 || total % known != 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot infer the -1 dim: %lld elements into blocks of %lld",
                             (long long)total, (long long)known);
        dims[infer] = total / known;
    } else if (known != total) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot reshape %s (%lld elements) to %s",
                         shape_format(a, sizeof a, in->rank, in->dims), (long long)total,
                         shape_format(b, sizeof b, rank, dims));
    }
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

/* ---- Flatten ----------------------------------------------------------------------------------------- */

typedef struct axis_params {
    int64_t axis;
} axis_params;

static kiln_status flatten_init(op_init_ctx *ctx)
{
    axis_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(attr_int(ctx->node, "axis", 1, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status flatten_shape(op_ctx *ctx)
{
    const axis_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int64_t axis = p->axis < 0 ? p->axis + in->rank : p->axis;
    if (axis < 0 || axis > in->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis, in->rank);
    int64_t dims[2] = {shape_span(in->dims, 0, (int)axis), shape_span(in->dims, (int)axis, in->rank)};
    op_set_output_shape(ctx, 0, 2, dims);
    return KILN_OK;
}

/* ---- Squeeze and Unsqueeze (axes: attribute before opset 13, input from 13) -------------------------- */

typedef struct axes_params {
    int n_axes; /* -1: not given (Squeeze: every dim of size 1) */
    int64_t axes[KILN_MAX_RANK];
    bool axes_from_input;
} axes_params;

static kiln_status axes_init(op_init_ctx *ctx, bool required)
{
    axes_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    if (ctx->opset >= 13) {
        p->axes_from_input = op_has_input(ctx, 1);
        if (p->axes_from_input) {
            KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
            ctx->value_inputs = 1u << 1;
        } else if (required) {
            return kiln_fail(KILN_ERR_MALFORMED, "the axes input is required");
        }
        p->n_axes = -1;
        return KILN_OK;
    }
    int count;
    KILN_TRY(attr_ints(ctx->node, "axes", p->axes, KILN_MAX_RANK, &count));
    if (!graph_node_attr(ctx->node, "axes")) {
        if (required) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'axes' is required");
        count = -1;
    }
    p->n_axes = count;
    return KILN_OK;
}

static kiln_status squeeze_init(op_init_ctx *ctx) { return axes_init(ctx, false); }
static kiln_status unsqueeze_init(op_init_ctx *ctx) { return axes_init(ctx, true); }

/* The axes for this call, from the attribute or the input. */
static kiln_status read_axes(const op_ctx *ctx, int64_t *axes, int *n)
{
    const axes_params *p = ctx->params;
    if (!p->axes_from_input) {
        *n = p->n_axes;
        if (*n > 0) memcpy(axes, p->axes, (size_t)*n * sizeof *axes);
        return KILN_OK;
    }
    const kiln_tensor *t = ctx->inputs[1];
    /* a scalar is one axis: onnxruntime accepts it, and the Loop node tests rely on that */
    if (t->rank > 1 || (t->rank == 1 && t->dims[0] > KILN_MAX_RANK))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axes must be a short 1-D tensor");
    *n = t->rank == 0 ? 1 : (int)t->dims[0];
    for (int i = 0; i < *n; i++) axes[i] = ((const int64_t *)t->data)[i];
    return KILN_OK;
}

static kiln_status squeeze_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int64_t axes[KILN_MAX_RANK];
    int n_axes = 0;
    KILN_TRY(read_axes(ctx, axes, &n_axes));
    bool drop[KILN_MAX_RANK] = {0};
    if (n_axes < 0) {
        for (int d = 0; d < in->rank; d++) drop[d] = in->dims[d] == 1;
    } else {
        for (int i = 0; i < n_axes; i++) {
            int axis;
            if (!axis_normalize(axes[i], in->rank, &axis))
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)axes[i], in->rank);
            if (in->dims[axis] != 1)
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot squeeze axis %d of size %lld", axis,
                                 (long long)in->dims[axis]);
            drop[axis] = true;
        }
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < in->rank; d++)
        if (!drop[d]) dims[rank++] = in->dims[d];
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

static kiln_status unsqueeze_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int64_t axes[KILN_MAX_RANK];
    int n_axes = 0;
    KILN_TRY(read_axes(ctx, axes, &n_axes));
    int rank = in->rank + n_axes;
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "result rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    bool inserted[KILN_MAX_RANK] = {0};
    for (int i = 0; i < n_axes; i++) {
        int axis;
        if (!axis_normalize(axes[i], rank, &axis) || inserted[axis])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range or repeated", (long long)axes[i]);
        inserted[axis] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, k = 0; d < rank; d++) dims[d] = inserted[d] ? 1 : in->dims[k++];
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

/* ---- Identity and Dropout ---------------------------------------------------------------------------- */

/* Identity passes sequences and optionals too (their descriptors alias like a tensor's bytes). */
static kiln_status identity_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    op_set_output_type(ctx, 0, op_input_type(ctx, 0));
    return KILN_OK;
}

/* Dropout passes its input through, with a mask of ones, unless (opset 12+) its `training_mode` input is true
 * at run time and `ratio` is above 0: then each element is kept with probability 1 - ratio and scaled by
 * 1 / (1 - ratio), its mask saying which were kept. The draws come from kernels/random.h (see there for seeds). */
typedef struct dropout_params {
    bool seeded;
    uint64_t key; /* the seed's, when seeded */
} dropout_params;

static kiln_status dropout_init(op_init_ctx *ctx)
{
    dropout_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 3, 1, 2));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    if (op_has_input(ctx, 1)) KILN_TRY(op_require_dtype(ctx, 1, DTYPES_FLOAT));
    if (op_has_input(ctx, 2)) KILN_TRY(op_require_dtype(ctx, 2, DTYPES_BOOL));
    if (ctx->opset >= 12 && graph_node_attr(ctx->node, "seed")) {
        int64_t seed;
        KILN_TRY(attr_int(ctx->node, "seed", 0, &seed));
        p->seeded = true;
        p->key = rng_key_from_seed((double)seed);
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    if (ctx->n_outputs > 1) ctx->output_dtypes[1] = KILN_BOOL;
    return KILN_OK;
}

static kiln_status dropout_shape(op_ctx *ctx)
{
    for (int k = 1; k < ctx->n_inputs; k++)
        if (ctx->inputs[k]) KILN_TRY(op_require_one_value(ctx->inputs[k], k == 1 ? "ratio" : "training_mode"));
    for (int k = 0; k < ctx->n_outputs; k++) op_set_output_shape(ctx, k, ctx->inputs[0]->rank, ctx->inputs[0]->dims);
    return KILN_OK;
}

typedef struct dropout_job {
    const kiln_tensor *in;
    kiln_tensor *out, *mask; /* either may be NULL */
    uint64_t key;
    double ratio, scale;
} dropout_job;

static void dropout_range(void *arg, int64_t begin, int64_t end)
{
    const dropout_job *job = arg;
    for (int64_t i = begin; i < end; i++) {
        bool keep = rng_uniform(job->key, (uint64_t)i) >= job->ratio;
        if (job->mask) ((uint8_t *)job->mask->data)[i] = keep;
        if (!job->out) continue;
        if (job->in->dtype == KILN_FLOAT32)
            ((float *)job->out->data)[i] = keep ? (float)(((const float *)job->in->data)[i] * job->scale) : 0.0f;
        else
            ((double *)job->out->data)[i] = keep ? ((const double *)job->in->data)[i] * job->scale : 0.0;
    }
}

static kiln_status dropout_eval(op_ctx *ctx)
{
    const dropout_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0], *mask = ctx->n_outputs > 1 ? ctx->outputs[1] : NULL;
    double ratio = ctx->n_inputs > 1 && ctx->inputs[1] ? tensor_get_double(ctx->inputs[1], 0) : 0.5;
    bool training = ctx->n_inputs > 2 && ctx->inputs[2] && ((const uint8_t *)ctx->inputs[2]->data)[0];
    if (!training || ratio == 0) {
        if (out && out->data != in->data) memcpy(out->data, in->data, tensor_bytes(in));
        if (mask) memset(mask->data, 1, (size_t)tensor_numel(in));
        return KILN_OK;
    }
    if (!(ratio > 0 && ratio < 1)) return kiln_fail(KILN_ERR_RUNTIME, "ratio %g is outside [0, 1)", ratio);
    dropout_job job = {in, out, mask, p->seeded ? p->key : rng_key_unseeded(ctx->node), ratio, 1.0 / (1.0 - ratio)};
    parallel_for(ctx->parallel, tensor_numel(in), 16384, dropout_range, &job);
    return KILN_OK;
}

/* ---- Shape and Size ---------------------------------------------------------------------------------- */

typedef struct shape_params {
    int64_t start, end;
    bool has_end;
} shape_params;

static kiln_status shape_init(op_init_ctx *ctx)
{
    shape_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(attr_int(ctx->node, "start", 0, &p->start));
    p->has_end = graph_node_attr(ctx->node, "end") != NULL;
    KILN_TRY(attr_int(ctx->node, "end", 0, &p->end));
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

/* The [start, end) range of dims Shape reports (opset 15 slicing; clamped as the spec says). */
static void shape_range(const shape_params *p, int rank, int *start, int *end)
{
    int64_t s = p->start < 0 ? p->start + rank : p->start;
    int64_t e = !p->has_end ? rank : p->end < 0 ? p->end + rank : p->end;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *start = (int)s;
    *end = (int)(e < s ? s : e);
}

static kiln_status shape_shape(op_ctx *ctx)
{
    int start, end;
    shape_range(ctx->params, ctx->inputs[0]->rank, &start, &end);
    int64_t dims[1] = {end - start};
    op_set_output_shape(ctx, 0, 1, dims);
    return KILN_OK;
}

static kiln_status shape_eval(op_ctx *ctx)
{
    int start, end;
    shape_range(ctx->params, ctx->inputs[0]->rank, &start, &end);
    int64_t *out = ctx->outputs[0]->data;
    for (int d = start; d < end; d++) out[d - start] = ctx->inputs[0]->dims[d];
    return KILN_OK;
}

static kiln_status size_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

static kiln_status scalar_shape(op_ctx *ctx)
{
    op_set_output_shape(ctx, 0, 0, NULL);
    return KILN_OK;
}

static kiln_status size_eval(op_ctx *ctx)
{
    *(int64_t *)ctx->outputs[0]->data = tensor_numel(ctx->inputs[0]);
    return KILN_OK;
}

const op_def ops_shape[] = {
    {"", "Reshape", 5, 18, sizeof(reshape_params), reshape_init, reshape_shape, NULL, OP_ALIAS_INPUT0},
    {"", "Flatten", 1, 18, sizeof(axis_params), flatten_init, flatten_shape, NULL, OP_ALIAS_INPUT0},
    {"", "Squeeze", 1, 18, sizeof(axes_params), squeeze_init, squeeze_shape, NULL, OP_ALIAS_INPUT0},
    {"", "Unsqueeze", 1, 18, sizeof(axes_params), unsqueeze_init, unsqueeze_shape, NULL, OP_ALIAS_INPUT0},
    {"", "Identity", 1, 18, 0, identity_init, op_shape_like_input0, NULL, OP_ALIAS_INPUT0 | OP_ANY_VALUE_KIND},
    {"", "Dropout", 7, 11, sizeof(dropout_params), dropout_init, dropout_shape, dropout_eval, 0},
    /* training_mode may make the output random: never folded */
    {"", "Dropout", 12, 18, sizeof(dropout_params), dropout_init, dropout_shape, dropout_eval, OP_NO_FOLD},
    {"", "Shape", 1, 18, sizeof(shape_params), shape_init, shape_shape, shape_eval, OP_READS_SHAPE_ONLY},
    {"", "Size", 1, 18, 0, size_init, scalar_shape, size_eval, OP_READS_SHAPE_ONLY},
    OP_TABLE_END,
};
