/*
 * copy.c — the N-d strided copy (see copy.h).
 *
 * A view is first simplified: size-1 dims vanish and neighbouring dims that are contiguous in both source and
 * destination merge, so a Concat is a 2-d copy of long runs and most Slices are a few memcpys. Then one of
 * these loops runs over the remaining "rows" (all dims but the innermost):
 *
 *   runs   the innermost dim is contiguous on both sides: one memcpy per row;
 *   fill   the innermost dim repeats one source element (a broadcast): memcpy of a doubling prefix;
 *   tiles  the destination is contiguous where the source is strided and another dim is contiguous in the
 *          source (a transpose): small square blocks staged through an L1 buffer, so that both sides are read
 *          and written in contiguous bursts;
 *   gather anything else (reversed slices, odd strides): element by element.
 *
 * Rows (or tiles) are split across threads in chunks of about COPY_GRAIN_BYTES.
 */
#include "ops/copy.h"

#include <stdbool.h>
#include <string.h>

#include "core/tensor.h"

#define COPY_GRAIN_BYTES ((int64_t)64 * 1024)
/* Transpose blocks are TILE x TILE elements, staged through a buffer of TILE * TILE * 8 bytes. */
#define TILE 16

typedef struct copy_job {
    copy_view view;      /* simplified; strides in bytes */
    size_t elem_size;
    const char *src;
    char *dst;
    int tile_dim;        /* the dim contiguous in the source for the tiled loop, else -1 */
    int64_t tiles;       /* tiles along tile_dim */
} copy_job;

/* Drops size-1 dims and merges dims contiguous in both views. False when the view has no elements. */
static bool simplify_view(const copy_view *in, copy_view *out)
{
    out->rank = 0;
    for (int d = 0; d < in->rank; d++)
        if (in->dims[d] == 0) return false;
    for (int d = 0; d < in->rank; d++) {
        if (in->dims[d] == 1) continue;
        int r = out->rank;
        if (r > 0 && out->src_strides[r - 1] == in->src_strides[d] * in->dims[d] &&
            out->dst_strides[r - 1] == in->dst_strides[d] * in->dims[d]) {
            out->dims[r - 1] *= in->dims[d];
        } else {
            out->dims[r] = in->dims[d];
            out->rank++;
        }
        out->src_strides[out->rank - 1] = in->src_strides[d];
        out->dst_strides[out->rank - 1] = in->dst_strides[d];
    }
    return true;
}

/* Copies n elements with the given byte strides; fixed sizes let the compiler turn each memcpy into a move. */
static void copy_elements(char *dst, int64_t dst_stride, const char *src, int64_t src_stride, int64_t n,
                          size_t elem_size)
{
#define COPY_ELEMENTS(SIZE)                                                                                 \
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * dst_stride, src + i * src_stride, SIZE);               \
    return;
    switch (elem_size) {
    case 1: COPY_ELEMENTS(1)
    case 2: COPY_ELEMENTS(2)
    case 4: COPY_ELEMENTS(4)
    case 8: COPY_ELEMENTS(8)
    default: COPY_ELEMENTS(elem_size)
    }
#undef COPY_ELEMENTS
}

/* A TILE x TILE (at most) transpose block through an L1 buffer: the source is read one contiguous run per
 * column (src_row == elem_size), the destination written one contiguous run per row (dst_col == elem_size).
 * Every cache line is touched in one burst, so power-of-two strides on either side cause no conflict misses. */
static void transpose_block(char *dst, int64_t dst_row, const char *src, int64_t src_col, int64_t rows,
                            int64_t cols, size_t elem_size, unsigned char *buffer)
{
#define TRANSPOSE_BLOCK(SIZE)                                                                               \
    for (int64_t c = 0; c < cols; c++)                                                                      \
        memcpy(buffer + c * TILE * SIZE, src + c * src_col, (size_t)rows * SIZE);                           \
    for (int64_t r = 0; r < rows; r++)                                                                      \
        for (int64_t c = 0; c < cols; c++) memcpy(dst + r * dst_row + c * SIZE, buffer + (c * TILE + r) * SIZE, SIZE); \
    return;
    switch (elem_size) {
    case 1: TRANSPOSE_BLOCK(1)
    case 2: TRANSPOSE_BLOCK(2)
    case 4: TRANSPOSE_BLOCK(4)
    case 8: TRANSPOSE_BLOCK(8)
    default: TRANSPOSE_BLOCK(elem_size)
    }
#undef TRANSPOSE_BLOCK
}

