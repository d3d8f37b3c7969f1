/*
 * einsum.c — Einsum: sums of products of any number of operands, described by an equation such as
 * "bij,bjk->bik" (batch matmul), "ii->i" (diagonal), "...ij->...ji" (transpose with broadcast batch dims).
 *
 * The equation is parsed at load: a malformed one fails there with the character and position at fault.
 * At plan time every distinct label, and each dim the ellipses stand for, becomes one axis of a combined
 * iteration space; each operand and the output get a stride per axis (0 where they lack it, the sum of the
 * strides of a repeated label, which walks a diagonal). Then:
 *
 *   - the reference path walks that space once, adding the product of the operands' elements into the
 *     output element each point maps to. It does every equation, for every dtype.
 *   - the fast path takes two float32 operands whose axes each fall in one of the matmul roles: batch (in both
 *     operands and the output), M (first operand and output), N (second operand and output) or K (both
 *     operands, summed). It copies the operands into [batch, M, K] and [batch, K, N] with the shared strided
 *     copy, runs the GEMM kernel per batch, and copies [batch, M, N] into the output's axis order. Equations
 *     with diagonals, broadcasting or axes summed within one operand take the reference path.
 *
 * Tests compare the two paths on the same equations (float32 against float64).
 */
#include <ctype.h>
#include <string.h>

#include "core/mem.h"
#include "kernels/gemm.h"
#include "ops/copy.h"
#include "ops/op.h"

#define EINSUM_MAX_OPERANDS 16
#define EINSUM_LABELS 52 /* A-Z then a-z: label ids sort like the letters' ASCII codes, as numpy orders them */
#define EINSUM_MAX_AXES (EINSUM_LABELS + KILN_MAX_RANK)

/* One term of the equation: its letters as label ids, and where its ellipsis sits among them. */
typedef struct einsum_term {
    int n;                          /* letters, the ellipsis excluded */
    int ellipsis;                   /* index among the letters where "..." stands, -1 when absent */
    int8_t labels[KILN_MAX_RANK];
    int16_t at[KILN_MAX_RANK];      /* each letter's position in the equation, for messages */
} einsum_term;

typedef struct einsum_params {
    int n_inputs;
    einsum_term in[EINSUM_MAX_OPERANDS];
    einsum_term out;
} einsum_params;

static const kiln_dtype EINSUM_DTYPES[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT32, KILN_INT64,
                                           KILN_UINT32,  KILN_UINT64,  KILN_UNDEFINED};

/* ---- parsing (load time) ----------------------------------------------------------------------------- */

static int label_id(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : c - 'a' + 26; }
static char label_char(int id) { return (char)(id < 26 ? 'A' + id : 'a' + id - 26); }

static kiln_status bad_char(const char *eq, int pos)
{
    unsigned char c = (unsigned char)eq[pos];
    if (isprint(c))
        return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': unexpected character '%c' at position %d", eq, c, pos);
    return kiln_fail(KILN_ERR_MALFORMED, "equation: unexpected byte 0x%02x at position %d", c, pos);
}

/* Parses letters and at most one "..." from eq[*pos] up to ',', '-' or the end; spaces are skipped. */
static kiln_status parse_term(const char *eq, int *pos, einsum_term *t)
{
    t->n = 0;
    t->ellipsis = -1;
    for (;;) {
        char c = eq[*pos];
        if (c == ' ') {
            ++*pos;
        } else if (isalpha((unsigned char)c)) {
            if (t->n == KILN_MAX_RANK)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "equation '%s': more than %d subscripts at position %d",
                                 eq, KILN_MAX_RANK, *pos);
            t->at[t->n] = (int16_t)*pos;
            t->labels[t->n++] = (int8_t)label_id(c);
            ++*pos;
        } else if (c == '.') {
            if (eq[*pos + 1] != '.' || eq[*pos + 2] != '.')
                return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': '.' at position %d does not begin '...'", eq,
                                 *pos);
            if (t->ellipsis >= 0)
                return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': a second ellipsis at position %d in one term", eq,
                                 *pos);
            t->ellipsis = t->n;
            *pos += 3;
        } else if (c == ',' || c == '-' || c == '\0') {
            return KILN_OK;
        } else {
            return bad_char(eq, *pos);
        }
    }
}

/* Without "->", the output is every label that occurs once in the inputs, in alphabetical order, after the
 * ellipsis dims when an input has an ellipsis (numpy's implicit mode). */
