"""Heads deeper than one Linear: Dropout, Tanh, ReLU and Sequential (lstm_core/heads.py),
against finite differences in float64, against torch.nn.Sequential, inside a SequenceModel."""

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import numeric_gradient

STEP, TOLERANCE = 1e-6, 1e-6


def head(dtype=np.float64, p=0.3):
    return lc.Sequential(lc.Linear(4, 6, dtype=dtype, seed=0), lc.Tanh(),
                         lc.Dropout(p, seed=1), lc.Linear(6, 5, dtype=dtype, seed=2), lc.ReLU(),
                         lc.Linear(5, 3, dtype=dtype, seed=3))


def test_sequential_gradients_match_finite_differences():
    seq = head()
    dropout = seq.modules[2]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 4))
    weights = rng.standard_normal((7, 3))

    def loss():
        dropout._rng = np.random.default_rng(9)  # the same mask every time
        return float((seq(x) * weights).sum())

    loss()
    seq.zero_grad()
    dx = seq.backward(weights)
    assert dropout.last_mask is not None and 0 < (dropout.last_mask == 0).mean() < 1
    for name, array in {**seq.params, "x": x}.items():
        analytic = dx if name == "x" else seq.grads[name]
        numeric = numeric_gradient(loss, array, STEP)
        scale = max(1.0, np.abs(analytic).max())
        assert np.abs(numeric - analytic).max() / scale < TOLERANCE, name


def test_dropout_scales_in_training_and_is_the_identity_in_eval():
    x = np.ones((200, 50))
    drop = lc.Dropout(0.25, seed=0)
    y = drop(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), y)
    again = lc.Dropout(0.25, seed=0)(x)
    np.testing.assert_array_equal(again, y)  # seeded
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x), x)
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="p must be"):
            lc.Dropout(bad)


def test_activations():
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0])
    relu, tanh = lc.ReLU(), lc.Tanh()
    np.testing.assert_array_equal(relu(x), [0, 0, 0, 0.5, 3])
    np.testing.assert_array_equal(relu.backward(np.ones(5)), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(tanh(x), np.tanh(x))
    np.testing.assert_allclose(tanh.backward(np.ones(5)), 1 - np.tanh(x) ** 2)
    with pytest.raises(RuntimeError, match="forward first"):
        lc.Tanh().backward(np.ones(2))


def test_sequential_is_checked():
    with pytest.raises(ValueError, match="at least one Linear"):
        lc.Sequential(lc.ReLU())
    with pytest.raises(TypeError, match="module 1 must be"):
        lc.Sequential(lc.Linear(2, 3), lc.LSTM(3, 2))
    with pytest.raises(ValueError, match="3 outputs is followed by one of 4 inputs"):
        lc.Sequential(lc.Linear(2, 3), lc.Linear(4, 1))
    with pytest.raises(TypeError, match="mix"):
        lc.Sequential(lc.Linear(2, 3), lc.Linear(3, 1, dtype=np.float64))
    with pytest.raises(ValueError, match="in_features"):
        lc.SequenceModel(lc.LSTM(2, 5), head(np.float32))


def test_matches_torch_sequential_in_eval():
    torch = pytest.importorskip("torch")
    seq = head(p=0.5).eval()
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                                 torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    module = module.double().eval()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in seq.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((3, 4))
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(seq(x), want, rtol=1e-12, atol=1e-12)


def test_a_sequence_model_trains_with_a_sequential_head():
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (64, 10, 2)).astype(np.float32)
    y = x[:, :, 0].sum(axis=1, keepdims=True).astype(np.float32)
    model = lc.SequenceModel(lc.LSTM(2, 8, batch_first=True, seed=0),
                             lc.Sequential(lc.Linear(8, 16, seed=1), lc.ReLU(),
                                           lc.Dropout(0.1, seed=2), lc.Linear(16, 1, seed=3)))
    assert "head.0.weight" in model.params and "head.3.bias" in model.params
    history = lc.fit(model, x, y, optimizer=lc.Adam(model.params, lr=0.02), epochs=15,
                     batch_size=16, seed=0, progress=False)
    assert history["loss"][-1] < history["loss"][0] / 5
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))  # no dropout in eval
