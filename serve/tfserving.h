/*
 * tfserving.h — TensorFlow Serving's REST predict API, for clients written against it:
 *
 *   POST /v1/models/{m}[/versions/{v}]:predict
 *     {"instances": [row, row, ...]}            row format: one value per row (an object {input: value} per row
 *                                               when the model has several inputs) -> {"predictions": [...]}
 *     {"inputs": tensor or {input: tensor}}     columnar format -> {"outputs": tensor or {output: tensor}}
 *
 * Shapes come from the nesting of the JSON values, datatypes from the model. The request becomes the same
 * infer_request as a V2 request, so it is batched and executed the same way.
 */
#ifndef KILN_SERVE_TFSERVING_H
#define KILN_SERVE_TFSERVING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serve/v2_json.h"

/* On failure writes a one-line reason into `error` and returns false (the caller answers 400). */
bool tfs_parse_predict_request(const model_version *v, const uint8_t *body, size_t length, infer_request *req,
                               bool *columnar, char *error, size_t error_size);
void tfs_write_predict_response(const model_version *v, const infer_request *req, bool columnar,
                                const kiln_tensor *outputs, json_writer *out);

#endif
