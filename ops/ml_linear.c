/*
 * ml_linear.c — the ONNX-ML linear models and support vector machines: LinearClassifier, LinearRegressor,
 * SVMClassifier, SVMRegressor.
 *
 * Inputs of any numeric type are read as float32 first, as onnxruntime does; each row's dot products, kernel
 * values and pairwise sums are then accumulated in double and rounded once, so kiln stays as close to the
 * training library (sklearn, libsvm: double throughout) as float32 outputs allow. What the outputs mean
 * follows onnxruntime: labels from the raw scores (SVMs with support vectors: by one-vs-one votes, libsvm's
 * rule), post_transform through ml_common's float32 formulas, the second column of one-score binary models
 * by onnxruntime's rules, SVM probabilities by Platt scaling and libsvm's pairwise coupling. Named classes
 * (classlabels_strings) are picked by index and named at the end (ml_name_labels).
 */
#include <math.h>
#include <string.h>

#include "ops/ml_common.h"

static const kiln_dtype ML_NUMBERS[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT32, KILN_INT64, KILN_UNDEFINED};

/* The input as float32 rows: its own data, or scratch holding a converted copy. */
static const float *float_rows(const kiln_tensor *x, void *scratch)
{
    if (x->dtype == KILN_FLOAT32) return x->data;
    ml_to_float(x, scratch);
    return scratch;
}

static size_t float_rows_bytes(const kiln_tensor *x)
{
    return x->dtype == KILN_FLOAT32 ? 0 : mem_align_up((size_t)tensor_numel(x) * sizeof(float), KILN_ALIGNMENT);
}

static int64_t max_index(const float *s, int64_t n)
{
    int64_t best = 0;
    for (int64_t k = 1; k < n; k++)
        if (s[k] > s[best]) best = k;
    return best;
}

/* ---- LinearClassifier and LinearRegressor ---------------------------------------------------------- */

typedef struct linear_params {
    const float *coefficients, *intercepts;
    int n_coefficients, n_intercepts;
    int32_t n_scores; /* classes (one row of coefficients each), or targets */
    ml_labels labels;
    ml_transform transform;
    bool classifier;
} linear_params;

static kiln_status linear_classifier_init(op_init_ctx *ctx)
{
    linear_params *p = ctx->params;
    const graph_node *node = ctx->node;
    KILN_TRY(op_require_arity(ctx, 1, 1, 2, 2));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(ml_floats(node, "coefficients", &p->coefficients, &p->n_coefficients));
    KILN_TRY(ml_floats(node, "intercepts", &p->intercepts, &p->n_intercepts));
    KILN_TRY(ml_read_labels(ctx, "classlabels_ints", &p->labels));
    KILN_TRY(ml_read_transform(node, &p->transform));
    p->classifier = true;
    p->n_scores = p->n_intercepts;
    if (p->n_scores < 1) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'intercepts' is required (one per class)");
    if (p->n_scores == 1 && p->labels.count != 2)
        return kiln_fail(KILN_ERR_MALFORMED, "one row of coefficients needs exactly 2 class labels, there are %d",
                         p->labels.count);
    if (p->n_scores > 1)
        KILN_TRY(ml_require_same_length("intercepts", p->n_scores, "the class labels", p->labels.count));
    ctx->output_dtypes[1] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status linear_regressor_init(op_init_ctx *ctx)
{
    linear_params *p = ctx->params;
    int64_t targets;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(ml_floats(ctx->node, "coefficients", &p->coefficients, &p->n_coefficients));
    KILN_TRY(ml_floats(ctx->node, "intercepts", &p->intercepts, &p->n_intercepts));
    KILN_TRY(attr_int(ctx->node, "targets", 1, &targets));
    KILN_TRY(ml_read_transform(ctx->node, &p->transform));
    if (targets < 1 || targets > p->n_coefficients)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'targets' is %lld, with %d coefficients", (long long)targets,
                         p->n_coefficients);
    p->n_scores = (int32_t)targets;
    if (p->n_intercepts) KILN_TRY(ml_require_same_length("intercepts", p->n_intercepts, "targets", targets));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status linear_shape(op_ctx *ctx)
{
    const linear_params *p = ctx->params;
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(ctx->inputs[0], &rows, &cols));
    if (cols * p->n_scores != p->n_coefficients)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "the input has %lld features, the model has %d coefficients for %d %s", (long long)cols,
                         p->n_coefficients, p->n_scores, p->classifier ? "classes" : "targets");
    int64_t columns = p->classifier && p->n_scores == 1 ? 2 : p->n_scores;
    if (p->classifier) {
        op_set_output_shape(ctx, 0, 1, (int64_t[]){rows});
        op_set_output_shape(ctx, 1, 2, (int64_t[]){rows, columns});
    } else {
        op_set_output_shape(ctx, 0, 2, (int64_t[]){rows, columns});
    }
    size_t labels = p->classifier ? ml_label_scratch_bytes(&p->labels, rows) : 0;
    ctx->scratch_bytes = float_rows_bytes(ctx->inputs[0]) + labels;
    return KILN_OK;
}

