"""Chart and table of a committed benchmark run (benchmarks/bench_lstm.py's JSON).

    python benchmarks/chart.py --out-dir DIR         # the newest run
    python benchmarks/chart.py --results FILE --out-dir DIR
    python benchmarks/chart.py --readme-table        # the README's speed table, markdown

The newest run is the full run (every case, not --quick) whose header has the latest date; the docs build
(docs/conf.py) calls `write_all` so the published chart always shows it.  The chart draws the
median time of one call per case and mode, for lstm_core and every other implementation the run
timed (the numpy reference, torch float32, ...), one panel per thread count, on a log scale.
The table lists the same medians with the speed ratios and lstm_core's share of the same run's
sgemm; a second table lists every committed run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# Columns in this order when present; any other implementation a run timed follows them.
KNOWN_IMPLS = ("lstm_core", "torch", "reference")
LABELS = {"lstm_core": "lstm_core", "torch": "torch", "reference": "numpy reference"}
COLORS = {"lstm_core": "#1f6fb4", "torch": "#e4572e", "reference": "#9a9a9a"}


def load(path):
    """One run: the JSON bench_lstm.py wrote, with its file name added as `file`."""
    run = json.loads(Path(path).read_text())
    run["file"] = Path(path).name
    return run


def newest(results_dir=RESULTS):
    """Path of the full run (every case, not --quick) with the latest header date in
    results_dir."""
    runs = []
    for path in sorted(Path(results_dir).glob("bench-*.json")):
        run = json.loads(path.read_text())
        if run.get("quick") or "--cases" in run["header"].get("argv", []):
            continue  # a smoke run, or a subset of the cases
        runs.append((dt.datetime.fromisoformat(run["header"]["date"]), path.name, path))
    if not runs:
        raise FileNotFoundError(f"no full benchmark run in {results_dir}")
    return max(runs)[2]


def implementations(run):
    """Implementation names the run timed, lstm_core first."""
    seen = []
    for grid in run["grids"]:
        for row in grid["rows"]:
            for name in row["timings"]:
                if name not in seen:
                    seen.append(name)
    known = [name for name in KNOWN_IMPLS if name in seen]
    return known + [name for name in seen if name not in KNOWN_IMPLS]


def _label(row):
    return f"{row['case']}\n{row['mode']}"


def draw_chart(run, path):
    """Grouped bars, median ms per call, one panel per thread count; written to path (SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Byte-stable SVG for the same input (no date, fixed ids).
    matplotlib.rcParams["svg.hashsalt"] = "lstm_core"
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, selectable
    impls = implementations(run)
    grids = run["grids"]
    fig, axes = plt.subplots(len(grids), 1, figsize=(11, 3.6 * len(grids)), squeeze=False)
    width = 0.8 / len(impls)
    for ax, grid in zip(axes[:, 0], grids):
        rows = grid["rows"]
        for k, impl in enumerate(impls):
            xs, ms = [], []
            for i, row in enumerate(rows):
                timing = row["timings"].get(impl)
                if timing is not None:
                    xs.append(i + (k - (len(impls) - 1) / 2) * width)
                    ms.append(timing["median_s"] * 1e3)
            ax.bar(xs, ms, width, label=LABELS.get(impl, impl), color=COLORS.get(impl))
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), [_label(row) for row in rows], fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("ms per call (median)")
        ax.set_title(f"{grid['threads']} thread(s)", fontsize=10, loc="left")
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[0, 0].legend(ncols=len(impls), fontsize=8, loc="upper left")
    header = run["header"]
    fig.suptitle(f"{run['file']}: commit {header['git']}, {header['cpu']}, "
                 f"{header['cores']} cores (lower is faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def _ms(row, impl):
    timing = row["timings"].get(impl)
    return "--" if timing is None else f"{timing['median_s'] * 1e3:.3f}"


def _ratio(row, impl):
    timing = row["timings"].get(impl)
    if timing is None:
        return "--"
    return f"{timing['median_s'] / row['timings']['lstm_core']['median_s']:.2f}"


def table_rst(run):
    """reStructuredText list-table of every row of the run, one table per thread count."""
    impls = implementations(run)
    peers = [impl for impl in impls if impl != "lstm_core"]
    header = ["case", "T, B, I, H", "dtype", "mode", "lstm_core ms"]
    header += [f"{LABELS.get(p, p)} ms" for p in peers]
    header += [f"{LABELS.get(p, p)} / lstm_core" for p in peers]
    header += ["GF/s", "% sgemm"]
    out = []
    for grid in run["grids"]:
        roof = grid["roofline"]
        out += [f".. list-table:: {grid['threads']} thread(s); sgemm {roof['sgemm_gfs']:.0f} GF/s "
                f"in the same run",
                "   :header-rows: 1",
                "   :class: bench-table",
                ""]
        out.append("   * - " + "\n     - ".join(header))
        for row in grid["rows"]:
            cells = [row["case"], f"{row['T']}, {row['B']}, {row['I']}, {row['H']}", row["dtype"],
                     row["mode"], _ms(row, "lstm_core")]
            cells += [_ms(row, p) for p in peers]
            cells += [_ratio(row, p) for p in peers]
            cells += [f"{row['lstm_core_gflops']:.1f}", f"{row['pct_sgemm']:.1f}"]
            out.append("   * - " + "\n     - ".join(cells))
        out.append("")
    return "\n".join(out)


def summary_rst(run):
    """One paragraph naming the run: file, date, commit, machine, library versions."""
    h = run["header"]
    return (f"Run ``{run['file']}``: {h['date']}, commit ``{h['git']}``, {h['cpu']} "
            f"({h['cores']} cores), Python {h['python']}, numpy {h['numpy']}, "
            f"scipy {h['scipy']}, torch {h.get('torch') or 'not installed'}; "
            f"median of {run['repeats']} samples per cell.\n")


def runs_rst(results_dir=RESULTS):
    """list-table of every committed run, newest first: file, date, commit, machine, sgemm."""
    runs = []
    for path in Path(results_dir).glob("bench-*.json"):
        run = load(path)
        runs.append((dt.datetime.fromisoformat(run["header"]["date"]), run))
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - file\n     - date (UTC)\n     - commit\n     - threads\n"
             "     - sgemm GF/s, 1 thread\n     - torch"]
    for date, run in sorted(runs, key=lambda item: item[0], reverse=True):
        h, grids = run["header"], run["grids"]
        one = [g for g in grids if g["threads"] == 1]
        sgemm = f"{one[0]['roofline']['sgemm_gfs']:.0f}" if one else "--"
        threads = ", ".join(str(g["threads"]) for g in grids)
        cells = [f"``{run['file']}``", date.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                 f"``{h['git']}``", threads, sgemm, h.get("torch") or "--"]
        lines.append("   * - " + "\n     - ".join(cells))
    return "\n".join(lines) + "\n"


