/*
 * repository.c — scanning, loading, swapping and unloading model versions (see repository.h).
 *
 * A model entry is created the first time its name is seen and never removed (a model deleted from disk stays
 * listed as UNAVAILABLE), so entry pointers stay valid without reference counts of their own; only the
 * versions they list are counted. Each entry remembers a fingerprint of its directory (config.json and every
 * version's model file: size, mtime, inode) from its last load attempt; polling reloads an entry when the
 * fingerprint changes, and does not retry a broken model until its files change again.
 */
#include "serve/repository.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "serve/v2_json.h"

typedef enum model_state { MODEL_LOADING, MODEL_READY, MODEL_UNAVAILABLE } model_state;

typedef struct model_entry {
    char *name;
    char *dir; /* DIR/<name>; NULL in single-model mode */
    model_state state;
    char reason[512];
    model_version **versions; /* ascending by number */
    int n_versions;
    uint64_t fingerprint; /* of the files at the last load attempt */
    bool present;         /* seen by the last scan */
} model_entry;

struct repository {
    repository_options options;
    char *path;
    pthread_mutex_t lookup;  /* entries' states and version lists */
    pthread_mutex_t control; /* one load, unload or poll at a time */
    model_entry **entries;
    int n_entries, capacity;
    pthread_t poller;
    bool polling;
    pthread_mutex_t poll_mutex;
    pthread_cond_t poll_wake;
    bool closing;
    double poll_seconds;
};

static const char *const model_files[] = {"model.onnx", "model.json", "model.ubj", "model.txt"};
#define N_MODEL_FILES (sizeof model_files / sizeof model_files[0])

/* ---- versions ------------------------------------------------------------------------------------------ */

void model_version_retain(model_version *v) { atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed); }

static void version_free(model_version *v)
{
    batcher_free(v->batcher);
    kiln_model_free(v->model);
    free(v->inputs);
    free(v->outputs);
    region_free(&v->names);
    free(v->model_name);
    free(v->path);
    free(v);
}

void model_version_release(model_version *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) version_free(v);
}

static int find_tensor(const served_tensor *t, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0) return i;
    return -1;
}

int model_version_input_index(const model_version *v, const char *name, size_t len)
{
    return find_tensor(v->inputs, v->n_inputs, name, len);
}

int model_version_output_index(const model_version *v, const char *name, size_t len)
{
    return find_tensor(v->outputs, v->n_outputs, name, len);
}

/* Every rename in config.json must name a real input/output (a typo would silently serve the old name). */
static kiln_status check_renames(const name_pair *pairs, int n, const served_tensor *t, int n_t, const char *what)
{
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int k = 0; k < n_t; k++) found = found || strcmp(t[k].model_name, pairs[i].model_name) == 0;
        if (!found) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s_names: the model has no %s '%s'", what, what,
                                     pairs[i].model_name);
    }
    return KILN_OK;
}

static kiln_status describe_tensors(model_version *v, const model_config *cfg)
{
    v->n_inputs = kiln_model_input_count(v->model);
    v->n_outputs = kiln_model_output_count(v->model);
    v->inputs = calloc((size_t)v->n_inputs + 1, sizeof *v->inputs);
    v->outputs = calloc((size_t)v->n_outputs + 1, sizeof *v->outputs);
    if (!v->inputs || !v->outputs) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < v->n_inputs + v->n_outputs; k++) {
        bool is_input = k < v->n_inputs;
        served_tensor *t = is_input ? &v->inputs[k] : &v->outputs[k - v->n_inputs];
        kiln_value_info info;
        KILN_TRY(is_input ? kiln_model_input_info(v->model, k, &info)
                          : kiln_model_output_info(v->model, k - v->n_inputs, &info));
        if (info.kind != KILN_VALUE_TENSOR) /* e.g. ZipMap's sequence of maps: V2 carries tensors only */
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s '%s' is a sequence, map or optional, which the V2 protocol "
                             "cannot carry (serve a model that ends before ZipMap)", is_input ? "input" : "output",
                             info.name);
        t->model_name = info.name;
        t->name = region_strdup(&v->names, is_input ? model_config_input_name(cfg, info.name)
                                                    : model_config_output_name(cfg, info.name));
        if (!t->name) return KILN_ERR_OUT_OF_MEMORY;
        t->dtype = info.dtype;
        t->rank = info.rank;
        memcpy(t->dims, info.dims, sizeof t->dims);
        if (!v2_datatype_name(info.dtype))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "%s '%s' is %s, which the V2 protocol cannot carry",
                             is_input ? "input" : "output", info.name, kiln_dtype_name(info.dtype));
    }
    KILN_TRY(check_renames(cfg->input_names, cfg->n_input_names, v->inputs, v->n_inputs, "input"));
    return check_renames(cfg->output_names, cfg->n_output_names, v->outputs, v->n_outputs, "output");
}

