"""Reduced precision: lstm_core's bfloat16 and int8 LSTMs against its float32 and the peers,
side by side in one process, with their errors against float64.

What is measured (float32 inputs; the shapes S1-S5 of bench_lstm.py and the streaming cell)
    fwd      inference over the whole sequence:
               core-f32    lc.pack_lstm(..., precision="float32").forward
               core-bf16   lc.pack_lstm(..., precision="bfloat16").forward
               core-int8   lc.pack_lstm(..., precision="int8").forward
               torch-f32   torch.nn.LSTM under no_grad
               torch-bf16  the same module under torch.autocast("cpu", torch.bfloat16)
               torch-int8  torch.ao.quantization.quantize_dynamic(module, qint8)
               ort-f32     onnxruntime running an ONNX LSTM node with the same weights
    fwd+bwd  a training step: core-f32 lc.lstm_forward + lstm_backward; core-bf16 the same
             with precision="bfloat16" (mixed precision); torch-f32 and torch-bf16 forward
             and backward (autocast) as bench_lstm.py times them.
    step     the cell (B=1, I=H=128): the packed LSTMs' .cell, torch.nn.LSTMCell, and its
             autocast and quantize_dynamic twins.
    Packing happens once, before timing (as a user holding a PackedLSTM does); torch and
    onnxruntime likewise build their modules and sessions once.  A peer that this CPU or
    build cannot run (oneDNN has no bfloat16 LSTM without AVX-512: torch raises) is left out
    with a note.

Errors: max |y - y_float64| of each column's fwd (step) output against the float64 reference
    (lstm_core.reference, the same weights), and for fwd+bwd the largest gradient error
    relative to the largest float64 gradient (dx, dh0, dc0 and the weights).

Roofline: the best GF/s of one sgemm through scipy (as bench_lstm.py), and the ceiling of a
    bfloat16 product (bf16_roofline): torch's bf16 @ bf16, or sgemm's rate on a CPU without
    bfloat16 instructions (which widens every bfloat16 product to float32), whichever is
    higher; measured in the same run for each thread count on (T*B, I+H, 4H) of S4.

How: bench_lstm.py's harness (warm-up, samples interleaved in a rotating order, medians of
    >= 5 samples, a settle pause between multi-threaded samples); every library's threads
    set to the same count (threadpoolctl for the BLAS, lc.set_num_threads,
    torch.set_num_threads, onnxruntime's intra_op_num_threads).  lstm_core's kernel level
    is whatever pack_lstm picks (LSTM_CORE_MAX_ISA caps it); the header records it.

Run:  python benchmarks/bench_precision.py [--quick] [--cases S1,cell] [--threads 1,2]
Results: benchmarks/results/precision-<date>-<commit>.json and the table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lstm as harness  # noqa: E402  (the shared timing harness)

import lstm_core as lc  # noqa: E402
from lstm_core import reference  # noqa: E402

torch = harness.torch
try:
    import onnx
    import onnxruntime
except ImportError:  # the onnxruntime column is skipped
    onnx = onnxruntime = None

CASES = tuple(c for c in harness.GRID if c.name in ("S1", "S2", "S3", "S4", "S5", "cell"))
COLUMNS = ("core-f32", "core-bf16", "core-int8", "torch-f32", "torch-bf16", "torch-int8",
           "ort-f32")


# ----------------------------------------------------------------------------- callables


def core_calls(inp, case):
    """{column: {mode: callable}} of lstm_core's three precisions."""
    x, w_ih, w_hh, bias, h0, c0, dy = (inp[k] for k in ("x", "w_ih", "w_hh", "bias", "h0",
                                                         "c0", "dy"))
    out = {}
    for precision in ("float32", "bfloat16", "int8"):
        packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
        column = {"float32": "core-f32", "bfloat16": "core-bf16", "int8": "core-int8"}[precision]
        if case.cell:
            out[column] = {"step": lambda p=packed: p.cell(x[0], h0, c0)}
            continue
        calls = {"fwd": lambda p=packed: p.forward(x, h0, c0)}
        if precision != "int8":
            mixed = None if precision == "float32" else precision

            def fwd_bwd(mixed=mixed):
                cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, precision=mixed)[3]
                return lc.lstm_backward(cache, dy)

            calls["fwd+bwd"] = fwd_bwd
        out[column] = calls
    return out


def torch_calls(inp, case):
    """{column: {mode: callable}} of torch float32 and its two reduced-precision peers."""
    if torch is None:
        return {}
    out = {"torch-f32": harness.torch_calls(inp, case)}
    peers = harness.peer_calls(inp, case, ["bf16", "int8"])
    for name, column in harness.PEERS.items():
        if column in peers:
            out[column] = peers[column]
    return out


