/*
 * rnn.c — the RNN, GRU and LSTM recurrences (see rnn.h).
 *
 * Per direction: one GEMM projects every step's input at once (xw = x * W^T, with Wb + Rb already added),
 * then each step multiplies the state by R^T (one GEMM of batch rows) and applies the cell's gate equations
 * row by row, in place in that product's buffer. GRU without linear_before_reset needs (r . h) * Rh^T, which
 * depends on the step's r gate: its steps run the z/r gates first, a second small GEMM, then the candidate.
 *
 * With weights pre-packed at load (rnn_prepack), a batch-1 step multiplies h by R^T cut into blocks of
 * RNN_BLOCK columns stored k-major: one contiguous stream through R per step with a block's sums in
 * registers, where h * R^T as dot products ends each of the G*H outputs with a horizontal sum and a
 * row-major vector-matrix product spills its sums to memory. It is gemm's idea (packed panels) with the
 * matrix-vector kernel gemm lacks; x86/rnn_avx512.c is its AVX-512 version.
 *
 * The activation formulas are those of the ONNX RNN spec (the same ones ops/activation.c implements as
 * standalone operators), here as one switch over whole gate vectors, which is where the time goes.
 */
#include "kernels/rnn.h"

#include <math.h>
#include <string.h>

#include "core/mem.h"
#include "core/platform/platform.h"
#include "kernels/gemm.h"
#include "kernels/vmath.h"

int rnn_gates(rnn_cell cell) { return cell == RNN_CELL_SIMPLE ? 1 : cell == RNN_CELL_GRU ? 3 : 4; }

/* ---- activations ------------------------------------------------------------------------------------- */

static float activate_one(const rnn_activation *a, float x)
{
    switch (a->fn) {
    case RNN_RELU: return x < 0 ? 0.0f : x;
    case RNN_TANH: return tanhf(x);
    case RNN_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case RNN_AFFINE: return a->alpha * x + a->beta;
    case RNN_LEAKY_RELU: return x < 0 ? a->alpha * x : x;
    case RNN_THRESHOLDED_RELU: return x > a->alpha ? x : 0.0f;
    case RNN_SCALED_TANH: return a->alpha * tanhf(a->beta * x);
    case RNN_HARD_SIGMOID: {
        float v = a->alpha * x + a->beta;
        return v < 0 ? 0.0f : v > 1 ? 1.0f : v;
    }
    case RNN_ELU: return x < 0 ? a->alpha * expm1f(x) : x;
    case RNN_SOFTSIGN: return x / (1.0f + fabsf(x));
    case RNN_SOFTPLUS: return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x)); /* no overflow for large x */
    default: return x;
    }
}

