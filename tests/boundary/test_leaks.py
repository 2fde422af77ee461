"""Leaks: 10,000 rounds of every entry point grow the process by less than 1 MiB.

Three views, because each misses something the others see:
  RSS (/proc/self/statm)  memory the process really holds: leaked arrays, C allocations;
  tracemalloc             Python and numpy allocations still alive, down to a few bytes a call;
  sys.getrefcount         a reference kept to an input (it would keep a whole array alive).
Skipped under ASan or valgrind, whose allocators keep freed memory in quarantine on purpose
(and report leaks themselves).
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import lstm_core as lc

from lstm_problems import Problem

ROUNDS = 10_000
RSS_LIMIT = 1 << 20  # 1 MiB over 10,000 rounds: a leak of 105 bytes a round would show
TRACED_ROUNDS = 1_000
TRACED_LIMIT = 16 << 10  # 16 KiB over 1,000 rounds: 16 bytes a round, less than one object


def _instrumented():
    """The sanitizer or valgrind tool loaded into this process, or None."""
    try:
        with open("/proc/self/maps") as maps:
            text = maps.read()
    except OSError:
        return None
    for marker in ("libasan", "vgpreload_memcheck"):
        if marker in text:
            return marker
    return None


pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm"),
    pytest.mark.skipif(_instrumented() is not None,
                       reason=f"{_instrumented()} quarantines freed memory"),
]


def _rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _round(a):
    """forward (training), backward, forward (inference), cell: every entry point once.
    Each call allocates a few KiB, so a leaked result would cost far more than the limit."""
    x, w_ih, w_hh, bias, h0, c0 = a["args"]
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0)
    lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
    lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False)
    lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias)


def _problem(dtype):
    p = Problem(4, 3, 8, 8, seed=9)
    return {"args": p.args(dtype), "dy": p.dy.astype(dtype), "dh_n": p.dh_n.astype(dtype),
            "dc_n": p.dc_n.astype(dtype)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounds_do_not_grow_rss_or_keep_references(dtype):
    a = _problem(dtype)
    inputs = list(a["args"]) + [a["dy"], a["dh_n"], a["dc_n"]]
    for _ in range(1000):  # warm up numpy's caches and the allocator's arenas
        _round(a)
    gc.collect()
    refs = [sys.getrefcount(v) for v in inputs]
    before = _rss()
    for _ in range(ROUNDS):
        _round(a)
    gc.collect()
    grown = _rss() - before
    assert grown < RSS_LIMIT, f"RSS grew by {grown} bytes over {ROUNDS} rounds"
    assert [sys.getrefcount(v) for v in inputs] == refs, "a reference to an input was kept"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounds_leave_no_python_or_numpy_allocation(dtype):
    a = _problem(dtype)
    for _ in range(100):
        _round(a)
    tracemalloc.start()
    try:
        _round(a)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(TRACED_ROUNDS):
            _round(a)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < TRACED_LIMIT, f"{grown} bytes still allocated after {TRACED_ROUNDS} rounds"
