/*
 * batcher.c — the queue, the sessions and the executions of one model version (see batcher.h).
 *
 * Everything shared sits under one mutex: the FIFO of queued jobs, its row count and the stack of free
 * sessions ("slots"). A batch is taken from the queue under the mutex and run outside it. Each slot owns a
 * session and the staging buffers its concatenated inputs are gathered into, so the steady state allocates
 * only each job's output buffer.
 *
 * A failed multi-request batch is re-run one job at a time, so one request's bad data (an index out of range)
 * fails only that request.
 */
#include "serve/batcher.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/platform/platform.h"
#include "core/tensor.h"

typedef struct executor_slot {
    kiln_session *session;
    void **staging; /* per input: the batch's rows, gathered */
    size_t *staging_capacity;
    kiln_tensor *outputs; /* per output: the last run's, while they are split */
} executor_slot;

struct batcher {
    batcher_options options;
    int n_inputs, n_outputs;
    uint64_t delay_ns, timeout_ns;

    pthread_mutex_t mutex;
    pthread_cond_t wake; /* the batcher thread: work may be ready */
    infer_job *head, *tail;
    int queued;
    int64_t queued_rows;
    executor_slot *slots;
    int *free_slots, n_free;
    bool stopping;
    pthread_t thread;
    bool thread_started;
};

static uint64_t now_ns(void) { return platform_now_ns(); }

/* ---- finishing jobs ------------------------------------------------------------------------------------ */

bool infer_job_park_begin(infer_job *job)
{
    int expected = JOB_PENDING;
    return atomic_compare_exchange_strong(&job->state, &expected, JOB_PARKING);
}

bool infer_job_park_end(infer_job *job)
{
    int expected = JOB_PARKING;
    return !atomic_compare_exchange_strong(&job->state, &expected, JOB_PARKED);
}

/* Publishes the job's result; after this the job may be freed by its owner at any moment. */
static void finish_job(infer_job *job)
{
    void (*wake)(void *) = job->wake;
    void *arg = job->wake_arg;
    if (atomic_exchange(&job->state, JOB_DONE) == JOB_PARKED) wake(arg);
}

static void fail_job(infer_job *job, job_outcome outcome, kiln_status status, const char *fmt, ...)
{
    job->outcome = outcome;
    job->status = status;
    va_list args;
    va_start(args, fmt);
    vsnprintf(job->error, sizeof job->error, fmt, args);
    va_end(args);
}

static void finish_list(infer_job *list)
{
    while (list) {
        infer_job *next = list->next; /* read before finishing: the job may vanish */
        finish_job(list);
        list = next;
    }
}

/* ---- the queue (under the mutex) ----------------------------------------------------------------------- */

static void queue_push(batcher *b, infer_job *job)
{
    job->next = NULL;
    if (b->tail) b->tail->next = job;
    else b->head = job;
    b->tail = job;
    b->queued++;
    b->queued_rows += job->rows;
}

/* Unlinks `job`, whose predecessor is `prev` (NULL for the head). */
static void queue_unlink(batcher *b, infer_job *prev, infer_job *job)
{
    if (prev) prev->next = job->next;
    else b->head = job->next;
    if (b->tail == job) b->tail = prev;
    b->queued--;
    b->queued_rows -= job->rows;
    job->next = NULL;
}

/* Jobs queued longer than the timeout (a prefix of the FIFO), unlinked into a list to reject. */
static infer_job *take_expired(batcher *b, uint64_t now)
{
    infer_job *expired = NULL, **tail = &expired;
    while (b->timeout_ns && b->head && now - b->head->enqueued_ns >= b->timeout_ns) {
        infer_job *job = b->head;
        queue_unlink(b, NULL, job);
        fail_job(job, JOB_REJECTED, KILN_ERR_RUNTIME, "the request waited in the queue for more than %lld us",
                 (long long)b->options.queue_timeout_us);
        *tail = job;
        tail = &job->next;
    }
    return expired;
}

/* Whether two jobs' inputs agree on every dim but the first, so their rows can be stacked. */
static bool stackable(const batcher *b, const infer_job *a, const infer_job *c)
{
    for (int i = 0; i < b->n_inputs; i++) {
        const kiln_tensor *x = &a->inputs[i], *y = &c->inputs[i];
        if (x->rank != y->rank || !shape_equal(x->rank - 1, x->dims + 1, y->rank - 1, y->dims + 1)) return false;
    }
    return true;
}

