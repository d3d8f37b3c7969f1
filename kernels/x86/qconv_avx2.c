/*
 * qconv_avx2.c — the integer convolution's product block (see kernels/qconv.h) with AVX2.
 *
 * vpmaddwd multiplies sixteen int16 pairs and adds each pair into an int32: with the pair being two
 * consecutive unfolded rows (r, r+1) at one output position and the two weights (w[r], w[r+1]) broadcast,
 * one instruction does sixteen multiply-adds. Interleaving the two rows with unpacklo/unpackhi works inside
 * 128-bit lanes, so the accumulators hold positions {0-3, 8-11} and {4-7, 12-15}; they are put back in order
 * once, when stored. A pair sum is at most 2 * 255 * 255, and the accumulators wrap like the portable
 * block's uint32 sums, so both give the same bits. An odd last row pairs with zeros; positions beyond the
 * last multiple of sixteen run through the portable qconv_block.
 */
#include <immintrin.h>

#include "kernels/qconv.h"

/* The weights of rows r and r + 1 of channel j as one 32-bit lane value (low half first). */
static __m256i weight_pair(const int16_t *w, int64_t rows, int64_t j, int64_t r)
{
    uint32_t lo = (uint16_t)w[j * rows + r], hi = r + 1 < rows ? (uint16_t)w[j * rows + r + 1] : 0;
    return _mm256_set1_epi32((int32_t)(lo | hi << 16));
}

/* Sixteen positions of every channel of the block, summed over all rows. */
static void block16(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows, int32_t *y,
                    int64_t ldy)
{
    __m256i acc_lo[QCONV_BLOCK_ROWS], acc_hi[QCONV_BLOCK_ROWS];
    for (int64_t j = 0; j < mb; j++) acc_lo[j] = acc_hi[j] = _mm256_setzero_si256();
    for (int64_t r = 0; r < rows; r += 2) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(col + r * ldc));
        __m256i b = r + 1 < rows ? _mm256_loadu_si256((const __m256i *)(col + (r + 1) * ldc)) : _mm256_setzero_si256();
        __m256i pairs_lo = _mm256_unpacklo_epi16(a, b), pairs_hi = _mm256_unpackhi_epi16(a, b);
        for (int64_t j = 0; j < mb; j++) {
            __m256i wp = weight_pair(w, rows, j, r);
            acc_lo[j] = _mm256_add_epi32(acc_lo[j], _mm256_madd_epi16(pairs_lo, wp));
            acc_hi[j] = _mm256_add_epi32(acc_hi[j], _mm256_madd_epi16(pairs_hi, wp));
        }
    }
    for (int64_t j = 0; j < mb; j++) {
        _mm256_storeu_si256((__m256i *)(y + j * ldy), _mm256_permute2x128_si256(acc_lo[j], acc_hi[j], 0x20));
        _mm256_storeu_si256((__m256i *)(y + j * ldy + 8), _mm256_permute2x128_si256(acc_lo[j], acc_hi[j], 0x31));
    }
}

void qconv_block_avx2(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows, int64_t n,
                      int32_t *y, int64_t ldy)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) block16(w, mb, col + i, ldc, rows, y + i, ldy);
    if (i < n) qconv_block(w, mb, col + i, ldc, rows, n - i, y + i, ldy);
}
