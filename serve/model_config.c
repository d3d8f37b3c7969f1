/*
 * model_config.c — reads a model's config.json (see model_config.h) with kiln's own JSON reader.
 *
 * Each key has one small reader; the table of keys is the schema, so a key is either known (and checked for
 * type and range) or reported as unknown. Strings and arrays are copied into the config's region, because the
 * parsed document dies with this call.
 */
#include "serve/model_config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/platform/platform.h"
#include "formats/json.h"

void model_config_init(model_config *c, const model_config_defaults *d)
{
    memset(c, 0, sizeof *c);
    region_init(&c->mem);
    c->max_batch_size = d ? d->max_batch_size : MODEL_CONFIG_AUTO;
    c->max_queue_delay_us = d ? d->max_queue_delay_us : 0;
    c->max_queue_size = d ? d->max_queue_size : 1024;
    c->queue_timeout_us = d ? d->queue_timeout_us : 0;
    c->instances = d ? d->instances : 0;
    c->threads = 1;
    c->policy = VERSIONS_LATEST;
    c->latest = 1;
}

void model_config_free(model_config *c) { region_free(&c->mem); }

static kiln_status read_int(const json_value *v, const char *key, int64_t min, int64_t max, int64_t *out)
{
    if (json_to_int64(v, out) != KILN_OK || *out < min || *out > max)
        return kiln_fail(KILN_ERR_MALFORMED, "'%s' must be an integer from %lld to %lld", key, (long long)min,
                         (long long)max);
    return KILN_OK;
}

static kiln_status read_int32(const json_value *v, const char *key, int min, int max, int *out)
{
    int64_t value;
    KILN_TRY(read_int(v, key, min, max, &value));
    *out = (int)value;
    return KILN_OK;
}

static kiln_status read_versions(model_config *c, const json_value *specific)
{
    const json_value *list = json_get(specific, "versions");
    if (!list || list->type != JSON_ARRAY || list->length == 0 || list->length > 1024)
        return kiln_fail(KILN_ERR_MALFORMED, "'version_policy': 'specific' needs {\"versions\": [1, ...]}");
    int64_t *versions = region_alloc(&c->mem, list->length, sizeof *versions);
    if (!versions) return KILN_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < list->length; i++) {
        json_value v;
        json_array_at(list, i, &v);
        KILN_TRY(read_int(&v, "version_policy.specific.versions", 1, INT64_MAX, &versions[i]));
    }
    c->versions = versions;
    c->n_versions = (int)list->length;
    c->policy = VERSIONS_SPECIFIC;
    return KILN_OK;
}

static kiln_status read_version_policy(model_config *c, const json_value *v)
{
    if (v->type != JSON_OBJECT || v->length != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "'version_policy' must be one of {\"latest\": {\"num_versions\": N}}, "
                                             "{\"all\": {}}, {\"specific\": {\"versions\": [...]}}");
    const json_member *m = v->data;
    if (json_string_is(&m->key, "all")) {
        c->policy = VERSIONS_ALL;
        return KILN_OK;
    }
    if (json_string_is(&m->key, "specific")) return read_versions(c, &m->value);
    if (json_string_is(&m->key, "latest")) {
        const json_value *n = json_get(&m->value, "num_versions");
        c->policy = VERSIONS_LATEST;
        c->latest = 1;
        return n ? read_int32(n, "version_policy.latest.num_versions", 1, 1024, &c->latest) : KILN_OK;
    }
    return kiln_fail(KILN_ERR_MALFORMED, "'version_policy': unknown policy '%.*s' (latest, all or specific)",
                     (int)m->key.length, (const char *)m->key.data);
}

