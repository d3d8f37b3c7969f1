/*
 * detection.c — NonMaxSuppression: per batch and class, greedily keep the highest-scoring boxes that do not
 * overlap an already kept box by more than iou_threshold.
 *
 * The output's length is the number of boxes kept, so the op is OP_DATA_DEPENDENT_SHAPE: the planner runs
 * shape() and eval() ahead with the inputs' contents. Both call one selection routine, shape() to count (with
 * a temporary buffer, since the count decides everything else) and eval() to write (with scratch). The order
 * is the spec's and onnxruntime's: batches, then classes, then boxes in decreasing score with ties broken by
 * the lower box index; a box is a candidate only when its score is strictly above score_threshold, and is
 * suppressed only when its IoU with a kept box is strictly above iou_threshold. Boxes with no area overlap
 * nothing, and a NaN score is never a candidate. Coordinates are read as corners in either order (flipped boxes are allowed) or as centres and sizes.
 */
#include <stdlib.h>

#include "core/mem.h"
#include "ops/op.h"

typedef struct nms_params {
    bool center_point_box;
} nms_params;

static kiln_status nms_init(op_init_ctx *ctx)
{
    nms_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 5, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    if (op_has_input(ctx, 2)) KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    for (int i = 3; i < 5; i++)
        if (op_has_input(ctx, i)) KILN_TRY(op_require_dtype(ctx, i, DTYPES_FLOAT));
    int64_t center;
    KILN_TRY(attr_int(ctx->node, "center_point_box", 0, &center));
    if (center != 0 && center != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "center_point_box is %lld, expected 0 or 1", (long long)center);
    p->center_point_box = center == 1;
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

/* One run's settings, read from the optional scalar inputs. */
typedef struct nms_limits {
    int64_t max_per_class;
    double iou_threshold, score_threshold;
    bool has_score_threshold;
} nms_limits;

static const kiln_tensor *optional_input(const op_ctx *ctx, int i) { return i < ctx->n_inputs ? ctx->inputs[i] : NULL; }

static kiln_status nms_read_limits(const op_ctx *ctx, nms_limits *limits)
{
    const kiln_tensor *max_boxes = optional_input(ctx, 2), *iou = optional_input(ctx, 3),
                      *score = optional_input(ctx, 4);
    *limits = (nms_limits){0};
    if (max_boxes) {
        KILN_TRY(op_require_one_value(max_boxes, "max_output_boxes_per_class"));
        int64_t m = tensor_get_int(max_boxes, 0);
        limits->max_per_class = m > 0 ? m : 0;
    }
    if (iou) {
        KILN_TRY(op_require_one_value(iou, "iou_threshold"));
        limits->iou_threshold = tensor_get_double(iou, 0);
        if (!(limits->iou_threshold >= 0 && limits->iou_threshold <= 1))
            return kiln_fail(KILN_ERR_RUNTIME, "iou_threshold %g is outside [0, 1]", limits->iou_threshold);
    }
    if (score) {
        KILN_TRY(op_require_one_value(score, "score_threshold"));
        limits->score_threshold = tensor_get_double(score, 0);
        limits->has_score_threshold = true;
    }
    return KILN_OK;
}

/* boxes is (batches, spatial, 4), scores is (batches, classes, spatial). */
static kiln_status nms_check_shapes(const op_ctx *ctx)
{
    const kiln_tensor *boxes = ctx->inputs[0], *scores = ctx->inputs[1];
    if (boxes->rank != 3 || boxes->dims[2] != 4)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "boxes must have shape [batches, boxes, 4]");
    if (scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scores must have shape [batches, classes, boxes] matching boxes");
    return KILN_OK;
}

/* Working memory for one (batch, class): every box as corners, the candidates in score order, the kept ones. */
typedef struct nms_candidate {
    double score;
    int64_t box;
} nms_candidate;

typedef struct nms_work {
    double *corners; /* (spatial, 4): y_min, x_min, y_max, x_max */
    nms_candidate *candidates;
    int64_t *kept;
} nms_work;

static size_t nms_work_bytes(int64_t spatial)
{
    return (size_t)spatial * (4 * sizeof(double) + sizeof(nms_candidate) + sizeof(int64_t));
}

static nms_work nms_work_at(void *memory, int64_t spatial)
{
    nms_work w;
    w.corners = memory;
    w.candidates = (nms_candidate *)(w.corners + 4 * spatial);
    w.kept = (int64_t *)(w.candidates + spatial);
    return w;
}

/* The boxes of one batch as ordered corners. */
static void nms_load_corners(const kiln_tensor *boxes, int64_t batch, bool center_point_box, double *corners)
{
    int64_t spatial = boxes->dims[1], base = batch * spatial * 4;
    for (int64_t i = 0; i < spatial; i++) {
        double v[4];
        for (int k = 0; k < 4; k++) v[k] = tensor_get_double(boxes, base + i * 4 + k);
        double *c = corners + i * 4;
        if (center_point_box) { /* x_center, y_center, width, height */
            c[0] = v[1] - v[3] / 2, c[1] = v[0] - v[2] / 2, c[2] = v[1] + v[3] / 2, c[3] = v[0] + v[2] / 2;
        } else { /* y1, x1, y2, x2 in either order */
            c[0] = v[0] < v[2] ? v[0] : v[2], c[2] = v[0] < v[2] ? v[2] : v[0];
            c[1] = v[1] < v[3] ? v[1] : v[3], c[3] = v[1] < v[3] ? v[3] : v[1];
        }
    }
}

static bool nms_overlaps(const double *a, const double *b, double iou_threshold)
{
    double h = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
    double w = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
    if (!(h > 0 && w > 0)) return false;
    double area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
    double intersection = h * w, union_area = area_a + area_b - intersection;
    if (!(area_a > 0 && area_b > 0 && union_area > 0)) return false;
    return intersection / union_area > iou_threshold;
}

/* Higher score first; equal scores keep box order. */
static int nms_compare(const void *pa, const void *pb)
{
    const nms_candidate *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->box > b->box) - (a->box < b->box);
}

