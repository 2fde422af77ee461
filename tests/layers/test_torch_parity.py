"""Outputs and every gradient against torch.nn.LSTM with the same weights.

Skipped only when torch is not installed; .ci/run installs torch==2.13.0 (the CPU build).
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import Problem, assert_close

torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def torch_lstm(p, dtype):
    """A torch.nn.LSTM holding p's weights and its two different biases b_ih, b_hh."""
    I, H = p.w_ih.shape[1], p.w_hh.shape[1]
    module = torch.nn.LSTM(I, H, dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for name, value in [("weight_ih_l0", p.w_ih), ("weight_hh_l0", p.w_hh),
                            ("bias_ih_l0", p.b_ih), ("bias_hh_l0", p.b_hh)]:
            getattr(module, name).copy_(torch.from_numpy(value))
    return module


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 2), (9, 4, 7, 5), (33, 16, 40, 64)])
def test_outputs_and_gradients_match_torch(T, B, I, H, dtype):
    p = Problem(T, B, I, H, seed=T + I)
    assert np.abs(p.b_ih - p.b_hh).min() > 0  # two genuinely different biases
    module = torch_lstm(p, dtype)
    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    x, h0, c0 = tensor(p.x), tensor(p.h0[None]), tensor(p.c0[None])
    y_t, (h_n_t, c_n_t) = module(x, (h0, c0))
    loss = ((y_t * torch.from_numpy(p.dy)).sum() + (h_n_t[0] * torch.from_numpy(p.dh_n)).sum()
            + (c_n_t[0] * torch.from_numpy(p.dc_n)).sum())
    loss.backward()

    y, h_n, c_n, cache = lc.lstm_forward(*p.args(dtype))
    assert_close(y, y_t.detach().double().numpy(), "y")
    assert_close(h_n, h_n_t[0].detach().double().numpy(), "h_n")
    assert_close(c_n, c_n_t[0].detach().double().numpy(), "c_n")

    g = lc.lstm_backward(cache, *(a.astype(dtype) for a in (p.dy, p.dh_n, p.dc_n)))
    expected = {
        "dx": x.grad, "dw_ih": module.weight_ih_l0.grad, "dw_hh": module.weight_hh_l0.grad,
        "dh0": h0.grad[0], "dc0": c0.grad[0],
    }
    for name, value in expected.items():
        assert_close(getattr(g, name), value.double().numpy(), name)
    # The kernels take b_ih + b_hh as one bias: its gradient is the gradient of each.
    assert_close(g.dbias, module.bias_ih_l0.grad.double().numpy(), "dbias vs db_ih")
    assert_close(g.dbias, module.bias_hh_l0.grad.double().numpy(), "dbias vs db_hh")


def test_cell_matches_torch_lstm_cell():
    p = Problem(1, 3, 6, 4, seed=2)
    cell = torch.nn.LSTMCell(6, 4, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(p.w_ih))
        cell.weight_hh.copy_(torch.from_numpy(p.w_hh))
        cell.bias_ih.copy_(torch.from_numpy(p.b_ih))
        cell.bias_hh.copy_(torch.from_numpy(p.b_hh))
        h1_t, c1_t = cell(torch.from_numpy(p.x[0]), (torch.from_numpy(p.h0),
                                                      torch.from_numpy(p.c0)))
    h1, c1 = lc.lstm_cell(p.x[0], p.h0, p.c0, p.w_ih, p.w_hh, p.bias)
    assert_close(h1, h1_t.numpy(), "h1")
    assert_close(c1, c1_t.numpy(), "c1")
