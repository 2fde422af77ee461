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
import os
import time
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import lstm_core as lc
from lstm_core.demos import markdown_table
from lstm_core.train import History

F64Array = NDArray[np.float64]


def load_sunspots() -> tuple[NDArray[np.int_], F64Array]:
    """(years (309,) int, sunspot numbers (309,) float64), 1700-2008, from the package data."""
    text = resources.files("lstm_core").joinpath("data/sunspots.csv").read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    years = np.array([int(r["year"]) for r in rows])
    values = np.array([float(r["sunspots"]) for r in rows])
    return years, values


def make_windows(series: ArrayLike, window: int) -> tuple[F64Array, F64Array]:
    """Every (window previous values, next value) pair of a 1-D series.

    Returns x (N, window) and targets (N,) with N = len(series) - window; row k predicts
    series[k + window] from series[k : k + window].
    """
    values = np.asarray(series, dtype=np.float64)
    if len(values) <= window:
        raise ValueError(f"the series has {len(values)} values, need more than window={window}")
    steps = np.arange(window)[None, :] + np.arange(len(values) - window)[:, None]
    return values[steps], values[window:]


def split_by_time(n: int, fractions: tuple[float, float] = (0.70, 0.15)
                  ) -> tuple[slice, slice, slice]:
    """Slices (train, validation, test) of n consecutive time indices, in time order."""
    train_end = int(round(n * fractions[0]))
    val_end = train_end + int(round(n * fractions[1]))
    return slice(0, train_end), slice(train_end, val_end), slice(val_end, n)


class Scaler:
    """Standardisation with the mean and standard deviation of the training part only."""

    def __init__(self, values: NDArray[np.floating[Any]]) -> None:
        self.mean, self.std = float(np.mean(values)), float(np.std(values))

    def transform(self, values: ArrayLike) -> F64Array:
        result: F64Array = (np.asarray(values) - self.mean) / self.std
        return result

    def inverse(self, values: ArrayLike) -> F64Array:
        result: F64Array = np.asarray(values) * self.std + self.mean
        return result


def rmse(pred: ArrayLike, actual: ArrayLike) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - actual) ** 2)))


def mae(pred: ArrayLike, actual: ArrayLike) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - actual)))


def fit_autoregressive(x: F64Array, targets: F64Array, order: int) -> NDArray[np.floating[Any]]:
    """Least-squares AR(order) on the last `order` columns of the windows x (N, window):
    returns coefficients (order + 1,), the last one the intercept."""
    design = np.column_stack([x[:, -order:], np.ones(len(x))])
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return coefficients


def predict_autoregressive(coefficients: NDArray[np.floating[Any]], x: F64Array) -> F64Array:
    order = len(coefficients) - 1
    result: F64Array = x[:, -order:] @ coefficients[:-1] + coefficients[-1]
    return result


def best_autoregressive(x_train: F64Array, y_train: F64Array, x_val: F64Array,
                        y_val: F64Array, max_order: int
                        ) -> tuple[int, NDArray[np.floating[Any]]]:
    """The AR order in 1..max_order with the lowest validation RMSE, and its coefficients."""
    scores = {p: rmse(predict_autoregressive(fit_autoregressive(x_train, y_train, p), x_val),
                      y_val) for p in range(1, max_order + 1)}
    order = min(scores, key=scores.__getitem__)
    return order, fit_autoregressive(x_train, y_train, order)


def train_lstm(x_train: F64Array, y_train: F64Array, x_val: F64Array, y_val: F64Array, *,
               hidden_size: int, epochs: int, seed: int, lr: float = 0.01,
               batch_size: int = 16, patience: int = 30) -> tuple[lc.SequenceModel, History]:
    """An LSTM(1 -> hidden) + Linear(hidden -> 1) on scaled windows; returns (model, history)."""
    model = lc.SequenceModel(
        lc.LSTM(1, hidden_size, batch_first=True, seed=seed, unit_forget_bias=True),
        lc.Linear(hidden_size, 1, seed=seed + 1))
    def as_input(a: F64Array) -> NDArray[np.float32]:
        return a[:, :, None].astype(np.float32)                # (N, window) -> (N, window, 1)

    def as_target(a: F64Array) -> NDArray[np.float32]:
        return a[:, None].astype(np.float32)                   # (N,) -> (N, 1)

    steps_per_epoch = -(-len(x_train) // batch_size)
    optimizer = lc.Adam(model.params, lr=lr,
                        schedule=lc.cosine_schedule(epochs * steps_per_epoch, final_factor=0.05))
    history = lc.fit(model, as_input(x_train), as_target(y_train), loss="mse",
                     optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                     validation_data=(as_input(x_val), as_target(y_val)), patience=patience,
                     seed=seed, clip_norm=1.0, progress=False)
    return model, history


def run(*, window: int = 12, hidden_size: int = 24, epochs: int = 200, seed: int = 0,
        plot_path: str | os.PathLike[str] | None = None, verbose: bool = True,
        series: tuple[NDArray[Any], NDArray[Any]] | None = None) -> dict[str, Any]:
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
    results: dict[str, Any] = {
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


def format_results(results: dict[str, Any]) -> str:
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
