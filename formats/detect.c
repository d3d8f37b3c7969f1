/*
 * detect.c — telling model files apart by their first bytes.
 *
 * JSON starts with '{' after optional whitespace; UBJSON's object marker is also '{' but is followed by a
 * length-prefixed key ('i', 'U', 'l'...) rather than whitespace or a quote; LightGBM text models start with
 * a "tree" line (with Unix or Windows line ends) or "version=". ONNX is a protobuf ModelProto, whose first field is normally ir_version (key 0x08);
 * anything else is tried as ONNX too, so the protobuf reader can say precisely what is wrong.
 */
#include "formats/detect.h"

#include <string.h>

static int starts_with(const uint8_t *data, size_t size, const char *prefix)
{
    size_t n = strlen(prefix);
    return size >= n && memcmp(data, prefix, n) == 0;
}

model_format format_detect(const uint8_t *data, size_t size)
{
    if (starts_with(data, size, "tree\n") || starts_with(data, size, "tree\r\n") || starts_with(data, size, "version="))
        return FORMAT_LIGHTGBM_TEXT;
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    if (i < size && data[i] == '{') {
        if (i + 1 < size && (data[i + 1] == 'i' || data[i + 1] == 'U' || data[i + 1] == 'l' || data[i + 1] == 'L' ||
                             data[i + 1] == '#' || data[i + 1] == '$'))
            return FORMAT_XGBOOST_UBJSON;
        return FORMAT_XGBOOST_JSON;
    }
    return FORMAT_ONNX;
}

const char *format_name(model_format format)
{
    switch (format) {
    case FORMAT_ONNX: return "onnx";
    case FORMAT_XGBOOST_JSON: return "xgboost-json";
    case FORMAT_XGBOOST_UBJSON: return "xgboost-ubjson";
    case FORMAT_LIGHTGBM_TEXT: return "lightgbm-text";
    case FORMAT_UNKNOWN: break;
    }
    return "unknown";
}
