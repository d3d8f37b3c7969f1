/*
 * winograd.c — F(2x2, 3x3) convolution: filter transform at load, the plain tile transforms, and the driver
 * that runs blocks of tiles through input transform, 16 GEMMs and output transform (see winograd.h).
 *
 * The matrices (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]    V = B^T d B   (d: the 4x4 input patch)
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]   U = G g G^T   (g: the 3x3 filter)
 *   A^T = [1 1 1 0; 0 1 -1 -1]                        Y = A^T M A   (M = sum over channels of U . V)
 * The tile at (ty, tx) covers outputs (2ty .. 2ty+1, 2tx .. 2tx+1) and reads the input patch whose top-left
 * corner is (2ty - pad_top, 2tx - pad_left).
 */
#include "kernels/winograd.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"

/* Channels below this make the transforms cost more than the multiplications they save. */
#define MIN_CHANNELS 16
/* Bytes of transformed input plus products one block of tiles may take: about the L2 cache. */
#define BLOCK_BYTES ((size_t)1 << 20)
/* Floats of transform work a parallel chunk should have at least. */
#define GRAIN_FLOATS 16384

/* ---- the transforms of one tile, written once for filters, inputs and outputs ------------------------- */

/* r = B^T d for one column of 4 values (stride apart), also the row pass of B^T d B */
static void input_pass(const float *d, int64_t stride, float *r, int64_t rstride)
{
    float d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride];
    r[0] = d0 - d2;
    r[rstride] = d1 + d2;
    r[2 * rstride] = d2 - d1;
    r[3 * rstride] = d1 - d3;
}

/* r = G g for one column of 3 values */
static void filter_pass(const float *g, int64_t stride, float *r, int64_t rstride)
{
    float g0 = g[0], g1 = g[stride], g2 = g[2 * stride];
    r[0] = g0;
    r[rstride] = 0.5f * (g0 + g1 + g2);
    r[2 * rstride] = 0.5f * (g0 - g1 + g2);
    r[3 * rstride] = g2;
}

/* r = A^T m for one column of 4 values */
static void output_pass(const float *m, int64_t stride, float *r, int64_t rstride)
{
    r[0] = m[0] + m[stride] + m[2 * stride];
    r[rstride] = m[stride] - m[2 * stride] - m[3 * stride];
}

/* ---- filters ----------------------------------------------------------------------------------------- */

bool conv_winograd_filters_apply(int64_t out_channels, int64_t in_channels, const int64_t *kernel,
                                 const int64_t *strides, const int64_t *dilations, int spatial, int64_t groups)
{
    if (spatial != 2 || groups != 1 || out_channels < MIN_CHANNELS || in_channels < MIN_CHANNELS) return false;
    for (int d = 0; d < 2; d++)
        if (kernel[d] != 3 || strides[d] != 1 || dilations[d] != 1) return false;
    return true;
}

static size_t header_bytes(void) { return mem_align_up(sizeof(conv_winograd_filters), KILN_ALIGNMENT); }

size_t conv_winograd_filters_bytes(int64_t out_channels, int64_t in_channels)
{
    size_t point = gemm_f32_pack_a_bytes(GEMM_VARIANT_AUTO, out_channels, in_channels), total;
    if (point == SIZE_MAX || !mem_mul_ok(point, WINOGRAD_POINTS, &total) || total > SIZE_MAX - header_bytes())
        return SIZE_MAX;
    return header_bytes() + total;
}

kiln_status conv_winograd_pack_filters(int64_t out_channels, int64_t in_channels, const float *w, void *memory,
                                       const conv_winograd_filters **packed)
{
    conv_winograd_filters *filters = memory;
    char *panels = (char *)memory + header_bytes();
    size_t plane = 0;
    if (!mem_mul_ok((size_t)out_channels, (size_t)in_channels, &plane) || plane > SIZE_MAX / WINOGRAD_POINTS)
        return KILN_ERR_OUT_OF_MEMORY;
    float *u = mem_alloc(plane * WINOGRAD_POINTS * sizeof *u); /* u[p * plane + m * C + c] */
    if (!u) return KILN_ERR_OUT_OF_MEMORY;
    for (size_t mc = 0; mc < plane; mc++) {
        const float *g = w + mc * 9;
        float gg[4 * 3], ggg[4 * 4];
        for (int col = 0; col < 3; col++) filter_pass(g + col, 3, gg + col, 3);
        for (int row = 0; row < 4; row++) filter_pass(gg + row * 3, 1, ggg + row * 4, 1);
        for (int p = 0; p < WINOGRAD_POINTS; p++) u[(size_t)p * plane + mc] = ggg[p];
    }
    size_t point_bytes = gemm_f32_pack_a_bytes(GEMM_VARIANT_AUTO, out_channels, in_channels);
    filters->out_channels = out_channels, filters->in_channels = in_channels;
    for (int p = 0; p < WINOGRAD_POINTS; p++) {
        gemm_f32_pack_a(GEMM_VARIANT_AUTO, out_channels, in_channels, false, u + (size_t)p * plane, in_channels,
                        panels + (size_t)p * point_bytes, &filters->point[p]);
        filters->point[p].A = NULL; /* u is freed: the panels are the only copy (see winograd.h) */
    }
    mem_free(u);
    *packed = filters;
    return KILN_OK;
}

