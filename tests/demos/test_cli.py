"""python -m lstm_core: argument parsing and the bench fallback."""

import os

import pytest

from lstm_core import __main__ as cli


def test_demo_defaults_to_the_time_series():
    args = cli.parse_args(["demo"])
    assert (args.command, args.name, args.seed, args.no_plot) == ("demo", "timeseries", 0, False)
    args = cli.parse_args(["demo", "sentiment", "--epochs", "3"])
    assert (args.name, args.epochs) == ("sentiment", 3)


def test_experiments_and_bench_arguments():
    args = cli.parse_args(["experiments", "--quick", "--cells", "lstm,gru"])
    assert args.quick and args.cells == "lstm,gru"
    assert args.out == os.path.join("lstm_core-output", "long_lag")
    args = cli.parse_args(["bench", "--quick", "--cases", "S1"])
    assert args.bench_args == ["--quick", "--cases", "S1"]


def test_a_command_is_required_and_names_are_checked():
    with pytest.raises(SystemExit):
        cli.parse_args([])
    with pytest.raises(SystemExit):
        cli.parse_args(["demo", "imagenet"])
    with pytest.raises(SystemExit):
        cli.parse_args(["demo", "--cases", "S1"])


def test_bench_without_a_checkout_says_where_it_lives(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "find_benchmark", lambda: None)
    assert cli.main(["bench"]) == 2
    assert "checkout" in capsys.readouterr().err


def test_demo_command_runs_end_to_end(tmp_path, monkeypatch, capsys):
    from lstm_core.demos import timeseries
    years, values = timeseries.load_sunspots()
    real_run = timeseries.run
    # The full demo takes seconds; here the same command path runs on a slice for 1 epoch.
    monkeypatch.setattr(timeseries, "run", lambda **kw: real_run(
        series=(years[:80], values[:80]), window=5, hidden_size=3, **kw))
    assert cli.main(["demo", "--epochs", "1", "--no-plot"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index("| model | test RMSE | test MAE |"):]
    # the demo's three models, AR's order being the one this slice's validation years choose
    assert [row.split(" | ")[0] for row in table[2:5]] == ["| LSTM", "| AR(4)", "| persistence"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--version"])
    assert exit_info.value.code == 0
    import lstm_core
    assert capsys.readouterr().out.strip() == f"lstm_core {lstm_core.__version__}"


def test_bench_help_is_the_benchmarks_own():
    """`bench --help` is passed on to bench_lstm.py, which lists its options."""
    assert cli.parse_args(["bench", "--help"]).bench_args == ["--help"]


def test_demo_writes_its_figure_under_out(tmp_path, monkeypatch, capsys):
    """Files go to --out (created if missing), and the command says where."""
    pytest.importorskip("matplotlib")
    from lstm_core.demos import timeseries
    years, values = timeseries.load_sunspots()
    real_run = timeseries.run
    monkeypatch.setattr(timeseries, "run", lambda **kw: real_run(
        series=(years[:80], values[:80]), window=5, hidden_size=3, **kw))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "run1"
    assert cli.main(["demo", "--epochs", "1", "--out", str(out)]) == 0
    figure = out / "sunspots_forecast.png"
    assert figure.is_file() and figure.stat().st_size > 0
    assert f"figure written to {figure}" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [tmp_path / "results"]  # nothing else in the folder
