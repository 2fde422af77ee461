"""Gate traces are views of the training cache and equal the reference's recomputation."""

import numpy as np
import pytest

import lstm_core as lc


def _problem(T=7, B=3, I=4, H=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I))
    w_ih = rng.uniform(-0.5, 0.5, (4 * H, I))
    w_hh = rng.uniform(-0.5, 0.5, (4 * H, H))
    bias = rng.uniform(-0.5, 0.5, 4 * H)
    return x, w_ih, w_hh, bias


def _reference_trace(x, w_ih, w_hh, bias, lengths=None):
    *_, cache = lc.reference.lstm_forward(x, w_ih, w_hh, bias, lengths=lengths)
    H = w_hh.shape[1]
    trace = {n: cache.gates[:, :, k * H:(k + 1) * H] for k, n in enumerate("ifgo")}
    trace["c"] = cache.c[1:]
    return trace


def test_gate_trace_views_equal_the_reference():
    x, w_ih, w_hh, bias = _problem()
    *_, cache = lc.lstm_forward(x, w_ih, w_hh, bias)
    trace = lc.gate_trace(cache)
    expected = _reference_trace(x, w_ih, w_hh, bias)
    for name in "ifgoc":
        assert trace[name].shape == (7, 3, 5)
        assert np.shares_memory(trace[name], cache.c if name == "c" else cache.gates)
        np.testing.assert_allclose(trace[name], expected[name], rtol=1e-12, atol=1e-12)
    # The gates are the activations themselves: sigmoids in (0, 1), the candidate in (-1, 1).
    assert trace["f"].min() > 0 and trace["f"].max() < 1
    assert np.abs(trace["g"]).max() < 1


def test_lstm_gates_follow_layout_and_directions():
    x, *_ = _problem(T=6, B=2, I=4)
    lengths = np.array([6, 3])
    lstm = lc.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True,
                   dtype=np.float64, seed=1)
    x_bf = np.ascontiguousarray(x.transpose(1, 0, 2))           # (B, T, I)
    y, _ = lstm(x_bf, lengths=lengths)
    traces = lc.lstm_gates(lstm)
    assert len(traces) == 4 and traces[0]["i"].shape == (2, 6, 5)

    # Layer 0, reverse direction: each sequence reversed within its length, run alone.
    for b, length in enumerate(lengths):
        seq = x_bf[b, :length][::-1][:, None, :]                # (length, 1, I)
        w_ih, w_hh, bias = lstm._weights(0, 1)
        expected = _reference_trace(seq, w_ih, w_hh, bias)
        for name in "ifgoc":
            got = traces[1][name][b, :length]
            np.testing.assert_allclose(got, expected[name][::-1, 0], rtol=1e-10, atol=1e-12)
    # The top layer's forward-direction output is o * tanh(c) step by step.
    h_top = traces[2]["o"] * np.tanh(traces[2]["c"])
    valid = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_allclose(y[..., :5][valid], h_top[valid], rtol=1e-10, atol=1e-12)


def test_lstm_gates_needs_a_training_forward():
    lstm = lc.LSTM(2, 3, seed=0).eval()
    lstm(np.zeros((4, 1, 2), np.float32))
    with pytest.raises(RuntimeError, match="training mode"):
        lc.lstm_gates(lstm)


def test_gate_heat_map_draws(tmp_path):
    pytest.importorskip("matplotlib")
    from lstm_core.plotting import plot_gates
    x, w_ih, w_hh, bias = _problem()
    *_, cache = lc.lstm_forward(x, w_ih, w_hh, bias)
    path = tmp_path / "gates.png"
    figure = plot_gates(lc.gate_trace(cache), sample=1, path=path)
    assert path.stat().st_size > 1000
    assert len(figure.axes) == 10                               # 5 panels and their colour bars


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_gate_heat_map_reads_the_traces_layout(batch_first):
    """A batch-first model's trace is (B, T, H): its heat map still runs over the T steps of
    the chosen sequence, not over the batch."""
    pytest.importorskip("matplotlib")
    from lstm_core.plotting import plot_gates
    T, B = 20, 4
    lstm = lc.LSTM(3, 5, batch_first=batch_first, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((B, T, 3) if batch_first else (T, B, 3))
    lstm(x)
    trace = lc.lstm_gates(lstm)[0]
    assert trace.layout == ("BTH" if batch_first else "TBH")
    figure = plot_gates(trace, sample=2)
    image = figure.axes[1].images[0].get_array()     # the forget gate: (units, steps)
    f = trace["f"][2] if batch_first else trace["f"][:, 2]
    assert image.shape == (5, T)
    np.testing.assert_array_equal(image, f.T)
    with pytest.raises(ValueError, match="contradicts the trace's layout"):
        plot_gates(trace, batch_first=not batch_first)
    assert lc.gate_trace(lstm._tape[0][0]).layout == "TBH"
