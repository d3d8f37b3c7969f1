/*
 * conv.c — the fast float32 convolutions, all built on gemm_f32 except the depthwise one.
 *
 * Forward, per image n and group g (a "task"), with K = C/groups * kernel volume and S = output volume:
 *   im2col     y[n, g] (M/groups x S) = w[g] (M/groups x K) * col, where col (K x S) is x[n, g] unfolded.
 *              col never exists whole: the GEMM asks for it one micro-panel at a time (im2col_panel) and
 *              gets it straight from x, so the unfolded copy is written once, into the panel, and read
 *              from cache, instead of being written, read back and packed.
 *   pointwise  a 1x1, stride-1, unpadded kernel makes x[n, g] itself the K x S operand: no unfolding
 *   depthwise  groups == C == M: each output channel is one small filter over one input channel; a GEMM
 *              would have a single row, so direct loops win: with AVX-512, sixteen channels at a time
 *              laid out channel-last in scratch (conv_depthwise_rows_avx512: a vector per output pixel,
 *              no wasted lanes on 7- or 14-wide planes), else plane by plane along rows
 * The forward GEMMs add the bias and apply the clamp (a fused Relu or Clip) tile by tile while the tile is
 * in cache, and use filters packed once at load when the caller has them (conv_f32_pack_filters).
 * Transposed, per task: col (M/groups * kernel volume x input volume) = w[g]^T * x[n, g], then col2im adds
 * each column back into the output (the adjoint of im2col); pointwise skips col2im. Bias comes after the GEMM.
 *
 * Threads: when there are at least as many tasks as threads (batches, grouped convolutions) or each task is
 * small, workers take whole tasks, each with its own slot of scratch and a single-threaded GEMM. Otherwise
 * tasks run one after another and the threads split the GEMM inside each (gemm_f32_fused's strips, each
 * thread unfolding the panels it multiplies); depthwise work is shared out as (image, 16-channel block,
 * band of output rows) tasks, or whole planes without AVX-512. Scratch is
 * requested for a planned thread count; a run that finds less than its threads would need uses fewer
 * threads instead of overrunning it.
 */
#include "kernels/conv.h"

#include <stdbool.h>
#include <string.h>

#include "core/mem.h"
#include "core/platform/platform.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"

/* Whole-task parallelism is worth its extra scratch up to this much. */
#define TASK_SCRATCH_LIMIT ((size_t)64 << 20)
/* Below this many multiply-adds a task is too small to split across threads. */
#define SMALL_TASK_MACS 4e6
/* Elements of work a parallel chunk should have at least, so scheduling stays cheap. */
#define GRAIN_ELEMENTS 32768

/* ---- the GEMM each task performs ---------------------------------------------------------------------- */

typedef struct task_plan {
    bool transpose;
    bool blocked;   /* the GEMM's B or C is channel-blocked */
    conv_algo algo;
    int64_t tasks;                  /* batch * groups */
    int64_t gemm_m, gemm_n, gemm_k; /* one task's GEMM */
    size_t col_bytes;               /* its unfolded matrix; 0 when the GEMM works on x or y directly */
} task_plan;

static task_plan plan_tasks(const conv_shape *s, conv_algo algo, bool transpose)
{
    const conv_window *w = &s->win;
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups, kvol = conv_volume(w->kernel);
    task_plan t = {.transpose = transpose, .blocked = s->x_blocked || s->y_blocked, .algo = algo, .tasks = s->batch * s->groups};
    if (transpose) {
        t.gemm_m = mg * kvol, t.gemm_n = conv_volume(w->in), t.gemm_k = cg;
    } else {
        t.gemm_m = mg, t.gemm_n = conv_volume(w->out), t.gemm_k = cg * kvol;
    }
    size_t col_elements = 0;
    if (algo == CONV_ALGO_IM2COL && transpose && !mem_mul_ok((size_t)(transpose ? t.gemm_m : t.gemm_k), (size_t)t.gemm_n, &col_elements))
        col_elements = SIZE_MAX / sizeof(float);
    t.col_bytes = algo == CONV_ALGO_IM2COL && transpose ? col_elements * sizeof(float) : 0;
    return t;
}

/* One worker's scratch: the unfolded matrix, then the GEMM's own buffers. SIZE_MAX when too large. */
static size_t slot_bytes(const task_plan *t, int gemm_threads)
{
    size_t col = mem_align_up(t->col_bytes, KILN_ALIGNMENT);
    size_t gemm = t->transpose ? gemm_f32_scratch_bytes(t->gemm_m, t->gemm_n, t->gemm_k, gemm_threads)
                  : t->blocked ? gemm_f32_fused_blocked_scratch_bytes(t->gemm_m, t->gemm_n, t->gemm_k, gemm_threads)
                                 : gemm_f32_fused_scratch_bytes(t->gemm_m, t->gemm_n, t->gemm_k, gemm_threads);
    gemm = mem_align_up(gemm, KILN_ALIGNMENT);
    return col >= SIZE_MAX / 2 || gemm >= SIZE_MAX / 2 ? SIZE_MAX : col + gemm;
}

