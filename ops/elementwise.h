/*
 * elementwise.h — the machinery shared by kiln's elementwise operators (unary maths, activations, binary
 * arithmetic and logic, Where, and the variadic Max/Min/Sum/Mean).
 *
 * Every elementwise operator is one *kernel*: a function that computes one contiguous row of the output
 * from rows of its inputs, where each input either advances with the row or is broadcast along it (a single
 * element repeated). ew_run walks the output in such rows under numpy broadcasting, after merging the
 * dimensions that can be traversed as one; so the common cases need no special code in the operators:
 *
 *   same shapes             one row covering the whole tensor, every input advancing
 *   a scalar operand        one row, that operand broadcast along it
 *   [N,C] + [C] or [N,1]    N rows of C, the small operand advancing or broadcast within each row
 *
 * ew_run splits the output into ranges for the thread pool; a kernel only ever sees one row piece.
 *
 * Kernels are generated per dtype from a scalar expression by the EW_*_KERNEL macros, and gathered into an
 * ew_table indexed by kiln_dtype. An operator's init picks its kernel from the table once (ew_pick), which
 * also turns a missing entry into the usual "unsupported dtype" load error; eval then just calls ew_run.
 */
#ifndef KILN_OPS_ELEMENTWISE_H
#define KILN_OPS_ELEMENTWISE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "ops/op.h"

/* Most inputs an elementwise kernel takes (Where's condition, X and Y). */
#define EW_MAX_INPUTS 3

/* Computes out[i] for i < n from in[j][varies[j] ? i : 0]. `params` is what the operator passed to ew_run. */
typedef void (*ew_kernel)(const void *params, void *out, const void *const *in, const bool *varies, int64_t n);

/* Kernels indexed by kiln_dtype (of the input that decides the dtype); NULL where unsupported. */
#define EW_DTYPE_SLOTS (KILN_BFLOAT16 + 1)
typedef ew_kernel ew_table[EW_DTYPE_SLOTS];

/* The attributes elementwise kernels read, copied into a local before each row so the compiler keeps them
 * in registers. Operators document which field holds which ONNX attribute. */
typedef struct ew_attrs {
    float alpha, beta, gamma;
    bool detect_positive, detect_negative; /* IsInf */
} ew_attrs;

/* The params of most elementwise nodes: the kernel chosen at init and the attributes it reads. */
typedef struct ew_node {
    ew_kernel kernel;
    ew_attrs attrs;
} ew_node;

/* Sets *kernel to table's entry for input `input`'s dtype; fails like op_require_dtype when there is none. */
kiln_status ew_pick(const op_init_ctx *ctx, int input, const ew_kernel *table, ew_kernel *kernel);
/* Fails unless input `input` (when present) has the same dtype as input `like`. */
kiln_status ew_require_same_dtype(const op_init_ctx *ctx, int input, int like);

/* Shape function: output 0 takes the broadcast of every present input. */
kiln_status ew_shape_broadcast(op_ctx *ctx);

/* Computes `out` (its shape already set) from n_in inputs broadcast to it (shapes already validated). */
void ew_run(const parallel_runner *parallel, ew_kernel kernel, const void *params, kiln_tensor *out, int n_in,
            const kiln_tensor *const *in);

/* eval for ew_node operators: ew_run over every input with the node's kernel and attributes. */
kiln_status ew_eval_node(op_ctx *ctx);

/* Float32 functions with vectorised versions (kernels/vmath.h). */
typedef enum ew_vector_fn { EW_VECTOR_EXP, EW_VECTOR_SIGMOID, EW_VECTOR_TANH, EW_VECTOR_ERF } ew_vector_fn;
/* When input 0 is float32 and this CPU has a vectorised `fn`, replaces *kernel (the reference) with it. */
void ew_prefer_vectorised(const op_init_ctx *ctx, ew_vector_fn fn, ew_kernel *kernel);

/* ---- kernel generation -------------------------------------------------------------------------------- */