void rnn_activate(const rnn_activation *a, float *v, int64_t n, rnn_variant variant)
{
    const vmath_set *fast = variant == RNN_VARIANT_FAST ? vmath_fast_f32() : NULL;
    if (fast && a->fn == RNN_SIGMOID) {
        fast->sigmoid(v, v, n);
        return;
    }
    if (fast && a->fn == RNN_TANH) {
        fast->tanh(v, v, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) v[i] = activate_one(a, v[i]);
}

static float clip(float v, float limit) { return v > limit ? limit : v < -limit ? -limit : v; }

/* ---- weights packed at load ------------------------------------------------------------------------- */

static size_t blocked_r_bytes(int64_t gh, int64_t hidden)
{
    int64_t blocks = (gh + RNN_BLOCK - 1) / RNN_BLOCK;
    return mem_align_up((size_t)(blocks * RNN_BLOCK * hidden) * sizeof(float), KILN_ALIGNMENT) + KILN_ALIGNMENT;
}

size_t rnn_prepack_bytes(int directions, int64_t gh, int64_t input, int64_t hidden)
{
    return directions * (blocked_r_bytes(gh, hidden) + gemm_f32_pack_b_bytes(GEMM_VARIANT_AUTO, input, gh) +
                         gemm_f32_pack_b_bytes(GEMM_VARIANT_AUTO, hidden, gh));
}

/* R (gh, hidden) as column blocks of R^T into `memory` (see rnn_prepacked); returns the aligned start. */
static const float *block_r(const float *r, int64_t gh, int64_t hidden, char *memory)
{
    float *out = (float *)(void *)(memory + (KILN_ALIGNMENT - (uintptr_t)memory % KILN_ALIGNMENT) % KILN_ALIGNMENT);
    int64_t blocks = (gh + RNN_BLOCK - 1) / RNN_BLOCK;
    for (int64_t jb = 0; jb < blocks; jb++)
        for (int64_t k = 0; k < hidden; k++) {
            float *row = out + (jb * hidden + k) * RNN_BLOCK;
            for (int64_t j = 0; j < RNN_BLOCK; j++) {
                int64_t col = jb * RNN_BLOCK + j;
                row[j] = col < gh ? r[col * hidden + k] : 0.0f;
            }
        }
    return out;
}

void rnn_prepack(int directions, int64_t gh, int64_t input, int64_t hidden, const float *w, const float *r,
                 void *memory, rnn_prepacked *out)
{
    char *next = memory;
    for (int d = 0; d < directions; d++) {
        const float *rd = r + d * gh * hidden;
        out->r_blocks[d] = block_r(rd, gh, hidden, next);
        next += blocked_r_bytes(gh, hidden);
        gemm_f32_pack_b(GEMM_VARIANT_AUTO, input, gh, true, w + d * gh * input, input, next, &out->w[d]);
        next += gemm_f32_pack_b_bytes(GEMM_VARIANT_AUTO, input, gh);
        gemm_f32_pack_b(GEMM_VARIANT_AUTO, hidden, gh, true, rd, hidden, next, &out->r[d]);
        next += gemm_f32_pack_b_bytes(GEMM_VARIANT_AUTO, hidden, gh);
    }
}

void rnn_matvec_blocked_reference(int64_t K, int64_t n, const float *x, const float *blocks, float *y)
{
    for (int64_t j0 = 0; j0 < n; j0 += RNN_BLOCK) {
        const float *block = blocks + j0 * K; /* block j0 / RNN_BLOCK starts RNN_BLOCK * K floats further */
        float sums[RNN_BLOCK] = {0};
        for (int64_t k = 0; k < K; k++)
            for (int j = 0; j < RNN_BLOCK; j++) sums[j] += x[k] * block[k * RNN_BLOCK + j];
        for (int64_t j = j0; j < n && j < j0 + RNN_BLOCK; j++) y[j] = sums[j - j0];
    }
}

static rnn_matvec_fn fast_matvec(void)
{
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx512f) return rnn_matvec_blocked_avx512;
#endif
    return rnn_matvec_blocked_reference;
}

/* ---- one direction ----------------------------------------------------------------------------------- */

/* Scratch, in floats: the projected inputs, the recurrent product, the state, a row buffer, then GEMM's. */
typedef struct rnn_scratch {
    size_t xw, hw, h, c, tmp, gemm, total;
} rnn_scratch;

static size_t floats_bytes(int64_t n) { return mem_align_up((size_t)n * sizeof(float), KILN_ALIGNMENT); }

static rnn_scratch scratch_layout(const rnn_problem *p, int threads)
{
    int64_t gh = rnn_gates(p->cell) * p->hidden, bh = p->batch * p->hidden;
    size_t project = gemm_f32_scratch_bytes(p->seq * p->batch, gh, p->input, threads);
    size_t recur = gemm_f32_scratch_bytes(p->batch, gh, p->hidden, threads);
    rnn_scratch s;
    s.xw = 0;
    s.hw = s.xw + floats_bytes(p->seq * p->batch * gh);
    s.h = s.hw + floats_bytes(p->batch * gh);
    s.c = s.h + floats_bytes(bh);
    s.tmp = s.c + floats_bytes(bh);
    s.gemm = s.tmp + floats_bytes(bh);
    s.total = s.gemm + (project > recur ? project : recur);
    return s;
}

size_t rnn_f32_scratch_bytes(const rnn_problem *p, int threads) { return scratch_layout(p, threads).total; }

typedef struct direction_run {
    const rnn_problem *p;
    const rnn_tensors *t;
    rnn_variant variant;
    int d;
    bool backwards;
    int64_t gh;
    const float *w, *r, *peephole; /* this direction's slices */
    const gemm_packed_b *w_packed, *r_packed; /* this direction's pre-packed W^T and R^T, or NULL */
    const float *r_blocks;                    /* this direction's blocked R^T, or NULL */
    const float *rbh;              /* GRU with linear_before_reset: Rb of the h gate, kept out of xw */
    const rnn_activation *act;
    float *xw, *hw, *h, *c, *tmp;
    void *gemm_scratch;
    const parallel_runner *parallel;
} direction_run;

