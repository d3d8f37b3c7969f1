/*
 * rnn.c — the recurrent operators RNN, GRU and LSTM (float32): forward, reverse and bidirectional, layout 0
 * and 1, initial states, sequence lengths, peepholes, clip, every activation the spec lists, GRU's
 * linear_before_reset and LSTM's input_forget.
 *
 * The three share one description: attributes become an rnn_problem (kernels/rnn.h) at load, the input
 * shapes fill in its sizes at plan time, and kernels/rnn.c runs the recurrence. Inputs are, for all three,
 *   X, W, R, B, sequence_lens, initial_h   and for LSTM also   initial_c, P
 * and outputs Y, Y_h (and Y_c for LSTM), all optional.
 *
 * Activation lists are read as onnxruntime reads them: names are matched without regard to case, and a
 * bidirectional node may list one direction's functions (used for both). activation_alpha / activation_beta
 * are consumed in order by the functions that take them; a function finding its list used up takes its
 * ONNX operator's default (LeakyRelu 0.01, HardSigmoid 0.2 / 0.5, ...).
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "kernels/rnn.h"
#include "ops/op.h"

enum { IN_X, IN_W, IN_R, IN_B, IN_LENGTHS, IN_H0, IN_C0, IN_P };

typedef struct rnn_params {
    rnn_problem problem;   /* sizes are filled in at plan time */
    int64_t hidden_size;   /* 0 when the attribute is absent: taken from R */
    bool prepacked;        /* W and R are constants, packed into `packed` at load */
    rnn_prepacked packed;
} rnn_params;

static const kiln_dtype FLOAT32_ONLY[] = {KILN_FLOAT32, KILN_UNDEFINED};
static const kiln_dtype LENGTH_DTYPES[] = {KILN_INT32, KILN_UNDEFINED};

/* ---- activations ------------------------------------------------------------------------------------- */

typedef struct function_spec {
    const char *name;
    rnn_function fn;
    bool has_alpha, has_beta;
    float alpha, beta; /* defaults: those of the ONNX operator of the same name */
} function_spec;

static const function_spec FUNCTIONS[] = {
    {"Relu", RNN_RELU, false, false, 0, 0},
    {"Tanh", RNN_TANH, false, false, 0, 0},
    {"Sigmoid", RNN_SIGMOID, false, false, 0, 0},
    {"Affine", RNN_AFFINE, true, true, 1.0f, 0.0f},
    {"LeakyRelu", RNN_LEAKY_RELU, true, false, 0.01f, 0},
    {"ThresholdedRelu", RNN_THRESHOLDED_RELU, true, false, 1.0f, 0},
    {"ScaledTanh", RNN_SCALED_TANH, true, true, 1.0f, 1.0f},
    {"HardSigmoid", RNN_HARD_SIGMOID, true, true, 0.2f, 0.5f},
    {"Elu", RNN_ELU, true, false, 1.0f, 0},
    {"Softsign", RNN_SOFTSIGN, false, false, 0, 0},
    {"Softplus", RNN_SOFTPLUS, false, false, 0, 0},
};

