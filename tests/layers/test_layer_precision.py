"""Layers in reduced precision (lstm.precision = "bfloat16" | "int8"): the same kernels as the
functional API, mixed-precision training through backward and fit, eval-only int8, checked
settings, and save/load keeping the setting."""

import numpy as np
import pytest

import lstm_core as lc


def data(T=9, B=5, I=3, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(np.float32)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_an_eval_layer_runs_the_packed_kernels(precision):
    lstm = lc.LSTM(3, 8, seed=1, precision=precision).eval()
    x = data()
    y, (h_n, c_n) = lstm(x)
    w = lstm.params
    packed = lc.pack_lstm(w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"] + w["bias_hh_l0"],
                          precision=precision)
    want = packed.forward(x)
    for a, b in zip((y, h_n[0], c_n[0]), want):
        np.testing.assert_array_equal(a, b)
    # a streaming step is one packed cell step
    out, (h1, c1) = lstm.step(x[0])
    np.testing.assert_array_equal(h1[0], packed.cell(x[0], np.zeros((5, 8), np.float32),
                                                     np.zeros((5, 8), np.float32))[0])


def test_mixed_precision_training_gradients_are_close_to_float32():
    # Two bidirectional layers with dropout off: the gradients of a bfloat16 stack against the
    # float32 stack's, within the 2e-2 relative target of mixed precision.
    x = data(T=12, B=6, I=4, seed=2)
    dy = np.random.default_rng(3).standard_normal((12, 6, 16)).astype(np.float32)
    stacks = {p: lc.LSTM(4, 8, num_layers=2, bidirectional=True, seed=4, precision=p)
              for p in (None, "bfloat16")}
    for stack in stacks.values():
        stack(x)
        stack.backward(dy)
    for name, exact in stacks[None].grads.items():
        got = stacks["bfloat16"].grads[name]
        assert got.dtype == np.float32
        error = np.abs(got - exact).max() / np.abs(exact).max()
        assert 0 < error <= 2e-2, name  # not zero: the products really ran in bfloat16


def test_int8_is_for_eval_mode_and_settings_are_checked():
    lstm = lc.LSTM(3, 4, precision="int8")
    with pytest.raises(ValueError, match="eval mode only"):
        lstm(data())
    lstm.eval()(data())
    with pytest.raises(ValueError, match="precision must be None, 'bfloat16' or 'int8'"):
        lstm.precision = "float16"
    with pytest.raises(ValueError, match="needs a float32 LSTM"):
        lc.LSTM(3, 4, dtype=np.float64, precision="bfloat16")
    for cls in (lc.GRU, lc.RNN):
        with pytest.raises(ValueError, match="implemented for the LSTM"):
            cls(3, 4, precision="bfloat16")
    lstm.precision = None
    lstm.train()(data())


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_save_and_load_keep_the_precision(tmp_path, precision):
    model = lc.SequenceModel(lc.LSTM(3, 6, seed=5, precision=precision), lc.Linear(6, 2, seed=5))
    path = tmp_path / "model.npz"
    lc.save_model(model, path)
    loaded = lc.load_model(path)
    assert loaded.lstm.precision == precision
    x = data()
    np.testing.assert_array_equal(lc.predict(loaded, x), lc.predict(model, x))


def test_fit_in_bfloat16_ends_near_float32():
    # The seeded regression of the training tests, trained in float32 and in mixed precision
    # from the same initialisations.  One run's final loss is a point on a chaotic trajectory:
    # measured, bfloat16 against float32 per seed -6 % to +20 %, which a float32 run with a
    # different BLAS would scatter too.  Averaged over three seeds: +1.8 %; the target is 5 %.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (128, 12, 2)).astype(np.float32)
    y = (0.5 * x[:, :, 0].sum(axis=1, keepdims=True) + x[:, -1, 1:2]).astype(np.float32)
    losses = {None: [], "bfloat16": []}
    for seed in range(3):
        for precision in losses:
            model = lc.SequenceModel(
                lc.LSTM(2, 16, batch_first=True, seed=seed, precision=precision),
                lc.Linear(16, 1, seed=seed))
            history = lc.fit(model, x, y, optimizer=lc.Adam(model.params, lr=0.02), epochs=30,
                             batch_size=16, seed=seed, progress=False)
            assert history["loss"][0] / history["loss"][-1] > 20
            losses[precision].append(lc.evaluate(model, x, y)["loss"])
    assert abs(np.mean(losses["bfloat16"]) / np.mean(losses[None]) - 1) <= 0.05, losses
