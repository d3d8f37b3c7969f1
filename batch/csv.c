/*
 * csv.c — CSV and TSV (RFC 4180): finding records, splitting fields, parsing a block into input tensors,
 * and quoting fields on output.
 *
 * Quotes are special only at the start of a field, as in RFC 4180 and Python's csv module: "a ""b"", c" is
 * one field holding a "b", c and may span lines; a quote inside an unquoted field is an ordinary character.
 * Finding a record's end therefore needs the same small state machine as splitting it, but numeric files have
 * no quotes at all, so a record whose line holds no quote ends at its newline (memchr) and only lines with a
 * quote run the state machine. Lines may end in \n or \r\n.
 */
#include <string.h>

#include "batch/batch.h"
#include "core/error.h"
#include "core/mem.h"

enum csv_state { FIELD_START, UNQUOTED, QUOTED, QUOTE_IN_QUOTED };

/* The state machine over a record that contains a quote: its length with the terminator, or 0. */
static size_t quoted_record_length(const char *s, size_t avail, bool at_eof, char delimiter, int64_t *lines)
{
    enum csv_state state = FIELD_START;
    int64_t breaks = 0;
    for (size_t i = 0; i < avail; i++) {
        char c = s[i];
        switch (state) {
        case FIELD_START:
        case UNQUOTED:
        case QUOTE_IN_QUOTED:
            if (c == '\n') {
                *lines += breaks + 1;
                return i + 1;
            }
            if (c == delimiter) state = FIELD_START;
            else if (c == '"') state = state == FIELD_START ? QUOTED : state == QUOTE_IN_QUOTED ? QUOTED : UNQUOTED;
            else state = UNQUOTED;
            break;
        case QUOTED:
            if (c == '"') state = QUOTE_IN_QUOTED;
            else if (c == '\n') breaks++;
            break;
        }
    }
    if (!at_eof) return 0;
    *lines += breaks + 1;
    return avail; /* the last record, or an unterminated quote that runs to the end: csv_split rejects it */
}

size_t csv_record_length(const char *s, size_t avail, bool at_eof, char delimiter, bool quoting, int64_t *lines)
{
    const char *nl = memchr(s, '\n', avail);
    size_t line_len = nl ? (size_t)(nl - s) : avail;
    if (!quoting || !memchr(s, '"', line_len)) {
        if (nl) {
            *lines += 1;
            return line_len + 1;
        }
        if (!at_eof) return 0;
        *lines += 1;
        return avail;
    }
    return quoted_record_length(s, avail, at_eof, delimiter, lines);
}

/* One quoted field starting at rec[*i] (the opening quote): unescaped into scratch. */
static const char *split_quoted(const char *rec, size_t len, size_t *i, char delimiter, char **scratch,
                                csv_field *field)
{
    char *out = *scratch;
    field->text = out;
    size_t p = *i + 1;
    for (;;) {
        if (p >= len) return "a quoted field is not closed";
        const char *q = memchr(rec + p, '"', len - p);
        if (!q) return "a quoted field is not closed";
        size_t run = (size_t)(q - (rec + p));
        memcpy(out, rec + p, run);
        out += run;
        p += run + 1;
        if (p < len && rec[p] == '"') { /* "" is a quote */
            *out++ = '"';
            p++;
            continue;
        }
        break;
    }
    if (p < len && rec[p] != delimiter) return "text follows a closing quote";
    field->len = (size_t)(out - field->text);
    *scratch = out;
    *i = p;
    return NULL;
}

int csv_split(const char *rec, size_t len, char delimiter, csv_field *fields, int max, char *scratch,
              const char **error)
{
    int n = 0;
    size_t i = 0;
    bool quotes = memchr(rec, '"', len) != NULL;
    for (;;) {
        csv_field f;
        if (quotes && i < len && rec[i] == '"') {
            *error = split_quoted(rec, len, &i, delimiter, &scratch, &f);
            if (*error) return -1;
        } else {
            const char *d = memchr(rec + i, delimiter, len - i);
            size_t end = d ? (size_t)(d - rec) : len;
            f.text = rec + i;
            f.len = end - i;
            i = end;
        }
        if (n < max) fields[n] = f;
        n++;
        if (i >= len) return n;
        i++; /* the delimiter */
        if (i == len) { /* a trailing delimiter: one more, empty field */
            if (n < max) fields[n] = (csv_field){rec + len, 0};
            return n + 1;
        }
    }
}