/* Dtype lists: EW_FLOATS(X, args...) expands X(C type, suffix, kiln dtype, args...) for each dtype. */
#define EW_FLOATS(X, ...) X(float, f32, KILN_FLOAT32, __VA_ARGS__) X(double, f64, KILN_FLOAT64, __VA_ARGS__)
#define EW_SIGNED(X, ...)                                                                                   \
    X(int8_t, i8, KILN_INT8, __VA_ARGS__) X(int16_t, i16, KILN_INT16, __VA_ARGS__)                          \
    X(int32_t, i32, KILN_INT32, __VA_ARGS__) X(int64_t, i64, KILN_INT64, __VA_ARGS__)
#define EW_UNSIGNED(X, ...)                                                                                 \
    X(uint8_t, u8, KILN_UINT8, __VA_ARGS__) X(uint16_t, u16, KILN_UINT16, __VA_ARGS__)                      \
    X(uint32_t, u32, KILN_UINT32, __VA_ARGS__) X(uint64_t, u64, KILN_UINT64, __VA_ARGS__)
#define EW_INTEGERS(X, ...) EW_SIGNED(X, __VA_ARGS__) EW_UNSIGNED(X, __VA_ARGS__)
#define EW_BOOLS(X, ...) X(uint8_t, b8, KILN_BOOL, __VA_ARGS__)
/* float16 and bfloat16, stored as uint16_t bit patterns: their kernels (EW_BINARY_HALF) compute in float32
 * and round the result back to nearest even. */
#define EW_HALFS(X, ...) X(uint16_t, f16, KILN_FLOAT16, __VA_ARGS__) X(uint16_t, bf16, KILN_BFLOAT16, __VA_ARGS__)

/* Output element types: the input's own, or bool (stored as one byte 0/1). */
#define EW_SAME(T) T
#define EW_BOOL(T) uint8_t

/* For a dtype list: defines op_<suffix> computing out = F(T, x, attrs) (unary) or F(T, x, y) (binary), with
 * `attrs` a const ew_attrs * and OUT one of EW_SAME / EW_BOOL. */
#define EW_UNARY(T, sfx, dtype, op, F, OUT) EW_UNARY_KERNEL(op##_##sfx, T, OUT(T), F)
#define EW_BINARY(T, sfx, dtype, op, F, OUT) EW_BINARY_KERNEL(op##_##sfx, T, T, OUT(T), F)
/* For EW_HALFS: defines op_<suffix> computing out = F(float, x, y) on the values widened to float32. */
#define EW_BINARY_HALF(T, sfx, dtype, op, F, OUT) EW_BINARY_HALF_KERNEL(op##_##sfx, sfx##_to_float, float_to_##sfx, F)
/* For a dtype list: the table entries [dtype] = op_<suffix>. */
#define EW_ENTRY(T, sfx, dtype, op) [dtype] = op##_##sfx,

/* out = F(TIN, x, attrs): params points to an ew_attrs. A broadcast input gives one value, computed once. */
#define EW_UNARY_KERNEL(name, TIN, TOUT, F)                                                                 \
    static void name(const void *params, void *out_, const void *const *in, const bool *varies, int64_t n) \
    {                                                                                                       \
        const ew_attrs attrs_ = params ? *(const ew_attrs *)params : (ew_attrs){0};                         \
        const ew_attrs *attrs = &attrs_;                                                                    \
        const TIN *x = in[0];                                                                               \
        TOUT *out = out_;                                                                                   \
        (void)attrs;                                                                                        \
        if (varies[0]) {                                                                                    \
            for (int64_t i = 0; i < n; i++) out[i] = F(TIN, x[i], attrs);                                   \
        } else {                                                                                            \
            const TOUT value = F(TIN, x[0], attrs);                                                         \
            for (int64_t i = 0; i < n; i++) out[i] = value;                                                 \
        }                                                                                                   \
    }

/* out = F(TA, a, b), with one loop per broadcast pattern so each can be vectorised; the broadcast operand is
 * read into a local first, which also keeps the loop correct when out aliases the other input. */
