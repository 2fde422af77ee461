"""The compiled path against the float64 reference, over a grid of shapes and both dtypes."""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _lstm
from lstm_core import reference as ref

from lstm_problems import Problem, assert_close

DTYPES = [np.float32, np.float64]
GRID = [
    (T, B, H)
    for T in (0, 1, 2, 7, 33)
    for B in (0, 1, 3, 16)
    for H in (1, 5, 64)
]


def input_size(H):
    """An I different from H and odd-ish: 4, 8, 67."""
    return H + 3


def check_forward(p, dtype, bias=True, state=True, training=True):
    out = lc.lstm_forward(*p.args(dtype, bias, state), training=training)
    expected = ref.lstm_forward(*p.args(np.float64, bias, state))
    for name, a, e in zip(["y", "h_n", "c_n"], out[:3], expected[:3]):
        assert a.dtype == dtype, name
        assert_close(a, e, name)
    return out[3], expected[3]


def check_backward(cache, ref_cache, dy, dh_n, dc_n, dtype):
    cast = lambda a: None if a is None else np.asarray(a, dtype=dtype)  # noqa: E731
    grads = lc.lstm_backward(cache, cast(dy), cast(dh_n), cast(dc_n))
    expected = ref.lstm_backward(ref_cache, dy, dh_n, dc_n)
    assert isinstance(grads, lc.LSTMGrads)
    for name, a, e in zip(grads._fields, grads, expected):
        if e is None:
            assert a is None, name
        else:
            assert a.dtype == dtype, name
            assert_close(a, e, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("T,B,H", GRID, ids=[f"T{T}-B{B}-H{H}" for T, B, H in GRID])
def test_forward_and_backward_match_reference(T, B, H, dtype):
    p = Problem(T, B, input_size(H), H, seed=T * 1000 + B * 10 + H)
    cache, ref_cache = check_forward(p, dtype)
    check_backward(cache, ref_cache, p.dy, p.dh_n, p.dc_n, dtype)


SHAPES = [(1, 1, 2, 1), (7, 3, 9, 5), (33, 16, 13, 64)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("source", ["dy", "state", "both", "none"])
@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_gradient_sources(T, B, I, H, source, dtype):
    """Gradients from dy only, from dh_n/dc_n only, from both, or from nothing (zeros)."""
    p = Problem(T, B, I, H, seed=7)
    cache, ref_cache = check_forward(p, dtype)
    dy = p.dy if source in ("dy", "both") else None
    dh_n, dc_n = (p.dh_n, p.dc_n) if source in ("state", "both") else (None, None)
    check_backward(cache, ref_cache, dy, dh_n, dc_n, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bias,state", [(False, True), (True, False), (False, False)])
def test_optional_bias_and_state(bias, state, dtype):
    p = Problem(7, 3, 9, 5, seed=3)
    cache, ref_cache = check_forward(p, dtype, bias=bias, state=state)
    check_backward(cache, ref_cache, p.dy, p.dh_n, p.dc_n, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("T,B,I,H", [(0, 3, 4, 5), (33, 16, 13, 64), (300, 2, 3, 4)])
def test_inference_mode_equals_training_mode(T, B, I, H, dtype):
    """training=False keeps nothing and chunks the input GEMM, yet gives the same results.

    Not always the same bits: some BLAS kernels (OpenBLAS's for AVX2 CPUs, in float32) round
    a row of a product differently depending on how many rows the call has, and inference
    projects the input a chunk of steps at a time.  So: equal within the dtype's tolerance
    everywhere (1-3 ulps measured on AVX2), and bit for bit in float64."""
    args = Problem(T, B, I, H, seed=5).args(dtype)
    y, h_n, c_n, cache = lc.lstm_forward(*args, training=True)
    y2, h_n2, c_n2, cache2 = lc.lstm_forward(*args, training=False)
    assert cache is not None and cache2 is None
    for name, a, b in (("y", y2, y), ("h_n", h_n2, h_n), ("c_n", c_n2, c_n)):
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert_close(a, b, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
# B = 8 and 16 with small weights: the projection merged with the recurrent product
# (_lstm.pyx, _merged_steps); (16, 200, 256): weights too large for that, a GEMM.
@pytest.mark.parametrize("B,I,H", [(1, 128, 128), (3, 9, 5), (0, 2, 3), (16, 1, 64),
                                   (8, 33, 40), (16, 200, 256)])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_equals_one_step_of_forward(B, I, H, bias, dtype):
    x, w_ih, w_hh, b, h0, c0 = Problem(1, B, I, H, seed=11).args(dtype, bias=bias)
    y, h_n, c_n, _ = lc.lstm_forward(x, w_ih, w_hh, b, h0, c0, training=False)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    np.testing.assert_array_equal(h1, y[0])
    np.testing.assert_array_equal(c1, c_n)
    r_h1, r_c1 = ref.lstm_cell(*(np.float64(a) if a is not None else None
                                 for a in (x[0], h0, c0, w_ih, w_hh, b)))
    assert_close(h1, r_h1, "h1")
    assert_close(c1, r_c1, "c1")


def test_empty_sequence_returns_initial_state():
    x, w_ih, w_hh, b, h0, c0 = Problem(0, 3, 4, 5).args(np.float32)
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, b, h0, c0)
    assert y.shape == (0, 3, 5)
    np.testing.assert_array_equal(h_n, h0)
    np.testing.assert_array_equal(c_n, c0)
    assert h_n is not h0 and c_n is not c0
    dh_n, dc_n = np.ones_like(h0), np.full_like(c0, 2.0)
    g = lc.lstm_backward(cache, None, dh_n, dc_n)
    assert g.dx.shape == (0, 3, 4)
    for name in ("dw_ih", "dw_hh", "dbias"):
        np.testing.assert_array_equal(getattr(g, name), 0.0)
    np.testing.assert_array_equal(g.dh0, dh_n)
    np.testing.assert_array_equal(g.dc0, dc_n)


def test_backward_can_run_twice_on_one_cache():
    p = Problem(7, 3, 9, 5)
    _, _, _, cache = lc.lstm_forward(*p.args(np.float64))
    first = lc.lstm_backward(cache, p.dy, p.dh_n, p.dc_n)
    second = lc.lstm_backward(cache, p.dy, p.dh_n, p.dc_n)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_cache_arrays_are_read_only():
    _, _, _, cache = lc.lstm_forward(*Problem(3, 2, 4, 5).args(np.float32))
    for name in ("gates", "c", "tanh_c", "h"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(cache, name)[...] = 0
    assert cache.gates.shape == (3, 2, 20) and cache.h.shape == (4, 2, 5)


# The packed recurrent kernel serves every call with T * B >= 8 (here T = 9: all of them).
# Its blocks: one or two rows over up to 4 panels at once (B = 1, 2), else blocks of 8 rows
# with partial blocks (3, 7, 13, 17, 33, 65 rows) and whole ones (8, 16, 32); H gives whole
# and partial panels in the forward (gate panels, N = 4H) and the backward (plain, N = H).
# The one-step cell checks below stay on the BLAS for B < 8, and pack for B >= 8.
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("B", [1, 2, 3, 7, 8, 13, 16, 17, 32, 33, 65])
@pytest.mark.parametrize("H", [3, 17, 40])
def test_small_batch_kernel_edges(B, H, dtype):
    p = Problem(9, B, 11, H, seed=B * 100 + H)
    cache, ref_cache = check_forward(p, dtype)
    check_backward(cache, ref_cache, p.dy, p.dh_n, p.dc_n, dtype)
    # the streaming cell takes the same kernel for the same B: one step, same bits
    x, w_ih, w_hh, b, h0, c0 = p.args(dtype)
    y, _, c_n, _ = lc.lstm_forward(x[:1], w_ih, w_hh, b, h0, c0, training=False)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    np.testing.assert_array_equal(h1, y[0])
    np.testing.assert_array_equal(c1, c_n)


# A loop of one task with small products: the packed kernel projects the input (in pieces of
# 256 rows: here 390) and computes dx and the weight gradients, instead of the BLAS
# (lstm_core/_lstm.pyx, _projection and SMALL_PRODUCT_FLOPS).
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_small_one_task_calls_off_the_blas(training, dtype):
    T, B, I, H = 130, 3, 5, 6
    assert _lstm._projection_of(T, B, I, H, np.dtype(dtype).itemsize, 1) == "packed"
    p = Problem(T, B, I, H, seed=5)
    cache, ref_cache = check_forward(p, dtype, training=training)
    if training:
        check_backward(cache, ref_cache, p.dy, p.dh_n, p.dc_n, dtype)


# A batch of one too short to pack the weights (T * B < 8) multiplies its row by them with
# the matvec kernel (src/lstm_matvec.inc): blocks of 16 float32 or 8 float64 rows of W (G = 4H
# rows: below one block with H = 1, whole blocks with H = 4, whole ones then a partial one
# with H = 17), each row cut into 64-byte vectors, the last zero-padded (K = I: 1, 15, 16, 17,
# 40; K = H).  The training forward projects T = 5 rows at once (a GEMM) and steps with the
# matvec; the cell projects its one row with it too.
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("H", [1, 4, 17])
@pytest.mark.parametrize("I", [1, 15, 16, 17, 40])
def test_one_row_matvec_edges(I, H, dtype):
    p = Problem(5, 1, I, H, seed=I * 100 + H)
    cache, ref_cache = check_forward(p, dtype)
    check_backward(cache, ref_cache, p.dy, p.dh_n, p.dc_n, dtype)
    x, w_ih, w_hh, b, h0, c0 = p.args(dtype)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    r_h1, r_c1 = ref.lstm_cell(*(np.float64(a) for a in (x[0], h0, c0, w_ih, w_hh, b)))
    assert_close(h1, r_h1, "h1")
    assert_close(c1, r_c1, "c1")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_one_row_sums_do_not_depend_on_their_block(dtype):
    """The matvec kernel folds a whole block of rows with vector shuffles and the rows after
    the last whole block one by one, by the same tree: a unit's gate sums are the same bits
    wherever its rows of W fall.  With H = 17 (G = 68 rows: 64 in whole blocks, then 4), the
    output gates of units 13-16 fall in the partial block; reversing the units moves them into
    whole ones.  With h = 0 the recurrent products add exact zeros (their order is moot), so
    the cell must give the same bits, reversed."""
    H = 17
    x, w_ih, w_hh, b, _, c0 = Problem(1, 1, 40, H, seed=3).args(dtype)
    h0 = np.zeros_like(c0)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    units = np.arange(H)[::-1]
    rows = np.concatenate([q * H + units for q in range(4)])
    h1r, c1r = lc.lstm_cell(x[0], h0, c0[:, units], w_ih[rows], w_hh[rows][:, units], b[rows])
    np.testing.assert_array_equal(h1r[:, units], h1)
    np.testing.assert_array_equal(c1r[:, units], c1)