/* scores[k] = row . coefficients[k] + intercepts[k], in double, rounded once. */
static void linear_scores(const linear_params *p, const float *row, int64_t cols, float *scores)
{
    for (int32_t k = 0; k < p->n_scores; k++) {
        const float *w = p->coefficients + k * cols;
        double s = p->n_intercepts ? p->intercepts[k] : 0.0;
        for (int64_t f = 0; f < cols; f++) s += (double)row[f] * w[f];
        scores[k] = (float)s;
    }
}

typedef struct linear_job {
    const linear_params *p;
    const float *x;
    int64_t rows, cols;
    int64_t *labels;
    float *y;
} linear_job;

static void linear_regressor_rows(void *arg, int64_t begin, int64_t end)
{
    const linear_job *job = arg;
    const linear_params *p = job->p;
    for (int64_t r = begin; r < end; r++) {
        float *y = job->y + r * p->n_scores;
        linear_scores(p, job->x + r * job->cols, job->cols, y);
        if (p->n_scores > 1) ml_transform_scores(p->transform, y, p->n_scores);
        else if (p->transform == ML_TRANSFORM_PROBIT) y[0] = ml_probit(y[0]); /* one target: only PROBIT applies */
    }
}

/* With one row of coefficients the label is labels[score > 0] and the probabilities are [1 - s, s] (LOGISTIC:
 * of the logistic). PROBIT is onnxruntime's odd case: the N probits fill the first N values of the [N, 2]
 * output and the rest stay 0 (row r writes values r and N + r, so rows still never share a value). */
static void linear_classifier_rows(void *arg, int64_t begin, int64_t end)
{
    const linear_job *job = arg;
    const linear_params *p = job->p;
    for (int64_t r = begin; r < end; r++) {
        const float *row = job->x + r * job->cols;
        if (p->n_scores == 1) {
            float s;
            linear_scores(p, row, job->cols, &s);
            job->labels[r] = p->labels.ints[s > 0];
            if (p->transform == ML_TRANSFORM_PROBIT) job->y[r] = ml_probit(s), job->y[job->rows + r] = 0.0f;
            else ml_binary_scores(p->transform, ML_COMPLEMENT, s, job->y + 2 * r);
            continue;
        }
        float *z = job->y + r * p->n_scores;
        linear_scores(p, row, job->cols, z);
        job->labels[r] = p->labels.ints[max_index(z, p->n_scores)];
        ml_transform_scores(p->transform, z, p->n_scores);
    }
}

static kiln_status linear_eval(op_ctx *ctx)
{
    const linear_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    linear_job job = {.p = p, .x = float_rows(x, ctx->scratch)};
    KILN_TRY(ml_rows_cols(x, &job.rows, &job.cols));
    job.labels = p->classifier ? ml_label_slots(ctx, &p->labels, (char *)ctx->scratch + float_rows_bytes(x)) : NULL;
    job.y = ctx->outputs[p->classifier ? 1 : 0]->data;
    int64_t grain = 1 + 16384 / (job.cols * p->n_scores + 1);
    parallel_for(ctx->parallel, job.rows, grain, p->classifier ? linear_classifier_rows : linear_regressor_rows, &job);
    return p->classifier ? ml_name_labels(ctx, &p->labels, job.labels, job.rows) : KILN_OK;
}

/* ---- SVMClassifier and SVMRegressor ---------------------------------------------------------------- */

enum svm_kernel { SVM_LINEAR, SVM_POLY, SVM_RBF, SVM_SIGMOID };

