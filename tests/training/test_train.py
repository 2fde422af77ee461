"""The fit loop, predict and evaluate: a seeded tiny training run, shuffling, validation, early
stopping, progress output, truncated BPTT and stateful inference."""

import re
import sys

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import assert_close


def regression_data(n=128, T=12, seed=0):
    """x (N, T, 2) batch-first; y (N, 1) = half the sum of feature 0 plus the last feature 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, T, 2)).astype(np.float32)
    y = (0.5 * x[:, :, 0].sum(axis=1, keepdims=True) + x[:, -1, 1:2]).astype(np.float32)
    return x, y


def regressor(seed=0, dtype=np.float32, output="last", batch_first=True):
    return lc.SequenceModel(lc.LSTM(2, 16, batch_first=batch_first, dtype=dtype, seed=seed),
                            lc.Linear(16, 1, dtype=dtype, seed=seed), output=output)


def test_tiny_training_run_reduces_the_loss():
    x, y = regression_data()
    model = regressor()
    history = lc.fit(model, x, y, optimizer=lc.Adam(model.params, lr=0.02), epochs=30,
                     batch_size=16, seed=0, progress=False)
    # Measured: 1.51 -> 0.0082, a factor of 184; 20 leaves room for BLAS rounding differences.
    assert history["loss"][0] / history["loss"][-1] > 20
    assert len(history["loss"]) == 30 and history["lr"] == [0.02] * 30
    assert lc.evaluate(model, x, y)["loss"] < history["loss"][0] / 20


def test_same_seed_same_run_and_shuffling_matters():
    x, y = regression_data(n=40)
    runs = {}
    for key, seed, shuffle in [("a", 1, True), ("b", 1, True), ("c", 2, True), ("d", 1, False)]:
        model = regressor(dtype=np.float64)
        runs[key] = lc.fit(model, x.astype(np.float64), y, epochs=3, batch_size=8, seed=seed,
                           shuffle=shuffle, progress=False,
                           optimizer=lc.SGD(model.params, lr=0.1))["loss"]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"] and runs["a"] != runs["d"]


def test_validation_and_classification_metrics():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 60, 3)).astype(np.float32)  # time-major (T, N, I)
    labels = (x[:, :, 0].sum(axis=0) > 0).astype(np.int64)   # the sign of a sum
    model = lc.SequenceModel(lc.LSTM(3, 8, seed=0), lc.Linear(8, 2, seed=0))
    history = lc.fit(model, x[:, :40], labels[:40], loss="cross_entropy",
                     validation_data=(x[:, 40:], labels[40:]), epochs=25, batch_size=10,
                     optimizer=lc.Adam(model.params, lr=0.03), seed=0, progress=False)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history["accuracy"][-1] > 0.9
    assert history["val_loss"][-1] < history["val_loss"][0]
    metrics = lc.evaluate(model, x[:, 40:], labels[40:], loss="cross_entropy")
    assert metrics["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-12)
    assert metrics["accuracy"] == history["val_accuracy"][-1]
    predicted = lc.predict(model, x[:, 40:]).argmax(axis=1)
    assert np.mean(predicted == labels[40:]) == metrics["accuracy"]


def test_early_stopping_restores_the_best_epoch():
    x, y = regression_data(n=32)
    # Validating against the negated targets: the better the fit, the worse val_loss, so the
    # best epoch is the first and training stops `patience` epochs later.
    model = regressor()
    history = lc.fit(model, x, y, validation_data=(x, -y), epochs=20, batch_size=8, seed=0,
                     patience=2, optimizer=lc.Adam(model.params, lr=0.02), progress=False)
    assert history.stopped_early and history.best_epoch == 1  # counted from 1
    assert len(history["loss"]) == 3
    after_one = regressor()
    lc.fit(after_one, x, y, epochs=1, batch_size=8, seed=0,
           optimizer=lc.Adam(after_one.params, lr=0.02), progress=False)
    for name, value in model.params.items():
        assert np.array_equal(value, after_one.params[name]), name


EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \S+(  \w+ \S+)*  \(\d+\.\d s\)$")


def test_progress_output(capsys, monkeypatch):
    x, y = regression_data(n=8)
    lc.fit(regressor(), x, y, epochs=2, progress=False)
    assert capsys.readouterr().err == ""
    lc.fit(regressor(), x, y, epochs=2, progress="plain")
    lines = capsys.readouterr().err.splitlines()
    assert [EPOCH_LINE.match(line).group(1, 2) for line in lines] == [("1", "2"), ("2", "2")]
    assert "  lr 0.001  " in lines[1]
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: the lines alone
    lc.fit(regressor(), x, y, epochs=1, progress=True)
    assert EPOCH_LINE.match(capsys.readouterr().err.strip())


def test_progress_bar_with_tqdm_keeps_one_line_per_epoch(capsys):
    pytest.importorskip("tqdm")
    x, y = regression_data(n=8)
    lc.fit(regressor(), x, y, epochs=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "batch" in err  # the bar ran
    kept = [line for line in err.replace("\r", "\n").splitlines() if EPOCH_LINE.match(line)]
    assert [EPOCH_LINE.match(line).group(1) for line in kept] == ["1", "2"]


def test_early_stopping_says_so_and_counts_from_one(capsys):
    """The stop and the restored epoch are announced, with the epoch numbers of the lines."""
    x, y = regression_data(n=32)
    model = regressor()
    history = lc.fit(model, x, y, optimizer=lc.Adam(model.params, lr=0.5), epochs=30,
                     batch_size=8, patience=2, seed=0, progress="plain")
    lines = capsys.readouterr().err.splitlines()
    assert history.stopped_early and len(history["loss"]) < 30
    last = len(history["loss"])
    assert EPOCH_LINE.match(lines[last - 1]).group(1) == str(last)
    assert lines[last] == ("early stopping: loss did not improve by more than 0 for 2 epochs; "
                           f"stopped after epoch {last}")
    best = history.best_epoch
    assert best == 1 + int(np.argmin(history["loss"]))
    assert lines[last + 1].startswith(f"restored the parameters of epoch {best} (loss ")


def test_history_is_a_dict_of_lists():
    x, y = regression_data(n=16)
    history = lc.fit(regressor(), x, y, epochs=3, progress=False)
    assert history.history == dict(history) and set(history.history) == {"loss", "lr"}
    assert all(isinstance(v, list) and len(v) == 3 for v in history.history.values())
    history.history["loss"].append(0.0)  # a copy
    assert len(history["loss"]) == 3


def test_mae_metric_is_the_mean_absolute_error():
    x, y = regression_data(n=24)
    model = regressor()
    history = lc.fit(model, x, y, epochs=2, batch_size=24, shuffle=False, metrics=["mae"],
                     validation_data=(x[:8], y[:8]), progress=False)
    assert set(history) == {"loss", "mae", "val_loss", "val_mae", "lr"}
    model.eval()
    want = float(np.abs(model(x[:8]).astype(np.float64) - y[:8]).mean())
    assert history["val_mae"][-1] == pytest.approx(want, rel=1e-6)
    assert lc.evaluate(model, x[:8], y[:8], metrics=["mae"])["mae"] == pytest.approx(want,
                                                                                     rel=1e-6)


def test_metrics_are_checked():
    x, y = regression_data(n=8)
    labels = np.zeros(8, np.int64)
    for metrics, error, match in [(["f1"], ValueError, "unknown metrics"),
                                  (["accuracy"], ValueError, "integer class labels"),
                                  ("mae", TypeError, "list of names")]:
        with pytest.raises(error, match=match):
            lc.fit(regressor(), x, y, epochs=1, metrics=metrics, progress=False)
    classifier = lc.SequenceModel(lc.LSTM(2, 4, batch_first=True, seed=0), lc.Linear(4, 2, seed=0))
    with pytest.raises(ValueError, match="float targets"):
        lc.fit(classifier, x, labels, loss="cross_entropy", epochs=1, metrics=["mae"],
               progress=False)


def test_validation_split_holds_out_the_last_sequences():
    x, y = regression_data(n=20)
    split = lc.fit(regressor(), x, y, epochs=2, validation_split=0.25, seed=3, progress=False)
    explicit = lc.fit(regressor(), x[:15], y[:15], epochs=2, validation_data=(x[15:], y[15:]),
                      seed=3, progress=False)
    assert split.history == explicit.history
    for bad in (1.0, 0.99, -0.5, True):  # 0.99 of 20 leaves none to train on
        with pytest.raises(ValueError, match="validation_split"):
            lc.fit(regressor(), x, y, epochs=1, validation_split=bad, progress=False)
    with pytest.raises(ValueError, match="not both"):
        lc.fit(regressor(), x, y, epochs=1, validation_split=0.5, validation_data=(x, y),
               progress=False)


def test_callbacks_see_every_epoch_and_can_stop():
    x, y = regression_data(n=16)

    class Recorder:
        def __init__(self):
            self.seen, self.ended = [], None

        def on_epoch_end(self, epoch, logs):
            self.seen.append((epoch, logs["loss"]))
            return epoch == 3  # stop after the third

        def on_train_end(self, history):
            self.ended = history

    recorder = Recorder()
    history = lc.fit(regressor(), x, y, epochs=10, callbacks=[recorder], progress=False)
    assert [e for e, _ in recorder.seen] == [1, 2, 3]
    assert [loss for _, loss in recorder.seen] == history["loss"]
    assert recorder.ended is history and history.stopped_early
    with pytest.raises(TypeError, match="neither on_epoch_end nor on_train_end"):
        lc.fit(regressor(), x, y, epochs=1, callbacks=[object()], progress=False)


def manual_tbptt(model, x, y, lengths, steps, batches, lr):
    """Truncated BPTT written out: for every batch, chunks of `steps` steps, the state carried
    and one SGD update each.  Returns (sum of squared errors, counted targets) of the chunks'
    outputs as they were trained (the model's output has one feature)."""
    opt = lc.SGD(model.params, lr=lr)
    T = x.shape[0]
    valid = np.full(x.shape[1], T) if lengths is None else lengths
    squared, counted = 0.0, 0
    for batch in batches:
        state = None
        for start in range(0, T, steps):
            stop = min(start + steps, T)
            in_chunk = np.clip(valid[batch] - start, 0, stop - start)
            model.zero_grad()
            out, state = model(x[start:stop, batch], state,
                               None if lengths is None else in_chunk, return_state=True)
            mask = (np.arange(stop - start)[:, None] < in_chunk)[:, :, None]
            _, grad = lc.mse_loss(out, y[start:stop, batch], mask)
            squared += float((((out - y[start:stop, batch]) * mask) ** 2).sum())
            counted += int(mask.sum())
            model.backward(grad)
            opt.step(model.grads)
    return squared, counted


def tbptt_problem():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 6, 2))   # time-major (T, N, I)
    y = rng.standard_normal((10, 6, 1))
    lengths = np.array([10, 3, 7, 5, 10, 1])
    models = [regressor(dtype=np.float64, output="all", batch_first=False) for _ in range(2)]
    return x, y, lengths, models


