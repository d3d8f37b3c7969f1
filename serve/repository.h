/*
 * repository.h — the models a server serves: DIR/<model>/<version>/model.<onnx|json|ubj|txt> with an optional
 * DIR/<model>/config.json (see model_config.h), or one model file served under its base name.
 *
 * Every loaded version is reference-counted. The repository holds one reference while the version is listed;
 * each request takes one for as long as it runs. Reloading builds the new versions completely (loaded,
 * sessions created and warmed up) before swapping them in under a short lock, so requests never see a
 * half-loaded model: those already running finish on the old version, whose memory is returned when the last
 * of them drops its reference. A failed reload leaves the old versions serving.
 *
 * Loads, unloads and polls are serialised by one control mutex; lookups take only a short lookup mutex, so
 * inference never waits for a model to load.
 */
#ifndef KILN_SERVE_REPOSITORY_H
#define KILN_SERVE_REPOSITORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"
#include "serve/batcher.h"
#include "serve/json_writer.h"
#include "serve/metrics.h"
#include "serve/model_config.h"

/* An input or output as clients see it. */
typedef struct served_tensor {
    const char *name;       /* the served name (config.json may rename) */
    const char *model_name; /* the model's own name */
    kiln_dtype dtype;
    int rank; /* -1 when the model does not say */
    int64_t dims[KILN_MAX_RANK]; /* -1 for free dims */
} served_tensor;

typedef struct model_version {
    atomic_int refs;
    char *model_name;
    int64_t version;
    char version_text[24];
    char *path;
    const char *platform; /* "kiln_onnx", "kiln_xgboost", "kiln_lightgbm" */
    kiln_model *model;
    served_tensor *inputs, *outputs;
    int n_inputs, n_outputs;
    int max_batch_size; /* 0: not batched; else dim 0 of every input and output is the batch */
    batcher *batcher;
    version_stats *stats;
    region names; /* the served names */
} model_version;

void model_version_retain(model_version *v);
/* Drops a reference; the last one frees the version (stops its batcher, frees sessions and model). */
void model_version_release(model_version *v);
/* Index of the served input/output called name[0..len), or -1. */
int model_version_input_index(const model_version *v, const char *name, size_t len);
int model_version_output_index(const model_version *v, const char *name, size_t len);

typedef struct repository_options {
    const char *path;      /* the repository directory, or a model file */
    bool single_model;     /* path is a model file */
    model_config_defaults defaults;
    int default_instances; /* sessions per version when config.json does not say */
    metrics *metrics;
} repository_options;

typedef struct repository repository;

kiln_status repository_open(const repository_options *options, repository **out);
/* Unloads everything and frees the repository (versions still referenced by requests live on until done). */
void repository_close(repository *r);

/* Loads every model found. Fails, naming each model that did not load, if any did not. */
kiln_status repository_load_all(repository *r);
/* Whether the repository holds a model of that name (on disk, or the served file). */
bool repository_has_model(repository *r, const char *name);
/* Loads a model, or reloads it if loaded; `config` (may be NULL) replaces its config.json. A model that is
 * not in the repository fails with KILN_ERR_IO. */
kiln_status repository_load(repository *r, const char *name, const uint8_t *config, size_t config_len);
/* KILN_ERR_INVALID_ARGUMENT when no such model is known. */
kiln_status repository_unload(repository *r, const char *name);
/* Rescans the directory: loads new and changed models, unloads removed ones. */
kiln_status repository_poll(repository *r);
/* Polls every `seconds` on a thread of its own until repository_close. */
kiln_status repository_start_polling(repository *r, double seconds);

typedef enum lookup_result {
    LOOKUP_OK,
    LOOKUP_NO_MODEL,   /* no such name: 404 */
    LOOKUP_NO_VERSION, /* the model is loaded but not that version: 404 */
    LOOKUP_NOT_READY   /* loading, unloaded or failed: 503 */
} lookup_result;

/* The version to serve (`version` NULL: the newest loaded), with a reference the caller must release.
 * On failure `why` says what happened ("model 'x' is loading"). */
lookup_result repository_acquire(repository *r, const char *model, const char *version, model_version **out,
                                 char *why, size_t why_size);
/* The loaded version numbers of a model, ascending; returns how many (at most max). */
int repository_version_numbers(repository *r, const char *model, int64_t *out, int max);
/* The repository extension's index: [{"name", "version", "state", "reason"}, ...]. */
void repository_write_index(repository *r, bool ready_only, json_writer *out);
int repository_model_count(repository *r);
/* Refuses the requests queued on every loaded version (draining ran out of time). */
void repository_reject_queued(repository *r, const char *reason);

#endif
