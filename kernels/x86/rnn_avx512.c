/*
 * rnn_avx512.c — the batch-1 recurrent product of kernels/rnn.c with AVX-512F: y = x * R^T over R^T in
 * blocks of RNN_BLOCK = 64 columns stored k-major (see rnn_prepacked in rnn.h). A block's 64 sums are four
 * registers; even and odd k accumulate separately, so eight FMA chains are in flight while the block streams
 * through contiguously. rnn_matvec_blocked_reference is the plain C version it is tested against.
 */
#include <immintrin.h>

#include "kernels/rnn.h"

enum { VECTORS = RNN_BLOCK / 16 };

void rnn_matvec_blocked_avx512(int64_t K, int64_t n, const float *x, const float *blocks, float *y)
{
    for (int64_t j0 = 0; j0 < n; j0 += RNN_BLOCK) {
        const float *block = blocks + j0 * K;
        __m512 even[VECTORS], odd[VECTORS];
        for (int v = 0; v < VECTORS; v++) even[v] = odd[v] = _mm512_setzero_ps();
        int64_t k = 0;
        for (; k + 2 <= K; k += 2) {
            __m512 x0 = _mm512_set1_ps(x[k]), x1 = _mm512_set1_ps(x[k + 1]);
            const float *row = block + k * RNN_BLOCK;
            for (int v = 0; v < VECTORS; v++) {
                even[v] = _mm512_fmadd_ps(x0, _mm512_load_ps(row + 16 * v), even[v]);
                odd[v] = _mm512_fmadd_ps(x1, _mm512_load_ps(row + RNN_BLOCK + 16 * v), odd[v]);
            }
        }
        if (k < K) {
            __m512 x0 = _mm512_set1_ps(x[k]);
            for (int v = 0; v < VECTORS; v++)
                even[v] = _mm512_fmadd_ps(x0, _mm512_load_ps(block + k * RNN_BLOCK + 16 * v), even[v]);
        }
        for (int v = 0; v < VECTORS; v++) {
            int64_t left = n - j0 - 16 * v;
            if (left <= 0) break;
            __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            _mm512_mask_storeu_ps(y + j0 + 16 * v, mask, _mm512_add_ps(even[v], odd[v]));
        }
    }
}
