/*
 * gemm.c — SGEMM in the GotoBLAS/BLIS structure: choose the kernels, block the problem for the caches, pack
 * operands into contiguous panels, and hand MR x NR tiles to a register-blocked micro-kernel.
 *
 * Loop nest, outermost first (MR/NR/KC/MC/NC come from the kernel set, see gemm_kernels.h):
 *   jc: NC columns of C       B block of KC x NC, packed once per (jc, pc), sized to stay in L2
 *   pc: KC deep slices of K   the first slice applies the caller's beta, later ones accumulate
 *   ic: MC rows of C          A block of MC x KC, packed
 *   tiles (ir, jr):           one micro-kernel call each; ir-major, so an A micro-panel stays in L1 while
 *                             the B micro-panels of the block stream from L2
 * A product with few row tiles does not pack B at all: its micro-kernels read whole-width tiles of op(B)
 * where it lies (packing would copy B once for only a few reuses).
 * Threads share the packed blocks: each (jc, pc, ic) round packs A (and B) in one parallel_for over
 * micro-panels and computes the tiles in a second. Sharing keeps the scratch size independent of the thread
 * count — plans are made before anyone knows how many threads a session will use — and no thread packs
 * what another already has.
 *
 * gemm_f32_fused (convolutions) differs in four ways: A comes pre-packed in the same K slices, so rounds
 * pack only B (or ask the caller's b_panel for it); each tile gets the epilogue (row bias, activation) right
 * after its last K slice — the bias and a clamp on the micro-kernel's registers, an activation needing e^x
 * on the tile while it is in L1; with threads, C is cut into one strip per thread (columns, or rows when
 * there are too few column tiles) that each thread computes alone with its own B buffer — one join per
 * product instead of two per round, at the price of scratch that grows with the threads; and a product
 * with few columns (a pointwise convolution on a 7 x 7 or 14 x 14 map) may be turned around, rows of C
 * along the vector lanes, when the set has a columns kernel (see columns_pay).
 *
 * A row vector times a matrix (M == 1) or a matrix times a column (N == 1) skips all of this: packing would
 * touch every element of the matrix once more than the arithmetic does, so those go to the kernels'
 * matrix-vector routines, which read the matrix in place — or, for a row vector times a B packed at load,
 * read the packed panels front to back.
 */
#include "kernels/gemm.h"

#include "core/mem.h"
#include "core/platform/platform.h"
#include <math.h>
#include <string.h>

#include "kernels/gemm_kernels.h"
#include "kernels/vmath.h"

/* Below this many multiply-adds a problem runs on the calling thread: each parallel_for costs a
 * microsecond or more, and splitting a product this small gained nothing measurable (64^3 did not speed up
 * on 2 threads, 96^3 did). Matrix-vector products do about one multiply-add per float loaded, so they are
 * worth splitting sooner. */
#define GEMM_PARALLEL_MIN_WORK (1 << 19)
#define GEMV_PARALLEL_MIN_WORK (1 << 17)
/* Products with at most this many MR-row tiles read B where it lies instead of packing it: packing costs
 * a copy of B for every product, which only pays when many row tiles reuse the packed panels (measured on
 * Zen 4 with B out of cache: 4 tiles, M = 40, gain a third; 6 tiles, M = 64, lose a tenth). */
#define B_IN_PLACE_ROW_TILES 4
/* Matrix-vector products are split across threads in strips of this many outputs. */
#define GEMV_STRIP 64

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static size_t floats_bytes_aligned(int64_t count) { return ((size_t)count * sizeof(float) + 63) & ~(size_t)63; }

/* ---- choosing kernels -------------------------------------------------------------------------------- */

static const gemm_kernel_set *kernels_for(gemm_variant variant)
{
#if defined(KILN_HAVE_X86_KERNELS)
    const cpu_features *cpu = platform_cpu_features();
    switch (variant) {
    case GEMM_VARIANT_AUTO:
        return cpu->avx512f ? &gemm_kernels_avx512 : cpu->avx2_fma ? &gemm_kernels_avx2 : &gemm_kernels_portable;
    case GEMM_VARIANT_AVX2: return cpu->avx2_fma ? &gemm_kernels_avx2 : NULL;
    case GEMM_VARIANT_AVX512: return cpu->avx512f ? &gemm_kernels_avx512 : NULL;
    default: break;
    }
#endif
#if defined(KILN_HAVE_NEON_KERNELS)
    /* Advanced SIMD is part of the aarch64 baseline: every aarch64 CPU runs it */
    if (variant == GEMM_VARIANT_AUTO || variant == GEMM_VARIANT_NEON) return &gemm_kernels_neon;
#endif
    if (variant == GEMM_VARIANT_AUTO || variant == GEMM_VARIANT_PORTABLE) return &gemm_kernels_portable;
    return NULL;
}

static gemm_variant resolve_variant(gemm_variant variant)
{
    if (variant != GEMM_VARIANT_AUTO) return variant;
    for (int v = GEMM_VARIANT_COUNT - 1; v > GEMM_VARIANT_AUTO; v--)
        if (kernels_for((gemm_variant)v)) return (gemm_variant)v;
    return GEMM_VARIANT_PORTABLE;
}

bool gemm_variant_available(gemm_variant variant) { return kernels_for(variant) != NULL; }

const char *gemm_variant_name(gemm_variant variant)
{
    static const char *const names[] = {"auto", "portable", "avx2", "avx512", "neon"};
    _Static_assert(sizeof names / sizeof names[0] == GEMM_VARIANT_COUNT, "a name for every gemm_variant");
    return (unsigned)variant < GEMM_VARIANT_COUNT ? names[variant] : "unknown";
}

/* ---- sizes --------------------------------------------------------------------------------------------- */

/* Block sizes for one problem: the kernel set's at most, evened out so that the last block is not a sliver
 * (K = 784 runs as 4 x 196 rather than 3 x 256 + 16, whose last pass would mostly load and store C), and
 * shrunk to the problem so small products need little scratch. MC and NC stay multiples of MR and NR. */