/* Whether every input and output starts with the same named free dim: the model's batch dim. */
static bool has_batch_dim(const model_version *v)
{
    const char *batch = NULL;
    for (int k = 0; k < v->n_inputs + v->n_outputs; k++) {
        bool is_input = k < v->n_inputs;
        kiln_value_info info;
        if ((is_input ? kiln_model_input_info(v->model, k, &info)
                      : kiln_model_output_info(v->model, k - v->n_inputs, &info)) != KILN_OK)
            return false;
        if (info.rank < 1 || info.dims[0] >= 0 || !info.dim_names[0]) return false;
        if (!batch) batch = info.dim_names[0];
        else if (strcmp(batch, info.dim_names[0]) != 0) return false;
    }
    return batch != NULL;
}

static kiln_status decide_batching(model_version *v, const model_config *cfg)
{
    if (cfg->max_batch_size == MODEL_CONFIG_AUTO) {
        v->max_batch_size = has_batch_dim(v) ? 64 : 0;
        return KILN_OK;
    }
    v->max_batch_size = cfg->max_batch_size;
    for (int i = 0; v->max_batch_size > 0 && i < v->n_inputs; i++)
        if (v->inputs[i].rank < 1 || v->inputs[i].dims[0] >= 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "max_batch_size is %d but input '%s' has no free first dim to batch along",
                             v->max_batch_size, v->inputs[i].model_name);
    return KILN_OK;
}

static const char *platform_of(const kiln_model *model)
{
    kiln_model_summary s;
    if (kiln_model_summarize(model, &s) != KILN_OK || !s.format) return "kiln";
    if (strncmp(s.format, "xgboost", 7) == 0) return "kiln_xgboost";
    if (strncmp(s.format, "lightgbm", 8) == 0) return "kiln_lightgbm";
    return "kiln_onnx";
}

static kiln_status version_load(repository *r, const char *name, const model_config *cfg, int64_t number,
                                const char *path, model_version **out)
{
    *out = NULL;
    model_version *v = calloc(1, sizeof *v);
    if (!v) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    atomic_init(&v->refs, 1);
    region_init(&v->names);
    v->version = number;
    snprintf(v->version_text, sizeof v->version_text, "%lld", (long long)number);
    v->model_name = strdup(name);
    v->path = strdup(path);
    kiln_status st = v->model_name && v->path ? kiln_model_load(path, &v->model) : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) st = describe_tensors(v, cfg);
    if (st == KILN_OK) st = decide_batching(v, cfg);
    if (st == KILN_OK) {
        v->platform = platform_of(v->model);
        v->stats = metrics_version_stats(r->options.metrics, name, v->version_text);
        batcher_options bo = {
            .model = v->model,
            .instances = cfg->instances > 0 ? cfg->instances : r->options.default_instances,
            .threads = cfg->threads,
            .raw_scores = cfg->raw_scores,
            .max_batch_size = v->max_batch_size,
            .max_queue_delay_us = cfg->max_queue_delay_us,
            .max_queue_size = cfg->max_queue_size,
            .queue_timeout_us = cfg->queue_timeout_us,
            .stats = v->stats,
        };
        st = v->stats ? batcher_create(&bo, &v->batcher) : kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (st != KILN_OK) {
        kiln_fail_prefix(st, "version %lld", (long long)number);
        version_free(v);
        return st;
    }
    *out = v;
    return KILN_OK;
}