bool csv_append_field(batch_text *t, const char *text, size_t len, char delimiter)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = text[i] == delimiter || text[i] == '"' || text[i] == '\n' || text[i] == '\r';
    if (!quote) return text_add(t, text, len);
    if (!text_reserve(t, 2 * len + 2)) return false;
    t->data[t->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"') t->data[t->len++] = '"';
        t->data[t->len++] = text[i];
    }
    t->data[t->len++] = '"';
    return true;
}

/* Keeps id field i of record r. */
static bool keep_id(batch_block *b, int n_ids, int64_t r, int i, const char *text, size_t len, bool json_literal)
{
    batch_id_ref *ref = &b->id_refs[r * n_ids + i];
    ref->offset = (uint32_t)b->ids.len;
    ref->len = (uint32_t)len;
    ref->json_literal = json_literal;
    return text_add(&b->ids, text, len);
}

/* Parses record r into its input rows and ids; false when it is rejected (the reason is recorded). */
static bool parse_record(batch_job *job, batch_block *b, int64_t r, const batch_binding *bind, csv_field *fields,
                         char *scratch, bool *oom)
{
    const char *rec = b->raw.data + b->rec_start[r];
    size_t len = b->rec_start[r + 1] - b->rec_start[r];
    const char *error;
    int n = csv_split(rec, len, job->files[b->file].delimiter, fields, bind->n_fields, scratch, &error);
    if (n < 0) {
        errors_reject(job, b, r, "%s", error);
        return false;
    }
    if (n != bind->n_fields) {
        errors_reject(job, b, r, "has %d field%s, the header has %d", n, n == 1 ? "" : "s", bind->n_fields);
        return false;
    }
    for (int f = 0; f < n; f++) {
        int32_t slot = bind->slot[f];
        if (slot == SLOT_IGNORED) continue;
        if (SLOT_IS_ID(slot)) {
            if (!keep_id(b, job->opt->n_ids, r, SLOT_ID_INDEX(slot), fields[f].text, fields[f].len, false)) {
                *oom = true;
                return false;
            }
            continue;
        }
        int k = 0;
        while (k + 1 < job->n_inputs && slot >= job->inputs[k + 1].first_slot) k++;
        const batch_input *in = &job->inputs[k];
        size_t size = kiln_dtype_size(in->dtype);
        char *dst = (char *)b->input_data[k] + ((size_t)r * (size_t)in->features + (size_t)(slot - in->first_slot)) * size;
        error = binding_store_text(in->dtype, fields[f].text, fields[f].len, dst);
        if (error) {
            int shown = fields[f].len > 64 ? 64 : (int)fields[f].len;
            errors_reject(job, b, r, "column '%s': '%.*s%s' %s", bind->field_names[f], shown, fields[f].text,
                          shown < (int)fields[f].len ? "..." : "", error);
            return false;
        }
    }
    return true;
}

kiln_status csv_parse_block(batch_job *job, batch_block *b)
{
    const batch_binding *bind = &job->files[b->file].binding;
    size_t longest = 0;
    for (int64_t r = 0; r < b->n_records; r++)
        if (b->rec_start[r + 1] - b->rec_start[r] > longest) longest = b->rec_start[r + 1] - b->rec_start[r];
    csv_field *fields = mem_alloc(sizeof *fields * (size_t)(bind->n_fields + 1));
    char *scratch = mem_alloc(longest + 1);
    if (!fields || !scratch) {
        mem_free(fields);
        mem_free(scratch);
        return KILN_ERR_OUT_OF_MEMORY;
    }
    bool oom = false;
    for (int64_t r = 0; r < b->n_records && !oom; r++)
        if (!parse_record(job, b, r, bind, fields, scratch, &oom)) b->rejected[r] = 1;
    mem_free(fields);
    mem_free(scratch);
    return oom ? kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory keeping id values") : KILN_OK;
}