/* How many workers take whole tasks, or 1 when tasks run in turn with the threads inside each. */
static int task_workers(const task_plan *t, int threads, size_t scratch_bytes)
{
    if (threads < 2 || t->tasks < 2) return 1;
    bool small = (double)t->gemm_m * (double)t->gemm_n * (double)t->gemm_k < SMALL_TASK_MACS;
    if (t->tasks < threads && !small) return 1;
    int workers = t->tasks < threads ? (int)t->tasks : threads;
    size_t need;
    if (!mem_mul_ok(slot_bytes(t, 1), (size_t)workers, &need) || need > scratch_bytes || need > TASK_SCRATCH_LIMIT)
        return 1;
    return workers;
}

static size_t plan_scratch_bytes(const task_plan *t, int threads)
{
    if (threads < 1) threads = 1;
    size_t inside = slot_bytes(t, threads);
    int workers = task_workers(t, threads, SIZE_MAX);
    size_t across = workers > 1 ? (size_t)workers * slot_bytes(t, 1) : 0;
    return inside > across ? inside : across;
}

/* ---- unfolding and folding --------------------------------------------------------------------------- */

/* dst[i * stride] += src[i] */
static void scatter_add_strided(float *dst, const float *src, int64_t n, int64_t stride)
{
    for (int64_t i = 0; i < n; i++) dst[i * stride] += src[i];
}

void conv_row_taps(float *row, const float *src, int64_t n, int64_t stride, const float *w, int64_t taps,
                   int64_t dilation)
{
    for (int64_t i = 0; i < n; i++) {
        float sum = row[i];
        for (int64_t t = 0; t < taps; t++) sum += w[t] * src[i * stride + t * dilation];
        row[i] = sum;
    }
}

/* ---- the unfolded input, one GEMM micro-panel at a time ------------------------------------------------ */

/* Column j of the unfolded matrix is output position j; row k is (input channel, kernel tap). A panel's
 * columns are cut into runs that stay on one output row (od, oh), along which the input positions read by
 * one tap advance by the stride: each (k, run) is then one strided copy between zero-filled ends. A panel
 * is at most the GEMM's NR columns wide (32), so it has at most that many runs. */
enum { PANEL_MAX_WIDTH = 64 };

typedef struct panel_run {
    int offset, length; /* columns [offset, offset + length) of the panel */
    int64_t od, oh, ow; /* the output position of its first column */
} panel_run;

/* A run of a panel row: conv_gather_row or a SIMD variant. */
typedef void (*gather_row_fn)(const float *row, int64_t col, int64_t width, int64_t stride, int64_t count,
                              float *dst);

typedef struct im2col_source {
    const conv_window *w;
    const float *x; /* this task's input channels */
    gather_row_fn gather;
} im2col_source;

static int split_runs(const conv_window *w, int64_t j0, int count, panel_run *runs)
{
    int n = 0;
    int64_t ow = j0 % w->out[2], rows = j0 / w->out[2];
    for (int j = 0; j < count; n++) {
        int length = (int)(w->out[2] - ow < count - j ? w->out[2] - ow : count - j);
        runs[n] = (panel_run){j, length, rows / w->out[1], rows % w->out[1], ow};
        j += length, ow = 0, rows++;
    }
    return n;
}

/* The stride-1 copies and the zero ends go through memcpy/memset, as element loops over runs this short are
 * not vectorised at -O2. */
void conv_gather_row(const float *row, int64_t col, int64_t width, int64_t stride, int64_t count, float *dst)
{
    int64_t lo, hi;
    if (!row) {
        lo = hi = count;
    } else if (stride == 1) {
        lo = col < 0 ? (-col < count ? -col : count) : 0;
        hi = width - col < count ? width - col : count;
        if (hi < lo) hi = lo;
    } else {
        conv_valid_range(col, stride, width, count, &lo, &hi);
    }
    if (lo > 0) memset(dst, 0, (size_t)lo * sizeof *dst);
    if (hi > lo && stride == 1) memcpy(dst + lo, row + (col + lo), (size_t)(hi - lo) * sizeof *dst);
    else
        for (int64_t i = lo; i < hi; i++) dst[i] = row[col + i * stride];
    if (count > hi) memset(dst + hi, 0, (size_t)(count - hi) * sizeof *dst);
}

