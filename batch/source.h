/*
 * source.h — an input file as a stream of bytes: a plain file, standard input, or a gzip or zstd
 * compressed file decompressed on the fly. Compression is recognised by the stream's first bytes (gzip's
 * 1f 8b, zstd's 28 b5 2f fd), never by the file name, so `data.csv`, `data.csv.gz` and a compressed stdin
 * all work. Offsets are in the decompressed stream.
 */
#ifndef KILN_BATCH_SOURCE_H
#define KILN_BATCH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef enum source_codec { SOURCE_PLAIN, SOURCE_GZIP, SOURCE_ZSTD } source_codec;

typedef struct batch_source {
    const char *path;
    int fd;
    bool owns_fd, seekable;
    source_codec codec;
    uint64_t position;     /* decompressed bytes delivered so far */
    uint64_t bytes_read;   /* bytes read from the file (compressed, for compressed files) */
    unsigned char peek[4]; /* the first bytes, read to recognise the codec and given back first */
    size_t peek_len, peek_used;
    void *codec_state;     /* z_stream or ZSTD_DStream, with its input buffer */
    bool at_end;
} batch_source;

/* Opens path ("-" for standard input) and recognises its codec. */
kiln_status source_open(const char *path, batch_source *s);
/* Up to `cap` bytes into buf; *got 0 means the end of the stream. */
kiln_status source_read(batch_source *s, void *buf, size_t cap, size_t *got);
/* Continues at `offset` of the decompressed stream: lseek for plain files, otherwise by reading forward
 * (offset must not be behind the current position). */
kiln_status source_seek(batch_source *s, uint64_t offset);
void source_close(batch_source *s);
const char *source_codec_name(source_codec codec);
/* Whether this build reads gzip and zstd. */
bool source_codec_available(source_codec codec);

#endif
