/*
 * access_log.h — one JSON line per HTTP request (`kiln serve --access-log PATH`, "-" for stdout):
 *
 *   {"time":"2024-05-01T12:00:00.123Z","remote":"127.0.0.1","method":"POST","path":"/v2/models/m/infer",
 *    "status":200,"bytes_in":512,"bytes_out":180,"duration_us":84,"model":"m","version":"1","id":"42"}
 *
 * Each line goes out in one write(2) to a descriptor opened with O_APPEND, so lines from different threads
 * never interleave and no lock is taken. The server logs a request when it is answered.
 */
#ifndef KILN_SERVE_ACCESS_LOG_H
#define KILN_SERVE_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct access_entry {
    const char *remote, *method, *path;
    int status;
    uint64_t bytes_in, bytes_out, duration_us;
    const char *model, *version; /* NULL when the request named none */
    const char *id;              /* the V2 request id, NULL when absent */
    size_t id_length;
} access_entry;

typedef struct access_log access_log;

kiln_status access_log_open(const char *path, access_log **out);
void access_log_write(access_log *log, const access_entry *e);
void access_log_close(access_log *log);

#endif
