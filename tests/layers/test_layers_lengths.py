"""Variable-length batches through lc.LSTM and fit: parity with torch's packed sequences.

Each test runs twice: on the fast kernels (lc.lstm_forward with lengths=), and on the numpy
reference kernels swapped into lstm_core.layers, which checks the layer's own glue (the
reverse direction reversing each sequence within its length, the state selection) against
torch independently of the compiled path.  Tolerances as in test_layers_torch.py.
"""

import numpy as np
import pytest

import lstm_core as lc
import lstm_core.layers
from lstm_problems import assert_close


def _fast_lengths():
    """Whether the compiled lstm_forward takes lengths= (being added on main)."""
    x = np.zeros((2, 1, 1))
    w = np.zeros((4, 1))
    try:
        lc.lstm_forward(x, w, w, lengths=np.array([1]))
    except TypeError:
        return False
    return True


@pytest.fixture(params=["fast", "reference"])
def kernels(request, monkeypatch):
    if request.param == "fast":
        if not _fast_lengths():
            pytest.skip("the compiled lstm_forward has no lengths= yet")
    else:
        monkeypatch.setattr(lstm_core.layers, "lstm_forward", lc.reference.lstm_forward)
        monkeypatch.setattr(lstm_core.layers, "lstm_backward", lc.reference.lstm_backward)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
def test_lengths_match_torch_packed_sequences(kernels, layers, bidirectional, batch_first,
                                              dtype):
    pytest.importorskip("torch")
    from torch_twins import compare, twin_stacks

    T, I, H = 7, 3, 4
    lengths = np.array([4, 7, 1, 5, 2])  # unsorted, one full, one of a single step
    B = len(lengths)
    seed = 10 * layers + 2 * bidirectional + batch_first
    module, lstm, x, hx, rng = twin_stacks("lstm", T, B, I, H, layers, bidirectional,
                                           batch_first, dtype, seed)
    actual, _ = compare(module, lstm, x, hx, dtype, rng, lengths)
    y = actual["y"] if batch_first else actual["y"].transpose(1, 0, 2)
    for b, length in enumerate(lengths):
        assert not y[b, length:].any(), "padding steps output zeros"
        assert not actual["dx"][(b, slice(length, None)) if batch_first
                                else (slice(length, None), b)].any(), "no gradient into padding"


def test_zero_length_keeps_the_initial_state(kernels):
    lstm = lc.LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 3))
    hx = (rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 3, 4)))
    y, (h_n, c_n) = lstm(x, hx, lengths=np.array([5, 0, 2]))
    assert not y[:, 1].any()
    # Layer 0 of sequence 1 never steps; layer 1 neither: every state stays h0/c0.
    assert np.array_equal(h_n[:, 1], hx[0][:, 1]) and np.array_equal(c_n[:, 1], hx[1][:, 1])
    dx = lstm.backward(np.ones_like(y), np.ones_like(h_n))
    assert not dx[:, 1].any()
    assert np.array_equal(lstm.dhx[0][:, 1], np.ones((4, 4))), "dh_n passes straight to dh0"


def test_full_lengths_equal_no_lengths(kernels):
    lstm = lc.LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, seed=2)
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    y, (h_n, c_n) = lstm(x)
    y_l, (h_l, c_l) = lstm(x, lengths=np.array([6, 6]))
    assert_close(y_l, y, "y")
    assert_close(h_l, h_n, "h_n")
    assert_close(c_l, c_n, "c_n")


def test_fit_ignores_targets_on_padding_steps(kernels):
    """Per-step loss with lengths: what the targets hold past each length changes nothing."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 4, 2))
    y = rng.standard_normal((6, 4, 1))
    lengths = np.array([6, 2, 4, 3])
    y_other = y.copy()
    for b, length in enumerate(lengths):
        y_other[length:, b] = 100.0
    histories = []
    for targets in (y, y_other):
        model = lc.SequenceModel(lc.LSTM(2, 5, dtype=np.float64, seed=0),
                                 lc.Linear(5, 1, dtype=np.float64, seed=0), output="all")
        histories.append(lc.fit(model, x, targets, lengths=lengths, epochs=3, batch_size=2,
                                optimizer=lc.SGD(model.params, lr=0.1), seed=0,
                                progress=False))
    assert histories[0]["loss"] == histories[1]["loss"]
    assert histories[0]["loss"][-1] < histories[0]["loss"][0]
