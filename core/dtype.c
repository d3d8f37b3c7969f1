/*
 * dtype.c — element type facts and the float16/bfloat16 conversions. The conversions are written out bit by
 * bit rather than relying on compiler _Float16 support, which the engine's targets (old GCC, MCU toolchains,
 * WebAssembly) do not all have.
 */
#include "core/dtype.h"

#include <string.h>

bool dtype_is_known(int dtype) { return dtype >= KILN_FLOAT32 && dtype <= KILN_BFLOAT16; }

bool dtype_is_float(kiln_dtype dtype)
{
    return dtype == KILN_FLOAT32 || dtype == KILN_FLOAT64 || dtype == KILN_FLOAT16 || dtype == KILN_BFLOAT16;
}

bool dtype_is_signed_integer(kiln_dtype dtype)
{
    return dtype == KILN_INT8 || dtype == KILN_INT16 || dtype == KILN_INT32 || dtype == KILN_INT64;
}

bool dtype_is_integer(kiln_dtype dtype)
{
    return dtype_is_signed_integer(dtype) || dtype == KILN_UINT8 || dtype == KILN_UINT16 ||
           dtype == KILN_UINT32 || dtype == KILN_UINT64;
}

size_t kiln_dtype_size(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_BOOL:
    case KILN_UINT8:
    case KILN_INT8: return 1;
    case KILN_UINT16:
    case KILN_INT16:
    case KILN_FLOAT16:
    case KILN_BFLOAT16: return 2;
    case KILN_FLOAT32:
    case KILN_INT32:
    case KILN_UINT32: return 4;
    case KILN_FLOAT64:
    case KILN_INT64:
    case KILN_UINT64:
    case KILN_COMPLEX64: return 8;
    case KILN_COMPLEX128: return 16;
    case KILN_STRING: return sizeof(char *);
    case KILN_UNDEFINED: return 0;
    }
    return 0;
}

const char *kiln_dtype_name(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_UNDEFINED: return "undefined";
    case KILN_FLOAT32: return "float32";
    case KILN_UINT8: return "uint8";
    case KILN_INT8: return "int8";
    case KILN_UINT16: return "uint16";
    case KILN_INT16: return "int16";
    case KILN_INT32: return "int32";
    case KILN_INT64: return "int64";
    case KILN_STRING: return "string";
    case KILN_BOOL: return "bool";
    case KILN_FLOAT16: return "float16";
    case KILN_FLOAT64: return "float64";
    case KILN_UINT32: return "uint32";
    case KILN_UINT64: return "uint64";
    case KILN_COMPLEX64: return "complex64";
    case KILN_COMPLEX128: return "complex128";
    case KILN_BFLOAT16: return "bfloat16";
    }
    return "unknown-dtype";
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float dtype_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13)); /* inf or NaN */
    if (exponent == 0) {
        /* zero or subnormal: value is mantissa * 2^-24 */
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t dtype_float_to_half(float f)
{
    uint32_t u = float_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: overflow to inf */
    if (abs < 0x38800000u) {
        /* result is subnormal (or zero): scale so that the half ulp 2^-24 becomes 1, round to even */
        float magnitude = bits_float(abs);
        float scaled = magnitude * 16777216.0f; /* 2^24, exact */
        uint32_t whole = (uint32_t)scaled;
        float rest = scaled - (float)whole;
        if (rest > 0.5f || (rest == 0.5f && (whole & 1u))) whole++;
        return (uint16_t)(sign | whole);
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

float dtype_bfloat16_to_float(uint16_t b) { return bits_float((uint32_t)b << 16); }

uint16_t dtype_float_to_bfloat16(float f)
{
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* keep NaN a NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