/* Whether the head of the queue should run now (rather than wait for its batch to fill). */
static bool batch_ready(const batcher *b, uint64_t now)
{
    if (!b->head) return false;
    if (b->delay_ns == 0 || b->options.max_batch_size == 0) return true;
    return b->queued_rows >= b->options.max_batch_size || now - b->head->enqueued_ns >= b->delay_ns;
}

/* The head job and, when batching, the queued jobs that stack with it, up to max_batch_size rows; returned
 * as a list linked through `next`. */
static infer_job *take_batch(batcher *b, int64_t *rows)
{
    infer_job *first = b->head;
    queue_unlink(b, NULL, first);
    infer_job *last = first;
    *rows = first->rows;
    for (infer_job *prev = NULL, *job = b->head; job && *rows < b->options.max_batch_size;) {
        infer_job *next = job->next;
        if (*rows + job->rows <= b->options.max_batch_size && stackable(b, first, job)) {
            queue_unlink(b, prev, job);
            last->next = job;
            last = job;
            *rows += job->rows;
        } else {
            prev = job;
        }
        job = next;
    }
    return first;
}

/* ---- running a batch ----------------------------------------------------------------------------------- */

static void fail_batch(infer_job *batch, const char *message)
{
    for (infer_job *job = batch; job; job = job->next) fail_job(job, JOB_RUN_FAILED, KILN_ERR_INTERNAL, "%s", message);
}

/* Binds input i to the batch: the job's own tensor when it runs alone, else the rows of every job gathered
 * into the slot's staging buffer. */
static kiln_status bind_input(executor_slot *slot, infer_job *batch, int i, int64_t rows)
{
    const kiln_tensor *t = &batch->inputs[i];
    if (!batch->next) return kiln_session_set_input(slot->session, i, t->dtype, t->rank, t->dims, t->data);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = rows;
    size_t bytes = (size_t)shape_numel(t->rank, dims) * kiln_dtype_size(t->dtype);
    if (bytes > slot->staging_capacity[i]) {
        void *grown = realloc(slot->staging[i], bytes);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        slot->staging[i] = grown;
        slot->staging_capacity[i] = bytes;
    }
    size_t offset = 0;
    for (infer_job *job = batch; job; job = job->next) {
        size_t n = tensor_bytes(&job->inputs[i]);
        if (n) memcpy((char *)slot->staging[i] + offset, job->inputs[i].data, n);
        offset += n;
    }
    return kiln_session_set_input(slot->session, i, t->dtype, t->rank, dims, slot->staging[i]);
}

/* Where output tensors start in a job's buffer: aligned for any element type (an INT8 output of 3 bytes must
 * not leave the next, INT16 one, at an odd address). */
#define OUTPUT_ALIGN 16
static size_t align_output(size_t offset) { return (offset + OUTPUT_ALIGN - 1) / OUTPUT_ALIGN * OUTPUT_ALIGN; }

/* Bytes a job's copy of output t needs (t->data at the job's rows): the elements and, for strings, which live
 * in the session only until its next run, their characters too. */
static size_t output_copy_bytes(const kiln_tensor *t)
{
    size_t n = align_output(tensor_bytes(t));
    if (t->dtype != KILN_STRING) return n;
    for (int64_t i = 0, count = tensor_numel(t); i < count; i++) {
        const char *s = ((const char *const *)t->data)[i];
        n += (s ? strlen(s) : 0) + 1;
    }
    return n;
}

/* Copies t's elements (and strings) to dest, points t there, and returns the bytes used. */
static size_t copy_output(kiln_tensor *t, char *dest)
{
    size_t n = tensor_bytes(t);
    if (n) memcpy(dest, t->data, n);
    t->data = dest;
    size_t used = align_output(n);
    if (t->dtype != KILN_STRING) return used;
    const char **strings = (const char **)(void *)dest;
    for (int64_t i = 0, count = tensor_numel(t); i < count; i++) {
        const char *s = strings[i] ? strings[i] : "";
        size_t length = strlen(s) + 1;
        memcpy(dest + used, s, length);
        strings[i] = dest + used;
        used += length;
    }
    return used;
}

