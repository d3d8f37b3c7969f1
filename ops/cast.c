/*
 * cast.c — Cast (opsets 6..18) and CastLike (15..18) between every numeric dtype, bool, float16 and bfloat16.
 *
 * The conversions themselves live in kernels/cast.c (shared with the operators that store numbers given in
 * another dtype); here they are only validated and split across threads. Strings convert to and from the
 * float and integer dtypes (as text, see cast_format_element) on one thread, since their bytes go to the
 * session's string region; bool <-> string is refused.
 */
#include <string.h>

#include "core/dtype.h"
#include "kernels/cast.h"
#include "ops/op.h"

#define CAST_GRAIN 16384

static kiln_status require_castable(const op_init_ctx *ctx, int input)
{
    if (!op_has_input(ctx, input)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", input);
    kiln_dtype dtype = ctx->input_dtypes[input];
    if (!cast_supported(dtype) && dtype != KILN_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d has dtype %s, which Cast does not support", input,
                         kiln_dtype_name(dtype));
    return KILN_OK;
}

/* Strings convert only to and from numbers. */
static kiln_status require_pair(kiln_dtype from, kiln_dtype to)
{
    bool text_from = from == KILN_STRING, text_to = to == KILN_STRING;
    if (text_from != text_to && (from == KILN_BOOL || to == KILN_BOOL))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "casting %s to %s is not supported", kiln_dtype_name(from),
                         kiln_dtype_name(to));
    return KILN_OK;
}

static kiln_status cast_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(require_castable(ctx, 0));
    if (!graph_node_attr(ctx->node, "to")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'to' is required");
    int64_t to;
    KILN_TRY(attr_int(ctx->node, "to", 0, &to));
    if (to != (int)to || !dtype_is_known((int)to))
        return kiln_fail(KILN_ERR_MALFORMED, "'to' is %lld, not a dtype", (long long)to);
    if (!cast_supported((kiln_dtype)to) && to != KILN_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "casting to %s is not supported", kiln_dtype_name((kiln_dtype)to));
    KILN_TRY(require_pair(ctx->input_dtypes[0], (kiln_dtype)to));
    ctx->output_dtypes[0] = (kiln_dtype)to;
    return KILN_OK;
}

static kiln_status cast_like_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(require_castable(ctx, 0));
    KILN_TRY(require_castable(ctx, 1));
    KILN_TRY(require_pair(ctx->input_dtypes[0], ctx->input_dtypes[1]));
    ctx->output_dtypes[0] = ctx->input_dtypes[1];
    return KILN_OK;
}

/* Numbers to text and back, one element at a time. Text that is not a number is invalid data. */
static kiln_status cast_strings(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0];
    int64_t n = tensor_numel(in);
    if (in->dtype == KILN_STRING && out->dtype == KILN_STRING) {
        if (n > 0) memcpy(out->data, in->data, tensor_bytes(in));
        return KILN_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        if (in->dtype == KILN_STRING) {
            const char *text = ((const char *const *)in->data)[i];
            if (!cast_parse_element(text, out->data, out->dtype, i))
                return kiln_fail(KILN_ERR_RUNTIME, "element %lld ('%.40s') is not a number", (long long)i, text);
        } else {
            char text[CAST_TEXT_MAX];
            cast_format_element(in->data, in->dtype, i, text);
            const char *copy = region_strdup(ctx->strings, text);
            if (!copy) return KILN_ERR_OUT_OF_MEMORY;
            ((const char **)out->data)[i] = copy;
        }
    }
    return KILN_OK;
}

typedef struct cast_job {
    const kiln_tensor *in;
    kiln_tensor *out;
} cast_job;

static void cast_range(void *arg, int64_t begin, int64_t end)
{
    const cast_job *job = arg;
    const char *src = (const char *)job->in->data + begin * (int64_t)kiln_dtype_size(job->in->dtype);
    char *dst = (char *)job->out->data + begin * (int64_t)kiln_dtype_size(job->out->dtype);
    cast_elements(src, job->in->dtype, dst, job->out->dtype, end - begin);
}

static kiln_status cast_eval(op_ctx *ctx)
{
    if (ctx->inputs[0]->dtype == KILN_STRING || ctx->outputs[0]->dtype == KILN_STRING) return cast_strings(ctx);
    cast_job job = {ctx->inputs[0], ctx->outputs[0]};
    parallel_for(ctx->parallel, tensor_numel(job.in), CAST_GRAIN, cast_range, &job);
    return KILN_OK;
}

const op_def ops_cast[] = {
    {"", "Cast", 6, 18, 0, cast_init, op_shape_like_input0, cast_eval, 0},
    {"", "CastLike", 15, 18, 0, cast_like_init, op_shape_like_input0, cast_eval, 0},
    OP_TABLE_END,
};