typedef struct svm_params {
    int kernel; /* enum svm_kernel */
    double gamma, coef0, degree;
    bool svc;             /* support vectors and dual coefficients; else one linear model per class */
    const float *vectors; /* n_vectors x n_features */
    int32_t n_vectors, n_features;
    const float *coefficients, *rho, *prob_a, *prob_b;
    int n_coefficients, n_rho, n_prob;
    /* classifiers */
    int32_t n_classes;
    ml_labels labels;
    int32_t *first_vector, *class_vectors; /* per class: where its support vectors start, how many */
    bool weights_all_positive;
    ml_transform transform;
    bool one_class; /* regressor: output the sign, +1 or -1 */
} svm_params;

static kiln_status read_svm_kernel(const graph_node *node, svm_params *p)
{
    static const char *const names[] = {"LINEAR", "POLY", "RBF", "SIGMOID", NULL};
    const float *params;
    int n;
    KILN_TRY(attr_choice(node, "kernel_type", "LINEAR", names, &p->kernel));
    KILN_TRY(ml_floats(node, "kernel_params", &params, &n));
    if (n != 0 && n != 3)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'kernel_params' has %d values, expected gamma, coef0, degree",
                         n);
    if (n) p->gamma = params[0], p->coef0 = params[1], p->degree = params[2];
    KILN_TRY(ml_floats(node, "coefficients", &p->coefficients, &p->n_coefficients));
    KILN_TRY(ml_floats(node, "rho", &p->rho, &p->n_rho));
    KILN_TRY(ml_floats(node, "support_vectors", &p->vectors, &n));
    if (p->n_coefficients < 1) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'coefficients' is required");
    if (p->n_rho < 1) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'rho' is required");
    if (p->svc && (p->n_vectors < 1 || n % p->n_vectors != 0 || n == 0))
        return kiln_fail(KILN_ERR_MALFORMED, "%d support vector values do not divide into %d vectors", n, p->n_vectors);
    if (p->svc) p->n_features = n / p->n_vectors;
    return KILN_OK;
}

/* vectors_per_class: where each class's support vectors start. */
static kiln_status read_class_vectors(op_init_ctx *ctx, svm_params *p)
{
    const int64_t *per_class;
    int n;
    KILN_TRY(ml_ints(ctx->node, "vectors_per_class", &per_class, &n));
    p->svc = n > 0;
    if (!p->svc) return KILN_OK;
    KILN_TRY(ml_require_same_length("vectors_per_class", n, "the class labels", p->n_classes));
    p->first_vector = region_alloc(ctx->mem, (size_t)n, sizeof *p->first_vector);
    p->class_vectors = region_alloc(ctx->mem, (size_t)n, sizeof *p->class_vectors);
    if (!p->first_vector || !p->class_vectors) return KILN_ERR_OUT_OF_MEMORY;
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        if (per_class[k] < 0 || per_class[k] > INT32_MAX - total)
            return kiln_fail(KILN_ERR_MALFORMED, "vectors_per_class[%d] is %lld", k, (long long)per_class[k]);
        p->first_vector[k] = (int32_t)total;
        p->class_vectors[k] = (int32_t)per_class[k];
        total += per_class[k];
    }
    p->n_vectors = (int32_t)total;
    return KILN_OK;
}

