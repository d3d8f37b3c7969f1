/*
 * batch.h — `kiln batch`: the types its stages share.
 *
 * A job streams rows from input files through a model into one output file:
 *
 *     reader (reader.c + source.c, csv.c/jsonl.c/npy_input.c frame records)      main thread
 *        -> blocks of up to --batch-size records, in input order
 *     workers (--threads of them, each with its own kiln_session):                worker threads
 *        parse fields into input tensors (binding.c), run the model, format the output rows (writer.c)
 *     writer: blocks written strictly in sequence, checkpointed (checkpoint.c)    main thread
 *
 * A fixed pool of blocks circulates between the stages, so memory is a few blocks whatever the input size.
 * Block boundaries depend only on the data (never on read sizes or timing), so two runs of the same job cut
 * the same blocks, a resumed run (which starts at a block boundary) continues with exactly the blocks an
 * uninterrupted run would have, and every thread count gives the same bytes.
 */
#ifndef KILN_BATCH_H
#define KILN_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef enum batch_format { BATCH_AUTO = 0, BATCH_CSV, BATCH_JSONL, BATCH_NPY } batch_format;

const char *batch_format_name(batch_format format);

typedef struct batch_options {
    const char *model_path;
    const char **inputs; /* "-" is standard input */
    int n_inputs;
    const char *output; /* "-" is standard output */
    batch_format output_format, input_format;
    const char **columns, **ids, **outputs; /* --columns, --id, --outputs */
    int n_columns, n_ids, n_outputs;
    int64_t batch_size;
    int threads;
    char delimiter; /* of CSV input; 0: ',' or, for .tsv/.tab files, '\t' */
    char output_delimiter; /* of CSV output; 0: '\t' for a .tsv name, else ',' */
    bool no_header;
    const char *errors_path; /* NULL: rejected rows are counted and the first few shown on stderr */
    double max_error_rate;   /* < 0: no limit */
    bool resume, quiet, raw_scores;
    int shard_index, shard_count; /* --shard I/N; count 1 when not sharded */
    double checkpoint_seconds;
} batch_options;

/* Runs the whole job; returns the exit code (0, or 1 with a one-line reason printed on stderr). */
int batch_run(const batch_options *options);

/* ---- growable text ---------------------------------------------------------------------------------------- */

typedef struct batch_text {
    char *data;
    size_t len, cap;
} batch_text;

/* Make room for `more` bytes; false (with kiln_fail) when out of memory. */
bool text_reserve(batch_text *t, size_t more);
void text_append(batch_text *t, const void *bytes, size_t n); /* after text_reserve */
bool text_add(batch_text *t, const void *bytes, size_t n);    /* reserve + append */
void text_free(batch_text *t);

/* ---- what the model takes and gives ------------------------------------------------------------------------ */

/* One model input: a row of it is `features` values (the product of the dims after the first). */
typedef struct batch_input {
    int index;
    const char *name;
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK]; /* dims[0] is the batch dim: -1 when free, else the model's fixed size */
    int64_t features;
    int64_t first_slot; /* where its features start among all inputs' features */
} batch_input;

typedef struct batch_output {
    int index;
    const char *name;
    kiln_dtype dtype;
    int64_t columns; /* values per row; -1 until known (from the model, or the first run) */
} batch_output;

/* An id value passed through: text, and whether it is JSON to be written as is (numbers, true, null) rather
 * than a string. */
typedef struct batch_id_ref {
    uint32_t offset, len;
    uint8_t json_literal;
} batch_id_ref;

/* How the fields of a text file feed the model. For CSV, slot[i] says what header field i feeds; for JSON
 * Lines, fields are looked up by name per row (see binding.c). */
enum { SLOT_IGNORED = -1 };
#define SLOT_ID(i) (-2 - (i)) /* field passes through as id i */
#define SLOT_IS_ID(s) ((s) <= -2)
#define SLOT_ID_INDEX(s) (-2 - (s))

typedef struct batch_binding {
    int n_fields;
    char **field_names;
    int32_t *slot; /* per field: a feature slot (>= 0), SLOT_IGNORED or SLOT_ID(i) */
    bool positional; /* JSON Lines: the single input takes the non-id keys in order */
} batch_binding;

/* An input file as the reader sees it. */
typedef struct batch_file {
    const char *path;
    batch_format format;
    char delimiter;
    uint64_t size;      /* on disk (compressed size for compressed files); 0 when unknown (stdin) */
    int64_t mtime_ns;
    bool seekable;      /* a plain regular file */
    uint64_t seg_start, seg_end; /* the byte range this shard reads (records starting inside it) */
    batch_binding binding;
    bool bound;
    kiln_dtype npy_dtype; /* .npy: the element type and bytes per row */
    size_t npy_row_bytes;
    int64_t npy_features;
} batch_file;

/* Where the input continues: a file, a byte offset in its (decompressed) stream, and the line number there
 * (0 when unknown: a shard that starts in the middle of a file does not count the lines before it).
 * offset 0 means "from the file's start, header included". */
typedef struct batch_position {
    int file;
    uint64_t offset;
    int64_t line;
} batch_position;

/* The job: the model's side and the files' side of the mapping, shared read-only by the stages once the
 * pipeline runs (output column counts are settled under `lock` by the first run that sees them). */