/* One row of the panel: input channel xc seen through tap (kd, kh, kw), over every run. */
static void panel_row(const conv_window *w, gather_row_fn gather, const float *xc, const int64_t k[CONV_SPATIAL],
                      const panel_run *runs, int n_runs, float *dst)
{
    int64_t off_w = k[2] * w->dilation[2] - w->pad[2];
    for (int r = 0; r < n_runs; r++) {
        const panel_run *run = &runs[r];
        int64_t id = run->od * w->stride[0] - w->pad[0] + k[0] * w->dilation[0];
        int64_t ih = run->oh * w->stride[1] - w->pad[1] + k[1] * w->dilation[1];
        bool inside = id >= 0 && id < w->in[0] && ih >= 0 && ih < w->in[1];
        gather(inside ? xc + (id * w->in[1] + ih) * w->in[2] : NULL, run->ow * w->stride[2] + off_w, w->in[2],
               w->stride[2], run->length, dst + run->offset);
    }
}

/* gemm_b_panel_fn over the unfolded input: rows k0 .. k0+kc-1, columns j0 .. j0+count-1. */
static void im2col_panel(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int count, int width, float *dst)
{
    const im2col_source *src = ctx;
    const conv_window *w = src->w;
#if defined(KILN_HAVE_X86_KERNELS)
    if (src->gather == conv_gather_row_avx512 && conv_im2col_panel_avx512(w, src->x, k0, kc, j0, count, width, dst))
        return;
#endif
    panel_run runs[PANEL_MAX_WIDTH];
    if (count > PANEL_MAX_WIDTH) return; /* no kernel set has panels this wide */
    int n_runs = split_runs(w, j0, count, runs);
    int64_t kvol = conv_volume(w->kernel), in_vol = conv_volume(w->in);
    int64_t c = k0 / kvol, k[CONV_SPATIAL];
    conv_split_tap(w, k0 % kvol, k);
    for (int64_t r = 0; r < kc; r++, dst += width) {
        panel_row(w, src->gather, src->x + c * in_vol, k, runs, n_runs, dst);
        for (int j = count; j < width; j++) dst[j] = 0.0f;
        /* next tap: kw fastest, then kh, kd, then the next channel */
        if (++k[2] < w->kernel[2]) continue;
        k[2] = 0;
        if (++k[1] < w->kernel[1]) continue;
        k[1] = 0;
        if (++k[0] < w->kernel[0]) continue;
        k[0] = 0, c++;
    }
}

/* Adds row (output channel plane, tap k) of the transposed convolution's col matrix into the output plane:
 * input position i lands on output position i*stride - pad + k*dilation. */
static void col2im_row(const conv_window *w, const float *row, const int64_t k[CONV_SPATIAL], float *yc)
{
    int64_t off_w = k[2] * w->dilation[2] - w->pad[2], lo, hi;
    conv_valid_range(off_w, w->stride[2], w->out[2], w->in[2], &lo, &hi);
    for (int64_t id = 0; id < w->in[0]; id++) {
        int64_t od = id * w->stride[0] - w->pad[0] + k[0] * w->dilation[0];
        for (int64_t ih = 0; ih < w->in[1]; ih++, row += w->in[2]) {
            int64_t oh = ih * w->stride[1] - w->pad[1] + k[1] * w->dilation[1];
            if (od < 0 || od >= w->out[0] || oh < 0 || oh >= w->out[1] || hi <= lo) continue;
            float *dst = yc + (od * w->out[1] + oh) * w->out[2];
            scatter_add_strided(dst + lo * w->stride[2] + off_w, row + lo, hi - lo, w->stride[2]);
        }
    }
}

/* ---- one task ---------------------------------------------------------------------------------------- */

typedef void (*row_taps_fn)(float *row, const float *src, int64_t n, int64_t stride, const float *w, int64_t taps,
                            int64_t dilation);

typedef struct conv_run {
    const conv_shape *s;
    row_taps_fn row_taps;  /* depthwise only */
    bool depthwise_avx512; /* depthwise: try conv_depthwise_plane_avx512 first */
    int64_t band_rows;     /* depthwise in blocks of sixteen channels: output rows per task (0: per plane) */
    bool gather_avx512;    /* im2col panels: conv_gather_row_avx512 for strides 1 and 2 */
    task_plan t;
    const float *x, *w, *bias;
    conv_extras extras; /* forward only */
    float *y;
    char *scratch;
    size_t slot_bytes;
    int workers;
} conv_run;

/* What the parallel loops inside one task share. */
typedef struct task_slice {
    const conv_run *r;
    const float *x;    /* this task's input channels */
    float *col;        /* this task's unfolded matrix (transposed convolutions) */
    float *y;          /* this task's output channels */
    const float *bias; /* this task's bias entries, or NULL */
} task_slice;

/* Output channels [begin, end) of a transposed task: bias, then every tap's row of col folded in. */
static void col2im_channels(void *arg, int64_t begin, int64_t end)
{
    const task_slice *ts = arg;
    const conv_window *w = &ts->r->s->win;
    int64_t kvol = conv_volume(w->kernel), in_vol = conv_volume(w->in), out_vol = conv_volume(w->out);
    for (int64_t m = begin; m < end; m++) {
        float *yc = ts->y + m * out_vol, b = ts->bias ? ts->bias[m] : 0.0f;
        for (int64_t i = 0; i < out_vol; i++) yc[i] = b;
        for (int64_t tap = 0; tap < kvol; tap++) {
            int64_t k[CONV_SPATIAL];
            conv_split_tap(w, tap, k);
            col2im_row(w, ts->col + (m * kvol + tap) * in_vol, k, yc);
        }
    }
}

