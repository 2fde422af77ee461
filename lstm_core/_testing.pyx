# Hooks for the tests, kept out of the production modules: ask a plan what it chose, force
# the way loops are split, allow more threads than CPUs.  Not part of the public API.

import numpy as np

from lstm_core._kernels cimport (
    LSTM_PROJECT_GEMM, LSTM_PROJECT_MERGED, LSTM_PROJECT_PACKED, LSTM_SPLIT_AUTO,
    LSTM_SPLIT_COLUMNS, LSTM_SPLIT_ROWS, lstm_loop_parts, lstm_plan, lstm_plan_backward_cell,
    lstm_plan_forward_cell,
)
from lstm_core._threads cimport kernel_settings

_PROJECTIONS = {LSTM_PROJECT_GEMM: "gemm", LSTM_PROJECT_PACKED: "packed",
                LSTM_PROJECT_MERGED: "merged"}


def lstm_plan_of(T, B, I, H, dtype, *, training=True, backward=False, threads=None, gates=4):
    """The plan (src/include/lstm_plan.h) of lstm_forward, or of lstm_backward, for these
    sizes, as a dict; threads: as if set_num_threads(threads) (None: the current count);
    gates: 4 the LSTM, 1 the vanilla RNN."""
    cdef lstm_plan plan
    settings = kernel_settings()
    saved = settings.threads
    if threads is not None:
        settings.threads = threads
    try:
        itemsize = np.dtype(dtype).itemsize
        if backward:
            lstm_plan_backward_cell(&plan, settings, gates, T, B, I, H, itemsize)
        else:
            lstm_plan_forward_cell(&plan, settings, gates, T, B, I, H, itemsize, training)
    finally:
        settings.threads = saved
    return {"parts": plan.parts, "by_rows": bool(plan.by_rows), "packed": bool(plan.packed),
            "projection": _PROJECTIONS[plan.projection], "chunk": plan.chunk,
            "weight_products": bool(plan.weight_products), "w_ih_panels": plan.w_ih_panels,
            "w_hh_panels": plan.w_hh_panels, "work": plan.work,
            "grad_panels": plan.grad_panels, "workspace": plan.workspace}


def loop_parts(B, H, step_flops, T, weight_bytes):
    """The plans' rule for splitting a loop, as (parts, by_rows)."""
    cdef int by_rows = 0
    parts = lstm_loop_parts(kernel_settings(), B, H, step_flops, T, weight_bytes, &by_rows)
    return parts, bool(by_rows)


def force_split(mode):
    """Make the plans split every loop by "rows" or by "columns" when they can, or choose
    (None): for the tests of both ways."""
    kernel_settings().split = {None: LSTM_SPLIT_AUTO, "rows": LSTM_SPLIT_ROWS,
                               "columns": LSTM_SPLIT_COLUMNS}[mode]


def allow_more_threads_than_cpus(allow):
    """Let loops use more threads than CPUs (the tests, which split into 3 parts anywhere)."""
    kernel_settings().oversubscribe = bool(allow)
