"""The compiled kernels against their float64 numpy twins (lstm_core.reference), for every cell
(the conftest's `cell` fixture: LSTM, GRU, RNN) and both dtypes: a grid of shapes, optional
biases and states, every source of gradients, inference mode and variable lengths; then the
LSTM's one-step cell and the edges of its packed, matvec and small-product kernels.
Tolerances: tests/lstm_problems.py (float32 5e-6, float64 1e-12, relative to max magnitude).
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _testing
from lstm_core import reference as ref

from cell_problems import CELLS, CellProblem
from lstm_problems import Problem, assert_close

GRID = [
    (T, B, H)
    for T in (0, 1, 2, 7, 33)
    for B in (0, 1, 3, 16)
    for H in (1, 5, 64)
]


def input_size(H):
    """An I different from H and odd-ish: 4, 8, 67."""
    return H + 3


def check_forward(p, dtype, **kw):
    """The forward's outputs (y, h_n[, c_n]) against the twin's; returns the outputs, the cache
    and the twin's cache."""
    *outputs, cache = p.forward(dtype, **kw)
    *expected, ref_cache = p.forward(dtype, twin=True, **kw)
    for name, a, e in zip(p.output_names, outputs, expected, strict=True):
        assert a.dtype == dtype, name
        assert_close(a, e, name)
    return outputs, cache, ref_cache


def check_backward(p, cache, ref_cache, output_grads, dtype):
    """Every gradient against the twin's; a gradient the twin does not give (no bias) is None."""
    grads = p.backward(cache, *output_grads, dtype=dtype)
    expected = p.backward(ref_cache, *output_grads, twin=True)
    assert type(grads) is type(expected)
    assert isinstance(grads, CELLS[p.cell].grads)
    for name, a, e in zip(grads._fields, grads, expected):
        if e is None:
            assert a is None, name
        else:
            assert a.dtype == dtype, name
            assert_close(a, e, name)
    return grads


def check(p, dtype, output_grads, **kw):
    """Forward outputs and every gradient of the fast path against the twin."""
    outputs, cache, ref_cache = check_forward(p, dtype, **kw)
    check_backward(p, cache, ref_cache, output_grads, dtype)
    return outputs, cache


def check_lstm_forward(p, dtype, training=True):
    """check_forward for the LSTM with training on or off (off: no cache to go backward)."""
    out = lc.lstm_forward(*p.args(dtype), training=training)
    expected = ref.lstm_forward(*p.args(np.float64))
    for name, a, e in zip(["y", "h_n", "c_n"], out[:3], expected[:3]):
        assert a.dtype == dtype, name
        assert_close(a, e, name)
    return out[3], expected[3]


@pytest.mark.parametrize("T,B,H", GRID, ids=[f"T{T}-B{B}-H{H}" for T, B, H in GRID])
def test_forward_and_backward_match_reference(T, B, H, dtype, cell):
    p = cell.problem(T, B, input_size(H), H, seed=T * 1000 + B * 10 + H)
    check(p, dtype, p.output_grads)


# The LSTM's shapes, and the one the GRU and RNN ran alone (its seed, 7, is everyone's).
SHAPES = [(1, 1, 2, 1), (7, 3, 9, 5), (9, 4, 6, 5), (33, 16, 13, 64)]


@pytest.mark.parametrize("source", ["dy", "state", "both", "none"])
@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_gradient_sources(T, B, I, H, source, dtype, cell):
    """Gradients from dy only, from dh_n (and dc_n) only, from both, or from nothing: then
    every gradient is zero."""
    p = cell.problem(T, B, I, H, seed=7)
    dy, *dstate = p.output_grads
    dy = dy if source in ("dy", "both") else None
    dstate = dstate if source in ("state", "both") else [None] * len(dstate)
    _, cache = check(p, dtype, (dy, *dstate))
    if source == "none":
        assert all(not np.any(g) for g in p.backward(cache, None, *dstate, dtype=dtype))