static kiln_status implicit_output(const char *eq, einsum_params *p)
{
    int count[EINSUM_LABELS] = {0};
    bool ellipsis = false;
    for (int k = 0; k < p->n_inputs; k++) {
        for (int j = 0; j < p->in[k].n; j++) count[p->in[k].labels[j]]++;
        ellipsis |= p->in[k].ellipsis >= 0;
    }
    einsum_term *out = &p->out;
    out->n = 0;
    out->ellipsis = ellipsis ? 0 : -1;
    for (int id = 0; id < EINSUM_LABELS; id++) {
        if (count[id] != 1) continue;
        if (out->n == KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "equation '%s': the implicit output has more than %d dims", eq,
                             KILN_MAX_RANK);
        out->at[out->n] = -1;
        out->labels[out->n++] = (int8_t)id;
    }
    return KILN_OK;
}

/* Every output label occurs in an input, and once only in the output. */
static kiln_status check_output(const char *eq, const einsum_params *p)
{
    const einsum_term *out = &p->out;
    for (int j = 0; j < out->n; j++) {
        bool found = false;
        for (int k = 0; k < p->n_inputs && !found; k++)
            for (int i = 0; i < p->in[k].n; i++) found |= p->in[k].labels[i] == out->labels[j];
        if (!found)
            return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': output label '%c' at position %d appears in no input",
                             eq, label_char(out->labels[j]), out->at[j]);
        for (int i = 0; i < j; i++)
            if (out->labels[i] == out->labels[j])
                return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': output label '%c' repeats at position %d", eq,
                                 label_char(out->labels[j]), out->at[j]);
    }
    return KILN_OK;
}

static kiln_status parse_equation(const char *eq, int n_inputs, einsum_params *p)
{
    int pos = 0, terms = 0;
    for (;;) {
        if (terms == EINSUM_MAX_OPERANDS)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "equation '%s' has more than %d operands", eq, EINSUM_MAX_OPERANDS);
        KILN_TRY(parse_term(eq, &pos, &p->in[terms++]));
        if (eq[pos] != ',') break;
        pos++;
    }
    if (terms != n_inputs)
        return kiln_fail(KILN_ERR_MALFORMED, "equation '%s' has %d input terms but the node has %d inputs", eq, terms,
                         n_inputs);
    p->n_inputs = terms;
    if (eq[pos] == '\0') return implicit_output(eq, p);
    if (eq[pos + 1] != '>')
        return kiln_fail(KILN_ERR_MALFORMED, "equation '%s': '-' at position %d is not followed by '>'", eq, pos);
    pos += 2;
    KILN_TRY(parse_term(eq, &pos, &p->out));
    if (eq[pos] != '\0') return bad_char(eq, pos);
    return check_output(eq, p);
}

static kiln_status einsum_init(op_init_ctx *ctx)
{
    einsum_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, EINSUM_MAX_OPERANDS, 1, 1));
    for (int k = 0; k < ctx->n_inputs; k++) {
        KILN_TRY(op_require_dtype(ctx, k, EINSUM_DTYPES));
        if (ctx->input_dtypes[k] != ctx->input_dtypes[0])
            return kiln_fail(KILN_ERR_MALFORMED, "input %d is %s but input 0 is %s", k,
                             kiln_dtype_name(ctx->input_dtypes[k]), kiln_dtype_name(ctx->input_dtypes[0]));
    }
    const char *eq;
    KILN_TRY(attr_string(ctx->node, "equation", NULL, &eq));
    if (!eq) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'equation' is required");
    if (strlen(eq) > INT16_MAX) return kiln_fail(KILN_ERR_MALFORMED, "equation is too long");
    KILN_TRY(parse_equation(eq, ctx->n_inputs, p));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* ---- the iteration space (plan and run time) --------------------------------------------------------- */

/* Axes 0..ellipsis-1 are the ellipsis dims (numpy-broadcast across operands), the others one per label. */
typedef struct einsum_space {
    int n_axes, ellipsis, n_inputs;
    int64_t size[EINSUM_MAX_AXES];
    int64_t stride[EINSUM_MAX_OPERANDS][EINSUM_MAX_AXES]; /* in elements; 0 where the operand lacks the axis */
    bool present[EINSUM_MAX_OPERANDS][EINSUM_MAX_AXES];
    int64_t out_stride[EINSUM_MAX_AXES];
    bool in_output[EINSUM_MAX_AXES];
    int out_rank;
    int out_axes[KILN_MAX_RANK]; /* the axis behind each output dim */
    bool simple;                 /* no repeated label in an operand, no broadcast ellipsis dim */
} einsum_space;

/* The tensor dim that letter j of term t names in an operand whose ellipsis covers `covered` dims. */
static int letter_dim(const einsum_term *t, int j, int covered)
{
    return t->ellipsis >= 0 && j >= t->ellipsis ? j + covered : j;
}

