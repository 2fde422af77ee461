"""Subnormal numbers are flushed to zero inside the kernels only (src/lstm_float_env.h)."""

import numpy as np
import pytest

import lstm_core as lc

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


CALLS = {
    "lstm": lambda x, w_ih, w_hh, dh: lc.lstm_backward(
        lc.lstm_forward(x, w_ih, w_hh)[3], None, dh),
    "gru": lambda x, w_ih, w_hh, dh: lc.gru_backward(lc.gru_forward(x, w_ih, w_hh)[2], None, dh),
    "rnn": lambda x, w_ih, w_hh, dh: lc.rnn_backward(lc.rnn_forward(x, w_ih, w_hh)[2], None, dh),
}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@pytest.mark.parametrize("cell", CALLS)
def test_vanishing_gradients_flush_to_zero_not_to_subnormals(cell):
    """A gradient that enters at the last step only vanishes over 200 steps; inside the
    kernels its values below the smallest normal number become exact zeros (subnormal
    arithmetic is 10-100x slower on x86), and the caller's environment is restored."""
    assert subnormal_arithmetic_works()
    x, w_ih, w_hh = vanishing_problem(gates=GATES[cell])
    dh = np.full((x.shape[1], w_hh.shape[1]), 1e-3, np.float32)
    grads = CALLS[cell](x, w_ih, w_hh, dh)
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
