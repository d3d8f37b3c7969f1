/*
 * reader.c — the read stage: input files, one after another, framed into blocks of records.
 *
 * Bytes are read into a staging buffer; records are framed there (CSV/TSV with quotes, JSON Lines by
 * newline, .npy rows by size) and copied, without their line terminators, into the block. A record is never
 * split by a read: when the buffer ends inside one, more is read (the buffer grows up to the largest record
 * allowed). A block ends after --batch-size records, BLOCK_BYTES_MAX bytes, or at the end of a file, so block
 * boundaries are a function of the data alone.
 *
 * A quoted CSV field may hold newlines, but a quote that is never closed must not swallow the rest of the
 * file: a record that spans lines but does not split into the header's number of fields, or that would run
 * past RECORD_BYTES_MAX, is cut at its first line (which the parser then rejects).
 *
 * Each file starts with its header (CSV's first line, unless --no-header; the .npy header), read even when a
 * shard or a resumed run starts further in, since it decides what the columns mean. Blank lines are not
 * records. A shard owns the records that start inside its byte range [seg_start, seg_end): it begins at the
 * first record start at or after seg_start (after the first newline at or after seg_start - 1) and reads on
 * until a record would start at or after seg_end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "batch/source.h"
#include "core/error.h"
#include "core/mem.h"

enum { READ_CHUNK = 1 << 20, RECORD_BYTES_MAX = 16 << 20, BLOCK_BYTES_MAX = 8 << 20 };

const char *batch_format_name(batch_format format)
{
    switch (format) {
    case BATCH_CSV: return "csv";
    case BATCH_JSONL: return "jsonl";
    case BATCH_NPY: return "npy";
    default: return "auto";
    }
}

/* Reads more into the buffer, keeping buf[start .. len). */
static kiln_status read_more(batch_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->buf_offset += r->start;
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len == r->cap) {
        if (r->cap >= RECORD_BYTES_MAX + READ_CHUNK) {
            const char *path = r->job->files[r->file].path;
            if (r->line > 0)
                return kiln_fail(KILN_ERR_MALFORMED, "%s: line %lld: a record longer than %d MiB (is a quote left open?)",
                                 path, (long long)r->line, RECORD_BYTES_MAX >> 20);
            return kiln_fail(KILN_ERR_MALFORMED, "%s: byte %llu: a record longer than %d MiB (is a quote left open?)", path,
                             (unsigned long long)r->buf_offset, RECORD_BYTES_MAX >> 20);
        }
        size_t cap = r->cap ? r->cap * 2 : READ_CHUNK;
        if (cap > RECORD_BYTES_MAX + READ_CHUNK) cap = RECORD_BYTES_MAX + READ_CHUNK;
        char *grown = mem_realloc(r->buf, cap);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        r->buf = grown;
        r->cap = cap;
    }
    size_t got;
    uint64_t before = r->source->bytes_read;
    KILN_TRY(source_read(r->source, r->buf + r->len, r->cap - r->len, &got));
    r->disk_bytes += r->source->bytes_read - before;
    r->len += got;
    r->eof = got == 0;
    return KILN_OK;
}

/* Makes at least n unframed bytes available, unless the file ends first. */
static kiln_status ensure_bytes(batch_reader *r, size_t n)
{
    while (r->len - r->start < n && !r->eof) KILN_TRY(read_more(r));
    return KILN_OK;
}

/* Continues at stream offset `target` (never behind what was read). */
static kiln_status seek_to(batch_reader *r, uint64_t target)
{
    if (target >= r->buf_offset && target <= r->buf_offset + r->len) {
        r->start = (size_t)(target - r->buf_offset);
        return KILN_OK;
    }
    KILN_TRY(source_seek(r->source, target));
    r->buf_offset = target;
    r->start = r->len = 0;
    r->eof = false;
    return KILN_OK;
}