static void bias_channels(void *arg, int64_t begin, int64_t end)
{
    const task_slice *ts = arg;
    int64_t plane = conv_volume(ts->r->s->win.out);
    for (int64_t m = begin; m < end; m++) {
        float *yc = ts->y + m * plane, b = ts->bias[m];
        for (int64_t i = 0; i < plane; i++) yc[i] += b;
    }
}

/* Task `task` = (image, group), using one slot of scratch; `parallel` splits its inner loops (NULL: serial). */
static void run_task(const conv_run *r, int64_t task, char *slot, const parallel_runner *parallel)
{
    const conv_shape *s = r->s;
    const task_plan *t = &r->t;
    int64_t n = task / s->groups, g = task % s->groups;
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups;
    int64_t in_vol = conv_volume(s->win.in), out_vol = conv_volume(s->win.out);
    task_slice ts = {r, r->x + (n * s->in_channels + g * cg) * in_vol, (float *)slot,
                     r->y + (n * s->out_channels + g * mg) * out_vol, r->bias ? r->bias + g * mg : NULL};
    void *gemm_scratch = slot ? slot + mem_align_up(t->col_bytes, KILN_ALIGNMENT) : NULL;
    gemm_args ga = {.M = t->gemm_m, .N = t->gemm_n, .K = t->gemm_k, .alpha = 1.0f, .beta = 0.0f};
    if (!t->transpose) {
        ga.A = r->w + g * mg * t->gemm_k, ga.lda = t->gemm_k;
        ga.B = ts.x, ga.ldb = out_vol; /* pointwise: x[n, g] is the operand */
        if (s->x_blocked) ga.ldb = CONV_BLOCK * in_vol;
        ga.C = ts.y, ga.ldc = out_vol;
        if (s->y_blocked) ga.ldc = CONV_BLOCK * out_vol;
        im2col_source unfolded = {&s->win, ts.x, conv_gather_row};
#if defined(KILN_HAVE_X86_KERNELS)
        if (r->gather_avx512 && s->win.stride[2] <= 2) unfolded.gather = conv_gather_row_avx512;
#endif
        gemm_epilogue ep = {ts.bias, r->extras.act, r->extras.lo, r->extras.hi};
        gemm_fused fused = {.a = r->extras.packed && r->extras.packed->group ? &r->extras.packed->group[g] : NULL,
                            .b_panel = t->algo == CONV_ALGO_IM2COL ? im2col_panel : NULL, .b_ctx = &unfolded,
                            .epilogue = ts.bias || ep.act != GEMM_ACT_NONE ? &ep : NULL, .b_blocked = s->x_blocked,
                            .c_blocked = s->y_blocked};
        gemm_f32_fused(&ga, &fused, gemm_scratch, parallel);
        return;
    }
    /* w[g] is (C/groups, M/groups * kernel volume): the transpose of what the GEMM multiplies by */
    ga.trans_a = true, ga.A = r->w + g * cg * t->gemm_m, ga.lda = t->gemm_m;
    ga.B = ts.x, ga.ldb = in_vol;
    ga.C = t->algo == CONV_ALGO_IM2COL ? ts.col : ts.y, ga.ldc = in_vol;
    gemm_f32(&ga, gemm_scratch, parallel);
    if (t->algo == CONV_ALGO_IM2COL)
        parallel_for(parallel, mg, parallel_grain(out_vol * conv_volume(s->win.kernel), GRAIN_ELEMENTS), col2im_channels,
                     &ts);
    else if (ts.bias)
        parallel_for(parallel, mg, parallel_grain(out_vol, GRAIN_ELEMENTS), bias_channels, &ts);
}

/* Worker w takes tasks [w*tasks/workers, (w+1)*tasks/workers) with slot w. */
static void task_worker(void *arg, int64_t begin, int64_t end)
{
    const conv_run *r = arg;
    for (int64_t w = begin; w < end; w++) {
        int64_t first = w * r->t.tasks / r->workers, last = (w + 1) * r->t.tasks / r->workers;
        char *slot = r->scratch ? r->scratch + (size_t)w * r->slot_bytes : NULL;
        for (int64_t task = first; task < last; task++) run_task(r, task, slot, NULL);
    }
}

