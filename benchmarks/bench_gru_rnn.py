"""Benchmark lstm_core's GRU and vanilla RNN against PyTorch, side by side in one process.

What is measured
    For each cell (gru, rnn), case (T, B, I, H) and mode, the wall time of one whole call:
      fwd      lstm_core.gru_forward / rnn_forward(training=False) vs torch.nn.GRU / RNN
               (nonlinearity tanh) forward under torch.no_grad().
      fwd+bwd  the forward with training=True, then gru_backward / rnn_backward(cache, dy),
               vs torch's forward with requires_grad on x, h0 and the parameters, then
               y.backward(dy), the grads reset to None before each run.
      step     (the "cell" case) one gru_cell / rnn_cell step vs torch.nn.GRUCell / RNNCell
               under torch.no_grad().
    The cases are the LSTM grid's sequence shapes (bench_lstm.py, S1-S5) and its one-step
    cell (B=1, I=H=128), in float32.
    Every implementation gets the same arrays (seeded numpy default_rng, weights and both
    biases U(-1/sqrt(H), 1/sqrt(H)), non-zero h0); the RNN's summed bias is torch's
    b_ih + b_hh.  Before a case is timed, lstm_core's y and gradients are checked against
    torch's (bench_lstm.py's bounds); a mismatch aborts the run.

How
    bench_lstm.py's interleaved sampling (medians of >= 5 samples, rotated order, a settle
    pause between samples with more than one thread) and its thread settings: for each
    thread count, threadpoolctl's limits for the BLAS, lstm_core.set_num_threads and
    torch.set_num_threads, the same count for every column.

    FLOPs: forward = 2*T*B*(I+H)*G with G = 3H (GRU) or H (RNN); forward+backward = 3 x
    forward.

Run:  python benchmarks/bench_gru_rnn.py [--cells gru,rnn] [--cases S1,S3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import lstm_core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lstm as bench  # noqa: E402  (the timing machinery shared with the LSTM's)

try:
    import torch
except ImportError:
    sys.exit("bench_gru_rnn.py compares with torch: pip install torch")

GATES = {"gru": 3, "rnn": 1}
CASES = [c for c in bench.GRID if not c.stacked and c.dtype == np.float32]


def make_inputs(cell, case, seed):
    rng = np.random.default_rng(seed)
    T, B, I, H, G = case.T, case.B, case.I, case.H, GATES[cell] * case.H
    k = 1.0 / math.sqrt(H)

    def uniform(shape, bound):
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    return {"x": rng.standard_normal((T, B, I)).astype(np.float32),
            "w_ih": uniform((G, I), k), "w_hh": uniform((G, H), k),
            "b_ih": uniform((G,), k), "b_hh": uniform((G,), k),
            "h0": uniform((B, H), 0.5),
            "dy": rng.standard_normal((T, B, H)).astype(np.float32)}


def core_calls(cell, inp):
    """{mode: callable} for lstm_core's functional API of the cell."""
    x, w_ih, w_hh, h0, dy = (inp[k] for k in ("x", "w_ih", "w_hh", "h0", "dy"))
    if cell == "gru":
        forward, backward = lstm_core.gru_forward, lstm_core.gru_backward
        args = (x, w_ih, w_hh, inp["b_ih"], inp["b_hh"], h0)
    else:
        forward, backward = lstm_core.rnn_forward, lstm_core.rnn_backward
        args = (x, w_ih, w_hh, inp["b_ih"] + inp["b_hh"], h0)

    def fwd_bwd():
        y, _, cache = forward(*args, training=True)
        return y, backward(cache, dy)

    step = getattr(lstm_core, f"{cell}_cell")
    step_args = (x[0], h0, *args[1:-1])
    return {"fwd": lambda: forward(*args, training=False), "fwd+bwd": fwd_bwd,
            "step": lambda: step(*step_args)}


def torch_calls(cell, inp):
    """{mode: callable} for torch.nn.GRU / RNN holding the same weights."""
    T, B, I = inp["x"].shape
    H = inp["h0"].shape[1]
    module = (torch.nn.GRU if cell == "gru" else torch.nn.RNN)(I, H)
    with torch.no_grad():
        for name, key in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"),
                          ("bias_ih_l0", "b_ih"), ("bias_hh_l0", "b_hh")):
            getattr(module, name).copy_(torch.from_numpy(inp[key]))
    x, h0 = torch.from_numpy(inp["x"].copy()), torch.from_numpy(inp["h0"].copy())[None]
    xg, h0g = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    dy = torch.from_numpy(inp["dy"])
    leaves = (xg, h0g, *module.parameters())

    def fwd():
        with torch.no_grad():
            return module(x, h0)

    step_module = (torch.nn.GRUCell if cell == "gru" else torch.nn.RNNCell)(I, H)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(step_module, name).copy_(getattr(module, name + "_l0"))

    def step():
        with torch.no_grad():
            return step_module(x[0], h0[0])

    def fwd_bwd():
        for leaf in leaves:
            leaf.grad = None
        y, _ = module(xg, h0g)
        y.backward(dy)
        return y, leaves

    return {"fwd": fwd, "fwd+bwd": fwd_bwd, "step": step}


