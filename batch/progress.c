/*
 * progress.c — the progress line and the final summary.
 *
 * On a terminal (stderr is a TTY and --quiet is not given) one line is redrawn in place a few times a second:
 *     kiln batch: 3.2M rows  812k rows/s  1.1 GB of 3.6 GB  ETA 0:09
 * The ETA is the remaining input bytes at the current byte rate (for compressed files, the compressed bytes).
 * Logs and pipes get no progress line, only the summary, which --quiet suppresses too:
 *     kiln batch: 1000000 rows in, 999998 out, 2 rejected (errors.jsonl), 1.82 s, 549451 rows/s
 */
#include "batch/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/platform/platform.h"

enum { REDRAW_NS = 250000000 };

static const char *human(double v, char *buf, size_t size)
{
    const char *units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4) v /= 1000, u++;
    snprintf(buf, size, u ? "%.1f%s" : "%.0f%s", v, units[u]);
    return buf;
}

void progress_start(batch_progress *p, bool quiet, uint64_t total_bytes, int64_t rows_before, uint64_t bytes_before)
{
    p->quiet = quiet;
    p->live = !quiet && isatty(STDERR_FILENO);
    p->start_ns = p->last_ns = platform_now_ns();
    p->total_bytes = total_bytes;
    p->rows_at_start = rows_before;
    p->bytes_at_start = bytes_before;
    p->shown = false;
}

void progress_update(batch_progress *p, int64_t rows_in, uint64_t bytes_in)
{
    if (!p->live) return;
    uint64_t now = platform_now_ns();
    if (now - p->last_ns < REDRAW_NS) return;
    p->last_ns = now;
    double seconds = (double)(now - p->start_ns) / 1e9;
    double rate = (double)(rows_in - p->rows_at_start) / seconds;
    char rows[16], speed[16], done[16], total[16], eta[32] = "";
    if (p->total_bytes && bytes_in > p->bytes_at_start && bytes_in <= p->total_bytes) {
        double byte_rate = (double)(bytes_in - p->bytes_at_start) / seconds;
        int left = (int)((double)(p->total_bytes - bytes_in) / byte_rate);
        snprintf(eta, sizeof eta, "  ETA %d:%02d:%02d", left / 3600, left / 60 % 60, left % 60);
    }
    fprintf(stderr, "\rkiln batch: %s rows  %s rows/s  %sB", human((double)rows_in, rows, sizeof rows),
            human(rate, speed, sizeof speed), human((double)bytes_in, done, sizeof done));
    if (p->total_bytes) fprintf(stderr, " of %sB", human((double)p->total_bytes, total, sizeof total));
    fprintf(stderr, "%s\033[K", eta);
    fflush(stderr);
    p->shown = true;
}

void progress_finish(batch_progress *p, int64_t rows_in, int64_t rows_out, int64_t rejected, const char *errors_path)
{
    if (p->shown) fprintf(stderr, "\r\033[K");
    if (p->quiet) return;
    double seconds = (double)(platform_now_ns() - p->start_ns) / 1e9;
    double rate = seconds > 0 ? (double)(rows_in - p->rows_at_start) / seconds : 0;
    fprintf(stderr, "kiln batch: %lld rows in, %lld out, %lld rejected", (long long)rows_in, (long long)rows_out,
            (long long)rejected);
    if (rejected && errors_path) fprintf(stderr, " (%s)", errors_path);
    fprintf(stderr, ", %.2f s, %.0f rows/s%s\n", seconds, rate, p->rows_at_start ? " since resuming" : "");
}
