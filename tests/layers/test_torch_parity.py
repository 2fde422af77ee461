"""The functional API of every cell (lstm_forward / gru_forward / rnn_forward and their
backwards) against torch.nn.LSTM / GRU / RNN holding the same weights and two different
non-zero biases: outputs and every gradient, whole batches and packed sequences with unsorted
lengths; and lstm_cell against torch.nn.LSTMCell.

Skipped only when torch is not installed; .ci/run installs torch==2.13.0 (the CPU build).
Tolerances: tests/lstm_problems.py's (float32 5e-6, float64 1e-12, relative to max(1, largest
magnitude)).  Measured worst errors (relative, GRU and RNN): float32 6.5e-7 (GRU db_ih; RNN
dbias 4.4e-7), float64 1.5e-15.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import Problem, assert_close

torch = pytest.importorskip("torch")

from torch_twins import TORCH_DTYPE, TORCH_MODULES  # noqa: E402


def torch_run(p, dtype, lengths=None):
    """torch's outputs and the gradients of sum(y*dy) + sum(h_n*dh_n) (+ sum(c_n*dc_n)), as
    float64 arrays keyed like the fields of LSTMGrads / GRUGrads / RNNGrads."""
    I, H = p.w_ih.shape[1], p.w_hh.shape[1]
    module = TORCH_MODULES[p.cell](I, H, dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for name, value in [("weight_ih_l0", p.w_ih), ("weight_hh_l0", p.w_hh),
                            ("bias_ih_l0", p.b_ih), ("bias_hh_l0", p.b_hh)]:
            getattr(module, name).copy_(torch.from_numpy(value))
    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    x = tensor(p.x)
    initial = [tensor(s[None]) for s in p.initial_state]
    hx = tuple(initial) if p.cell == "lstm" else initial[0]
    if lengths is None:
        y, final = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         enforce_sorted=False)
        out, final = module(packed, hx)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=p.x.shape[0])
    final = final if p.cell == "lstm" else (final,)
    dy, *dstate = p.output_grads
    loss = (y * torch.from_numpy(dy)).sum() + sum(
        (s[0] * torch.from_numpy(d)).sum() for s, d in zip(final, dstate, strict=True))
    loss.backward()
    numpy = lambda t: t.detach().double().numpy()  # noqa: E731
    out = {"y": numpy(y), "dx": numpy(x.grad),
           "dw_ih": numpy(module.weight_ih_l0.grad), "dw_hh": numpy(module.weight_hh_l0.grad)}
    for name, s, s0 in zip(("h", "c"), final, initial):
        out[f"{name}_n"] = numpy(s[0])
        out[f"d{name}0"] = numpy(s0.grad[0])
    db_ih, db_hh = numpy(module.bias_ih_l0.grad), numpy(module.bias_hh_l0.grad)
    if p.cell == "gru":
        out["db_ih"], out["db_hh"] = db_ih, db_hh
    else:  # the kernels take b_ih + b_hh as one bias: its gradient is the gradient of each
        out["dbias"] = db_ih
        out["dbias vs db_hh"] = db_hh
    return out


def compare(p, dtype, lengths=None):
    assert np.abs(p.b_ih - p.b_hh).min() > 0  # two genuinely different biases
    expected = torch_run(p, dtype, lengths)
    *outputs, cache = p.forward(dtype, lengths=lengths)
    grads = p.backward(cache, *p.output_grads, dtype=dtype)
    actual = {**dict(zip(p.output_names, outputs, strict=True)), **grads._asdict()}
    if "dbias" in actual:
        actual["dbias vs db_hh"] = actual["dbias"]
    assert set(actual) == set(expected)
    for name, value in actual.items():
        assert value.dtype == dtype, name
        assert_close(value, expected[name], name)


@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 2), (9, 4, 7, 5), (33, 16, 40, 64)])
def test_outputs_and_gradients_match_torch(T, B, I, H, dtype, cell):
    compare(cell.problem(T, B, I, H, seed=T + I), dtype)


def test_lengths_match_torch_packed_sequence(dtype, cell):
    compare(cell.problem(9, 5, 6, 4, seed=9), dtype, lengths=[3, 9, 1, 7, 2])


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


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_the_documented_one_liner_moves_a_stack_to_torch(cls):
    # docs/user_guide/interchange.rst: torch's load_state_dict takes the stack's state_dict
    # as tensors, with no renaming, and computes the same outputs
    ours = getattr(lc, cls)(3, 4, num_layers=2, bidirectional=True, seed=0).eval()
    theirs = getattr(torch.nn, cls)(3, 4, num_layers=2, bidirectional=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x)[0], want, rtol=0, atol=1e-5)
