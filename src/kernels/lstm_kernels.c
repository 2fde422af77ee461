/*
 * lstm_kernels.c -- instantiates lstm_kernels.inc for float32 and float64.
 * The .inc undefines its macros at its end, ready for the next dtype.
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lstm_activations.h"
#include "lstm_core.h"
#include "lstm_dispatch.h"
#include "lstm_float_env.h"
#include "lstm_panel_sizes.h"
#include "lstm_reduced_sizes.h"
#include "lstm_runner.h"
#include "lstm_shares.h"

/* The packed product fuses multiply-adds into FMAs where the instruction set has them
 * (everything else is compiled with -std=c99, which does not). */
#if defined(__GNUC__) && !defined(__clang__)
#define FUSED_MULTIPLY_ADD __attribute__((optimize("fp-contract=fast")))
#else
#define FUSED_MULTIPLY_ADD
#endif

#define real float
#define FN(name) name##_f32
#define CACHE lstm_cache_f32
#define INPUTS lstm_inputs_f32
#define WEIGHTS lstm_weights_f32
#define OUTPUTS lstm_outputs_f32
#define OUTPUT_GRADS lstm_output_grads_f32
#define GRADS lstm_grads_f32
#define GEMM lstm_gemm_f32
#define PLAN_GEMM gemm_f32
#define SIGMOID sigmoid_f32
#define TANH tanh_f32
#define PANEL LSTM_PANEL_F32
#define REAL_IS_FLOAT 1
#include "lstm_kernels.inc"

#define real double
#define FN(name) name##_f64
#define CACHE lstm_cache_f64
#define INPUTS lstm_inputs_f64
#define WEIGHTS lstm_weights_f64
#define OUTPUTS lstm_outputs_f64
#define OUTPUT_GRADS lstm_output_grads_f64
#define GRADS lstm_grads_f64
#define GEMM lstm_gemm_f64
#define PLAN_GEMM gemm_f64
#define SIGMOID sigmoid_f64
#define TANH tanh_f64
#define PANEL LSTM_PANEL_F64
#define REAL_IS_FLOAT 0
#include "lstm_kernels.inc"
