/*
 * jsonl.c — JSON Lines input: one JSON object per line, read with the engine's own JSON reader
 * (formats/json.c), and JSON string quoting for the writers.
 *
 * Keys map to model inputs by binding.c's rule, applied per object: a key equal to an input's name feeds it
 * (a number, or an array of its F values, nested arrays flattened row-major); with --columns those keys feed
 * the single input in that order; otherwise a single-input model takes the non-id keys in the object's order.
 * null is a missing value (NaN for float inputs); numbers written as strings ("1.5") are accepted. --id values
 * pass through as they were written (a number stays a number, a string a string).
 */
#include <stdio.h>
#include <string.h>

#include "batch/batch.h"
#include "core/error.h"
#include "core/mem.h"
#include "core/strmap.h"
#include "formats/json.h"

enum { TARGET_NONE = -1000000000, TARGET_INPUT = 1 << 30 }; /* TARGET_INPUT + k: the whole input k */

bool json_append_string(batch_text *t, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    bool utf8 = json_utf8_valid((const uint8_t *)text, len);
    if (!text_reserve(t, 6 * len + 2)) return false;
    char *o = t->data + t->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20 || (c >= 0x80 && !utf8)) { /* bytes that are not UTF-8 are shown as Latin-1 */
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    t->len = (size_t)(o - t->data);
    return true;
}

/* What each key names, for one block. Keys are the options' and the model's strings. */
static kiln_status build_targets(const batch_job *job, strmap *map)
{
    strmap_init(map);
    const batch_options *o = job->opt;
    for (int k = 0; k < job->n_inputs; k++) KILN_TRY(strmap_put(map, job->inputs[k].name, TARGET_INPUT + k));
    for (int j = 0; j < o->n_columns; j++) KILN_TRY(strmap_put(map, o->columns[j], j));
    for (int i = 0; i < o->n_ids; i++) KILN_TRY(strmap_put(map, o->ids[i], SLOT_ID(i)));
    return KILN_OK;
}

typedef struct row_state {
    batch_job *job;
    batch_block *b;
    int64_t r;
    uint8_t *assigned; /* per feature slot */
    const char *key;   /* the key being stored, for messages */
} row_state;

static void *slot_address(row_state *s, int64_t slot)
{
    int k = 0;
    while (k + 1 < s->job->n_inputs && slot >= s->job->inputs[k + 1].first_slot) k++;
    const batch_input *in = &s->job->inputs[k];
    size_t offset = (size_t)s->r * (size_t)in->features + (size_t)(slot - in->first_slot);
    return (char *)s->b->input_data[k] + offset * kiln_dtype_size(in->dtype);
}

/* Stores one scalar into feature `slot`; false when rejected. */
static bool store_scalar(row_state *s, const json_value *v, int64_t slot)
{
    kiln_dtype dtype = s->job->inputs[0].dtype;
    for (int k = 0; k < s->job->n_inputs; k++)
        if (slot >= s->job->inputs[k].first_slot) dtype = s->job->inputs[k].dtype;
    const char *text = "";
    size_t len = 0;
    switch (v->type) {
    case JSON_NULL: break;
    case JSON_TRUE: text = "1", len = 1; break;
    case JSON_FALSE: text = "0", len = 1; break;
    case JSON_NUMBER:
        if (v->encoding != JSON_ENC_TEXT) goto not_scalar;
        /* fall through */
    case JSON_STRING: text = v->data, len = v->length; break;
    default:
    not_scalar:
        errors_reject(s->job, s->b, s->r, "'%s' is %s, not a number", s->key, json_type_name((json_type)v->type));
        return false;
    }
    if (s->assigned[slot]) {
        errors_reject(s->job, s->b, s->r, "'%s' gives a value that another key gave already", s->key);
        return false;
    }
    const char *error = binding_store_text(dtype, text, len, slot_address(s, slot));
    if (error) {
        int shown = len > 64 ? 64 : (int)len;
        errors_reject(s->job, s->b, s->r, "'%s': '%.*s' %s", s->key, shown, text, error);
        return false;
    }
    s->assigned[slot] = 1;
    return true;
}

/* Fills features [*next, limit) from v, flattening nested arrays. */
static bool store_values(row_state *s, const json_value *v, int64_t *next, int64_t limit, int depth)
{
    if (v->type != JSON_ARRAY) {
        if (*next >= limit) return true; /* counted, reported by the caller */
        return store_scalar(s, v, (*next)++);
    }
    if (depth > 8) {
        errors_reject(s->job, s->b, s->r, "'%s' nests arrays too deeply", s->key);
        return false;
    }
    for (size_t i = 0; i < v->length; i++) {
        json_value e;
        json_array_at(v, i, &e);
        if (*next >= limit) {
            (*next)++;
            continue;
        }
        if (!store_values(s, &e, next, limit, depth + 1)) return false;
    }
    return true;
}