typedef struct gemm_blocks {
    int64_t mc, kc, nc;
} gemm_blocks;

static int64_t even_block(int64_t size, int64_t max_block, int64_t multiple)
{
    int64_t block = ceil_div(size, ceil_div(size, max_block));
    return ceil_div(block, multiple) * multiple;
}

static gemm_blocks blocks_for(const gemm_kernel_set *ks, int64_t M, int64_t N, int64_t K)
{
    gemm_blocks b = {
        .mc = even_block(M, ks->mc, ks->mr),
        .kc = even_block(K, ks->kc, 1),
        .nc = even_block(N, ks->nc, ks->nr),
    };
    return b;
}

static bool is_matrix_vector(int64_t M, int64_t N) { return M == 1 || N == 1; }

static size_t scratch_for(const gemm_kernel_set *ks, int64_t M, int64_t N, int64_t K)
{
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if (is_matrix_vector(M, N)) return floats_bytes_aligned(K); /* a contiguous copy of a strided vector */
    gemm_blocks b = blocks_for(ks, M, N, K);
    return floats_bytes_aligned(b.mc * b.kc) + floats_bytes_aligned(b.kc * b.nc);
}

size_t gemm_f32_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads)
{
    (void)threads;
    size_t bytes = 0;
    for (int v = GEMM_VARIANT_PORTABLE; v < GEMM_VARIANT_COUNT; v++) {
        const gemm_kernel_set *ks = kernels_for((gemm_variant)v);
        size_t s = ks ? scratch_for(ks, M, N, K) : 0;
        if (s > bytes) bytes = s;
    }
    return bytes;
}

static const parallel_runner *runner_for(int64_t M, int64_t N, int64_t K, const parallel_runner *parallel)
{
    double work = (double)M * (double)N * (double)K;
    return work >= (is_matrix_vector(M, N) ? GEMV_PARALLEL_MIN_WORK : GEMM_PARALLEL_MIN_WORK) ? parallel : NULL;
}

/* ---- packing ------------------------------------------------------------------------------------------- */

/* Micro-panel p of op(A)[row0 .., k0 .. k0+kc): rows row0 + p*MR onwards. */
static void pack_a_panel(const gemm_kernel_set *ks, const gemm_args *g, int64_t row0, int64_t rows, int64_t k0,
                         int64_t kc, int64_t p, float *dst)
{
    int64_t i0 = row0 + p * ks->mr;
    int count = (int)min64(ks->mr, rows - p * ks->mr);
    const float *src = g->trans_a ? g->A + k0 * g->lda + i0 : g->A + i0 * g->lda + k0;
    int64_t stride = g->trans_a ? 1 : g->lda, step = g->trans_a ? g->lda : 1;
    ks->pack_a(src, stride, step, count, kc, dst + p * ks->mr * kc);
}

/* Micro-panel p of op(B)[k0 .. k0+kc, col0 ..): columns col0 + p*NR onwards. */
static void pack_b_panel(const gemm_kernel_set *ks, const float *B, int64_t ldb, bool trans_b, int64_t col0,
                         int64_t cols, int64_t k0, int64_t kc, int64_t p, float *dst)
{
    int64_t j0 = col0 + p * ks->nr;
    int count = (int)min64(ks->nr, cols - p * ks->nr);
    const float *src = trans_b ? B + j0 * ldb + k0 : B + k0 * ldb + j0;
    int64_t stride = trans_b ? ldb : 1, step = trans_b ? 1 : ldb;
    ks->pack_b(src, stride, step, count, kc, dst + p * ks->nr * kc);
}

/* ---- the blocked product ------------------------------------------------------------------------------- */

/* Where the blocked product finds its operands beyond gemm_args: packed or to be packed. */
typedef struct gemm_sources {
    const float *a_panels;         /* pre-packed A (gemm_f32_pack_a's layout), or NULL to pack g->A */
    const float *b_panels;         /* pre-packed B (whole-K panels), or NULL */
    gemm_b_panel_fn b_panel;       /* else B panels come from the caller when set, or from g->B */
    const void *b_ctx;
    const gemm_epilogue *epilogue; /* applied to each tile after the last K slice, or NULL */
    int64_t a_rows_padded;         /* pre-packed A: the padded row count it was packed with */
    int64_t a_row0;                /* pre-packed A: the row of A that row 0 of this product is */
    int64_t b_col0;                /* b_panel: the column of B that column 0 of this product is */
} gemm_sources;

/* One (jc, pc, ic) round: the block of C it updates and where its packed operands are. */
typedef struct gemm_round {
    const gemm_kernel_set *ks;
    const gemm_args *g;
    const gemm_sources *src;
    int64_t ic, mc, pc, kc, jc, nc;
    float beta;           /* the caller's beta on the first K slice; 1 afterwards, to accumulate */
    bool last_k;          /* the tiles are final after this round: time for the epilogue */
    const float *a_packed;
    float *a_pack_into;   /* where this round packs A, or NULL when A is already packed */
    float *b_pack_into;   /* where this round packs B, or NULL when B is already packed */
    const float *b_packed;
    int64_t b_panel_stride; /* floats between consecutive B micro-panels */
    int64_t a_panels, a_pack_panels, b_panels, col_tiles;
    bool b_in_place;      /* whole-width tiles read op(B) where it lies; only a narrower last one is packed */
    int64_t b_first_panel; /* the panel pack_round's first B panel is */
} gemm_round;

static void pack_round(void *arg, int64_t begin, int64_t end)
{
    const gemm_round *r = arg;
    const gemm_args *g = r->g;
    for (int64_t u = begin; u < end; u++) {
        if (u < r->a_pack_panels) {
            pack_a_panel(r->ks, g, r->ic, r->mc, r->pc, r->kc, u, r->a_pack_into);
            continue;
        }
        int64_t p = u - r->a_pack_panels + r->b_first_panel;
        if (r->src->b_panel) {
            int64_t j0 = r->jc + p * r->ks->nr;
            r->src->b_panel(r->src->b_ctx, r->pc, r->kc, r->src->b_col0 + j0, (int)min64(r->ks->nr, r->jc + r->nc - j0), r->ks->nr,
                            r->b_pack_into + p * r->ks->nr * r->kc);
        } else {
            pack_b_panel(r->ks, g->B, g->ldb, g->trans_b, r->jc, r->nc, r->pc, r->kc, p, r->b_pack_into);
        }
    }
}

