/*
 * gemm_pack.h — the packing loops, included by each kernel file so that they are compiled for that file's
 * instruction set with the panel size (MR or NR) as a constant: contiguous runs then become full-width
 * vector moves instead of memcpy calls.
 *
 * gemm_pack_interleaved copies `count` source vectors of length kc, element k of vector i being
 * src[i * stride + k * step], k-major: dst[k * width + i]. Both micro-panels (A with width MR, a vector per
 * row; B with width NR, a vector per column) have this layout. Vectors count..width-1 are zero-filled so
 * that kernels may compute whole tiles.
 */
#ifndef KILN_KERNELS_GEMM_PACK_H
#define KILN_KERNELS_GEMM_PACK_H

#include <stdint.h>

/* Transposing copies go this many k at a time across all the vectors, so that every source line fetched is
 * used for all its elements before it can be evicted. */
enum { GEMM_PACK_K_BLOCK = 16 };

static inline void gemm_pack_interleaved(const float *src, int64_t stride, int64_t step, int count,
                                         const int width, int64_t kc, float *dst)
{
    if (stride == 1) { /* the vectors interleave in memory: each k is one contiguous run */
        for (int64_t k = 0; k < kc; k++, dst += width) {
            const float *s = src + k * step;
            if (count == width) {
                for (int i = 0; i < width; i++) dst[i] = s[i];
            } else {
                for (int i = 0; i < count; i++) dst[i] = s[i];
                for (int i = count; i < width; i++) dst[i] = 0.0f;
            }
        }
        return;
    }
    for (int64_t k0 = 0; k0 < kc; k0 += GEMM_PACK_K_BLOCK) {
        int64_t kn = kc - k0 < GEMM_PACK_K_BLOCK ? kc - k0 : GEMM_PACK_K_BLOCK;
        float *d = dst + k0 * width;
        for (int i = 0; i < count; i++) {
            const float *s = src + i * stride + k0 * step;
            for (int64_t k = 0; k < kn; k++) d[k * width + i] = s[k * step];
        }
        for (int64_t k = 0; k < kn; k++)
            for (int i = count; i < width; i++) d[k * width + i] = 0.0f;
    }
}

#endif