static bool store_id(row_state *s, const json_value *v, int i)
{
    batch_block *b = s->b;
    batch_id_ref *ref = &b->id_refs[s->r * s->job->opt->n_ids + i];
    const char *text;
    size_t len;
    bool literal = true;
    switch (v->type) {
    case JSON_NULL: text = "null", len = 4; break;
    case JSON_TRUE: text = "true", len = 4; break;
    case JSON_FALSE: text = "false", len = 5; break;
    case JSON_STRING: text = v->data, len = v->length, literal = false; break;
    case JSON_NUMBER:
        if (v->encoding == JSON_ENC_TEXT) {
            text = v->data, len = v->length;
            break;
        }
        /* fall through */
    default: errors_reject(s->job, b, s->r, "id '%s' is %s, not a single value", s->key, json_type_name((json_type)v->type)); return false;
    }
    ref->offset = (uint32_t)b->ids.len;
    ref->len = (uint32_t)len;
    ref->json_literal = literal;
    if (!text_add(&b->ids, text, len)) {
        b->status = KILN_ERR_OUT_OF_MEMORY;
        return false;
    }
    return true;
}

/* The key as a C string, for the map. */
static const char *key_string(const json_value *key, char *buf, size_t size)
{
    size_t n = key->length < size - 1 ? key->length : size - 1;
    memcpy(buf, key->data, n);
    buf[n] = '\0';
    return buf;
}

static bool check_complete(row_state *s, const json_value *root, bool *seen_ids)
{
    const batch_options *o = s->job->opt;
    for (int i = 0; i < o->n_ids; i++)
        if (!seen_ids[i]) {
            errors_reject(s->job, s->b, s->r, "no '%s' (--id)", o->ids[i]);
            return false;
        }
    for (int64_t slot = 0; slot < s->job->n_slots; slot++) {
        if (s->assigned[slot]) continue;
        int k = 0;
        while (k + 1 < s->job->n_inputs && slot >= s->job->inputs[k + 1].first_slot) k++;
        const batch_input *in = &s->job->inputs[k];
        if (o->n_columns) errors_reject(s->job, s->b, s->r, "no '%s' (--columns)", o->columns[slot]);
        else if (json_get(root, in->name) || s->job->n_inputs > 1)
            errors_reject(s->job, s->b, s->r, "'%s' needs %lld values per row", in->name, (long long)in->features);
        else
            errors_reject(s->job, s->b, s->r, "has fewer values than the %lld the model's input '%s' takes",
                          (long long)in->features, in->name);
        return false;
    }
    return true;
}

static bool parse_object(row_state *s, const json_value *root, const strmap *targets)
{
    const batch_job *job = s->job;
    bool seen_ids[64] = {false};
    bool positional = job->n_inputs == 1 && !job->opt->n_columns && !json_get(root, job->inputs[0].name);
    int64_t next_positional = 0;
    const json_member *members = root->data;
    for (size_t m = 0; m < root->length; m++) {
        char key[256];
        s->key = key_string(&members[m].key, key, sizeof key);
        int target = strmap_get(targets, s->key, TARGET_NONE);
        const json_value *v = &members[m].value;
        if (SLOT_IS_ID(target) && target != TARGET_NONE) {
            seen_ids[SLOT_ID_INDEX(target)] = true;
            if (!store_id(s, v, SLOT_ID_INDEX(target))) return false;
        } else if (target >= TARGET_INPUT) {
            const batch_input *in = &job->inputs[target - TARGET_INPUT];
            int64_t next = in->first_slot, limit = in->first_slot + in->features;
            if (!store_values(s, v, &next, limit, 0)) return false;
            if (next != limit) {
                errors_reject(s->job, s->b, s->r, "'%s' has %lld values, the model takes %lld", s->key,
                              (long long)(next - in->first_slot), (long long)in->features);
                return false;
            }
        } else if (target >= 0) {
            if (!store_scalar(s, v, target)) return false;
        } else if (positional) {
            if (next_positional >= job->n_slots) {
                errors_reject(s->job, s->b, s->r, "has more values than the %lld the model's input '%s' takes",
                              (long long)job->n_slots, job->inputs[0].name);
                return false;
            }
            if (!store_scalar(s, v, next_positional++)) return false;
        }
    }
    return check_complete(s, root, seen_ids);
}

kiln_status jsonl_parse_block(batch_job *job, batch_block *b)
{
    strmap targets;
    kiln_status st = build_targets(job, &targets);
    uint8_t *assigned = mem_alloc((size_t)job->n_slots + 1);
    if (st != KILN_OK || !assigned) {
        strmap_free(&targets);
        mem_free(assigned);
        return st != KILN_OK ? st : KILN_ERR_OUT_OF_MEMORY;
    }
    region mem;
    region_init(&mem);
    row_state s = {.job = job, .b = b, .assigned = assigned};
    for (int64_t r = 0; r < b->n_records && b->status == KILN_OK; r++) {
        s.r = r;
        memset(assigned, 0, (size_t)job->n_slots);
        json_value root;
        const uint8_t *line = (const uint8_t *)b->raw.data + b->rec_start[r];
        if (json_parse(line, b->rec_start[r + 1] - b->rec_start[r], &mem, &root) != KILN_OK)
            errors_reject(job, b, r, "%s", kiln_last_error());
        else if (root.type != JSON_OBJECT)
            errors_reject(job, b, r, "is %s, not a JSON object", json_type_name((json_type)root.type));
        else if (!parse_object(&s, &root, &targets))
            b->rejected[r] = 1;
        if ((r & 255) == 255) { /* parsed documents are not needed after their row */
            region_free(&mem);
            region_init(&mem);
        }
    }
    region_free(&mem);
    strmap_free(&targets);
    mem_free(assigned);
    if (b->status != KILN_OK) return kiln_fail(b->status, "out of memory");
    return KILN_OK;
}