#define EW_BINARY_KERNEL(name, TA, TB, TOUT, F)                                                             \
    static void name(const void *params, void *out_, const void *const *in, const bool *varies, int64_t n) \
    {                                                                                                       \
        const TA *a = in[0];                                                                                \
        const TB *b = in[1];                                                                                \
        TOUT *out = out_;                                                                                   \
        (void)params;                                                                                       \
        if (varies[0] && varies[1]) {                                                                       \
            for (int64_t i = 0; i < n; i++) out[i] = F(TA, a[i], b[i]);                                     \
        } else if (varies[0]) {                                                                             \
            const TB y = b[0];                                                                              \
            for (int64_t i = 0; i < n; i++) out[i] = F(TA, a[i], y);                                        \
        } else if (varies[1]) {                                                                             \
            const TA x = a[0];                                                                              \
            for (int64_t i = 0; i < n; i++) out[i] = F(TA, x, b[i]);                                        \
        } else {                                                                                            \
            const TOUT value = F(TA, a[0], b[0]);                                                           \
            for (int64_t i = 0; i < n; i++) out[i] = value;                                                 \
        }                                                                                                   \
    }

/* out = NARROW(F(float, WIDEN(a), WIDEN(b))) over half-precision bit patterns. Halves are a storage format, so
 * one strided loop serves every broadcast pattern; the conversions dominate its cost anyway. */
#define EW_BINARY_HALF_KERNEL(name, WIDEN, NARROW, F)                                                       \
    static void name(const void *params, void *out_, const void *const *in, const bool *varies, int64_t n) \
    {                                                                                                       \
        const uint16_t *a = in[0], *b = in[1];                                                              \
        uint16_t *out = out_;                                                                               \
        const int64_t sa = varies[0], sb = varies[1];                                                       \
        (void)params;                                                                                       \
        for (int64_t i = 0; i < n; i++) {                                                                   \
            const float x = WIDEN(a[i * sa]), y = WIDEN(b[i * sb]);                                         \
            out[i] = NARROW(F(float, x, y));                                                                \
        }                                                                                                   \
    }

/* ---- scalar helpers shared by the kernels ------------------------------------------------------------- */

static inline float f16_to_float(uint16_t h) { return dtype_half_to_float(h); }
static inline uint16_t float_to_f16(float f) { return dtype_float_to_half(f); }
static inline float bf16_to_float(uint16_t b) { return dtype_bfloat16_to_float(b); }
static inline uint16_t float_to_bf16(float f) { return dtype_float_to_bfloat16(f); }

/* Converts a double to integer type T, saturating at T's range and taking NaN to 0 (a plain C cast of an
 * out-of-range value is undefined behaviour, and hostile data can hold any value). */
#define EW_SATURATE(T, v)                                                                                   \
    ((T)_Generic((T)0,                                                                                      \
        int8_t: ew_to_signed((v), INT8_MIN, INT8_MAX), int16_t: ew_to_signed((v), INT16_MIN, INT16_MAX),    \
        int32_t: ew_to_signed((v), INT32_MIN, INT32_MAX), int64_t: ew_to_signed((v), INT64_MIN, INT64_MAX), \
        uint8_t: ew_to_unsigned((v), UINT8_MAX), uint16_t: ew_to_unsigned((v), UINT16_MAX),                 \
        uint32_t: ew_to_unsigned((v), UINT32_MAX), uint64_t: ew_to_unsigned((v), UINT64_MAX)))

static inline int64_t ew_to_signed(double v, int64_t lo, int64_t hi)
{
    if (v != v) return 0;
    if (v <= (double)lo) return lo;
    if (v >= (double)hi) return hi; /* (double)INT64_MAX rounds up to 2^63, so smaller values convert */
    return (int64_t)v;
}

static inline uint64_t ew_to_unsigned(double v, uint64_t hi)
{
    if (v != v || v <= 0) return 0;
    if (v >= (double)hi) return hi;
    return (uint64_t)v;
}

#endif
