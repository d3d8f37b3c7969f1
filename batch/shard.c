/*
 * shard.c — splitting one job among N independent workers (--shard I/N) so that their outputs, concatenated
 * in shard order, are the unsharded output: no coordination, no shared state, ready for a Kubernetes Indexed
 * Job (I = $JOB_COMPLETION_INDEX), a Slurm array (I = $SLURM_ARRAY_TASK_ID) or a loop of ssh commands.
 *
 * Plain files are split by bytes: the inputs, taken as one sequence of S bytes, give shard I the records that
 * start in [S*I/N, S*(I+1)/N) (reader.c finds the first record start after a range's first byte). Every
 * worker reads only its range (and each file's header). This assumes that newlines end records, i.e. that no
 * quoted CSV field spans lines; such files must be split by file. Compressed files and standard input cannot
 * be entered in the middle, so when any input is compressed, whole files are dealt out instead: shard I gets
 * files [F*I/N, F*(I+1)/N) of the F inputs (give many files, at least N).
 */
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/source.h"
#include "core/error.h"

/* The shard's byte range within one file at [base, base + size) of the whole sequence. */
static void clip(uint64_t from, uint64_t to, uint64_t base, uint64_t size, batch_file *f)
{
    uint64_t start = from > base ? from - base : 0, end = to > base ? to - base : 0;
    f->seg_start = start < size ? start : size;
    f->seg_end = end < size ? end : UINT64_MAX; /* the last range runs to the end of the file */
    if (end < size && f->seg_end <= f->seg_start) f->seg_end = f->seg_start;
    if (start >= size) f->seg_start = f->seg_end = UINT64_MAX;
}

kiln_status shard_plan(batch_job *job)
{
    const batch_options *o = job->opt;
    bool by_bytes = true;
    uint64_t total = 0;
    for (int i = 0; i < job->n_files; i++) {
        batch_file *f = &job->files[i];
        f->seg_start = 0;
        f->seg_end = UINT64_MAX;
        if (!f->seekable) by_bytes = false;
        total += f->size;
    }
    if (o->shard_count <= 1) return KILN_OK;
    for (int i = 0; i < job->n_files; i++)
        if (strcmp(job->files[i].path, "-") == 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "--shard needs input files, not standard input");
    uint64_t n = (uint64_t)o->shard_count, k = (uint64_t)o->shard_index;
    if (by_bytes) {
        /* S*I/N without overflow for any realistic S: split S into its quotient and remainder by N */
        uint64_t from = total / n * k + total % n * k / n, to = total / n * (k + 1) + total % n * (k + 1) / n;
        uint64_t base = 0;
        for (int i = 0; i < job->n_files; i++) {
            clip(from, to, base, job->files[i].size, &job->files[i]);
            base += job->files[i].size;
        }
        return KILN_OK;
    }
    uint64_t files = (uint64_t)job->n_files;
    for (uint64_t i = 0; i < files; i++) {
        bool mine = i >= files * k / n && i < files * (k + 1) / n;
        job->files[i].seg_start = mine ? 0 : UINT64_MAX;
        job->files[i].seg_end = UINT64_MAX;
    }
    return KILN_OK;
}
