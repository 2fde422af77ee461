"""The time-series demo's pieces, and its whole pipeline on a slice of the series."""

import numpy as np
import pytest

from lstm_core.demos import timeseries as ts


def test_shipped_sunspots_load():
    years, values = ts.load_sunspots()
    assert (years[0], years[-1], len(values)) == (1700, 2008, 309)
    assert np.all(np.diff(years) == 1) and values.min() >= 0


def test_windows_and_time_split():
    x, y = ts.make_windows(np.arange(10.0), 3)
    assert x.shape == (7, 3) and np.array_equal(x[0], [0, 1, 2]) and y[0] == 3
    assert np.array_equal(x[:, -1] + 1, y)
    train, val, test = ts.split_by_time(100)
    assert (train.stop, val.start, val.stop, test.stop) == (70, 70, 85, 100)
    with pytest.raises(ValueError, match="window"):
        ts.make_windows(np.arange(3.0), 3)


def test_autoregression_recovers_a_linear_series():
    rng = np.random.default_rng(0)
    series = np.zeros(300)
    for t in range(2, 300):
        series[t] = 0.6 * series[t - 1] - 0.3 * series[t - 2] + 1.0 + 0.01 * rng.standard_normal()
    x, y = ts.make_windows(series, 5)
    coefficients = ts.fit_autoregressive(x, y, 2)
    np.testing.assert_allclose(coefficients, [-0.3, 0.6, 1.0], atol=0.05)


def test_pipeline_on_a_slice(tmp_path):
    years, values = ts.load_sunspots()
    plot = tmp_path / "forecast.png"
    has_matplotlib = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        has_matplotlib = False
    results = ts.run(series=(years[:90], values[:90]), window=6, hidden_size=4, epochs=2,
                     plot_path=plot if has_matplotlib else None, verbose=False)
    assert set(results["test"]) == {"LSTM", "AR(6)", "persistence"} or "LSTM" in results["test"]
    for metrics in results["test"].values():
        assert np.isfinite(metrics["rmse"]) and 0 <= metrics["mae"] <= metrics["rmse"]
    assert results["epochs_run"] <= 2
    if has_matplotlib:
        assert plot.stat().st_size > 1000
    assert "| LSTM |" in ts.format_results(results)
