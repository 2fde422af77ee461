"""The validating boundary of lstm_core: bad inputs raise, valid non-contiguous inputs work.

Part 1 is a table of bad calls over lstm_forward, lstm_backward, lstm_cell, the LSTM layer,
and gru_forward / gru_backward / rnn_forward / rnn_backward.  Each case
names the exception type (TypeError for "not an ndarray / wrong dtype / wrong cache",
ValueError for "wrong ndim / wrong size", MemoryError for "more memory than exists") and the
argument the message must name.  The table is run in-process (one pytest case per row) and once
more, whole, in a fresh interpreter, so that a segfault in any row shows up as a failed exit
code instead of killing the test run.

The table has four parts: hand-written rows (build_cases), rows generated for every argument of
every entry point from the declarative APIS list (ndim, each size, '>f4', bool, wrong layouts),
huge sizes made with zero strides (no memory used) that must fail before any allocation, and
hand-written rows of the GRU's and the RNN's forward and backward (prefixes "gru", "rnn").
The layer lc.LSTM has its entries in APIS (prefixes "layer" and "layerbwd"); another layer
joins the same way, with its call factory and argument shapes.

Part 2 checks that VALID inputs in unusual memory layouts (Fortran order, negative strides,
strided slices, misaligned views, read-only and broadcast arrays) are not errors and give
the same results as the same call on contiguous copies.

The table's helpers live in this file and tests/lstm_problems.py, tests/cell_problems.py (no
fixtures: the subprocess imports this module by path).  The checks outside the table that hold
for every cell take the conftest's `cell` fixture.
"""

import json
import re
import textwrap
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import reference

from cell_problems import CELLS
from lstm_problems import name_pattern, run_python as _run_python

# Small sizes, all different so that a swapped dimension is always a wrong shape.
T, B, I, H = 3, 2, 5, 4
G = 4 * H


def _valid(dtype=np.float64, seed=0):
    """A consistent set of valid, C-contiguous arguments (non-zero bias and states)."""
    rng = np.random.default_rng(seed)

    def r(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": r(T, B, I),
        "w_ih": r(G, I, scale=0.4),
        "w_hh": r(G, H, scale=0.4),
        "bias": r(G, scale=0.3),
        "h0": r(B, H, scale=0.5),
        "c0": r(B, H, scale=0.5),
        "dy": r(T, B, H),
        "dh_n": r(B, H),
        "dc_n": r(B, H),
        "x_t": r(B, I),
        "h": r(B, H, scale=0.5),
        "c": r(B, H, scale=0.5),
    }


# ----------------------------------------------------------------------------- layouts
# Unusual memory layouts of an array with the same values.  Valid inputs in these layouts must
# work (part 2); with a wrong shape or dtype they must be rejected like any other (part 1).


def _fortran(a):
    out = np.asfortranarray(a)
    if a.ndim >= 2 and a.size > 1:
        assert not out.flags.c_contiguous
    return out


def _negative(a):
    out = np.flip(np.flip(a).copy())  # same values, every axis with a negative stride
    if a.size > 1:
        assert not out.flags.c_contiguous and min(out.strides) < 0
    return out


