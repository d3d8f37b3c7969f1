/*
 * progress.h — what a job tells the person watching it: a progress line on a terminal, a summary at the end.
 */
#ifndef KILN_BATCH_PROGRESS_H
#define KILN_BATCH_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct batch_progress {
    bool live;              /* stderr is a terminal and not --quiet */
    bool quiet;
    uint64_t start_ns, last_ns;
    uint64_t total_bytes;   /* the inputs' sizes on disk, 0 when unknown (stdin) */
    int64_t rows_at_start;  /* rows read before a resumed run started, excluded from its rate */
    uint64_t bytes_at_start;
    bool shown;
} batch_progress;

void progress_start(batch_progress *p, bool quiet, uint64_t total_bytes, int64_t rows_before, uint64_t bytes_before);
/* Redraws the line at most a few times a second. */
void progress_update(batch_progress *p, int64_t rows_in, uint64_t bytes_in);
/* Clears the line and prints the summary (unless --quiet). */
void progress_finish(batch_progress *p, int64_t rows_in, int64_t rows_out, int64_t rejected, const char *errors_path);

#endif
