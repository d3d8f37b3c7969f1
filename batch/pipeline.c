/*
 * pipeline.c — the job's main loop: read -> parse -> infer -> write, overlapped.
 *
 * A fixed pool of 2 x threads + 2 blocks circulates: FREE -> (main thread reads records into it) QUEUED ->
 * (a worker parses, runs the model and formats the rows) DONE -> (the main thread writes it, in sequence
 * order) FREE. The main thread does only I/O and bookkeeping; the --threads workers do the work that costs
 * CPU, each with its own kiln_session on the one shared model. Blocks finish out of order but are written in
 * order, so the output is the input's order and identical for every thread count. Memory is the pool: a
 * handful of blocks of --batch-size rows, whatever the input's size.
 *
 * A run fails (exit 1, one-line reason) for a bad model or options, unreadable or malformed input files, a
 * failed write, or too many rejected rows (--max-error-rate); a row the model cannot take is rejected, never
 * fatal. Checkpoints (checkpoint.c) are taken between blocks.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/checkpoint.h"
#include "batch/progress.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"
#include "core/tensor.h"

enum block_state { BLOCK_FREE, BLOCK_QUEUED, BLOCK_WORKING, BLOCK_DONE };
enum { ERRORS_SHOWN_ON_STDERR = 10, ERROR_RATE_MIN_ROWS = 1000 };

typedef struct pipeline pipeline;

typedef struct worker {
    pipeline *p;
    kiln_session *session;
    platform_thread *thread;
} worker;

struct pipeline {
    batch_job *job;
    batch_block *blocks;
    enum block_state *state;
    int n_blocks;
    platform_mutex *lock;
    platform_cond *changed;
    bool stop;
    worker *workers;
    int n_workers;
    int64_t run_rows; /* rows per model run: the model's fixed batch size, else a whole block */
};

/* ---- blocks -------------------------------------------------------------------------------------------------- */

static kiln_status block_init(const batch_job *job, int64_t rows, batch_block *b)
{
    memset(b, 0, sizeof *b);
    int64_t capacity = job->opt->batch_size;
    b->cap_records = capacity;
    b->rec_start = mem_alloc(sizeof *b->rec_start * (size_t)(capacity + 1));
    b->rec_line = mem_alloc(sizeof *b->rec_line * (size_t)capacity);
    b->rec_offset = mem_alloc(sizeof *b->rec_offset * (size_t)capacity);
    b->rejected = mem_alloc((size_t)capacity);
    b->id_refs = mem_alloc(sizeof *b->id_refs * (size_t)(capacity * job->opt->n_ids + 1));
    b->input_data = mem_calloc((size_t)job->n_inputs, sizeof *b->input_data);
    if (!b->rec_start || !b->rec_line || !b->rec_offset || !b->rejected || !b->id_refs || !b->input_data)
        return KILN_ERR_OUT_OF_MEMORY;
    /* room for whole model runs: a fixed batch size pads the last run of a block */
    int64_t padded = (capacity + rows - 1) / rows * rows;
    for (int k = 0; k < job->n_inputs; k++) {
        b->input_data[k] = mem_aligned_alloc((size_t)padded * (size_t)job->inputs[k].features *
                                             kiln_dtype_size(job->inputs[k].dtype));
        if (!b->input_data[k]) return KILN_ERR_OUT_OF_MEMORY;
    }
    return KILN_OK;
}

static void block_free(const batch_job *job, batch_block *b)
{
    for (int k = 0; b->input_data && k < job->n_inputs; k++) mem_aligned_free(b->input_data[k]);
    mem_free(b->input_data);
    mem_free(b->rec_start);
    mem_free(b->rec_line);
    mem_free(b->rec_offset);
    mem_free(b->rejected);
    mem_free(b->id_refs);
    text_free(&b->raw);
    text_free(&b->ids);
    text_free(&b->out);
    text_free(&b->errors);
}

/* ---- the worker's part: parse, run, format -------------------------------------------------------------------- */

static kiln_status parse_block(batch_job *job, batch_block *b)
{
    switch (job->files[b->file].format) {
    case BATCH_CSV: return csv_parse_block(job, b);
    case BATCH_JSONL: return jsonl_parse_block(job, b);
    case BATCH_NPY: return npy_input_parse_block(job, b);
    default: return kiln_fail(KILN_ERR_INTERNAL, "unknown input format");
    }
}

