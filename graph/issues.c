/*
 * issues.c — collecting every problem a model has, so one load reports them all instead of making the
 * user fix and retry one operator at a time.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"

kiln_status graph_issues_add(graph_issues *issues, kiln_status status, const char *where, const char *message)
{
    if (issues->count == issues->capacity) {
        int cap = issues->capacity ? issues->capacity * 2 : 8;
        graph_issue *items = mem_realloc(issues->items, (size_t)cap * sizeof *items);
        if (!items) return KILN_ERR_OUT_OF_MEMORY;
        issues->items = items;
        issues->capacity = cap;
    }
    graph_issue *it = &issues->items[issues->count];
    it->status = status;
    it->where = region_strdup(issues->mem, where);
    it->message = region_strdup(issues->mem, message);
    it->text = region_printf(issues->mem, "%s: %s", where, message);
    if (!it->where || !it->message || !it->text) return KILN_ERR_OUT_OF_MEMORY;
    issues->count++;
    return KILN_OK;
}

kiln_status graph_issues_fail(const graph_issues *issues)
{
    /* malformed beats unsupported: a broken file is the more urgent news */
    kiln_status status = KILN_ERR_UNSUPPORTED;
    for (int i = 0; i < issues->count; i++)
        if (issues->items[i].status != KILN_ERR_UNSUPPORTED) status = issues->items[i].status;
    char text[4096];
    size_t used = 0;
    int n = snprintf(text, sizeof text, "%d node%s cannot run: ", issues->count, issues->count == 1 ? "" : "s");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < issues->count && used < sizeof text; i++) {
        n = snprintf(text + used, sizeof text - used, "%s%s: %s", i ? "; " : "", issues->items[i].where,
                     issues->items[i].message);
        used += n > 0 ? (size_t)n : 0;
    }
    return kiln_fail(status, "%s", text);
}

void graph_issues_free(graph_issues *issues)
{
    mem_free(issues->items);
    issues->items = NULL;
    issues->count = issues->capacity = 0;
}
