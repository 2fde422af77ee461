"""How freely another Python thread runs while lstm_core's kernels run: the GIL's release, in
rates.

What
    A Python thread counts loop turns (each turn sleeps 0 s, releasing and re-taking the GIL)
    while the main thread calls, for at least --seconds each: a control that holds the GIL
    (sorted() of 200 000 Python ints), lstm_forward (inference and training), lstm_backward
    (T, B, I, H = 50, 64, 256, 256, float64) and lstm_cell (B = 2048, I = H = 512). Per call
    kind: the turns seen, the calls, the seconds, the turns per second, and that rate over the
    control's.  A kernel that releases the GIL for its whole time loop lets the other thread
    turn orders of magnitude faster than the control does (the control lets through only the
    hand-overs at the switch interval).

    The tests (tests/boundary/test_threads.py) check the behaviour without timing: with the
    switch interval far beyond the test, a call holding the GIL lets through no turn at all
    and a kernel call lets some through.  These rates are the measurement behind it.

Run:  python benchmarks/gil_release.py [--seconds 0.5] [--threads N]
Prints a header (versions, threads, CPU), then one JSON row per call kind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time

import numpy as np

import lstm_core as lc


class Spinner:
    """A thread counting loop turns; each turn calls time.sleep(0), releasing the GIL."""

    def __init__(self):
        self.count = 0
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self):
        while not self._stop:
            self.count += 1
            time.sleep(0)

    def __enter__(self):
        self._thread.start()
        start = self.count
        while self.count < start + 10:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()

    def turns_during(self, fn, min_seconds):
        """Call fn until min_seconds have passed: turns seen during the calls, calls, seconds."""
        turns = calls = 0
        elapsed = 0.0
        while calls == 0 or elapsed < min_seconds:
            before = self.count
            t0 = time.perf_counter()
            fn()
            elapsed += time.perf_counter() - t0
            turns += self.count - before
            calls += 1
        return turns, calls, elapsed


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum time per call kind")
    parser.add_argument("--threads", type=int, default=None, help="lstm_core.set_num_threads")
    args = parser.parse_args()
    if args.threads is not None:
        lc.set_num_threads(args.threads)
    print(f"# lstm_core {lc.__version__ if hasattr(lc, '__version__') else '?'}, "
          f"numpy {np.__version__}, python {platform.python_version()}, "
          f"lstm_core threads {lc.get_num_threads()}, cpus {os.cpu_count()}, {cpu_name()}")

    rng = np.random.default_rng(40)
    T, B, I, H = 50, 64, 256, 256
    k = 1.0 / np.sqrt(H)
    w_ih, w_hh = rng.uniform(-k, k, (4 * H, I)), rng.uniform(-k, k, (4 * H, H))
    bias = rng.uniform(-k, k, 4 * H)
    x = rng.standard_normal((T, B, I))
    h0, c0 = 0.5 * rng.standard_normal((B, H)), 0.5 * rng.standard_normal((B, H))
    dy = rng.standard_normal((T, B, H))
    cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0)[3]
    Bc, Ic, Hc = 2048, 512, 512
    kc = 1.0 / np.sqrt(Hc)
    wc_ih, wc_hh = rng.uniform(-kc, kc, (4 * Hc, Ic)), rng.uniform(-kc, kc, (4 * Hc, Hc))
    bc = rng.uniform(-kc, kc, 4 * Hc)
    x_t, h, c = (rng.standard_normal(s) for s in ((Bc, Ic), (Bc, Hc), (Bc, Hc)))
    big_list = rng.integers(0, 2**62, 200_000).tolist()

    runs = {
        "control-gil-held": lambda: sorted(big_list),
        "forward-inference": lambda: lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0,
                                                     training=False),
        "forward-training": lambda: lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0),
        "backward": lambda: lc.lstm_backward(cache, dy),
        "cell": lambda: lc.lstm_cell(x_t, h, c, wc_ih, wc_hh, bc),
    }
    control_rate = None
    with Spinner() as spinner:
        for label, fn in runs.items():
            fn()  # warm-up
            turns, calls, seconds = spinner.turns_during(fn, args.seconds)
            rate = turns / seconds
            if control_rate is None:
                control_rate = max(turns, 1) / seconds
            print(json.dumps({"call": label, "turns": turns, "calls": calls,
                              "seconds": round(seconds, 4), "turns_per_second": round(rate, 1),
                              "rate_over_control": round(rate / control_rate, 2)}))


if __name__ == "__main__":
    main()
