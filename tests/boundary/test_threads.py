"""Inputs are never modified; calls from several threads are independent; the GIL is released.

No timing anywhere: the GIL tests count another Python thread's turns during a kernel call,
with the switch interval so long that a call holding the GIL lets through exactly none (a
control call shows it).  How much of a call runs without the GIL, in turns per second against
that control, is measured by benchmarks/gil_release.py.
"""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lstm_core as lc

DTYPES = [np.float64, np.float32]


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _weights(rng, I, H, dtype):
    return (_rand(rng, (4 * H, I), dtype, 0.3), _rand(rng, (4 * H, H), dtype, 0.3),
            _rand(rng, (4 * H,), dtype, 0.3))


# ----------------------------------------------------------------------------- (a) no writes


def _snapshot(arrays):
    return {k: (v.copy(), v.flags.writeable) for k, v in arrays.items()}


def _assert_unchanged(arrays, snap):
    for k, v in arrays.items():
        before, writeable = snap[k]
        assert np.array_equal(v, before, equal_nan=True), f"{k} was modified"
        assert v.flags.writeable == writeable, f"{k} changed its writeable flag"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "fortran"])
def test_inputs_are_never_modified(dtype, layout):
    rng = np.random.default_rng(10)
    T, B, I, H = 5, 3, 6, 4
    w_ih, w_hh, bias = _weights(rng, I, H, dtype)
    arrays = {
        "x": _rand(rng, (T, B, I), dtype),
        "w_ih": w_ih, "w_hh": w_hh, "bias": bias,
        "h0": _rand(rng, (B, H), dtype, 0.5),
        "c0": _rand(rng, (B, H), dtype, 0.5),
        "dy": _rand(rng, (T, B, H), dtype),
        "dh_n": _rand(rng, (B, H), dtype),
        "dc_n": _rand(rng, (B, H), dtype),
        "x_t": _rand(rng, (B, I), dtype),
        "h": _rand(rng, (B, H), dtype, 0.5),
        "c": _rand(rng, (B, H), dtype, 0.5),
    }
    if layout == "fortran":
        arrays = {k: np.asfortranarray(v) for k, v in arrays.items()}
    a = arrays
    snap = _snapshot(arrays)

    fwd_in = (a["x"], a["w_ih"], a["w_hh"], a["bias"], a["h0"], a["c0"])
    y, h_n, c_n, cache = lc.lstm_forward(*fwd_in, training=True)
    _assert_unchanged(arrays, snap)
    y_inf, h_inf, c_inf, none = lc.lstm_forward(*fwd_in, training=False)
    assert none is None
    _assert_unchanged(arrays, snap)
    # outputs are fresh arrays, never views of an input
    for out in (y, h_n, c_n, y_inf, h_inf, c_inf):
        for inp in arrays.values():
            assert not np.shares_memory(out, inp)

    g1 = lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
    _assert_unchanged(arrays, snap)
    # backward leaves the cache as it was: a second call gives bitwise the same gradients
    g2 = lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
    for u, v in zip(g1, g2):
        assert np.array_equal(u, v)
    for grad in g1:
        for inp in arrays.values():
            assert not np.shares_memory(grad, inp)

    h1, c1 = lc.lstm_cell(a["x_t"], a["h"], a["c"], a["w_ih"], a["w_hh"], a["bias"])
    _assert_unchanged(arrays, snap)
    # the cell writes its results elsewhere, not into h and c
    assert not np.shares_memory(h1, a["h"]) and not np.shares_memory(c1, a["c"])
    # the forward outputs were not touched by the later calls either
    y_again = lc.lstm_forward(*fwd_in, training=False)[0]
    assert np.array_equal(y, y_again) and np.array_equal(y_inf, y_again)


# ----------------------------------------------------------------------------- (b) threads

# 8 threads x 200 calls on tiny shapes (many overlapping calls, each short), and 8 x 20 on a
# medium shape (calls long enough to overlap inside the kernels and the BLAS).
N_THREADS = 8
CALLS_PER_THREAD = {"tiny": 200, "medium": 20}


