/*
 * winograd_avx512.c — the F(2x2, 3x3) tile transforms on 16 neighbouring tiles of a tile row at once.
 *
 * Lane l of every vector is tile tx0 + l. Tile tx reads input columns 2tx - pad_left + 0..3, so one input
 * row gives the four patch columns as the even and odd lanes of the 32 floats from the tile's first column
 * and of the 32 from two columns further (one permute each). Columns and rows outside the plane load as
 * zeros through lane masks. The output transform's two columns per tile are interleaved back into 32
 * consecutive outputs. Same operations in the same order as winograd_input_reference and
 * winograd_output_reference, so the results are bit-identical (tests/unit/test_ops_conv.c checks).
 */
#include <immintrin.h>

#include "kernels/winograd.h"

enum { LANES = 16 };

/* lanes l with first + l in [0, limit) */
static __mmask16 inside_mask(int64_t first, int64_t limit)
{
    int64_t lo = first < 0 ? -first : 0, hi = limit - first;
    if (hi > LANES) hi = LANES;
    if (hi <= lo) return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1u) & ~(((uint32_t)1 << lo) - 1u));
}

/* row[first .. first + 15], zero outside [0, width); never touches memory outside the row */
static inline __m512 load_inside(const float *row, int64_t first, int64_t width)
{
    __mmask16 mask = inside_mask(first, width);
    if (!mask) return _mm512_setzero_ps();
    int64_t lead = first < 0 ? -first : 0;
    /* shift so the load starts inside the row, then move the lanes back into place */
    __m512 v = _mm512_maskz_loadu_ps((__mmask16)(mask >> lead), row + first + lead);
    if (!lead) return v;
    __m512i back = _mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                    _mm512_set1_epi32((int)lead));
    return _mm512_maskz_permutexvar_ps(mask, back, v);
}

static inline __m512 even_lanes(__m512 lo, __m512 hi)
{
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
}

static inline __m512 odd_lanes(__m512 lo, __m512 hi)
{
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
}

/* t[0..3] = (d B) for one input row of 16 tiles: d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
static inline void row_pass(const winograd_plane *g, const float *x, int64_t r, int64_t col, __m512 t[4])
{
    if (r < 0 || r >= g->in_h) {
        t[0] = t[1] = t[2] = t[3] = _mm512_setzero_ps();
        return;
    }
    const float *row = x + r * g->in_w;
    __m512 a0 = load_inside(row, col, g->in_w), a1 = load_inside(row, col + LANES, g->in_w);
    __m512 b0 = load_inside(row, col + 2, g->in_w), b1 = load_inside(row, col + 2 + LANES, g->in_w);
    __m512 d0 = even_lanes(a0, a1), d1 = odd_lanes(a0, a1), d2 = even_lanes(b0, b1), d3 = odd_lanes(b0, b1);
    t[0] = _mm512_sub_ps(d0, d2);
    t[1] = _mm512_add_ps(d1, d2);
    t[2] = _mm512_sub_ps(d2, d1);
    t[3] = _mm512_sub_ps(d1, d3);
}

void winograd_input_avx512(const winograd_plane *g, const float *x, int64_t ty0, int64_t ty1, float *v,
                           int64_t stride)
{
    for (int64_t ty = ty0, t = 0; ty < ty1; ty++)
        for (int64_t tx = 0; tx < g->tiles_w; tx += LANES) {
            int64_t count = g->tiles_w - tx < LANES ? g->tiles_w - tx : LANES;
            __mmask16 store = (__mmask16)(((uint32_t)1 << count) - 1u);
            __m512 d[4][4];
            for (int i = 0; i < 4; i++) row_pass(g, x, 2 * ty - g->pad_top + i, 2 * tx - g->pad_left, d[i]);
            for (int j = 0; j < 4; j++) { /* B^T (d B), down the columns */
                __m512 c0 = _mm512_sub_ps(d[0][j], d[2][j]), c1 = _mm512_add_ps(d[1][j], d[2][j]);
                __m512 c2 = _mm512_sub_ps(d[2][j], d[1][j]), c3 = _mm512_sub_ps(d[1][j], d[3][j]);
                _mm512_mask_storeu_ps(v + (0 * 4 + j) * stride + t, store, c0);
                _mm512_mask_storeu_ps(v + (1 * 4 + j) * stride + t, store, c1);
                _mm512_mask_storeu_ps(v + (2 * 4 + j) * stride + t, store, c2);
                _mm512_mask_storeu_ps(v + (3 * 4 + j) * stride + t, store, c3);
            }
            t += count;
        }
}

void winograd_output_avx512(const winograd_plane *g, const float *m, int64_t stride, int64_t ty0, int64_t ty1,
                            float bias, float lo, float hi, float *y)
{
    const __m512i first_half = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second_half = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int64_t ty = ty0, t = 0; ty < ty1; ty++)
        for (int64_t tx = 0; tx < g->tiles_w; tx += LANES) {
            int64_t count = g->tiles_w - tx < LANES ? g->tiles_w - tx : LANES;
            __mmask16 load = (__mmask16)(((uint32_t)1 << count) - 1u);
            __m512 am[2][4];
            for (int j = 0; j < 4; j++) { /* A^T M, down the columns */
                __m512 m0 = _mm512_maskz_loadu_ps(load, m + (0 * 4 + j) * stride + t);
                __m512 m1 = _mm512_maskz_loadu_ps(load, m + (1 * 4 + j) * stride + t);
                __m512 m2 = _mm512_maskz_loadu_ps(load, m + (2 * 4 + j) * stride + t);
                __m512 m3 = _mm512_maskz_loadu_ps(load, m + (3 * 4 + j) * stride + t);
                am[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                am[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int i = 0; i < 2; i++) {
                int64_t r = 2 * ty + i;
                if (r >= g->out_h) break;
                /* (A^T M) A along the row, then bias and clamp (max/min keep a NaN in their second operand) */
                __m512 y0 = _mm512_add_ps(_mm512_add_ps(am[i][0], am[i][1]), am[i][2]);
                __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(am[i][1], am[i][2]), am[i][3]);
                y0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, _mm512_add_ps(y0, vb)));
                y1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, _mm512_add_ps(y1, vb)));
                float *row = y + r * g->out_w + 2 * tx;
                int64_t cols = g->out_w - 2 * tx;
                _mm512_mask_storeu_ps(row, inside_mask(0, cols), _mm512_permutex2var_ps(y0, first_half, y1));
                _mm512_mask_storeu_ps(row + LANES, inside_mask(LANES, cols),
                                      _mm512_permutex2var_ps(y0, second_half, y1));
            }
            t += count;
        }
}