void gemm_activate_f32(gemm_activation act, float lo, float hi, float *v, int64_t n)
{
    if (act == GEMM_ACT_CLAMP) {
        /* comparisons, not fmaxf/fminf, so that NaN passes through and compilers vectorise the loop */
        for (int64_t j = 0; j < n; j++) {
            float x = v[j] < lo ? lo : v[j];
            v[j] = x > hi ? hi : x;
        }
        return;
    }
    if (act == GEMM_ACT_HARD_SIGMOID || act == GEMM_ACT_HARD_SWISH) {
        /* comparisons again: a NaN fails both and stays */
        for (int64_t j = 0; j < n; j++) {
            float h = lo * v[j] + hi;
            h = h < 0.0f ? 0.0f : h;
            h = h > 1.0f ? 1.0f : h;
            v[j] = act == GEMM_ACT_HARD_SWISH ? v[j] * h : h;
        }
        return;
    }
    if (act != GEMM_ACT_SIGMOID && act != GEMM_ACT_SILU) return;
    const gemm_kernel_set *ks = kernels_for(GEMM_VARIANT_AUTO);
    if (ks->epilogue) {
        for (int64_t j0 = 0; j0 < n; j0 += 1 << 20)
            ks->epilogue(v + j0, 0, 1, (int)min64(1 << 20, n - j0), NULL, (int)act, lo, hi);
        return;
    }
    const vmath_set *fast = vmath_fast_f32();
    float s[256];
    for (int64_t j0 = 0; j0 < n; j0 += 256) {
        int64_t m = n - j0 < 256 ? n - j0 : 256;
        if (fast) fast->sigmoid(s, v + j0, m);
        else
            for (int64_t j = 0; j < m; j++) s[j] = 1.0f / (1.0f + expf(-v[j0 + j]));
        for (int64_t j = 0; j < m; j++) v[j0 + j] = act == GEMM_ACT_SILU ? v[j0 + j] * s[j] : s[j];
    }
}

/* C[0:mr, 0:nr] (rows from `row` on) += bias, then the activation; the kernel set's own routine does the
 * bias and clamp when it has one. */
static void apply_epilogue(const gemm_kernel_set *ks, const gemm_epilogue *ep, float *c, int64_t ldc, int64_t row,
                           int mr, int nr)
{
    if (ks && ks->epilogue) {
        ks->epilogue(c, ldc, mr, nr, ep->row_bias ? ep->row_bias + row : NULL, (int)ep->act, ep->lo, ep->hi);
        return;
    }
    if (ep->row_bias) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) c[i * ldc + j] += ep->row_bias[row + i];
    }
    if (ep->act != GEMM_ACT_NONE)
        for (int i = 0; i < mr; i++) gemm_activate_f32(ep->act, ep->lo, ep->hi, c + i * ldc, nr);
}

/* The part of the epilogue a micro-kernel applies on its registers (the bias, the clamp); the rest, an
 * activation needing e^x, runs on the stored tile. */
static bool micro_kernel_takes_all(const gemm_epilogue *ep)
{
    return ep->act == GEMM_ACT_NONE || ep->act == GEMM_ACT_CLAMP;
}

static void compute_round(void *arg, int64_t begin, int64_t end)
{
    const gemm_round *r = arg;
    const gemm_kernel_set *ks = r->ks;
    const gemm_args *g = r->g;
    const gemm_epilogue *ep = r->last_k ? r->src->epilogue : NULL;
    gemm_epilogue rest = ep ? (gemm_epilogue){NULL, ep->act, ep->lo, ep->hi} : (gemm_epilogue){0};
    for (int64_t t = begin; t < end; t++) {
        int64_t ir = t / r->col_tiles, jr = t % r->col_tiles, row = r->ic + ir * ks->mr;
        int mr = (int)min64(ks->mr, r->mc - ir * ks->mr), nr = (int)min64(ks->nr, r->nc - jr * ks->nr);
        float *c = g->C + row * g->ldc + r->jc + jr * ks->nr;
        gemm_tile_ops ops = {0};
        if (ep)
            ops = (gemm_tile_ops){ep->row_bias ? ep->row_bias + row : NULL, ep->act == GEMM_ACT_CLAMP, ep->lo, ep->hi};
        const float *b = r->b_packed + jr * r->b_panel_stride;
        int64_t ldb = ks->nr;
        if (r->b_in_place && nr == ks->nr) b = g->B + r->pc * g->ldb + r->jc + jr * ks->nr, ldb = g->ldb;
        ks->microkernel(r->kc, r->a_packed + ir * ks->mr * r->kc, b, ldb, c, g->ldc, mr, nr, g->alpha, r->beta,
                        ep ? &ops : NULL);
        if (ep && !micro_kernel_takes_all(ep)) apply_epilogue(ks, &rest, c, g->ldc, row, mr, nr);
    }
}

/* Pre-packed A holds, for each K slice pc (kc deep), every MR-row micro-panel of all M rows padded to
 * whole panels: the panel of rows i0 .. sits at padded_M * pc + i0 * kc. */
static int64_t padded_rows(const gemm_kernel_set *ks, int64_t M) { return ceil_div(M, ks->mr) * ks->mr; }