static kiln_status add_ellipsis_dims(const einsum_params *p, kiln_tensor *const *in, einsum_space *s)
{
    s->ellipsis = 0;
    for (int k = 0; k < p->n_inputs; k++) {
        const einsum_term *t = &p->in[k];
        int covered = in[k]->rank - t->n;
        if (covered < 0 || (t->ellipsis < 0 && covered != 0))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d has rank %d but its term names %d dims%s", k,
                             in[k]->rank, t->n, t->ellipsis >= 0 ? " and an ellipsis" : "");
        if (covered > s->ellipsis) s->ellipsis = covered;
    }
    for (int a = 0; a < s->ellipsis; a++) s->size[a] = 1;
    for (int k = 0; k < p->n_inputs; k++) {
        const einsum_term *t = &p->in[k];
        int covered = in[k]->rank - t->n;
        for (int j = 0; j < covered; j++) {
            int a = s->ellipsis - covered + j;
            int64_t dim = in[k]->dims[t->ellipsis + j];
            if (dim != s->size[a] && dim != 1 && s->size[a] != 1)
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "ellipsis dims %lld and %lld cannot be broadcast together",
                                 (long long)dim, (long long)s->size[a]);
            if (dim != 1) s->size[a] = dim;
        }
    }
    s->n_axes = s->ellipsis;
    return KILN_OK;
}

/* Strides of every operand along the ellipsis axes and its labels' axes. */
static kiln_status add_operand_strides(const einsum_params *p, kiln_tensor *const *in, int *axis_of, einsum_space *s)
{
    for (int k = 0; k < p->n_inputs; k++) {
        const einsum_term *t = &p->in[k];
        int64_t strides[KILN_MAX_RANK];
        shape_strides(in[k]->rank, in[k]->dims, strides);
        int covered = in[k]->rank - t->n;
        for (int j = 0; j < covered; j++) {
            int a = s->ellipsis - covered + j, d = t->ellipsis + j;
            s->present[k][a] = true;
            if (in[k]->dims[d] != 1) s->stride[k][a] = strides[d];
            else if (s->size[a] != 1) s->simple = false;
        }
        for (int j = 0; j < t->n; j++) {
            int id = t->labels[j], d = letter_dim(t, j, covered);
            int64_t dim = in[k]->dims[d];
            if (axis_of[id] < 0) {
                axis_of[id] = s->n_axes;
                s->size[s->n_axes++] = dim;
            }
            int a = axis_of[id];
            if (dim != s->size[a])
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "label '%c' has size %lld in input %d but %lld elsewhere",
                                 label_char(id), (long long)dim, k, (long long)s->size[a]);
            if (s->present[k][a]) s->simple = false;
            s->present[k][a] = true;
            s->stride[k][a] += strides[d];
        }
    }
    return KILN_OK;
}

/* The output's dims, in the order the output term writes them, and its (row-major) strides per axis. */
static kiln_status add_output(const einsum_params *p, const int *axis_of, einsum_space *s)
{
    const einsum_term *t = &p->out;
    int rank = t->n + (t->ellipsis >= 0 ? s->ellipsis : 0);
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    s->out_rank = 0;
    for (int j = 0; j <= t->n; j++) {
        if (j == t->ellipsis)
            for (int a = 0; a < s->ellipsis; a++) s->out_axes[s->out_rank++] = a;
        if (j < t->n) s->out_axes[s->out_rank++] = axis_of[t->labels[j]];
    }
    int64_t stride = 1;
    for (int d = s->out_rank - 1; d >= 0; d--) {
        int a = s->out_axes[d];
        s->out_stride[a] = stride;
        s->in_output[a] = true;
        stride *= s->size[a];
    }
    return KILN_OK;
}

static kiln_status einsum_space_build(const einsum_params *p, kiln_tensor *const *in, einsum_space *s)
{
    memset(s, 0, sizeof *s);
    s->n_inputs = p->n_inputs;
    s->simple = true;
    int axis_of[EINSUM_LABELS];
    for (int id = 0; id < EINSUM_LABELS; id++) axis_of[id] = -1;
    KILN_TRY(add_ellipsis_dims(p, in, s));
    KILN_TRY(add_operand_strides(p, in, axis_of, s));
    return add_output(p, axis_of, s);
}

/* ---- the fast path: two float32 operands as a batched GEMM ------------------------------------------- */

enum { ROLE_BATCH, ROLE_M, ROLE_N, ROLE_K, ROLES };

/* The matmul role of every axis, or false when some axis has none (summed within one operand) or the
 * space is not simple. Sizes are the products of each role's axes. */
