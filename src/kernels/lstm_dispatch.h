/*
 * lstm_dispatch.h -- the compiler attributes the pointwise kernels share.
 *
 * DISPATCH: runtime CPU dispatch of the pointwise kernels (their loops are what the compiler
 * vectorises): gcc compiles each one for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the
 * portable baseline, and the dynamic loader picks the best the CPU has (an ifunc).  The
 * clones give bitwise-identical results: the loops are elementwise, and -std=c99 keeps gcc
 * from fusing a*b+c into FMAs.  Elsewhere (other compilers or platforms, or
 * LSTM_CORE_NO_DISPATCH) only the baseline is built.
 *
 * ROW_KERNEL: the row kernels must be inlined into each clone to be compiled for its
 * instruction set.
 */
#ifndef LSTM_DISPATCH_H
#define LSTM_DISPATCH_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(LSTM_CORE_NO_DISPATCH)
#define DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISPATCH
#endif

#if defined(__GNUC__)
#define ROW_KERNEL static inline __attribute__((always_inline))
#else
#define ROW_KERNEL static inline
#endif

#endif /* LSTM_DISPATCH_H */
