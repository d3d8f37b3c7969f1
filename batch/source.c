/*
 * source.c — input bytes from files, standard input, gzip (zlib) and zstd (libzstd) streams (see source.h).
 *
 * zlib and libzstd are optional at build time (KILN_HAVE_ZLIB, KILN_HAVE_ZSTD, set by CMake when the Debian
 * packages zlib1g-dev and libzstd-dev are installed); without them a compressed input is refused with a
 * message naming the missing package. Concatenated gzip members and zstd frames are read through, as
 * `zcat` and `zstdcat` do.
 */
#include "batch/source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef KILN_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef KILN_HAVE_ZSTD
#include <zstd.h>
#endif

#include "core/error.h"
#include "core/mem.h"

enum { COMPRESSED_CHUNK = 1 << 17 };

const char *source_codec_name(source_codec codec)
{
    return codec == SOURCE_GZIP ? "gzip" : codec == SOURCE_ZSTD ? "zstd" : "plain";
}

bool source_codec_available(source_codec codec)
{
    switch (codec) {
#ifdef KILN_HAVE_ZLIB
    case SOURCE_GZIP: return true;
#endif
#ifdef KILN_HAVE_ZSTD
    case SOURCE_ZSTD: return true;
#endif
    case SOURCE_PLAIN: return true;
    default: return false;
    }
}

/* Reads from the file, giving back the peeked bytes first. */
static kiln_status read_raw(batch_source *s, void *buf, size_t cap, size_t *got)
{
    if (s->peek_used < s->peek_len) {
        size_t n = s->peek_len - s->peek_used < cap ? s->peek_len - s->peek_used : cap;
        memcpy(buf, s->peek + s->peek_used, n);
        s->peek_used += n;
        *got = n;
        return KILN_OK;
    }
    for (;;) {
        ssize_t n = read(s->fd, buf, cap);
        if (n >= 0) {
            *got = (size_t)n;
            s->bytes_read += (uint64_t)n;
            return KILN_OK;
        }
        if (errno != EINTR) return kiln_fail(KILN_ERR_IO, "%s: cannot read: %s", s->path, strerror(errno));
    }
}

/* ---- codecs: each has an input buffer and decompresses into the caller's buffer ----------------------------- */

#if defined(KILN_HAVE_ZLIB) || defined(KILN_HAVE_ZSTD)
typedef struct compressed_input {
    unsigned char buf[COMPRESSED_CHUNK];
    size_t len, pos;
    bool eof;
} compressed_input;

static kiln_status refill(batch_source *s, compressed_input *in)
{
    if (in->pos < in->len || in->eof) return KILN_OK;
    KILN_TRY(read_raw(s, in->buf, sizeof in->buf, &in->len));
    in->pos = 0;
    in->eof = in->len == 0;
    return KILN_OK;
}
#endif

#ifdef KILN_HAVE_ZLIB
typedef struct gzip_state {
    compressed_input in;
    z_stream z;
    bool in_member; /* inside a gzip member: the end of the file now means truncation */
} gzip_state;

static kiln_status gzip_open(batch_source *s)
{
    gzip_state *g = mem_calloc(1, sizeof *g);
    if (!g) return KILN_ERR_OUT_OF_MEMORY;
    if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) {
        mem_free(g);
        return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot start gzip decompression", s->path);
    }
    s->codec_state = g;
    return KILN_OK;
}

static kiln_status gzip_read(batch_source *s, void *buf, size_t cap, size_t *got)
{
    gzip_state *g = s->codec_state;
    g->z.next_out = buf;
    g->z.avail_out = (uInt)(cap > (1u << 30) ? 1u << 30 : cap);
    while (g->z.next_out == (Bytef *)buf) {
        KILN_TRY(refill(s, &g->in));
        if (g->in.eof && g->in.pos == g->in.len) {
            if (g->in_member) return kiln_fail(KILN_ERR_MALFORMED, "%s: the gzip stream is truncated", s->path);
            break;
        }
        g->z.next_in = g->in.buf + g->in.pos;
        g->z.avail_in = (uInt)(g->in.len - g->in.pos);
        int rc = inflate(&g->z, Z_NO_FLUSH);
        g->in.pos = g->in.len - g->z.avail_in;
        if (rc == Z_STREAM_END) {
            inflateReset(&g->z); /* another member may follow */
            g->in_member = false;
        } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
            g->in_member = true;
        } else {
            return kiln_fail(KILN_ERR_MALFORMED, "%s: corrupt gzip data: %s", s->path, g->z.msg ? g->z.msg : "error");
        }
    }
    *got = (size_t)(g->z.next_out - (Bytef *)buf);
    return KILN_OK;
}

static void gzip_close(batch_source *s)
{
    gzip_state *g = s->codec_state;
    inflateEnd(&g->z);
    mem_free(g);
}
#endif

#ifdef KILN_HAVE_ZSTD
typedef struct zstd_state {
    compressed_input in;
    ZSTD_DStream *z;
    size_t frame_remaining; /* ZSTD_decompressStream's hint: 0 between frames */
} zstd_state;

static kiln_status zstd_open(batch_source *s)
{
    zstd_state *z = mem_calloc(1, sizeof *z);
    if (!z) return KILN_ERR_OUT_OF_MEMORY;
    z->z = ZSTD_createDStream();
    if (!z->z) {
        mem_free(z);
        return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot start zstd decompression", s->path);
    }
    ZSTD_initDStream(z->z);
    s->codec_state = z;
    return KILN_OK;
}

