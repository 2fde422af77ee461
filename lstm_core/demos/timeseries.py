"""Forecasting the yearly sunspot numbers one year ahead.

    results = run()                 # what `python -m lstm_core demo` prints

The series (1700-2008, lstm_core/data/sunspots.csv) is split by time: the first 70 % of the
years for training, the next 15 % for validation (early stopping, choosing the AR order),
the last 15 % for testing.  Every model sees the `window` previous years and predicts the
next one.  The scaler is fitted on the training years only, so no statistic of the future
leaks into training.  Baselines: persistence (next year = this year) and a linear
autoregressive model AR(p) fitted by least squares.  Errors are in sunspot numbers.
"""

import csv
import io
import time
from importlib import resources

import numpy as np

import lstm_core as lc
from lstm_core.demos import markdown_table


def load_sunspots():
    """(years (309,) int, sunspot numbers (309,) float64), 1700-2008, from the package data."""
    text = resources.files("lstm_core").joinpath("data/sunspots.csv").read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    years = np.array([int(r["year"]) for r in rows])
    values = np.array([float(r["sunspots"]) for r in rows])
    return years, values


def make_windows(series, window):
    """Every (window previous values, next value) pair of a 1-D series.

    Returns x (N, window) and targets (N,) with N = len(series) - window; row k predicts
    series[k + window] from series[k : k + window].
    """
    series = np.asarray(series, dtype=np.float64)
    if len(series) <= window:
        raise ValueError(f"the series has {len(series)} values, need more than window={window}")
    steps = np.arange(window)[None, :] + np.arange(len(series) - window)[:, None]
    return series[steps], series[window:]


def split_by_time(n, fractions=(0.70, 0.15)):
    """Slices (train, validation, test) of n consecutive time indices, in time order."""
    train_end = int(round(n * fractions[0]))
    val_end = train_end + int(round(n * fractions[1]))
    return slice(0, train_end), slice(train_end, val_end), slice(val_end, n)


class Scaler:
    """Standardisation with the mean and standard deviation of the training part only."""

    def __init__(self, values):
        self.mean, self.std = float(np.mean(values)), float(np.std(values))

    def transform(self, values):
        return (np.asarray(values) - self.mean) / self.std

    def inverse(self, values):
        return np.asarray(values) * self.std + self.mean


def rmse(pred, actual):
    return float(np.sqrt(np.mean((np.asarray(pred) - actual) ** 2)))


def mae(pred, actual):
    return float(np.mean(np.abs(np.asarray(pred) - actual)))


def fit_autoregressive(x, targets, order):
    """Least-squares AR(order) on the last `order` columns of the windows x (N, window):
    returns coefficients (order + 1,), the last one the intercept."""
    design = np.column_stack([x[:, -order:], np.ones(len(x))])
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return coefficients


def predict_autoregressive(coefficients, x):
    order = len(coefficients) - 1
    return x[:, -order:] @ coefficients[:-1] + coefficients[-1]


def best_autoregressive(x_train, y_train, x_val, y_val, max_order):
    """The AR order in 1..max_order with the lowest validation RMSE, and its coefficients."""
    scores = {p: rmse(predict_autoregressive(fit_autoregressive(x_train, y_train, p), x_val),
                      y_val) for p in range(1, max_order + 1)}
    order = min(scores, key=scores.get)
    return order, fit_autoregressive(x_train, y_train, order)


def train_lstm(x_train, y_train, x_val, y_val, *, hidden_size, epochs, seed, lr=0.01,
               batch_size=16, patience=30):
    """An LSTM(1 -> hidden) + Linear(hidden -> 1) on scaled windows; returns (model, history)."""
    model = lc.SequenceModel(
        lc.LSTM(1, hidden_size, batch_first=True, seed=seed, unit_forget_bias=True),
        lc.Linear(hidden_size, 1, seed=seed + 1))
    as_input = lambda a: a[:, :, None].astype(np.float32)      # (N, window) -> (N, window, 1)
    as_target = lambda a: a[:, None].astype(np.float32)        # (N,) -> (N, 1)
    steps_per_epoch = -(-len(x_train) // batch_size)
    optimizer = lc.Adam(model.params, lr=lr,
                        schedule=lc.cosine_schedule(epochs * steps_per_epoch, final_factor=0.05))
    history = lc.fit(model, as_input(x_train), as_target(y_train), loss="mse",
                     optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                     validation_data=(as_input(x_val), as_target(y_val)), patience=patience,
                     seed=seed, clip_norm=1.0, progress=False)
    return model, history


def run(*, window=12, hidden_size=24, epochs=200, seed=0, plot_path=None, verbose=True,
        series=None):
    """Train, compare, report; returns a dict of the measured results.

    series: (years, values) to use instead of the shipped sunspots (the tests pass a slice).
    """
    started = time.perf_counter()
    years, values = load_sunspots() if series is None else series
    x_all, y_all = make_windows(values, window)
    target_years = years[window:]
    train, val, test = split_by_time(len(y_all))
    scaler = Scaler(values[: train.stop + window])   # the values the training windows touch

    sx, sy = scaler.transform(x_all), scaler.transform(y_all)
    model, history = train_lstm(sx[train], sy[train], sx[val], sy[val],
                                hidden_size=hidden_size, epochs=epochs, seed=seed)
    lstm_pred = scaler.inverse(lc.predict(model, sx[test][:, :, None].astype(np.float32))[:, 0])

    order, coefficients = best_autoregressive(x_all[train], y_all[train], x_all[val], y_all[val],
                                              max_order=window)
    forecasts = {
        "LSTM": lstm_pred,
        f"AR({order})": predict_autoregressive(coefficients, x_all[test]),
        "persistence": x_all[test][:, -1],
    }
    actual = y_all[test]
    results = {
        "data": f"yearly sunspots {years[0]}-{years[-1]} ({len(values)} values)",
        "split": {name: f"{target_years[s][0]}-{target_years[s][-1]} ({len(target_years[s])})"
                  for name, s in (("train", train), ("validation", val), ("test", test))},
        "window": window, "hidden_size": hidden_size, "epochs_run": len(history["loss"]),
        "best_epoch": history.best_epoch,
        "test": {label: {"rmse": rmse(p, actual), "mae": mae(p, actual)}
                 for label, p in forecasts.items()},
    }
    if plot_path is not None:
        from lstm_core.plotting import plot_forecast
        plot_forecast(target_years[test], actual, forecasts, path=plot_path,
                      history=(target_years[val], y_all[val]), ylabel="sunspot number",
                      title="Sunspots, one-year-ahead forecasts on the test years")
        results["plot"] = str(plot_path)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if verbose:
        print(format_results(results))
    return results


def format_results(results):
    lines = [f"Time-series demo: {results['data']}, window {results['window']} years",
             "split by time: " + ", ".join(f"{k} {v}" for k, v in results["split"].items()),
             f"LSTM hidden {results['hidden_size']}: {results['epochs_run']} epochs "
             f"(best {results['best_epoch']})", ""]
    lines += markdown_table(["model", "test RMSE", "test MAE"],
                            [(label, f"{m['rmse']:.1f}", f"{m['mae']:.1f}")
                             for label, m in results["test"].items()])
    if "plot" in results:
        lines.append(f"\nforecast plot: {results['plot']}")
    lines.append(f"({results['seconds']} s)")
    return "\n".join(lines)