def test_truncated_bptt_equals_a_manual_chunk_loop():
    """fit(tbptt=K) = for every batch, chunks of K steps: state carried, one update each."""
    x, y, lengths, (fitted, manual) = tbptt_problem()
    lc.fit(fitted, x, y, lengths=lengths, tbptt=4, epochs=1, batch_size=3, shuffle=False,
           optimizer=lc.SGD(fitted.params, lr=0.1), progress=False)
    manual_tbptt(manual, x, y, lengths, 4, (slice(0, 3), slice(3, 6)), lr=0.1)
    for name, value in fitted.params.items():
        assert_close(value, manual.params[name], name)
    with pytest.raises(ValueError, match="output='all'"):
        lc.fit(regressor(), *regression_data(n=4), tbptt=3, progress=False)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_truncated_bptt_epoch_loss_is_the_mean_over_targets(with_lengths):
    """T = 10 in chunks of 4: the last chunk has 2 steps, and with lengths the chunks count
    fewer targets than steps times sequences (the last batch's last chunk none at all).  The
    epoch's loss is the mean squared error over every counted target, each taken as its
    chunk was trained."""
    x, y, lengths, (fitted, manual) = tbptt_problem()
    lengths = lengths if with_lengths else None
    history = lc.fit(fitted, x, y, lengths=lengths, tbptt=4, epochs=1, batch_size=3,
                     shuffle=False, optimizer=lc.SGD(fitted.params, lr=0.1), progress=False)
    squared, counted = manual_tbptt(manual, x, y, lengths, 4, (slice(0, 3), slice(3, 6)), 0.1)
    assert counted == (lengths.sum() if with_lengths else 60)
    np.testing.assert_allclose(history["loss"][0], squared / counted, rtol=1e-12)