static void gemm_blocked(const gemm_kernel_set *ks, const gemm_args *g, const gemm_sources *src, void *scratch,
                         const parallel_runner *parallel)
{
    gemm_blocks blocks = blocks_for(ks, g->M, g->N, g->K);
    bool b_in_place = !src->b_panels && !src->b_panel && !g->trans_b && ceil_div(g->M, ks->mr) <= B_IN_PLACE_ROW_TILES;
    float *a_buf = scratch;
    float *b_buf = (float *)((char *)scratch + floats_bytes_aligned(blocks.mc * blocks.kc));
    gemm_round r = {.ks = ks, .g = g, .src = src};
    for (r.jc = 0; r.jc < g->N; r.jc += blocks.nc) {
        r.nc = min64(blocks.nc, g->N - r.jc);
        r.col_tiles = ceil_div(r.nc, ks->nr);
        for (r.pc = 0; r.pc < g->K; r.pc += blocks.kc) {
            r.kc = min64(blocks.kc, g->K - r.pc);
            r.beta = r.pc == 0 ? g->beta : 1.0f;
            r.last_k = r.pc + r.kc >= g->K;
            if (src->b_panels) {
                r.b_packed = src->b_panels + (r.jc / ks->nr) * g->K * ks->nr + r.pc * ks->nr;
                r.b_panel_stride = g->K * ks->nr;
            } else {
                r.b_packed = r.b_pack_into = b_buf;
                r.b_panel_stride = r.kc * ks->nr;
            }
            int64_t b_panels = src->b_panels ? 0 : r.col_tiles;
            r.b_in_place = b_in_place, r.b_first_panel = 0;
            if (b_in_place) { /* pack only a last panel narrower than NR */
                r.b_first_panel = r.col_tiles - 1;
                b_panels = r.nc % ks->nr ? 1 : 0;
            }
            for (r.ic = 0; r.ic < g->M; r.ic += blocks.mc) {
                r.mc = min64(blocks.mc, g->M - r.ic);
                r.a_panels = ceil_div(r.mc, ks->mr);
                if (src->a_panels) {
                    r.a_packed = src->a_panels + src->a_rows_padded * r.pc + (src->a_row0 + r.ic) * r.kc;
                    r.a_pack_panels = 0;
                } else {
                    r.a_packed = r.a_pack_into = a_buf;
                    r.a_pack_panels = r.a_panels;
                }
                r.b_panels = b_panels;
                b_panels = 0; /* the B block serves every ic of this (jc, pc) */
                if (r.a_pack_panels + r.b_panels > 0)
                    parallel_for(parallel, r.a_pack_panels + r.b_panels, 1, pack_round, &r);
                parallel_for(parallel, r.a_panels * r.col_tiles, 1, compute_round, &r);
            }
        }
    }
}

/* ---- matrix-vector products ---------------------------------------------------------------------------- */

typedef struct gemv_job {
    gemv_fn fn;
    bool outputs_are_columns; /* vecmat: output j is column j of the matrix; matvec: row j */
    int64_t K, n;
    const float *x, *m;
    int64_t ldm;
    float *y;
    int64_t incy;
    float alpha, beta;
} gemv_job;

static void gemv_strips(void *arg, int64_t begin, int64_t end)
{
    const gemv_job *j = arg;
    int64_t j0 = begin * GEMV_STRIP, j1 = min64(j->n, end * GEMV_STRIP);
    const float *m = j->m + (j->outputs_are_columns ? j0 : j0 * j->ldm);
    j->fn(j->K, j1 - j0, j->x, m, j->ldm, j->y + j0 * j->incy, j->incy, j->alpha, j->beta);
}

/* A vector with elements `step` apart, made contiguous in scratch when it is not already. */
static const float *contiguous_vector(const float *v, int64_t step, int64_t K, float *scratch)
{
    if (step == 1) return v;
    for (int64_t k = 0; k < K; k++) scratch[k] = v[k * step];
    return scratch;
}

/* M == 1: y = a * op(B). N == 1: y = op(A) * b, written down a column of C. */
static void gemm_matrix_vector(const gemm_kernel_set *ks, const gemm_args *g, void *scratch,
                               const parallel_runner *parallel)
{
    gemv_job j = {.K = g->K, .y = g->C, .alpha = g->alpha, .beta = g->beta};
    bool matrix_transposed;
    if (g->M == 1) {
        j.x = contiguous_vector(g->A, g->trans_a ? g->lda : 1, g->K, scratch);
        j.m = g->B, j.ldm = g->ldb, j.n = g->N, j.incy = 1;
        matrix_transposed = g->trans_b;
    } else {
        j.x = contiguous_vector(g->B, g->trans_b ? 1 : g->ldb, g->K, scratch);
        j.m = g->A, j.ldm = g->lda, j.n = g->M, j.incy = g->ldc;
        matrix_transposed = !g->trans_a; /* y = A b reads A's rows as dot products */
    }
    j.outputs_are_columns = !matrix_transposed;
    j.fn = matrix_transposed ? ks->matvec : ks->vecmat;
    parallel_for(parallel, ceil_div(j.n, GEMV_STRIP), 1, gemv_strips, &j);
}

/* M == 1 against pre-packed B: y = a * B panel by panel, reading the packed matrix front to back (a
 * transposed B in place would be read as n row streams and horizontal sums, an untransposed one as strips
 * of rows whose every 4 KB restarts the prefetchers: 1280 -> 1000 with the weight out of cache took 400 us
 * that way, 300 through the panels). */
typedef struct vecpanel_job {
    const gemm_kernel_set *ks;
    const gemm_args *g;
    const float *x, *panels;
} vecpanel_job;

static void vecpanel_range(void *arg, int64_t begin, int64_t end)
{
    const vecpanel_job *j = arg;
    const gemm_kernel_set *ks = j->ks;
    int64_t K = j->g->K;
    for (int64_t p = begin; p < end; p++) {
        int nr = (int)min64(ks->nr, j->g->N - p * ks->nr);
        ks->vecpanel(K, j->x, j->panels + p * K * ks->nr, j->g->C + p * ks->nr, nr, j->g->alpha, j->g->beta);
    }
}

static void gemm_vector_panels(const gemm_kernel_set *ks, const gemm_args *g, const float *panels, void *scratch,
                               const parallel_runner *parallel)
{
    vecpanel_job j = {ks, g, contiguous_vector(g->A, g->trans_a ? g->lda : 1, g->K, scratch), panels};
    parallel_for(parallel, ceil_div(g->N, ks->nr), ceil_div(GEMV_STRIP, ks->nr), vecpanel_range, &j);
}