static void run_tasks(conv_run *r, size_t scratch_bytes, const parallel_runner *parallel)
{
    int threads = parallel_threads(parallel);
    r->workers = task_workers(&r->t, threads, scratch_bytes);
    if (r->workers > 1) {
        r->slot_bytes = slot_bytes(&r->t, 1);
        parallel_for(parallel, r->workers, 1, task_worker, r);
        return;
    }
    int inner = threads;
    while (inner > 1 && slot_bytes(&r->t, inner) > scratch_bytes) inner--;
    parallel_runner capped = parallel ? *parallel : (parallel_runner){0};
    capped.threads = inner;
    for (int64_t task = 0; task < r->t.tasks; task++) run_task(r, task, r->scratch, inner > 1 ? &capped : NULL);
}

/* ---- depthwise ---------------------------------------------------------------------------------------- */

/* The outputs along a row that every tap of a kernel row reaches inside the input: [first, last). */
typedef struct row_reach {
    int64_t first, last;
} row_reach;

static row_reach kernel_row_reach(const conv_window *w)
{
    row_reach r = {0, w->out[2]};
    for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
        int64_t lo, hi;
        conv_valid_range(kw * w->dilation[2] - w->pad[2], w->stride[2], w->in[2], w->out[2], &lo, &hi);
        if (lo > r.first) r.first = lo;
        if (hi < r.last) r.last = hi;
    }
    if (r.last < r.first) r.last = r.first;
    return r;
}

/* Output i of a row near its edges, where some taps fall into the padding. */
static void add_edge_output(const conv_window *w, const float *src, const float *taps, float *row, int64_t i)
{
    float sum = 0.0f;
    for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
        int64_t pos = i * w->stride[2] + kw * w->dilation[2] - w->pad[2];
        if (pos >= 0 && pos < w->in[2]) sum += taps[kw] * src[pos];
    }
    row[i] += sum;
}

/* Adds one kernel row (taps[0..kW)) applied to input row src into output row `row`: the interior in one
 * pass of row_taps, the few outputs near the edges one by one. */
static void add_kernel_row(const conv_window *w, row_taps_fn row_taps, const row_reach *reach, const float *src,
                           const float *taps, float *row)
{
    if (reach->last > reach->first)
        row_taps(row + reach->first, src + reach->first * w->stride[2] - w->pad[2], reach->last - reach->first,
                 w->stride[2], taps, w->kernel[2], w->dilation[2]);
    for (int64_t i = 0; i < reach->first; i++) add_edge_output(w, src, taps, row, i);
    for (int64_t i = reach->last; i < w->out[2]; i++) add_edge_output(w, src, taps, row, i);
}

/* One channel: y = bias + the sum over kernel rows (kd, kh) of that row applied to the shifted input. Kernel
 * rows are the outer loop so that their clipping to the input is worked out once per plane. */
static void depthwise_plane(const conv_window *w, row_taps_fn row_taps, const float *x, const float *kernel,
                            float bias, const conv_extras *extras, float *y)
{
    int64_t out_vol = conv_volume(w->out);
    for (int64_t i = 0; i < out_vol; i++) y[i] = bias;
    row_reach reach = kernel_row_reach(w);
    for (int64_t kd = 0; kd < w->kernel[0]; kd++)
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t off_d = kd * w->dilation[0] - w->pad[0], off_h = kh * w->dilation[1] - w->pad[1], lo_d, hi_d, lo_h, hi_h;
            conv_valid_range(off_d, w->stride[0], w->in[0], w->out[0], &lo_d, &hi_d);
            conv_valid_range(off_h, w->stride[1], w->in[1], w->out[1], &lo_h, &hi_h);
            const float *taps = kernel + (kd * w->kernel[1] + kh) * w->kernel[2];
            for (int64_t od = lo_d; od < hi_d; od++)
                for (int64_t oh = lo_h; oh < hi_h; oh++) {
                    const float *src = x + ((od * w->stride[0] + off_d) * w->in[1] + oh * w->stride[1] + off_h) * w->in[2];
                    add_kernel_row(w, row_taps, &reach, src, taps, y + (od * w->out[1] + oh) * w->out[2]);
                }
        }
    gemm_activate_f32(extras->act, extras->lo, extras->hi, y, out_vol);
}

/* One channel plane, with the AVX-512 plane kernel where it applies. */
static void depthwise_one_plane(const conv_run *r, const float *x, const float *kernel, float bias, float *y)
{
    const conv_window *w = &r->s->win;
#if defined(KILN_HAVE_X86_KERNELS)
    if (r->depthwise_avx512 && conv_depthwise_plane_avx512(w, x, kernel, bias, &r->extras, y)) {
        /* the plane kernel clamps as it stores; the transcendental activations follow on the plane */
        if (r->extras.act != GEMM_ACT_CLAMP)
            gemm_activate_f32(r->extras.act, r->extras.lo, r->extras.hi, y, conv_volume(w->out));
        return;
    }
#endif
    depthwise_plane(w, r->row_taps, x, kernel, bias, &r->extras, y);
}

