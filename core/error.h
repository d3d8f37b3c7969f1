/*
 * error.h — how the engine reports failure.
 *
 * Every fallible internal function returns a kiln_status and, on failure, writes a one-line message into a
 * per-thread buffer with kiln_fail(); the public kiln_last_error() reads it back. Keeping the message beside
 * the status (rather than in a returned struct) lets deep code name the node or tensor at the point where it
 * knows it, while callers higher up add context with kiln_fail_prefix() ("model.onnx: node 'conv1': ...").
 */
#ifndef KILN_CORE_ERROR_H
#define KILN_CORE_ERROR_H

#include "kiln.h"

#if defined(__GNUC__)
#define KILN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define KILN_PRINTF(fmt, args)
#endif

/* Records a formatted message for the calling thread and returns `status`, so callers can write
 * `return kiln_fail(KILN_ERR_MALFORMED, "tensor '%s': ...", name);`. */
kiln_status kiln_fail(kiln_status status, const char *fmt, ...) KILN_PRINTF(2, 3);

/* Prepends context to the current message: "<prefix>: <old message>". Returns `status` unchanged. */
kiln_status kiln_fail_prefix(kiln_status status, const char *fmt, ...) KILN_PRINTF(2, 3);

void kiln_clear_error(void);

/* Propagates a failure without adding to its message. */
#define KILN_TRY(expr)                                                                                      \
    do {                                                                                                    \
        kiln_status try_status_ = (expr);                                                                   \
        if (try_status_ != KILN_OK) return try_status_;                                                     \
    } while (0)

#endif