static bool same_name_ignoring_case(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

static kiln_status find_function(const char *name, const function_spec **out)
{
    for (size_t i = 0; i < sizeof FUNCTIONS / sizeof FUNCTIONS[0]; i++)
        if (same_name_ignoring_case(FUNCTIONS[i].name, name)) {
            *out = &FUNCTIONS[i];
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_MALFORMED, "activation '%s' is not one the RNN operators allow", name);
}

/* The cell's functions per direction, in order f, g, h, and how many it has. */
static int cell_functions(rnn_cell cell, const char *const **defaults)
{
    static const char *const simple[] = {"Tanh"}, *const gru[] = {"Sigmoid", "Tanh"},
                             *const lstm[] = {"Sigmoid", "Tanh", "Tanh"};
    *defaults = cell == RNN_CELL_SIMPLE ? simple : cell == RNN_CELL_GRU ? gru : lstm;
    return cell == RNN_CELL_SIMPLE ? 1 : cell == RNN_CELL_GRU ? 2 : 3;
}

/* An alpha or beta: the next value of the list when there is one left, else the default. */
static float next_param(const graph_attr *list, int *used, float dflt)
{
    return list && *used < list->count ? list->floats[(*used)++] : dflt;
}

static kiln_status read_activations(const graph_node *node, rnn_problem *p)
{
    const char *const *defaults;
    int per_dir = cell_functions(p->cell, &defaults);
    const graph_attr *names, *alphas, *betas;
    KILN_TRY(attr_find(node, "activations", ATTR_STRINGS, &names));
    KILN_TRY(attr_find(node, "activation_alpha", ATTR_FLOATS, &alphas));
    KILN_TRY(attr_find(node, "activation_beta", ATTR_FLOATS, &betas));
    int listed = names ? names->count : 0;
    if (names && listed != per_dir && listed != per_dir * p->directions)
        return kiln_fail(KILN_ERR_MALFORMED, "'activations' lists %d functions, expected %d per direction", listed,
                         per_dir);
    int alpha_used = 0, beta_used = 0;
    for (int d = 0; d < p->directions; d++)
        for (int k = 0; k < per_dir; k++) {
            const char *name = names ? names->strings[(d * per_dir + k) % listed] : defaults[k];
            const function_spec *f = NULL;
            KILN_TRY(find_function(name, &f));
            /* a list shared by both directions gives the second the first's parameters too */
            if (names && listed == per_dir && d == 1) {
                p->act[1][k] = p->act[0][k];
                continue;
            }
            p->act[d][k].fn = f->fn;
            p->act[d][k].alpha = f->has_alpha ? next_param(alphas, &alpha_used, f->alpha) : 0.0f;
            p->act[d][k].beta = f->has_beta ? next_param(betas, &beta_used, f->beta) : 0.0f;
        }
    return KILN_OK;
}

/* ---- init -------------------------------------------------------------------------------------------- */

static kiln_status read_attributes(const graph_node *node, rnn_params *params)
{
    static const char *const DIRECTIONS[] = {"forward", "reverse", "bidirectional", NULL};
    rnn_problem *p = &params->problem;
    int direction;
    int64_t layout, flag;
    KILN_TRY(attr_int(node, "hidden_size", 0, &params->hidden_size));
    if (params->hidden_size < 0 || params->hidden_size > INT32_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "hidden_size is %lld, expected a positive size",
                         (long long)params->hidden_size);
    KILN_TRY(attr_choice(node, "direction", "forward", DIRECTIONS, &direction));
    p->directions = direction == 2 ? 2 : 1;
    p->reverse = direction == 1;
    KILN_TRY(attr_int(node, "layout", 0, &layout));
    if (layout != 0 && layout != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "layout is %lld, expected 0 or 1", (long long)layout);
    p->batch_first = layout == 1;
    KILN_TRY(attr_float(node, "clip", INFINITY, &p->clip));
    if (!(p->clip > 0))
        return kiln_fail(KILN_ERR_MALFORMED, "clip is %g, expected a positive bound", (double)p->clip);
    KILN_TRY(attr_int(node, "linear_before_reset", 0, &flag));
    p->linear_before_reset = flag != 0;
    KILN_TRY(attr_int(node, "input_forget", 0, &flag));
    p->input_forget = flag != 0;
    return read_activations(node, p);
}

/* Constant W and R of consistent shapes are packed once here; anything else runs unpacked (shape() reports
 * inconsistent shapes). */
static kiln_status prepack_weights(op_init_ctx *ctx, rnn_params *params)
{
    if (!ctx->constants) return KILN_OK;
    const kiln_tensor *w = ctx->constants[IN_W], *r = ctx->constants[IN_R];
    if (!w || !r || !w->data || !r->data || w->rank != 3 || r->rank != 3) return KILN_OK;
    int64_t D = r->dims[0], gh = r->dims[1], hidden = r->dims[2], input = w->dims[2];
    bool consistent = D == params->problem.directions && w->dims[0] == D && w->dims[1] == gh &&
                      gh == hidden * rnn_gates(params->problem.cell) &&
                      (!params->hidden_size || params->hidden_size == hidden);
    if (!consistent || tensor_numel(w) == 0 || tensor_numel(r) == 0) return KILN_OK;
    void *memory = op_alloc_prepacked(ctx, rnn_prepack_bytes((int)D, gh, input, hidden));
    if (!memory) return KILN_ERR_OUT_OF_MEMORY;
    rnn_prepack((int)D, gh, input, hidden, w->data, r->data, memory, &params->packed);
    params->prepacked = true;
    return KILN_OK;
}

static kiln_status rnn_init_cell(op_init_ctx *ctx, rnn_cell cell)
{
    rnn_params *params = ctx->params;
    params->problem.cell = cell;
    int max_in = cell == RNN_CELL_LSTM ? 8 : 6, max_out = cell == RNN_CELL_LSTM ? 3 : 2;
    KILN_TRY(op_require_arity(ctx, 3, max_in, 0, max_out));
    for (int i = 0; i < ctx->n_inputs; i++)
        if (op_has_input(ctx, i)) KILN_TRY(op_require_dtype(ctx, i, i == IN_LENGTHS ? LENGTH_DTYPES : FLOAT32_ONLY));
    KILN_TRY(read_attributes(ctx->node, params));
    for (int i = 0; i < ctx->n_outputs; i++) ctx->output_dtypes[i] = KILN_FLOAT32;
    return prepack_weights(ctx, params);
}

static kiln_status rnn_init(op_init_ctx *ctx) { return rnn_init_cell(ctx, RNN_CELL_SIMPLE); }
static kiln_status gru_init(op_init_ctx *ctx) { return rnn_init_cell(ctx, RNN_CELL_GRU); }
static kiln_status lstm_init(op_init_ctx *ctx) { return rnn_init_cell(ctx, RNN_CELL_LSTM); }

/* ---- shapes ------------------------------------------------------------------------------------------ */

static const kiln_tensor *input_at(const op_ctx *ctx, int i) { return i < ctx->n_inputs ? ctx->inputs[i] : NULL; }

/* Fails unless t (when given) has exactly the dims d0, d1[, d2] (rank = 2 or 3). */
static kiln_status require_dims(const kiln_tensor *t, const char *what, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t want[3] = {d0, d1, d2};
    if (!t || shape_equal(t->rank, t->dims, rank, want)) return KILN_OK;
    char got[128], expected[128];
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s has shape %s, expected %s", what,
                     shape_format(got, sizeof got, t->rank, t->dims),
                     shape_format(expected, sizeof expected, rank, want));
}

