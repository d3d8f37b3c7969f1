/*
 * model_config.h — a served model's options: DIR/<model>/config.json, or the server's defaults.
 *
 *   {
 *     "max_batch_size": 64,           requests are batched up to this many rows; 0 = never batch
 *                                     (default: 64 when every input and output has a free first dim of one
 *                                     name — a batch dim — else 0)
 *     "max_queue_delay_us": 0,        wait up to this long for a batch to fill (default 0: run what is queued)
 *     "max_queue_size": 1024,         requests waiting beyond this are refused with 503
 *     "queue_timeout_us": 0,          a request still queued after this long is refused with 503 (0 = never)
 *     "instances": 0,                 sessions, i.e. batches that may run at once (0 = server threads + 1)
 *     "threads": 1,                   threads inside one run
 *     "raw_scores": false,            tree and linear models: margins instead of probabilities
 *     "version_policy": {"latest": {"num_versions": 1}}    or {"all": {}}
 *                                     or {"specific": {"versions": [1, 3]}}
 *     "input_names": {"features": "x"},     serve model input "features" as "x"
 *     "output_names": {"probabilities": "p"},
 *     "description": "free text"
 *   }
 *
 * Unknown keys are errors (a misspelt option should not be silently ignored). The names follow Triton's
 * config.pbtxt where an option has a Triton equivalent, flattened into one JSON object.
 */
#ifndef KILN_SERVE_MODEL_CONFIG_H
#define KILN_SERVE_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "kiln.h"

#define MODEL_CONFIG_AUTO (-1)
#define MODEL_CONFIG_MAX_BATCH 65536

typedef enum version_policy { VERSIONS_LATEST, VERSIONS_ALL, VERSIONS_SPECIFIC } version_policy;

typedef struct name_pair {
    const char *model_name;
    const char *served_name;
} name_pair;

typedef struct model_config {
    int max_batch_size; /* MODEL_CONFIG_AUTO: decided from the model */
    int64_t max_queue_delay_us;
    int max_queue_size;
    int64_t queue_timeout_us;
    int instances; /* 0: the server's default */
    int threads;
    bool raw_scores;
    version_policy policy;
    int latest;             /* VERSIONS_LATEST: how many of the newest */
    const int64_t *versions; /* VERSIONS_SPECIFIC */
    int n_versions;
    const name_pair *input_names, *output_names;
    int n_input_names, n_output_names;
    region mem; /* owns the strings and arrays above */
} model_config;

/* Server-wide defaults that config.json overrides (from `kiln serve` options). */
typedef struct model_config_defaults {
    int max_batch_size;
    int64_t max_queue_delay_us;
    int max_queue_size;
    int64_t queue_timeout_us;
    int instances;
} model_config_defaults;

void model_config_init(model_config *c, const model_config_defaults *defaults);
/* Reads a config.json text over the defaults already in *c. Fails with a message naming the key. */
kiln_status model_config_parse(const uint8_t *text, size_t len, model_config *c);
/* Reads `path` if it exists (a missing file leaves the defaults). */
kiln_status model_config_read_file(const char *path, model_config *c);
void model_config_free(model_config *c);

/* The served name of a model input/output (the model's own name unless renamed). */
const char *model_config_input_name(const model_config *c, const char *model_name);
const char *model_config_output_name(const model_config *c, const char *model_name);

#endif
