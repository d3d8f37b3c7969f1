/*
 * errors.c — rejected rows. A row that cannot feed the model (not a number, wrong field count, a broken
 * quote, an object where a number belongs, data the model refuses) never stops the job and never vanishes:
 * it becomes one JSON line in the --errors file (without one, a line on stderr for the first few),
 *
 *     {"file":"day.csv","line":1042,"offset":381911,"reason":"column 'f3': 'abc' is not a number","raw":"..."}
 *
 * (line is null where unknown: a shard that starts inside a file does not count the lines before it; offset,
 * the record's byte offset in the decompressed file, is always known) and is counted in the summary.
 * Workers format entries into their block; the writer appends them to the file in input order, so the
 * errors file is as deterministic and as resumable as the output.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/number.h"

enum { RAW_SHOWN_MAX = 4096 };

void errors_reject(batch_job *job, batch_block *b, int64_t r, const char *fmt, ...)
{
    char reason[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(reason, sizeof reason, fmt, args);
    va_end(args);
    b->rejected[r] = 1;
    b->n_rejected++;

    const char *path = job->files[b->file].path;
    const char *raw = b->raw.data + b->rec_start[r];
    size_t raw_len = b->rec_start[r + 1] - b->rec_start[r];
    char num[NUMBER_FORMAT_MAX];
    batch_text *t = &b->errors;
    if (!job->opt->errors_path) { /* no errors file: a line for stderr, where the first few are shown */
        char line[1024];
        int n = b->rec_line[r] > 0 ? snprintf(line, sizeof line, "%s line %lld: %s\n", path, (long long)b->rec_line[r], reason)
                                   : snprintf(line, sizeof line, "%s byte %llu: %s\n", path,
                                              (unsigned long long)b->rec_offset[r], reason);
        if (!text_add(t, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1)) b->status = KILN_ERR_OUT_OF_MEMORY;
        return;
    }
    bool ok = text_add(t, "{\"file\":", 8) && json_append_string(t, path, strlen(path)) && text_add(t, ",\"line\":", 8);
    if (ok && b->rec_line[r] > 0) ok = text_add(t, num, number_format_int64(b->rec_line[r], num));
    else if (ok) ok = text_add(t, "null", 4);
    ok = ok && text_add(t, ",\"offset\":", 10) && text_add(t, num, number_format_uint64(b->rec_offset[r], num)) &&
         text_add(t, ",\"reason\":", 10) && json_append_string(t, reason, strlen(reason)) &&
         text_add(t, ",\"raw\":", 7) && json_append_string(t, raw, raw_len > RAW_SHOWN_MAX ? RAW_SHOWN_MAX : raw_len);
    if (ok && raw_len > RAW_SHOWN_MAX) ok = text_add(t, ",\"raw_truncated\":true", 21);
    if (ok) ok = text_add(t, "}\n", 2);
    if (!ok && b->status == KILN_OK) {
        b->status = KILN_ERR_OUT_OF_MEMORY;
        snprintf(b->message, sizeof b->message, "out of memory recording a rejected row");
    }
}