/* ---- tile transforms, plain ------------------------------------------------------------------------------ */

void winograd_input_reference(const winograd_plane *g, const float *x, int64_t ty0, int64_t ty1, float *v,
                              int64_t stride)
{
    for (int64_t ty = ty0, t = 0; ty < ty1; ty++)
        for (int64_t tx = 0; tx < g->tiles_w; tx++, t++) {
            float d[16], db[16], v16[16];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    int64_t r = 2 * ty - g->pad_top + i, c = 2 * tx - g->pad_left + j;
                    bool inside = r >= 0 && r < g->in_h && c >= 0 && c < g->in_w;
                    d[i * 4 + j] = inside ? x[r * g->in_w + c] : 0.0f;
                }
            for (int i = 0; i < 4; i++) input_pass(d + i * 4, 1, db + i * 4, 1); /* d B, by rows */
            for (int j = 0; j < 4; j++) input_pass(db + j, 4, v16 + j, 4);       /* B^T (d B), by columns */
            for (int p = 0; p < WINOGRAD_POINTS; p++) v[p * stride + t] = v16[p];
        }
}

static float clamp(float v, float lo, float hi)
{
    if (v != v) return v;
    return v < lo ? lo : v > hi ? hi : v;
}

void winograd_output_reference(const winograd_plane *g, const float *m, int64_t stride, int64_t ty0, int64_t ty1,
                               float bias, float lo, float hi, float *y)
{
    for (int64_t ty = ty0, t = 0; ty < ty1; ty++)
        for (int64_t tx = 0; tx < g->tiles_w; tx++, t++) {
            float m16[16], am[2 * 4], y4[2 * 2];
            for (int p = 0; p < WINOGRAD_POINTS; p++) m16[p] = m[p * stride + t];
            for (int j = 0; j < 4; j++) output_pass(m16 + j, 4, am + j, 4);  /* A^T M, by columns */
            for (int i = 0; i < 2; i++) output_pass(am + i * 4, 1, y4 + i * 2, 1); /* (A^T M) A, by rows */
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int64_t r = 2 * ty + i, c = 2 * tx + j;
                    if (r < g->out_h && c < g->out_w) y[r * g->out_w + c] = clamp(y4[i * 2 + j] + bias, lo, hi);
                }
        }
}

/* ---- the driver ---------------------------------------------------------------------------------------- */

static winograd_plane plane_of(const conv_shape *s)
{
    const conv_window *w = &s->win;
    return (winograd_plane){.in_h = w->in[1], .in_w = w->in[2], .out_h = w->out[1], .out_w = w->out[2],
                            .pad_top = w->pad[1], .pad_left = w->pad[2], .tiles_w = (w->out[2] + 1) / 2};
}

/* Tile rows per block: as many as keep the block's transformed input and products near BLOCK_BYTES. */
static int64_t block_rows(const conv_shape *s, const winograd_plane *g)
{
    size_t per_row = (size_t)g->tiles_w * WINOGRAD_POINTS * (size_t)(s->in_channels + s->out_channels) * sizeof(float);
    int64_t tiles_h = (g->out_h + 1) / 2, rows = per_row ? (int64_t)(BLOCK_BYTES / per_row) : 1;
    return rows < 1 ? 1 : rows > tiles_h ? tiles_h : rows;
}

bool conv_winograd_applies(const conv_shape *s)
{
    const conv_window *w = &s->win;
    int64_t kernel[2] = {w->kernel[1], w->kernel[2]}, stride[2] = {w->stride[1], w->stride[2]},
            dilation[2] = {w->dilation[1], w->dilation[2]};
    bool planar = w->in[0] == 1 && w->kernel[0] == 1 && w->out[0] == 1;
    return planar && w->out[2] >= 3 && w->out[1] >= 1 &&
           conv_winograd_filters_apply(s->out_channels, s->in_channels, kernel, stride, dilation, 2, s->groups);
}

