"""The functional RNN and GRU against torch.nn.RNN / torch.nn.GRU with the same weights and two
different non-zero biases: outputs and every gradient, whole batches and packed sequences with
unsorted lengths.  Tolerances: tests/lstm_problems.py's (float32 5e-6, float64 1e-12, relative
to max(1, largest magnitude)).  Skipped only when torch is not installed.
Measured worst errors (relative, over this file's cases): float32 6.5e-7 (GRU db_ih; RNN dbias
4.4e-7), float64 1.5e-15.
"""

import numpy as np
import pytest

from cell_problems import CellProblem
from lstm_problems import assert_close

torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
MODULES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU}


def torch_run(p, dtype, lengths=None):
    """torch's y, h_n and the gradients of sum(y*dy) + sum(h_n*dh_n), as float64 arrays keyed
    like the fields of RNNGrads / GRUGrads."""
    I, H = p.w_ih.shape[1], p.w_hh.shape[1]
    module = MODULES[p.cell](I, H, dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for name, value in [("weight_ih_l0", p.w_ih), ("weight_hh_l0", p.w_hh),
                            ("bias_ih_l0", p.b_ih), ("bias_hh_l0", p.b_hh)]:
            getattr(module, name).copy_(torch.from_numpy(value))
    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    x, h0 = tensor(p.x), tensor(p.h0[None])
    if lengths is None:
        y, h_n = module(x, h0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         enforce_sorted=False)
        out, h_n = module(packed, h0)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=p.x.shape[0])
    loss = (y * torch.from_numpy(p.dy)).sum() + (h_n[0] * torch.from_numpy(p.dh_n)).sum()
    loss.backward()
    numpy = lambda t: t.detach().double().numpy()  # noqa: E731
    out = {"y": numpy(y), "h_n": numpy(h_n[0]), "dx": numpy(x.grad), "dh0": numpy(h0.grad[0]),
           "dw_ih": numpy(module.weight_ih_l0.grad), "dw_hh": numpy(module.weight_hh_l0.grad)}
    if p.cell == "rnn":  # one summed bias: its gradient is that of each of torch's two
        out["dbias"] = numpy(module.bias_ih_l0.grad)
        assert_close(out["dbias"].astype(dtype), numpy(module.bias_hh_l0.grad), "db_ih == db_hh")
    else:
        out["db_ih"], out["db_hh"] = numpy(module.bias_ih_l0.grad), numpy(module.bias_hh_l0.grad)
    return out


def compare(p, dtype, lengths=None):
    expected = torch_run(p, dtype, lengths)
    y, h_n, cache = p.forward(dtype, lengths=lengths)
    grads = p.backward(cache, p.dy, p.dh_n, dtype)
    actual = {"y": y, "h_n": h_n, **grads._asdict()}
    assert set(actual) == set(expected)
    for name, value in actual.items():
        assert value.dtype == dtype, name
        assert_close(value, expected[name], name)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 2), (9, 4, 7, 5), (33, 16, 40, 64)])
def test_functional_matches_torch(T, B, I, H, dtype, cell):
    compare(CellProblem(cell, T, B, I, H, seed=T + I), dtype)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_lengths_match_torch_packed_sequence(dtype, cell):
    compare(CellProblem(cell, 9, 5, 6, 4, seed=9), dtype, lengths=[3, 9, 1, 7, 2])