/* Copies each job's rows of every output into one buffer per job. */
static bool split_outputs(batcher *b, executor_slot *slot, infer_job *batch, int64_t rows)
{
    kiln_tensor *outs = slot->outputs;
    for (int k = 0; k < b->n_outputs; k++) {
        if (kiln_session_output(slot->session, k, &outs[k]) != KILN_OK) {
            fail_batch(batch, kiln_last_error());
            return false;
        }
        if (b->options.max_batch_size > 0 && (outs[k].rank < 1 || outs[k].dims[0] != rows)) {
            fail_batch(batch, "an output does not keep the batch dimension (set max_batch_size 0 in the model's "
                              "config.json to turn batching off)");
            return false;
        }
    }
    int64_t row = 0;
    for (infer_job *job = batch; job; job = job->next) {
        size_t total = 0;
        for (int k = 0; k < b->n_outputs; k++) { /* the job's rows of each output, still in the session */
            kiln_tensor *t = &job->outputs[k];
            *t = outs[k];
            if (b->options.max_batch_size > 0) {
                size_t row_bytes = outs[k].dims[0] > 0 ? tensor_bytes(&outs[k]) / (size_t)outs[k].dims[0] : 0;
                t->dims[0] = job->rows;
                t->data = (char *)outs[k].data + (size_t)row * row_bytes;
            }
            total = align_output(total) + output_copy_bytes(t);
        }
        job->output_data = malloc(total ? total : 1);
        if (!job->output_data) {
            fail_job(job, JOB_RUN_FAILED, KILN_ERR_OUT_OF_MEMORY, "out of memory copying the outputs");
            row += job->rows;
            continue;
        }
        size_t offset = 0;
        for (int k = 0; k < b->n_outputs; k++) {
            offset = align_output(offset);
            offset += copy_output(&job->outputs[k], (char *)job->output_data + offset);
        }
        job->outcome = JOB_OK;
        row += job->rows;
    }
    return true;
}

static void run_batch(batcher *b, executor_slot *slot, infer_job *batch, int64_t rows);

/* A batch of several jobs failed: run each alone, so only the culprit fails. */
static void run_each_alone(batcher *b, executor_slot *slot, infer_job *batch)
{
    infer_job *job = batch;
    while (job) {
        infer_job *next = job->next;
        job->next = NULL;
        run_batch(b, slot, job, job->rows);
        job->next = next;
        job = next;
    }
}

static void run_batch(batcher *b, executor_slot *slot, infer_job *batch, int64_t rows)
{
    uint64_t t0 = now_ns();
    kiln_status st = KILN_OK;
    for (int i = 0; i < b->n_inputs && st == KILN_OK; i++) st = bind_input(slot, batch, i, rows);
    uint64_t t1 = now_ns();
    if (st == KILN_OK) st = kiln_session_run(slot->session);
    uint64_t t2 = now_ns();
    if (st != KILN_OK && batch->next) {
        run_each_alone(b, slot, batch);
        return;
    }
    if (st != KILN_OK) {
        fail_job(batch, JOB_RUN_FAILED, st, "%s", kiln_last_error());
        return;
    }
    bool ok = split_outputs(b, slot, batch, rows);
    uint64_t t3 = now_ns();
    if (ok && b->options.stats) stats_execution_done(b->options.stats, rows, t1 - t0, t2 - t1, t3 - t2);
    for (infer_job *job = batch; job; job = job->next) {
        job->started_ns = t0;
        job->input_ns = t1 - t0;
        job->infer_ns = t2 - t1;
        job->output_ns = t3 - t2;
    }
}

/* Runs a batch taken under the mutex (which the caller has released), returns the slot, and finishes the
 * jobs. Jobs left queued get the batcher thread's attention. */
static void execute(batcher *b, int slot_index, infer_job *batch, int64_t rows)
{
    run_batch(b, &b->slots[slot_index], batch, rows);
    pthread_mutex_lock(&b->mutex);
    b->free_slots[b->n_free++] = slot_index;
    if (b->head) pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->mutex);
    finish_list(batch);
}