static bool gemm_roles(const einsum_space *s, kiln_dtype dtype, int *role, int64_t *sizes)
{
    if (dtype != KILN_FLOAT32 || s->n_inputs != 2 || !s->simple) return false;
    for (int r = 0; r < ROLES; r++) sizes[r] = 1;
    for (int a = 0; a < s->n_axes; a++) {
        bool in_a = s->present[0][a], in_b = s->present[1][a], out = s->in_output[a];
        if (in_a && in_b) role[a] = out ? ROLE_BATCH : ROLE_K;
        else if (out) role[a] = in_a ? ROLE_M : ROLE_N;
        else return false;
        sizes[role[a]] *= s->size[a];
    }
    return true;
}

/* A view that copies the axes of `roles` (in that order of roles, and of axes within a role) from strides
 * `from` into a dense block laid out in that order, or the reverse when `to_dense` is false. */
static void role_view(const einsum_space *s, const int *role, const int *roles, int n_roles, const int64_t *from,
                      bool to_dense, copy_view *v)
{
    v->rank = 0;
    int axes[EINSUM_MAX_AXES];
    for (int r = 0; r < n_roles; r++)
        for (int a = 0; a < s->n_axes; a++)
            if (role[a] == roles[r]) axes[v->rank++] = a;
    int64_t dense = 1;
    for (int i = v->rank - 1; i >= 0; i--) {
        int a = axes[i];
        v->dims[i] = s->size[a];
        v->src_strides[i] = to_dense ? from[a] : dense;
        v->dst_strides[i] = to_dense ? dense : from[a];
        dense *= s->size[a];
    }
}

typedef struct gemm_layout {
    int64_t batch, m, n, k;
    size_t a_bytes, b_bytes, c_bytes, gemm_bytes;
} gemm_layout;

static bool gemm_plan(const einsum_space *s, kiln_dtype dtype, int threads, int *role, gemm_layout *g)
{
    int64_t sizes[ROLES];
    if (!gemm_roles(s, dtype, role, sizes)) return false;
    g->batch = sizes[ROLE_BATCH], g->m = sizes[ROLE_M], g->n = sizes[ROLE_N], g->k = sizes[ROLE_K];
    g->a_bytes = mem_align_up((size_t)(g->batch * g->m * g->k) * sizeof(float), 64);
    g->b_bytes = mem_align_up((size_t)(g->batch * g->k * g->n) * sizeof(float), 64);
    g->c_bytes = mem_align_up((size_t)(g->batch * g->m * g->n) * sizeof(float), 64);
    g->gemm_bytes = gemm_f32_scratch_bytes(g->m, g->n, g->k, threads);
    return true;
}

static void einsum_gemm(const einsum_space *s, const int *role, const gemm_layout *g, kiln_tensor *const *in,
                        kiln_tensor *out, char *scratch, const parallel_runner *parallel)
{
    /* scratch holds A' [batch, M, K], B' [batch, K, N], C' [batch, M, N] and the GEMM's packing area */
    float *a = (float *)scratch, *b = (float *)(scratch + g->a_bytes);
    float *c = (float *)(scratch + g->a_bytes + g->b_bytes);
    void *work = scratch + g->a_bytes + g->b_bytes + g->c_bytes;
    copy_view v;
    role_view(s, role, (const int[]){ROLE_BATCH, ROLE_M, ROLE_K}, 3, s->stride[0], true, &v);
    copy_strided(&v, sizeof(float), in[0]->data, a, parallel);
    role_view(s, role, (const int[]){ROLE_BATCH, ROLE_K, ROLE_N}, 3, s->stride[1], true, &v);
    copy_strided(&v, sizeof(float), in[1]->data, b, parallel);
    for (int64_t i = 0; i < g->batch; i++) {
        gemm_args args = {.M = g->m, .N = g->n, .K = g->k, .A = a + i * g->m * g->k, .lda = g->k,
                          .B = b + i * g->k * g->n, .ldb = g->n, .C = c + i * g->m * g->n, .ldc = g->n,
                          .alpha = 1, .beta = 0};
        gemm_f32(&args, work, parallel);
    }
    role_view(s, role, (const int[]){ROLE_BATCH, ROLE_M, ROLE_N}, 3, s->out_stride, false, &v);
    copy_strided(&v, sizeof(float), c, out->data, parallel);
}

/* ---- the reference path: one walk over the whole space ----------------------------------------------- */

/* U is the arithmetic type: unsigned for integers, so that overflow wraps. The innermost axis runs in a
 * plain loop; the others advance like an odometer, carrying each operand's offset. */