/* Keeps boxes of one (batch, class) into w->kept in selection order; returns how many. */
static int64_t nms_select_class(const kiln_tensor *scores, int64_t batch, int64_t cls, const nms_limits *limits,
                                const nms_work *w)
{
    int64_t spatial = scores->dims[2], base = (batch * scores->dims[1] + cls) * spatial, n_candidates = 0;
    for (int64_t i = 0; i < spatial; i++) {
        double s = tensor_get_double(scores, base + i);
        if (s == s && (!limits->has_score_threshold || s > limits->score_threshold))
            w->candidates[n_candidates++] = (nms_candidate){s, i};
    }
    qsort(w->candidates, (size_t)n_candidates, sizeof *w->candidates, nms_compare);
    int64_t n_kept = 0;
    for (int64_t c = 0; c < n_candidates && n_kept < limits->max_per_class; c++) {
        const double *box = w->corners + w->candidates[c].box * 4;
        bool suppressed = false;
        for (int64_t k = 0; k < n_kept && !suppressed; k++)
            suppressed = nms_overlaps(w->corners + w->kept[k] * 4, box, limits->iou_threshold);
        if (!suppressed) w->kept[n_kept++] = w->candidates[c].box;
    }
    return n_kept;
}

/* Runs the selection over every batch and class; writes (batch, class, box) rows to `out` (room for `capacity`
 * rows) unless it is NULL. Returns the number of rows selected. */
static int64_t nms_select(const op_ctx *ctx, const nms_limits *limits, void *memory, int64_t *out, int64_t capacity)
{
    const nms_params *p = ctx->params;
    const kiln_tensor *boxes = ctx->inputs[0], *scores = ctx->inputs[1];
    nms_work w = nms_work_at(memory, boxes->dims[1]);
    int64_t rows = 0;
    for (int64_t b = 0; b < boxes->dims[0]; b++) {
        nms_load_corners(boxes, b, p->center_point_box, w.corners);
        for (int64_t c = 0; c < scores->dims[1]; c++) {
            int64_t kept = nms_select_class(scores, b, c, limits, &w);
            for (int64_t k = 0; out && k < kept && rows + k < capacity; k++) {
                out[(rows + k) * 3 + 0] = b;
                out[(rows + k) * 3 + 1] = c;
                out[(rows + k) * 3 + 2] = w.kept[k];
            }
            rows += kept;
        }
    }
    return rows;
}

static kiln_status nms_shape(op_ctx *ctx)
{
    KILN_TRY(nms_check_shapes(ctx));
    nms_limits limits;
    KILN_TRY(nms_read_limits(ctx, &limits));
    size_t bytes = nms_work_bytes(ctx->inputs[0]->dims[1]);
    void *memory = mem_alloc(bytes ? bytes : 1);
    if (!memory) return KILN_ERR_OUT_OF_MEMORY;
    int64_t dims[2] = {nms_select(ctx, &limits, memory, NULL, 0), 3};
    mem_free(memory);
    op_set_output_shape(ctx, 0, 2, dims);
    ctx->scratch_bytes = bytes;
    return KILN_OK;
}

static kiln_status nms_eval(op_ctx *ctx)
{
    nms_limits limits;
    KILN_TRY(nms_read_limits(ctx, &limits));
    nms_select(ctx, &limits, ctx->scratch, ctx->outputs[0]->data, ctx->outputs[0]->dims[0]);
    return KILN_OK;
}

const op_def ops_detection[] = {
    {"", "NonMaxSuppression", 10, 18, sizeof(nms_params), nms_init, nms_shape, nms_eval, OP_DATA_DEPENDENT_SHAPE},
    OP_TABLE_END,
};
