/*
 * npy.c — reading and writing .npy files.
 *
 * The header is a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
 * Rather than parse Python, the reader finds the three keys and reads their values with a small scanner
 * that rejects anything unexpected; every number is range-checked, since headers come from users' files.
 *
 * String tensors are written as NumPy's fixed-width unicode arrays ('<U<width>', UTF-32 code points padded
 * with zeros to the longest string), which np.load reads without pickling; they are not read back.
 */
#include "formats/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/platform/platform.h"
#include "core/tensor.h"

static const char magic[] = "\x93NUMPY";

bool npy_is_npy(const uint8_t *data, size_t size) { return size >= 6 && memcmp(data, magic, 6) == 0; }

static const struct {
    const char *code; /* descr without the byte-order character */
    kiln_dtype dtype;
} descr_codes[] = {
    {"f4", KILN_FLOAT32}, {"f8", KILN_FLOAT64}, {"f2", KILN_FLOAT16}, {"i1", KILN_INT8},   {"i2", KILN_INT16},
    {"i4", KILN_INT32},   {"i8", KILN_INT64},   {"u1", KILN_UINT8},   {"u2", KILN_UINT16}, {"u4", KILN_UINT32},
    {"u8", KILN_UINT64},  {"b1", KILN_BOOL},    {"c8", KILN_COMPLEX64}, {"c16", KILN_COMPLEX128},
};

