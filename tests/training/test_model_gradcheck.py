"""End-to-end float64 gradient check: LSTM stack (bidirectional, dropout) -> Linear -> loss,
analytic gradients of every parameter and of x against central finite differences.

Central differences with step 1e-6 have truncation error ~1e-12 and rounding error
~1e-16 / 1e-6 = 1e-10 relative to the loss; 1e-6 relative to the gradient's scale leaves a wide
margin while any wiring bug (a wrong direction, mask or bias) gives errors of order 1e-1.
"""

import numpy as np
import pytest

import lstm_core as lc

STEP = 1e-6
TOLERANCE = 1e-6


def check_model(model, x, loss_fn, target, lengths, samples=8):
    rng = np.random.default_rng(0)

    def loss_at():
        model.lstm.rng = np.random.default_rng(123)  # the same dropout masks every time
        value, grad = loss_fn(model(x, lengths=lengths), target)
        return value, grad

    model.zero_grad()
    _, grad = loss_at()
    dx = model.backward(grad)
    analytic = {name: g.copy() for name, g in model.grads.items()}
    analytic["x"] = dx
    arrays = dict(model.params, x=x)
    for name, array in arrays.items():
        flat = array.reshape(-1)
        scale = max(1.0, np.abs(analytic[name]).max())
        for i in rng.choice(flat.size, min(samples, flat.size), replace=False):
            saved = flat[i]
            flat[i] = saved + STEP
            up, _ = loss_at()
            flat[i] = saved - STEP
            down, _ = loss_at()
            flat[i] = saved
            numeric = (up - down) / (2 * STEP)
            error = abs(numeric - analytic[name].reshape(-1)[i]) / scale
            assert error < TOLERANCE, f"{name}[{i}]: {numeric} vs {analytic[name].reshape(-1)[i]}"


def test_sequence_to_one_classifier_gradients():
    lstm = lc.LSTM(3, 4, 2, bidirectional=True, dropout=0.3, dtype=np.float64, seed=0)
    model = lc.SequenceModel(lstm, lc.Linear(8, 3, dtype=np.float64, seed=1), output="last")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4, 3))
    labels = np.array([0, 2, 1, 2])
    check_model(model, x, lc.cross_entropy_loss, labels, lengths=None)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_to_sequence_regressor_gradients_with_lengths(bidirectional):
    D = 2 if bidirectional else 1
    lstm = lc.LSTM(2, 3, 3, bidirectional=bidirectional, batch_first=True, dropout=0.2,
                   dtype=np.float64, seed=3, unit_forget_bias=True)
    model = lc.SequenceModel(lstm, lc.Linear(3 * D, 2, dtype=np.float64, seed=4), output="all")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 2))  # (B, T, I)
    target = rng.standard_normal((3, 6, 2))
    lengths = np.array([6, 2, 4])
    mask = (np.arange(6)[None, :] < lengths[:, None])[:, :, None]
    check_model(model, x, lambda p, t: lc.mse_loss(p, t, mask), target, lengths)


@pytest.mark.parametrize("output", ["last", "all"])
def test_every_cell_model_gradients(cell, output):
    """SequenceModel takes any recurrent stack; the same check through each cell's layer."""
    stack = cell.layer(3, 4, 2, bidirectional=True, dropout=0.2, dtype=np.float64, seed=6)
    model = lc.SequenceModel(stack, lc.Linear(8, 2, dtype=np.float64, seed=7), output=output)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 3, 3))
    lengths = np.array([5, 1, 3])
    shape = (3, 2) if output == "last" else (5, 3, 2)
    target = rng.standard_normal(shape)
    check_model(model, x, lc.mse_loss, target, lengths)
