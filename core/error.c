/*
 * error.c — per-thread error messages (see error.h). The buffer is fixed-size so that reporting an error can
 * never itself fail for lack of memory; long messages (many unsupported operators) are cut with "...".
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERROR_BUFFER_BYTES 4096

static _Thread_local char error_message[ERROR_BUFFER_BYTES];

/* Messages are one line whatever the names in them contain (a hostile model can name a tensor "a\nb"):
 * control characters become '?'. Long messages end in "...". */
static void finish_message(int written)
{
    if (written >= ERROR_BUFFER_BYTES) memcpy(error_message + ERROR_BUFFER_BYTES - 4, "...", 4);
    for (char *p = error_message; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

kiln_status kiln_fail(kiln_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int written = vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    finish_message(written);
    return status;
}

kiln_status kiln_fail_prefix(kiln_status status, const char *fmt, ...)
{
    char old[ERROR_BUFFER_BYTES];
    memcpy(old, error_message, sizeof old);
    va_list args;
    va_start(args, fmt);
    int written = vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    if (written < 0) written = 0;
    if (written < ERROR_BUFFER_BYTES) {
        int more = snprintf(error_message + written, sizeof error_message - (size_t)written, ": %s", old);
        written += more > 0 ? more : 0;
    }
    finish_message(written);
    return status;
}

void kiln_clear_error(void) { error_message[0] = '\0'; }

const char *kiln_last_error(void) { return error_message; }

const char *kiln_status_name(kiln_status status)
{
    switch (status) {
    case KILN_OK: return "ok";
    case KILN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERR_IO: return "i/o error";
    case KILN_ERR_MALFORMED: return "malformed input";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_OUT_OF_MEMORY: return "out of memory";
    case KILN_ERR_RUNTIME: return "runtime error";
    case KILN_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