static kiln_status zstd_read(batch_source *s, void *buf, size_t cap, size_t *got)
{
    zstd_state *z = s->codec_state;
    ZSTD_outBuffer out = {buf, cap, 0};
    while (out.pos == 0) {
        KILN_TRY(refill(s, &z->in));
        if (z->in.eof && z->in.pos == z->in.len) {
            if (z->frame_remaining) return kiln_fail(KILN_ERR_MALFORMED, "%s: the zstd stream is truncated", s->path);
            break;
        }
        ZSTD_inBuffer in = {z->in.buf, z->in.len, z->in.pos};
        size_t rc = ZSTD_decompressStream(z->z, &out, &in);
        z->in.pos = in.pos;
        if (ZSTD_isError(rc))
            return kiln_fail(KILN_ERR_MALFORMED, "%s: corrupt zstd data: %s", s->path, ZSTD_getErrorName(rc));
        z->frame_remaining = rc;
    }
    *got = out.pos;
    return KILN_OK;
}

static void zstd_close(batch_source *s)
{
    zstd_state *z = s->codec_state;
    ZSTD_freeDStream(z->z);
    mem_free(z);
}
#endif

/* ---- the stream ------------------------------------------------------------------------------------------------ */

static source_codec codec_of(const unsigned char *b, size_t n)
{
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return SOURCE_GZIP;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return SOURCE_ZSTD;
    return SOURCE_PLAIN;
}

static kiln_status peek_codec(batch_source *s)
{
    while (s->peek_len < sizeof s->peek) {
        size_t got;
        KILN_TRY(read_raw(s, s->peek + s->peek_len, sizeof s->peek - s->peek_len, &got));
        if (got == 0) break;
        s->peek_len += got;
    }
    s->codec = codec_of(s->peek, s->peek_len);
    if (!source_codec_available(s->codec))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s is %s-compressed, and this kiln was built without %s", s->path,
                         source_codec_name(s->codec), s->codec == SOURCE_GZIP ? "zlib (zlib1g-dev)" : "libzstd (libzstd-dev)");
#ifdef KILN_HAVE_ZLIB
    if (s->codec == SOURCE_GZIP) return gzip_open(s);
#endif
#ifdef KILN_HAVE_ZSTD
    if (s->codec == SOURCE_ZSTD) return zstd_open(s);
#endif
    return KILN_OK;
}

kiln_status source_open(const char *path, batch_source *s)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    if (strcmp(path, "-") == 0) {
        s->fd = STDIN_FILENO;
        s->path = "(stdin)";
    } else {
        s->fd = open(path, O_RDONLY);
        if (s->fd < 0) return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        s->owns_fd = true;
        struct stat st;
        if (fstat(s->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            source_close(s);
            return kiln_fail(KILN_ERR_IO, "%s: is a directory", path);
        }
        s->seekable = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
    }
    kiln_status status = peek_codec(s);
    if (status != KILN_OK) {
        source_close(s);
        return status;
    }
    if (s->codec != SOURCE_PLAIN) s->seekable = false;
    return KILN_OK;
}

kiln_status source_read(batch_source *s, void *buf, size_t cap, size_t *got)
{
    *got = 0;
    if (s->at_end || cap == 0) return KILN_OK;
    switch (s->codec) {
#ifdef KILN_HAVE_ZLIB
    case SOURCE_GZIP: KILN_TRY(gzip_read(s, buf, cap, got)); break;
#endif
#ifdef KILN_HAVE_ZSTD
    case SOURCE_ZSTD: KILN_TRY(zstd_read(s, buf, cap, got)); break;
#endif
    default: KILN_TRY(read_raw(s, buf, cap, got)); break;
    }
    s->position += *got;
    if (*got == 0) s->at_end = true;
    return KILN_OK;
}

kiln_status source_seek(batch_source *s, uint64_t offset)
{
    if (offset == s->position) return KILN_OK;
    if (s->seekable) {
        if (lseek(s->fd, (off_t)offset, SEEK_SET) < 0)
            return kiln_fail(KILN_ERR_IO, "%s: cannot seek: %s", s->path, strerror(errno));
        s->peek_used = s->peek_len;
        s->position = offset;
        s->at_end = false;
        return KILN_OK;
    }
    if (offset < s->position)
        return kiln_fail(KILN_ERR_INTERNAL, "%s: cannot go back in a stream", s->path);
    static char sink[1 << 16]; /* discarded bytes; sources are read by the main thread only */
    while (s->position < offset) {
        uint64_t want = offset - s->position;
        size_t got;
        KILN_TRY(source_read(s, sink, want < sizeof sink ? (size_t)want : sizeof sink, &got));
        if (got == 0) return kiln_fail(KILN_ERR_IO, "%s: ends before byte %llu", s->path, (unsigned long long)offset);
    }
    return KILN_OK;
}

void source_close(batch_source *s)
{
    if (s->codec_state) {
#ifdef KILN_HAVE_ZLIB
        if (s->codec == SOURCE_GZIP) gzip_close(s);
#endif
#ifdef KILN_HAVE_ZSTD
        if (s->codec == SOURCE_ZSTD) zstd_close(s);
#endif
    }
    if (s->owns_fd && s->fd >= 0) close(s->fd);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}