def check(cell, inp, core, peer):
    """Max errors of lstm_core against torch; raises when beyond bench_lstm's bounds."""
    y, grads = core["fwd+bwd"]()
    y_t, (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) = peer["fwd+bwd"]()
    errors = {"y": bench._check("y", y, y_t.detach().numpy(), 1e-3),
              "dx": bench._check("dx", grads.dx, dx.grad.numpy(), 1e-3, relative=True),
              "dh0": bench._check("dh0", grads.dh0, dh0.grad.numpy()[0], 1e-3, relative=True),
              "dw_ih": bench._check("dw_ih", grads.dw_ih, dw_ih.grad.numpy(), 1e-3,
                                    relative=True),
              "dw_hh": bench._check("dw_hh", grads.dw_hh, dw_hh.grad.numpy(), 1e-3,
                                    relative=True)}
    errors["step"] = bench._check("step", core["step"](), peer["step"]().numpy(), 1e-3)
    if cell == "gru":
        errors["db_ih"] = bench._check("db_ih", grads.db_ih, db_ih.grad.numpy(), 1e-3,
                                       relative=True)
    else:
        errors["dbias"] = bench._check("dbias", grads.dbias, db_ih.grad.numpy(), 1e-3,
                                       relative=True)
    return errors


def run(cells, cases, threads, repeats, seed):
    settle_s = bench.SETTLE_S if threads > 1 else 0.0
    lstm_core.set_num_threads(threads)
    rows = []
    with threadpool_limits(limits=threads):
        torch.set_num_threads(threads)
        before = bench.cpu_snapshot()
        for cell in cells:
            for case in cases:
                bench.progress(f"[{threads} thread(s)] {cell} {case.name} ...")
                inp = make_inputs(cell, case, seed)
                core, peer = core_calls(cell, inp), torch_calls(cell, inp)
                errors = check(cell, inp, core, peer)
                for mode in case.modes:
                    timings = bench.time_interleaved(
                        {"lstm_core": core[mode], "torch": peer[mode]}, repeats, False,
                        settle_s)
                    forward = 2 * case.T * case.B * (case.I + case.H) * GATES[cell] * case.H
                    flops = 3 * forward if mode == "fwd+bwd" else forward  # step: T = 1
                    core_s, torch_s = (timings[k]["median_s"] for k in ("lstm_core", "torch"))
                    rows.append({"cell": cell, "case": case.name, "T": case.T, "B": case.B,
                                 "I": case.I, "H": case.H, "mode": mode, "flops": flops,
                                 "timings": timings, "lstm_core_gflops": flops / core_s / 1e9,
                                 "ratio_torch_over_lstm_core": torch_s / core_s,
                                 "check_max_err": errors})
        load = bench.foreign_load(before, bench.cpu_snapshot())
    return {"threads": threads, "settle_s": settle_s, "rows": rows, "foreign_load": load}


def format_grid(grid):
    lines = [f"\n## {grid['threads']} thread(s)"]
    load = grid["foreign_load"]
    if load is not None:
        lines[0] += f"; other processes used {load['other_cores']:.2f} cores on average"
    lines.append(f"{'cell':>4} {'case':>4} {'T':>4} {'B':>3} {'I':>5} {'H':>5} {'mode':>8} "
                 f"{'core ms':>9} {'torch ms':>9} {'core GF/s':>9} {'torch/core':>10}")
    for r in grid["rows"]:
        core_ms = r["timings"]["lstm_core"]["median_s"] * 1e3
        torch_ms = r["timings"]["torch"]["median_s"] * 1e3
        lines.append(f"{r['cell']:>4} {r['case']:>4} {r['T']:>4} {r['B']:>3} {r['I']:>5} "
                     f"{r['H']:>5} {r['mode']:>8} {core_ms:>9.3f} {torch_ms:>9.3f} "
                     f"{r['lstm_core_gflops']:>9.2f} {r['ratio_torch_over_lstm_core']:>10.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="gru,rnn", help="comma-separated: gru, rnn")
    p.add_argument("--cases", help="comma-separated case names (default: "
                   + ",".join(c.name for c in CASES) + ")")
    p.add_argument("--threads", help="comma-separated thread counts (default: 1,cpu_count)")
    p.add_argument("--repeats", type=int, default=5, help="timed samples per cell (>= 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON results (default: "
                   "benchmarks/results/gru-rnn-<YYYY-MM-DD>-<commit>.json)")
    args = p.parse_args(argv)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if args.repeats < 5 or not cells or any(c not in GATES for c in cells):
        p.error(f"--repeats must be >= 5 and --cells a list of {sorted(GATES)}")
    by_name = {c.name: c for c in CASES}
    names = [n.strip() for n in args.cases.split(",")] if args.cases else list(by_name)
    if any(n not in by_name for n in names):
        p.error(f"unknown case in {names}; known: {sorted(by_name)}")
    info = bench.header_info()
    print(bench.format_header(info), flush=True)
    start = time.perf_counter()
    grids = []
    for threads in bench.select_threads(args):
        grids.append(run(cells, [by_name[n] for n in names], threads, args.repeats, args.seed))
        print(format_grid(grids[-1]), flush=True)
    info["total_seconds"] = time.perf_counter() - start
    print(f"\n# total {info['total_seconds']:.1f} s; ratios > 1 mean lstm_core is faster")
    out = args.out or (Path(__file__).resolve().parent / "results" /
                       f"gru-rnn-{dt.date.today().isoformat()}-{info['git'] or 'nogit'}"
                       ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": info, "repeats": args.repeats, "grids": grids},
                              indent=1, default=str))
    print(f"# results: {out}")


if __name__ == "__main__":
    main()