/* Fills `total` bytes with copies of the elem_size-byte element at `value`: one element, then the filled
 * prefix doubles with memcpy until the range is full. */
static void fill_bytes(char *dst, size_t total, const void *value, size_t elem_size)
{
    size_t done = elem_size;
    memcpy(dst, value, elem_size);
    while (done < total) {
        size_t chunk = done < total - done ? done : total - done;
        memcpy(dst + done, dst, chunk);
        done += chunk;
    }
}

/* Byte offsets of row `row` over dims [0, rank) (every dim but the innermost), and its index. */
static void row_position(const copy_view *v, int rank, int64_t row, int64_t *index, int64_t *src_off,
                         int64_t *dst_off)
{
    *src_off = *dst_off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        index[d] = row % v->dims[d];
        row /= v->dims[d];
        *src_off += index[d] * v->src_strides[d];
        *dst_off += index[d] * v->dst_strides[d];
    }
}

/* Rows [begin, end): the index advances like an odometer instead of being divided out for each row. */
static void copy_rows(void *arg, int64_t begin, int64_t end)
{
    const copy_job *job = arg;
    const copy_view *v = &job->view;
    int last = v->rank - 1;
    int64_t n = v->dims[last], ss = v->src_strides[last], ds = v->dst_strides[last];
    int64_t elem = (int64_t)job->elem_size;
    int64_t index[COPY_MAX_RANK], src_off, dst_off;
    row_position(v, last, begin, index, &src_off, &dst_off);
    for (int64_t row = begin; row < end; row++) {
        if (ss == elem && ds == elem) memcpy(job->dst + dst_off, job->src + src_off, (size_t)(n * elem));
        else if (ss == 0 && ds == elem)
            fill_bytes(job->dst + dst_off, (size_t)(n * elem), job->src + src_off, job->elem_size);
        else copy_elements(job->dst + dst_off, ds, job->src + src_off, ss, n, job->elem_size);
        for (int d = last - 1; d >= 0; d--) {
            src_off += v->src_strides[d];
            dst_off += v->dst_strides[d];
            if (++index[d] < v->dims[d]) break;
            src_off -= index[d] * v->src_strides[d];
            dst_off -= index[d] * v->dst_strides[d];
            index[d] = 0;
        }
    }
}

/* Bands [begin, end) of a transpose-like copy: each item is TILE indices of tile_dim (contiguous in the
 * source) for one position of the other outer dims, copied in TILE x TILE blocks against the innermost dim
 * (contiguous in the destination). */
static void copy_tiles(void *arg, int64_t begin, int64_t end)
{
    const copy_job *job = arg;
    const copy_view *v = &job->view;
    int last = v->rank - 1, k = job->tile_dim;
    int64_t n_last = v->dims[last], n_k = v->dims[k];
    unsigned char buffer[TILE * TILE * 8];
    for (int64_t item = begin; item < end; item++) {
        int64_t band = item % job->tiles, outer = item / job->tiles;
        int64_t src_off = 0, dst_off = 0;
        for (int d = last - 1; d >= 0; d--) {
            if (d == k) continue;
            int64_t i = outer % v->dims[d];
            outer /= v->dims[d];
            src_off += i * v->src_strides[d];
            dst_off += i * v->dst_strides[d];
        }
        int64_t k0 = band * TILE, rows = n_k - k0 < TILE ? n_k - k0 : TILE;
        src_off += k0 * v->src_strides[k];
        dst_off += k0 * v->dst_strides[k];
        for (int64_t j0 = 0; j0 < n_last; j0 += TILE) {
            int64_t cols = n_last - j0 < TILE ? n_last - j0 : TILE;
            transpose_block(job->dst + dst_off + j0 * v->dst_strides[last], v->dst_strides[k],
                            job->src + src_off + j0 * v->src_strides[last], v->src_strides[last], rows, cols,
                            job->elem_size, buffer);
        }
    }
}