/* The length of the record at buf[start] (with terminator), or 0 when none is complete yet. */
static kiln_status frame(batch_reader *r, const batch_file *f, size_t *length, int64_t *lines)
{
    size_t avail = r->len - r->start;
    const char *p = r->buf + r->start;
    if (f->format == BATCH_NPY) {
        *lines = 1;
        if (avail >= f->npy_row_bytes) *length = f->npy_row_bytes;
        else if (r->eof && avail > 0)
            return kiln_fail(KILN_ERR_MALFORMED, "%s is truncated: its last row has %zu of %zu bytes", f->path, avail,
                             f->npy_row_bytes);
        else *length = 0;
        return KILN_OK;
    }
    *lines = 0;
    *length = csv_record_length(p, avail, r->eof, f->delimiter, f->format == BATCH_CSV, lines);
    return KILN_OK;
}

/* A text record's content: without "\n" or "\r\n". */
static size_t content_length(const char *p, size_t length)
{
    if (length && p[length - 1] == '\n') length--;
    if (length && p[length - 1] == '\r') length--;
    return length;
}

/* Whether a CSV record that spans lines (a quoted field holding a newline) splits into the header's number
 * of fields. When not, the quote that opened it was most likely never closed, and taking it at its word would
 * swallow every following line into one bad record; the caller takes its first line alone instead. */
static bool multiline_record_is_sound(const batch_file *f, const char *p, size_t length)
{
    size_t content = content_length(p, length);
    char *scratch = mem_alloc(content + 1);
    const char *error;
    int n = scratch ? csv_split(p, content, f->delimiter, NULL, 0, scratch, &error) : -1;
    mem_free(scratch);
    return n == f->binding.n_fields;
}

/* The first line of the record at buf[start]: its length with the newline, or 0 when it has none yet. */
static size_t first_line_length(const batch_reader *r)
{
    const char *p = r->buf + r->start, *nl = memchr(p, '\n', r->len - r->start);
    return nl ? (size_t)(nl - p) + 1 : 0;
}

/* The next whole record: *length 0 at the end of the file. */
static kiln_status next_record(batch_reader *r, const batch_file *f, size_t *length, int64_t *lines)
{
    bool csv = f->format == BATCH_CSV && f->bound;
    for (;;) {
        KILN_TRY(frame(r, f, length, lines));
        if (*length) {
            if (csv && *lines > 1 && !multiline_record_is_sound(f, r->buf + r->start, *length)) {
                *length = first_line_length(r);
                *lines = 1;
            }
            return KILN_OK;
        }
        if (r->eof && r->start == r->len) return KILN_OK;
        if (csv && r->len - r->start >= RECORD_BYTES_MAX && first_line_length(r)) {
            *length = first_line_length(r); /* an open quote ran on for megabytes: the line alone is the record */
            *lines = 1;
            return KILN_OK;
        }
        KILN_TRY(read_more(r));
    }
}

static batch_format detect_format(const batch_reader *r, const batch_file *f)
{
    const batch_options *o = r->job->opt;
    if (o->input_format != BATCH_AUTO) return o->input_format;
    const char *p = r->buf + r->start, *end = r->buf + r->len;
    if (end - p >= 6 && memcmp(p, "\x93NUMPY", 6) == 0) return BATCH_NPY;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    if (p < end && *p == '{') return BATCH_JSONL;
    (void)f;
    return BATCH_CSV;
}

/* ',' unless --delimiter says otherwise, the name ends in .tsv/.tab (before a .gz/.zst suffix), or the header
 * line has tabs and no commas. */
static char detect_delimiter(const batch_reader *r, const batch_file *f, size_t header_len)
{
    if (r->job->opt->delimiter) return r->job->opt->delimiter;
    char name[4096];
    snprintf(name, sizeof name, "%s", f->path);
    const char *suffixes[] = {".gz", ".gzip", ".zst", ".zstd"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(name), s = strlen(suffixes[i]);
        if (n > s && strcmp(name + n - s, suffixes[i]) == 0) name[n - s] = '\0';
    }
    size_t n = strlen(name);
    if ((n > 4 && strcmp(name + n - 4, ".tsv") == 0) || (n > 4 && strcmp(name + n - 4, ".tab") == 0)) return '\t';
    const char *h = r->buf + r->start;
    if (memchr(h, '\t', header_len) && !memchr(h, ',', header_len)) return '\t';
    return ',';
}

