/*
 * checkpoint.c — crash-safe, resumable output.
 *
 * While a job runs, rows are appended to OUTPUT.partial (and rejected rows to ERRORS.partial); the final
 * names appear only when the job is complete, by rename, so no reader ever finds a half-written file under
 * them. Every --checkpoint-seconds the writer makes both partial files durable (fdatasync) and then replaces
 * OUTPUT.checkpoint atomically (write a temporary file, fsync, rename, fsync the directory) with a journal:
 *
 *     kiln-batch-checkpoint 1
 *     hash 6a09e667f3bcc908      the model's bytes, the inputs' names, sizes and mtimes, the output options
 *     file 0                     where the input continues: file index,
 *     offset 73400320            byte offset in its (decompressed) stream, line number there
 *     line 203817
 *     rows_in 203815 ...         counters, and the bytes of output and errors that belong to this point
 *
 * Checkpoints are taken only between blocks, whose boundaries depend on the data alone. So after kill -9,
 * power loss or OOM, --resume truncates the partial files to the journal's byte counts, reopens the input at
 * the journal's position and cuts exactly the blocks the uninterrupted run cut: the output is byte-identical,
 * with no row lost or repeated. A journal of another job (different hash) is refused rather than continued.
 *
 * Finishing is itself resumable: the journal is marked complete before the renames, so a crash between them
 * is finished by the next --resume.
 */
#include "batch/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"

/* ---- the job's identity ------------------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static uint64_t hash_string(uint64_t h, const char *s) { return fnv1a(h, s ? s : "", s ? strlen(s) + 1 : 1); }

static uint64_t hash_strings(uint64_t h, const char **list, int n)
{
    h = fnv1a(h, &n, sizeof n);
    for (int i = 0; i < n; i++) h = hash_string(h, list[i]);
    return h;
}

kiln_status checkpoint_job_hash(const batch_job *job, uint64_t *hash)
{
    const batch_options *o = job->opt;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    h = hash_string(h, "kiln-batch 1");
    file_mapping map;
    KILN_TRY(platform_map_file(o->model_path, &map));
    h = fnv1a(h, map.data, map.size);
    platform_unmap_file(&map);
    for (int i = 0; i < job->n_files; i++) {
        const batch_file *f = &job->files[i];
        h = hash_string(h, f->path);
        h = fnv1a(h, &f->size, sizeof f->size);
        h = fnv1a(h, &f->mtime_ns, sizeof f->mtime_ns);
    }
    int settings[] = {job->output_format, o->input_format, o->delimiter, o->no_header, o->raw_scores,
                      o->shard_index, o->shard_count, o->errors_path != NULL};
    h = fnv1a(h, settings, sizeof settings);
    h = fnv1a(h, &o->batch_size, sizeof o->batch_size);
    h = hash_strings(h, o->columns, o->n_columns);
    h = hash_strings(h, o->ids, o->n_ids);
    h = hash_strings(h, o->outputs, o->n_outputs);
    *hash = h;
    return KILN_OK;
}

/* ---- files ---------------------------------------------------------------------------------------------------- */

static char *path_with(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = mem_alloc(n);
    if (p) snprintf(p, n, "%s%s", path, suffix);
    return p;
}

/* fsync of the directory holding path, so a rename in it is durable. */
static void sync_directory(const char *path)
{
    char *copy = path_with(path, "");
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    mem_free(copy);
}

static kiln_status write_all(int fd, const char *path, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return KILN_OK;
}

static kiln_status write_journal(const batch_sink *s, const batch_journal *j)
{
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "kiln-batch-checkpoint 1\nhash %016" PRIx64 "\ncomplete %d\nfile %d\noffset %" PRIu64
                     "\nline %" PRId64 "\nrows_in %" PRId64 "\nrows_out %" PRId64 "\nrejected %" PRId64
                     "\noutput_bytes %" PRIu64 "\nerrors_bytes %" PRIu64 "\ncolumns %" PRId64 "\n",
                     j->hash, j->complete, j->position.file, j->position.offset, j->position.line, j->rows_in,
                     j->rows_out, j->rejected, j->output_bytes, j->errors_bytes, j->columns);
    char *tmp = path_with(s->journal_path, ".tmp");
    if (!tmp) return KILN_ERR_OUT_OF_MEMORY;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    kiln_status st = fd < 0 ? kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno))
                            : write_all(fd, tmp, text, (size_t)n);
    if (st == KILN_OK && fsync(fd) != 0) st = kiln_fail(KILN_ERR_IO, "%s: cannot sync: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    if (st == KILN_OK && rename(tmp, s->journal_path) != 0)
        st = kiln_fail(KILN_ERR_IO, "%s: cannot rename: %s", tmp, strerror(errno));
    if (st != KILN_OK) unlink(tmp);
    else sync_directory(s->journal_path);
    mem_free(tmp);
    return st;
}