/* The text after `'key':` (skipping spaces), or NULL. */
static const char *find_key(const char *header, const char *key)
{
    char pattern[32];
    snprintf(pattern, sizeof pattern, "'%s'", key);
    const char *p = strstr(header, pattern);
    if (!p) return NULL;
    p += strlen(pattern);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static kiln_status parse_descr(const char *p, kiln_dtype *dtype)
{
    if (!p || (*p != '\'' && *p != '"')) return kiln_fail(KILN_ERR_MALFORMED, ".npy header has no 'descr'");
    char quote = *p++;
    const char *end = strchr(p, quote);
    if (!end || end - p > 8) return kiln_fail(KILN_ERR_MALFORMED, ".npy header has a bad 'descr'");
    char descr[10];
    memcpy(descr, p, (size_t)(end - p));
    descr[end - p] = '\0';
    char order = descr[0];
    if (order == '>') return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy data is big-endian ('%s'); save it little-endian", descr);
    const char *code = (order == '<' || order == '|' || order == '=') ? descr + 1 : descr;
    if (order == '|' && (code[1] != '1'))
        return kiln_fail(KILN_ERR_MALFORMED, ".npy descr '%s' is not a one-byte type", descr);
    for (size_t i = 0; i < sizeof descr_codes / sizeof descr_codes[0]; i++)
        if (strcmp(code, descr_codes[i].code) == 0) {
            *dtype = descr_codes[i].dtype;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy dtype '%s' is not supported", descr);
}

static kiln_status parse_shape(const char *p, kiln_tensor *t)
{
    if (!p || *p != '(') return kiln_fail(KILN_ERR_MALFORMED, ".npy header has no 'shape'");
    p++;
    int rank = 0;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (*p < '0' || *p > '9') return kiln_fail(KILN_ERR_MALFORMED, ".npy header has a bad 'shape'");
        if (rank >= KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy array has rank above kiln's maximum of %d", KILN_MAX_RANK);
        errno = 0;
        char *end;
        long long dim = strtoll(p, &end, 10);
        if (errno || dim < 0) return kiln_fail(KILN_ERR_MALFORMED, ".npy header has a bad dimension");
        t->dims[rank++] = dim;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return kiln_fail(KILN_ERR_MALFORMED, ".npy header has a bad 'shape'");
    }
    t->rank = rank;
    return KILN_OK;
}

kiln_status npy_parse_header(const uint8_t *data, size_t size, kiln_tensor *t, size_t *data_offset)
{
    if (!npy_is_npy(data, size)) return kiln_fail(KILN_ERR_MALFORMED, "not a .npy file (bad magic)");
    if (size < 10) return kiln_fail(KILN_ERR_MALFORMED, ".npy file is truncated in its header");
    int major = data[6];
    size_t header_len, start;
    if (major == 1) {
        header_len = (size_t)data[8] | (size_t)data[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return kiln_fail(KILN_ERR_MALFORMED, ".npy file is truncated in its header");
        header_len = (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24;
        start = 12;
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy format version %d is not supported", major);
    }
    if (header_len > size - start || header_len > 1 << 20)
        return kiln_fail(KILN_ERR_MALFORMED, ".npy file is truncated in its header");
    char *header = malloc(header_len + 1);
    if (!header) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(header, data + start, header_len);
    header[header_len] = '\0';
    memset(t, 0, sizeof *t);
    kiln_status st = parse_descr(find_key(header, "descr"), &t->dtype);
    const char *fortran = st == KILN_OK ? find_key(header, "fortran_order") : NULL;
    if (st == KILN_OK && !fortran) st = kiln_fail(KILN_ERR_MALFORMED, ".npy header has no 'fortran_order'");
    if (st == KILN_OK && strncmp(fortran, "False", 5) != 0)
        st = kiln_fail(KILN_ERR_UNSUPPORTED, ".npy array is in Fortran order; save it C-contiguous");
    if (st == KILN_OK) st = parse_shape(find_key(header, "shape"), t);
    free(header);
    if (st != KILN_OK) return st;
    int64_t numel;
    KILN_TRY(shape_numel_checked(t->rank, t->dims, &numel));
    if (!mem_mul_ok((size_t)numel, kiln_dtype_size(t->dtype), &(size_t){0}))
        return kiln_fail(KILN_ERR_MALFORMED, ".npy shape is too large");
    *data_offset = start + header_len;
    return KILN_OK;
}

kiln_status npy_parse(const uint8_t *data, size_t size, kiln_tensor *t, size_t *data_offset)
{
    KILN_TRY(npy_parse_header(data, size, t, data_offset));
    size_t need = (size_t)shape_numel(t->rank, t->dims) * kiln_dtype_size(t->dtype);
    if (size - *data_offset < need)
        return kiln_fail(KILN_ERR_MALFORMED, ".npy file is truncated: %zu data bytes, its shape needs %zu",
                         size - *data_offset, need);
    return KILN_OK;
}

static const char *descr_for(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: return "<f4";
    case KILN_FLOAT64: return "<f8";
    case KILN_FLOAT16: return "<f2";
    case KILN_INT8: return "|i1";
    case KILN_INT16: return "<i2";
    case KILN_INT32: return "<i4";
    case KILN_INT64: return "<i8";
    case KILN_UINT8: return "|u1";
    case KILN_UINT16: return "<u2";
    case KILN_BFLOAT16: return "<u2"; /* numpy has no bfloat16: its bit pattern, as ONNX's test data stores it */
    case KILN_UINT32: return "<u4";
    case KILN_UINT64: return "<u8";
    case KILN_BOOL: return "|b1";
    case KILN_COMPLEX64: return "<c8";
    case KILN_COMPLEX128: return "<c16";
    default: return NULL;
    }
}

/* The code point of the UTF-8 sequence at s (U+FFFD for a malformed one); sets *len to its bytes. */
static uint32_t utf8_next(const unsigned char *s, size_t *len)
{
    int extra = s[0] < 0x80 ? 0 : (s[0] & 0xe0) == 0xc0 ? 1 : (s[0] & 0xf0) == 0xe0 ? 2 : (s[0] & 0xf8) == 0xf0 ? 3 : -1;
    *len = 1;
    if (extra < 0) return 0xfffd;
    uint32_t cp = extra ? s[0] & (0x3fu >> extra) : s[0];
    for (int k = 1; k <= extra; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0xfffd; /* also stops at the terminating NUL */
        cp = cp << 6 | (s[k] & 0x3fu);
    }
    *len = (size_t)extra + 1;
    return cp;
}

static int64_t utf8_code_points(const char *s)
{
    int64_t n = 0;
    for (size_t len; *s; s += len, n++) utf8_next((const unsigned char *)s, &len);
    return n;
}

/* Code points of the longest string (at least 1: NumPy has no '<U0'). */
static int64_t string_width(const kiln_tensor *t)
{
    int64_t width = 1;
    const char *const *strings = t->data;
    for (int64_t i = 0, n = tensor_numel(t); i < n; i++) {
        int64_t w = utf8_code_points(strings[i]);
        if (w > width) width = w;
    }
    return width;
}

size_t npy_format_header(const kiln_tensor *t, char *buf, size_t size)
{
    char string_descr[32];
    const char *descr = descr_for(t->dtype);
    if (t->dtype == KILN_STRING) {
        snprintf(string_descr, sizeof string_descr, "<U%lld", (long long)string_width(t));
        descr = string_descr;
    }
    if (!descr || size < 512) return 0;
    char dict[400];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++) n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld, ", (long long)t->dims[i]);
    if (t->rank > 1) n -= 2; /* numpy writes (2, 3) but (4,) */
    else if (t->rank == 1) n -= 1;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1; /* magic+version+len, dict, newline */
    size_t padded = (total + 63) / 64 * 64;
    if (padded > size) return 0;
    memcpy(buf, magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    size_t header_len = padded - 10;
    buf[8] = (char)(header_len & 0xff);
    buf[9] = (char)(header_len >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', padded - 10 - (size_t)n - 1);
    buf[padded - 1] = '\n';
    return padded;
}

kiln_status npy_write_file(const char *path, const kiln_tensor *t)
{
    char header[512];
    size_t header_len = npy_format_header(t, header, sizeof header);
    if (!header_len) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: dtype %s cannot be written as .npy", path,
                                      kiln_dtype_name(t->dtype));
    if (t->dtype != KILN_STRING) return platform_write_file_atomic(path, header, header_len, t->data, tensor_bytes(t));
    int64_t width = string_width(t), numel = tensor_numel(t);
    size_t bytes;
    if (!mem_mul_ok((size_t)numel, (size_t)width * 4, &bytes)) return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: too large", path);
    uint32_t *body = mem_calloc(bytes / 4 + 1, 4);
    if (!body) return KILN_ERR_OUT_OF_MEMORY;
    const char *const *strings = t->data;
    for (int64_t i = 0; i < numel; i++) {
        uint32_t *out = body + i * width;
        for (const char *s = strings[i], *end = s + strlen(s); s < end;) {
            size_t len;
            *out++ = utf8_next((const unsigned char *)s, &len);
            s += len;
        }
    }
    kiln_status st = platform_write_file_atomic(path, header, header_len, body, bytes);
    mem_free(body);
    return st;
}
