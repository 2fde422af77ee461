/*
 * lstm_activations.h -- sigma and tanh for the gate kernels, float32 and float64.
 *
 * Accuracy: a few ulps of the dtype for every finite input.  The sigmoid takes exp only of
 * -|z| <= 0, so exp never overflows: for large |z| it underflows to 0 and the result
 * saturates to exactly 0 or 1.  tanh is libm's, correct over the whole range.
 * NaN in gives NaN out (every comparison with NaN is false and exp(NaN) is NaN).
 *
 * These rely on IEEE semantics (infinities, NaN, signed zero): the package is never built
 * with -ffast-math.
 */
#ifndef LSTM_ACTIVATIONS_H
#define LSTM_ACTIVATIONS_H

#include <math.h>

static inline float sigmoid_f32(float z)
{
    /* e in (0, 1]; sigma(z) = 1/(1+e) for z >= 0 and e/(1+e) for z < 0. */
    const float e = expf(-fabsf(z));
    const float r = 1.0f / (1.0f + e);
    return z >= 0.0f ? r : e * r;
}

static inline double sigmoid_f64(double z)
{
    const double e = exp(-fabs(z));
    const double r = 1.0 / (1.0 + e);
    return z >= 0.0 ? r : e * r;
}

static inline float tanh_f32(float z)
{
    return tanhf(z);
}

static inline double tanh_f64(double z)
{
    return tanh(z);
}

#endif /* LSTM_ACTIVATIONS_H */