static kiln_status read_names(model_config *c, const json_value *v, const char *key, const name_pair **out,
                              int *n_out)
{
    if (v->type != JSON_OBJECT)
        return kiln_fail(KILN_ERR_MALFORMED, "'%s' must be an object mapping the model's names to served names",
                         key);
    name_pair *pairs = region_alloc(&c->mem, v->length + 1, sizeof *pairs);
    if (!pairs) return KILN_ERR_OUT_OF_MEMORY;
    const json_member *m = v->data;
    for (size_t i = 0; i < v->length; i++) {
        if (m[i].value.type != JSON_STRING || m[i].value.length == 0)
            return kiln_fail(KILN_ERR_MALFORMED, "'%s': the served name of '%.*s' must be a non-empty string", key,
                             (int)m[i].key.length, (const char *)m[i].key.data);
        pairs[i].model_name = region_strndup(&c->mem, m[i].key.data, m[i].key.length);
        pairs[i].served_name = region_strndup(&c->mem, m[i].value.data, m[i].value.length);
        if (!pairs[i].model_name || !pairs[i].served_name) return KILN_ERR_OUT_OF_MEMORY;
    }
    *out = pairs;
    *n_out = (int)v->length;
    return KILN_OK;
}

static kiln_status read_member(model_config *c, const json_member *m)
{
    const json_value *v = &m->value;
    if (json_string_is(&m->key, "max_batch_size"))
        return read_int32(v, "max_batch_size", 0, MODEL_CONFIG_MAX_BATCH, &c->max_batch_size);
    if (json_string_is(&m->key, "max_queue_delay_us"))
        return read_int(v, "max_queue_delay_us", 0, 60000000, &c->max_queue_delay_us);
    if (json_string_is(&m->key, "max_queue_size"))
        return read_int32(v, "max_queue_size", 1, 1 << 24, &c->max_queue_size);
    if (json_string_is(&m->key, "queue_timeout_us"))
        return read_int(v, "queue_timeout_us", 0, INT64_C(3600000000), &c->queue_timeout_us);
    if (json_string_is(&m->key, "instances")) return read_int32(v, "instances", 0, 256, &c->instances);
    if (json_string_is(&m->key, "threads")) return read_int32(v, "threads", 1, 1024, &c->threads);
    if (json_string_is(&m->key, "raw_scores")) {
        if (v->type != JSON_TRUE && v->type != JSON_FALSE)
            return kiln_fail(KILN_ERR_MALFORMED, "'raw_scores' must be true or false");
        c->raw_scores = v->type == JSON_TRUE;
        return KILN_OK;
    }
    if (json_string_is(&m->key, "version_policy")) return read_version_policy(c, v);
    if (json_string_is(&m->key, "input_names"))
        return read_names(c, v, "input_names", &c->input_names, &c->n_input_names);
    if (json_string_is(&m->key, "output_names"))
        return read_names(c, v, "output_names", &c->output_names, &c->n_output_names);
    if (json_string_is(&m->key, "description")) return KILN_OK;
    return kiln_fail(KILN_ERR_MALFORMED,
                     "unknown key '%.*s' (known: max_batch_size, max_queue_delay_us, max_queue_size, "
                     "queue_timeout_us, instances, threads, raw_scores, version_policy, input_names, "
                     "output_names, description)",
                     (int)m->key.length, (const char *)m->key.data);
}

kiln_status model_config_parse(const uint8_t *text, size_t len, model_config *c)
{
    region doc;
    region_init(&doc);
    json_value root;
    kiln_status st = json_parse(text, len, &doc, &root);
    if (st == KILN_OK && root.type != JSON_OBJECT) st = kiln_fail(KILN_ERR_MALFORMED, "expected a JSON object");
    const json_member *members = st == KILN_OK ? root.data : NULL;
    for (size_t i = 0; st == KILN_OK && i < root.length; i++) st = read_member(c, &members[i]);
    region_free(&doc);
    return st;
}

kiln_status model_config_read_file(const char *path, model_config *c)
{
    struct stat info;
    if (stat(path, &info) != 0 && errno == ENOENT) return KILN_OK;
    file_mapping map;
    KILN_TRY(platform_map_file(path, &map));
    kiln_status st = model_config_parse(map.data, map.size, c);
    platform_unmap_file(&map);
    if (st != KILN_OK) return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

static const char *served_name(const name_pair *pairs, int n, const char *model_name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(pairs[i].model_name, model_name) == 0) return pairs[i].served_name;
    return model_name;
}

const char *model_config_input_name(const model_config *c, const char *model_name)
{
    return served_name(c->input_names, c->n_input_names, model_name);
}

const char *model_config_output_name(const model_config *c, const char *model_name)
{
    return served_name(c->output_names, c->n_output_names, model_name);
}
