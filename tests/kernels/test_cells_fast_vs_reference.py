"""The compiled RNN and GRU against their float64 numpy twins, over a grid of shapes, both
dtypes, optional biases and states, gradient sources, inference mode and variable lengths.
Tolerances: tests/lstm_problems.py (float32 5e-6, float64 1e-12, relative to max magnitude).
"""

import numpy as np
import pytest

import lstm_core as lc
from cell_problems import CELLS, CellProblem
from lstm_problems import assert_close


def assert_same_results(y2, y, h_n2, h_n, dtype):
    """Inference against training mode: the same bits in float64; in float32 within
    tolerance, as some BLAS kernels (OpenBLAS's for AVX2 CPUs) round a row of a product
    differently with the number of rows in the call, and inference chunks the input GEMM."""
    for name, a, b in (("y", y2, y), ("h_n", h_n2, h_n)):
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert_close(a, b, name)

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
GRID = [(T, B, H) for T in (0, 1, 2, 7, 33) for B in (0, 1, 3, 16) for H in (1, 5, 64)]


def check(p, dtype, dy, dh_n, **kw):
    """Forward outputs and every gradient of the fast path against the twin."""
    y, h_n, cache = p.forward(dtype, **kw)
    ry, rh_n, rcache = p.forward(dtype, twin=True, **kw)
    for name, a, e in (("y", y, ry), ("h_n", h_n, rh_n)):
        assert a.dtype == dtype, name
        assert_close(a, e, name)
    grads = p.backward(cache, dy, dh_n, dtype)
    expected = p.backward(rcache, dy, dh_n, twin=True)
    assert type(grads) is type(expected)
    for name, a, e in zip(grads._fields, grads, expected):
        if e is None:
            assert a is None, name
        else:
            assert a.dtype == dtype, name
            assert_close(a, e, name)
    return y, h_n, cache


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("T,B,H", GRID, ids=[f"T{T}-B{B}-H{H}" for T, B, H in GRID])
def test_grid_matches_twin(T, B, H, dtype, cell):
    p = CellProblem(cell, T, B, H + 3, H, seed=T * 1000 + B * 10 + H)  # I != H
    check(p, dtype, p.dy, p.dh_n)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("source", ["dy", "dh_n", "both", "none"])
def test_gradient_sources(source, dtype, cell):
    """Gradients from dy only, from dh_n only, from both, from nothing (all zeros)."""
    p = CellProblem(cell, 9, 4, 6, 5, seed=7)
    dy = p.dy if source in ("dy", "both") else None
    dh_n = p.dh_n if source in ("dh_n", "both") else None
    check(p, dtype, dy, dh_n)
    if source == "none":
        _, _, cache = p.forward(dtype)
        assert all(not np.any(g) for g in p.backward(cache, None, None, dtype))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bias,state", [(False, True), (True, False), (False, False)])
def test_optional_biases_and_state(bias, state, dtype, cell):
    p = CellProblem(cell, 7, 3, 9, 5, seed=3)
    check(p, dtype, p.dy, p.dh_n, bias=bias, state=state)


def test_gru_takes_each_bias_alone():
    """b_ih without b_hh and the reverse: each bias has its own place (b_hn inside r * .)."""
    p = CellProblem("gru", 6, 3, 4, 5, seed=4)
    x, w_ih, w_hh, b_ih, b_hh, h0 = p.args(np.float64)
    for bi, bh in ((b_ih, None), (None, b_hh)):
        y, h_n, cache = lc.gru_forward(x, w_ih, w_hh, bi, bh, h0)
        ry, rh_n, rcache = lc.reference.gru_forward(x, w_ih, w_hh, bi, bh, h0)
        assert_close(y, ry, "y")
        g, rg = lc.gru_backward(cache, p.dy), lc.reference.gru_backward(rcache, p.dy)
        assert (g.db_ih is None) == (bi is None) and (g.db_hh is None) == (bh is None)
        for name, a, e in zip(g._fields, g, rg):
            if e is not None:
                assert_close(a, e, name)


LENGTHS = {
    "unsorted": (9, 5, 6, 4, [3, 9, 0, 7, 1]),
    "all-empty": (4, 3, 2, 3, [0, 0, 0]),
    "wide": (33, 16, 13, 64, list(range(33, 1, -2))),
    "no-steps": (0, 3, 2, 3, [0, 0, 0]),
}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", LENGTHS)
def test_lengths_match_twin(case, dtype, cell):
    T, B, I, H, lengths = LENGTHS[case]
    p = CellProblem(cell, T, B, I, H, seed=len(case))
    lengths = np.array(lengths)
    y, h_n, _ = check(p, dtype, p.dy, p.dh_n, lengths=lengths)
    for b, n in enumerate(lengths):
        assert not y[n:, b].any()  # exact zeros past each length
    y2, h_n2, cache2 = p.forward(dtype, lengths=lengths, training=False)
    assert_same_results(y2, y, h_n2, h_n, dtype)
    assert cache2 is None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("T,B,I,H", [(0, 3, 4, 5), (33, 16, 13, 64), (300, 2, 3, 4)])
def test_inference_mode_equals_training_mode(T, B, I, H, dtype, cell):
    """training=False keeps nothing and chunks the input GEMM, yet gives the same results."""
    p = CellProblem(cell, T, B, I, H, seed=5)
    y, h_n, cache = p.forward(dtype)
    y2, h_n2, cache2 = p.forward(dtype, training=False)
    assert cache is not None and cache2 is None
    assert_same_results(y2, y, h_n2, h_n, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_sequence_returns_initial_state(cell):
    p = CellProblem(cell, 0, 3, 4, 5)
    y, h_n, cache = p.forward(np.float32)
    assert y.shape == (0, 3, 5)
    np.testing.assert_array_equal(h_n, p.h0.astype(np.float32))
    g = p.backward(cache, None, p.dh_n, np.float32)
    assert g.dx.shape == (0, 3, 4)
    for name, value in g._asdict().items():
        if name not in ("dx", "dh0"):
            np.testing.assert_array_equal(value, 0.0)
    np.testing.assert_array_equal(g.dh0, p.dh_n.astype(np.float32))


@pytest.mark.parametrize("cell", CELLS)
def test_backward_twice_and_cache_read_only(cell):
    p = CellProblem(cell, 7, 3, 9, 5)
    _, _, cache = p.forward(np.float64)
    first = p.backward(cache, p.dy, p.dh_n)
    second = p.backward(cache, p.dy, p.dh_n)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    names = ("h",) if cell == "rnn" else ("gates", "hn", "h")
    for name in names:
        with pytest.raises(ValueError, match="read-only"):
            getattr(cache, name)[...] = 0
    assert cache.h.shape == (8, 3, 5)
    assert repr(cache).startswith(f"<{cell.upper()}Cache T=7 B=3 I=9 H=5")


def test_gradient_namedtuples():
    assert lc.RNNGrads._fields == ("dx", "dw_ih", "dw_hh", "dbias", "dh0")
    assert lc.GRUGrads._fields == ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0")