/* ---- reading a model directory ------------------------------------------------------------------------- */

static bool parse_version_number(const char *text, int64_t *out)
{
    if (!text[0] || strlen(text) > 18) return false;
    for (const char *p = text; *p; p++)
        if (!isdigit((unsigned char)*p)) return false;
    *out = strtoll(text, NULL, 10);
    return *out > 0;
}

static char *join_path(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* The model file of a version directory; NULL (with a message) when there is none or more than one. */
static char *find_model_file(const char *version_dir, int64_t number)
{
    char *found = NULL;
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        char *path = join_path(version_dir, model_files[i]);
        struct stat st;
        if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (found) {
                kiln_fail(KILN_ERR_INVALID_ARGUMENT, "version %lld holds more than one model file (%s and %s)",
                          (long long)number, strrchr(found, '/') + 1, model_files[i]);
                free(found);
                free(path);
                return NULL;
            }
            found = path;
        } else {
            free(path);
        }
    }
    if (!found)
        kiln_fail(KILN_ERR_IO, "version %lld has no model.onnx, model.json, model.ubj or model.txt", (long long)number);
    return found;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The numbered version directories of a model, ascending. */
static kiln_status list_versions(const char *dir, int64_t **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return kiln_fail(KILN_ERR_IO, "%s: %s", dir, strerror(errno));
    int64_t *numbers = NULL;
    int n = 0, capacity = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t number;
        if (!parse_version_number(e->d_name, &number)) continue;
        if (n == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            int64_t *grown = realloc(numbers, (size_t)capacity * sizeof *grown);
            if (!grown) {
                free(numbers);
                closedir(d);
                return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
            }
            numbers = grown;
        }
        numbers[n++] = number;
    }
    closedir(d);
    qsort(numbers, (size_t)n, sizeof *numbers, compare_int64);
    *out = numbers;
    *n_out = n;
    return KILN_OK;
}

/* The versions the policy selects from those on disk. */
static kiln_status select_versions(const model_config *cfg, const int64_t *all, int n_all, int64_t *chosen,
                                   int *n_chosen)
{
    *n_chosen = 0;
    if (cfg->policy == VERSIONS_SPECIFIC) {
        for (int i = 0; i < cfg->n_versions; i++) {
            if (!bsearch(&cfg->versions[i], all, (size_t)n_all, sizeof *all, compare_int64))
                return kiln_fail(KILN_ERR_IO, "version_policy lists version %lld, which is not in the directory",
                                 (long long)cfg->versions[i]);
            chosen[(*n_chosen)++] = cfg->versions[i];
        }
        qsort(chosen, (size_t)*n_chosen, sizeof *chosen, compare_int64);
        return KILN_OK;
    }
    int first = cfg->policy == VERSIONS_ALL || cfg->latest >= n_all ? 0 : n_all - cfg->latest;
    for (int i = first; i < n_all; i++) chosen[(*n_chosen)++] = all[i];
    if (*n_chosen == 0) return kiln_fail(KILN_ERR_IO, "no version directories (DIR/<model>/1/model.onnx, ...)");
    return KILN_OK;
}

static void hash_bytes(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) *h = (*h ^ p[i]) * 1099511628211u; /* FNV-1a */
}

static void hash_file(uint64_t *h, const char *path)
{
    struct stat st;
    hash_bytes(h, path, strlen(path));
    if (stat(path, &st) != 0) return;
    int64_t facts[] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                       (int64_t)st.st_ino};
    hash_bytes(h, facts, sizeof facts);
}