/* Planes [begin, end) (image * channels + channel), each from x into y; a channel-blocked x or y goes
 * through a plane of `scratch` (the input's, then the output's), copied from or to its lane of the block. */
static void depthwise_plane_range(const conv_run *r, int64_t begin, int64_t end, float *scratch)
{
    const conv_window *w = &r->s->win;
    int64_t channels = r->s->in_channels, in_vol = conv_volume(w->in), out_vol = conv_volume(w->out);
    float *x_plane = scratch, *y_plane = r->s->x_blocked ? scratch + in_vol : scratch;
    for (int64_t p = begin; p < end; p++) {
        int64_t c = p % channels, lane = p % CONV_BLOCK, block = p - lane; /* channels are whole blocks */
        const float *x = r->x + p * in_vol, *kernel = r->w + c * conv_volume(w->kernel);
        if (r->s->x_blocked) {
            const float *in = r->x + block * in_vol + lane;
            for (int64_t i = 0; i < in_vol; i++) x_plane[i] = in[i * CONV_BLOCK];
            x = x_plane;
        }
        float bias = r->bias ? r->bias[c] : 0.0f, *y = r->s->y_blocked ? y_plane : r->y + p * out_vol;
        depthwise_one_plane(r, x, kernel, bias, y);
        if (!r->s->y_blocked) continue;
        float *out = r->y + block * out_vol + lane;
        for (int64_t i = 0; i < out_vol; i++) out[i * CONV_BLOCK] = y_plane[i];
    }
}

static void depthwise_planes(void *arg, int64_t begin, int64_t end)
{
    depthwise_plane_range(arg, begin, end, NULL);
}

/* Worker k of r->workers, with its slot of scratch, for a channel-blocked x or y. */
static void depthwise_planes_blocked(void *arg, int64_t begin, int64_t end)
{
    const conv_run *r = arg;
    int64_t planes = r->s->batch * r->s->in_channels;
    for (int64_t k = begin; k < end; k++)
        depthwise_plane_range(r, k * planes / r->workers, (k + 1) * planes / r->workers,
                              (float *)(void *)(r->scratch + (size_t)k * r->slot_bytes));
}

#if defined(KILN_HAVE_X86_KERNELS)
/* Depthwise with conv_depthwise_rows_avx512: tasks are (image, block of sixteen channels, band of output
 * rows), each worker taking a contiguous share with its own slot of scratch (the band's input laid out
 * channel-last). Blocks and bands both split the work, so that early layers with few channels and large
 * planes still give every thread some. */
enum { DEPTHWISE_BLOCK = 16 }; /* channels per call of conv_depthwise_rows_avx512 */

typedef struct block_tasks {
    int64_t bands, blocks, total;
} block_tasks;

static block_tasks depthwise_block_tasks(const conv_shape *s, int64_t band_rows)
{
    block_tasks b = {(s->win.out[1] + band_rows - 1) / band_rows,
                     (s->in_channels + DEPTHWISE_BLOCK - 1) / DEPTHWISE_BLOCK, 0};
    b.total = s->batch * b.blocks * b.bands;
    return b;
}

static void depthwise_block_task(const conv_run *r, const block_tasks *bt, int64_t task, float *slot)
{
    const conv_shape *s = r->s;
    int64_t band = task % bt->bands, block = task / bt->bands % bt->blocks, n = task / bt->bands / bt->blocks;
    int64_t c0 = block * DEPTHWISE_BLOCK, oh0 = band * r->band_rows;
    int64_t oh1 = oh0 + r->band_rows < s->win.out[1] ? oh0 + r->band_rows : s->win.out[1];
    int channels = s->in_channels - c0 < DEPTHWISE_BLOCK ? (int)(s->in_channels - c0) : DEPTHWISE_BLOCK;
    int64_t first = n * s->in_channels + c0;
    conv_depthwise_rows_avx512(&s->win, channels, r->x + first * conv_volume(s->win.in),
                               r->w + c0 * conv_volume(s->win.kernel), r->bias ? r->bias + c0 : NULL, &r->extras, oh0,
                               oh1, slot, s->x_blocked, s->y_blocked, r->y + first * conv_volume(s->win.out));
}

/* Worker k takes tasks [k*total/workers, (k+1)*total/workers) with slot k. */
static void depthwise_block_worker(void *arg, int64_t begin, int64_t end)
{
    const conv_run *r = arg;
    block_tasks bt = depthwise_block_tasks(r->s, r->band_rows);
    for (int64_t k = begin; k < end; k++) {
        float *slot = (float *)(r->scratch + (size_t)k * r->slot_bytes);
        for (int64_t task = k * bt.total / r->workers; task < (k + 1) * bt.total / r->workers; task++)
            depthwise_block_task(r, &bt, task, slot);
    }
}
#endif

/* One worker's scratch for the depthwise convolution in blocks of sixteen channels; 0 when this CPU or
 * shape runs it plane by plane. */
