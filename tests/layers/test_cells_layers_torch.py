"""lc.RNN and lc.GRU against torch.nn.RNN / torch.nn.GRU loaded from the same state_dict, as is:
outputs, h_n, dx, dh0 and every parameter gradient, over num_layers 1-2, bidirectional,
batch_first, both dtypes, and packed sequences with unsorted lengths.

Tolerances: tests/lstm_problems.py's (float32 5e-6, float64 1e-12, relative to
max(1, largest magnitude)).  Skipped only when torch is not installed.
Measured worst errors (relative, over this grid): float32 8.1e-7 (RNN bias gradients, a sum over
T*B rows and two directions), float64 2.4e-15; no tolerance had to be widened.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import assert_close

torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
PAIRS = {"rnn": (torch.nn.RNN, lc.RNN), "gru": (torch.nn.GRU, lc.GRU)}


def twins(cell, I, H, layers, bidirectional, batch_first, dtype, seed):
    """A torch module with U(-0.5, 0.5) weights and biases, and our layer loaded from its
    state_dict as is."""
    torch.manual_seed(seed)
    torch_cls, our_cls = PAIRS[cell]
    module = torch_cls(I, H, layers, batch_first=batch_first, bidirectional=bidirectional,
                       dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    layer = our_cls(I, H, layers, batch_first=batch_first, bidirectional=bidirectional,
                    dtype=dtype)
    assert list(layer.params) == [k for k, _ in module.named_parameters()]
    layer.load_state_dict(module.state_dict())
    return module, layer


def compare(module, layer, x, h0, dtype, rng, lengths=None):
    """Both on the same data; every quantity asserted close; returns the relative errors."""
    y, h_n = layer(x.astype(dtype), h0.astype(dtype), lengths)
    dy, dh_n = rng.standard_normal(y.shape), rng.standard_normal(h_n.shape)
    layer.zero_grad()
    dx = layer.backward(dy.astype(dtype), dh_n.astype(dtype))
    actual = {"y": y, "h_n": h_n, "dx": dx, "dh0": layer.dhx,
              **{f"grad {k}": v for k, v in layer.grads.items()}}

    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    xt, h0t = tensor(x), tensor(h0)
    if lengths is None:
        yt, h_nt = module(xt, h0t)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False)
        out, h_nt = module(packed, h0t)
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=module.batch_first, total_length=y.shape[1 if module.batch_first else 0])
    weight = lambda a: torch.from_numpy(a).to(TORCH_DTYPE[dtype])  # noqa: E731
    ((yt * weight(dy)).sum() + (h_nt * weight(dh_n)).sum()).backward()
    numpy = lambda t: t.detach().double().numpy()  # noqa: E731
    expected = {"y": numpy(yt), "h_n": numpy(h_nt), "dx": numpy(xt.grad), "dh0": numpy(h0t.grad),
                **{f"grad {k}": numpy(p.grad) for k, p in module.named_parameters()}}
    assert set(actual) == set(expected)
    for name, value in actual.items():
        assert value.dtype == dtype, name
        assert_close(value, expected[name], name)
    return actual


@pytest.mark.parametrize("cell", PAIRS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("packed", [False, True], ids=["full", "packed"])
def test_stack_matches_torch(packed, layers, bidirectional, batch_first, dtype, cell):
    T, B, I, H = 6, 3, 5, 4
    seed = 100 * layers + 10 * bidirectional + batch_first
    module, layer = twins(cell, I, H, layers, bidirectional, batch_first, dtype, seed)
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = rng.uniform(-0.9, 0.9, (layers * D, B, H))
    lengths = [4, 6, 1] if packed else None  # unsorted
    actual = compare(module, layer, x, h0, dtype, rng, lengths)
    assert actual["y"].shape == ((B, T, D * H) if batch_first else (T, B, D * H))
    assert actual["h_n"].shape == (layers * D, B, H)


@pytest.mark.parametrize("cell", PAIRS)
def test_unbatched_input_and_eval_mode(cell):
    module, layer = twins(cell, 3, 4, 2, True, False, np.float64, seed=7)
    rng = np.random.default_rng(7)
    x, h0 = rng.standard_normal((5, 3)), rng.uniform(-0.9, 0.9, (4, 4))
    actual = compare(module, layer, x, h0, np.float64, rng)
    assert actual["y"].shape == (5, 8) and actual["h_n"].shape == (4, 4)
    y_eval, h_eval = layer.eval()(x, h0)  # inference kernels: the same bits, no tape
    np.testing.assert_array_equal(y_eval, actual["y"])
    np.testing.assert_array_equal(h_eval, actual["h_n"])
    with pytest.raises(RuntimeError, match="training mode"):
        layer.backward(np.zeros_like(y_eval))


@pytest.mark.parametrize("cell", PAIRS)
def test_step_matches_torch_over_a_sequence(cell):
    T, B, I, H, layers = 8, 2, 3, 5, 2
    module, layer = twins(cell, I, H, layers, False, False, np.float64, seed=3)
    x = np.random.default_rng(3).standard_normal((T, B, I))
    with torch.no_grad():
        y_t, h_t = module(torch.from_numpy(x))
    state = None
    for t in range(T):
        y_step, state = layer.step(x[t], state)
        assert_close(y_step, y_t[t].numpy(), f"y[{t}]")
    assert_close(state, h_t.numpy(), "h")
    y1, h1 = layer.step(x[0, 0])  # unbatched
    assert y1.shape == (H,) and h1.shape == (layers, H)


def test_rnn_supports_tanh_only():
    assert lc.RNN(2, 3, nonlinearity="tanh").nonlinearity == "tanh"
    with pytest.raises(ValueError, match=r"nonlinearity must be 'tanh'.*got 'relu'"):
        lc.RNN(2, 3, nonlinearity="relu")


@pytest.mark.parametrize("cls", [lc.RNN, lc.GRU])
def test_layer_interface(cls):
    layer = cls(3, 4, 2, bidirectional=True, bias=False, dtype=np.float64, seed=1)
    assert sorted(layer.params) == sorted(
        f"weight_{kind}_l{k}{s}" for kind in ("ih", "hh") for k in (0, 1) for s in ("", "_reverse"))
    gates = 1 if cls is lc.RNN else 3
    assert layer.params["weight_ih_l1"].shape == (gates * 4, 8)
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
