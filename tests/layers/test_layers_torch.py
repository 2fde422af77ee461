"""lc.LSTM against torch.nn.LSTM loaded from the same state_dict: outputs, final states, dx,
dh0, dc0 and every parameter gradient.

Skipped only when torch is not installed.  Tolerances are tests/lstm_problems.py's
(float32 5e-6, float64 1e-12, relative to max(1, largest magnitude)).  Measured worst errors on
this grid, 3 layers included: float32 5.0e-7 (a parameter gradient; 1.2e-6 absolute), float64
1.0e-15; with lengths (test_layers_lengths.py) 2.9e-7 and 7e-16.  Deeper stacks stay an order
of magnitude inside the single-layer bounds, so no larger bound is needed.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import assert_close

torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def torch_module(I, H, layers, bidirectional, batch_first, dtype, seed):
    """A torch.nn.LSTM with weights and two distinct non-zero biases drawn from U(-0.5, 0.5)."""
    torch.manual_seed(seed)
    module = torch.nn.LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional,
                           dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    return module


def twin_stacks(T, B, I, H, layers, bidirectional, batch_first, dtype, seed):
    """A torch.nn.LSTM, an lc.LSTM loaded from its state_dict as is, seeded input x in the
    layout batch_first asks for, non-zero (h0, c0), and the generator for the rest."""
    module = torch_module(I, H, layers, bidirectional, batch_first, dtype, seed)
    lstm = lc.LSTM(I, H, layers, batch_first=batch_first, bidirectional=bidirectional,
                   dtype=dtype)
    lstm.load_state_dict(module.state_dict())  # torch tensors, loaded as is
    assert list(lstm.params) == [k for k, _ in module.named_parameters()]
    rng = np.random.default_rng(seed)
    stacks = layers * (2 if bidirectional else 1)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    hx = (rng.uniform(-0.9, 0.9, (stacks, B, H)), rng.standard_normal((stacks, B, H)))
    return module, lstm, x, hx, rng


def run_torch(module, x, hx, dy, dh_n, dc_n, dtype, lengths=None):
    """y, h_n, c_n and the gradients of sum(y*dy) + sum(h_n*dh_n) + sum(c_n*dc_n)."""
    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    xt, h0, c0 = tensor(x), tensor(hx[0]), tensor(hx[1])
    if lengths is None:
        y, (h_n, c_n) = module(xt, (h0, c0))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False)
        out, (h_n, c_n) = module(packed, (h0, c0))
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=module.batch_first, total_length=x.shape[1 if module.batch_first else 0])
    weight = lambda a: torch.from_numpy(a).to(TORCH_DTYPE[dtype])  # noqa
    loss = (y * weight(dy)).sum() + (h_n * weight(dh_n)).sum() + (c_n * weight(dc_n)).sum()
    loss.backward()
    numpy = lambda t: t.detach().double().numpy()  # noqa
    return {"y": numpy(y), "h_n": numpy(h_n), "c_n": numpy(c_n), "dx": numpy(xt.grad),
            "dh0": numpy(h0.grad), "dc0": numpy(c0.grad),
            "grads": {k: numpy(p.grad) for k, p in module.named_parameters()}}


def compare(module, lstm, x, hx, dtype, rng, lengths=None):
    """Run both on the same data; assert every quantity close; return the max errors."""
    y, (h_n, c_n) = lstm(x.astype(dtype), tuple(s.astype(dtype) for s in hx), lengths)
    dy = rng.standard_normal(y.shape)
    dh_n, dc_n = rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)
    expected = run_torch(module, x, hx, dy, dh_n, dc_n, dtype, lengths)
    lstm.zero_grad()
    dx = lstm.backward(dy.astype(dtype), dh_n.astype(dtype), dc_n.astype(dtype))
    actual = {"y": y, "h_n": h_n, "c_n": c_n, "dx": dx, "dh0": lstm.dhx[0], "dc0": lstm.dhx[1]}
    actual.update({f"grad {k}": v for k, v in lstm.grads.items()})
    expected.update({f"grad {k}": v for k, v in expected.pop("grads").items()})
    assert set(actual) == set(expected)
    for name, value in actual.items():
        assert value.dtype == dtype, name
        assert_close(value, expected[name], name)
    return actual, expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_stack_matches_torch(layers, bidirectional, batch_first, dtype):
    T, B, I, H = 6, 3, 5, 4
    seed = 100 * layers + 10 * bidirectional + batch_first
    module, lstm, x, hx, rng = twin_stacks(T, B, I, H, layers, bidirectional, batch_first,
                                           dtype, seed)
    actual, _ = compare(module, lstm, x, hx, dtype, rng)
    D = 2 if bidirectional else 1
    assert actual["y"].shape == ((B, T, D * H) if batch_first else (T, B, D * H))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_unbatched_input_matches_torch(dtype):
    T, I, H, layers = 5, 3, 4, 2
    module = torch_module(I, H, layers, True, False, dtype, seed=7)
    lstm = lc.LSTM(I, H, layers, bidirectional=True, dtype=dtype)
    lstm.load_state_dict(module.state_dict())
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, I))
    hx = (rng.uniform(-0.9, 0.9, (2 * layers, H)), rng.standard_normal((2 * layers, H)))
    actual, _ = compare(module, lstm, x, hx, dtype, rng)
    assert actual["y"].shape == (T, 2 * H) and actual["h_n"].shape == (2 * layers, H)


def test_step_matches_torch_over_a_sequence():
    """Streaming through lc.LSTM.step, one step at a time, ends where torch does."""
    T, B, I, H, layers = 8, 2, 3, 5, 2
    module = torch_module(I, H, layers, False, False, np.float64, seed=3)
    lstm = lc.LSTM(I, H, layers, dtype=np.float64)
    lstm.load_state_dict(module.state_dict())
    x = np.random.default_rng(3).standard_normal((T, B, I))
    with torch.no_grad():
        y_t, (h_t, c_t) = module(torch.from_numpy(x))
    state = None
    for t in range(T):
        y_step, state = lstm.step(x[t], state)
        assert_close(y_step, y_t[t].numpy(), f"y[{t}]")
    assert_close(state[0], h_t.numpy(), "h")
    assert_close(state[1], c_t.numpy(), "c")
