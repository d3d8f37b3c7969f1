/*
 * access_log.c — JSON-lines access log (see access_log.h).
 */
#include "serve/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "serve/json_writer.h"

struct access_log {
    int fd;
    int owned; /* opened here (not stdout) */
};

kiln_status access_log_open(const char *path, access_log **out)
{
    *out = NULL;
    access_log *log = calloc(1, sizeof *log);
    if (!log) return kiln_fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
    if (strcmp(path, "-") == 0) {
        log->fd = STDOUT_FILENO;
    } else {
        log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        log->owned = 1;
        if (log->fd < 0) {
            free(log);
            return kiln_fail(KILN_ERR_IO, "%s: cannot open the access log: %s", path, strerror(errno));
        }
    }
    *out = log;
    return KILN_OK;
}

void access_log_close(access_log *log)
{
    if (!log) return;
    if (log->owned) close(log->fd);
    free(log);
}

static void write_time(json_writer *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char text[40];
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    jw_key(w, "time");
    jw_string(w, text);
}

static void write_optional(json_writer *w, const char *key, const char *value, size_t length)
{
    if (!value) return;
    jw_key(w, key);
    jw_string_n(w, value, length);
}

void access_log_write(access_log *log, const access_entry *e)
{
    json_writer w;
    jw_init(&w);
    jw_object_begin(&w);
    write_time(&w);
    write_optional(&w, "remote", e->remote, e->remote ? strlen(e->remote) : 0);
    write_optional(&w, "method", e->method, e->method ? strlen(e->method) : 0);
    write_optional(&w, "path", e->path, e->path ? strlen(e->path) : 0);
    jw_key(&w, "status");
    jw_int(&w, e->status);
    jw_key(&w, "bytes_in");
    jw_uint(&w, e->bytes_in);
    jw_key(&w, "bytes_out");
    jw_uint(&w, e->bytes_out);
    jw_key(&w, "duration_us");
    jw_uint(&w, e->duration_us);
    write_optional(&w, "model", e->model, e->model ? strlen(e->model) : 0);
    write_optional(&w, "version", e->version, e->version ? strlen(e->version) : 0);
    write_optional(&w, "id", e->id, e->id_length);
    jw_object_end(&w);
    jw_raw(&w, "\n", 1);
    if (!w.failed) {
        ssize_t written = write(log->fd, w.data, w.length);
        (void)written; /* a full disk must not fail requests */
    }
    jw_free(&w);
}