def onnx_lstm(inp, threads):
    """An onnxruntime session of one ONNX LSTM node (gate order i, o, f, c; W, R and
    B = [Wb, Rb] per direction) holding the case's weights; inputs x, h0, c0."""
    from onnx import TensorProto, helper, numpy_helper

    H = inp["w_hh"].shape[1]
    order = np.concatenate([np.arange(0, H), np.arange(3 * H, 4 * H), np.arange(H, 2 * H),
                            np.arange(2 * H, 3 * H)])  # i, f, g, o -> i, o, f, c
    W = inp["w_ih"][order][None]
    R = inp["w_hh"][order][None]
    B = np.concatenate([inp["b_ih"][order], inp["b_hh"][order]])[None]
    inits = [numpy_helper.from_array(a.astype(np.float32), name)
             for a, name in ((W, "W"), (R, "R"), (B, "B"))]
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "h_n", "c_n"],
                            hidden_size=H)
    graph = helper.make_graph(
        [node], "lstm",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("x", "h0", "c0")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "h_n", "c_n")],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def ort_calls(inp, case, threads):
    if onnxruntime is None or case.cell:
        return {}
    session = onnx_lstm(inp, threads)
    feeds = {"x": inp["x"], "h0": inp["h0"][None], "c0": inp["c0"][None]}

    def fwd():
        y = session.run(["y"], feeds)[0]  # (T, 1, B, H)
        return (y[:, 0],)

    return {"ort-f32": {"fwd": fwd}}


# ----------------------------------------------------------------------------- errors


def _as_numpy(out):
    first = out[0]
    if torch is not None and isinstance(first, torch.Tensor):
        return first.detach().float().numpy()
    return np.asarray(first)


