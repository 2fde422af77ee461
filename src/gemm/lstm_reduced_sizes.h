/*
 * lstm_reduced_sizes.h -- the sizes of the reduced-precision weights and operands
 * (lstm_reduced.inc), for the kernels and for the plan that sizes their workspace.
 */
#ifndef LSTM_REDUCED_SIZES_H
#define LSTM_REDUCED_SIZES_H

#include <stddef.h>

#include "lstm_panel_sizes.h"

/* The precision of the forward's two products (lstm_core.h, Reduced precision). */
typedef enum { LSTM_FULL_PRECISION = 0, LSTM_BFLOAT16 = 1, LSTM_INT8 = 2 } lstm_precision;

/* Depth of a packed matrix of K rows of W: k comes in pairs, the last one padded with a
 * zero when K is odd. */
static inline ptrdiff_t lstm_reduced_depth(ptrdiff_t K)
{
    return (K + 1) / 2 * 2;
}

/* Elements (bfloat16 or int8) of the packed copy of a K x N matrix W in the LSTM's gate
 * panels of LSTM_PANEL_F32 columns (N = 4H). */
static inline ptrdiff_t lstm_reduced_panels_size(ptrdiff_t K, ptrdiff_t N)
{
    return lstm_panels_count(N, 4, LSTM_PANEL_F32) * LSTM_PANEL_F32 * lstm_reduced_depth(K);
}

/* Entries of the per-column arrays of such a matrix (int8: scales and column sums), one per
 * lane of every panel. */
static inline ptrdiff_t lstm_reduced_lanes(ptrdiff_t N)
{
    return lstm_panels_count(N, 4, LSTM_PANEL_F32) * LSTM_PANEL_F32;
}

/* float32 elements of one task's operands of a step for B rows, In inputs and H units:
 * bfloat16: x_t and h_{t-1} rounded, [B][depth(In)] and [B][depth(H)] floats; int8: a
 * scale and a zero point per row of each ([4][B] floats), then the codes as int16
 * [B][depth(In)] and [B][depth(H)]. */
static inline ptrdiff_t lstm_reduced_operands_size(int precision, ptrdiff_t B, ptrdiff_t In,
                                                   ptrdiff_t H)
{
    const ptrdiff_t codes = B * (lstm_reduced_depth(In) + lstm_reduced_depth(H));
    if (precision == LSTM_BFLOAT16) {
        return codes;
    }
    if (precision == LSTM_INT8) {
        return 4 * B + (codes + 1) / 2;
    }
    return 0;
}

#endif /* LSTM_REDUCED_SIZES_H */