/* The problem the inputs describe: the load-time attributes plus sizes, every input's shape checked. */
static kiln_status describe_rnn(const op_ctx *ctx, rnn_problem *p)
{
    const rnn_params *params = ctx->params;
    *p = params->problem;
    const kiln_tensor *x = ctx->inputs[IN_X], *w = ctx->inputs[IN_W], *r = ctx->inputs[IN_R];
    if (x->rank != 3) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "X has rank %d, expected 3", x->rank);
    if (r->rank != 3) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "R has rank %d, expected 3", r->rank);
    p->seq = x->dims[p->batch_first ? 1 : 0];
    p->batch = x->dims[p->batch_first ? 0 : 1];
    p->input = x->dims[2];
    p->hidden = params->hidden_size ? params->hidden_size : r->dims[2];
    int64_t D = p->directions, H = p->hidden, B = p->batch, GH = rnn_gates(p->cell) * H;
    KILN_TRY(require_dims(w, "W", 3, D, GH, p->input));
    KILN_TRY(require_dims(r, "R", 3, D, GH, H));
    KILN_TRY(require_dims(input_at(ctx, IN_B), "B", 2, D, 2 * GH, 0));
    KILN_TRY(require_dims(input_at(ctx, IN_P), "P", 2, D, 3 * H, 0));
    KILN_TRY(require_dims(input_at(ctx, IN_LENGTHS), "sequence_lens", 1, B, 0, 0));
    for (int i = IN_H0; i <= IN_C0; i++)
        KILN_TRY(require_dims(input_at(ctx, i), i == IN_H0 ? "initial_h" : "initial_c", 3, p->batch_first ? B : D,
                              p->batch_first ? D : B, H));
    return KILN_OK;
}