submit_result batcher_submit(batcher *b, infer_job *job)
{
    job->outcome = JOB_OK;
    job->status = KILN_OK;
    job->error[0] = '\0';
    job->output_data = NULL;
    job->enqueued_ns = job->started_ns = now_ns();
    job->input_ns = job->infer_ns = job->output_ns = 0;
    atomic_store(&job->state, JOB_PENDING);
    pthread_mutex_lock(&b->mutex);
    if (b->queued >= b->options.max_queue_size) {
        pthread_mutex_unlock(&b->mutex);
        fail_job(job, JOB_REJECTED, KILN_ERR_RUNTIME, "the model's queue is full (%d requests waiting)",
                 b->options.max_queue_size);
        atomic_store(&job->state, JOB_DONE);
        return SUBMIT_DONE;
    }
    queue_push(b, job);
    if (b->n_free == 0 || !batch_ready(b, job->enqueued_ns)) {
        if (b->delay_ns) pthread_cond_signal(&b->wake); /* it times the wait for the batch to fill */
        pthread_mutex_unlock(&b->mutex);
        return SUBMIT_QUEUED;
    }
    int slot = b->free_slots[--b->n_free];
    int64_t rows;
    infer_job *batch = take_batch(b, &rows);
    pthread_mutex_unlock(&b->mutex);
    execute(b, slot, batch, rows);
    return atomic_load(&job->state) == JOB_DONE ? SUBMIT_DONE : SUBMIT_QUEUED;
}

void batcher_reject_queued(batcher *b, const char *reason)
{
    pthread_mutex_lock(&b->mutex);
    infer_job *list = b->head;
    for (infer_job *job = list; job; job = job->next) fail_job(job, JOB_REJECTED, KILN_ERR_RUNTIME, "%s", reason);
    b->head = b->tail = NULL;
    b->queued = 0;
    b->queued_rows = 0;
    pthread_mutex_unlock(&b->mutex);
    finish_list(list);
}

/* ---- the batcher thread -------------------------------------------------------------------------------- */

/* Sleeps until woken or until `deadline` (platform_now_ns time). */
static void wait_until(batcher *b, uint64_t deadline)
{
    uint64_t now = now_ns();
    if (deadline <= now) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wait = deadline - now;
    ts.tv_sec += (time_t)(wait / 1000000000u);
    ts.tv_nsec += (long)(wait % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&b->wake, &b->mutex, &ts);
}

/* When the head of the queue next needs attention: its batch-fill delay or its timeout. */
static uint64_t next_deadline(const batcher *b)
{
    uint64_t deadline = UINT64_MAX;
    if (!b->head) return deadline;
    if (b->n_free > 0 && b->delay_ns) deadline = b->head->enqueued_ns + b->delay_ns;
    if (b->timeout_ns && b->head->enqueued_ns + b->timeout_ns < deadline)
        deadline = b->head->enqueued_ns + b->timeout_ns;
    return deadline;
}

static void *batcher_thread(void *arg)
{
    batcher *b = arg;
    pthread_mutex_lock(&b->mutex);
    while (!b->stopping) {
        uint64_t now = now_ns();
        infer_job *expired = take_expired(b, now);
        if (expired) {
            pthread_mutex_unlock(&b->mutex);
            finish_list(expired);
            pthread_mutex_lock(&b->mutex);
            continue;
        }
        if (b->n_free > 0 && batch_ready(b, now)) {
            int slot = b->free_slots[--b->n_free];
            int64_t rows;
            infer_job *batch = take_batch(b, &rows);
            pthread_mutex_unlock(&b->mutex);
            execute(b, slot, batch, rows);
            pthread_mutex_lock(&b->mutex);
            continue;
        }
        uint64_t deadline = next_deadline(b);
        if (deadline == UINT64_MAX) pthread_cond_wait(&b->wake, &b->mutex);
        else wait_until(b, deadline);
    }
    pthread_mutex_unlock(&b->mutex);
    return NULL;
}

/* ---- creation ------------------------------------------------------------------------------------------ */

/* One run on zeros (empty strings for string inputs) with free dims set to 1, so the first request finds a
 * planned session. */
