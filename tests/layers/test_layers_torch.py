"""lc.LSTM, lc.GRU and lc.RNN against torch.nn.LSTM / GRU / RNN loaded from the same
state_dict, as is: outputs, final states, dx, dh0 (dc0) and every parameter gradient, over
num_layers 1-3, bidirectional, batch_first, both dtypes, packed sequences with unsorted lengths,
unbatched input, eval mode and streaming step by step (tests/torch_twins.py runs both sides).

Skipped only when torch is not installed.  Tolerances are tests/lstm_problems.py's
(float32 5e-6, float64 1e-12, relative to max(1, largest magnitude)).  Measured worst errors on
this grid, 3 layers included: float32 8.1e-7 (RNN bias gradients, a sum over T*B rows and two
directions; the LSTM's 5.0e-7, a parameter gradient, 1.2e-6 absolute), float64 2.4e-15; with
lengths (test_layers_lengths.py) 2.9e-7 and 7e-16.  Deeper stacks stay an order of magnitude
inside the single-layer bounds, so no larger bound is needed.
"""

import numpy as np
import pytest

import lstm_core as lc
from cell_problems import CELLS
from lstm_problems import assert_close

torch = pytest.importorskip("torch")

from torch_twins import compare, torch_module, our_layer, twin_stacks  # noqa: E402


@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("packed", [False, True], ids=["full", "packed"])
def test_stack_matches_torch(packed, layers, bidirectional, batch_first, dtype, cell):
    T, B, I, H = 6, 3, 5, 4
    seed = 100 * layers + 10 * bidirectional + batch_first
    module, layer, x, hx, rng = twin_stacks(cell.name, T, B, I, H, layers, bidirectional,
                                            batch_first, dtype, seed)
    lengths = [4, 6, 1] if packed else None  # unsorted
    actual, _ = compare(module, layer, x, hx, dtype, rng, lengths)
    D = 2 if bidirectional else 1
    assert actual["y"].shape == ((B, T, D * H) if batch_first else (T, B, D * H))
    assert actual["h_n"].shape == (layers * D, B, H)


def test_unbatched_input_and_eval_mode(dtype, cell):
    T, I, H, layers = 5, 3, 4, 2
    module, layer, x, hx, rng = twin_stacks(cell.name, T, None, I, H, layers, True, False,
                                            dtype, seed=7)
    actual, _ = compare(module, layer, x, hx, dtype, rng)
    assert actual["y"].shape == (T, 2 * H) and actual["h_n"].shape == (2 * layers, H)
    state = tuple(s.astype(dtype) for s in hx) if cell.name == "lstm" else hx.astype(dtype)
    y_eval, final_eval = layer.eval()(x.astype(dtype), state)  # inference kernels: no tape
    np.testing.assert_array_equal(y_eval, actual["y"])  # the same bits
    final_eval = final_eval if cell.name == "lstm" else (final_eval,)
    for name, value in zip(("h_n", "c_n"), final_eval):
        np.testing.assert_array_equal(value, actual[name], err_msg=name)
    with pytest.raises(RuntimeError, match="training mode"):
        layer.backward(np.zeros_like(y_eval))


def test_step_matches_torch_over_a_sequence(cell):
    """Streaming through the layer's step, one step at a time, ends where torch does."""
    T, B, I, H, layers = 8, 2, 3, 5, 2
    module = torch_module(cell.name, I, H, layers, False, False, np.float64, seed=3)
    layer = our_layer(cell.name, module, np.float64)
    x = np.random.default_rng(3).standard_normal((T, B, I))
    with torch.no_grad():
        y_t, final_t = module(torch.from_numpy(x))
    state = None
    for t in range(T):
        y_step, state = layer.step(x[t], state)
        assert_close(y_step, y_t[t].numpy(), f"y[{t}]")
    if cell.name == "lstm":
        assert_close(state[0], final_t[0].numpy(), "h")
        assert_close(state[1], final_t[1].numpy(), "c")
    else:
        assert_close(state, final_t.numpy(), "h")
    y1, state1 = layer.step(x[0, 0])  # unbatched
    assert y1.shape == (H,)
    for s in (state1 if cell.name == "lstm" else (state1,)):
        assert s.shape == (layers, H)


def test_rnn_supports_tanh_only():
    assert lc.RNN(2, 3, nonlinearity="tanh").nonlinearity == "tanh"
    with pytest.raises(ValueError, match=r"nonlinearity must be 'tanh'.*got 'relu'"):
        lc.RNN(2, 3, nonlinearity="relu")


@pytest.mark.parametrize("cell", [CELLS["gru"], CELLS["rnn"]], ids=["gru", "rnn"])
def test_layer_interface(cell):
    cls = cell.layer
    layer = cls(3, 4, 2, bidirectional=True, bias=False, dtype=np.float64, seed=1)
    assert sorted(layer.params) == sorted(
        f"weight_{kind}_l{k}{s}" for kind in ("ih", "hh") for k in (0, 1) for s in ("", "_reverse"))
    assert layer.params["weight_ih_l1"].shape == (cell.gates * 4, 8)
    assert repr(layer).startswith(f"{cls.__name__}(input_size=3, hidden_size=4")
    y, h_n = layer(np.ones((5, 2, 3)))
    layer.backward(np.ones_like(y))
    assert all(np.any(g) for g in layer.grads.values())
    layer.zero_grad()
    assert not any(np.any(g) for g in layer.grads.values())
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(4, 2, 4\)"):
        layer(np.ones((5, 2, 3)), np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="unidirectional"):
        layer.step(np.ones(3))
    with pytest.raises(TypeError, match="x has dtype float32"):
        layer(np.ones((5, 2, 3), np.float32))