static kiln_status svm_classifier_init(op_init_ctx *ctx)
{
    svm_params *p = ctx->params;
    const graph_node *node = ctx->node;
    int n_prob_b;
    KILN_TRY(op_require_arity(ctx, 1, 1, 2, 2));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(ml_read_labels(ctx, "classlabels_ints", &p->labels));
    int n_labels = p->labels.count;
    if (n_labels < 2) return kiln_fail(KILN_ERR_MALFORMED, "%d class labels, expected at least 2", n_labels);
    if (n_labels > 65535) return kiln_fail(KILN_ERR_UNSUPPORTED, "%d classes is more than 65535", n_labels);
    p->n_classes = n_labels;
    KILN_TRY(read_class_vectors(ctx, p));
    KILN_TRY(read_svm_kernel(node, p));
    KILN_TRY(ml_floats(node, "prob_a", &p->prob_a, &p->n_prob));
    KILN_TRY(ml_floats(node, "prob_b", &p->prob_b, &n_prob_b));
    KILN_TRY(ml_require_same_length("prob_a", p->n_prob, "prob_b", n_prob_b));
    KILN_TRY(ml_read_transform(node, &p->transform));
    int64_t pairs = (int64_t)n_labels * (n_labels - 1) / 2;
    if (p->svc ? p->n_coefficients < (int64_t)(n_labels - 1) * p->n_vectors : p->n_coefficients % n_labels != 0)
        return kiln_fail(KILN_ERR_MALFORMED, "%d coefficients do not fit %d classes and %d support vectors",
                         p->n_coefficients, n_labels, p->n_vectors);
    if (p->svc && (p->n_rho < pairs || (p->n_prob && p->n_prob < pairs)))
        return kiln_fail(KILN_ERR_MALFORMED, "rho and prob_a need one value per pair of classes (%lld)",
                         (long long)pairs);
    if (!p->svc) p->n_features = p->n_coefficients / n_labels;
    p->weights_all_positive = true;
    for (int i = 0; i < p->n_coefficients; i++) p->weights_all_positive &= p->coefficients[i] >= 0;
    ctx->output_dtypes[1] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status svm_regressor_init(op_init_ctx *ctx)
{
    svm_params *p = ctx->params;
    int64_t supports, one_class;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(attr_int(ctx->node, "n_supports", 0, &supports));
    KILN_TRY(attr_int(ctx->node, "one_class", 0, &one_class));
    KILN_TRY(ml_read_transform(ctx->node, &p->transform)); /* checked, then ignored as onnxruntime does */
    if (supports < 0 || supports > INT32_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'n_supports' is %lld", (long long)supports);
    p->svc = supports > 0;
    p->n_vectors = (int32_t)supports;
    KILN_TRY(read_svm_kernel(ctx->node, p));
    if (p->svc && p->n_coefficients < p->n_vectors)
        return kiln_fail(KILN_ERR_MALFORMED, "%d coefficients for %d support vectors", p->n_coefficients, p->n_vectors);
    if (!p->svc) p->n_features = p->n_coefficients;
    p->one_class = one_class != 0;
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

static int eval_threads(const op_ctx *ctx) { return ctx->threads > 0 ? ctx->threads : 1; }

/* Per-thread scratch, in doubles: kernel values, pairwise scores, votes and the coupling's matrices. */
static size_t svm_work_doubles(const svm_params *p)
{
    size_t k = (size_t)p->n_classes;
    return (size_t)p->n_vectors + k * k / 2 + 2 * k * k + 3 * k + 8;
}

static kiln_status svm_shape(op_ctx *ctx)
{
    const svm_params *p = ctx->params;
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(ctx->inputs[0], &rows, &cols));
    if (cols != p->n_features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the input has %lld features, the model expects %d",
                         (long long)cols, p->n_features);
    int64_t k = p->n_classes, columns = k;
    if (p->n_classes == 0) {
        op_set_output_shape(ctx, 0, 2, (int64_t[]){rows, 1});
    } else {
        if (p->svc && !p->n_prob) columns = k > 2 ? k * (k - 1) / 2 : 2; /* one-vs-one scores */
        op_set_output_shape(ctx, 0, 1, (int64_t[]){rows});
        op_set_output_shape(ctx, 1, 2, (int64_t[]){rows, columns});
    }
    size_t work = (size_t)eval_threads(ctx) * svm_work_doubles(p) * sizeof(double);
    size_t labels = p->n_classes ? ml_label_scratch_bytes(&p->labels, rows) : 0;
    ctx->scratch_bytes = float_rows_bytes(ctx->inputs[0]) + work + labels;
    return KILN_OK;
}

static double svm_kernel(const svm_params *p, const float *x, const float *v, int64_t n)
{
    double s = 0;
    if (p->kernel == SVM_RBF) {
        for (int64_t f = 0; f < n; f++) s += ((double)x[f] - v[f]) * ((double)x[f] - v[f]);
        return exp(-p->gamma * s);
    }
    for (int64_t f = 0; f < n; f++) s += (double)x[f] * v[f];
    switch (p->kernel) {
    case SVM_POLY: return pow(p->gamma * s + p->coef0, p->degree);
    case SVM_SIGMOID: return tanh(p->gamma * s + p->coef0);
    default: return s;
    }
}

/* libsvm's multiclass_probability (Wu, Lin and Weng's pairwise coupling, method 2): the class probabilities
 * p from pairwise ones r[i*k+j] = P(i | i or j). Q and Qp are k*k and k doubles of scratch. */
static void couple_probabilities(int k, const double *r, double *p, double *Q, double *Qp)
{
    for (int i = 0; i < k; i++) {
        p[i] = 1.0 / k;
        Q[i * k + i] = 0;
        for (int j = 0; j < k; j++) {
            if (j == i) continue;
            Q[i * k + i] += r[j * k + i] * r[j * k + i];
            Q[i * k + j] = j < i ? Q[j * k + i] : -r[j * k + i] * r[i * k + j];
        }
    }
    double eps = 0.005 / k;
    for (int iteration = 0; iteration < 100; iteration++) {
        double pQp = 0, max_error = 0;
        for (int i = 0; i < k; i++) {
            Qp[i] = 0;
            for (int j = 0; j < k; j++) Qp[i] += Q[i * k + j] * p[j];
            pQp += p[i] * Qp[i];
        }
        for (int i = 0; i < k; i++) max_error = fmax(max_error, fabs(Qp[i] - pQp));
        if (max_error < eps) break;
        for (int i = 0; i < k; i++) {
            double diff = (-Qp[i] + pQp) / Q[i * k + i];
            p[i] += diff;
            pQp = (pQp + diff * (diff * Q[i * k + i] + 2 * Qp[i])) / (1 + diff) / (1 + diff);
            for (int j = 0; j < k; j++) {
                Qp[j] = (Qp[j] + diff * Q[i * k + j]) / (1 + diff);
                p[j] /= 1 + diff;
            }
        }
    }
}

/* Platt scaling of each pair's score, clipped to [1e-7, 1 - 1e-7] as libsvm does, then coupling. */
static void svc_probabilities(const svm_params *p, const double *pair, double *work, float *z)
{
    int k = p->n_classes;
    double *r = work, *probs = r + k * k, *Q = probs + k, *Qp = Q + k * k;
    for (int i = 0, c = 0; i < k; i++)
        for (int j = i + 1; j < k; j++, c++) {
            double v = pair[c] * p->prob_a[c] + p->prob_b[c];
            double q = v >= 0 ? exp(-v) / (1 + exp(-v)) : 1 / (1 + exp(v)); /* 1 - logistic(v) */
            q = fmin(fmax(q, 1e-7), 1 - 1e-7);
            r[i * k + j] = q;
            r[j * k + i] = 1 - q;
        }
    couple_probabilities(k, r, probs, Q, Qp);
    for (int i = 0; i < k; i++) z[i] = (float)probs[i];
}

/* One row with support vectors: one-vs-one scores (libsvm's sign: positive votes for the first class of the
 * pair), the label by votes, and scores or probabilities. */
static void svc_row(const svm_params *p, const float *x, double *work, int64_t *label, float *z)
{
    int k = p->n_classes;
    double *kernel = work, *pair = kernel + p->n_vectors, *votes = pair + k * (k - 1) / 2;
    for (int32_t v = 0; v < p->n_vectors; v++)
        kernel[v] = svm_kernel(p, x, p->vectors + (int64_t)v * p->n_features, p->n_features);
    for (int i = 0; i < k; i++) votes[i] = 0;
    for (int i = 0, c = 0; i < k; i++)
        for (int j = i + 1; j < k; j++, c++) {
            const float *ci = p->coefficients + (int64_t)(j - 1) * p->n_vectors,
                        *cj = p->coefficients + (int64_t)i * p->n_vectors;
            double sum = p->rho[c];
            for (int32_t m = p->first_vector[i]; m < p->first_vector[i] + p->class_vectors[i]; m++)
                sum += ci[m] * kernel[m];
            for (int32_t m = p->first_vector[j]; m < p->first_vector[j] + p->class_vectors[j]; m++)
                sum += cj[m] * kernel[m];
            pair[c] = sum;
            votes[sum > 0 ? i : j] += 1;
        }
    int best = 0;
    for (int i = 1; i < k; i++)
        if (votes[i] > votes[best]) best = i;
    *label = p->labels.ints[best];
    if (p->n_prob) {
        svc_probabilities(p, pair, votes + k, z);
        ml_transform_scores(p->transform, z, k);
    } else if (k > 2) {
        for (int c = 0; c < k * (k - 1) / 2; c++) z[c] = (float)pair[c];
        ml_transform_scores(p->transform, z, k * (k - 1) / 2);
    } else {
        ml_binary_scores(p->transform, p->transform == ML_TRANSFORM_NONE ? ML_NEGATED : ML_COMPLEMENT, (float)pair[0],
                         z);
    }
}

/* One row without support vectors: a linear score per class, all with rho[0]. onnxruntime's two-class label
 * rule looks at the best score's value and the coefficients' signs. */
static void svm_linear_row(const svm_params *p, const float *x, int64_t *label, float *z)
{
    int k = p->n_classes;
    for (int c = 0; c < k; c++) {
        double s = p->rho[0];
        for (int32_t f = 0; f < p->n_features; f++) s += (double)x[f] * p->coefficients[(int64_t)c * p->n_features + f];
        z[c] = (float)s;
    }
    int64_t best = max_index(z, k);
    float top = z[best];
    bool positive =
        k == 2 && !p->n_prob && ((p->weights_all_positive && top >= 0.5f) || (!p->weights_all_positive && top > 0));
    *label = p->labels.ints[positive ? 1 : best];
    ml_transform_scores(p->transform, z, k);
}

static float svr_row(const svm_params *p, const float *x, double *work)
{
    double s = p->rho[0];
    if (p->svc) {
        for (int32_t v = 0; v < p->n_vectors; v++)
            work[v] = svm_kernel(p, x, p->vectors + (int64_t)v * p->n_features, p->n_features);
        for (int32_t v = 0; v < p->n_vectors; v++) s += p->coefficients[v] * work[v];
    } else {
        for (int32_t f = 0; f < p->n_features; f++) s += (double)x[f] * p->coefficients[f];
    }
    return p->one_class ? (s > 0 ? 1.0f : -1.0f) : (float)s;
}

typedef struct svm_job {
    const svm_params *p;
    const float *x;
    int64_t rows;
    int64_t *labels;
    float *y;
    int64_t columns;
    double *work;
    int64_t slices; /* rows are cut into this many slices, one per thread, each with its own scratch */
} svm_job;

static void svm_slices(void *arg, int64_t begin, int64_t end)
{
    const svm_job *job = arg;
    const svm_params *p = job->p;
    for (int64_t slice = begin; slice < end; slice++) {
        double *work = job->work + slice * (int64_t)svm_work_doubles(p);
        for (int64_t r = slice * job->rows / job->slices; r < (slice + 1) * job->rows / job->slices; r++) {
            const float *x = job->x + r * p->n_features;
            if (!job->labels) job->y[r] = svr_row(p, x, work);
            else if (p->svc) svc_row(p, x, work, job->labels + r, job->y + r * job->columns);
            else svm_linear_row(p, x, job->labels + r, job->y + r * job->columns);
        }
    }
}

static kiln_status svm_eval(op_ctx *ctx)
{
    const svm_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    bool classifier = p->n_classes > 0;
    svm_job job = {.p = p, .x = float_rows(x, ctx->scratch)};
    job.rows = x->rank == 1 ? 1 : x->dims[0];
    job.y = ctx->outputs[classifier ? 1 : 0]->data;
    job.columns = classifier ? ctx->outputs[1]->dims[1] : 1;
    job.work = (double *)((char *)ctx->scratch + float_rows_bytes(x));
    double *after_work = job.work + (size_t)eval_threads(ctx) * svm_work_doubles(p);
    job.labels = classifier ? ml_label_slots(ctx, &p->labels, after_work) : NULL;
    job.slices = eval_threads(ctx);
    if (job.slices > job.rows) job.slices = job.rows > 0 ? job.rows : 1;
    parallel_for(ctx->parallel, job.slices, 1, svm_slices, &job);
    return classifier ? ml_name_labels(ctx, &p->labels, job.labels, job.rows) : KILN_OK;
}

const op_def ops_ml_linear[] = {
    {ML_DOMAIN, "LinearClassifier", 1, ML_MAX_OPSET, sizeof(linear_params), linear_classifier_init, linear_shape,
     linear_eval, 0},
    {ML_DOMAIN, "LinearRegressor", 1, ML_MAX_OPSET, sizeof(linear_params), linear_regressor_init, linear_shape,
     linear_eval, 0},
    {ML_DOMAIN, "SVMClassifier", 1, ML_MAX_OPSET, sizeof(svm_params), svm_classifier_init, svm_shape, svm_eval, 0},
    {ML_DOMAIN, "SVMRegressor", 1, ML_MAX_OPSET, sizeof(svm_params), svm_regressor_init, svm_shape, svm_eval, 0},
    OP_TABLE_END,
};