def _jobs(dtype, T, B, I, H, calls_per_thread, seed):
    """N_THREADS lists of calls_per_thread different inputs; weights are shared by all."""
    rng = np.random.default_rng(seed)
    w_ih, w_hh, bias = _weights(rng, I, H, dtype)
    jobs = []
    for _ in range(N_THREADS):
        calls = []
        for _ in range(calls_per_thread):
            calls.append({
                "x": _rand(rng, (T, B, I), dtype),
                "h0": _rand(rng, (B, H), dtype, 0.5),
                "c0": _rand(rng, (B, H), dtype, 0.5),
                "dy": _rand(rng, (T, B, H), dtype),
                "dh_n": _rand(rng, (B, H), dtype),
                "dc_n": _rand(rng, (B, H), dtype),
                "x_t": _rand(rng, (B, I), dtype),
                "h": _rand(rng, (B, H), dtype, 0.5),
                "c": _rand(rng, (B, H), dtype, 0.5),
            })
        jobs.append(calls)
    return (w_ih, w_hh, bias), jobs


def _work(weights, calls, barrier=None):
    """forward (both modes) + backward + cell for every call; all outputs in a flat list."""
    w_ih, w_hh, bias = weights
    if barrier is not None:
        barrier.wait(timeout=60)  # all threads start together, so calls really overlap
    out = []
    for a in calls:
        y, h_n, c_n, cache = lc.lstm_forward(a["x"], w_ih, w_hh, bias, a["h0"], a["c0"])
        g = lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
        y_inf, h_inf, c_inf, _ = lc.lstm_forward(a["x"], w_ih, w_hh, bias, a["h0"], a["c0"],
                                                 training=False)
        h1, c1 = lc.lstm_cell(a["x_t"], a["h"], a["c"], w_ih, w_hh, bias)
        out.append([y, h_n, c_n, *g, y_inf, h_inf, c_inf, h1, c1])
    return out


def _assert_bitwise_equal(threaded, serial, calls_per_thread):
    assert len(threaded) == len(serial) == N_THREADS
    for t_out, s_out in zip(threaded, serial):
        assert len(t_out) == len(s_out) == calls_per_thread
        for t_call, s_call in zip(t_out, s_out):
            assert len(t_call) == len(s_call)
            for u, v in zip(t_call, s_call):
                assert u.dtype == v.dtype and u.shape == v.shape
                assert u.tobytes() == v.tobytes()


def _in_threads(fn, jobs, *args):
    """fn(*args, job, barrier) in N_THREADS threads started together; results in job order."""
    barrier = threading.Barrier(N_THREADS)
    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        futures = [pool.submit(fn, *args, job, barrier) for job in jobs]
        return [f.result(timeout=300) for f in futures]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,shape", [("tiny", (6, 3, 8, 5)), ("medium", (8, 8, 24, 32))],
                         ids=["tiny", "medium"])
