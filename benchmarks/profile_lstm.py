"""Where the time of one benchmark cell goes, for lstm_core and for PyTorch, side by side.

What
    For each case (bench_lstm.py's names), thread count, mode and implementation, a child
    process warms the implementation up and then calls it in a loop; Linux perf samples that
    process (every thread) for --seconds, and the samples are grouped by what their function
    does: the GEMM-like products (lstm_core's packed kernel, the BLAS, oneDNN's brgemm), the
    pointwise gate pass, weight packing or reordering, thread synchronisation, memory copies
    and page faults, idle BLAS workers, and the rest (Python, dispatch).  PyTorch's oneDNN
    kernels are generated at run time; the child sets ONEDNN_JIT_PROFILE=2 so that perf can
    name them.

    Per category the table gives the share of the child's samples and the CPU milliseconds
    per call (its samples / the sampling rate / the calls made while perf ran); "wall ms" is
    one call's wall time in the same loop.  With two threads, CPU ms add up to about twice the
    wall time.  The calls run back to back with nothing in between (no settle pause, unlike
    bench_lstm.py), which is the steady state of a training loop.

    Inputs, thread settings and calls are bench_lstm.py's (make_inputs, api_calls,
    torch_calls, threadpool_limits + lstm_core.set_num_threads + torch.set_num_threads).

Needs `perf` (Debian: linux-perf) allowed to sample the whole system (root, or
kernel.perf_event_paranoid <= 0); without perf the script says so and exits with status 2.

Run:  python benchmarks/profile_lstm.py [--cases S3,S4] [--threads 1,2] [--modes fwd]
          [--impls lstm_core,torch] [--seconds 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SAMPLE_HZ = 999
OTHERS_SHOWN = 5  # uncategorised symbols listed under each table
WARM_UP_S = 1.0

# (category, pattern on the symbol name), first match wins (oneDNN's JIT kernel names hold
# "gemm" in several of them, so the pointwise and reorder kernels are matched first).
CATEGORIES = (
    ("pointwise gates", r"lstm_cell_(forward|backward)|postgemm|activate_row|update_row"
                        r"|backward_row|eltwise"),
    ("packing / reorder", r"pack_range|transpose_run|reorder"),
    ("GEMM: lstm_core packed kernel", r"panel_block|wide_block|panels_product|matvec"),
    ("GEMM: oneDNN", r"brgemm|jit_.*gemm|gemm_driver"),
    ("GEMM: BLAS", r"^[sd]gemm|^[sd]gemv|_kernel_(SKYLAKEX|HASWELL|SANDYBRIDGE|COOPERLAKE)"
                   r"|_(in|on|it|ot)copy_|^[sd]dot|^[sd]axpy"),
    ("threads: barriers, wake-ups", r"barrier|sched_yield|_threads__wait|gomp|GOMP|omp_"
                                    r"|__kmp|futex|pthread_cond|run_parallel|_run_member"
                                    r"|__schedule|do_syscall"),
    ("idle BLAS workers", r"blas_thread_server"),
    ("memory: copies, page faults", r"memmove|memcpy|memset|page_fault|clear_page"
                                    r"|_raw_spin|charge|mmap|munmap|alloc_pages|zap_"),
)
OTHER = "Python and other"
# a line of `perf report -F overhead,sample,sym`: '  72.72%   4366  [.] panel_block_f32'
LINE = re.compile(r"^\s*[0-9.]+%\s+(\d+)\s+\[[.k]\]\s+(.+?)\s*$")


def categorise(symbol):
    """The CATEGORIES name of one symbol, or OTHER."""
    for name, pattern in CATEGORIES:
        if re.search(pattern, symbol):
            return name
    return OTHER


def parse_report(text):
    """({category: samples}, {uncategorised symbol: samples}) from `perf report --stdio -F
    overhead,sample,sym` output; lines that are not a symbol's are ignored."""
    samples, others = {}, {}
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            count, symbol = int(match.group(1)), match.group(2)
            category = categorise(symbol)
            samples[category] = samples.get(category, 0) + count
            if category == OTHER:
                others[symbol] = others.get(symbol, 0) + count
    return samples, others


# ----------------------------------------------------------------------------- child


def child(case_name, threads, impl, mode):
    """Warm up, print READY, loop calls from GO until STOP (lines on stdin), then print
    'CALLS <n> <seconds>'."""
    import bench_lstm as bench
    import lstm_core
    from threadpoolctl import threadpool_limits

    case = next(c for c in bench.GRID + bench.DEEPBENCH if c.name == case_name)
    threadpool_limits(limits=threads)
    lstm_core.set_num_threads(threads)
    inp = bench.make_inputs(case, seed=0)
    if impl == "torch":
        bench.torch.set_num_threads(threads)
        calls = bench.torch_calls(inp, case)
    else:
        calls = bench.api_calls(lstm_core, inp, case)
    fn = calls[mode]
    start = time.perf_counter()
    while time.perf_counter() - start < WARM_UP_S:
        fn()
    stop = threading.Event()
    print("READY", flush=True)
    sys.stdin.readline()  # GO

    def wait_for_stop():
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    count, start = 0, time.perf_counter()
    while not stop.is_set():
        fn()
        count += 1
    print(f"CALLS {count} {time.perf_counter() - start}", flush=True)


