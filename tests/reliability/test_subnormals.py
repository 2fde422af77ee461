"""Subnormal numbers are flushed to zero inside the kernels only (src/kernels/lstm_float_env.h)."""

import numpy as np
import pytest

import lstm_core as lc
from cell_problems import CELLS

TINY32 = np.finfo(np.float32).tiny  # the smallest normal float32


def subnormal_arithmetic_works():
    """The calling thread's own float environment: 1e-38 * 0.01 is a subnormal, not 0."""
    return float(np.float32(1e-38) * np.float32(0.01)) != 0.0


def vanishing_problem(T=200, B=8, I=2, H=12, gates=4):
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = rng.uniform(-k, k, (gates * H, I)).astype(np.float32)
    w_hh = rng.uniform(-k, k, (gates * H, H)).astype(np.float32)
    return x, w_ih, w_hh


def test_vanishing_gradients_flush_to_zero_not_to_subnormals(cell):
    """A gradient that enters at the last step only vanishes over 200 steps; inside the
    kernels its values below the smallest normal number become exact zeros (subnormal
    arithmetic is 10-100x slower on x86), and the caller's environment is restored."""
    assert subnormal_arithmetic_works()
    x, w_ih, w_hh = vanishing_problem(gates=cell.gates)
    dh = np.full((x.shape[1], w_hh.shape[1]), 1e-3, np.float32)
    *_, cache = cell.forward(x, w_ih, w_hh)
    grads = cell.backward(cache, None, dh)  # the gradient enters through dh_n alone
    dx = grads.dx
    assert np.all((dx == 0) | (np.abs(dx) >= TINY32)), "subnormal values in dx"
    assert np.any(dx == 0) and np.any(dx != 0)  # it did vanish, and it did start
    assert subnormal_arithmetic_works(), "the caller's float environment was not restored"


def test_environment_restored_after_errors_and_every_entry_point():
    x, w_ih, w_hh = vanishing_problem(T=3, gates=4)
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh)
    lc.lstm_forward(x, w_ih, w_hh, training=False)
    lc.lstm_backward(cache, y)
    lc.lstm_cell(x[0], h_n, c_n, w_ih, w_hh)
    with pytest.raises(TypeError):
        lc.lstm_forward(x.astype(np.float64), w_ih, w_hh)
    assert subnormal_arithmetic_works()


# Subnormal inputs are read as zero (DAZ), not only subnormal results flushed (FTZ).  A
# subnormal x times a large weight is a normal number, so without DAZ it would reach the
# output: with x = 1e-39 and w_ih = 1e4, y would be ~1e-36 instead of 0.  The problems keep
# the path from x to y free of anything that would round the tiny product away: no bias on
# the candidate rows (g of the LSTM, n of the GRU, the RNN's only rows), zero initial states;
# the other gates' biases are non-zero.
SUBNORMAL = {np.float32: 1e-39, np.float64: 1e-310}
NORMAL = {np.float32: float(np.finfo(np.float32).tiny), np.float64: float(np.finfo(np.float64).tiny)}
CANDIDATE_ROWS = {"lstm": slice(2, 3), "gru": slice(2, 3), "rnn": slice(0, 1)}  # in units of H


def tiny_input_problem(cell, dtype, T, B, I, H):
    """(x of ones, w_ih, w_hh, bias) with |w_ih| = 1e4 and a zero bias on the candidate rows."""
    gates = CELLS[cell].gates
    rng = np.random.default_rng(7)
    signs = rng.choice([-1.0, 1.0], (gates * H, I))
    w_ih = (1e4 * signs).astype(dtype)
    w_hh = rng.uniform(-0.3, 0.3, (gates * H, H)).astype(dtype)
    bias = rng.uniform(0.2, 0.6, (gates, H))
    bias[CANDIDATE_ROWS[cell]] = 0.0
    return np.ones((T, B, I), dtype), w_ih, w_hh, bias.reshape(-1).astype(dtype)


def forward(cell, x, w_ih, w_hh, bias, training):
    """The outputs of one forward of cell (and its cache, or None)."""
    if cell == "lstm":
        y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, bias, training=training)
        return [y, h_n, c_n], cache
    if cell == "gru":
        H = w_hh.shape[1]
        b_ih, b_hh = bias, np.zeros(3 * H, bias.dtype)  # b_hn = 0 keeps n's path clean
        y, h_n, cache = lc.gru_forward(x, w_ih, w_hh, b_ih, b_hh, training=training)
    else:
        y, h_n, cache = lc.rnn_forward(x, w_ih, w_hh, bias, training=training)
    return [y, h_n], cache


def backward(cell, cache, dy):
    if cell == "lstm":
        return list(lc.lstm_backward(cache, dy))
    return list((lc.gru_backward if cell == "gru" else lc.rnn_backward)(cache, dy))


@pytest.fixture
def blas_one_thread():
    """The BLAS's worker threads keep their own float environment (lstm_float_env.h): the
    promise covers the calling thread and lstm_core's own threads, so the BLAS runs on the
    calling thread here."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


# (T, B, I, H) and lstm_core threads: a small call, and one the thread pool splits.
SIZES = {"serial": ((3, 4, 5, 8), 1), "split": ((4, 24, 16, 96), 2)}


@pytest.mark.parametrize("size", SIZES)
def test_subnormal_inputs_are_read_as_zero(blas_one_thread, num_threads, cell, dtype, size):
    """Every entry point (training and inference forward, backward, the LSTM's cell) gives
    exactly what it gives for x = 0; the same x at the smallest normal number does reach the
    outputs, so the problem would show a subnormal read as it is."""
    shape, threads = SIZES[size]
    num_threads(threads)
    cell = cell.name
    x, w_ih, w_hh, bias = tiny_input_problem(cell, dtype, *shape)
    runs = {}
    for name, scale in [("zero", 0.0), ("subnormal", SUBNORMAL[dtype]),
                        ("normal", NORMAL[dtype])]:
        xs = (x * scale).astype(dtype)
        outputs, cache = forward(cell, xs, w_ih, w_hh, bias, training=True)
        inference, _ = forward(cell, xs, w_ih, w_hh, bias, training=False)
        # dy = 1e3: gate gradients large enough that dz * x is a normal number
        grads = backward(cell, cache, np.full_like(outputs[0], 1e3))
        results = outputs + inference + [g for g in grads if g is not None]
        if cell == "lstm":
            B, H = shape[1], shape[3]
            zeros = np.zeros((B, H), dtype)
            results += list(lc.lstm_cell(xs[0], zeros, zeros, w_ih, w_hh, bias))
        runs[name] = results
    for index, (zero, subnormal) in enumerate(zip(runs["zero"], runs["subnormal"])):
        np.testing.assert_array_equal(subnormal, zero, err_msg=f"output {index}")
    # the forward's y, the inference y and the backward's dw_ih all see a normal x
    changed = [not np.array_equal(n, z) for n, z in zip(runs["normal"], runs["zero"])]
    assert changed[0], "y does not depend on x: the problem cannot show a subnormal read"
    n_out = 3 if cell == "lstm" else 2
    assert changed[n_out], "the inference y does not depend on x"
    assert changed[2 * n_out + 1], "dw_ih does not depend on x"