/* Reads the CSV header (or, with --no-header, names the columns 1, 2, ...) and binds the columns. */
static kiln_status read_csv_header(batch_reader *r, batch_file *f, uint64_t *data_start, int64_t *first_line)
{
    size_t length;
    int64_t lines = 0;
    KILN_TRY(next_record(r, f, &length, &lines));
    if (!length) return kiln_fail(KILN_ERR_MALFORMED, "%s is empty: it has no header line", f->path);
    const char *rec = r->buf + r->start;
    size_t content = content_length(rec, length);
    f->delimiter = detect_delimiter(r, f, content);
    char *scratch = mem_alloc(content + 1);
    int n = scratch ? 0 : -1;
    const char *error = "out of memory";
    csv_field *fields = NULL;
    if (scratch) {
        n = csv_split(rec, content, f->delimiter, NULL, 0, scratch, &error);
        fields = n > 0 ? mem_calloc((size_t)n, sizeof *fields) : NULL;
        if (fields) n = csv_split(rec, content, f->delimiter, fields, n, scratch, &error);
    }
    char **names = n > 0 ? mem_calloc((size_t)n, sizeof *names) : NULL;
    for (int i = 0; names && i < n; i++) {
        char number[16];
        snprintf(number, sizeof number, "%d", i + 1);
        const char *text = r->job->opt->no_header ? number : fields[i].text;
        size_t len = r->job->opt->no_header ? strlen(number) : fields[i].len;
        names[i] = mem_alloc(len + 1);
        if (names[i]) memcpy(names[i], text, len), names[i][len] = '\0';
    }
    mem_free(fields);
    mem_free(scratch);
    if (n < 0 || !names) {
        mem_free(names);
        return kiln_fail(KILN_ERR_MALFORMED, "%s: cannot read the header: %s", f->path, n < 0 ? error : "out of memory");
    }
    kiln_status st = binding_for_header(r->job, f, names, n, &f->binding);
    if (st != KILN_OK) return st;
    f->bound = true;
    if (r->job->opt->no_header) {
        *data_start = r->buf_offset + r->start;
        *first_line = 1;
    } else {
        *data_start = r->buf_offset + r->start + length;
        *first_line = 1 + lines;
    }
    return KILN_OK;
}

static kiln_status read_npy_header(batch_reader *r, batch_file *f, uint64_t *data_start)
{
    KILN_TRY(ensure_bytes(r, 12));
    const unsigned char *h = (const unsigned char *)r->buf + r->start;
    size_t avail = r->len - r->start, need = 10;
    if (avail >= 10) need = h[6] == 1 ? 10 + (size_t)(h[8] | h[9] << 8) : 12 + (size_t)(h[8] | h[9] << 8 | h[10] << 16);
    KILN_TRY(ensure_bytes(r, need));
    size_t start;
    KILN_TRY(npy_input_read_header(r->job, f, (const uint8_t *)r->buf + r->start, r->len - r->start, &start));
    *data_start = r->buf_offset + r->start + start;
    return KILN_OK;
}

/* Moves to the first record start at or after `target` inside a text file (target > its data start). */
static kiln_status align_to_record(batch_reader *r, uint64_t target)
{
    KILN_TRY(seek_to(r, target - 1));
    for (;;) {
        const char *nl = memchr(r->buf + r->start, '\n', r->len - r->start);
        if (nl) {
            r->start = (size_t)(nl - r->buf) + 1;
            return KILN_OK;
        }
        r->start = r->len;
        if (r->eof) return KILN_OK;
        KILN_TRY(read_more(r));
    }
}

static kiln_status open_file(batch_reader *r, batch_position from)
{
    batch_file *f = &r->job->files[r->file];
    KILN_TRY(source_open(f->path, r->source));
    r->file_open = true;
    r->start = r->len = 0;
    r->buf_offset = 0;
    r->eof = false;
    KILN_TRY(ensure_bytes(r, 64));
    f->format = detect_format(r, f);
    uint64_t data_start = 0;
    int64_t line = 1;
    if (f->format == BATCH_CSV) KILN_TRY(read_csv_header(r, f, &data_start, &line));
    else if (f->format == BATCH_NPY) KILN_TRY(read_npy_header(r, f, &data_start));
    uint64_t target = f->seg_start > data_start ? f->seg_start : data_start;
    if (from.file == r->file && from.offset > 0) {
        KILN_TRY(seek_to(r, from.offset));
        r->line = from.line;
        return KILN_OK;
    }
    if (target == data_start) {
        KILN_TRY(seek_to(r, data_start));
        r->line = line;
    } else if (f->format == BATCH_NPY) {
        uint64_t rows = (target - data_start + f->npy_row_bytes - 1) / f->npy_row_bytes;
        KILN_TRY(seek_to(r, data_start + rows * f->npy_row_bytes));
        r->line = (int64_t)rows + 1;
    } else {
        KILN_TRY(align_to_record(r, target));
        r->line = 0;
    }
    return KILN_OK;
}