/* C[M,N] (row stride ldc) = A[M,K] (row stride lda) * B^T, B stored [N,K]; `packed` (or NULL) is B^T
 * pre-packed, used when it covers exactly these K and N. */
static void multiply_bt(const direction_run *r, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *B, const gemm_packed_b *packed, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
        return;
    }
    gemm_args g = {M, N, K, false, true, A, lda, B, K, C, ldc, 1.0f, 0.0f};
    if (r->variant != RNN_VARIANT_FAST) gemm_f32_reference(&g);
    else if (packed && packed->K == K && packed->N == N) gemm_f32_prepacked(&g, packed, r->gemm_scratch, r->parallel);
    else gemm_f32(&g, r->gemm_scratch, r->parallel);
}

static int64_t x_row(const rnn_problem *p, int64_t t, int64_t b)
{
    return p->batch_first ? b * p->seq + t : t * p->batch + b;
}

static int64_t state_offset(const rnn_problem *p, int d, int64_t b)
{
    return (p->batch_first ? b * p->directions + d : d * p->batch + b) * p->hidden;
}

static int64_t y_offset(const rnn_problem *p, int64_t t, int d, int64_t b)
{
    int64_t D = p->directions;
    return (p->batch_first ? (b * p->seq + t) * D + d : (t * D + d) * p->batch + b) * p->hidden;
}

/* xw = x * W^T + Wb + Rb for every step (GRU with linear_before_reset leaves the h gate's Rb out). */
static void project_inputs(direction_run *r)
{
    const rnn_problem *p = r->p;
    int64_t rows = p->seq * p->batch, gh = r->gh;
    multiply_bt(r, rows, gh, p->input, r->t->x, p->input, r->w, r->w_packed, r->xw, gh);
    if (!r->t->bias) return;
    const float *wb = r->t->bias + (int64_t)r->d * 2 * gh, *rb = wb + gh;
    int64_t folded = r->rbh ? 2 * p->hidden : gh;
    for (int64_t i = 0; i < rows; i++) {
        float *row = r->xw + i * gh;
        for (int64_t j = 0; j < gh; j++) row[j] += wb[j] + (j < folded ? rb[j] : 0.0f);
    }
}

static void load_state(direction_run *r)
{
    const rnn_problem *p = r->p;
    size_t row_bytes = (size_t)p->hidden * sizeof(float);
    for (int64_t b = 0; b < p->batch; b++) {
        float *h = r->h + b * p->hidden, *c = r->c + b * p->hidden;
        if (r->t->h0) memcpy(h, r->t->h0 + state_offset(p, r->d, b), row_bytes);
        else memset(h, 0, row_bytes);
        if (r->t->c0) memcpy(c, r->t->c0 + state_offset(p, r->d, b), row_bytes);
        else memset(c, 0, row_bytes);
    }
}

/* The time step batch entry b takes at step s, or -1 when its sequence has ended. */
static int64_t step_time(const direction_run *r, int64_t b, int64_t s)
{
    int64_t length = r->t->lengths ? r->t->lengths[b] : r->p->seq;
    if (s >= length) return -1;
    return r->backwards ? length - 1 - s : s;
}

/* g[j] = clip(x[j] + g[j]) for j < n: a gate's input from the projected input and the recurrent product. */
static void gate_inputs(const direction_run *r, const float *x, float *g, int64_t n)
{
    float limit = r->p->clip;
    if (limit == INFINITY) /* no clip (the usual case): a loop the compiler vectorises */
        for (int64_t j = 0; j < n; j++) g[j] += x[j];
    else
        for (int64_t j = 0; j < n; j++) g[j] = clip(x[j] + g[j], limit);
}

static void simple_cell(direction_run *r, int64_t b, const float *x)
{
    int64_t H = r->p->hidden;
    float *g = r->hw + b * r->gh;
    gate_inputs(r, x, g, H);
    rnn_activate(&r->act[0], g, H, r->variant);
    memcpy(r->h + b * H, g, (size_t)H * sizeof(float));
}