/* ---- entry points -------------------------------------------------------------------------------------- */

/* K == 0: the product is empty, so C = beta * C (and beta == 0 writes zeros without reading). */
static void scale_c(const gemm_args *g)
{
    for (int64_t i = 0; i < g->M; i++) {
        float *row = g->C + i * g->ldc;
        for (int64_t j = 0; j < g->N; j++) row[j] = g->beta == 0.0f ? 0.0f : g->beta * row[j];
    }
}

static void gemm_run(const gemm_kernel_set *ks, const gemm_args *g, const gemm_sources *src, void *scratch,
                     const parallel_runner *parallel)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) {
        scale_c(g);
        return;
    }
    parallel = runner_for(g->M, g->N, g->K, parallel);
    if (g->M == 1 && src->b_panels)
        gemm_vector_panels(ks, g, src->b_panels, scratch, parallel);
    else if (is_matrix_vector(g->M, g->N))
        gemm_matrix_vector(ks, g, scratch, parallel);
    else
        gemm_blocked(ks, g, src, scratch, parallel);
}

void gemm_f32_with_variant(gemm_variant variant, const gemm_args *args, void *scratch,
                           const parallel_runner *parallel)
{
    const gemm_kernel_set *ks = kernels_for(variant);
    gemm_sources src = {0};
    gemm_run(ks ? ks : &gemm_kernels_portable, args, &src, scratch, parallel);
}

void gemm_f32(const gemm_args *args, void *scratch, const parallel_runner *parallel)
{
    gemm_f32_with_variant(GEMM_VARIANT_AUTO, args, scratch, parallel);
}

/* ---- pre-packed B -------------------------------------------------------------------------------------- */

/* Whole-K panels: panel p holds columns p*NR .. p*NR+NR-1 as K rows of NR floats. */
static int64_t packed_b_floats(const gemm_kernel_set *ks, int64_t K, int64_t N)
{
    return ceil_div(N, ks->nr) * ks->nr * K;
}

size_t gemm_f32_pack_b_bytes(gemm_variant variant, int64_t K, int64_t N)
{
    const gemm_kernel_set *ks = kernels_for(resolve_variant(variant));
    return ks && K > 0 && N > 0 ? floats_bytes_aligned(packed_b_floats(ks, K, N)) + 64 : 0;
}

void gemm_f32_pack_b(gemm_variant variant, int64_t K, int64_t N, bool trans_b, const float *B, int64_t ldb,
                     void *memory, gemm_packed_b *packed)
{
    variant = resolve_variant(variant);
    const gemm_kernel_set *ks = kernels_for(variant);
    float *panels = (float *)(((uintptr_t)memory + 63) & ~(uintptr_t)63);
    *packed = (gemm_packed_b){variant, K, N, panels, B, ldb, trans_b};
    if (!ks || K <= 0 || N <= 0) return;
    for (int64_t p = 0; p < ceil_div(N, ks->nr); p++) pack_b_panel(ks, B, ldb, trans_b, 0, N, 0, K, p, panels);
}

void gemm_f32_prepacked(const gemm_args *args, const gemm_packed_b *packed, void *scratch,
                        const parallel_runner *parallel)
{
    gemm_args g = *args;
    g.B = packed->B, g.ldb = packed->ldb, g.trans_b = packed->trans_b;
    const gemm_kernel_set *ks = kernels_for(packed->variant);
    gemm_sources src = {.b_panels = packed->panels};
    gemm_run(ks, &g, &src, scratch, parallel);
}

/* ---- pre-packed A and the fused product ---------------------------------------------------------------- */

size_t gemm_f32_pack_a_bytes(gemm_variant variant, int64_t M, int64_t K)
{
    const gemm_kernel_set *ks = kernels_for(resolve_variant(variant));
    return ks && M > 0 && K > 0 ? floats_bytes_aligned(padded_rows(ks, M) * K) + 64 : 0;
}

void gemm_f32_pack_a(gemm_variant variant, int64_t M, int64_t K, bool trans_a, const float *A, int64_t lda,
                     void *memory, gemm_packed_a *packed)
{
    variant = resolve_variant(variant);
    const gemm_kernel_set *ks = kernels_for(variant);
    float *panels = (float *)(((uintptr_t)memory + 63) & ~(uintptr_t)63);
    *packed = (gemm_packed_a){variant, M, K, panels, A, lda, trans_a};
    if (!ks || M <= 0 || K <= 0) return;
    gemm_args g = {.M = M, .K = K, .trans_a = trans_a, .A = A, .lda = lda};
    int64_t kc_max = blocks_for(ks, M, 1, K).kc;
    for (int64_t pc = 0; pc < K; pc += kc_max) {
        int64_t kc = min64(kc_max, K - pc);
        for (int64_t p = 0; p < ceil_div(M, ks->mr); p++)
            pack_a_panel(ks, &g, 0, M, pc, kc, p, panels + padded_rows(ks, M) * pc);
    }
}

/* The epilogue over a whole M x N result (the matrix-vector paths, which have no tiles). A contiguous
 * column (N == 1, ldc == 1: a convolution over a 1 x 1 map, as in squeeze-excitation blocks) takes its bias
 * element by element and then the activation in one call, not one call per element: a Sigmoid after a
 * 1152 x 48 product cost 34 us that way, seven times the product. */
static void apply_epilogue_whole(const gemm_epilogue *ep, const gemm_args *g)
{
    if (g->N == 1 && g->ldc == 1) {
        if (ep->row_bias)
            for (int64_t i = 0; i < g->M; i++) g->C[i] += ep->row_bias[i];
        if (ep->act != GEMM_ACT_NONE) gemm_activate_f32(ep->act, ep->lo, ep->hi, g->C, g->M);
        return;
    }
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j0 = 0; j0 < g->N; j0 += 1 << 20)
            apply_epilogue(NULL, ep, g->C + i * g->ldc + j0, g->ldc, i, 1, (int)min64(1 << 20, g->N - j0));
}