def test_stateful_inference_in_chunks_equals_one_call():
    x = np.random.default_rng(4).standard_normal((5, 9, 2))  # (N, T, I)
    model = regressor(dtype=np.float64, output="all")
    whole, (h_n, c_n) = lc.predict(model, x, return_state=True)
    state, parts = None, []
    for start in (0, 4, 7):
        part, state = lc.predict(model, x[:, start:start + (4 if start == 0 else 3)],
                                 hx=state, return_state=True, batch_size=2)
        parts.append(part)
    assert_close(np.concatenate(parts, axis=1), whole, "chunked outputs")
    assert_close(state[0], h_n, "h_n")
    assert_close(state[1], c_n, "c_n")
    stream_state = None
    for t in range(9):
        out_t, stream_state = model.step(x[:, t], stream_state)
        assert_close(out_t, whole[:, t], f"step {t}")
    assert model.training, "predict restores the mode"


def test_fit_errors():
    x, y = regression_data(n=8)
    with pytest.raises(TypeError, match="SequenceModel"):
        lc.fit(lc.LSTM(2, 3), x, y)
    with pytest.raises(ValueError, match=r"leading axes \(N,\) = \(8,\)"):
        lc.fit(regressor(), x, y[:5], progress=False)
    with pytest.raises(ValueError, match="loss must be one of"):
        lc.fit(regressor(), x, y, loss="hinge", progress=False)
    with pytest.raises(ValueError, match="x must be 3-D"):
        lc.fit(regressor(), x[0], y, progress=False)