/* Zeroes the input rows [from, to): rejected rows and the padding of a fixed-size run, so the model never
 * sees stale values (its outputs for these rows are not written). */
static void clear_rows(batch_job *job, batch_block *b, int64_t from, int64_t to)
{
    for (int k = 0; k < job->n_inputs; k++) {
        size_t row = (size_t)job->inputs[k].features * kiln_dtype_size(job->inputs[k].dtype);
        memset((char *)b->input_data[k] + (size_t)from * row, 0, (size_t)(to - from) * row);
    }
}

static kiln_status bind_inputs(kiln_session *session, batch_job *job, batch_block *b, int64_t first, int64_t rows)
{
    for (int k = 0; k < job->n_inputs; k++) {
        const batch_input *in = &job->inputs[k];
        int64_t dims[KILN_MAX_RANK];
        memcpy(dims, in->dims, sizeof dims);
        dims[0] = rows;
        const char *data = (const char *)b->input_data[k] + (size_t)first * (size_t)in->features * kiln_dtype_size(in->dtype);
        KILN_TRY(kiln_session_set_input(session, k, in->dtype, in->rank, dims, data));
    }
    return KILN_OK;
}

/* The selected outputs of the last run, checked to hold one row per input row; settles column counts. */
static kiln_status collect_outputs(kiln_session *session, batch_job *job, int64_t rows, kiln_tensor *outputs)
{
    for (int k = 0; k < job->n_outputs; k++) {
        batch_output *o = &job->outputs[k];
        KILN_TRY(kiln_session_output(session, o->index, &outputs[k]));
        const kiln_tensor *t = &outputs[k];
        char shape[128];
        if (t->rank < 1 || t->dims[0] != rows)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' has shape %s for %lld rows: not one row per input row; "
                             "leave it out with --outputs", o->name, shape_format(shape, sizeof shape, t->rank, t->dims),
                             (long long)rows);
        int64_t columns = rows ? tensor_numel(t) / rows : 0;
        platform_mutex_lock(job->lock);
        if (o->columns < 0) o->columns = columns;
        bool agrees = o->columns == columns;
        platform_mutex_unlock(job->lock);
        if (!agrees)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' has %lld values per row here but %lld before", o->name,
                             (long long)columns, (long long)o->columns);
    }
    return KILN_OK;
}

/* Runs rows [first, first + rows) (the run's size is `run` rows, padding included) and formats them. */
static kiln_status run_rows(kiln_session *session, batch_job *job, batch_block *b, int64_t first, int64_t rows,
                            int64_t run)
{
    kiln_tensor outputs[64];
    KILN_TRY(bind_inputs(session, job, b, first, run));
    KILN_TRY(kiln_session_run(session));
    KILN_TRY(collect_outputs(session, job, run, outputs));
    return writer_format_rows(job, b, outputs, first, rows);
}