static kiln_status warm_up(const batcher *b, kiln_session *session)
{
    const kiln_model *model = b->options.model;
    size_t largest = 0;
    int64_t most_strings = 0;
    for (int i = 0; i < b->n_inputs; i++) {
        kiln_value_info info;
        KILN_TRY(kiln_model_input_info(model, i, &info));
        if (info.rank < 0) return KILN_OK; /* no shape to warm up with */
        for (int d = 0; d < info.rank; d++)
            if (info.dims[d] < 0) info.dims[d] = 1;
        int64_t numel;
        KILN_TRY(shape_numel_checked(info.rank, info.dims, &numel));
        size_t bytes = (size_t)numel * kiln_dtype_size(info.dtype);
        if (bytes > largest) largest = bytes;
        if (info.dtype == KILN_STRING && numel > most_strings) most_strings = numel;
    }
    void *zeros = calloc(1, largest ? largest : 1);
    const char **empty = calloc((size_t)most_strings + 1, sizeof *empty);
    if (!zeros || !empty) {
        free(zeros);
        free(empty);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; i < most_strings; i++) empty[i] = "";
    kiln_status st = KILN_OK;
    for (int i = 0; i < b->n_inputs && st == KILN_OK; i++) {
        kiln_value_info info;
        kiln_model_input_info(model, i, &info);
        for (int d = 0; d < info.rank; d++)
            if (info.dims[d] < 0) info.dims[d] = 1;
        st = kiln_session_set_input(session, i, info.dtype, info.rank, info.dims,
                                    info.dtype == KILN_STRING ? (void *)empty : zeros);
    }
    if (st == KILN_OK) st = kiln_session_run(session);
    free(zeros);
    free(empty);
    return st;
}

static kiln_status create_slots(batcher *b)
{
    int n = b->options.instances;
    b->slots = calloc((size_t)n, sizeof *b->slots);
    b->free_slots = calloc((size_t)n, sizeof *b->free_slots);
    if (!b->slots || !b->free_slots) return KILN_ERR_OUT_OF_MEMORY;
    kiln_session_options opts;
    kiln_session_options_init(&opts);
    opts.threads = b->options.threads;
    opts.raw_scores = b->options.raw_scores;
    for (int s = 0; s < n; s++) {
        executor_slot *slot = &b->slots[s];
        slot->staging = calloc((size_t)b->n_inputs + 1, sizeof *slot->staging);
        slot->staging_capacity = calloc((size_t)b->n_inputs + 1, sizeof *slot->staging_capacity);
        slot->outputs = calloc((size_t)b->n_outputs + 1, sizeof *slot->outputs);
        if (!slot->staging || !slot->staging_capacity || !slot->outputs) return KILN_ERR_OUT_OF_MEMORY;
        KILN_TRY(kiln_session_create(b->options.model, &opts, &slot->session));
        KILN_TRY(warm_up(b, slot->session));
        b->free_slots[b->n_free++] = s;
    }
    return KILN_OK;
}

kiln_status batcher_create(const batcher_options *options, batcher **out)
{
    *out = NULL;
    batcher *b = calloc(1, sizeof *b);
    if (!b) return KILN_ERR_OUT_OF_MEMORY;
    b->options = *options;
    if (b->options.instances < 1) b->options.instances = 1;
    b->n_inputs = kiln_model_input_count(options->model);
    b->n_outputs = kiln_model_output_count(options->model);
    b->delay_ns = (uint64_t)options->max_queue_delay_us * 1000u;
    b->timeout_ns = (uint64_t)options->queue_timeout_us * 1000u;
    pthread_mutex_init(&b->mutex, NULL);
    pthread_cond_init(&b->wake, NULL);
    kiln_status st = create_slots(b);
    if (st == KILN_OK && pthread_create(&b->thread, NULL, batcher_thread, b) != 0)
        st = KILN_ERR_OUT_OF_MEMORY;
    b->thread_started = st == KILN_OK;
    if (st != KILN_OK) {
        batcher_free(b);
        return st;
    }
    *out = b;
    return KILN_OK;
}

void batcher_free(batcher *b)
{
    if (!b) return;
    if (b->thread_started) {
        pthread_mutex_lock(&b->mutex);
        b->stopping = true;
        pthread_cond_signal(&b->wake);
        pthread_mutex_unlock(&b->mutex);
        pthread_join(b->thread, NULL);
    }
    for (int s = 0; b->slots && s < b->options.instances; s++) {
        executor_slot *slot = &b->slots[s];
        kiln_session_free(slot->session);
        for (int i = 0; slot->staging && i < b->n_inputs; i++) free(slot->staging[i]);
        free(slot->staging);
        free(slot->staging_capacity);
        free(slot->outputs);
    }
    free(b->slots);
    free(b->free_slots);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mutex);
    free(b);
}