def test_threads_give_bitwise_the_serial_results(size, shape, dtype):
    calls = CALLS_PER_THREAD[size]
    weights, jobs = _jobs(dtype, *shape, calls, seed=20)
    snap = [w.copy() for w in weights]
    serial = [_work(weights, job) for job in jobs]
    threaded = _in_threads(_work, jobs, weights)
    _assert_bitwise_equal(threaded, serial, calls)
    # distinct inputs gave distinct outputs (the comparison above is not vacuous)
    assert not np.array_equal(serial[0][0][0], serial[1][0][0])
    for w, s in zip(weights, snap):
        assert np.array_equal(w, s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_share_one_cache(dtype):
    """A cache may serve any number of lstm_backward calls, also concurrently."""
    rng = np.random.default_rng(30)
    T, B, I, H = 8, 4, 10, 12
    w_ih, w_hh, bias = _weights(rng, I, H, dtype)
    x = _rand(rng, (T, B, I), dtype)
    cache = lc.lstm_forward(x, w_ih, w_hh, bias, _rand(rng, (B, H), dtype),
                            _rand(rng, (B, H), dtype))[3]
    calls = CALLS_PER_THREAD["tiny"]
    grads_in = [[(_rand(rng, (T, B, H), dtype), _rand(rng, (B, H), dtype),
                  _rand(rng, (B, H), dtype)) for _ in range(calls)]
                for _ in range(N_THREADS)]

    def run(items, barrier=None):
        if barrier is not None:
            barrier.wait(timeout=60)
        return [list(lc.lstm_backward(cache, *d)) for d in items]

    serial = [run(items) for items in grads_in]
    _assert_bitwise_equal(_in_threads(run, grads_in), serial, calls)


# ----------------------------------------------------------------------------- (c) the GIL


class _Spinner:
    """A Python thread that counts loop turns; each turn sleeps 1 ms, releasing the GIL.

    Inside the `with`, the interpreter's switch interval is set far beyond the test's length:
    the main thread then gives the GIL up only where it blocks or a C call releases it, never
    because another thread asked for it.  So while the main thread runs a call that holds the
    GIL, the counter cannot move at all: turns_of(call) is exactly 0; it moves only if the call
    releases the GIL long enough for this thread to be scheduled."""

    def __init__(self):
        self.count = 0
        self._stop = False
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self):
        self._running.set()
        while not self._stop:
            self.count += 1
            time.sleep(1e-3)

    def __enter__(self):
        self._thread.start()
        assert self._running.wait(timeout=30)
        start = self.count
        while self.count < start + 10:  # it is really turning
            time.sleep(0.001)
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        # A wait for the GIL the spinner began under the old interval (5 ms) may still ask the
        # main thread to drop it: give the GIL away long enough for every such wait to end.
        time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        sys.setswitchinterval(self._interval)
        self._stop = True
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()

    def turns_of(self, fn):
        """The counter's turns during one call of fn (read immediately before and after)."""
        before = self.count
        fn()
        return self.count - before


# A call that releases the GIL lets the spinner turn unless the scheduler never runs it during
# the call (a 0.1-0.3 s call here): each call is tried up to CALLS times.
CALLS = 20


def assert_gil_released(spinner, label, fn):
    turns = [spinner.turns_of(fn)]
    while turns[-1] == 0 and len(turns) < CALLS:
        turns.append(spinner.turns_of(fn))
    assert turns[-1] > 0, (
        f"{label}: the other thread never turned during {len(turns)} calls: "
        "the GIL is held while the kernel runs")


def assert_gil_held(spinner, fn):
    """The control: a call that holds the GIL (sorted() of Python ints) lets no turn through."""
    assert [spinner.turns_of(fn) for _ in range(3)] == [0, 0, 0]


def test_gil_is_released_by_the_kernels():
    rng = np.random.default_rng(40)
    T, B, I, H = 50, 64, 256, 256
    dtype = np.float64
    w_ih, w_hh, bias = _weights(rng, I, H, dtype)
    x = _rand(rng, (T, B, I), dtype)
    h0, c0 = _rand(rng, (B, H), dtype, 0.5), _rand(rng, (B, H), dtype, 0.5)
    dy = _rand(rng, (T, B, H), dtype)
    cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0)[3]
    big_list = rng.integers(0, 2**62, 200_000).tolist()

    with _Spinner() as spinner:
        assert_gil_held(spinner, lambda: sorted(big_list))
        runs = {
            "forward-inference": lambda: lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0,
                                                         training=False),
            "forward-training": lambda: lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0),
            "backward": lambda: lc.lstm_backward(cache, dy),
        }
        for label, fn in runs.items():
            assert_gil_released(spinner, label, fn)


def test_gil_is_released_by_the_cell():
    """One big step (B=2048, I=H=512 float64) is also computed without the GIL."""
    rng = np.random.default_rng(41)
    B, I, H = 2048, 512, 512
    dtype = np.float64
    w_ih, w_hh, bias = _weights(rng, I, H, dtype)
    x_t = _rand(rng, (B, I), dtype)
    h, c = _rand(rng, (B, H), dtype, 0.5), _rand(rng, (B, H), dtype, 0.5)
    big_list = rng.integers(0, 2**62, 200_000).tolist()
    with _Spinner() as spinner:
        assert_gil_held(spinner, lambda: sorted(big_list))
        assert_gil_released(spinner, "lstm_cell",
                            lambda: lc.lstm_cell(x_t, h, c, w_ih, w_hh, bias))