typedef struct block_layout {
    int64_t rows, tiles; /* tile rows per block and tiles in a full block */
    size_t v_bytes, m_bytes, gemm_bytes;
} block_layout;

static block_layout layout_of(const conv_shape *s)
{
    winograd_plane g = plane_of(s);
    block_layout b = {.rows = block_rows(s, &g)};
    b.tiles = b.rows * g.tiles_w;
    b.v_bytes = mem_align_up((size_t)(WINOGRAD_POINTS * s->in_channels * b.tiles) * sizeof(float), KILN_ALIGNMENT);
    b.m_bytes = mem_align_up((size_t)(WINOGRAD_POINTS * s->out_channels * b.tiles) * sizeof(float), KILN_ALIGNMENT);
    b.gemm_bytes = mem_align_up(gemm_f32_fused_scratch_bytes(s->out_channels, b.tiles, s->in_channels, 1),
                                KILN_ALIGNMENT);
    return b;
}

/* How a run shares its work among threads. With enough tile rows, each worker takes a band of rows and runs
 * its blocks alone, in its own scratch: nothing crosses cores and there is no barrier inside the
 * convolution. Otherwise (small planes) the threads share each block: channels for the transforms, points
 * for the GEMMs. */
typedef struct sharing {
    int workers;    /* threads that take part */
    bool by_rows;   /* bands of rows, else shared blocks */
    size_t slot;    /* by rows: one worker's scratch */
} sharing;

static size_t slot_bytes(const block_layout *b, int gemm_workers)
{
    return b->v_bytes + b->m_bytes + (size_t)gemm_workers * b->gemm_bytes;
}

static sharing share(const conv_shape *s, int threads, size_t scratch_bytes)
{
    block_layout b = layout_of(s);
    int64_t tiles_h = (s->win.out[1] + 1) / 2;
    int workers = threads < 1 ? 1 : threads > WINOGRAD_POINTS ? WINOGRAD_POINTS : threads;
    sharing by_rows = {.workers = workers, .by_rows = true, .slot = slot_bytes(&b, 1)};
    if (workers > 1 && tiles_h / workers >= b.rows && (size_t)workers * by_rows.slot <= scratch_bytes) return by_rows;
    while (workers > 1 && slot_bytes(&b, workers) > scratch_bytes) workers--;
    return (sharing){.workers = workers, .slot = slot_bytes(&b, workers)};
}

size_t conv_winograd_scratch_bytes(const conv_shape *s, int threads)
{
    sharing h = share(s, threads, SIZE_MAX);
    return h.by_rows ? (size_t)h.workers * h.slot : h.slot;
}

typedef struct winograd_run {
    const conv_shape *s;
    const conv_winograd_filters *f;
    winograd_plane g;
    block_layout b;
    winograd_input_fn input;
    winograd_output_fn output;
    const float *x, *bias; /* this image */
    float *y;
    gemm_activation act;
    float lo, hi;             /* the clamp the output transform applies (a fused Relu or Clip; else none) */
    float act_lo, act_hi;     /* the other activations' parameters, applied on the finished rows */
    float *v, *m;            /* this worker's (or the shared) block buffers */
    char *gemm_scratch;      /* then one GEMM scratch per point worker */
    int point_workers;
    int64_t ty0, ty1, tiles; /* the current block */
} winograd_run;

static void input_channels(void *arg, int64_t begin, int64_t end)
{
    const winograd_run *r = arg;
    int64_t stride = r->s->in_channels * r->tiles, plane = r->g.in_h * r->g.in_w;
    for (int64_t c = begin; c < end; c++)
        r->input(&r->g, r->x + c * plane, r->ty0, r->ty1, r->v + c * r->tiles, stride);
}

/* Worker w multiplies points [w * 16 / workers, (w + 1) * 16 / workers) with its own GEMM scratch. */
static void multiply_points(void *arg, int64_t begin, int64_t end)
{
    const winograd_run *r = arg;
    int64_t M = r->s->out_channels, C = r->s->in_channels;
    for (int64_t w = begin; w < end; w++) {
        int64_t first = w * WINOGRAD_POINTS / r->point_workers, last = (w + 1) * WINOGRAD_POINTS / r->point_workers;
        for (int64_t p = first; p < last; p++) {
            gemm_args ga = {.M = M, .N = r->tiles, .K = C, .B = r->v + p * C * r->tiles, .ldb = r->tiles,
                            .C = r->m + p * M * r->tiles, .ldc = r->tiles, .alpha = 1.0f, .beta = 0.0f};
            gemm_fused fused = {.a = &r->f->point[p]};
            gemm_f32_fused(&ga, &fused, r->gemm_scratch + (size_t)w * r->b.gemm_bytes, NULL);
        }
    }
}