/* The dim to tile against the innermost one, or -1: the innermost dim must be contiguous in the destination
 * and strided in the source, and some other dim contiguous in the source. */
static int find_tile_dim(const copy_view *v, int64_t elem_size)
{
    int last = v->rank - 1;
    if (v->rank < 2 || v->dst_strides[last] != elem_size || v->src_strides[last] == elem_size ||
        v->src_strides[last] == 0 || v->dims[last] < TILE / 4 || elem_size > 8)
        return -1;
    for (int d = last - 1; d >= 0; d--)
        if (v->src_strides[d] == elem_size && v->dims[d] >= TILE / 4) return d;
    return -1;
}

void copy_strided(const copy_view *view, size_t elem_size, const void *src, void *dst,
                  const parallel_runner *parallel)
{
    copy_job job = {.elem_size = elem_size, .src = src, .dst = dst, .tile_dim = -1};
    if (!simplify_view(view, &job.view)) return;
    copy_view *v = &job.view;
    if (v->rank == 0) {
        memcpy(dst, src, elem_size);
        return;
    }
    for (int d = 0; d < v->rank; d++) {
        v->src_strides[d] *= (int64_t)elem_size;
        v->dst_strides[d] *= (int64_t)elem_size;
    }
    int64_t row_bytes = v->dims[v->rank - 1] * (int64_t)elem_size;
    job.tile_dim = find_tile_dim(v, (int64_t)elem_size);
    if (job.tile_dim >= 0) {
        job.tiles = (v->dims[job.tile_dim] + TILE - 1) / TILE;
        int64_t plane = v->dims[job.tile_dim] * v->dims[v->rank - 1];
        int64_t items = job.tiles * (shape_numel(v->rank, v->dims) / plane);
        int64_t grain = COPY_GRAIN_BYTES / (TILE * row_bytes) + 1;
        parallel_for(parallel, items, grain, copy_tiles, &job);
        return;
    }
    int64_t rows = shape_numel(v->rank, v->dims) / v->dims[v->rank - 1];
    parallel_for(parallel, rows, COPY_GRAIN_BYTES / row_bytes + 1, copy_rows, &job);
}

void copy_strided_reference(const copy_view *view, size_t elem_size, const void *src, void *dst)
{
    int64_t numel = 1, index[COPY_MAX_RANK] = {0};
    for (int d = 0; d < view->rank; d++) numel *= view->dims[d];
    for (int64_t i = 0; i < numel; i++) {
        int64_t src_off = 0, dst_off = 0, rest = i;
        for (int d = view->rank - 1; d >= 0; d--) {
            index[d] = rest % view->dims[d];
            rest /= view->dims[d];
            src_off += index[d] * view->src_strides[d];
            dst_off += index[d] * view->dst_strides[d];
        }
        memcpy((char *)dst + dst_off * (int64_t)elem_size, (const char *)src + src_off * (int64_t)elem_size,
               elem_size);
    }
}

typedef struct fill_job {
    char *dst;
    size_t elem_size;
    const void *value;
} fill_job;

static void fill_range(void *arg, int64_t begin, int64_t end)
{
    const fill_job *job = arg;
    fill_bytes(job->dst + begin * (int64_t)job->elem_size, (size_t)(end - begin) * job->elem_size, job->value,
               job->elem_size);
}

void copy_fill(void *dst, int64_t n, size_t elem_size, const void *value, const parallel_runner *parallel)
{
    if (n <= 0) return;
    const unsigned char *bytes = value;
    bool uniform = true;
    for (size_t i = 1; i < elem_size; i++) uniform = uniform && bytes[i] == bytes[0];
    if (uniform) {
        memset(dst, bytes[0], (size_t)n * elem_size);
        return;
    }
    fill_job job = {dst, elem_size, value};
    parallel_for(parallel, n, COPY_GRAIN_BYTES / (int64_t)elem_size, fill_range, &job);
}
