/*
 * symbolic.c — shapes with symbolic dims (`batch`, `sequence`) at load, by probing.
 *
 * Rather than teach every operator's shape function symbolic algebra, the shape pass is run twice with
 * every symbol replaced by a stand-in size — distinct primes, different in each run. A dim that comes out
 * the same both times is a fixed number; one that equals a symbol's stand-in in both runs is that symbol;
 * anything else (batch * 2, a data-dependent size) is reported as unknown. This gives `kiln info` the
 * shapes a user expects ([batch, 1000]) from the same shape functions the planner uses.
 */
#include <string.h>

#include "core/error.h"
#include "graph/passes.h"

#define MAX_PROBED_SYMBOLS 256

static int64_t next_prime(int64_t n)
{
    for (n = n + 1;; n++) {
        bool prime = n > 1;
        for (int64_t d = 2; d * d <= n && prime; d++) prime = n % d != 0;
        if (prime) return n;
    }
}

/* Stand-in sizes: run A takes primes from 17 up, run B the primes after A's. */
static void choose_stand_ins(int n_symbols, int64_t *a, int64_t *b)
{
    int64_t p = 16;
    for (int s = 0; s < n_symbols; s++) a[s] = p = next_prime(p);
    for (int s = 0; s < n_symbols; s++) b[s] = p = next_prime(p);
}

static kiln_status probe(const graph *g, const int64_t *stand_in, shape_result *r)
{
    kiln_tensor *inputs = mem_calloc((size_t)g->n_inputs + 1, sizeof *inputs);
    if (!inputs) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n_inputs; i++) {
        const graph_value *v = &g->values[g->inputs[i]];
        inputs[i].dtype = v->dtype;
        inputs[i].rank = v->rank;
        for (int d = 0; d < v->rank; d++)
            inputs[i].dims[d] = v->dims[d] >= 0 ? v->dims[d] : v->sym[d] >= 0 ? stand_in[v->sym[d]] : 1;
    }
    kiln_status st = graph_infer_shapes(g, inputs, SHAPE_PROBE, 1, r);
    mem_free(inputs);
    return st;
}

static int symbol_for(int n_symbols, const int64_t *a, const int64_t *b, int64_t da, int64_t db)
{
    for (int s = 0; s < n_symbols; s++)
        if (a[s] == da && b[s] == db) return s;
    return GRAPH_NO_SYMBOL;
}

kiln_status graph_infer_symbolic(graph *g)
{
    int n_symbols = g->n_symbols;
    if (n_symbols > MAX_PROBED_SYMBOLS) return KILN_OK; /* shapes stay unknown; planning still works */
    int64_t a[MAX_PROBED_SYMBOLS + 1] = {0}, b[MAX_PROBED_SYMBOLS + 1] = {0};
    choose_stand_ins(n_symbols, a, b);
    shape_result ra, rb;
    KILN_TRY(probe(g, a, &ra));
    kiln_status st = n_symbols ? probe(g, b, &rb) : KILN_OK;
    if (st != KILN_OK) {
        shape_result_free(&ra);
        return st;
    }
    const shape_result *second = n_symbols ? &rb : &ra;
    for (int v = 0; v < g->n_values; v++) {
        graph_value *value = &g->values[v];
        if (value->constant || value->is_input || value->kind != VALUE_TENSOR) continue;
        const kiln_tensor *ta = &ra.values[v], *tb = &second->values[v];
        if (!ra.known[v] || !second->known[v] || ta->rank != tb->rank) continue;
        value->rank = ta->rank;
        for (int d = 0; d < ta->rank; d++) {
            bool fixed = ta->dims[d] == tb->dims[d];
            value->dims[d] = fixed ? ta->dims[d] : -1;
            value->sym[d] = fixed ? GRAPH_NO_SYMBOL : symbol_for(n_symbols, a, b, ta->dims[d], tb->dims[d]);
        }
    }
    shape_result_free(&ra);
    if (n_symbols) shape_result_free(&rb);
    return KILN_OK;
}
