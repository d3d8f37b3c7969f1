/*
 * fft.h — discrete Fourier transforms of complex sequences of any length, for DFT and STFT.
 *
 * Complex values are interleaved (re, im) pairs of doubles. The fast path is an iterative radix-2 FFT for
 * lengths that are powers of two and Bluestein's chirp-z algorithm for every other length (primes included),
 * which re-expresses a length-n transform as a convolution computed with radix-2 FFTs of length m >= 2n - 1:
 * O(n log n) everywhere, with one code path to test. dft_reference is the O(n^2) definition, kept beside the
 * fast path so the tests can compare the two.
 *
 * A plan holds what depends only on n (twiddle factors, Bluestein's chirp and its transform) in caller-given
 * memory, so an operator computes it once per call and then transforms many rows, from several threads, each
 * with its own work buffer.
 */
#ifndef KILN_KERNELS_FFT_H
#define KILN_KERNELS_FFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fft_plan {
    int64_t n;       /* transform length */
    int64_t m;       /* radix-2 length: n itself, or Bluestein's padded length */
    bool bluestein;
    double *twiddle; /* m / 2 complex: e^(-2 pi i k / m) */
    double *chirp;   /* Bluestein: n complex, e^(-pi i k^2 / n) */
    double *chirp_fft; /* Bluestein: m complex, the transform of the conjugate chirp's circular extension */
} fft_plan;

/* Doubles of table memory a plan of length n needs. */
size_t fft_plan_doubles(int64_t n);
/* Doubles of work memory each concurrent fft_execute call of this length needs (0 for powers of two). */
size_t fft_work_doubles(int64_t n);
/* Fills a plan for length n >= 1 in `tables` (fft_plan_doubles(n) doubles). */
void fft_plan_init(fft_plan *plan, int64_t n, double *tables);
/* In place: X[k] = sum_j x[j] e^(-+2 pi i j k / n), the sign + when inverse. Unnormalised either way. */
void fft_execute(const fft_plan *plan, double *data, bool inverse, double *work);

/* The same transform by its definition, O(n^2), from `in` to `out` (which must not overlap). */
void dft_reference(const double *in, double *out, int64_t n, bool inverse);

#endif
