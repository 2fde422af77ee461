/*
 * lstm_float_env.h -- subnormal numbers flushed to zero while a kernel call runs.
 *
 * Why: gradients that vanish over long sequences (the RNN's, or any cell's when the loss sits
 * at the last step only) end up as subnormal numbers, and x86 arithmetic on subnormals is
 * 10 to 100 times slower (docs/measurements.rst).  The drivers turn on FTZ (flush results
 * to zero) and DAZ (read subnormal inputs as zero) in the calling thread's MXCSR (and the
 * runner in each of its threads) for the duration of one call and restore the caller's value
 * on return: the setting is per thread, so neither Python nor other threads ever see it.
 * Values below the smallest normal number (1.2e-38 in float32, 2.2e-308 in float64) become
 * 0, far below every tolerance; the BLAS's own worker threads (more than one BLAS thread)
 * keep their settings.  Elsewhere than x86-64 the functions do nothing.
 */
#ifndef LSTM_FLOAT_ENV_H
#define LSTM_FLOAT_ENV_H

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>

#define LSTM_MXCSR_FTZ 0x8000u /* flush-to-zero */
#define LSTM_MXCSR_DAZ 0x0040u /* denormals-are-zero */

/* Turn FTZ and DAZ on; returns the caller's MXCSR for lstm_float_env_restore. */
static inline unsigned lstm_float_env_flush_subnormals(void)
{
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | LSTM_MXCSR_FTZ | LSTM_MXCSR_DAZ);
    return saved;
}

static inline void lstm_float_env_restore(unsigned saved)
{
    _mm_setcsr(saved);
}
#else
static inline unsigned lstm_float_env_flush_subnormals(void)
{
    return 0;
}

static inline void lstm_float_env_restore(unsigned saved)
{
    (void)saved;
}
#endif

#endif /* LSTM_FLOAT_ENV_H */