# ----------------------------------------------------------------------------- parent


def profile(case_name, threads, impl, mode, seconds, perf):
    """{"samples", "others", "calls_per_s", "wall_ms", "seconds"} for one cell, sampled by
    perf."""
    env = dict(os.environ, ONEDNN_JIT_PROFILE="2")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", case_name, str(threads), impl, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parent)
    try:
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"the child for {case_name} {impl} {mode} did not start")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "perf.data"
            proc.stdin.write("GO\n")
            proc.stdin.flush()
            # System-wide: sampling only the child (-p) would follow each new thread of
            # lstm_core's split loops through perf's inherited events, which slows those
            # loops down several times over; system-wide events are per CPU.
            subprocess.run([perf, "record", "-q", "-a", "-F", str(SAMPLE_HZ), "-o", str(data),
                            "--", "sleep", str(seconds)], check=True, capture_output=True)
            proc.stdin.write("STOP\n")
            proc.stdin.flush()
            report = subprocess.run([perf, "report", "-i", str(data), "--stdio",
                                     "--no-children", "--pid", str(proc.pid), "--sort", "sym",
                                     "-F", "overhead,sample,sym", "-g", "none"],
                                    check=True, capture_output=True, text=True).stdout
        _, count, elapsed = proc.stdout.readline().split()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    calls_per_s = int(count) / float(elapsed)
    samples, others = parse_report(report)
    return {"samples": samples, "others": others, "calls_per_s": calls_per_s,
            "wall_ms": 1e3 / calls_per_s, "seconds": seconds}


def share(result, category):
    """Percent of the child's samples in a category."""
    total = sum(result["samples"].values())
    return 100.0 * result["samples"].get(category, 0) / total if total else float("nan")


def cpu_ms(result, category):
    """CPU milliseconds per call spent in a category: each sample stands for 1/SAMPLE_HZ s
    of one CPU, over the calls made while perf ran."""
    calls = result["calls_per_s"] * result["seconds"]
    return result["samples"].get(category, 0) / SAMPLE_HZ / calls * 1e3


def format_cell(case_name, threads, mode, results):
    """A table: one row per category, share and CPU ms per call for each implementation."""
    impls = list(results)
    lines = [f"## {case_name} {mode}, {threads} thread(s): "
             + ", ".join(f"{impl} {r['wall_ms']:.3f} wall ms per call" for impl, r in
                         results.items())]
    lines.append(f"{'category':32}" + "".join(f"{impl + ' %':>16}{'CPU ms':>10}"
                                              for impl in impls))
    names = [name for name, _ in CATEGORIES] + [OTHER]
    for name in names:
        if not any(share(r, name) >= 0.05 for r in results.values()):
            continue
        lines.append(f"{name:32}" + "".join(f"{share(results[impl], name):16.1f}"
                                            f"{cpu_ms(results[impl], name):10.3f}"
                                            for impl in impls))
    for impl, result in results.items():
        total = sum(result["samples"].values()) or 1
        top = sorted(result["others"].items(), key=lambda item: -item[1])[:OTHERS_SHOWN]
        lines.append(f"# {impl}'s largest '{OTHER}': " + ", ".join(
            f"{symbol} {100 * count / total:.1f}%" for symbol, count in top))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="S3", help="comma-separated bench_lstm.py case names")
    p.add_argument("--threads", default="1", help="comma-separated thread counts")
    p.add_argument("--modes", default="fwd,fwd+bwd", help="fwd, fwd+bwd and/or step")
    p.add_argument("--impls", default="lstm_core,torch", help="lstm_core and/or torch")
    p.add_argument("--seconds", type=float, default=4.0, help="perf's sampling window")
    p.add_argument("--out", type=Path, help="also write the tables to this file")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        case_name, threads, impl, mode = args.child
        child(case_name, int(threads), impl, mode)
        return 0
    perf = shutil.which("perf")
    if perf is None:
        print("profile_lstm.py needs Linux perf on PATH (Debian: apt install linux-perf)",
              file=sys.stderr)
        return 2
    import bench_lstm as bench

    by_name = {c.name: c for c in bench.GRID + bench.DEEPBENCH}
    blocks = []
    for case_name in args.cases.split(","):
        if case_name not in by_name:
            print(f"unknown case {case_name!r}; known: {sorted(by_name)}", file=sys.stderr)
            return 2
        for threads in [int(n) for n in args.threads.split(",")]:
            for mode in args.modes.split(","):
                if mode not in by_name[case_name].modes:
                    continue
                results = {impl: profile(case_name, threads, impl, mode, args.seconds, perf)
                           for impl in args.impls.split(",")}
                blocks.append(format_cell(case_name, threads, mode, results))
                print(blocks[-1] + "\n", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join(blocks) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