@pytest.mark.parametrize("bias,state", [(False, True), (True, False), (False, False)])
def test_optional_bias_and_state(bias, state, dtype, cell):
    p = cell.problem(7, 3, 9, 5, seed=3)
    check(p, dtype, p.output_grads, bias=bias, state=state)


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


def assert_same_results(inference, training, names, dtype):
    """Inference against training mode.  Not always the same bits: some BLAS kernels
    (OpenBLAS's for AVX2 CPUs, in float32) round a row of a product differently depending on
    how many rows the call has, and inference projects the input a chunk of steps at a time.
    So: equal within the dtype's tolerance everywhere (1-3 ulps measured on AVX2), and bit for
    bit in float64."""
    for name, a, b in zip(names, inference, training, strict=True):
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert_close(a, b, name)


@pytest.mark.parametrize("T,B,I,H", [(0, 3, 4, 5), (33, 16, 13, 64), (300, 2, 3, 4)])
def test_inference_mode_equals_training_mode(T, B, I, H, dtype, cell):
    """training=False keeps nothing and chunks the input GEMM, yet gives the same results."""
    p = cell.problem(T, B, I, H, seed=5)
    *outputs, cache = p.forward(dtype, training=True)
    *outputs2, cache2 = p.forward(dtype, training=False)
    assert cache is not None and cache2 is None
    assert_same_results(outputs2, outputs, p.output_names, dtype)


LENGTHS = {
    "unsorted": (9, 5, 6, 4, [3, 9, 0, 7, 1]),
    "all-empty": (4, 3, 2, 3, [0, 0, 0]),
    "wide": (33, 16, 13, 64, list(range(33, 1, -2))),
    "no-steps": (0, 3, 2, 3, [0, 0, 0]),
}


@pytest.mark.parametrize("case", LENGTHS)
def test_lengths_match_twin(case, dtype, cell):
    T, B, I, H, lengths = LENGTHS[case]
    p = cell.problem(T, B, I, H, seed=len(case))
    lengths = np.array(lengths)
    outputs, _ = check(p, dtype, p.output_grads, lengths=lengths)
    y = outputs[0]
    for b, n in enumerate(lengths):
        assert not y[n:, b].any()  # exact zeros past each length
    *outputs2, cache2 = p.forward(dtype, lengths=lengths, training=False)
    assert_same_results(outputs2, outputs, p.output_names, dtype)
    assert cache2 is None


def test_empty_sequence_returns_initial_state(cell):
    p = cell.problem(0, 3, 4, 5)
    args = p.args(np.float32)
    y, *final, cache = cell.forward(*args)
    assert y.shape == (0, 3, 5)
    initial = args[-len(final):]
    for state, state0 in zip(final, initial, strict=True):
        np.testing.assert_array_equal(state, state0)
        assert state is not state0
    dstate = [np.float32(scale) * np.ones_like(s) for scale, s in zip((1.0, 2.0), final)]
    g = cell.backward(cache, None, *dstate)
    assert g.dx.shape == (0, 3, 4)
    for name, value in g._asdict().items():
        if name not in ("dx", "dh0", "dc0"):
            np.testing.assert_array_equal(value, 0.0, err_msg=name)
    for name, d in zip(("dh0", "dc0"), dstate):
        np.testing.assert_array_equal(getattr(g, name), d, err_msg=name)


def test_backward_can_run_twice_on_one_cache(cell):
    p = cell.problem(7, 3, 9, 5)
    *_, cache = p.forward(np.float64)
    first = p.backward(cache, *p.output_grads)
    second = p.backward(cache, *p.output_grads)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("T,B,I,H", [(3, 2, 4, 5), (7, 3, 9, 5)])
def test_cache_arrays_are_read_only(T, B, I, H, dtype, cell):
    *_, cache = cell.problem(T, B, I, H).forward(dtype)
    for name in cell.cache_arrays:
        with pytest.raises(ValueError, match="read-only"):
            getattr(cache, name)[...] = 0
    if "gates" in cell.cache_arrays:
        assert cache.gates.shape == (T, B, cell.gates * H)
    assert cache.h.shape == (T + 1, B, H)
    assert repr(cache).startswith(f"<{cell.name.upper()}Cache T={T} B={B} I={I} H={H}")