/* Size, mtime and inode of config.json and of every version's model files. */
static uint64_t fingerprint(const model_entry *e, const char *single_file)
{
    uint64_t h = 14695981039346656037u;
    if (!e->dir) {
        hash_file(&h, single_file);
        return h;
    }
    char *config = join_path(e->dir, "config.json");
    if (config) hash_file(&h, config);
    free(config);
    int64_t *numbers;
    int n;
    if (list_versions(e->dir, &numbers, &n) != KILN_OK) return h;
    for (int i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "%lld", (long long)numbers[i]);
        char *version_dir = join_path(e->dir, name);
        for (size_t f = 0; version_dir && f < N_MODEL_FILES; f++) {
            char *path = join_path(version_dir, model_files[f]);
            if (path) hash_file(&h, path);
            free(path);
        }
        free(version_dir);
    }
    free(numbers);
    return h;
}

/* ---- entries ------------------------------------------------------------------------------------------- */

static model_entry *find_entry(repository *r, const char *name)
{
    for (int i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i]->name, name) == 0) return r->entries[i];
    return NULL;
}

/* Under the lookup mutex. */
static model_entry *add_entry(repository *r, const char *name)
{
    if (r->n_entries == r->capacity) {
        int capacity = r->capacity ? 2 * r->capacity : 16;
        model_entry **grown = realloc(r->entries, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        r->entries = grown;
        r->capacity = capacity;
    }
    model_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->name = strdup(name);
    e->dir = r->options.single_model ? NULL : join_path(r->path, name);
    if (!e->name || (!r->options.single_model && !e->dir)) {
        free(e->name);
        free(e->dir);
        free(e);
        return NULL;
    }
    e->state = MODEL_UNAVAILABLE;
    snprintf(e->reason, sizeof e->reason, "not loaded");
    r->entries[r->n_entries++] = e;
    return e;
}

static model_entry *find_or_add_entry(repository *r, const char *name)
{
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, name);
    if (!e) e = add_entry(r, name);
    pthread_mutex_unlock(&r->lookup);
    return e;
}

static void release_all(model_version **versions, int n)
{
    for (int i = 0; i < n; i++) model_version_release(versions[i]);
    free(versions);
}

/* Installs a new list of versions (NULL/0 to unload) and releases the old one outside the lock. */
static void swap_versions(repository *r, model_entry *e, model_version **versions, int n, model_state state,
                          const char *reason)
{
    pthread_mutex_lock(&r->lookup);
    model_version **old = e->versions;
    int n_old = e->n_versions;
    e->versions = versions;
    e->n_versions = n;
    e->state = state;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    pthread_mutex_unlock(&r->lookup);
    release_all(old, n_old);
}

/* Loads the versions the config selects; all or nothing. */
static kiln_status load_versions(repository *r, model_entry *e, const model_config *cfg, model_version ***out,
                                 int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!e->dir) {
        model_version **one = calloc(1, sizeof *one);
        if (!one) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
        kiln_status st = version_load(r, e->name, cfg, 1, r->path, &one[0]);
        if (st != KILN_OK) free(one);
        else *out = one, *n_out = 1;
        return st;
    }
    int64_t *all;
    int n_all;
    KILN_TRY(list_versions(e->dir, &all, &n_all));
    int64_t *chosen = calloc((size_t)(n_all + cfg->n_versions + 1), sizeof *chosen);
    model_version **versions = calloc((size_t)(n_all + cfg->n_versions + 1), sizeof *versions);
    int n = 0;
    kiln_status st = chosen && versions ? select_versions(cfg, all, n_all, chosen, &n)
                                        : kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; st == KILN_OK && i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "%lld", (long long)chosen[i]);
        char *version_dir = join_path(e->dir, name);
        char *file = version_dir ? find_model_file(version_dir, chosen[i]) : NULL;
        st = file ? version_load(r, e->name, cfg, chosen[i], file, &versions[i]) : KILN_ERR_IO;
        free(version_dir);
        free(file);
    }
    free(all);
    free(chosen);
    if (st != KILN_OK) {
        for (int i = 0; i < n; i++)
            if (versions && versions[i]) model_version_release(versions[i]);
        free(versions);
        return st;
    }
    *out = versions;
    *n_out = n;
    return KILN_OK;
}

