/*
 * lstm_activations.h -- sigma and tanh for the gate kernels, float32 and float64.
 *
 * Why not libm: expf/tanhf are scalar calls the compiler cannot vectorise without
 * -ffast-math, and they dominated the forward pass.  These are branch-free straight-line
 * code that gcc vectorises in the pointwise loops, with the same results in every lane.
 *
 * Method.  Both functions need exp of a non-positive number only:
 *     sigmoid(z) = 1 / (1 + e)      for z >= 0,   e / (1 + e) for z < 0,   e = exp(-|z|)
 *     tanh(z)    = sign(z) * -m / (2 + m),          m = expm1(-2|z|)
 * so nothing overflows for any input.  exp and expm1 share one range reduction:
 *     x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2
 * (Cody-Waite: ln2 split into a short head, exact when multiplied by n, and a tail), then
 *     q = expm1(r) by its Taylor series (degree 7 for float32, 13 for float64: the truncation
 *         error r^(d+1)/(d+1)! is below 2^-27 and 2^-56 respectively),
 *     exp(x)   = 2^n (1 + q),
 *     expm1(x) = 2^n q + (2^n - 1),
 * with 2^n built directly from its exponent bits.
 *
 * Accuracy (measured over dense grids of the whole range by tests/kernels/test_activations.py):
 * within a few ulps of the correctly rounded value; the bound the tests enforce is stated
 * there.  Saturation: tanh returns exactly +-1 for |z| beyond TANH_BIG; sigmoid returns
 * exactly 1 for large z and exactly 0 when the true value is below the smallest normal
 * number (z < -126 ln 2 = -87.34 in float32, z < -1022 ln 2 = -708.40 in float64) instead
 * of a subnormal: an absolute error below 1.2e-38 / 2.3e-308, which keeps slow subnormal
 * arithmetic out of the cell.
 * NaN in gives NaN out; +-inf saturate.
 *
 * These rely on IEEE semantics and on evaluation in the written order: the package is
 * never built with -ffast-math.
 */
#ifndef LSTM_ACTIVATIONS_H
#define LSTM_ACTIVATIONS_H

#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- float32 */

#define EXP_LOW_F32 (-87.33654f) /* the least float with exp(x) >= the smallest normal: -126 ln 2 */
#define TANH_BIG_F32 (9.5f)    /* tanh(9.5) rounds to 1 in float32 */

/* Range reduction of x <= 0: returns q = expm1(r) and the scale 2^n through *scale. */
static inline float reduce_f32(float x, float *scale)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 6.93145751953125e-1f; /* 0x3f317200: n * ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723212e-6f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float shifted = x * log2e + round_magic;
    const float n = shifted - round_magic;
    const float r = (x - n * ln2_hi) - n * ln2_lo;
    int32_t n_bits, magic_bits;
    memcpy(&n_bits, &shifted, sizeof n_bits);
    memcpy(&magic_bits, &round_magic, sizeof magic_bits);
    const int32_t exponent = (n_bits - magic_bits + 127) << 23; /* 2^n for n >= -126 */
    memcpy(scale, &exponent, sizeof *scale);
    /* expm1(r) = r + r^2/2! + ... + r^7/7!, Horner form */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    return r + r * r * p;
}

static inline float sigmoid_f32(float z)
{
    const float x = -(z < 0 ? -z : z); /* -|z| <= 0; NaN stays NaN */
    float scale;
    const float q = reduce_f32(x < EXP_LOW_F32 ? EXP_LOW_F32 : x, &scale);
    const float e = x < EXP_LOW_F32 ? 0.0f : scale * (1.0f + q); /* exp(-|z|) */
    const float r = 1.0f / (1.0f + e);
    return z >= 0 ? r : e * r;
}

static inline float tanh_f32(float z)
{
    const float a = z < 0 ? -z : z;
    const float x = -2.0f * (a > TANH_BIG_F32 ? TANH_BIG_F32 : a);
    float scale;
    const float q = reduce_f32(x, &scale);
    const float m = scale * q + (scale - 1.0f); /* expm1(-2|z|) in (-1, 0] */
    const float t = -m / (2.0f + m);
    return z < 0 ? -t : t;
}

/* ---------------------------------------------------------------- float64 */

#define EXP_LOW_F64 (-708.3964185322641) /* the least double with exp(x) >= 2^-1022 */
#define TANH_BIG_F64 (19.5)    /* tanh(19.5) rounds to 1 in float64 */

static inline double reduce_f64(double x, double *scale)
{
    const double log2e = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000: exact n*ln2_hi */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double round_magic = 6755399441055744.0; /* 1.5 * 2^52 */
    const double shifted = x * log2e + round_magic;
    const double n = shifted - round_magic;
    const double r = (x - n * ln2_hi) - n * ln2_lo;
    int64_t n_bits, magic_bits;
    memcpy(&n_bits, &shifted, sizeof n_bits);
    memcpy(&magic_bits, &round_magic, sizeof magic_bits);
    const int64_t exponent = (n_bits - magic_bits + 1023) << 52; /* 2^n for n >= -1022 */
    memcpy(scale, &exponent, sizeof *scale);
    /* expm1(r) = r + r^2/2! + ... + r^13/13!, Horner form */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return r + r * r * p;
}

static inline double sigmoid_f64(double z)
{
    const double x = -(z < 0 ? -z : z);
    double scale;
    const double q = reduce_f64(x < EXP_LOW_F64 ? EXP_LOW_F64 : x, &scale);
    const double e = x < EXP_LOW_F64 ? 0.0 : scale * (1.0 + q);
    const double r = 1.0 / (1.0 + e);
    return z >= 0 ? r : e * r;
}

static inline double tanh_f64(double z)
{
    const double a = z < 0 ? -z : z;
    const double x = -2.0 * (a > TANH_BIG_F64 ? TANH_BIG_F64 : a);
    double scale;
    const double q = reduce_f64(x, &scale);
    const double m = scale * q + (scale - 1.0);
    const double t = -m / (2.0 + m);
    return z < 0 ? -t : t;
}

#endif /* LSTM_ACTIVATIONS_H */