def forward_errors(calls, inp, case):
    """{column: max |y - y_float64|} of each column's fwd (step) output."""
    args = [inp[k].astype(np.float64) for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")]
    if case.cell:
        want = reference.lstm_cell(args[0][0], args[4], args[5], *args[1:4])[0]
    else:
        want = reference.lstm_forward(*args, training=False)[0]
    errors = {}
    for column, modes in calls.items():
        fn = modes.get("step" if case.cell else "fwd")
        if fn is not None:
            errors[column] = float(np.abs(_as_numpy(fn()) - want).max())
    return errors


def gradient_errors(inp):
    """{column: max |g - g_float64| / max |g_float64|} over dx, dh0, dc0, dw_ih, dw_hh, dbias
    of lstm_core's float32 and mixed-precision backward."""
    args = [inp[k].astype(np.float64) for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")]
    want = reference.lstm_backward(reference.lstm_forward(*args)[3], inp["dy"].astype(float))
    errors = {}
    for column, precision in (("core-f32", None), ("core-bf16", "bfloat16")):
        cache = lc.lstm_forward(*(inp[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")),
                                precision=precision)[3]
        got = lc.lstm_backward(cache, inp["dy"])
        errors[column] = max(float(np.abs(g - w).max() / np.abs(w).max())
                             for g, w in zip(got, want) if g is not None)
    return errors


# ----------------------------------------------------------------------------- roofline


def bf16_roofline(repeats, quick, shape, sgemm_gfs, settle_s):
    """The ceiling of a bfloat16 product in this run (GF/s): the faster of torch's
    bf16 @ bf16 on `shape` (M, K, N) and, on a CPU without bfloat16 instructions (no
    avx512_bf16 / amx_bf16 in /proc/cpuinfo), sgemm's rate, since every bfloat16 product is
    then computed by widening to float32 multiply-adds.  torch is timed on a 512^3 product
    first: where it emulates bfloat16 at a few GF/s the full shape would take seconds."""
    per_shape = {}
    if torch is not None:
        for mm, kk, nn in ((512, 512, 512), shape):
            a = torch.randn(mm, kk).to(torch.bfloat16)
            b = torch.randn(kk, nn).to(torch.bfloat16)
            timing = harness.time_interleaved({"gemm": lambda: a @ b}, repeats, quick,
                                              settle_s)["gemm"]
            timing["gflops"] = 2 * mm * kk * nn / timing["median_s"] / 1e9
            per_shape[f"torch {mm}x{kk}x{nn}"] = timing
            if timing["gflops"] < 50:
                break
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    candidates = [v["gflops"] for v in per_shape.values()]
    if not native:
        candidates.append(sgemm_gfs)
    return {"bf16": per_shape, "bf16_native": native, "bf16_gfs": max(candidates)}


# ----------------------------------------------------------------------------- the grid


def run_grid(cases, threads, args, repeats):
    s4 = next(c for c in harness.GRID if c.name == "S4")
    shapes = [(s4.T * s4.B, s4.I + s4.H, 4 * s4.H)]
    settle_s = harness.SETTLE_S if threads > 1 else 0.0
    lc.set_num_threads(threads)
    rows = []
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        before = harness.cpu_snapshot()
        sgemm = harness.gemm_roofline(repeats, args.quick, shapes[:1], settle_s)
        roofline = {"sgemm_gfs": sgemm["sgemm_gfs"],
                    **bf16_roofline(repeats, args.quick, shapes[0], sgemm["sgemm_gfs"],
                                    settle_s)}
        for case in cases:
            harness.progress(f"[{threads} thread(s)] {case.name}")
            inp = harness.make_inputs(case, args.seed)
            calls = {**core_calls(inp, case), **torch_calls(inp, case),
                     **ort_calls(inp, case, threads)}
            errors = forward_errors(calls, inp, case)
            grad_errors = {} if case.cell else gradient_errors(inp)
            for mode in case.modes:
                timed = {c: m[mode] for c, m in calls.items() if mode in m}
                timings = harness.time_interleaved(timed, repeats, args.quick, settle_s)
                flops = case.flops(mode)
                row = {"case": case.name, "T": case.T, "B": case.B, "I": case.I, "H": case.H,
                       "mode": mode, "flops": flops, "timings": timings,
                       "max_abs_err_y": errors if mode != "fwd+bwd" else {},
                       "max_rel_err_grad": grad_errors if mode == "fwd+bwd" else {}}
                for column, t in timings.items():
                    t["gflops"] = flops / t["median_s"] / 1e9
                if roofline["bf16_gfs"]:
                    for column in ("core-bf16", "torch-bf16"):
                        if column in timings:
                            row[f"pct_bf16_roof_{column}"] = (
                                100 * timings[column]["gflops"] / roofline["bf16_gfs"])
                rows.append(row)
        load = harness.foreign_load(before, harness.cpu_snapshot())
    return {"threads": threads, "roofline": roofline, "rows": rows, "foreign_load": load,
            "kernel": lc.pack_lstm(np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32),
                                   precision="bfloat16").kernel}


def format_grid(grid):
    roof = grid["roofline"]
    lines = [f"\n## {grid['threads']} thread(s); lstm_core reduced-precision kernels: "
             f"{grid['kernel']}"]
    load = grid["foreign_load"]
    if load is not None:
        lines[0] += f"; other processes used {load['other_cores']:.2f} cores on average"
    lines.append(f"# sgemm_gfs {roof['sgemm_gfs']:.1f}; bfloat16 products GF/s: "
                 + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in roof["bf16"].items())
                 + ("" if roof["bf16_native"] else ", no bfloat16 instructions: sgemm")
                 + f" -> bf16_gfs {roof['bf16_gfs']:.1f}")
    head = f"{'case':>5} {'mode':>8} " + " ".join(f"{c + ' ms':>13}" for c in COLUMNS)
    lines.append(head)
    for row in grid["rows"]:
        t = row["timings"]
        cells = [f"{t[c]['median_s'] * 1e3:13.3f}" if c in t else f"{'-':>13}"
                 for c in COLUMNS]
        lines.append(f"{row['case']:>5} {row['mode']:>8} " + " ".join(cells))
    lines.append("# speed-ups (time of the other / time of lstm_core's column; > 1: lstm_core "
                 "faster)")
    for row in grid["rows"]:
        t = row["timings"]

        def ratio(num, den):
            return (f"{t[num]['median_s'] / t[den]['median_s']:.2f}"
                    if num in t and den in t else "-")

        lines.append(
            f"#  {row['case']} {row['mode']}: f32/bf16 {ratio('core-f32', 'core-bf16')}, "
            f"f32/int8 {ratio('core-f32', 'core-int8')}, "
            f"torch-bf16/core-bf16 {ratio('torch-bf16', 'core-bf16')}, "
            f"torch-int8/core-int8 {ratio('torch-int8', 'core-int8')}, "
            f"torch-f32/core-f32 {ratio('torch-f32', 'core-f32')}, "
            f"ort-f32/core-f32 {ratio('ort-f32', 'core-f32')}"
            + (f"; core-bf16 at {row['pct_bf16_roof_core-bf16']:.0f}% of the bf16 roofline"
               if "pct_bf16_roof_core-bf16" in row else ""))
    lines.append("# errors against float64: max |dy| (fwd, step); max relative gradient error "
                 "(fwd+bwd)")
    for row in grid["rows"]:
        errs = row["max_abs_err_y"] or row["max_rel_err_grad"]
        lines.append(f"#  {row['case']} {row['mode']}: "
                     + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    noisy = [f"{row['case']} {row['mode']} {c} {t['iqr_over_median']:.2f}"
             for row in grid["rows"] for c, t in row["timings"].items()
             if t["iqr_over_median"] > harness.NOISY]
    if noisy:
        lines.append(f"# NOISY (interquartile range / median > {harness.NOISY:.0%}): "
                     + "; ".join(noisy))
    return "\n".join(lines)


def _span(values, spec):
    """"lo-hi" of the values in format spec (one value when they agree at that precision)."""
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo}-{hi}"


def newest(results_dir=Path(__file__).resolve().parent / "results"):
    """Path of the newest full run (not --quick, every case) in results_dir."""
    runs = []
    for path in sorted(Path(results_dir).glob("precision-*.json")):
        run = json.loads(path.read_text())
        if run.get("quick") or "--cases" in run["header"].get("argv", []):
            continue
        runs.append((dt.datetime.fromisoformat(run["header"]["date"]), path.name, path))
    if not runs:
        raise FileNotFoundError(f"no full precision run in {results_dir}")
    return max(runs)[2]


def readme_table(run):
    """The README's summary of one run (1 thread): per precision, the error of y against
    float64 and the speed against lstm_core's float32 over S1-S5, and the cell step."""
    grid = next(g for g in run["grids"] if g["threads"] == 1)
    rows = grid["rows"]
    seq = [r for r in rows if r["case"] != "cell"]
    cell = next(r for r in rows if r["case"] == "cell")
    lines = ["| precision | max abs error of y, S1-S5 | fwd speed, S1-S5 | "
             "fwd+bwd speed, S1-S5 | cell step (B=1, H=128) |", "|---|---|---|---|---|"]
    for precision, column in (("float32", "core-f32"), ("bfloat16", "core-bf16"),
                              ("int8", "core-int8")):
        def speed(mode):
            timed = [r["timings"] for r in seq if r["mode"] == mode and column in r["timings"]]
            if not timed:
                return "-"
            return _span([t["core-f32"]["median_s"] / t[column]["median_s"] for t in timed],
                         ".2f") + "x"

        errors = [r["max_abs_err_y"][column] for r in seq if r["mode"] == "fwd"]
        lines.append(f"| {precision} | {_span(errors, '.1e')} | {speed('fwd')} | "
                     f"{speed('fwd+bwd')} | "
                     f"{cell['timings'][column]['median_s'] * 1e6:.0f} us |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed samples per cell (>= 5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 samples")
    p.add_argument("--cases", help="comma-separated case names (default: S1-S5 and cell)")
    p.add_argument("--threads", help="comma-separated thread counts (default: 1,cpu_count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON results (default: benchmarks/results/"
                   "precision-<YYYY-MM-DD>-<commit>.json)")
    p.add_argument("--readme-table", nargs="?", const="newest", metavar="JSON",
                   help="print the README's table of a results file (default: the newest "
                        "full run committed) and exit")
    args = p.parse_args(argv)
    if not args.quick and args.repeats < 5:
        p.error("--repeats must be at least 5 (use --quick for a smoke run)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.readme_table:
        path = newest() if args.readme_table == "newest" else Path(args.readme_table)
        print(readme_table(json.loads(path.read_text())))
        return
    repeats = harness.QUICK_REPEATS if args.quick else args.repeats
    cases = list(CASES)
    if args.cases:
        by_name = {c.name: c for c in CASES}
        wanted = [n.strip() for n in args.cases.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            sys.exit(f"unknown case(s) {unknown}; known: {sorted(by_name)}")
        cases = [by_name[n] for n in wanted]
    info = harness.header_info()
    info["onnxruntime"] = onnxruntime.__version__ if onnxruntime is not None else None
    out = args.out or (Path(__file__).resolve().parent / "results"
                       / f"precision-{dt.date.today().isoformat()}-{info['git'] or 'nogit'}.json")
    print(harness.format_header(info), flush=True)
    start = time.perf_counter()
    grids = []
    for threads in harness.select_threads(args):
        grids.append(run_grid(cases, threads, args, repeats))
        print(format_grid(grids[-1]), flush=True)
    info["total_seconds"] = time.perf_counter() - start
    print(f"\n# total {info['total_seconds']:.1f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": info, "repeats": repeats, "quick": args.quick,
                               "grids": grids}, indent=1, default=str))
    print(f"# results: {out}")


if __name__ == "__main__":
    main()
