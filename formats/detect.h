/*
 * detect.h — which kind of model file this is, decided from its contents (never its name).
 */
#ifndef KILN_FORMATS_DETECT_H
#define KILN_FORMATS_DETECT_H

#include <stddef.h>
#include <stdint.h>

typedef enum model_format {
    FORMAT_ONNX,
    FORMAT_XGBOOST_JSON,
    FORMAT_XGBOOST_UBJSON,
    FORMAT_LIGHTGBM_TEXT,
    FORMAT_UNKNOWN
} model_format;

model_format format_detect(const uint8_t *data, size_t size);
const char *format_name(model_format format);

#endif