static kiln_status read_config(repository *r, model_entry *e, const uint8_t *override, size_t override_len,
                               model_config *cfg)
{
    model_config_init(cfg, &r->options.defaults);
    if (override) {
        kiln_status st = model_config_parse(override, override_len, cfg);
        return st == KILN_OK ? st : kiln_fail_prefix(st, "the 'config' parameter");
    }
    if (!e->dir) return KILN_OK;
    char *path = join_path(e->dir, "config.json");
    if (!path) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    kiln_status st = model_config_read_file(path, cfg);
    free(path);
    return st;
}

/* Loads (or reloads) an entry; under the control mutex. */
static kiln_status load_entry(repository *r, model_entry *e, const uint8_t *config, size_t config_len)
{
    e->fingerprint = fingerprint(e, r->path);
    pthread_mutex_lock(&r->lookup);
    bool reloading = e->n_versions > 0;
    if (!reloading) {
        e->state = MODEL_LOADING;
        snprintf(e->reason, sizeof e->reason, "loading");
    }
    pthread_mutex_unlock(&r->lookup);

    model_config cfg;
    model_version **versions = NULL;
    int n = 0;
    kiln_status st = read_config(r, e, config, config_len, &cfg);
    if (st == KILN_OK) st = load_versions(r, e, &cfg, &versions, &n);
    model_config_free(&cfg);
    if (st != KILN_OK) {
        kiln_fail_prefix(st, "model '%s'", e->name);
        pthread_mutex_lock(&r->lookup);
        if (!reloading) e->state = MODEL_UNAVAILABLE;
        snprintf(e->reason, sizeof e->reason, "%s%s", reloading ? "reload failed, still serving: " : "",
                 kiln_last_error());
        pthread_mutex_unlock(&r->lookup);
        return st;
    }
    swap_versions(r, e, versions, n, MODEL_READY, "");
    return KILN_OK;
}

/* ---- the public operations ----------------------------------------------------------------------------- */

static bool is_model_dir(const char *repo, const char *name)
{
    if (name[0] == '.') return false;
    char *path = join_path(repo, name);
    struct stat st;
    bool dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return dir;
}

/* The base name of a model file without its extension: what `kiln serve MODEL` serves it as. */
static char *single_model_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    if (!name) return NULL;
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0';
    return name;
}

/* Marks every entry absent, then adds or marks those now on disk. */
static kiln_status scan(repository *r)
{
    for (int i = 0; i < r->n_entries; i++) r->entries[i]->present = false;
    if (r->options.single_model) {
        char *name = single_model_name(r->path);
        model_entry *e = name ? find_or_add_entry(r, name) : NULL;
        free(name);
        if (!e) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
        e->present = true;
        return KILN_OK;
    }
    DIR *d = opendir(r->path);
    if (!d) return kiln_fail(KILN_ERR_IO, "%s: %s", r->path, strerror(errno));
    struct dirent *de;
    kiln_status st = KILN_OK;
    while (st == KILN_OK && (de = readdir(d)) != NULL) {
        if (!is_model_dir(r->path, de->d_name)) continue;
        model_entry *e = find_or_add_entry(r, de->d_name);
        if (!e) st = kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
        else e->present = true;
    }
    closedir(d);
    return st;
}

kiln_status repository_open(const repository_options *options, repository **out)
{
    *out = NULL;
    repository *r = calloc(1, sizeof *r);
    if (!r) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    r->options = *options;
    r->path = strdup(options->path);
    pthread_mutex_init(&r->lookup, NULL);
    pthread_mutex_init(&r->control, NULL);
    pthread_mutex_init(&r->poll_mutex, NULL);
    pthread_cond_init(&r->poll_wake, NULL);
    kiln_status st = r->path ? scan(r) : kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == KILN_OK && r->n_entries == 0)
        st = kiln_fail(KILN_ERR_IO, "%s: no model directories (expected DIR/<model>/<version>/model.onnx)", r->path);
    if (st != KILN_OK) {
        repository_close(r);
        return st;
    }
    *out = r;
    return KILN_OK;
}