/* ---- the fused product across threads ------------------------------------------------------------------- */

/* With A pre-packed, threads need not share packing: each takes its own strip of C — a range of columns
 * (each packs its own B panels) or, when C has too few column tiles to share out evenly, a range of rows
 * (each then packs the whole of B for itself) — and runs the blocked product alone on its own slot of
 * scratch. One parallel_for per product instead of two per block round: the threads meet once, which
 * matters most when the machine is busy and a thread may be descheduled at any barrier. */
typedef struct gemm_strips {
    const gemm_kernel_set *ks;
    const gemm_args *g;
    const gemm_fused *fused;
    char *scratch;
    size_t slot_bytes;
    bool columns;  /* split N (else M) */
    int64_t strip; /* columns or rows per strip: a multiple of NR or MR */
} gemm_strips;

static void run_strips(void *arg, int64_t begin, int64_t end)
{
    const gemm_strips *job = arg;
    const gemm_kernel_set *ks = job->ks;
    for (int64_t p = begin; p < end; p++) {
        gemm_args g = *job->g;
        int64_t total = job->columns ? g.N : g.M, lo = p * job->strip, hi = min64(total, lo + job->strip);
        if (lo >= hi) continue;
        gemm_epilogue ep = job->fused->epilogue ? *job->fused->epilogue : (gemm_epilogue){0};
        gemm_sources src = {.a_panels = job->fused->a->panels, .b_panel = job->fused->b_panel,
                            .b_ctx = job->fused->b_ctx, .epilogue = job->fused->epilogue ? &ep : NULL,
                            .a_rows_padded = padded_rows(ks, g.M)};
        if (job->columns) {
            g.N = hi - lo, g.C += lo;
            if (src.b_panel) src.b_col0 = lo;
            else g.B += g.trans_b ? lo * g.ldb : lo;
        } else {
            g.M = hi - lo, g.C += lo * g.ldc, src.a_row0 = lo;
            if (ep.row_bias) ep.row_bias += lo;
        }
        gemm_blocked(ks, &g, &src, job->scratch + (size_t)p * job->slot_bytes, NULL);
    }
}

/* Scratch of one strip's blocked product: the largest blocks any sub-problem of an M x N x K product uses. */
static size_t strip_slot_bytes(const gemm_kernel_set *ks, int64_t M, int64_t N, int64_t K)
{
    int64_t mc = min64(ks->mc, ceil_div(M, ks->mr) * ks->mr), kc = min64(ks->kc, K);
    int64_t nc = min64(ks->nc, ceil_div(N, ks->nr) * ks->nr);
    return floats_bytes_aligned(mc * kc) + floats_bytes_aligned(kc * nc);
}

/* Splits C into `threads` strips when that shares the work out well enough, and runs them; false when the
 * product should run the shared-packing way instead. */
static bool gemm_fused_strips(const gemm_kernel_set *ks, const gemm_args *g, const gemm_fused *fused, void *scratch,
                              const parallel_runner *parallel)
{
    int threads = parallel_threads(parallel);
    if (threads < 2 || !fused->a) return false;
    int64_t col_tiles = ceil_div(g->N, ks->nr), row_tiles = ceil_div(g->M, ks->mr);
    /* the busiest strip's share of C, splitting each way: whole tiles per strip, so 49 columns in tiles of
     * 32 give one thread 32 of them (65%), not half */
    double by_columns = (double)min64(g->N, ceil_div(col_tiles, threads) * ks->nr) / (double)g->N;
    double by_rows = (double)min64(g->M, ceil_div(row_tiles, threads) * ks->mr) / (double)g->M;
    bool columns = by_columns <= 0.55 || by_columns <= by_rows;
    if ((columns ? col_tiles : row_tiles) < threads) return false;
    gemm_strips job = {ks, g, fused, scratch, strip_slot_bytes(ks, g->M, g->N, g->K), columns,
                       columns ? ceil_div(col_tiles, threads) * ks->nr : ceil_div(row_tiles, threads) * ks->mr};
    parallel_for(parallel, threads, 1, run_strips, &job);
    return true;
}

/* ---- few columns: the product turned around ---------------------------------------------------------- */

/* Whether the set's columns kernel (rows of C along the vector lanes) beats the micro-kernel (columns along
 * them) for this shape, counting vector multiply-adds, the stores that write its tiles transposed (as one
 * per element) and the repacking of A. With 49 columns the micro-kernel pays for 64; with 196 for 208,
 * which the columns kernel beats when K is large enough to hide its stores (112 x 672 x 196: 296 -> 276 us). */
static bool columns_pay(const gemm_kernel_set *ks, int64_t M, int64_t N, int64_t K)
{
    if (!ks->columns) return false;
    double by_columns = (double)M * (double)ceil_div(N, ks->lanes) * (double)K;
    double by_rows = (double)N * (double)ceil_div(M, ks->lanes) * (double)K + (double)M * (double)N +
                     (double)M * (double)K / ks->lanes;
    return by_rows < by_columns;
}

static size_t columns_slot_bytes(const gemm_kernel_set *ks, int64_t K) { return floats_bytes_aligned(K * ks->tw); }

/* Rows r0 .. r0+rows-1 (rows <= TW) of pre-packed A, out of its MR-row panels and K slices into the columns
 * kernel's layout at[k * TW + i], rows past `rows` zero. */
static void repack_a_rows(const gemm_kernel_set *ks, const gemm_packed_a *a, int64_t r0, int rows, float *at)
{
    int64_t kc_max = blocks_for(ks, a->M, 1, a->K).kc, padded = padded_rows(ks, a->M);
    for (int64_t pc = 0; pc < a->K; pc += kc_max) {
        int64_t kc = min64(kc_max, a->K - pc);
        ks->widen_panels(a->panels + padded * pc + r0 * kc, (int)ceil_div(rows, ks->mr), kc, at + pc * ks->tw);
    }
}

