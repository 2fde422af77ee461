"""gru_cell and rnn_cell, the GRU's and the RNN's one-step inference functions: against their
float64 twins in lstm_core.reference, against torch.nn.GRUCell / RNNCell, bit for bit against
the step of the sequence forward, and as the step of the GRU and RNN layers.  (Their bad-input
rows are in tests/boundary/test_bad_input.py, prefixes "grucell" and "rnncell".)"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import reference

from cell_problems import CellProblem
from lstm_problems import assert_close

STEP_CELLS = ("gru", "rnn")


def step_args(cell, B, I, H, dtype, seed=0):
    """(x_t, h, w_ih, w_hh, *biases) of a seeded problem: non-zero, distinct biases and state;
    the RNN's bias is the sum of the two."""
    p = CellProblem(cell, 1, B, I, H, seed=seed)
    biases = (p.b_ih, p.b_hh) if cell == "gru" else (p.b_ih + p.b_hh,)
    return tuple(np.ascontiguousarray(a, dtype=dtype)
                 for a in (p.x[0], p.h0, p.w_ih, p.w_hh, *biases))


def fast(cell):
    return getattr(lc, f"{cell}_cell")


def twin(cell):
    return getattr(reference, f"{cell}_cell")


@pytest.mark.parametrize("cell", STEP_CELLS)
@pytest.mark.parametrize("B, I, H", [(1, 7, 5), (3, 16, 33), (9, 128, 128)])
def test_step_matches_reference(cell, B, I, H, dtype):
    args = step_args(cell, B, I, H, dtype, seed=B + H)
    h1 = fast(cell)(*args)
    assert h1.dtype == dtype and h1.shape == (B, H)
    assert_close(h1, twin(cell)(*(a.astype(np.float64) for a in args)), f"{cell}_cell h1")


@pytest.mark.parametrize("cell", STEP_CELLS)
def test_step_is_the_sequence_step_bit_for_bit(cell, dtype):
    """The streaming step and a one-step inference sequence run the same kernel."""
    x_t, h, w_ih, w_hh, *biases = step_args(cell, 4, 9, 12, dtype)
    forward = getattr(lc, f"{cell}_forward")
    _, h_n, _ = forward(x_t[None], w_ih, w_hh, *biases, h, training=False)
    np.testing.assert_array_equal(fast(cell)(x_t, h, w_ih, w_hh, *biases), h_n)


@pytest.mark.parametrize("cell", STEP_CELLS)
def test_reference_step_is_the_reference_sequence_step(cell):
    x_t, h, w_ih, w_hh, *biases = step_args(cell, 3, 6, 5, np.float64)
    _, h_n, _ = getattr(reference, f"{cell}_forward")(x_t[None], w_ih, w_hh, *biases, h,
                                                       training=False)
    np.testing.assert_array_equal(twin(cell)(x_t, h, w_ih, w_hh, *biases), h_n)


@pytest.mark.parametrize("cell", STEP_CELLS)
def test_step_without_biases(cell, dtype):
    x_t, h, w_ih, w_hh, *_ = step_args(cell, 2, 5, 6, dtype)
    assert_close(fast(cell)(x_t, h, w_ih, w_hh),
                 twin(cell)(*(a.astype(np.float64) for a in (x_t, h, w_ih, w_hh))),
                 f"{cell}_cell without biases")


@pytest.mark.parametrize("cell", STEP_CELLS)
def test_step_leaves_its_inputs_alone(cell, dtype):
    args = step_args(cell, 3, 4, 5, dtype)
    copies = [a.copy() for a in args]
    fast(cell)(*args)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("cell", STEP_CELLS)
def test_layer_step_is_the_step_function(cell, dtype):
    """GRU.step / RNN.step run gru_cell / rnn_cell per layer (same bits), not a one-step
    sequence call."""
    layer = (lc.GRU if cell == "gru" else lc.RNN)(6, 5, num_layers=2, dtype=dtype, seed=3)
    rng = np.random.default_rng(3)
    x_t = rng.standard_normal((2, 6)).astype(dtype)
    h0 = rng.uniform(-0.5, 0.5, (2, 2, 5)).astype(dtype)
    y_t, h1 = layer.step(x_t, h0)
    p = layer.params
    want, inp = [], x_t
    for k in range(2):
        biases = (p[f"bias_ih_l{k}"], p[f"bias_hh_l{k}"])
        if cell == "rnn":
            biases = (biases[0] + biases[1],)
        inp = fast(cell)(inp, h0[k], p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"], *biases)
        want.append(inp)
    np.testing.assert_array_equal(h1, np.stack(want))
    np.testing.assert_array_equal(y_t, want[-1])


def test_rnn_step_refuses_other_nonlinearities():
    x_t, h, w_ih, w_hh, bias = step_args("rnn", 2, 3, 4, np.float64)
    for step in (lc.rnn_cell, reference.rnn_cell):
        with pytest.raises(ValueError, match="nonlinearity"):
            step(x_t, h, w_ih, w_hh, bias, nonlinearity="relu")


# ----------------------------------------------------------------------------- torch

@pytest.mark.parametrize("cell", STEP_CELLS)
@pytest.mark.parametrize("B, I, H", [(1, 128, 128), (5, 12, 7)])
def test_step_matches_torch_cell(cell, B, I, H, dtype):
    """torch.nn.GRUCell / RNNCell (tanh) with the same weights and both biases."""
    torch = pytest.importorskip("torch")
    p = CellProblem(cell, 1, B, I, H, seed=11)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    module = (torch.nn.GRUCell if cell == "gru" else torch.nn.RNNCell)(I, H, dtype=tdtype)
    with torch.no_grad():
        for name, value in (("weight_ih", p.w_ih), ("weight_hh", p.w_hh), ("bias_ih", p.b_ih),
                            ("bias_hh", p.b_hh)):
            getattr(module, name).copy_(torch.from_numpy(value.astype(dtype)))
        want = module(torch.from_numpy(p.x[0].astype(dtype)),
                      torch.from_numpy(p.h0.astype(dtype))).numpy()
    biases = (p.b_ih, p.b_hh) if cell == "gru" else (p.b_ih + p.b_hh,)
    got = fast(cell)(*(a.astype(dtype) for a in (p.x[0], p.h0, p.w_ih, p.w_hh, *biases)))
    # torch's float32 rounds differently (its own GEMM and activations): the float32
    # tolerance of the suite; float64 agrees to round-off
    assert_close(got, want.astype(np.float64), f"{cell}_cell vs torch")