kiln_status repository_load_all(repository *r)
{
    char failures[2048] = "";
    size_t used = 0;
    pthread_mutex_lock(&r->control);
    for (int i = 0; i < r->n_entries; i++) {
        if (load_entry(r, r->entries[i], NULL, 0) == KILN_OK) continue;
        int n = snprintf(failures + used, sizeof failures - used, "%s%s", used ? "; " : "", kiln_last_error());
        if (n > 0) used = (size_t)n + used < sizeof failures ? used + (size_t)n : sizeof failures - 1;
    }
    pthread_mutex_unlock(&r->control);
    return used ? kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s", failures) : KILN_OK;
}

bool repository_has_model(repository *r, const char *name)
{
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, name);
    pthread_mutex_unlock(&r->lookup);
    return r->options.single_model ? e != NULL : strchr(name, '/') == NULL && is_model_dir(r->path, name);
}

kiln_status repository_load(repository *r, const char *name, const uint8_t *config, size_t config_len)
{
    pthread_mutex_lock(&r->control);
    kiln_status st;
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, name);
    pthread_mutex_unlock(&r->lookup);
    if (!repository_has_model(r, name)) st = kiln_fail(KILN_ERR_IO, "the repository has no model '%s'", name);
    else if (!e && !(e = find_or_add_entry(r, name))) st = kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    else st = load_entry(r, e, config, config_len);
    if (st == KILN_OK) e->present = true;
    pthread_mutex_unlock(&r->control);
    return st;
}

kiln_status repository_unload(repository *r, const char *name)
{
    pthread_mutex_lock(&r->control);
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, name);
    pthread_mutex_unlock(&r->lookup);
    kiln_status st = e ? KILN_OK : kiln_fail(KILN_ERR_INVALID_ARGUMENT, "unknown model '%s'", name);
    if (e) swap_versions(r, e, NULL, 0, MODEL_UNAVAILABLE, "unloaded");
    pthread_mutex_unlock(&r->control);
    return st;
}

kiln_status repository_poll(repository *r)
{
    pthread_mutex_lock(&r->control);
    kiln_status st = scan(r);
    for (int i = 0; st == KILN_OK && i < r->n_entries; i++) {
        model_entry *e = r->entries[i];
        if (!e->present) {
            if (e->fingerprint) swap_versions(r, e, NULL, 0, MODEL_UNAVAILABLE, "removed from the repository");
            e->fingerprint = 0; /* so that putting it back loads it again */
            continue;
        }
        if (fingerprint(e, r->path) != e->fingerprint)
            load_entry(r, e, NULL, 0); /* a failure is recorded in the entry's reason */
    }
    pthread_mutex_unlock(&r->control);
    return st;
}

static void *poll_thread(void *arg)
{
    repository *r = arg;
    pthread_mutex_lock(&r->poll_mutex);
    while (!r->closing) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double seconds = r->poll_seconds;
        ts.tv_sec += (time_t)seconds;
        ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&r->poll_wake, &r->poll_mutex, &ts);
        if (r->closing) break;
        pthread_mutex_unlock(&r->poll_mutex);
        if (repository_poll(r) != KILN_OK) fprintf(stderr, "kiln serve: polling the repository: %s\n", kiln_last_error());
        pthread_mutex_lock(&r->poll_mutex);
    }
    pthread_mutex_unlock(&r->poll_mutex);
    return NULL;
}

kiln_status repository_start_polling(repository *r, double seconds)
{
    r->poll_seconds = seconds;
    if (pthread_create(&r->poller, NULL, poll_thread, r) != 0)
        return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "cannot start the polling thread");
    r->polling = true;
    return KILN_OK;
}

