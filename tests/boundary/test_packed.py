"""lc.pack_lstm: weights packed once (src/include/lstm_core.h, lstm_pack_weights) for any
number of inference calls, the same bits as lstm_forward(training=False) and lstm_cell."""

import threading

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _testing
from lstm_problems import Problem

DTYPES = [np.float32, np.float64]


# (T, B, I, H): fewer than 8 rows of products (raw weights, no panels), the packed
# projection, the merged one, a GEMM projection (one row, a large input), loops split
# between threads (checked below)
SHAPES = [(3, 2, 5, 7), (20, 3, 9, 5), (10, 16, 24, 40), (1000, 1, 256, 16), (12, 8, 200, 256),
          (20, 24, 16, 96)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_packed_forward_is_lstm_forward_bit_for_bit(num_threads, shape, dtype, with_lengths,
                                                   n_threads):
    T, B, I, H = shape
    num_threads(n_threads)
    x, w_ih, w_hh, bias, h0, c0 = Problem(T, B, I, H, seed=T + B).args(dtype)
    lengths = (np.arange(B) * 3) % (T + 1) if with_lengths else None
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision=np.dtype(dtype).name)
    want = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False, lengths=lengths)[:3]
    got = packed.forward(x, h0, c0, lengths=lengths)
    for name, a, b in zip(("y", "h_n", "c_n"), got, want):
        np.testing.assert_array_equal(a, b, err_msg=name)
    h1, c1 = packed.cell(x[0], h0, c0)
    want_h1, want_c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias)
    np.testing.assert_array_equal(h1, want_h1)
    np.testing.assert_array_equal(c1, want_c1)


def test_the_shapes_cover_every_way_of_projecting(num_threads):
    num_threads(2)
    seen = {(p["packed"], p["projection"], p["parts"] > 1)
            for p in (_testing.lstm_plan_of(*s, np.float32, training=False) for s in SHAPES)}
    assert {(False, "gemm", False), (True, "packed", False), (True, "merged", False),
            (True, "gemm", False), (True, "merged", True)} <= seen


def test_packed_owns_its_weights_and_defaults():
    x, w_ih, w_hh, bias, h0, c0 = Problem(6, 9, 4, 8, seed=1).args(np.float32)
    packed = lc.pack_lstm(w_ih, w_hh, bias)
    before = packed.forward(x)
    for arr in (w_ih, w_hh, bias):
        arr *= 3  # the source arrays change: the packed LSTM does not
    after = packed.forward(x)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert packed.w_ih is not w_ih and not packed.w_ih.flags.writeable
    with pytest.raises(ValueError):
        packed.w_ih[0, 0] = 1
    assert (packed.input_size, packed.hidden_size, packed.precision) == (4, 8, "float32")
    assert repr(packed) == "<PackedLSTM input_size=4 hidden_size=8 precision='float32' bias=True>"
    # no bias, and zero states by default, as lstm_forward
    nobias = lc.pack_lstm(w_ih / 3, w_hh / 3)
    want = lc.lstm_forward(x, w_ih / 3, w_hh / 3, training=False)[:3]
    for a, b in zip(nobias.forward(x), want):
        np.testing.assert_array_equal(a, b)


def test_precision_converts_the_weights():
    # float64 weights packed in float32 compute exactly as the float32 copies do
    x, w_ih, w_hh, bias, h0, c0 = Problem(5, 9, 4, 8, seed=2).args(np.float64)
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision="float32")
    assert packed.w_ih.dtype == np.float32
    f32 = [a.astype(np.float32) for a in (x, w_ih, w_hh, bias, h0, c0)]
    want = lc.lstm_forward(*f32, training=False)[:3]
    for a, b in zip(packed.forward(f32[0], f32[4], f32[5]), want):
        np.testing.assert_array_equal(a, b)


def test_many_threads_share_one_packed_lstm(num_threads):
    num_threads(1)
    x, w_ih, w_hh, bias, h0, c0 = Problem(30, 16, 32, 64, seed=3).args(np.float32)
    packed = lc.pack_lstm(w_ih, w_hh, bias)
    want = packed.forward(x, h0, c0)
    results, errors = [], []

    def run():
        try:
            for _ in range(5):
                results.append(packed.forward(x, h0, c0))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
    workers = [threading.Thread(target=run) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(results) == 20
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_empty_calls():
    _, w_ih, w_hh, bias, _, _ = Problem(1, 1, 3, 4, seed=4).args(np.float32)
    packed = lc.pack_lstm(w_ih, w_hh, bias)
    h0 = np.full((2, 4), 0.5, np.float32)
    y, h_n, c_n = packed.forward(np.zeros((0, 2, 3), np.float32), h0, h0)
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h_n, h0)
    y, h_n, c_n = packed.forward(np.zeros((5, 0, 3), np.float32))
    assert y.shape == (5, 0, 4) and h_n.shape == (0, 4)


def test_bad_arguments_are_refused_clearly():
    _, w_ih, w_hh, bias, h0, c0 = Problem(1, 2, 3, 4, seed=5).args(np.float32)
    with pytest.raises(ValueError, match="precision must be"):
        lc.pack_lstm(w_ih, w_hh, bias, precision="float16")
    with pytest.raises(TypeError, match="w_hh has dtype float64"):
        lc.pack_lstm(w_ih, w_hh.astype(np.float64))
    with pytest.raises(ValueError, match="w_hh"):
        lc.pack_lstm(w_ih, w_hh[:, :3])
    with pytest.raises(TypeError, match="w_ih must be a numpy.ndarray"):
        lc.pack_lstm([[1.0]], w_hh)
    with pytest.raises(TypeError, match="made by lstm_core.pack_lstm"):
        lc.PackedLSTM()
    packed = lc.pack_lstm(w_ih, w_hh, bias)
    with pytest.raises(TypeError, match="computes in float32"):
        packed.forward(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        packed.forward(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match="h0"):
        packed.forward(np.zeros((2, 2, 3), np.float32), h0[:, :3])
    with pytest.raises(ValueError, match="x_t must have shape"):
        packed.cell(np.zeros((2, 5), np.float32), h0, c0)
    with pytest.raises(ValueError, match="lengths"):
        packed.forward(np.zeros((2, 2, 3), np.float32), lengths=[3, 1])