static void output_channels(void *arg, int64_t begin, int64_t end)
{
    const winograd_run *r = arg;
    int64_t stride = r->s->out_channels * r->tiles, plane = r->g.out_h * r->g.out_w;
    int64_t row0 = 2 * r->ty0, row1 = 2 * r->ty1 < r->g.out_h ? 2 * r->ty1 : r->g.out_h;
    for (int64_t m = begin; m < end; m++) {
        float *y = r->y + m * plane;
        r->output(&r->g, r->m + m * r->tiles, stride, r->ty0, r->ty1, r->bias ? r->bias[m] : 0.0f, r->lo, r->hi, y);
        if (r->act != GEMM_ACT_NONE && r->act != GEMM_ACT_CLAMP)
            gemm_activate_f32(r->act, r->act_lo, r->act_hi, y + row0 * r->g.out_w, (row1 - row0) * r->g.out_w);
    }
}

/* Tile rows [row_begin, row_end) of the current image, block by block; `parallel` shares each block. */
static void run_blocks(winograd_run *r, int64_t row_begin, int64_t row_end, const parallel_runner *parallel)
{
    for (r->ty0 = row_begin; r->ty0 < row_end; r->ty0 = r->ty1) {
        r->ty1 = r->ty0 + r->b.rows < row_end ? r->ty0 + r->b.rows : row_end;
        r->tiles = (r->ty1 - r->ty0) * r->g.tiles_w;
        parallel_for(parallel, r->s->in_channels, parallel_grain(16 * r->tiles, GRAIN_FLOATS), input_channels, r);
        parallel_for(parallel, r->point_workers, 1, multiply_points, r);
        parallel_for(parallel, r->s->out_channels, parallel_grain(16 * r->tiles, GRAIN_FLOATS), output_channels, r);
    }
}

typedef struct row_bands {
    const winograd_run *image;
    char *scratch;
    size_t slot;
    int workers;
} row_bands;

/* Worker w runs band w of the tile rows alone, in slot w of the scratch. */
static void run_band(void *arg, int64_t begin, int64_t end)
{
    const row_bands *bands = arg;
    int64_t tiles_h = (bands->image->g.out_h + 1) / 2;
    for (int64_t w = begin; w < end; w++) {
        winograd_run r = *bands->image;
        char *slot = bands->scratch + (size_t)w * bands->slot;
        r.v = (float *)slot, r.m = (float *)(slot + r.b.v_bytes), r.gemm_scratch = slot + r.b.v_bytes + r.b.m_bytes;
        r.point_workers = 1;
        run_blocks(&r, w * tiles_h / bands->workers, (w + 1) * tiles_h / bands->workers, NULL);
    }
}

void conv_winograd_f32(const conv_shape *s, const conv_winograd_filters *filters, const float *x, const float *bias,
                       const conv_extras *extras, float *y, void *scratch, size_t scratch_bytes,
                       const parallel_runner *parallel)
{
    winograd_run r = {.s = s, .f = filters, .g = plane_of(s), .b = layout_of(s), .bias = bias, .lo = -INFINITY,
                      .hi = INFINITY, .input = winograd_input_reference, .output = winograd_output_reference};
    if (extras) r.act = extras->act, r.act_lo = extras->lo, r.act_hi = extras->hi;
    if (r.act == GEMM_ACT_CLAMP) r.lo = extras->lo, r.hi = extras->hi;
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx512f) r.input = winograd_input_avx512, r.output = winograd_output_avx512;
#endif
    sharing h = share(s, parallel_threads(parallel), scratch_bytes);
    r.v = scratch, r.m = (float *)((char *)scratch + r.b.v_bytes);
    r.gemm_scratch = (char *)scratch + r.b.v_bytes + r.b.m_bytes;
    r.point_workers = h.by_rows ? 1 : h.workers;
    int64_t tiles_h = (r.g.out_h + 1) / 2, in_plane = r.g.in_h * r.g.in_w, out_plane = r.g.out_h * r.g.out_w;
    for (int64_t n = 0; n < s->batch; n++) {
        r.x = x + n * s->in_channels * in_plane, r.y = y + n * s->out_channels * out_plane;
        if (h.by_rows) {
            row_bands bands = {&r, scratch, h.slot, h.workers};
            parallel_for(parallel, h.workers, 1, run_band, &bands);
        } else {
            run_blocks(&r, 0, tiles_h, parallel);
        }
    }
}