@pytest.mark.parametrize("cell", ["GRU", "RNN"])
def test_stateful_inference_with_gru_and_rnn(cell):
    """Chunks fed with the carried state give the outputs of one call, whatever the cell."""
    stack = getattr(lc, cell)(2, 5, 2, batch_first=True, dtype=np.float64, seed=1)
    model = lc.SequenceModel(stack, lc.Linear(5, 1, dtype=np.float64, seed=2), output="all")
    x = np.random.default_rng(3).standard_normal((3, 12, 2))
    whole = lc.predict(model, x)
    first, state = lc.predict(model, x[:, :7], return_state=True)
    assert isinstance(state, np.ndarray) and state.shape == (2, 3, 5)
    second = lc.predict(model, x[:, 7:], hx=state, batch_size=2)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12,
                               atol=1e-14)


def test_an_optimizer_of_another_model_is_refused():
    x, y = regression_data(n=8)
    model, other = regressor(seed=0), regressor(seed=1)
    copies = {name: value.copy() for name, value in model.params.items()}
    for optimizer in (lc.Adam(other.params), lc.SGD(copies, lr=0.1),
                      lc.SGD({k: v for k, v in list(model.params.items())[1:]}, lr=0.1)):
        with pytest.raises(ValueError, match="does not update this model's parameters"):
            lc.fit(model, x, y, optimizer=optimizer, epochs=1, progress=False)