typedef struct batch_job {
    const batch_options *opt;
    kiln_model *model;
    batch_input *inputs;
    int n_inputs;
    int64_t n_slots; /* features of all inputs */
    batch_output *outputs; /* the selected outputs, in output column order */
    int n_outputs;
    batch_file *files;
    int n_files;
    batch_format output_format;
    char output_delimiter;
    int64_t fixed_rows; /* the model's fixed batch size, or 0 when its batch dim is free */
    struct platform_mutex *lock;
} batch_job;

/* A block of records travelling through the pipeline. */
typedef struct batch_block {
    uint64_t seq;
    int file;
    /* from the reader */
    batch_text raw;            /* the records' bytes, line terminators stripped, one after another */
    int64_t n_records, cap_records;
    size_t *rec_start;         /* n_records + 1 offsets into raw */
    int64_t *rec_line;         /* line of each record (0 when unknown) */
    uint64_t *rec_offset;      /* byte offset of each record in its file */
    uint64_t input_bytes;      /* bytes the reader consumed from disk for this block (progress) */
    batch_position end;
    /* from the worker */
    void **input_data;         /* per model input: n_records rows */
    size_t *input_cap;
    uint8_t *rejected;         /* per record */
    batch_text ids;            /* id values' bytes */
    batch_id_ref *id_refs;     /* n_records x n_ids */
    batch_text out, errors;    /* formatted output rows; error entries (JSON Lines) */
    int64_t rows_out, n_rejected;
    kiln_status status;        /* a failure that ends the job (not a rejected row) */
    char message[512];
} batch_block;

/* ---- stages -------------------------------------------------------------------------------------------------- */

/* reader.c: input files -> blocks of records */
typedef struct batch_reader {
    batch_job *job;
    int file;            /* the file being read; job->n_files when all are read */
    bool file_open;
    struct batch_source *source;
    char *buf;           /* buf[start .. len) holds bytes not yet framed; buf[0] is at stream offset buf_offset */
    size_t cap, start, len;
    uint64_t buf_offset;
    bool eof;
    int64_t line;        /* line of the record at buf[start] (0: unknown) */
    uint64_t disk_bytes; /* read from disk so far, for progress */
} batch_reader;

/* Prepares to read from `from` (the start: {0, 0, 0}). */
kiln_status reader_init(batch_reader *r, batch_job *job, batch_position from);
/* Frames the next records (up to --batch-size, never across files) into the block; an empty block is
 * possible when a file holds no records. *done when the input is exhausted (the block is then empty). */
kiln_status reader_fill(batch_reader *r, batch_block *block, bool *done);
void reader_free(batch_reader *r);

/* shard.c: sets each file's [seg_start, seg_end) for --shard (the whole file when not sharded) */
kiln_status shard_plan(batch_job *job);

/* job.c: the model's inputs and outputs, the input files, the output format */
kiln_status job_open(batch_job *job, const batch_options *options);
void job_close(batch_job *job);

/* binding.c: the rule that maps columns to model inputs */
kiln_status binding_for_header(const batch_job *job, const batch_file *file, char **names, int n,
                               batch_binding *binding);
void binding_free(batch_binding *binding);
/* Converts text to a value of `dtype` at dst; returns NULL or the reason it cannot. An empty text is a
 * missing value: NaN for floats, refused for integers. */
const char *binding_store_text(kiln_dtype dtype, const char *text, size_t len, void *dst);

/* csv.c */
/* Length of the record at text[0 .. avail) with its line terminator, or 0 when it does not end there and more
 * input may follow (!at_eof). Adds the line breaks it contains to *lines. */
size_t csv_record_length(const char *text, size_t avail, bool at_eof, char delimiter, bool quoting,
                         int64_t *lines);
/* Splits a record (no line terminator) into at most `max` fields; returns the count (which may exceed max:
 * only the first max are stored) or -1 with *error set. Quoted fields are unescaped into `scratch` (record
 * length bytes). */
typedef struct csv_field {
    const char *text;
    size_t len;
} csv_field;
int csv_split(const char *rec, size_t len, char delimiter, csv_field *fields, int max, char *scratch,
              const char **error);
/* Appends `text` to t as a CSV field (quoted when it holds the delimiter, a quote or a line break). */
bool csv_append_field(batch_text *t, const char *text, size_t len, char delimiter);
kiln_status csv_parse_block(batch_job *job, batch_block *block);

/* jsonl.c */
kiln_status jsonl_parse_block(batch_job *job, batch_block *block);
/* Appends `text` as a JSON string. */
bool json_append_string(batch_text *t, const char *text, size_t len);

/* npy_input.c */
kiln_status npy_input_read_header(batch_job *job, batch_file *file, const uint8_t *head, size_t len,
                                  size_t *data_start);
kiln_status npy_input_parse_block(batch_job *job, batch_block *block);

/* errors.c: a rejected row, as one JSON line in the block's error text */
void errors_reject(batch_job *job, batch_block *block, int64_t record, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* writer.c */
kiln_status writer_header(const batch_job *job, batch_text *t);
/* Formats rows [first, first+count) of the block from the model outputs of one run whose row 0 is `first`. */
kiln_status writer_format_rows(const batch_job *job, batch_block *block, const kiln_tensor *outputs,
                               int64_t first, int64_t count);
/* .npy output: the header for `rows` rows, padded to `size` bytes (0 when it does not fit). */
size_t writer_npy_header(const batch_job *job, int64_t rows, char *buf, size_t size);
size_t writer_npy_reserved_header(const batch_job *job);
kiln_dtype writer_npy_dtype(const batch_job *job);

#endif
