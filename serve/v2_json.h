/*
 * v2_json.h — the Open Inference Protocol (KServe V2) on the wire: inference requests in JSON, with the binary
 * tensor extension, parsed into input tensors for a model version; responses, metadata and errors written
 * back.
 *
 * Parsing is strict and explains itself: every 400 names the field and what was expected ("input 'features':
 * shape [1,31] does not match the model's [-1,30]"). Tensor data is decoded straight into the model's
 * element type; binary tensors are used in place when they are aligned.
 */
#ifndef KILN_SERVE_V2_JSON_H
#define KILN_SERVE_V2_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "formats/json.h"
#include "kiln.h"
#include "serve/json_writer.h"
#include "serve/repository.h"

/* The V2 name of a dtype ("FP32", "INT64", "BOOL", "BYTES" for strings, "BF16"), or NULL when V2 has none. */
const char *v2_datatype_name(kiln_dtype dtype);

/* A parsed inference request (V2, or TF-Serving's :predict). Tensors point into the request body or into
 * `mem`. */
typedef struct infer_request {
    region mem;
    kiln_tensor *inputs; /* per model input, in the model's order */
    int64_t rows;        /* the batch size when the model batches, else 1 */
    const char *id;      /* echoed in the response; NULL when absent */
    size_t id_length;
    int *outputs;        /* model output indices to return, in the order asked */
    bool *binary;        /* per entry of `outputs`: return as binary data */
    int n_outputs;
} infer_request;

/* Parses `body` (of which the first json_length bytes are JSON and the rest binary tensors; json_length ==
 * length without the binary extension) for model version v. On failure writes a one-line reason into `error`
 * and returns false (the caller answers 400). The body must outlive the request. */
bool v2_parse_infer_request(const model_version *v, const uint8_t *body, size_t length, size_t json_length,
                            infer_request *req, char *error, size_t error_size);
void infer_request_free(infer_request *req);

/* Writes the inference response for the outputs the request selected. When any output is binary the JSON is
 * followed by the binary tensors and *json_length is the JSON's length (for Inference-Header-Content-Length);
 * otherwise *json_length is 0. */
void v2_write_infer_response(const model_version *v, const infer_request *req, const kiln_tensor *outputs,
                             json_writer *out, size_t *json_length);

/* GET /v2/models/{m}[/versions/{v}] */
void v2_write_model_metadata(const model_version *v, const int64_t *versions, int n_versions, json_writer *out);
/* GET /v2 */
void v2_write_server_metadata(json_writer *out);
/* {"error": "..."} */
void v2_write_error(json_writer *out, const char *message);

/* Decodes JSON tensor data into `out` as t's dtype, for t's shape: either a flat array of every element, or
 * arrays nested exactly as the shape. BYTES elements (JSON strings) are copied into `strings`. `what` names the
 * tensor in errors. Shared with the TF-Serving front end. */
bool v2_decode_data(const json_value *data, const kiln_tensor *t, void *out, region *strings, const char *what,
                    char *error, size_t error_size);
/* Formats a request error into error[size] and returns false, so parsers can `return v2_fail(...)`. */
bool v2_fail(char *error, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Writes element i of t as a JSON value. */
void v2_write_element(json_writer *out, const kiln_tensor *t, int64_t i);

#endif