/* The part of the A panels of rows r1 .. r1+TW-1 that tile t of a block's T tiles prefetches (NULL past M).
 * The panels lie in K slices, far apart; the tiles take the slices in turn, each slice split evenly among
 * its tiles (with fewer tiles than slices, some slices go without). */
static const float *prefetch_share(const gemm_kernel_set *ks, const gemm_packed_a *a, int64_t r1, int64_t t,
                                   int64_t tiles, int64_t *floats)
{
    *floats = 0;
    if (r1 >= a->M) return NULL;
    int64_t kc_max = blocks_for(ks, a->M, 1, a->K).kc, slices = ceil_div(a->K, kc_max);
    int64_t s = t * slices / tiles, first = ceil_div(s * tiles, slices);
    int64_t count = ceil_div((s + 1) * tiles, slices) - first;
    int64_t pc = s * kc_max, kc = min64(kc_max, a->K - pc);
    int64_t length = ceil_div(min64(ks->tw, a->M - r1), ks->mr) * ks->mr * kc, share = ceil_div(length, count);
    int64_t start = (t - first) * share;
    if (start >= length) return NULL;
    *floats = min64(share, length - start);
    return a->panels + padded_rows(ks, a->M) * pc + r1 * kc + start;
}

typedef struct gemm_columns_job {
    const gemm_kernel_set *ks;
    const gemm_args *g;
    const gemm_fused *fused;
    char *scratch;
    size_t slot_bytes;
    int64_t blocks, blocks_per_strip; /* TW-row blocks of C, and per strip (one per thread) */
    int64_t tiles, tiles_per_strip;   /* TR-column tiles of C, and per strip */
    int64_t column_strips;            /* strips side by side: more than 1 when C has fewer row blocks than threads */
} gemm_columns_job;

/* Strip p: its blocks of TW rows, each repacked into slot p and then multiplied by its tiles of TR columns. */
static void run_column_strips(void *arg, int64_t begin, int64_t end)
{
    const gemm_columns_job *job = arg;
    const gemm_kernel_set *ks = job->ks;
    const gemm_args *g = job->g;
    const gemm_fused *f = job->fused;
    const gemm_epilogue *ep = f->epilogue;
    int64_t b_step = f->b_blocked ? GEMM_B_BLOCK : 1;
    for (int64_t p = begin; p < end; p++) {
        float *at = (float *)(void *)(job->scratch + (size_t)p * job->slot_bytes);
        int64_t rows_part = p / job->column_strips, cols_part = p % job->column_strips;
        int64_t last = min64(job->blocks, (rows_part + 1) * job->blocks_per_strip);
        int64_t t0 = cols_part * job->tiles_per_strip, t1 = min64(job->tiles, t0 + job->tiles_per_strip);
        for (int64_t block = rows_part * job->blocks_per_strip; block < last && t0 < t1; block++) {
            int64_t r0 = block * ks->tw;
            int rows = (int)min64(ks->tw, g->M - r0);
            repack_a_rows(ks, f->a, r0, rows, at);
            const float *bias = ep && ep->row_bias ? ep->row_bias + r0 : NULL;
            int64_t next_row = block + 1 < last ? r0 + ks->tw : g->M;
            for (int64_t t = t0; t < t1; t++) {
                int64_t j0 = t * ks->tr, ahead_floats;
                const float *ahead = prefetch_share(ks, f->a, next_row, t - t0, t1 - t0, &ahead_floats);
                float *c = f->c_blocked ? g->C + r0 / GEMM_B_BLOCK * g->ldc + j0 * GEMM_B_BLOCK : g->C + r0 * g->ldc + j0;
                gemm_columns_args tile = {.K = g->K, .at = at, .b = g->B + j0 * b_step, .ldb = g->ldb,
                                       .b_blocked = f->b_blocked, .c = c, .ldc = g->ldc, .c_blocked = f->c_blocked,
                                       .rows = rows, .cols = (int)min64(ks->tr, g->N - j0), .alpha = g->alpha,
                                       .bias = bias, .act = ep ? (int)ep->act : GEMM_ACT_NONE,
                                       .lo = ep ? ep->lo : 0.0f, .hi = ep ? ep->hi : 0.0f, .ahead = ahead,
                                       .ahead_floats = ahead_floats};
                ks->columns(&tile);
            }
        }
    }
}

/* Threads take strips of row blocks; when there are fewer row blocks than threads, the columns are split
 * too, each strip repacking the A rows it needs. */
static void gemm_fused_columns(const gemm_kernel_set *ks, const gemm_args *g, const gemm_fused *fused, void *scratch,
                               const parallel_runner *parallel)
{
    int threads = parallel_threads(parallel);
    int64_t blocks = ceil_div(g->M, ks->tw), tiles = ceil_div(g->N, ks->tr);
    int64_t row_strips = min64(blocks, threads), column_strips = min64(tiles, threads / row_strips);
    gemm_columns_job job = {ks,     g,        fused, scratch, columns_slot_bytes(ks, g->K), blocks,
                            ceil_div(blocks, row_strips), tiles, ceil_div(tiles, column_strips), column_strips};
    parallel_for(parallel, row_strips * column_strips, 1, run_column_strips, &job);
}

/* ---- channel-blocked B -------------------------------------------------------------------------------- */

/* gemm_b_panel_fn over a channel-blocked B (ctx: its gemm_args), for kernel sets without a columns kernel:
 * each panel row k gathers its columns GEMM_B_BLOCK floats apart. */
static void blocked_b_panel(const void *ctx, int64_t k0, int64_t kc, int64_t j0, int count, int width, float *dst)
{
    const gemm_args *g = ctx;
    for (int64_t k = k0; k < k0 + kc; k++, dst += width) {
        const float *row = g->B + (k / GEMM_B_BLOCK) * g->ldb + j0 * GEMM_B_BLOCK + k % GEMM_B_BLOCK;
        for (int j = 0; j < count; j++) dst[j] = row[j * GEMM_B_BLOCK];
        for (int j = count; j < width; j++) dst[j] = 0.0f;
    }
}