static size_t depthwise_block_slot_bytes(const conv_shape *s)
{
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx512f) return conv_depthwise_avx512_scratch_bytes(&s->win);
#endif
    (void)s;
    return 0;
}

/* One worker's scratch for the depthwise convolution: the blocks', or plane by plane none, except for
 * channel-blocked tensors, whose planes go through scratch (depthwise_plane_range). */
static size_t depthwise_slot_bytes(const conv_shape *s)
{
    size_t blocks = depthwise_block_slot_bytes(s);
    if (blocks || (!s->x_blocked && !s->y_blocked)) return blocks;
    int64_t floats = (s->x_blocked ? conv_volume(s->win.in) : 0) + (s->y_blocked ? conv_volume(s->win.out) : 0);
    size_t bytes;
    if (!mem_mul_ok((size_t)floats, sizeof(float), &bytes)) return SIZE_MAX;
    return mem_align_up(bytes, KILN_ALIGNMENT);
}

/* The depthwise convolution in blocks of sixteen channels when there is scratch for one worker at least;
 * false, having done nothing, otherwise. */
static bool depthwise_in_blocks(conv_run *r, size_t scratch_bytes, const parallel_runner *parallel)
{
#if defined(KILN_HAVE_X86_KERNELS)
    size_t slot = depthwise_block_slot_bytes(r->s);
    if (slot == 0 || !r->scratch || scratch_bytes < slot) return false;
    r->band_rows = conv_depthwise_avx512_band_rows(&r->s->win);
    r->slot_bytes = slot;
    int64_t total = depthwise_block_tasks(r->s, r->band_rows).total, workers = parallel_threads(parallel);
    /* no more workers than scratch slots, tasks, or shares of GRAIN_ELEMENTS multiply-adds */
    int64_t work = r->s->batch * r->s->in_channels * conv_volume(r->s->win.out) * conv_volume(r->s->win.kernel);
    if ((size_t)workers > scratch_bytes / slot) workers = (int64_t)(scratch_bytes / slot);
    if (workers > total) workers = total;
    if (workers > 1 + work / GRAIN_ELEMENTS) workers = 1 + work / GRAIN_ELEMENTS;
    r->workers = (int)workers;
    parallel_for(parallel, workers, 1, depthwise_block_worker, r);
    return true;
#else
    (void)r, (void)scratch_bytes, (void)parallel;
    return false;
#endif
}

/* ---- entry points ------------------------------------------------------------------------------------ */

static bool is_pointwise(const conv_window *w)
{
    for (int d = 0; d < CONV_SPATIAL; d++)
        if (w->kernel[d] != 1 || w->stride[d] != 1 || w->pad[d] != 0 || w->in[d] != w->out[d]) return false;
    return true;
}

static row_taps_fn depthwise_row_taps(void)
{
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx2_fma) return conv_row_taps_avx2;
#endif
    return conv_row_taps;
}

conv_algo conv_f32_choose(const conv_shape *s, const conv_packed_filters *packed)
{
    if (s->groups == s->in_channels && s->groups == s->out_channels) return CONV_ALGO_DEPTHWISE;
    if (packed && packed->winograd && conv_winograd_applies(s)) return CONV_ALGO_WINOGRAD;
    return is_pointwise(&s->win) ? CONV_ALGO_POINTWISE : CONV_ALGO_IM2COL;
}

size_t conv_f32_scratch_bytes(const conv_shape *s, conv_algo algo, int threads)
{
    if (algo == CONV_ALGO_DEPTHWISE) {
        size_t total;
        return mem_mul_ok(depthwise_slot_bytes(s), (size_t)(threads > 0 ? threads : 1), &total) ? total : SIZE_MAX;
    }
    if (algo == CONV_ALGO_WINOGRAD) return conv_winograd_scratch_bytes(s, threads);
    task_plan t = plan_tasks(s, algo, false);
    return plan_scratch_bytes(&t, threads);
}