kiln_status reader_init(batch_reader *r, batch_job *job, batch_position from)
{
    memset(r, 0, sizeof *r);
    r->job = job;
    r->file = from.file;
    r->source = mem_calloc(1, sizeof *r->source);
    if (!r->source) return KILN_ERR_OUT_OF_MEMORY;
    r->source->fd = -1;
    while (r->file < job->n_files) {
        batch_file *f = &job->files[r->file];
        if (f->seg_start < f->seg_end) break;
        r->file++; /* nothing of this file belongs to the shard */
    }
    if (r->file < job->n_files) {
        kiln_status st = open_file(r, from);
        if (st != KILN_OK) return kiln_fail_prefix(st, "reading input");
    }
    return KILN_OK;
}

static void close_file(batch_reader *r)
{
    if (r->file_open) source_close(r->source);
    r->file_open = false;
}

/* Appends the record at buf[start] to the block. */
static kiln_status take_record(batch_reader *r, batch_block *b, const batch_file *f, size_t length)
{
    const char *p = r->buf + r->start;
    size_t content = f->format == BATCH_NPY ? length : content_length(p, length);
    if (!text_add(&b->raw, p, content)) return KILN_ERR_OUT_OF_MEMORY;
    b->rec_line[b->n_records] = r->line;
    b->rec_offset[b->n_records] = r->buf_offset + r->start;
    b->n_records++;
    b->rec_start[b->n_records] = b->raw.len;
    return KILN_OK;
}

static kiln_status fill_from_file(batch_reader *r, batch_block *b, bool *file_done)
{
    const batch_file *f = &r->job->files[r->file];
    int64_t limit = r->job->opt->batch_size;
    *file_done = false;
    while (b->n_records < limit && b->raw.len < BLOCK_BYTES_MAX) {
        if (r->buf_offset + r->start >= f->seg_end) {
            *file_done = true;
            return KILN_OK;
        }
        size_t length;
        int64_t lines = 0;
        KILN_TRY(next_record(r, f, &length, &lines));
        if (!length) {
            *file_done = true;
            return KILN_OK;
        }
        bool blank = f->format != BATCH_NPY && content_length(r->buf + r->start, length) == 0;
        if (!blank) KILN_TRY(take_record(r, b, f, length));
        r->start += length;
        if (r->line > 0) r->line += lines;
    }
    return KILN_OK;
}

kiln_status reader_fill(batch_reader *r, batch_block *b, bool *done)
{
    b->raw.len = 0;
    b->n_records = 0;
    b->rec_start[0] = 0;
    b->file = r->file;
    uint64_t disk_before = r->disk_bytes;
    *done = r->file >= r->job->n_files;
    if (*done) {
        b->end = (batch_position){r->job->n_files, 0, 0};
        return KILN_OK;
    }
    bool file_done;
    kiln_status st = fill_from_file(r, b, &file_done);
    if (st != KILN_OK) return kiln_fail_prefix(st, "reading input");
    b->input_bytes = r->disk_bytes - disk_before;
    b->end = (batch_position){r->file, r->buf_offset + r->start, r->line};
    if (!file_done) return KILN_OK;
    close_file(r);
    do {
        r->file++;
    } while (r->file < r->job->n_files && r->job->files[r->file].seg_start >= r->job->files[r->file].seg_end);
    b->end = (batch_position){r->file, 0, 0};
    if (r->file < r->job->n_files) {
        st = open_file(r, b->end);
        if (st != KILN_OK) return kiln_fail_prefix(st, "reading input");
    }
    return KILN_OK;
}

void reader_free(batch_reader *r)
{
    close_file(r);
    mem_free(r->source);
    mem_free(r->buf);
    memset(r, 0, sizeof *r);
}