def _strided(a):
    big = np.full(tuple(2 * n for n in a.shape), np.nan, dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


def _misaligned(a):
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    view = buf[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned and view.ctypes.data % a.dtype.itemsize != 0
    return view


def _readonly(a):
    out = a.copy()
    out.flags.writeable = False
    return out


def _readonly_fortran_negative(a):
    out = _negative(np.asfortranarray(a))
    out.flags.writeable = False
    return out


LAYOUTS = {
    "fortran": _fortran,
    "negative": _negative,
    "strided": _strided,
    "misaligned": _misaligned,
    "readonly": _readonly,
    "readonly-fortran-negative": _readonly_fortran_negative,
}


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    exc: type  # TypeError, ValueError or MemoryError
    name: str  # the argument the message must name
    call: Callable[[], Any]  # performs the bad call
    shown: Optional[tuple] = None  # a shape the message must show (actual / expected)
    huge: bool = False  # sizes beyond memory: must fail before allocating (checked by tracemalloc)
    xfail: Optional[str] = None  # a known gap in the boundary: why this row fails today


def _fwd_call(dtype=np.float64, **override):
    def call():
        a = _valid(dtype)
        kw = {k: a[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")}
        kw.update(override)
        return lc.lstm_forward(kw["x"], kw["w_ih"], kw["w_hh"], kw["bias"], kw["h0"], kw["c0"])

    return call


def _cell_call(dtype=np.float64, **override):
    def call():
        a = _valid(dtype)
        kw = {k: a[k] for k in ("x_t", "h", "c", "w_ih", "w_hh", "bias")}
        kw.update(override)
        return lc.lstm_cell(kw["x_t"], kw["h"], kw["c"], kw["w_ih"], kw["w_hh"], kw["bias"])

    return call


def _training_cache(dtype=np.float64):
    a = _valid(dtype)
    return lc.lstm_forward(a["x"], a["w_ih"], a["w_hh"], a["bias"], a["h0"], a["c0"])[3]


def _bwd_call(cache_dtype=np.float64, **override):
    def call():
        cache = _training_cache(cache_dtype)
        a = _valid(cache_dtype, seed=1)
        kw = {"dy": a["dy"], "dh_n": a["dh_n"], "dc_n": a["dc_n"]}
        kw.update(override)
        return lc.lstm_backward(cache, kw["dy"], kw["dh_n"], kw["dc_n"])

    return call


def _bwd_cache_call(make_cache):
    def call():
        return lc.lstm_backward(make_cache())

    return call


def _f(a, dtype=np.float64):
    """A Fortran-ordered float array of a's shape (a: shape tuple)."""
    return np.asfortranarray(np.ones(a, dtype=dtype) * 0.25)


def _neg(shape, dtype=np.float64):
    """An array of the given shape with negative strides on every axis."""
    base = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) * 0.01
    out = base[tuple(slice(None, None, -1) for _ in shape)]
    assert all(s <= 0 for s in out.strides)
    return out


def _z(shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


def _odd_dtypes():
    """(label, dtype) pairs that must be rejected with TypeError."""
    return [
        ("int64", np.int64),
        ("int32", np.int32),
        ("float16", np.float16),
        ("complex128", np.complex128),
        ("complex64", np.complex64),
        ("object", object),
        ("bool", np.bool_),
        ("bigendian_f4", ">f4"),
        ("bigendian_f8", ">f8"),
    ]


def _hand_written_cases(add):
    """The rows written one by one: every way we could think of to misuse each argument."""
    V, TE = ValueError, TypeError

    # ---- lstm_forward: wrong ndim for every array argument
    for arg, shapes in {
        "x": [(B, I), (T, B, I, 1), ()],
        "w_ih": [(G,), (G, I, 1)],
        "w_hh": [(G,), (1, G, H)],
        "bias": [(G, 1), ()],
        "h0": [(H,), (1, B, H)],
        "c0": [(H,), (1, B, H)],
    }.items():
        for s in shapes:
            add(f"fwd-{arg}-ndim{len(s)}", V, arg, _fwd_call(**{arg: _z(s)}), s)

    # ---- lstm_forward: mismatched sizes
    add("fwd-w_ih-cols-not-I", V, "w_ih", _fwd_call(w_ih=_z((G, I + 1))), (G, I + 1))
    add("fwd-w_ih-rows-not-div4", V, "w_ih",
        _fwd_call(w_ih=_z((G - 1, I)), w_hh=_z((G - 1, H))), (G - 1, I))
    add("fwd-w_ih-rows-4H+2", V, "w_ih", _fwd_call(w_ih=_z((G + 2, I))), (G + 2, I))
    add("fwd-w_hh-rows-not-4H", V, "w_hh", _fwd_call(w_hh=_z((G + 4, H))), (G + 4, H))
    add("fwd-w_hh-cols-not-H", V, "w_hh", _fwd_call(w_hh=_z((G, H + 1))), (G, H + 1))
    add("fwd-w_hh-other-H", V, "w_hh", _fwd_call(w_hh=_z((12, 3))), (12, 3))
    add("fwd-w_hh-transposed", V, "w_hh", _fwd_call(w_hh=_z((H, G))), (H, G))
    add("fwd-x-I-mismatch", V, "w_ih", _fwd_call(x=_z((T, B, I + 2))), (G, I + 2))
    add("fwd-bias-short", V, "bias", _fwd_call(bias=_z((G - 1,))), (G - 1,))
    add("fwd-bias-long", V, "bias", _fwd_call(bias=_z((G + 4,))), (G + 4,))
    add("fwd-bias-H", V, "bias", _fwd_call(bias=_z((H,))), (H,))
    add("fwd-h0-B+1", V, "h0", _fwd_call(h0=_z((B + 1, H))), (B + 1, H))
    add("fwd-h0-H+1", V, "h0", _fwd_call(h0=_z((B, H + 1))), (B, H + 1))
    add("fwd-h0-transposed", V, "h0", _fwd_call(h0=_z((H, B))), (H, B))
    add("fwd-c0-H-1", V, "c0", _fwd_call(c0=_z((B, H - 1))), (B, H - 1))
    add("fwd-c0-B+1", V, "c0", _fwd_call(c0=_z((B + 1, H))), (B + 1, H))
    add("fwd-x-B-vs-h0", V, "h0", _fwd_call(x=_z((T, B + 3, I))), (B, H))

    # ---- lstm_forward: dtypes
    for label, dt in _odd_dtypes():
        add(f"fwd-x-{label}", TE, "x", _fwd_call(x=np.zeros((T, B, I), dtype=dt)))
    add("fwd-w_ih-int64", TE, "w_ih", _fwd_call(w_ih=np.zeros((G, I), np.int64)))
    add("fwd-w_hh-float16", TE, "w_hh", _fwd_call(w_hh=np.zeros((G, H), np.float16)))
    add("fwd-w_hh-bigendian", TE, "w_hh", _fwd_call(w_hh=np.zeros((G, H), ">f8")))
    add("fwd-bias-complex", TE, "bias", _fwd_call(bias=np.zeros(G, np.complex64)))
    add("fwd-h0-object", TE, "h0", _fwd_call(h0=np.zeros((B, H), object)))
    add("fwd-c0-bool", TE, "c0", _fwd_call(c0=np.zeros((B, H), bool)))
    add("fwd-c0-uint8", TE, "c0", _fwd_call(c0=np.zeros((B, H), np.uint8)))
    # mixed float32 / float64 (x sets the dtype of the call)
    add("fwd-mixed-x32-w_ih64", TE, "w_ih",
        _fwd_call(x=_z((T, B, I), np.float32)))
    add("fwd-mixed-w_hh32", TE, "w_hh", _fwd_call(w_hh=_z((G, H), np.float32)))
    add("fwd-mixed-bias32", TE, "bias", _fwd_call(bias=_z((G,), np.float32)))
    add("fwd-mixed-h0-32", TE, "h0", _fwd_call(h0=_z((B, H), np.float32)))
    add("fwd-mixed-c0-32", TE, "c0", _fwd_call(c0=_z((B, H), np.float32)))
    add("fwd-mixed-all32-but-c0", TE, "c0", _fwd_call(
        x=_z((T, B, I), np.float32), w_ih=_z((G, I), np.float32), w_hh=_z((G, H), np.float32),
        bias=_z((G,), np.float32), h0=_z((B, H), np.float32)))
    add("fwd-mixed-w_ih-bigendian-f4", TE, "w_ih",
        _fwd_call(x=_z((T, B, I), np.float32), w_ih=np.zeros((G, I), ">f4")))

    # ---- lstm_forward: None / lists / scalars where an array is required
    add("fwd-x-None", TE, "x", _fwd_call(x=None))
    add("fwd-w_ih-None", TE, "w_ih", _fwd_call(w_ih=None))
    add("fwd-w_hh-None", TE, "w_hh", _fwd_call(w_hh=None))
    add("fwd-x-list", TE, "x", _fwd_call(x=_z((T, B, I)).tolist()))
    add("fwd-w_ih-list", TE, "w_ih", _fwd_call(w_ih=_z((G, I)).tolist()))
    add("fwd-w_hh-list", TE, "w_hh", _fwd_call(w_hh=_z((G, H)).tolist()))
    add("fwd-bias-list", TE, "bias", _fwd_call(bias=[0.0] * G))
    add("fwd-h0-list", TE, "h0", _fwd_call(h0=_z((B, H)).tolist()))
    add("fwd-c0-tuple", TE, "c0", _fwd_call(c0=tuple(map(tuple, _z((B, H))))))
    add("fwd-x-float", TE, "x", _fwd_call(x=1.0))
    add("fwd-x-npscalar", TE, "x", _fwd_call(x=np.float64(1.0)))
    add("fwd-w_hh-int", TE, "w_hh", _fwd_call(w_hh=3))
    add("fwd-bias-float", TE, "bias", _fwd_call(bias=0.5))
    add("fwd-h0-npscalar", TE, "h0", _fwd_call(h0=np.float64(0.0)))
    add("fwd-x-memoryview", TE, "x", _fwd_call(x=memoryview(_z((T, B, I)))))

    # ---- lstm_forward: Fortran-ordered / negatively-strided arrays of a WRONG shape
    add("fwd-x-fortran-2d", V, "x", _fwd_call(x=_f((B, I))), (B, I))
    add("fwd-w_ih-fortran-cols", V, "w_ih", _fwd_call(w_ih=_f((G, I + 1))), (G, I + 1))
    add("fwd-w_ih-fortran-rows-not-div4", V, "w_ih", _fwd_call(w_ih=_f((G - 1, I))), (G - 1, I))
    add("fwd-w_hh-fortran", V, "w_hh", _fwd_call(w_hh=_f((G, H + 1))), (G, H + 1))
    add("fwd-h0-fortran", V, "h0", _fwd_call(h0=_f((B, H + 1))), (B, H + 1))
    add("fwd-x-negstride-4d", V, "x", _fwd_call(x=_neg((T, B, I, 2))), (T, B, I, 2))
    add("fwd-w_hh-negstride", V, "w_hh", _fwd_call(w_hh=_neg((G, H - 1))), (G, H - 1))
    add("fwd-bias-negstride", V, "bias", _fwd_call(bias=_neg((G + 1,))), (G + 1,))
    add("fwd-c0-negstride", V, "c0", _fwd_call(c0=_neg((B + 1, H))), (B + 1, H))
    add("fwd-c0-fortran-transposed", V, "c0", _fwd_call(c0=_f((H, B))), (H, B))

    # ---- lstm_backward: misused caches
    add("bwd-cache-None", TE, "cache", _bwd_cache_call(lambda: None))
    add("bwd-cache-inference-None", TE, "cache", _bwd_cache_call(
        lambda: lc.lstm_forward(*[_valid()[k] for k in ("x", "w_ih", "w_hh")],
                                training=False)[3]))
    add("bwd-cache-reference", TE, "cache", _bwd_cache_call(
        lambda: reference.lstm_forward(*[_valid()[k] for k in ("x", "w_ih", "w_hh")])[3]))
    add("bwd-cache-dict", TE, "cache", _bwd_cache_call(
        lambda: {"x": _valid()["x"], "w_ih": _valid()["w_ih"], "w_hh": _valid()["w_hh"]}))
    add("bwd-cache-forward-tuple", TE, "cache", _bwd_cache_call(
        lambda: lc.lstm_forward(*[_valid()[k] for k in ("x", "w_ih", "w_hh")])))
    add("bwd-cache-ndarray", TE, "cache", _bwd_cache_call(lambda: _valid()["x"]))
    add("bwd-cache-grads", TE, "cache", _bwd_cache_call(
        lambda: lc.LSTMGrads(*[_valid()["x"]] * 6)))

    # ---- lstm_backward: dy / dh_n / dc_n
    add("bwd-dy-ndim2", V, "dy", _bwd_call(dy=_z((T * B, H))), (T * B, H))
    add("bwd-dy-ndim4", V, "dy", _bwd_call(dy=_z((T, B, H, 1))), (T, B, H, 1))
    add("bwd-dy-other-T", V, "dy", _bwd_call(dy=_z((T + 1, B, H))), (T + 1, B, H))
    add("bwd-dy-other-B", V, "dy", _bwd_call(dy=_z((T, B + 1, H))), (T, B + 1, H))
    add("bwd-dy-other-H", V, "dy", _bwd_call(dy=_z((T, B, H + 1))), (T, B, H + 1))
    add("bwd-dy-I-not-H", V, "dy", _bwd_call(dy=_z((T, B, I))), (T, B, I))
    add("bwd-dy-fortran-wrong", V, "dy", _bwd_call(dy=_f((T, B + 1, H))), (T, B + 1, H))
    add("bwd-dy-negstride-wrong", V, "dy", _bwd_call(dy=_neg((T - 1, B, H))), (T - 1, B, H))
    add("bwd-dh_n-ndim1", V, "dh_n", _bwd_call(dh_n=_z((H,))), (H,))
    add("bwd-dh_n-ndim3", V, "dh_n", _bwd_call(dh_n=_z((1, B, H))), (1, B, H))
    add("bwd-dh_n-B+1", V, "dh_n", _bwd_call(dh_n=_z((B + 1, H))), (B + 1, H))
    add("bwd-dh_n-H+1", V, "dh_n", _bwd_call(dh_n=_z((B, H + 1))), (B, H + 1))
    add("bwd-dc_n-ndim1", V, "dc_n", _bwd_call(dc_n=_z((H,))), (H,))
    add("bwd-dc_n-H-1", V, "dc_n", _bwd_call(dc_n=_z((B, H - 1))), (B, H - 1))
    add("bwd-dc_n-fortran-wrong", V, "dc_n", _bwd_call(dc_n=_f((H, B))), (H, B))
    add("bwd-dc_n-negstride-wrong", V, "dc_n", _bwd_call(dc_n=_neg((B, H + 2))), (B, H + 2))
    add("bwd-dy-float32-for-f64-cache", TE, "dy", _bwd_call(dy=_z((T, B, H), np.float32)))
    add("bwd-dy-float64-for-f32-cache", TE, "dy",
        _bwd_call(np.float32, dy=_z((T, B, H), np.float64)))
    add("bwd-dh_n-float32-for-f64-cache", TE, "dh_n", _bwd_call(dh_n=_z((B, H), np.float32)))
    add("bwd-dc_n-float64-for-f32-cache", TE, "dc_n",
        _bwd_call(np.float32, dc_n=_z((B, H), np.float64)))
    add("bwd-dy-int", TE, "dy", _bwd_call(dy=np.zeros((T, B, H), np.int64)))
    add("bwd-dy-complex", TE, "dy", _bwd_call(dy=np.zeros((T, B, H), complex)))
    add("bwd-dy-bigendian", TE, "dy", _bwd_call(dy=np.zeros((T, B, H), ">f8")))
    add("bwd-dh_n-float16", TE, "dh_n", _bwd_call(dh_n=np.zeros((B, H), np.float16)))
    add("bwd-dh_n-object", TE, "dh_n", _bwd_call(dh_n=np.zeros((B, H), object)))
    add("bwd-dc_n-bool", TE, "dc_n", _bwd_call(dc_n=np.zeros((B, H), bool)))
    add("bwd-dy-list", TE, "dy", _bwd_call(dy=_z((T, B, H)).tolist()))
    add("bwd-dh_n-list", TE, "dh_n", _bwd_call(dh_n=_z((B, H)).tolist()))
    add("bwd-dc_n-scalar", TE, "dc_n", _bwd_call(dc_n=0.0))

    # ---- lstm_cell
    add("cell-x_t-ndim1", V, "x_t", _cell_call(x_t=_z((I,))), (I,))
    add("cell-x_t-ndim3", V, "x_t", _cell_call(x_t=_z((1, B, I))), (1, B, I))
    add("cell-h-ndim1", V, "h", _cell_call(h=_z((H,))), (H,))
    add("cell-h-ndim3", V, "h", _cell_call(h=_z((1, B, H))), (1, B, H))
    add("cell-c-ndim1", V, "c", _cell_call(c=_z((H,))), (H,))
    add("cell-c-ndim3", V, "c", _cell_call(c=_z((1, B, H))), (1, B, H))
    add("cell-w_ih-ndim1", V, "w_ih", _cell_call(w_ih=_z((G,))), (G,))
    add("cell-w_hh-ndim3", V, "w_hh", _cell_call(w_hh=_z((G, H, 1))), (G, H, 1))
    add("cell-bias-ndim2", V, "bias", _cell_call(bias=_z((1, G))), (1, G))
    add("cell-h-B+1", V, "h", _cell_call(h=_z((B + 1, H))), (B + 1, H))
    add("cell-h-H+1", V, "h", _cell_call(h=_z((B, H + 1))), (B, H + 1))
    add("cell-c-B+1", V, "c", _cell_call(c=_z((B + 1, H))), (B + 1, H))
    add("cell-c-H-1", V, "c", _cell_call(c=_z((B, H - 1))), (B, H - 1))
    add("cell-x_t-B-vs-h", V, "h", _cell_call(x_t=_z((B + 1, I))), (B, H))
    add("cell-x_t-I-vs-w_ih", V, "w_ih", _cell_call(x_t=_z((B, I + 1))), (G, I + 1))
    add("cell-w_ih-rows-not-div4", V, "w_ih", _cell_call(w_ih=_z((G + 1, I))), (G + 1, I))
    add("cell-w_hh-cols", V, "w_hh", _cell_call(w_hh=_z((G, H + 2))), (G, H + 2))
    add("cell-bias-short", V, "bias", _cell_call(bias=_z((G - 2,))), (G - 2,))
    add("cell-h-fortran-wrong", V, "h", _cell_call(h=_f((H, B))), (H, B))
    add("cell-c-negstride-wrong", V, "c", _cell_call(c=_neg((B, H + 1))), (B, H + 1))
    add("cell-w_ih-fortran-wrong", V, "w_ih", _cell_call(w_ih=_f((G, I - 1))), (G, I - 1))
    add("cell-x_t-None", TE, "x_t", _cell_call(x_t=None))
    add("cell-h-None", TE, "h", _cell_call(h=None))
    add("cell-c-None", TE, "c", _cell_call(c=None))
    add("cell-w_ih-None", TE, "w_ih", _cell_call(w_ih=None))
    add("cell-w_hh-None", TE, "w_hh", _cell_call(w_hh=None))
    add("cell-x_t-list", TE, "x_t", _cell_call(x_t=_z((B, I)).tolist()))
    add("cell-h-list", TE, "h", _cell_call(h=_z((B, H)).tolist()))
    add("cell-c-scalar", TE, "c", _cell_call(c=0.0))
    add("cell-bias-list", TE, "bias", _cell_call(bias=[0.0] * G))
    for label, dt in _odd_dtypes():
        add(f"cell-x_t-{label}", TE, "x_t", _cell_call(x_t=np.zeros((B, I), dtype=dt)))
    add("cell-h-float16", TE, "h", _cell_call(h=np.zeros((B, H), np.float16)))
    add("cell-c-complex", TE, "c", _cell_call(c=np.zeros((B, H), complex)))
    add("cell-w_hh-object", TE, "w_hh", _cell_call(w_hh=np.zeros((G, H), object)))
    add("cell-bias-bool", TE, "bias", _cell_call(bias=np.zeros(G, bool)))
    add("cell-c-bigendian", TE, "c", _cell_call(c=np.zeros((B, H), ">f8")))
    add("cell-mixed-h32", TE, "h", _cell_call(h=_z((B, H), np.float32)))
    add("cell-mixed-c32", TE, "c", _cell_call(c=_z((B, H), np.float32)))
    add("cell-mixed-x_t32", TE, "w_ih", _cell_call(x_t=_z((B, I), np.float32)))
    add("cell-mixed-bias32", TE, "bias", _cell_call(bias=_z((G,), np.float32)))


def _layer_call(dtype=np.float64, **override):
    """lc.LSTM(I, H) called on x and hx = (h0, c0), h0 and c0 of shape (1, B, H)."""
    def call():
        a = _valid(dtype)
        kw = {"x": a["x"], "h0": a["h0"][None], "c0": a["c0"][None]}
        kw.update(override)
        return lc.LSTM(I, H, dtype=dtype, seed=0)(kw["x"], (kw["h0"], kw["c0"]))

    return call


def _layer_bwd_call(dtype=np.float64, **override):
    """lstm.backward(dy, dh_n, dc_n) after a training forward of lc.LSTM(I, H)."""
    def call():
        a = _valid(dtype, seed=1)
        lstm = lc.LSTM(I, H, dtype=dtype, seed=0)
        lstm(a["x"])
        kw = {"dy": a["dy"], "dh_n": a["dh_n"][None], "dc_n": a["dc_n"][None]}
        kw.update(override)
        return lstm.backward(kw["dy"], kw["dh_n"], kw["dc_n"])

    return call


def _step_call(cell):
    """The call factory of gru_cell or rnn_cell (prefixes "grucell", "rnncell"): x_t (B, I), h
    (B, H), the weights and the cell's biases, all non-zero."""
    def factory(dtype=np.float64, **override):
        def call():
            a = _one_state_args(cell, dtype)
            kw = {"x_t": a["x"][0], "h": a["h0"], "w_ih": a["w_ih"], "w_hh": a["w_hh"],
                  **{name: a[name] for name in CELLS[cell].biases}}
            kw.update(override)
            return getattr(lc, f"{cell}_cell")(**kw)

        return call

    return factory


@dataclass(frozen=True)
class Api:
    """One entry point, described so that the generated rows can cover every argument."""

    prefix: str  # case ids start with it
    call: Callable[..., Callable[[], Any]]  # call(dtype, **override): a deferred call
    shapes: dict  # argument -> its valid shape in this file's sizes
    dtype_owner: str  # the argument that fixes T/B/I and the dtype; its sizes are free
    # (argument, axis) pairs that define a size, like H from w_ih's rows for a one-gate cell
    # (any row count is valid; a mismatch is then reported on w_hh): not made wrong alone
    defines: tuple = ()


APIS = [
    Api("fwd", _fwd_call, {"x": (T, B, I), "w_ih": (G, I), "w_hh": (G, H), "bias": (G,),
                           "h0": (B, H), "c0": (B, H)}, "x"),
    Api("bwd", _bwd_call, {"dy": (T, B, H), "dh_n": (B, H), "dc_n": (B, H)}, "cache"),
    Api("cell", _cell_call, {"x_t": (B, I), "h": (B, H), "c": (B, H), "w_ih": (G, I),
                             "w_hh": (G, H), "bias": (G,)}, "x_t"),
    # the layer: x (T, B, I) or unbatched (T, I), hx = (h0, c0) of (layers*directions, B, H)
    Api("layer", _layer_call, {"x": (T, B, I), "h0": (1, B, H), "c0": (1, B, H)}, "x"),
    Api("layerbwd", _layer_bwd_call, {"dy": (T, B, H), "dh_n": (1, B, H), "dc_n": (1, B, H)},
        "cache"),
    Api("grucell", _step_call("gru"), {"x_t": (B, I), "h": (B, H), "w_ih": (3 * H, I),
                                       "w_hh": (3 * H, H), "b_ih": (3 * H,), "b_hh": (3 * H,)},
        "x_t"),
    Api("rnncell", _step_call("rnn"), {"x_t": (B, I), "h": (B, H), "w_ih": (H, I),
                                       "w_hh": (H, H), "bias": (H,)}, "x_t",
        defines=(("w_ih", 0),)),
]


def _broadcast(a):
    """A read-only view with a zero stride on the first axis (np.broadcast_to)."""
    return np.broadcast_to(a[:1], a.shape)


# Layouts a wrong-shaped argument is given in; each must still be rejected by its shape.
WRONG_SHAPE_LAYOUTS = {
    "fortran": _fortran, "negative": _negative, "misaligned": _misaligned,
    "readonly": _readonly, "broadcast": _broadcast,
}


def _generated_cases(add):
    """For every argument of every entry point: each ndim off by one, each size off by one or
    zero, the dtypes bool, float16, int64 and '>f4' (the last in a float32 call, so byte order
    is the only fault), and a wrong size or dtype in each unusual layout."""
    V, TE = ValueError, TypeError
    for api in APIS:
        for arg, shape in api.shapes.items():
            p = f"{api.prefix}-{arg}"
            for s in (shape[:-1], shape + (1,)):
                add(f"{p}-ndim{len(s)}", V, arg, api.call(np.float64, **{arg: _z(s)}), s)
            wrong_shapes = []
            if arg != api.dtype_owner:
                for axis, n in enumerate(shape):
                    for size, label in ((n + 1, "+1"), (0, "=0")):
                        # 0 rows of w_ih mean H = 0, which is reported on w_hh: skipped
                        if (arg, axis) in api.defines:
                            continue
                        if not (arg == "w_ih" and axis == 0 and size == 0):
                            s = shape[:axis] + (size,) + shape[axis + 1:]
                            wrong_shapes.append((f"axis{axis}{label}", s))
            else:  # the owner's sizes define the call: only its ndim can be wrong
                wrong_shapes.append(("extra-axis", shape + (2,)))
            for label, s in wrong_shapes:
                add(f"{p}-{label}", V, arg, api.call(np.float64, **{arg: _z(s)}), s)
            for label, dt in (("bool", np.bool_), ("float16", np.float16), ("int64", np.int64)):
                add(f"{p}-{label}", TE, arg, api.call(np.float64, **{arg: np.zeros(shape, dt)}))
            add(f"{p}-bigendian_f4", TE, arg,
                api.call(np.float32, **{arg: np.zeros(shape, ">f4")}))
            label, s = wrong_shapes[0]
            for layout, make in WRONG_SHAPE_LAYOUTS.items():
                bad = make(np.arange(np.prod(s), dtype=np.float64).reshape(s) * 0.01)
                add(f"{p}-{layout}-{label}", V, arg, api.call(np.float64, **{arg: bad}), s)
            add(f"{p}-misaligned-bigendian_f4", TE, arg, api.call(
                np.float32, **{arg: _misaligned(np.zeros(shape, ">f4"))}))
            add(f"{p}-readonly-bool", TE, arg,
                api.call(np.float64, **{arg: _readonly(np.zeros(shape, bool))}))


INT_MAX = 2**31 - 1


def _huge(shape, dtype=np.float64):
    """An array of any size that uses the memory of one element: every stride is 0."""
    one = np.zeros(1, dtype=dtype)
    return np.lib.stride_tricks.as_strided(one, shape=shape, strides=(0,) * len(shape))


def _huge_cases(add):
    """Sizes beyond what the BLAS's 32-bit ints or the machine can hold.  The arrays cost no
    memory (zero strides); the call must fail before allocating (Case.huge), with the error
    naming the argument.  Products that overflow int64 cannot even be built as arrays (numpy
    refuses), so the largest products reachable are those of arrays with a zero-length axis:
    x of shape (2^30, 2^29, 0) has T*B = 2^59 and an output of 2^59*H elements."""
    V, M = ValueError, MemoryError
    big_b = 2**15 + 1  # T*B = 2^16 * (2^15 + 1) > INT_MAX with T = 2^16
    add("fwd-x-TB-over-INT_MAX", V, "x", _fwd_call(
        x=_huge((2**16, big_b, I)), h0=_huge((big_b, H)), c0=_huge((big_b, H))), huge=True)
    add("fwd-x-TB-over-INT_MAX-no-state", V, "x", _fwd_call(
        x=_huge((2**16, big_b, I)), h0=None, c0=None), huge=True)
    add("fwd-x-TB-2^59-I0", V, "x", _fwd_call(
        x=_huge((2**30, 2**29, 0)), w_ih=_z((G, 0)), h0=None, c0=None), huge=True)
    big_g = 4 * (2**29 + 1)  # 4H > INT_MAX; float32, as w_hh's 2^60 float64 are too many
    for p, call in (("fwd", _fwd_call), ("cell", _cell_call)):
        add(f"{p}-w_ih-4H-over-INT_MAX", V, "w_ih", call(
            np.float32, w_ih=_huge((big_g, I), np.float32),
            w_hh=_huge((big_g, big_g // 4), np.float32), bias=None), huge=True)
    add("fwd-w_ih-I-over-INT_MAX", V, "w_ih", _fwd_call(
        x=_huge((T, B, 2**31)), w_ih=_huge((G, 2**31))), huge=True)
    add("cell-x_t-B-over-INT_MAX", V, "x_t", _cell_call(
        x_t=_huge((2**31, I)), h=_huge((2**31, H)), c=_huge((2**31, H))), huge=True)
    # Every dimension fits in an int, yet one array is larger than any machine (float32): the
    # boundary's byte budget refuses it before any copy or allocation, naming the argument.
    g = 2**31 - 4
    add("fwd-w_hh-4EiB-copy", M, "w_hh", _fwd_call(
        np.float32, x=_z((T, B, 0), np.float32), w_ih=_huge((g, 0), np.float32),
        w_hh=_huge((g, g // 4), np.float32), bias=None, h0=None, c0=None),
        huge=True)
    add("fwd-x-8TiB-state-and-output", M, "x", _fwd_call(
        np.float32, x=_huge((1, INT_MAX, 0), np.float32), w_ih=_z((4096, 0), np.float32),
        w_hh=_z((4096, 1024), np.float32), bias=None, h0=None, c0=None),
        huge=True)


# The GRU's and the RNN's forward and backward (prefixes "gru" and "rnn"): hand-written rows
# over both cells, in the same table, so the same tests run them.
def _one_state_args(cell, dtype=np.float64):
    """Valid arguments of gru_forward / rnn_forward in this file's sizes."""
    rng = np.random.default_rng(0)
    G1 = CELLS[cell].gates * H
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    args = {"x": r(T, B, I), "w_ih": r(G1, I), "w_hh": r(G1, H), "h0": r(B, H)}
    args.update({"bias": r(G1)} if cell == "rnn" else {"b_ih": r(G1), "b_hh": r(G1)})
    return args


def _one_state_forward(cell, **override):
    args = {**_one_state_args(cell), **override}
    biases = [args[name] for name in CELLS[cell].biases]
    return CELLS[cell].forward(args["x"], args["w_ih"], args["w_hh"], *biases, args["h0"],
                               lengths=args.get("lengths"))


def _one_state_backward(cell, cache="own", **override):
    if cache == "own":
        cache = _one_state_forward(cell)[2]
    kw = {"dy": np.zeros((T, B, H)), "dh_n": np.zeros((B, H)), **override}
    return CELLS[cell].backward(cache, kw["dy"], kw["dh_n"])


def _f32(a):
    return a.astype(np.float32)


# (id, exception, argument named, overrides) for forward; the same for backward.
ONE_STATE_FORWARD = [
    ("x-list", TypeError, "x", lambda c: {"x": _one_state_args(c)["x"].tolist()}),
    ("x-int", TypeError, "x", lambda c: {"x": np.ones((T, B, I), np.int64)}),
    ("x-f16", TypeError, "x", lambda c: {"x": _one_state_args(c)["x"].astype(np.float16)}),
    ("x-2d", ValueError, "x", lambda c: {"x": _one_state_args(c)["x"][0]}),
    ("w_ih-none", TypeError, "w_ih", lambda c: {"w_ih": None}),
    ("w_ih-f32", TypeError, "w_ih", lambda c: {"w_ih": _f32(_one_state_args(c)["w_ih"])}),
    ("w_ih-cols", ValueError, "w_ih", lambda c: {"w_ih": _one_state_args(c)["w_ih"][:, :-1]}),
    ("w_hh-shape", ValueError, "w_hh", lambda c: {"w_hh": _one_state_args(c)["w_hh"][:, :-1]}),
    ("w_hh-1d", ValueError, "w_hh", lambda c: {"w_hh": _one_state_args(c)["w_hh"].ravel()}),
    ("h0-shape", ValueError, "h0", lambda c: {"h0": np.zeros((B + 1, H))}),
    ("h0-f32", TypeError, "h0", lambda c: {"h0": np.zeros((B, H), np.float32)}),
    ("lengths-long", ValueError, "lengths", lambda c: {"lengths": [T + 1, 0]}),
    ("lengths-float", TypeError, "lengths", lambda c: {"lengths": [1.0, 2.0]}),
]
ONE_STATE_FORWARD_ONLY = {
    "rnn": [
        ("bias-size", ValueError, "bias", lambda c: {"bias": np.zeros(H + 1)}),
        ("bias-list", TypeError, "bias", lambda c: {"bias": [0.0] * H}),
    ],
    "gru": [
        ("w_ih-rows", ValueError, "w_ih", lambda c: {"w_ih": np.zeros((3 * H + 1, I))}),
        ("b_ih-size", ValueError, "b_ih", lambda c: {"b_ih": np.zeros(4 * H)}),
        ("b_ih-2d", ValueError, "b_ih", lambda c: {"b_ih": np.zeros((1, 3 * H))}),
        ("b_hh-f32", TypeError, "b_hh", lambda c: {"b_hh": np.zeros(3 * H, np.float32)}),
        ("b_hh-list", TypeError, "b_hh", lambda c: {"b_hh": [0.0] * (3 * H)}),
    ],
}
ONE_STATE_BACKWARD = [
    ("cache-none", TypeError, "cache", lambda c: {"cache": None}),
    ("cache-inference", TypeError, "cache",
     lambda c: {"cache": CELLS[c].forward(*list(_one_state_args(c).values())[:3],
                                          training=False)[2]}),
    ("cache-other-cell", TypeError, "cache",
     lambda c: {"cache": _one_state_forward("gru" if c == "rnn" else "rnn")[2]}),
    ("cache-lstm", TypeError, "cache", lambda c: {"cache": lc.lstm_forward(
        np.zeros((T, B, I)), np.zeros((4 * H, I)), np.zeros((4 * H, H)))[3]}),
    ("cache-new", TypeError, "cache",
     lambda c: {"cache": CELLS[c].cache.__new__(CELLS[c].cache)}),
    ("dy-shape", ValueError, "dy", lambda c: {"dy": np.zeros((T + 1, B, H))}),
    ("dy-f32", TypeError, "dy", lambda c: {"dy": np.zeros((T, B, H), np.float32)}),
    ("dy-list", TypeError, "dy", lambda c: {"dy": np.zeros((T, B, H)).tolist()}),
    ("dh_n-shape", ValueError, "dh_n", lambda c: {"dh_n": np.zeros((B, H + 1))}),
    ("dh_n-3d", ValueError, "dh_n", lambda c: {"dh_n": np.zeros((1, B, H))}),
]


def _one_state_cases(add):
    for cell in ("rnn", "gru"):
        for case_id, exc, name, make in ONE_STATE_FORWARD + ONE_STATE_FORWARD_ONLY[cell]:
            call = lambda cell=cell, make=make: _one_state_forward(cell, **make(cell))  # noqa
            add(f"{cell}-fwd-{case_id}", exc, name, call)
        for case_id, exc, name, make in ONE_STATE_BACKWARD:
            call = lambda cell=cell, make=make: _one_state_backward(cell, **make(cell))  # noqa
            add(f"{cell}-bwd-{case_id}", exc, name, call)
    # the step functions' own rows; the generated ones cover every argument's shape and dtype
    for cell in ("rnn", "gru"):
        step = _step_call(cell)
        add(f"{cell}cell-x_t-None", TypeError, "x_t", step(x_t=None))
        add(f"{cell}cell-h-None", TypeError, "h", step(h=None))
        add(f"{cell}cell-h-list", TypeError, "h", step(h=np.zeros((B, H)).tolist()))
        add(f"{cell}cell-mixed-x_t32", TypeError, "w_ih",
            step(x_t=np.zeros((B, I), np.float32)))
        add(f"{cell}cell-x_t-B-vs-h", ValueError, "h", step(x_t=np.zeros((B + 1, I))))
    add("grucell-w_ih-rows-not-div3", ValueError, "w_ih", _step_call("gru")(
        w_ih=np.zeros((3 * H + 1, I))))
    add("rnncell-nonlinearity-relu", ValueError, "nonlinearity",
        _step_call("rnn")(nonlinearity="relu"))



def build_cases():
    """Every bad-input case; building it does not call lstm_core (calls are deferred).
    A generated row whose id a hand-written row already has is left out."""
    cases = []

    def add(id_, exc, name, call, shown=None, **flags):
        cases.append(Case(id_, exc, name, call, shown, **flags))

    def add_new(id_, *args, **flags):
        if id_ not in hand_written:
            add(id_, *args, **flags)

    _hand_written_cases(add)
    hand_written = {c.id for c in cases}
    _generated_cases(add_new)
    _huge_cases(add)
    _one_state_cases(add)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CASES = build_cases()


def run_case(case):
    """Run one case; return (name of the exception raised or 'nothing', its message)."""
    try:
        case.call()
    except Exception as e:  # noqa: BLE001 - we report whatever was raised
        return type(e).__name__, str(e)
    return "nothing", ""


def run_table():
    """Every case, as JSON-able dicts; used by the subprocess test."""
    out = []
    for case in build_cases():
        got, msg = run_case(case)
        out.append({
            "id": case.id,
            "expected": case.exc.__name__,
            "got": got,
            "named": re.search(name_pattern(case.name), msg) is not None,
            "xfail": case.xfail is not None,
        })
    return out


def test_table_is_large_and_covers_every_entry_point():
    assert len(CASES) >= 300
    prefixes = {c.id.split("-")[0] for c in CASES}
    assert prefixes == {api.prefix for api in APIS} | {"gru", "rnn"} == {
        "fwd", "bwd", "cell", "layer", "layerbwd", "gru", "rnn", "grucell", "rnncell"}
    assert sum(c.id.startswith(("gru-", "rnn-")) for c in CASES) >= 50
    assert {c.exc for c in CASES} == {TypeError, ValueError, MemoryError}
    # every argument of every entry point got each generated kind of row
    for api in APIS:
        for arg in api.shapes:
            for kind in ("bool", "bigendian_f4", "misaligned-bigendian_f4", "readonly-bool"):
                assert f"{api.prefix}-{arg}-{kind}" in {c.id for c in CASES}


# Allocations a rejected huge call may make before raising: the small valid arguments that
# the table's call factories build (a few hundred bytes each), nothing of the huge sizes.
HUGE_CALL_ALLOCATION_LIMIT = 1 << 20


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_raises(case):
    if case.huge:
        tracemalloc.start()
    try:
        with pytest.raises(case.exc, match=name_pattern(case.name)) as info:
            case.call()
        peak = tracemalloc.get_traced_memory()[1]  # (0, 0) when not tracing
    finally:
        if case.huge:
            tracemalloc.stop()
    # The exact type, not a subclass that happens to match (e.g. a numpy AxisError).
    assert type(info.value) is case.exc
    if case.shown is not None:
        assert str(case.shown) in str(info.value), (
            f"message should show the shape {case.shown}: {info.value}"
        )
    assert peak <= HUGE_CALL_ALLOCATION_LIMIT, f"{peak} bytes allocated before the error"


_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(sys.argv[1])))  # tests/: lstm_problems
    spec = importlib.util.spec_from_file_location("_bad_input_table", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.run_table()
    sys.stdout.write("RESULTS " + json.dumps(results) + "\\n")
    """
)


def test_whole_table_in_fresh_process_does_not_crash(tmp_path):
    proc = _run_python(_SUBPROCESS_SCRIPT, __file__, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, (
        f"subprocess died with code {proc.returncode} (negative = signal)\n"
        f"stdout tail: {proc.stdout[-2000:]}\nstderr tail: {proc.stderr[-2000:]}"
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert len(line) == 1, proc.stdout[-2000:]
    results = json.loads(line[0][len("RESULTS "):])
    assert [r["id"] for r in results] == [c.id for c in CASES]
    # known gaps (xfail rows) may miss the name, never the exception class
    wrong = [r for r in results
             if r["got"] != r["expected"] or not (r["named"] or r["xfail"])]
    assert not wrong, wrong


# A hand-made cache (LSTMCache, GRUCache, RNNCache) would have None in its typed array slots,
# and reading them without the GIL-free checks of a debug build would crash: the classes are
# final, their constructors raise, and the backwards reject an instance made through __new__.
# Run in a child process, since a regression here is a segfault.
_EMPTY_CACHE_SCRIPT = textwrap.dedent(
    """
    import sys
    import lstm_core as lc

    how, cell = sys.argv[1], sys.argv[2]
    cls = getattr(lc, cell.upper() + "Cache")
    backward = getattr(lc, cell + "_backward")

    def subclass():
        class Sub(cls):
            pass
        return Sub()

    make = {
        "Cache()": lambda: cls(),
        "subclass()": subclass,
        "__new__": lambda: cls.__new__(cls),  # skips __init__
    }[how]
    try:
        backward(make())
    except TypeError as e:
        print("TypeError")
    else:
        print("no error")
    """
)


@pytest.mark.parametrize("how", ["Cache()", "subclass()", "__new__"])
def test_backward_rejects_unfilled_cache_without_crashing(how, cell, tmp_path):
    """A cache not made by the forward cannot be built, subclassed or used (no segfault)."""
    proc = _run_python(_EMPTY_CACHE_SCRIPT, how, cell.name, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, f"exit code {proc.returncode}: {proc.stderr[-1000:]}"
    assert proc.stdout.strip() == "TypeError"


def test_unfilled_cache_error_names_cache(cell):
    with pytest.raises(TypeError, match=r"\bcache\b"):
        cell.backward(cell.cache.__new__(cell.cache))
    with pytest.raises(TypeError, match=f"created by {cell.name}_forward"):
        cell.cache()


def test_cache_base_class_is_neither_built_nor_accepted(cell):
    """The caches' shared base holds no activations: it cannot be built, and a bare instance
    (made without __init__) is refused by every backward."""
    from lstm_core._boundary import SequenceCache

    with pytest.raises(TypeError, match="not instantiated"):
        SequenceCache()
    with pytest.raises(TypeError, match=r"\bcache\b"):
        cell.backward(SequenceCache.__new__(SequenceCache))


# ----------------------------------------------------------------------------- valid layouts


FWD_ARGS = ("x", "w_ih", "w_hh", "bias", "h0", "c0")
BWD_ARGS = ("dy", "dh_n", "dc_n")
CELL_ARGS = ("x_t", "h", "c", "w_ih", "w_hh", "bias")


def _tol(dtype):
    return {"rtol": 1e-6, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}


def _assert_same(got, want, dtype):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **_tol(dtype))


def _transformed(a, names, which, layout):
    """A copy of dict a where the arguments in `which` get the layout."""
    out = dict(a)
    for n in names:
        if n in which:
            out[n] = LAYOUTS[layout](a[n])
    return out


def _fwd(a, training=True):
    return lc.lstm_forward(*(a[k] for k in FWD_ARGS), training=training)


def _all_or_each(names):
    return ["all"] + list(names)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("which", _all_or_each(FWD_ARGS))
def test_forward_and_backward_accept_noncontiguous_forward_inputs(which, layout, dtype):
    a = _valid(dtype, seed=3)
    odd = _transformed(a, FWD_ARGS, FWD_ARGS if which == "all" else (which,), layout)
    y, h_n, c_n, cache = _fwd(a)
    y2, h_n2, c_n2, cache2 = _fwd(odd)
    _assert_same((y2, h_n2, c_n2), (y, h_n, c_n), dtype)
    # inference mode too
    _assert_same(_fwd(odd, training=False)[:3], (y, h_n, c_n), dtype)
    # and the cache built from non-contiguous inputs backpropagates the same
    g = lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
    g2 = lc.lstm_backward(cache2, a["dy"], a["dh_n"], a["dc_n"])
    _assert_same(g2, g, dtype)
    # the non-contiguous inputs still hold their values (nothing was written through them)
    for k in FWD_ARGS:
        np.testing.assert_array_equal(odd[k], a[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("which", _all_or_each(BWD_ARGS))
def test_backward_accepts_noncontiguous_gradients(which, layout, dtype):
    a = _valid(dtype, seed=4)
    cache = _fwd(a)[3]
    odd = _transformed(a, BWD_ARGS, BWD_ARGS if which == "all" else (which,), layout)
    g = lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
    g2 = lc.lstm_backward(cache, odd["dy"], odd["dh_n"], odd["dc_n"])
    _assert_same(g2, g, dtype)
    assert all(v is not None for v in g2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("which", _all_or_each(CELL_ARGS))
def test_cell_accepts_noncontiguous_inputs(which, layout, dtype):
    a = _valid(dtype, seed=5)
    odd = _transformed(a, CELL_ARGS, CELL_ARGS if which == "all" else (which,), layout)
    want = lc.lstm_cell(*(a[k] for k in CELL_ARGS))
    got = lc.lstm_cell(*(odd[k] for k in CELL_ARGS))
    _assert_same(got, want, dtype)


def test_noncontiguous_results_match_the_reference():
    """Not only self-consistent: the odd-layout call agrees with the numpy oracle."""
    a = _valid(np.float64, seed=6)
    odd = _transformed(a, FWD_ARGS, FWD_ARGS, "misaligned")
    odd = _transformed(odd, FWD_ARGS, ("x", "w_hh", "c0"), "negative")
    y, h_n, c_n, cache = _fwd(odd)
    ry, rh, rc, rcache = reference.lstm_forward(*(a[k] for k in FWD_ARGS))
    _assert_same((y, h_n, c_n), (ry, rh, rc), np.float64)
    dodd = _transformed(a, BWD_ARGS, BWD_ARGS, "fortran")
    dodd = _transformed(dodd, BWD_ARGS, ("dy",), "strided")
    g = lc.lstm_backward(cache, dodd["dy"], dodd["dh_n"], dodd["dc_n"])
    rg = reference.lstm_backward(rcache, a["dy"], a["dh_n"], a["dc_n"])
    for got, want in zip(g, rg):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    codd = _transformed(a, CELL_ARGS, CELL_ARGS, "strided")
    h1, c1 = lc.lstm_cell(*(codd[k] for k in CELL_ARGS))
    rh1, rc1 = reference.lstm_cell(*(a[k] for k in CELL_ARGS))
    np.testing.assert_allclose(h1, rh1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c1, rc1, rtol=1e-9, atol=1e-12)


def test_broadcast_zero_stride_states_and_bias():
    """np.broadcast_to gives read-only arrays with zero strides: valid, copied, correct."""
    a = _valid(np.float64, seed=7)
    odd = dict(a)
    odd["h0"] = np.broadcast_to(a["h0"][0], (B, H))
    odd["c0"] = np.broadcast_to(a["c0"][0], (B, H))
    odd["x"] = np.broadcast_to(a["x"][:, :1, :], (T, B, I))
    assert odd["h0"].strides[0] == 0 and not odd["h0"].flags.writeable
    dense = {k: np.ascontiguousarray(v) for k, v in odd.items()}
    _assert_same(_fwd(odd)[:3], _fwd(dense)[:3], np.float64)
    g = lc.lstm_backward(_fwd(odd)[3], np.broadcast_to(a["dy"][:1], (T, B, H)))
    g_dense = lc.lstm_backward(_fwd(dense)[3], np.ascontiguousarray(
        np.broadcast_to(a["dy"][:1], (T, B, H))))
    _assert_same(g, g_dense, np.float64)
    h1, c1 = lc.lstm_cell(odd["x"][0], odd["h0"], odd["c0"], a["w_ih"], a["w_hh"], a["bias"])
    rh1, rc1 = lc.lstm_cell(dense["x"][0], dense["h0"], dense["c0"], a["w_ih"], a["w_hh"],
                            a["bias"])
    _assert_same((h1, c1), (rh1, rc1), np.float64)


def _cell_args(cell):
    """Valid float64 arguments of <cell>_forward by name (the GRU's and RNN's as in the table,
    the LSTM's with c0 drawn after them)."""
    if cell.name != "lstm":
        return _one_state_args(cell.name)
    a = _valid()
    return {k: a[k] for k in FWD_ARGS}


def _cell_forward(cell, **args):
    return cell.forward(*(args[name] for name in ("x", "w_ih", "w_hh", *cell.biases,
                                                  *cell.states)))


def test_noncontiguous_inputs_give_the_same_results(cell):
    """Fortran-ordered and strided copies of every argument at once: the same outputs, bit for
    bit, and the inputs unchanged."""
    args = _cell_args(cell)
    fortran = {k: np.asfortranarray(v) for k, v in args.items()}
    strided = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in args.items()}
    *expected, _ = _cell_forward(cell, **args)
    for variant in (fortran, strided):
        *got, _ = _cell_forward(cell, **variant)
        for a, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, e)
    for name, value in _cell_args(cell).items():  # inputs are never modified
        np.testing.assert_array_equal(fortran[name], value, err_msg=name)


def test_outputs_larger_than_memory_are_refused_before_allocating(cell):
    """x of shape (1, 2^31 - 1, 0) costs nothing (zero strides) but its outputs would take
    terabytes: MemoryError naming x, before any allocation."""
    one = np.zeros(1, np.float32)
    x = np.lib.stride_tricks.as_strided(one, shape=(1, 2**31 - 1, 0), strides=(0, 0, 0))
    w_ih = np.zeros((cell.gates * 1024, 0), np.float32)
    w_hh = np.zeros((cell.gates * 1024, 1024), np.float32)
    with pytest.raises(MemoryError, match=r"^x of shape \(1, 2147483647, 0\) needs"):
        cell.forward(x, w_ih, w_hh)