@pytest.mark.parametrize("poison", ["target", "input"])
def test_a_non_finite_loss_stops_training(poison):
    """The batch whose loss (or gradient) is NaN stops fit before its update: the error names
    the epoch and the batch, and every parameter keeps its value from before that batch."""
    x, y = regression_data(n=12)
    if poison == "target":
        y[9] = np.nan                          # batch 3 of 3 (batch_size 4, no shuffle)
    else:
        x[9, 3, 0] = np.inf
    model = regressor()
    optimizer = lc.SGD(model.params, lr=0.05)
    before = {}
    real_step = optimizer.step

    def step(grads):
        before.clear()
        before.update({k: v.copy() for k, v in model.params.items()})
        real_step(grads)
    optimizer.step = step
    with pytest.raises(FloatingPointError, match=r"at epoch 1, batch 3 of 3"):
        lc.fit(model, x, y, optimizer=optimizer, epochs=2, batch_size=4, shuffle=False,
               progress=False)
    # the parameters are those after batch 2's update, all finite
    assert before, "no update ran before the poisoned batch"
    for name, value in model.params.items():
        assert np.all(np.isfinite(value)), name


def test_a_non_finite_loss_restores_the_best_epoch():
    x, y = regression_data(n=12)
    model = regressor()
    calls, saved = [], []

    def loss(pred, target, mask):                # NaN from the third epoch's batch on
        calls.append(1)
        value, grad = lc.mse_loss(pred, target, mask)
        return (float("nan") if len(calls) >= 3 else value), grad
    state_dict = model.state_dict
    model.state_dict = lambda: saved.append(state_dict()) or saved[-1]  # the best states
    with pytest.raises(FloatingPointError, match=r"epoch 3, batch 1 of 1.*the best epoch's"):
        lc.fit(model, x, y, loss=loss, optimizer=lc.SGD(model.params, lr=0.1), epochs=5,
               batch_size=12, patience=3, progress=False)
    assert len(saved) == 2                       # epochs 1 and 2 each improved the loss
    for name, value in model.params.items():     # epoch 2's parameters are back
        np.testing.assert_array_equal(value, saved[-1][name], err_msg=name)


def test_fit_and_evaluate_take_nested_lists():
    """x and y are array_like: nested lists train exactly as the arrays they hold."""
    x, y = regression_data(n=8)
    from_arrays = lc.fit(regressor(), x, y, epochs=2, seed=0, progress=False)
    from_lists = lc.fit(regressor(), x.tolist(), y.tolist(), epochs=2, seed=0, progress=False)
    assert from_lists.history == from_arrays.history
    model = regressor()
    assert lc.evaluate(model, x.tolist(), y.tolist()) == lc.evaluate(model, x, y)


def test_plot_history_draws_the_curves_of_a_run(tmp_path):
    pytest.importorskip("matplotlib")
    from lstm_core.plotting import plot_history

    x, y = regression_data(n=32)
    model = regressor()
    history = lc.fit(model, x, y, epochs=4, batch_size=8, seed=0, progress=False,
                     validation_split=0.25, patience=3, metrics=["mae"])
    fig = plot_history(history, path=tmp_path / "loss.png", log_scale=True)
    assert (tmp_path / "loss.png").stat().st_size > 1000
    left, right = fig.axes
    lines = {line.get_label(): line for line in left.get_lines()}
    assert set(lines) == {"loss", "val_loss", f"best epoch ({history.best_epoch})"}
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(lines["val_loss"].get_ydata(), history["val_loss"])
    assert {line.get_label() for line in right.get_lines()} == {"mae", "val_mae"}
    assert len(plot_history({"loss": [1.0, 0.5]}).axes) == 1  # no metrics: one panel
    with pytest.raises(ValueError, match="non-empty 'loss'"):
        plot_history({"val_loss": [1.0]})