void repository_close(repository *r)
{
    if (!r) return;
    if (r->polling) {
        pthread_mutex_lock(&r->poll_mutex);
        r->closing = true;
        pthread_cond_signal(&r->poll_wake);
        pthread_mutex_unlock(&r->poll_mutex);
        pthread_join(r->poller, NULL);
    }
    for (int i = 0; i < r->n_entries; i++) {
        model_entry *e = r->entries[i];
        release_all(e->versions, e->n_versions);
        free(e->name);
        free(e->dir);
        free(e);
    }
    free(r->entries);
    pthread_cond_destroy(&r->poll_wake);
    pthread_mutex_destroy(&r->poll_mutex);
    pthread_mutex_destroy(&r->control);
    pthread_mutex_destroy(&r->lookup);
    free(r->path);
    free(r);
}

/* ---- lookups ------------------------------------------------------------------------------------------- */

static lookup_result not_ready(const model_entry *e, char *why, size_t why_size)
{
    if (e->state == MODEL_LOADING) snprintf(why, why_size, "model '%s' is loading", e->name);
    else snprintf(why, why_size, "model '%s' is not loaded (%s)", e->name, e->reason);
    return LOOKUP_NOT_READY;
}

lookup_result repository_acquire(repository *r, const char *model, const char *version, model_version **out,
                                 char *why, size_t why_size)
{
    *out = NULL;
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, model);
    lookup_result result = LOOKUP_OK;
    int64_t number = 0;
    if (!e) {
        snprintf(why, why_size, "unknown model '%s'", model);
        result = LOOKUP_NO_MODEL;
    } else if (e->n_versions == 0) {
        result = not_ready(e, why, why_size);
    } else if (!version) {
        *out = e->versions[e->n_versions - 1];
    } else if (parse_version_number(version, &number)) {
        for (int i = 0; i < e->n_versions && !*out; i++)
            if (e->versions[i]->version == number) *out = e->versions[i];
    }
    if (result == LOOKUP_OK && !*out) {
        snprintf(why, why_size, "model '%s' has no version '%s' loaded", model, version);
        result = LOOKUP_NO_VERSION;
    }
    if (*out) model_version_retain(*out);
    pthread_mutex_unlock(&r->lookup);
    return result;
}

int repository_version_numbers(repository *r, const char *model, int64_t *out, int max)
{
    pthread_mutex_lock(&r->lookup);
    model_entry *e = find_entry(r, model);
    int n = 0;
    for (int i = 0; e && i < e->n_versions && n < max; i++) out[n++] = e->versions[i]->version;
    pthread_mutex_unlock(&r->lookup);
    return n;
}

int repository_model_count(repository *r)
{
    pthread_mutex_lock(&r->lookup);
    int n = r->n_entries;
    pthread_mutex_unlock(&r->lookup);
    return n;
}

static const char *state_name(model_state s)
{
    return s == MODEL_READY ? "READY" : s == MODEL_LOADING ? "LOADING" : "UNAVAILABLE";
}

static void write_index_entry(json_writer *out, const char *name, const char *version, const char *state,
                              const char *reason)
{
    jw_object_begin(out);
    jw_key(out, "name");
    jw_string(out, name);
    if (version) {
        jw_key(out, "version");
        jw_string(out, version);
    }
    jw_key(out, "state");
    jw_string(out, state);
    jw_key(out, "reason");
    jw_string(out, reason);
    jw_object_end(out);
}

void repository_write_index(repository *r, bool ready_only, json_writer *out)
{
    jw_array_begin(out);
    pthread_mutex_lock(&r->lookup);
    for (int i = 0; i < r->n_entries; i++) {
        const model_entry *e = r->entries[i];
        for (int k = 0; k < e->n_versions; k++)
            write_index_entry(out, e->name, e->versions[k]->version_text, "READY", e->reason);
        if (e->n_versions == 0 && !ready_only) write_index_entry(out, e->name, NULL, state_name(e->state), e->reason);
    }
    pthread_mutex_unlock(&r->lookup);
    jw_array_end(out);
}

void repository_reject_queued(repository *r, const char *reason)
{
    pthread_mutex_lock(&r->lookup);
    for (int i = 0; i < r->n_entries; i++)
        for (int k = 0; k < r->entries[i]->n_versions; k++)
            batcher_reject_queued(r->entries[i]->versions[k]->batcher, reason);
    pthread_mutex_unlock(&r->lookup);
}
