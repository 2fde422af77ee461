"""lc.pack_gru and lc.pack_rnn: the GRU's and the RNN's weights packed once (the same driver
and panels as pack_lstm, in the three-gate and plain layouts) give the bits of gru_forward /
rnn_forward with training=False and of gru_cell / rnn_cell, in every plan."""

import threading

import numpy as np
import pytest

import lstm_core as lc
from lstm_problems import assert_refused_in_subprocess


def problem(cell, T, B, I, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = 3 * H if cell == "gru" else H
    k = 1 / np.sqrt(H)
    arrays = {"x": rng.standard_normal((T, B, I)), "w_ih": rng.uniform(-k, k, (G, I)),
              "w_hh": rng.uniform(-k, k, (G, H)), "b_ih": rng.uniform(-k, k, G) + 0.2,
              "b_hh": rng.uniform(-k, k, G) - 0.1, "h0": rng.uniform(-0.8, 0.8, (B, H))}
    return {name: a.astype(dtype) for name, a in arrays.items()}


def unpacked(cell, p, lengths=None):
    if cell == "gru":
        return lc.gru_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"],
                              training=False, lengths=lengths)[:2]
    return lc.rnn_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"] + p["b_hh"], p["h0"],
                          training=False, lengths=lengths)[:2]


def pack(cell, p, precision="float32"):
    if cell == "gru":
        return lc.pack_gru(p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], precision=precision)
    return lc.pack_rnn(p["w_ih"], p["w_hh"], p["b_ih"] + p["b_hh"], precision=precision)


# (T, B, I, H): below the packed kernel's 8 rows (GEMM / matvec), one row, a partial panel,
# several panels with a loop split between threads
SHAPES = [(3, 1, 5, 7), (1, 2, 3, 4), (6, 3, 9, 20), (4, 16, 33, 70), (5, 40, 64, 96)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("shape", SHAPES)
def test_packed_equals_the_unpacked_calls_bit_for_bit(shape, cell, dtype):
    p = problem(cell, *shape, dtype, seed=sum(shape))
    packed = pack(cell, p, np.dtype(dtype).name)
    lengths = [shape[0]] + [i % (shape[0] + 1) for i in range(1, shape[1])]
    for a, b in zip(packed.forward(p["x"], p["h0"], lengths=lengths),
                    unpacked(cell, p, lengths)):
        np.testing.assert_array_equal(a, b)
    if cell == "gru":
        want = lc.gru_cell(p["x"][0], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    else:
        want = lc.rnn_cell(p["x"][0], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"] + p["b_hh"])
    np.testing.assert_array_equal(packed.cell(p["x"][0], p["h0"]), want)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_owns_its_weights_and_serves_threads(cell):
    p = problem(cell, 5, 16, 8, 40, np.float32, seed=3)
    packed = pack(cell, p)
    want = packed.forward(p["x"], p["h0"])
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        p[name][...] = 0.5
    results = []
    workers = [threading.Thread(target=lambda: results.append(packed.forward(p["x"], p["h0"])))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 4
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert not packed.w_ih.flags.writeable


def test_bad_arguments_are_refused_clearly(tmp_path):
    p = problem("gru", 2, 2, 3, 4, np.float32)
    with pytest.raises(ValueError, match="implemented for the LSTM"):
        lc.pack_gru(p["w_ih"], p["w_hh"], precision="bfloat16")
    with pytest.raises(ValueError, match="'float32' or 'float64'"):
        lc.pack_rnn(p["w_ih"][:4], p["w_hh"][:4], precision="half")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh'"):
        lc.pack_rnn(p["w_ih"][:4], p["w_hh"][:4], nonlinearity="relu")
    with pytest.raises(ValueError, match="w_hh"):
        lc.pack_gru(p["w_ih"], p["w_hh"][:, :3])
    with pytest.raises(ValueError, match="b_hh"):
        lc.pack_gru(p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"][:5])
    with pytest.raises(TypeError, match="made by lstm_core.pack_gru"):
        lc.PackedGRU()
    packed = lc.pack_gru(p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    assert repr(packed) == "<PackedGRU input_size=3 hidden_size=4 precision='float32' bias=True>"
    with pytest.raises(TypeError, match=r"computes in float32: pass x.astype\(np.float32\)"):
        packed.forward(p["x"].astype(np.float64))
    with pytest.raises(ValueError, match="x"):
        packed.forward(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(TypeError, match="h"):
        packed.cell(p["x"][0], p["h0"].astype(np.float64))
    # bad calls in a subprocess: an error, never a crash
    setup = """
import numpy as np, lstm_core as lc
g = lc.pack_gru(np.zeros((12, 3), np.float32), np.zeros((12, 4), np.float32))
r = lc.pack_rnn(np.zeros((4, 3), np.float32), np.zeros((4, 4), np.float32))
"""
    calls = [f"{p}.{call}" for p in ("g", "r") for call in (
        "forward(np.zeros((2, 3)))", "cell(np.zeros((2, 4), np.float32), None)",
        "cell(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32))",
        "forward(np.zeros((2, 2, 3), np.float32), lengths=[3, 1])")]
    assert_refused_in_subprocess(setup, calls, cwd=tmp_path)
