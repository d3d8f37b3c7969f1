/*
 * checkpoint.h — the output side of a job: output and errors files written crash-safely, committed in
 * checkpoints, resumable (see checkpoint.c for the protocol).
 */
#ifndef KILN_BATCH_CHECKPOINT_H
#define KILN_BATCH_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "batch/batch.h"

/* What a checkpoint records: how far the input was read and how much output that produced. */
typedef struct batch_journal {
    uint64_t hash; /* of the model, the inputs' identities and the options that change output bytes */
    batch_position position;
    int64_t rows_in, rows_out, rejected;
    uint64_t output_bytes, errors_bytes;
    int64_t columns; /* output values per row, for the .npy header */
    bool complete;
} batch_journal;

typedef struct batch_sink {
    const char *path; /* final names */
    const char *errors_path;
    char *partial, *errors_partial, *journal_path;
    int fd, errors_fd;
    bool to_stdout;
    uint64_t out_bytes, errors_bytes; /* written so far */
    uint64_t hash;
    bool io_failed; /* a write failed: what was checkpointed stays for --resume */
} batch_sink;

/* The hash a journal must carry for this job. */
kiln_status checkpoint_job_hash(const batch_job *job, uint64_t *hash);

/* Opens the output. With resume and a journal of this job, continues from it (*resumed, *from); otherwise
 * starts afresh. *already_complete when the journal says the output was complete (it is then published). */
kiln_status sink_open(batch_sink *s, const batch_job *job, uint64_t hash, batch_journal *from, bool *resumed,
                      bool *already_complete);
kiln_status sink_write(batch_sink *s, const void *data, size_t n);
kiln_status sink_write_errors(batch_sink *s, const void *data, size_t n);
/* Makes everything written so far durable and records `state` as the point to resume from. */
kiln_status sink_checkpoint(batch_sink *s, const batch_journal *state);
/* Completes the output: the .npy header, durability, then the final names appear. */
kiln_status sink_finish(batch_sink *s, const batch_job *job, const batch_journal *state);
/* After a failure: keeps what was checkpointed when the failure was in writing (so --resume can continue
 * once there is room), otherwise removes the partial files; the errors file, complete up to the failure, is
 * published when `publish_errors`. */
void sink_abandon(batch_sink *s, bool publish_errors);
void sink_free(batch_sink *s);

#endif
