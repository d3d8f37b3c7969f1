/*
 * fft.c — radix-2 FFT, Bluestein's algorithm for other lengths, and the O(n^2) reference (see fft.h).
 *
 * Twiddle factors and the chirp are each computed directly with cos/sin (the chirp's angle reduced modulo 2n
 * in integers first) rather than by repeated multiplication, so rounding does not accumulate with n.
 */
#include <math.h>

#include "kernels/fft.h"

#define PI 3.14159265358979323846

static bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

static int64_t bluestein_length(int64_t n)
{
    int64_t m = 1;
    while (m < 2 * n - 1) m *= 2;
    return m;
}

size_t fft_plan_doubles(int64_t n)
{
    if (is_power_of_two(n)) return (size_t)n;
    size_t m = (size_t)bluestein_length(n);
    return m + 2 * (size_t)n + 2 * m;
}

size_t fft_work_doubles(int64_t n) { return is_power_of_two(n) ? 0 : 2 * (size_t)bluestein_length(n); }

/* Swaps elements into bit-reversed index order, the order the in-place butterflies consume. */
static void bit_reverse(double *a, int64_t m)
{
    for (int64_t i = 1, j = 0; i < m; i++) {
        int64_t bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double re = a[2 * i], im = a[2 * i + 1];
            a[2 * i] = a[2 * j], a[2 * i + 1] = a[2 * j + 1];
            a[2 * j] = re, a[2 * j + 1] = im;
        }
    }
}

/* Forward radix-2 transform of length plan->m (a power of two), in place. */
static void radix2_forward(const fft_plan *plan, double *a)
{
    int64_t m = plan->m;
    bit_reverse(a, m);
    for (int64_t half = 1; half < m; half *= 2) {
        int64_t stride = m / (2 * half); /* twiddle index step at this stage */
        for (int64_t start = 0; start < m; start += 2 * half)
            for (int64_t k = 0; k < half; k++) {
                double wr = plan->twiddle[2 * k * stride], wi = plan->twiddle[2 * k * stride + 1];
                double *u = a + 2 * (start + k), *v = a + 2 * (start + k + half);
                double tr = v[0] * wr - v[1] * wi, ti = v[0] * wi + v[1] * wr;
                v[0] = u[0] - tr, v[1] = u[1] - ti;
                u[0] += tr, u[1] += ti;
            }
    }
}

static void conjugate(double *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++) a[2 * i + 1] = -a[2 * i + 1];
}

void fft_plan_init(fft_plan *plan, int64_t n, double *tables)
{
    plan->n = n;
    plan->bluestein = !is_power_of_two(n);
    plan->m = plan->bluestein ? bluestein_length(n) : n;
    plan->twiddle = tables;
    for (int64_t k = 0; k < plan->m / 2; k++) {
        double angle = -2.0 * PI * (double)k / (double)plan->m;
        plan->twiddle[2 * k] = cos(angle), plan->twiddle[2 * k + 1] = sin(angle);
    }
    plan->chirp = plan->chirp_fft = NULL;
    if (!plan->bluestein) return;
    int64_t m = plan->m;
    plan->chirp = tables + m;
    plan->chirp_fft = plan->chirp + 2 * n;
    for (int64_t k = 0; k < n; k++) {
        int64_t k2 = (int64_t)(((uint64_t)k * (uint64_t)k) % (uint64_t)(2 * n));
        double angle = -PI * (double)k2 / (double)n;
        plan->chirp[2 * k] = cos(angle), plan->chirp[2 * k + 1] = sin(angle);
    }
    /* b[k] = conj(chirp[|k|]) for the circular indices -n < k < n, zero elsewhere */
    double *b = plan->chirp_fft;
    for (int64_t i = 0; i < 2 * m; i++) b[i] = 0.0;
    for (int64_t k = 0; k < n; k++) {
        b[2 * k] = plan->chirp[2 * k], b[2 * k + 1] = -plan->chirp[2 * k + 1];
        if (k > 0) b[2 * (m - k)] = b[2 * k], b[2 * (m - k) + 1] = b[2 * k + 1];
    }
    radix2_forward(plan, b);
}

/* X[k] = chirp[k] * sum_j (x[j] chirp[j]) conj(chirp[k - j]): a circular convolution of length m done as
 * transform, pointwise product, inverse transform (the inverse as conjugate-forward-conjugate). */
static void bluestein_forward(const fft_plan *plan, double *data, double *a)
{
    int64_t n = plan->n, m = plan->m;
    const double *c = plan->chirp, *bf = plan->chirp_fft;
    for (int64_t k = 0; k < n; k++) {
        a[2 * k] = data[2 * k] * c[2 * k] - data[2 * k + 1] * c[2 * k + 1];
        a[2 * k + 1] = data[2 * k] * c[2 * k + 1] + data[2 * k + 1] * c[2 * k];
    }
    for (int64_t i = 2 * n; i < 2 * m; i++) a[i] = 0.0;
    radix2_forward(plan, a);
    for (int64_t k = 0; k < m; k++) {
        double re = a[2 * k] * bf[2 * k] - a[2 * k + 1] * bf[2 * k + 1];
        double im = a[2 * k] * bf[2 * k + 1] + a[2 * k + 1] * bf[2 * k];
        a[2 * k] = re, a[2 * k + 1] = -im;
    }
    radix2_forward(plan, a);
    double scale = 1.0 / (double)m;
    for (int64_t k = 0; k < n; k++) {
        double re = a[2 * k] * scale, im = -a[2 * k + 1] * scale;
        data[2 * k] = re * c[2 * k] - im * c[2 * k + 1];
        data[2 * k + 1] = re * c[2 * k + 1] + im * c[2 * k];
    }
}

void fft_execute(const fft_plan *plan, double *data, bool inverse, double *work)
{
    /* the inverse transform is the forward one between two conjugations */
    if (inverse) conjugate(data, plan->n);
    if (plan->bluestein) bluestein_forward(plan, data, work);
    else radix2_forward(plan, data);
    if (inverse) conjugate(data, plan->n);
}

void dft_reference(const double *in, double *out, int64_t n, bool inverse)
{
    double sign = inverse ? 1.0 : -1.0;
    for (int64_t k = 0; k < n; k++) {
        double re = 0, im = 0;
        for (int64_t j = 0; j < n; j++) {
            double angle = sign * 2.0 * PI * (double)((j * k) % n) / (double)n;
            double c = cos(angle), s = sin(angle);
            re += in[2 * j] * c - in[2 * j + 1] * s;
            im += in[2 * j] * s + in[2 * j + 1] * c;
        }
        out[2 * k] = re, out[2 * k + 1] = im;
    }
}