def test_gradient_namedtuples(cell):
    assert cell.grads is getattr(lc, f"{cell.name.upper()}Grads")
    assert cell.grads._fields == {
        "lstm": ("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0"),
        "gru": ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0"),
        "rnn": ("dx", "dw_ih", "dw_hh", "dbias", "dh0"),
    }[cell.name]


# The LSTM's one-step cell and the edges of the kernels behind it.
# B = 8 and 16 with small weights: the projection merged with the recurrent product
# (src/kernels/lstm_plan.c); (16, 200, 256): weights too large for that, a GEMM.
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


# The packed recurrent kernel serves every call with T * B >= 8 (here T = 9: all of them).
# Its blocks: one or two rows over up to 4 panels at once (B = 1, 2), else blocks of 8 rows
# with partial blocks (3, 7, 13, 17, 33, 65 rows) and whole ones (8, 16, 32); H gives whole
# and partial panels in the forward (gate panels, N = 4H) and the backward (plain, N = H).
# The one-step cell checks below stay on the BLAS for B < 8, and pack for B >= 8.
@pytest.mark.parametrize("B", [1, 2, 3, 7, 8, 13, 16, 17, 32, 33, 65])
@pytest.mark.parametrize("H", [3, 17, 40])
def test_small_batch_kernel_edges(B, H, dtype):
    p = Problem(9, B, 11, H, seed=B * 100 + H)
    check(p, dtype, p.output_grads)
    # the streaming cell takes the same kernel for the same B: one step, same bits
    x, w_ih, w_hh, b, h0, c0 = p.args(dtype)
    y, _, c_n, _ = lc.lstm_forward(x[:1], w_ih, w_hh, b, h0, c0, training=False)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    np.testing.assert_array_equal(h1, y[0])
    np.testing.assert_array_equal(c1, c_n)


# A loop of one task with small products: the packed kernel projects the input (in pieces of
# 256 rows: here 390) and computes dx and the weight gradients, instead of the BLAS
# (src/kernels/lstm_plan.c, SMALL_PRODUCT_FLOPS).
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_small_one_task_calls_off_the_blas(training, dtype):
    T, B, I, H = 130, 3, 5, 6
    assert _testing.lstm_plan_of(T, B, I, H, dtype)["projection"] == "packed"
    assert _testing.lstm_plan_of(T, B, I, H, dtype, backward=True)["weight_products"]
    p = Problem(T, B, I, H, seed=5)
    cache, ref_cache = check_lstm_forward(p, dtype, training=training)
    if training:
        check_backward(p, cache, ref_cache, p.output_grads, dtype)


# A batch of one too short to pack the weights (T * B < 8) multiplies its row by them with
# the matvec kernel (src/lstm_matvec.inc): blocks of 16 float32 or 8 float64 rows of W (G = 4H
# rows: below one block with H = 1, whole blocks with H = 4, whole ones then a partial one
# with H = 17), each row cut into 64-byte vectors, the last zero-padded (K = I: 1, 15, 16, 17,
# 40; K = H).  The training forward projects T = 5 rows at once (a GEMM) and steps with the
# matvec; the cell projects its one row with it too.
@pytest.mark.parametrize("H", [1, 4, 17])
@pytest.mark.parametrize("I", [1, 15, 16, 17, 40])
def test_one_row_matvec_edges(I, H, dtype):
    p = Problem(5, 1, I, H, seed=I * 100 + H)
    check(p, dtype, p.output_grads)
    x, w_ih, w_hh, b, h0, c0 = p.args(dtype)
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, b)
    r_h1, r_c1 = ref.lstm_cell(*(np.float64(a) for a in (x[0], h0, c0, w_ih, w_hh, b)))
    assert_close(h1, r_h1, "h1")
    assert_close(c1, r_c1, "c1")


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