/* GRU, first half: z and r gates into hw[b, 0:2H]; without linear_before_reset also tmp[b] = r . h. */
static void gru_gates(direction_run *r, int64_t b, const float *x)
{
    int64_t H = r->p->hidden;
    float *g = r->hw + b * r->gh;
    gate_inputs(r, x, g, 2 * H);
    rnn_activate(&r->act[0], g, 2 * H, r->variant);
    if (r->p->linear_before_reset) return;
    const float *reset = g + H, *h = r->h + b * H;
    for (int64_t j = 0; j < H; j++) r->tmp[b * H + j] = reset[j] * h[j];
}

/* GRU, second half: the candidate from hw[b, 2H:3H] (h * Rh^T, or (r . h) * Rh^T), then the new state. */
static void gru_update(direction_run *r, int64_t b, const float *x)
{
    int64_t H = r->p->hidden;
    float *g = r->hw + b * r->gh, *cand = g + 2 * H, *h = r->h + b * H;
    const float *update = g, *reset = g + H;
    for (int64_t j = 0; j < H; j++) {
        float recurrent = r->p->linear_before_reset ? reset[j] * (cand[j] + (r->rbh ? r->rbh[j] : 0.0f)) : cand[j];
        cand[j] = clip(x[2 * H + j] + recurrent, r->p->clip);
    }
    rnn_activate(&r->act[1], cand, H, r->variant);
    for (int64_t j = 0; j < H; j++) h[j] = (1.0f - update[j]) * cand[j] + update[j] * h[j];
}

/* LSTM without peepholes: no gate depends on the new cell state, so the i o f gates (contiguous, all with
 * activation f) are formed and activated in one pass each over 3H values. */
static void lstm_cell_plain(direction_run *r, int64_t b, const float *x)
{
    int64_t H = r->p->hidden;
    float *g = r->hw + b * r->gh, *h = r->h + b * H, *c = r->c + b * H, *hc = r->tmp + b * H;
    float *in = g, *out = g + H, *forget = g + 2 * H, *cand = g + 3 * H;
    gate_inputs(r, x, g, 4 * H);
    rnn_activate(&r->act[0], in, 3 * H, r->variant);
    rnn_activate(&r->act[1], cand, H, r->variant);
    if (r->p->input_forget)
        for (int64_t j = 0; j < H; j++) c[j] = (1.0f - in[j]) * c[j] + in[j] * cand[j];
    else
        for (int64_t j = 0; j < H; j++) c[j] = forget[j] * c[j] + in[j] * cand[j];
    memcpy(hc, c, (size_t)H * sizeof(float));
    rnn_activate(&r->act[2], hc, H, r->variant);
    for (int64_t j = 0; j < H; j++) h[j] = out[j] * hc[j];
}

/* LSTM: gates i o f c at hw[b] offsets 0, H, 2H, 3H; peepholes i o f. */
static void lstm_cell(direction_run *r, int64_t b, const float *x)
{
    if (!r->peephole) {
        lstm_cell_plain(r, b, x);
        return;
    }
    int64_t H = r->p->hidden;
    float *g = r->hw + b * r->gh, *h = r->h + b * H, *c = r->c + b * H, *hc = r->tmp + b * H;
    float *in = g, *out = g + H, *forget = g + 2 * H, *cand = g + 3 * H;
    const float *peep = r->peephole;
    for (int64_t j = 0; j < H; j++) {
        in[j] += peep ? peep[j] * c[j] : 0.0f;
        forget[j] += peep ? peep[2 * H + j] * c[j] : 0.0f;
    }
    gate_inputs(r, x, in, H);
    gate_inputs(r, x + 2 * H, forget, 2 * H); /* forget and candidate */
    rnn_activate(&r->act[0], in, H, r->variant);
    rnn_activate(&r->act[0], forget, H, r->variant);
    rnn_activate(&r->act[1], cand, H, r->variant);
    for (int64_t j = 0; j < H; j++) {
        float f = r->p->input_forget ? 1.0f - in[j] : forget[j];
        c[j] = f * c[j] + in[j] * cand[j];
        out[j] = clip(x[H + j] + out[j] + (peep ? peep[H + j] * c[j] : 0.0f), r->p->clip);
        hc[j] = c[j];
    }
    rnn_activate(&r->act[0], out, H, r->variant);
    rnn_activate(&r->act[2], hc, H, r->variant);
    for (int64_t j = 0; j < H; j++) h[j] = out[j] * hc[j];
}

