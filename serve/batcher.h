/*
 * batcher.h — dynamic batching for one model version: a bounded queue of inference jobs, a few sessions that
 * run them, and the hand-off between the HTTP threads that submit jobs and whoever executes them.
 *
 * Triton's semantics: a batch takes everything queued, up to max_batch_size rows, without waiting — unless
 * max_queue_delay_us is set, and then the oldest job waits up to that long for the batch to fill. The queue is
 * bounded (max_queue_size; more is refused) and a job queued longer than queue_timeout_us is refused. Inputs
 * of the jobs in a batch are concatenated along dim 0 and the outputs split back by rows; only jobs whose other
 * dims agree share a batch.
 *
 * Leader/follower: the thread that submits a job runs the batch itself when a session is free and nothing
 * needs waiting for, so a lone request never changes threads. Jobs that find every session busy (or that wait
 * for a batch to fill) are queued; their submitters park (the HTTP layer suspends the connection and returns
 * to its event loop) and whoever runs their batch — another submitter, or the version's batcher thread that
 * picks up what is left when a session frees — wakes them.
 *
 * Parking is a small state machine, so that a job finishing while its submitter is still parking is never
 * lost and never woken twice:
 *     submitter: PENDING -> PARKING (park_begin), then PARKING -> PARKED (park_end)
 *     executor:  anything -> DONE; if it was PARKED, call wake()
 *     if park_end finds DONE, the executor saw PARKING and did not wake: the submitter wakes itself.
 */
#ifndef KILN_SERVE_BATCHER_H
#define KILN_SERVE_BATCHER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"
#include "serve/metrics.h"

typedef enum job_outcome {
    JOB_OK,
    JOB_RUN_FAILED, /* kiln refused the inputs or the run failed; status says why */
    JOB_REJECTED    /* queue full, queue timeout or shutting down: try again later (HTTP 503) */
} job_outcome;

typedef enum job_state { JOB_PENDING, JOB_PARKING, JOB_PARKED, JOB_DONE } job_state;

typedef struct infer_job {
    struct infer_job *next;
    /* in: one tensor per model input, in the model's order; the data belongs to the submitter */
    const kiln_tensor *inputs;
    int64_t rows; /* dim 0 of every input when the model batches, else 1 */
    /* out, once done: one tensor per model output, pointing into output_data (the submitter frees it) */
    kiln_tensor *outputs;
    void *output_data;
    job_outcome outcome;
    kiln_status status;
    char error[512];
    uint64_t enqueued_ns, started_ns, input_ns, infer_ns, output_ns;
    /* hand-off */
    atomic_int state;
    void (*wake)(void *arg);
    void *wake_arg;
} infer_job;

typedef struct batcher_options {
    const kiln_model *model;
    int instances; /* sessions */
    int threads;   /* inside one run */
    bool raw_scores;
    int max_batch_size; /* 0: every job runs alone, with its own shapes */
    int64_t max_queue_delay_us;
    int max_queue_size;
    int64_t queue_timeout_us;
    version_stats *stats;
} batcher_options;

typedef struct batcher batcher;

/* Creates the sessions, warms each up with one run on zeros (free dims set to 1) and starts the batcher
 * thread. Fails with kiln's message when the model cannot run. */
kiln_status batcher_create(const batcher_options *options, batcher **out);
/* Stops the thread and frees the sessions. No job may be queued or running (the version's reference count
 * guarantees it). */
void batcher_free(batcher *b);

typedef enum submit_result {
    SUBMIT_DONE,  /* the job is finished (successfully or not) */
    SUBMIT_QUEUED /* it will be finished by another thread: park, or see park_begin fail */
} submit_result;

submit_result batcher_submit(batcher *b, infer_job *job);

/* The parking protocol above. park_begin: false when the job is already done (do not park).
 * park_end: true when the job finished while parking, so the caller must wake itself. */
bool infer_job_park_begin(infer_job *job);
bool infer_job_park_end(infer_job *job);

/* Refuses every queued job (503) with `reason`: used when draining runs out of time. */
void batcher_reject_queued(batcher *b, const char *reason);

#endif