void conv_f32(const conv_shape *s, conv_algo algo, const float *x, const float *w, const float *bias,
              const conv_extras *extras, float *y, void *scratch, size_t scratch_bytes,
              const parallel_runner *parallel)
{
    conv_run r = {.s = s, .t = plan_tasks(s, algo, false), .x = x, .w = w, .bias = bias, .y = y, .scratch = scratch};
    if (extras) r.extras = *extras;
#if defined(KILN_HAVE_X86_KERNELS)
    r.gather_avx512 = platform_cpu_features()->avx512f;
#endif
    if (algo == CONV_ALGO_WINOGRAD) {
        conv_winograd_f32(s, extras->packed->winograd, x, bias, extras, y, scratch, scratch_bytes, parallel);
        return;
    }
    if (algo == CONV_ALGO_DEPTHWISE) r.extras.packed = NULL;
    if (algo == CONV_ALGO_DEPTHWISE) {
        r.row_taps = depthwise_row_taps();
#if defined(KILN_HAVE_X86_KERNELS)
        r.depthwise_avx512 = platform_cpu_features()->avx512f;
#endif
        if (depthwise_in_blocks(&r, scratch_bytes, parallel)) return;
        int64_t out_vol = conv_volume(s->win.out) * conv_volume(s->win.kernel);
        int64_t grain = parallel_grain(out_vol, GRAIN_ELEMENTS), planes = s->batch * s->in_channels;
        if (s->x_blocked || s->y_blocked) {
            /* as many workers as planes of scratch (conv_f32_scratch_bytes asked for one per thread) */
            r.slot_bytes = depthwise_slot_bytes(s);
            int64_t workers = r.scratch && r.slot_bytes ? (int64_t)(scratch_bytes / r.slot_bytes) : 0;
            if (workers > parallel_threads(parallel)) workers = parallel_threads(parallel);
            if (workers > (planes + grain - 1) / grain) workers = (planes + grain - 1) / grain;
            r.workers = (int)workers;
            parallel_for(parallel, workers, 1, depthwise_planes_blocked, &r);
            return;
        }
        parallel_for(parallel, planes, grain, depthwise_planes, &r);
        return;
    }
    run_tasks(&r, scratch_bytes, parallel);
}

conv_algo conv_transpose_f32_choose(const conv_shape *s)
{
    return is_pointwise(&s->win) ? CONV_ALGO_POINTWISE : CONV_ALGO_IM2COL;
}

size_t conv_transpose_f32_scratch_bytes(const conv_shape *s, conv_algo algo, int threads)
{
    task_plan t = plan_tasks(s, algo, true);
    return plan_scratch_bytes(&t, threads);
}

void conv_transpose_f32(const conv_shape *s, conv_algo algo, const float *x, const float *w, const float *bias,
                        float *y, void *scratch, size_t scratch_bytes, const parallel_runner *parallel)
{
    conv_run r = {.s = s, .t = plan_tasks(s, algo, true), .x = x, .w = w, .bias = bias, .y = y, .scratch = scratch};
    run_tasks(&r, scratch_bytes, parallel);
}

/* ---- filters packed at load --------------------------------------------------------------------------- */

size_t conv_f32_pack_filters_bytes(int64_t out_channels, int64_t per_group_k, int64_t groups)
{
    if (groups < 1 || out_channels % groups != 0) return 0;
    size_t bytes = mem_align_up((size_t)groups * sizeof(gemm_packed_a), KILN_ALIGNMENT);
    size_t group = gemm_f32_pack_a_bytes(GEMM_VARIANT_AUTO, out_channels / groups, per_group_k), total;
    if (!mem_mul_ok(group, (size_t)groups, &total) || total > SIZE_MAX - bytes) return SIZE_MAX;
    return bytes + total;
}

void conv_f32_pack_filters(int64_t out_channels, int64_t per_group_k, int64_t groups, const float *w, void *memory,
                           conv_packed_filters *packed)
{
    int64_t mg = out_channels / groups;
    size_t group_bytes = gemm_f32_pack_a_bytes(GEMM_VARIANT_AUTO, mg, per_group_k);
    char *panels = (char *)memory + mem_align_up((size_t)groups * sizeof(gemm_packed_a), KILN_ALIGNMENT);
    packed->groups = groups;
    packed->group = memory;
    for (int64_t g = 0; g < groups; g++)
        gemm_f32_pack_a(GEMM_VARIANT_AUTO, mg, per_group_k, false, w + g * mg * per_group_k, per_group_k,
                        panels + (size_t)g * group_bytes, &packed->group[g]);
}

/* ---- the channel-blocked layout ---------------------------------------------------------------------- */

/* The largest plane that travels blocked. Measured on MobileNetV2 and EfficientNet-B0: from 14 x 14 down the
 * depthwise convolutions gain 20-25% and the pointwise ones break even; at 56 x 56 and above the columns
 * kernel loses more on the pointwise convolutions (a 24-row projection fills two vectors of 16) than the
 * depthwise ones gain. */
enum { CONV_BLOCKED_MAX_VOLUME = 28 * 28 };

bool conv_blocked_layout_fits(const conv_shape *s)
{
    if (!s->x_blocked && !s->y_blocked) return true;
    bool depthwise = s->groups == s->in_channels && s->groups == s->out_channels;
    bool pointwise = s->groups == 1 && is_pointwise(&s->win);
    return (depthwise || pointwise) && (!s->x_blocked || s->in_channels % CONV_BLOCK == 0) &&
           (!s->y_blocked || s->out_channels % CONV_BLOCK == 0);
}

bool conv_blocked_layout_pays(void)
{
#if defined(KILN_HAVE_X86_KERNELS)
    return platform_cpu_features()->avx512f;
#else
    return false;
#endif
}

bool conv_blocked_layout_pays_for(int64_t volume) { return volume <= CONV_BLOCKED_MAX_VOLUME; }