/* Reads a journal; false when it is absent or unreadable as one. */
static bool read_journal(const char *path, batch_journal *j)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    memset(j, 0, sizeof *j);
    int complete = 0, fields = 0;
    fields += fscanf(f, "kiln-batch-checkpoint 1 hash %" SCNx64, &j->hash);
    fields += fscanf(f, " complete %d file %d offset %" SCNu64 " line %" SCNd64, &complete, &j->position.file,
                     &j->position.offset, &j->position.line);
    fields += fscanf(f, " rows_in %" SCNd64 " rows_out %" SCNd64 " rejected %" SCNd64, &j->rows_in, &j->rows_out,
                     &j->rejected);
    fields += fscanf(f, " output_bytes %" SCNu64 " errors_bytes %" SCNu64 " columns %" SCNd64, &j->output_bytes,
                     &j->errors_bytes, &j->columns);
    fclose(f);
    j->complete = complete != 0;
    return fields == 1 + 4 + 3 + 3;
}

/* Opens a partial file: afresh, or truncated to `keep` bytes of an earlier run. */
static kiln_status open_partial(const char *path, bool fresh, uint64_t keep, int *fd)
{
    *fd = open(path, fresh ? O_WRONLY | O_CREAT | O_TRUNC : O_WRONLY, 0644);
    if (*fd < 0) return kiln_fail(KILN_ERR_IO, "%s: cannot %s: %s", path, fresh ? "create" : "open", strerror(errno));
    if (fresh) return KILN_OK;
    struct stat st;
    if (fstat(*fd, &st) != 0 || (uint64_t)st.st_size < keep)
        return kiln_fail(KILN_ERR_IO, "%s is shorter than its checkpoint says (%llu bytes); it cannot be resumed",
                         path, (unsigned long long)keep);
    if (ftruncate(*fd, (off_t)keep) != 0 || lseek(*fd, (off_t)keep, SEEK_SET) < 0)
        return kiln_fail(KILN_ERR_IO, "%s: cannot truncate: %s", path, strerror(errno));
    return KILN_OK;
}

static kiln_status publish(const char *partial, const char *final_path)
{
    if (rename(partial, final_path) != 0 && errno != ENOENT)
        return kiln_fail(KILN_ERR_IO, "%s: cannot rename to %s: %s", partial, final_path, strerror(errno));
    sync_directory(final_path);
    return KILN_OK;
}

static kiln_status publish_all(batch_sink *s)
{
    if (s->errors_partial) KILN_TRY(publish(s->errors_partial, s->errors_path));
    if (!s->to_stdout) KILN_TRY(publish(s->partial, s->path));
    if (s->journal_path) unlink(s->journal_path);
    return KILN_OK;
}