/* C's rows r0 .. r0+15, written as rows of N (ldc N), rearranged in place into their channel block (the
 * same GEMM_B_BLOCK * N floats), through `rows` of scratch. */
static void block_rows_in_place(float *C, int64_t N, int64_t r0, float *rows)
{
    float *group = C + r0 * N;
    memcpy(rows, group, (size_t)(GEMM_B_BLOCK * N) * sizeof *rows);
    for (int64_t i = 0; i < GEMM_B_BLOCK; i++)
        for (int64_t j = 0; j < N; j++) group[j * GEMM_B_BLOCK + i] = rows[i * N + j];
}

/* Channel-blocked operands go to the columns kernel, which broadcasts B's elements wherever they lie and
 * stores C's vectors of rows whole. Kernel sets without one read a blocked B through blocked_b_panel into the
 * usual panels, and write a blocked C as rows first, rearranged afterwards (scratch for one block of rows
 * after the GEMM's own). */
static void gemm_fused_blocked(const gemm_kernel_set *ks, const gemm_args *g, const gemm_fused *fused,
                               void *scratch, const parallel_runner *parallel)
{
    if (ks->columns && fused->a && g->beta == 0.0f) {
        gemm_fused_columns(ks, g, fused, scratch, runner_for(g->M, g->N, g->K, parallel));
        return;
    }
    gemm_fused plain = *fused;
    plain.b_blocked = plain.c_blocked = false;
    if (fused->b_blocked) plain.b_panel = blocked_b_panel, plain.b_ctx = g;
    gemm_args rows = *g;
    if (fused->c_blocked) rows.ldc = g->N;
    gemm_f32_fused(&rows, &plain, scratch, parallel);
    if (!fused->c_blocked) return;
    float *block = (float *)(void *)((char *)scratch + gemm_f32_fused_scratch_bytes(g->M, g->N, g->K, parallel_threads(parallel)));
    for (int64_t r0 = 0; r0 < g->M; r0 += GEMM_B_BLOCK) block_rows_in_place(g->C, g->N, r0, block);
}

void gemm_f32_fused(const gemm_args *args, const gemm_fused *fused, void *scratch, const parallel_runner *parallel)
{
    gemm_args g = *args;
    const gemm_kernel_set *ks = kernels_for(fused->a ? fused->a->variant : GEMM_VARIANT_AUTO);
    if (g.M <= 0 || g.N <= 0) return;
    if (g.K <= 0) {
        scale_c(&g);
        if (fused->epilogue) apply_epilogue_whole(fused->epilogue, &g);
        return;
    }
    if (fused->b_blocked || fused->c_blocked) {
        gemm_fused_blocked(ks, &g, fused, scratch, parallel);
        return;
    }
    if (fused->a) g.A = fused->a->A, g.lda = fused->a->lda, g.trans_a = fused->a->trans_a;
    parallel = runner_for(g.M, g.N, g.K, parallel);
    if (g.N == 1) {
        /* one column of B: produce it in scratch, then multiply A in place */
        if (fused->b_panel) {
            fused->b_panel(fused->b_ctx, 0, g.K, 0, 1, 1, scratch);
            g.B = scratch, g.ldb = 1, g.trans_b = false;
            scratch = (char *)scratch + floats_bytes_aligned(g.K);
        }
        gemm_matrix_vector(ks, &g, scratch, parallel);
        if (fused->epilogue) apply_epilogue_whole(fused->epilogue, &g);
        return;
    }
    if (fused->a && !fused->b_panel && !g.trans_b && g.beta == 0.0f && columns_pay(ks, g.M, g.N, g.K)) {
        gemm_fused_columns(ks, &g, fused, scratch, parallel);
        return;
    }
    if (gemm_fused_strips(ks, &g, fused, scratch, parallel)) return;
    gemm_sources src = {.a_panels = fused->a ? fused->a->panels : NULL, .b_panel = fused->b_panel,
                        .b_ctx = fused->b_ctx, .epilogue = fused->epilogue, .a_rows_padded = padded_rows(ks, g.M)};
    gemm_blocked(ks, &g, &src, scratch, parallel);
}

size_t gemm_f32_fused_blocked_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads)
{
    size_t bytes = gemm_f32_fused_scratch_bytes(M, N, K, threads);
    if (M <= 0 || N <= 0 || K <= 0) return bytes;
    /* the rearranging of a blocked C without a columns kernel: one block of rows after the GEMM's scratch */
    size_t block;
    if (!mem_mul_ok((size_t)N, GEMM_B_BLOCK * sizeof(float), &block) || bytes > SIZE_MAX - block) return SIZE_MAX;
    bytes += block;
    for (int v = GEMM_VARIANT_PORTABLE; v < GEMM_VARIANT_COUNT; v++) {
        const gemm_kernel_set *ks = kernels_for((gemm_variant)v);
        size_t columns = ks && ks->columns ? columns_slot_bytes(ks, K) * (size_t)(threads < 1 ? 1 : threads) : 0;
        if (columns > bytes) bytes = columns;
    }
    return bytes;
}

size_t gemm_f32_fused_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads)
{
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    if (threads < 1) threads = 1;
    size_t bytes = 0;
    for (int v = GEMM_VARIANT_PORTABLE; v < GEMM_VARIANT_COUNT; v++) {
        const gemm_kernel_set *ks = kernels_for((gemm_variant)v);
        if (!ks) continue;
        gemm_blocks b = blocks_for(ks, M, N, K);
        size_t s = N == 1 ? 2 * floats_bytes_aligned(K) : floats_bytes_aligned(b.mc * b.kc) + floats_bytes_aligned(b.kc * b.nc);
        size_t strips = strip_slot_bytes(ks, M, N, K) * (size_t)threads;
        if (threads > 1 && strips > s) s = strips;
        size_t columns = columns_pay(ks, M, N, K) ? columns_slot_bytes(ks, K) * (size_t)threads : 0;
        if (columns > s) s = columns;
        if (s > bytes) bytes = s;
    }
    return bytes;
}