/* A run failed on data the model refuses: each row alone, so only the rows at fault are rejected. */
static kiln_status run_rows_one_by_one(kiln_session *session, batch_job *job, batch_block *b, int64_t first,
                                       int64_t rows)
{
    for (int64_t r = first; r < first + rows; r++) {
        if (b->rejected[r]) continue;
        kiln_status st = run_rows(session, job, b, r, 1, 1);
        if (st == KILN_ERR_RUNTIME || st == KILN_ERR_INVALID_ARGUMENT) errors_reject(job, b, r, "the model refused it: %s", kiln_last_error());
        else if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

static kiln_status infer_block(pipeline *p, kiln_session *session, batch_block *b)
{
    batch_job *job = p->job;
    int64_t step = p->run_rows ? p->run_rows : b->n_records;
    for (int64_t first = 0; first < b->n_records; first += step) {
        int64_t rows = b->n_records - first < step ? b->n_records - first : step;
        int64_t accepted = 0;
        for (int64_t r = first; r < first + rows; r++) accepted += !b->rejected[r];
        if (!accepted) continue;
        int64_t run = p->run_rows ? p->run_rows : rows;
        if (run > rows) clear_rows(job, b, first + rows, first + run);
        size_t out_len = b->out.len;
        int64_t out_rows = b->rows_out;
        kiln_status st = run_rows(session, job, b, first, rows, run);
        if ((st == KILN_ERR_RUNTIME || st == KILN_ERR_INVALID_ARGUMENT) && (p->run_rows == 0 || p->run_rows == 1)) {
            b->out.len = out_len;
            b->rows_out = out_rows;
            st = run_rows_one_by_one(session, job, b, first, rows);
        }
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

static void process_block(pipeline *p, kiln_session *session, batch_block *b)
{
    batch_job *job = p->job;
    b->ids.len = b->out.len = b->errors.len = 0;
    b->rows_out = b->n_rejected = 0;
    b->status = KILN_OK;
    memset(b->rejected, 0, (size_t)b->n_records);
    kiln_status st = parse_block(job, b);
    if (st == KILN_OK && b->status != KILN_OK) st = b->status;
    if (st == KILN_OK) {
        for (int64_t r = 0; r < b->n_records; r++)
            if (b->rejected[r]) clear_rows(job, b, r, r + 1);
        st = infer_block(p, session, b);
    }
    if (st == KILN_OK && b->status != KILN_OK) st = b->status;
    if (st != KILN_OK) {
        b->status = st;
        snprintf(b->message, sizeof b->message, "%s", kiln_last_error());
    }
}

static void worker_main(void *arg)
{
    worker *w = arg;
    pipeline *p = w->p;
    platform_mutex_lock(p->lock);
    for (;;) {
        int pick = -1;
        for (int i = 0; i < p->n_blocks; i++)
            if (p->state[i] == BLOCK_QUEUED && (pick < 0 || p->blocks[i].seq < p->blocks[pick].seq)) pick = i;
        if (pick < 0) {
            if (p->stop) break;
            platform_cond_wait(p->changed, p->lock);
            continue;
        }
        p->state[pick] = BLOCK_WORKING;
        platform_mutex_unlock(p->lock);
        process_block(p, w->session, &p->blocks[pick]);
        platform_mutex_lock(p->lock);
        p->state[pick] = BLOCK_DONE;
        platform_cond_broadcast(p->changed);
    }
    platform_mutex_unlock(p->lock);
}

/* ---- setting up and tearing down ----------------------------------------------------------------------------- */

static kiln_status pipeline_start(pipeline *p, batch_job *job)
{
    memset(p, 0, sizeof *p);
    p->job = job;
    p->run_rows = job->fixed_rows;
    p->n_workers = job->opt->threads;
    p->n_blocks = 2 * p->n_workers + 2;
    p->blocks = mem_calloc((size_t)p->n_blocks, sizeof *p->blocks);
    p->state = mem_calloc((size_t)p->n_blocks, sizeof *p->state);
    p->workers = mem_calloc((size_t)p->n_workers, sizeof *p->workers);
    if (!p->blocks || !p->state || !p->workers) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < p->n_blocks; i++) KILN_TRY(block_init(job, p->run_rows ? p->run_rows : 1, &p->blocks[i]));
    KILN_TRY(platform_mutex_create(&p->lock));
    KILN_TRY(platform_cond_create(&p->changed));
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.threads = 1; /* parallelism comes from the workers, one block each */
    options.raw_scores = job->opt->raw_scores;
    for (int i = 0; i < p->n_workers; i++) {
        p->workers[i].p = p;
        KILN_TRY(kiln_session_create(job->model, &options, &p->workers[i].session));
    }
    for (int i = 0; i < p->n_workers; i++)
        KILN_TRY(platform_thread_start(&p->workers[i].thread, worker_main, &p->workers[i]));
    return KILN_OK;
}

static void pipeline_stop(pipeline *p)
{
    if (p->lock) {
        platform_mutex_lock(p->lock);
        p->stop = true;
        platform_cond_broadcast(p->changed);
        platform_mutex_unlock(p->lock);
    }
    for (int i = 0; p->workers && i < p->n_workers; i++) {
        if (p->workers[i].thread) platform_thread_join(p->workers[i].thread);
        kiln_session_free(p->workers[i].session);
    }
    for (int i = 0; p->blocks && i < p->n_blocks; i++) block_free(p->job, &p->blocks[i]);
    if (p->changed) platform_cond_destroy(p->changed);
    if (p->lock) platform_mutex_destroy(p->lock);
    mem_free(p->blocks);
    mem_free(p->state);
    mem_free(p->workers);
}

/* ---- the main thread: read, write, checkpoint -------------------------------------------------------------- */

typedef struct job_state {
    batch_job *job;
    batch_sink sink;
    batch_journal journal; /* the counters and position after the last block written */
    batch_progress progress;
    uint64_t last_checkpoint_ns;
    uint64_t disk_bytes;
    bool header_written;
    int64_t errors_shown;
} job_state;

static kiln_status write_header_once(job_state *s)
{
    if (s->header_written) return KILN_OK;
    s->header_written = true;
    if (s->job->opt->shard_index > 0) return KILN_OK; /* shards concatenate under shard 0's header */
    batch_text header = {0};
    kiln_status st = writer_header(s->job, &header);
    if (st == KILN_OK && s->job->output_format == BATCH_NPY) {
        size_t size = writer_npy_reserved_header(s->job);
        st = text_reserve(&header, size) ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
        if (st == KILN_OK) memset(header.data, ' ', size), header.len = size; /* written for real at the end */
    }
    if (st == KILN_OK && header.len) st = sink_write(&s->sink, header.data, header.len);
    text_free(&header);
    return st;
}

static void show_errors(job_state *s, const batch_block *b)
{
    const char *p = b->errors.data, *end = b->errors.data + b->errors.len;
    while (p < end && s->errors_shown < ERRORS_SHOWN_ON_STDERR) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(stderr, "kiln batch: rejected %.*s\n", (int)n, p);
        if (s->errors_shown == ERRORS_SHOWN_ON_STDERR - 1)
            fprintf(stderr, "kiln batch: (further rejected rows are counted, not shown; --errors FILE keeps them all)\n");
        s->errors_shown++;
        p += n + 1;
    }
}

static kiln_status check_error_rate(const job_state *s, bool final)
{
    double limit = s->job->opt->max_error_rate;
    const batch_journal *j = &s->journal;
    if (limit < 0 || j->rows_in == 0 || (!final && j->rows_in < ERROR_RATE_MIN_ROWS)) return KILN_OK;
    double rate = (double)j->rejected / (double)j->rows_in;
    if (rate <= limit) return KILN_OK;
    return kiln_fail(KILN_ERR_RUNTIME, "%lld of %lld rows rejected (%.3g%%), above --max-error-rate %g%s%s",
                     (long long)j->rejected, (long long)j->rows_in, rate * 100, limit,
                     s->job->opt->errors_path ? "; see " : "", s->job->opt->errors_path ? s->job->opt->errors_path : "");
}

static kiln_status write_block(job_state *s, const batch_block *b)
{
    if (b->status != KILN_OK) return kiln_fail(b->status, "%s", b->message);
    if (b->rows_out) KILN_TRY(write_header_once(s));
    if (b->out.len) KILN_TRY(sink_write(&s->sink, b->out.data, b->out.len));
    if (b->errors.len && s->sink.errors_partial) KILN_TRY(sink_write_errors(&s->sink, b->errors.data, b->errors.len));
    else if (b->errors.len) show_errors(s, b);
    batch_journal *j = &s->journal;
    j->position = b->end;
    j->rows_in += b->n_records;
    j->rows_out += b->rows_out;
    j->rejected += b->n_rejected;
    j->output_bytes = s->sink.out_bytes;
    j->errors_bytes = s->sink.errors_bytes;
    s->disk_bytes += b->input_bytes;
    KILN_TRY(check_error_rate(s, false));
    uint64_t now = platform_now_ns();
    if ((double)(now - s->last_checkpoint_ns) >= s->job->opt->checkpoint_seconds * 1e9) {
        KILN_TRY(sink_checkpoint(&s->sink, j));
        s->last_checkpoint_ns = now;
    }
    progress_update(&s->progress, j->rows_in, s->disk_bytes);
    return KILN_OK;
}

static int find_block(const pipeline *p, enum block_state state, uint64_t seq, bool any_seq)
{
    for (int i = 0; i < p->n_blocks; i++)
        if (p->state[i] == state && (any_seq || p->blocks[i].seq == seq)) return i;
    return -1;
}

/* Reads blocks into free slots and writes finished ones in order until the input is exhausted. */
static kiln_status drive(pipeline *p, job_state *s, batch_reader *reader)
{
    uint64_t next_read = 0, next_write = 0;
    bool input_done = false;
    platform_mutex_lock(p->lock);
    for (;;) {
        int i = find_block(p, BLOCK_DONE, next_write, false);
        if (i >= 0) {
            platform_mutex_unlock(p->lock);
            kiln_status st = write_block(s, &p->blocks[i]);
            platform_mutex_lock(p->lock);
            if (st != KILN_OK) break;
            p->state[i] = BLOCK_FREE;
            next_write++;
            continue;
        }
        i = input_done ? -1 : find_block(p, BLOCK_FREE, 0, true);
        if (i >= 0) {
            platform_mutex_unlock(p->lock);
            kiln_status st = reader_fill(reader, &p->blocks[i], &input_done);
            platform_mutex_lock(p->lock);
            if (st != KILN_OK) break;
            if (p->blocks[i].n_records == 0 && input_done) continue;
            p->blocks[i].seq = next_read++;
            p->state[i] = BLOCK_QUEUED;
            platform_cond_broadcast(p->changed);
            continue;
        }
        if (input_done && next_write == next_read) {
            platform_mutex_unlock(p->lock);
            return KILN_OK;
        }
        platform_cond_wait(p->changed, p->lock);
    }
    platform_mutex_unlock(p->lock);
    return KILN_ERR_IO; /* the message is already recorded */
}

static int fail(const char *what)
{
    fprintf(stderr, "kiln batch: %s%s%s\n", what ? what : "", what ? ": " : "", kiln_last_error());
    return 1;
}

static int run_job(batch_job *job, job_state *s)
{
    uint64_t hash;
    if (checkpoint_job_hash(job, &hash) != KILN_OK) return fail(NULL);
    bool resumed, complete;
    if (sink_open(&s->sink, job, hash, &s->journal, &resumed, &complete) != KILN_OK) {
        sink_abandon(&s->sink, false);
        return fail(NULL);
    }
    progress_start(&s->progress, job->opt->quiet, 0, s->journal.rows_in, 0);
    if (complete) {
        progress_finish(&s->progress, s->journal.rows_in, s->journal.rows_out, s->journal.rejected, job->opt->errors_path);
        return 0;
    }
    s->header_written = resumed && s->journal.output_bytes > 0;
    s->last_checkpoint_ns = platform_now_ns();
    uint64_t total = 0;
    for (int i = 0; i < job->n_files; i++) total += job->files[i].size;
    s->progress.total_bytes = total;
    batch_reader reader;
    pipeline p;
    kiln_status st = reader_init(&reader, job, s->journal.position);
    if (st == KILN_OK) st = pipeline_start(&p, job);
    else memset(&p, 0, sizeof p);
    if (st == KILN_OK) st = drive(&p, s, &reader);
    if (st == KILN_OK) st = write_header_once(s);
    if (st == KILN_OK) st = check_error_rate(s, true);
    for (int k = 0; k < job->n_outputs && st == KILN_OK; k++)
        if (job->outputs[k].columns < 0) job->outputs[k].columns = 1; /* no row ever ran: as declared */
    if (st == KILN_OK) st = sink_finish(&s->sink, job, &s->journal);
    char message[1024];
    snprintf(message, sizeof message, "%s", kiln_last_error());
    pipeline_stop(&p);
    reader_free(&reader);
    if (st != KILN_OK) {
        bool rate = st == KILN_ERR_RUNTIME && strstr(message, "--max-error-rate");
        sink_abandon(&s->sink, rate);
        kiln_fail(st, "%s%s", message,
                  s->sink.io_failed && !s->sink.to_stdout ? " (rows up to the last checkpoint are kept: rerun with --resume to continue)" : "");
        return fail(NULL);
    }
    progress_finish(&s->progress, s->journal.rows_in, s->journal.rows_out, s->journal.rejected, job->opt->errors_path);
    return 0;
}

int batch_run(const batch_options *options)
{
    /* a file size limit (ulimit -f) must fail a write with EFBIG, not kill the process */
    signal(SIGXFSZ, SIG_IGN);
    batch_job job;
    if (job_open(&job, options) != KILN_OK) {
        int rc = fail(NULL);
        job_close(&job);
        return rc;
    }
    job_state state;
    memset(&state, 0, sizeof state);
    state.job = &job;
    int rc = run_job(&job, &state);
    sink_free(&state.sink);
    job_close(&job);
    return rc;
}