static kiln_status sink_names(batch_sink *s, const batch_job *job)
{
    const batch_options *o = job->opt;
    s->fd = s->errors_fd = -1;
    s->to_stdout = strcmp(o->output, "-") == 0;
    s->path = o->output;
    s->errors_path = o->errors_path;
    /* a stream cannot be resumed: standard output has no partial file and no journal */
    s->journal_path = s->to_stdout ? NULL : path_with(o->output, ".checkpoint");
    s->partial = s->to_stdout ? NULL : path_with(o->output, ".partial");
    s->errors_partial = o->errors_path ? path_with(o->errors_path, ".partial") : NULL;
    if ((!s->to_stdout && (!s->journal_path || !s->partial)) || (o->errors_path && !s->errors_partial))
        return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

kiln_status sink_open(batch_sink *s, const batch_job *job, uint64_t hash, batch_journal *from, bool *resumed,
                      bool *already_complete)
{
    memset(s, 0, sizeof *s);
    KILN_TRY(sink_names(s, job));
    s->hash = hash;
    *resumed = *already_complete = false;
    memset(from, 0, sizeof *from);
    from->hash = hash;
    batch_journal j;
    bool have = !s->to_stdout && read_journal(s->journal_path, &j);
    if (have && job->opt->resume) {
        if (j.hash != hash)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "%s belongs to another job (the model, inputs or options differ); delete it to start "
                             "afresh or resume with the original command",
                             s->journal_path);
        *from = j;
        if (j.complete) {
            *already_complete = true;
            return publish_all(s);
        }
        *resumed = true;
    } else if (have && !job->opt->quiet) {
        fprintf(stderr, "kiln batch: discarding the checkpoint of an earlier, unfinished run (%s); --resume continues one\n",
                s->journal_path);
    }
    if (s->to_stdout) s->fd = STDOUT_FILENO;
    else KILN_TRY(open_partial(s->partial, !*resumed, from->output_bytes, &s->fd));
    if (s->errors_partial) KILN_TRY(open_partial(s->errors_partial, !*resumed, from->errors_bytes, &s->errors_fd));
    s->out_bytes = from->output_bytes;
    s->errors_bytes = from->errors_bytes;
    if (!*resumed && s->journal_path) unlink(s->journal_path);
    return KILN_OK;
}

kiln_status sink_write(batch_sink *s, const void *data, size_t n)
{
    kiln_status st = write_all(s->fd, s->to_stdout ? "standard output" : s->partial, data, n);
    if (st != KILN_OK) s->io_failed = true;
    else s->out_bytes += n;
    return st;
}

kiln_status sink_write_errors(batch_sink *s, const void *data, size_t n)
{
    kiln_status st = write_all(s->errors_fd, s->errors_partial, data, n);
    if (st != KILN_OK) s->io_failed = true;
    else s->errors_bytes += n;
    return st;
}

static kiln_status sync_file(batch_sink *s, int fd, const char *path)
{
    if (fd < 0 || fd == STDOUT_FILENO) return KILN_OK;
    if (fdatasync(fd) != 0) {
        s->io_failed = true;
        return kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return KILN_OK;
}

kiln_status sink_checkpoint(batch_sink *s, const batch_journal *state)
{
    if (s->to_stdout) return KILN_OK; /* a stream cannot be resumed */
    KILN_TRY(sync_file(s, s->fd, s->partial));
    KILN_TRY(sync_file(s, s->errors_fd, s->errors_partial));
    kiln_status st = write_journal(s, state);
    if (st != KILN_OK) s->io_failed = true;
    return st;
}

kiln_status sink_finish(batch_sink *s, const batch_job *job, const batch_journal *state)
{
    if (job->output_format == BATCH_NPY && !s->to_stdout) {
        char header[512];
        size_t size = writer_npy_reserved_header(job);
        if (writer_npy_header(job, state->rows_out, header, size) != size)
            return kiln_fail(KILN_ERR_INTERNAL, "the .npy header does not fit its reservation");
        if (pwrite(s->fd, header, size, 0) != (ssize_t)size) {
            s->io_failed = true;
            return kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", s->partial, strerror(errno));
        }
    }
    batch_journal done = *state;
    done.complete = true;
    KILN_TRY(sink_checkpoint(s, &done));
    return publish_all(s);
}

void sink_abandon(batch_sink *s, bool publish_errors)
{
    if (s->fd >= 0 && s->fd != STDOUT_FILENO) close(s->fd);
    if (s->errors_fd >= 0) close(s->errors_fd);
    s->fd = s->errors_fd = -1;
    if (s->io_failed) return; /* keep the partial files and the journal for --resume */
    if (s->partial) unlink(s->partial);
    if (s->errors_partial && publish_errors) publish(s->errors_partial, s->errors_path);
    else if (s->errors_partial) unlink(s->errors_partial);
    if (s->journal_path) unlink(s->journal_path);
}

void sink_free(batch_sink *s)
{
    if (s->fd >= 0 && s->fd != STDOUT_FILENO) close(s->fd);
    if (s->errors_fd >= 0) close(s->errors_fd);
    mem_free(s->partial);
    mem_free(s->errors_partial);
    mem_free(s->journal_path);
    memset(s, 0, sizeof *s);
    s->fd = s->errors_fd = -1;
}
