/*
 * lstm_panel_sizes.h -- how many panels a packed matrix takes (lstm_panels.inc, Layout),
 * for the kernels and for the plan that sizes their workspace.
 */
#ifndef LSTM_PANEL_SIZES_H
#define LSTM_PANEL_SIZES_H

#include <stddef.h>

/* Columns per panel: two 64-byte vectors of the dtype. */
#define LSTM_PANEL_F32 32
#define LSTM_PANEL_F64 16

/* Panels of the packed copy of a K x N matrix, `panel` columns each: gate panels (gated = the
 * number of gates: 4 in pairs over panel/2 hidden units, 3 in threes over panel units), plain
 * ones (gated = 0) take the columns in order. */
static inline ptrdiff_t lstm_panels_count(ptrdiff_t N, int gated, ptrdiff_t panel)
{
    if (gated == 0) {
        return (N + panel - 1) / panel;
    }
    const ptrdiff_t runs = gated == 4 ? 2 : 1, units = panel / runs;
    return (N / gated + units - 1) / units * (gated / runs);
}

#endif /* LSTM_PANEL_SIZES_H */
