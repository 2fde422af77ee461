/*
 * rnn_kernels.c -- instantiates rnn_kernels.inc (the GRU, rnn_core.h) for
 * float32 and float64.  The .inc undefines its macros at its end, ready for the next dtype.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "lstm_activations.h"
#include "lstm_dispatch.h"
#include "rnn_core.h"

#define real float
#define FN(name) name##_f32
#define GRU_CACHE gru_cache_f32
#define GEMM lstm_gemm_f32
#define SIGMOID sigmoid_f32
#define TANH tanh_f32
#include "rnn_kernels.inc"

#define real double
#define FN(name) name##_f64
#define GRU_CACHE gru_cache_f64
#define GEMM lstm_gemm_f64
#define SIGMOID sigmoid_f64
#define TANH tanh_f64
#include "rnn_kernels.inc"