static kiln_status rnn_shape(op_ctx *ctx)
{
    rnn_problem p;
    KILN_TRY(describe_rnn(ctx, &p));
    int64_t D = p.directions, B = p.batch, H = p.hidden, count;
    int64_t y_dims[4] = {p.seq, D, B, H}, state_dims[3] = {D, B, H};
    if (p.batch_first) {
        int64_t y[4] = {B, p.seq, D, H}, s[3] = {B, D, H};
        memcpy(y_dims, y, sizeof y);
        memcpy(state_dims, s, sizeof s);
    }
    /* X may have no elements (input size 0) while declaring any sequence and batch: bound the projection */
    int64_t projected[3] = {p.seq, p.batch, rnn_gates(p.cell) * p.hidden};
    if (shape_numel_checked(4, y_dims, &count) != KILN_OK || shape_numel_checked(3, projected, &count) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the sequence is too large");
    op_set_output_shape(ctx, 0, 4, y_dims);
    for (int i = 1; i < ctx->n_outputs; i++) op_set_output_shape(ctx, i, 3, state_dims);
    ctx->scratch_bytes = rnn_f32_scratch_bytes(&p, ctx->threads > 0 ? ctx->threads : 1);
    if (ctx->scratch_bytes > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the recurrence needs too much working memory");
    return KILN_OK;
}

/* ---- eval -------------------------------------------------------------------------------------------- */

static kiln_status check_lengths(const kiln_tensor *lengths, int64_t seq)
{
    for (int64_t b = 0; lengths && b < tensor_numel(lengths); b++) {
        int32_t n = ((const int32_t *)lengths->data)[b];
        if (n < 0 || n > seq)
            return kiln_fail(KILN_ERR_RUNTIME, "sequence_lens[%lld] is %d, outside [0, %lld]", (long long)b, n,
                             (long long)seq);
    }
    return KILN_OK;
}

static const void *data_of(const kiln_tensor *t) { return t ? t->data : NULL; }

static float *output_data(const op_ctx *ctx, int i)
{
    return i < ctx->n_outputs && ctx->outputs[i] ? ctx->outputs[i]->data : NULL;
}

static kiln_status rnn_eval(op_ctx *ctx)
{
    rnn_problem p;
    KILN_TRY(describe_rnn(ctx, &p));
    const kiln_tensor *lengths = input_at(ctx, IN_LENGTHS);
    KILN_TRY(check_lengths(lengths, p.seq));
    const rnn_params *params = ctx->params;
    rnn_tensors t = {
        .x = ctx->inputs[IN_X]->data, .w = ctx->inputs[IN_W]->data, .r = ctx->inputs[IN_R]->data,
        .packed = params->prepacked ? &params->packed : NULL,
        .bias = data_of(input_at(ctx, IN_B)), .peephole = data_of(input_at(ctx, IN_P)),
        .h0 = data_of(input_at(ctx, IN_H0)), .c0 = data_of(input_at(ctx, IN_C0)), .lengths = data_of(lengths),
        .y = output_data(ctx, 0), .y_h = output_data(ctx, 1), .y_c = output_data(ctx, 2),
    };
    rnn_f32(&p, &t, RNN_VARIANT_FAST, ctx->scratch, ctx->parallel);
    return KILN_OK;
}

/* Opset 7 dropped output_sequence and made Y optional; layout (14) is absent from earlier nodes, which then
 * read as layout 0. */
const op_def ops_rnn[] = {
    {"", "RNN", 7, 18, sizeof(rnn_params), rnn_init, rnn_shape, rnn_eval, 0},
    {"", "GRU", 7, 18, sizeof(rnn_params), gru_init, rnn_shape, rnn_eval, 0},
    {"", "LSTM", 7, 18, sizeof(rnn_params), lstm_init, rnn_shape, rnn_eval, 0},
    OP_TABLE_END,
};