#define DEFINE_EINSUM_WALK(T, U, NAME)                                                                        \
    static void NAME(const einsum_space *s, kiln_tensor *const *in, kiln_tensor *out)                         \
    {                                                                                                         \
        T *y = out->data;                                                                                     \
        int64_t total = tensor_numel(out), index[EINSUM_MAX_AXES] = {0}, off[EINSUM_MAX_OPERANDS + 1] = {0};  \
        for (int64_t i = 0; i < total; i++) y[i] = 0;                                                         \
        for (int a = 0; a < s->n_axes; a++)                                                                   \
            if (s->size[a] == 0) return;                                                                      \
        int n = s->n_inputs, last = s->n_axes - 1;                                                            \
        int64_t inner = last >= 0 ? s->size[last] : 1, out_step = last >= 0 ? s->out_stride[last] : 0;       \
        for (;;) {                                                                                            \
            for (int64_t i = 0; i < inner; i++) {                                                             \
                U product = 1;                                                                                \
                for (int k = 0; k < n; k++)                                                                   \
                    product *= (U)((const T *)in[k]->data)[off[k] + (last >= 0 ? i * s->stride[k][last] : 0)];\
                T *target = y + off[n] + i * out_step;                                                        \
                *target = (T)((U)*target + product);                                                          \
            }                                                                                                 \
            int a = last - 1;                                                                                 \
            for (; a >= 0; a--) {                                                                             \
                for (int k = 0; k < n; k++) off[k] += s->stride[k][a];                                        \
                off[n] += s->out_stride[a];                                                                   \
                if (++index[a] < s->size[a]) break;                                                           \
                for (int k = 0; k < n; k++) off[k] -= index[a] * s->stride[k][a];                             \
                off[n] -= index[a] * s->out_stride[a];                                                        \
                index[a] = 0;                                                                                 \
            }                                                                                                 \
            if (a < 0) return;                                                                                \
        }                                                                                                     \
    }

DEFINE_EINSUM_WALK(float, float, einsum_walk_f32)
DEFINE_EINSUM_WALK(double, double, einsum_walk_f64)
DEFINE_EINSUM_WALK(int32_t, uint32_t, einsum_walk_i32)
DEFINE_EINSUM_WALK(int64_t, uint64_t, einsum_walk_i64)
DEFINE_EINSUM_WALK(uint32_t, uint32_t, einsum_walk_u32)
DEFINE_EINSUM_WALK(uint64_t, uint64_t, einsum_walk_u64)

static void einsum_walk(const einsum_space *s, kiln_tensor *const *in, kiln_tensor *out)
{
    switch (out->dtype) {
    case KILN_FLOAT32: einsum_walk_f32(s, in, out); break;
    case KILN_FLOAT64: einsum_walk_f64(s, in, out); break;
    case KILN_INT32: einsum_walk_i32(s, in, out); break;
    case KILN_INT64: einsum_walk_i64(s, in, out); break;
    case KILN_UINT32: einsum_walk_u32(s, in, out); break;
    default: einsum_walk_u64(s, in, out); break;
    }
}

/* ---- shape and eval ---------------------------------------------------------------------------------- */

static kiln_status einsum_shape(op_ctx *ctx)
{
    einsum_space s;
    KILN_TRY(einsum_space_build(ctx->params, ctx->inputs, &s));
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < s.out_rank; d++) dims[d] = s.size[s.out_axes[d]];
    op_set_output_shape(ctx, 0, s.out_rank, dims);
    int role[EINSUM_MAX_AXES];
    gemm_layout g;
    if (gemm_plan(&s, ctx->outputs[0]->dtype, ctx->threads, role, &g))
        ctx->scratch_bytes = g.a_bytes + g.b_bytes + g.c_bytes + g.gemm_bytes;
    return KILN_OK;
}

static kiln_status einsum_eval(op_ctx *ctx)
{
    einsum_space s;
    KILN_TRY(einsum_space_build(ctx->params, ctx->inputs, &s));
    kiln_tensor *out = ctx->outputs[0];
    int role[EINSUM_MAX_AXES];
    gemm_layout g;
    if (!gemm_plan(&s, out->dtype, ctx->threads, role, &g) || tensor_numel(out) == 0 || g.k == 0)
        einsum_walk(&s, ctx->inputs, out);
    else
        einsum_gemm(&s, role, &g, ctx->inputs, out, ctx->scratch, ctx->parallel);
    return KILN_OK;
}

const op_def ops_einsum[] = {
    {"", "Einsum", 12, 18, sizeof(einsum_params), einsum_init, einsum_shape, einsum_eval, 0},
    OP_TABLE_END,
};