def readme_table(run):
    """The README's summary: torch's time over lstm_core's per case, mode and thread count."""
    grids = run["grids"]
    modes = []
    for grid in grids:
        for row in grid["rows"]:
            if row["mode"] not in modes:
                modes.append(row["mode"])
    columns = [(g["threads"], m) for g in grids for m in ("fwd", "fwd+bwd") if m in modes]
    cases = {}
    for grid in grids:
        for row in grid["rows"]:
            shape = f"{row['T']}, {row['B']}, {row['I']}, {row['H']}"
            cell = cases.setdefault(row["case"], {"shape": shape})
            mode = "fwd" if row["mode"] == "step" else row["mode"]
            cell[(grid["threads"], mode)] = _ratio(row, "torch")
    names = [f"{m}, {t} thread{'s' if t > 1 else ''}" for t, m in columns]
    lines = ["| case | T, B, I, H | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(columns)]
    for case, cell in cases.items():
        lines.append(f"| {case} | {cell['shape']} | "
                     + " | ".join(cell.get(c, "") for c in columns) + " |")
    return "\n".join(lines)


def write_all(out_dir, results=None):
    """Write bench_chart.svg, bench_table.rst, bench_summary.rst and bench_runs.rst to
    out_dir; return the run drawn."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(results) if results else newest()
    run = load(path)
    draw_chart(run, out_dir / "bench_chart.svg")
    (out_dir / "bench_table.rst").write_text(table_rst(run))
    (out_dir / "bench_summary.rst").write_text(summary_rst(run))
    (out_dir / "bench_runs.rst").write_text(runs_rst(path.parent))
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, help="a bench-*.json (default: the newest full run)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where the files go")
    p.add_argument("--readme-table", action="store_true",
                   help="print the README's speed table (markdown) instead of writing files")
    args = p.parse_args(argv)
    if args.readme_table:
        print(readme_table(load(args.results or newest())))
        return
    run = write_all(args.out_dir, args.results)
    print(f"{run['file']} -> {args.out_dir}/bench_chart.svg, bench_table.rst, bench_summary.rst, "
          "bench_runs.rst")


if __name__ == "__main__":
    main()
