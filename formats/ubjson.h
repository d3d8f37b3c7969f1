/*
 * ubjson.h — UBJSON (Universal Binary JSON, ubjson.org), the binary encoding XGBoost saves ".ubj" models in.
 *
 * The reader produces the same json_value tree as the JSON reader (formats/json.h), so one loader serves both
 * encodings. Every value marker of the specification is read: null Z, no-op N (skipped), true T, false F,
 * int8 i, uint8 U, int16 I, int32 l, int64 L, float32 d, float64 D, high-precision number H (decimal text),
 * char C, string S, arrays [ and objects {, including counted (#) and typed ($) containers. A typed numeric
 * array — XGBoost writes every per-node array as one, e.g. `[$d#L<count>` then count big-endian float32 — is
 * not copied: the document's array points at its bytes in the input.
 *
 * Input is untrusted: every length and count is checked against the bytes that remain before anything is
 * allocated or read, nesting is limited to JSON_MAX_DEPTH, strings must be UTF-8, and errors give the byte
 * offset ("UBJSON: byte 52: an array claims 4000000 elements, only 17 bytes remain").
 */
#ifndef KILN_FORMATS_UBJSON_H
#define KILN_FORMATS_UBJSON_H

#include <stddef.h>
#include <stdint.h>

#include "formats/json.h"

/* Parses one UBJSON value filling the whole input (no-op markers may surround it). Allocates in `mem`. */
kiln_status ubjson_parse(const uint8_t *data, size_t size, region *mem, json_value *root);

#endif
