/*
 * lstm_kernels.c -- instantiates lstm_kernels.inc for float32 and float64.
 * The .inc undefines its macros at its end, ready for the next dtype.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "lstm_activations.h"
#include "lstm_core.h"

/*
 * Runtime CPU dispatch of the pointwise kernels (their loops are what the compiler
 * vectorises): gcc compiles each one for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the
 * portable baseline, and the dynamic loader picks the best the CPU has (an ifunc), so one
 * wheel is both portable and fast.  The clones give bitwise-identical results: the loops are
 * elementwise, and -std=c99 keeps gcc from fusing a*b+c into FMAs.  Elsewhere (other
 * compilers or platforms, or LSTM_CORE_NO_DISPATCH) only the baseline is built.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(LSTM_CORE_NO_DISPATCH)
#define DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISPATCH
#endif

/* The small-batch product fuses multiply-adds into FMAs where the instruction set has them
 * (everything else is compiled with -std=c99, which does not). */
#if defined(__GNUC__) && !defined(__clang__)
#define FUSED_MULTIPLY_ADD __attribute__((optimize("fp-contract=fast")))
#else
#define FUSED_MULTIPLY_ADD
#endif

/* Rows of a per block of the small-batch product (lstm_panels.inc): 8 accumulators. */
#define ROWS 8

/* The row kernels must be inlined into each clone to be compiled for its instruction set. */
#if defined(__GNUC__)
#define ROW_KERNEL static inline __attribute__((always_inline))
#else
#define ROW_KERNEL static inline
#endif

#define real float
#define FN(name) name##_f32
#define CACHE lstm_cache_f32
#define GEMM lstm_gemm_f32
#define SIGMOID sigmoid_f32
#define TANH tanh_f32
#define PANEL 16 /* float32 per 64-byte vector */
#include "lstm_kernels.inc"

#define real double
#define FN(name) name##_f64
#define CACHE lstm_cache_f64
#define GEMM lstm_gemm_f64
#define SIGMOID sigmoid_f64
#define TANH tanh_f64
#define PANEL 8
#include "lstm_kernels.inc"