/* Applies `cell` to every batch entry still running at step s. */
static void for_active(direction_run *r, int64_t s, void (*cell)(direction_run *, int64_t, const float *))
{
    for (int64_t b = 0; b < r->p->batch; b++) {
        int64_t t = step_time(r, b, s);
        if (t >= 0) cell(r, b, r->xw + x_row(r->p, t, b) * r->gh);
    }
}

static void run_step(direction_run *r, int64_t s)
{
    const rnn_problem *p = r->p;
    int64_t H = p->hidden, B = p->batch;
    bool two_products = p->cell == RNN_CELL_GRU && !p->linear_before_reset;
    if (two_products) multiply_bt(r, B, 2 * H, H, r->h, H, r->r, NULL, r->hw, r->gh);
    else if (B == 1 && r->r_blocks) fast_matvec()(H, r->gh, r->h, r->r_blocks, r->hw);
    else multiply_bt(r, B, r->gh, H, r->h, H, r->r, r->r_packed, r->hw, r->gh);
    if (p->cell == RNN_CELL_SIMPLE) for_active(r, s, simple_cell);
    else if (p->cell == RNN_CELL_LSTM) for_active(r, s, lstm_cell);
    else {
        for_active(r, s, gru_gates);
        if (two_products) multiply_bt(r, B, H, H, r->tmp, H, r->r + 2 * H * H, NULL, r->hw + 2 * H, r->gh);
        for_active(r, s, gru_update);
    }
    for (int64_t b = 0; b < B && r->t->y; b++) {
        int64_t t = step_time(r, b, s);
        if (t >= 0) memcpy(r->t->y + y_offset(p, t, r->d, b), r->h + b * H, (size_t)H * sizeof(float));
    }
}

static void store_final_state(const direction_run *r)
{
    const rnn_problem *p = r->p;
    size_t row_bytes = (size_t)p->hidden * sizeof(float);
    for (int64_t b = 0; b < p->batch; b++) {
        if (r->t->y_h) memcpy(r->t->y_h + state_offset(p, r->d, b), r->h + b * p->hidden, row_bytes);
        if (r->t->y_c) memcpy(r->t->y_c + state_offset(p, r->d, b), r->c + b * p->hidden, row_bytes);
    }
}

/* GRU with linear_before_reset applies r to (h * Rh^T + Rbh): direction d's Rbh, which then stays out of xw;
 * NULL otherwise. */
static const float *separate_reset_bias(const rnn_problem *p, const rnn_tensors *t, int d)
{
    if (p->cell != RNN_CELL_GRU || !p->linear_before_reset || !t->bias) return NULL;
    int64_t gh = 3 * p->hidden;
    return t->bias + (d * 2 + 1) * gh + 2 * p->hidden;
}

void rnn_f32(const rnn_problem *p, const rnn_tensors *t, rnn_variant variant, void *scratch,
             const parallel_runner *parallel)
{
    rnn_scratch s = scratch_layout(p, parallel_threads(parallel));
    char *base = scratch;
    int64_t gh = rnn_gates(p->cell) * p->hidden, H = p->hidden;
    /* steps past a sequence's end are zeros in y */
    if (t->y && t->lengths) memset(t->y, 0, (size_t)(p->seq * p->directions * p->batch * H) * sizeof(float));
    for (int d = 0; d < p->directions; d++) {
        direction_run r = {
            .p = p, .t = t, .variant = variant, .d = d, .backwards = p->directions == 2 ? d == 1 : p->reverse, .gh = gh,
            .w = t->w + d * gh * p->input, .r = t->r + d * gh * H,
            .peephole = t->peephole ? t->peephole + d * 3 * H : NULL,
            .w_packed = t->packed && variant == RNN_VARIANT_FAST ? &t->packed->w[d] : NULL,
            .r_packed = t->packed && variant == RNN_VARIANT_FAST ? &t->packed->r[d] : NULL,
            .r_blocks = t->packed && variant == RNN_VARIANT_FAST ? t->packed->r_blocks[d] : NULL,
            .rbh = separate_reset_bias(p, t, d),
            .act = p->act[d],
            .xw = (float *)(base + s.xw), .hw = (float *)(base + s.hw), .h = (float *)(base + s.h),
            .c = (float *)(base + s.c), .tmp = (float *)(base + s.tmp), .gemm_scratch = base + s.gemm,
            .parallel = parallel,
        };
        project_inputs(&r);
        load_state(&r);
        for (int64_t step = 0; step < p->seq; step++) run_step(&r, step);
        store_final_state(&r);
    }
}
