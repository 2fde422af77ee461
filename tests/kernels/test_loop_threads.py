"""The time loop shared between threads (lc.set_num_threads).

A call may run its time loop as several tasks, which share either its batch rows or its
columns (hidden units; the tasks then meet at a barrier every step) (src/include/lstm_core.h,
Threads).  An output's arithmetic must not depend on which task computes
it: any two thread counts above one give the same bits.  With one thread the forward
projects the input with a BLAS GEMM, with several each task projects its columns with the
packed kernel (src/kernels/lstm_plan.c): the two may round differently in the last
bits (the BLAS splits long sums into blocks, the packed kernel does not), so one thread
against several is held to the float tolerance of the reference tests, and everything is
checked against the float64 reference.  The shapes are checked to be really split, so a
loop that silently stayed serial would fail here.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _testing
from cell_problems import CELLS, CellProblem
from lstm_problems import TOLERANCE, Problem, assert_close
from lstm_core import reference as ref

DTYPES = [np.float32, np.float64]


@pytest.fixture
def threads(num_threads):
    """lc.set_num_threads, the count restored after the test (the conftest's num_threads);
    lets loops use more threads than this machine's CPUs (3 parts on 2 CPUs), which they
    otherwise never do."""
    _testing.allow_more_threads_than_cpus(True)
    yield num_threads
    _testing.allow_more_threads_than_cpus(False)


# the outputs of the forward alone (the backward's one-thread weight products are GEMMs)
FORWARD_OUTPUTS = ("y", "h_n", "c_n", "gates", "y_inference", "h_n_inference", "c_n_inference")


def everything(p, dtype, lengths):
    """Every output of a training forward + backward and of an inference forward."""
    args = p.args(dtype)
    y, h_n, c_n, cache = lc.lstm_forward(*args, lengths=lengths)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    grads = lc.lstm_backward(cache, cast(p.dy), cast(p.dh_n), cast(p.dc_n))
    yi, hi, ci, _ = lc.lstm_forward(*args, training=False, lengths=lengths)
    return {"y": y, "h_n": h_n, "c_n": c_n, "gates": cache.gates, "y_inference": yi,
            "h_n_inference": hi, "c_n_inference": ci, **grads._asdict()}


# (T, B, I, H): 3 blocks of 8 rows, or columns in whole panels, over 2 and 3 threads (H = 96:
# 12 float32 panels of the gates, 3 of the hidden units); shares of unequal size (B = 17, and
# H = 160: 5 panels of the hidden units); a hidden size that is no multiple of a panel, with
# B = 5 rows for 3 threads by columns (H = 100); a long input (I = 600), whose sums the BLAS
# splits into blocks.  Each loop is checked to be split below.
SHAPES = [(20, 24, 16, 96), (9, 17, 5, 160), (60, 5, 64, 100), (30, 16, 600, 96)]
# the two ways of splitting a loop (src/include/lstm_core.h, Threads); by rows needs 2 blocks of 8
CASES = [(split, shape) for split in ("rows", "columns") for shape in SHAPES
         if split == "columns" or shape[1] >= 16]


def parts_of(shape, dtype):
    """(parts, by_rows) of the forward's and of the backward's plan of this shape."""
    T, B, I, H = shape
    plans = (_testing.lstm_plan_of(T, B, I, H, dtype),
             _testing.lstm_plan_of(T, B, I, H, dtype, backward=True))
    return [(plan["parts"], plan["by_rows"]) for plan in plans]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode, shape", CASES,
                         ids=lambda c: c if isinstance(c, str) else "x".join(map(str, c)))
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_thread_counts_agree(threads, split, mode, shape, dtype, with_lengths):
    T, B, I, H = shape
    p = Problem(T, B, I, H, seed=B * 7 + H)
    lengths = (np.arange(B) * 5) % (T + 1) if with_lengths else None
    threads(1)
    serial = everything(p, dtype, lengths)
    split(mode)
    results = {}
    for n in (2, 3):
        threads(n)
        for parts, by_rows in parts_of(shape, dtype):
            assert parts >= 2 and by_rows == (mode == "rows"), ("not split", parts, by_rows)
        results[n] = everything(p, dtype, lengths)
    for name, value in serial.items():
        if value is None:
            assert results[2][name] is None and results[3][name] is None, name
            continue
        # any two splits: the same bits
        np.testing.assert_array_equal(results[3][name], results[2][name], err_msg=name)
        # one thread against a split: the same values to the float tolerance; the same bits
        # for a forward whose one thread merges its projection too (_lstm.pyx, _merged_steps)
        scale = max(1.0, float(np.abs(value).max()))
        error = float(np.abs(results[2][name].astype(np.float64) - value).max()) / scale
        assert error <= TOLERANCE[np.dtype(dtype)], (name, error)
        one = _testing.lstm_plan_of(T, B, I, H, dtype, threads=1)
        if name in FORWARD_OUTPUTS and one["projection"] == "merged":
            np.testing.assert_array_equal(results[2][name], value, err_msg=name)


def one_state_everything(cell, p, dtype, lengths):
    """Every output of the GRU's or the vanilla RNN's training forward + backward and
    inference forward."""
    cast = lambda a: a.astype(dtype)  # noqa: E731
    biases = (p.b_ih, p.b_hh) if cell.name == "gru" else (p.b_ih + p.b_hh,)
    args = (cast(p.x), cast(p.w_ih), cast(p.w_hh), *map(cast, biases), cast(p.h0))
    y, h_n, cache = cell.forward(*args, lengths=lengths)
    grads = cell.backward(cache, cast(p.dy), cast(p.dh_n))
    yi, hi, _ = cell.forward(*args, training=False, lengths=lengths)
    return {"y": y, "h_n": h_n, **{k: getattr(cache, k) for k in cell.cache_arrays},
            "y_inference": yi, "h_n_inference": hi, **grads._asdict()}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["rows", "columns"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", ["gru", "rnn"])
def test_gru_and_rnn_run_on_the_split_loop(threads, split, mode, dtype, with_lengths, name):
    """The GRU and the vanilla RNN run on the LSTM's driver (gate panels of three gates, or
    plain panels of one): their loops split by rows and by columns like the LSTM's, any two
    splits give the same bits, and every output matches the float64 reference."""
    cell = CELLS[name]
    T, B, I, H = 30, 24, 40, 160  # 5 panels of hidden units, 3 blocks of 8 rows
    p = CellProblem(name, T, B, I, H, seed=5)
    lengths = (np.arange(B) * 5) % (T + 1) if with_lengths else None
    split(mode)
    results = {}
    for n in (2, 3):
        threads(n)
        for backward in (False, True):
            plan = _testing.lstm_plan_of(T, B, I, H, dtype, backward=backward,
                                         gates=cell.gates)
            assert plan["parts"] >= 2 and plan["by_rows"] == (mode == "rows"), plan
        results[n] = one_state_everything(cell, p, dtype, lengths)
    for key, value in results[2].items():
        if value is not None:
            np.testing.assert_array_equal(results[3][key], value, err_msg=key)
    biases = (p.b_ih, p.b_hh) if name == "gru" else (p.b_ih + p.b_hh,)
    y, h_n, cache = cell.ref_forward(p.x, p.w_ih, p.w_hh, *biases, p.h0, lengths=lengths)
    want = {"y": y, "h_n": h_n, **cell.ref_backward(cache, p.dy, p.dh_n)._asdict()}
    for key, value in want.items():
        if value is not None:
            assert_close(results[2][key], value, key)


def test_the_projection_is_chosen_where_it_pays():
    # src/kernels/lstm_plan.c: split loops merge; one thread merges with both packed weights
    # in a core's cache (<= 1 MB) and a full block of 8 rows; else a small projection
    # (< 2e7 flops) uses the packed kernel, a large one the BLAS
    def projection(T, B, I, H, dtype=np.float32, threads=1):
        return _testing.lstm_plan_of(T, B, I, H, dtype, threads=threads)["projection"]
    s3 = _testing.lstm_plan_of(100, 32, 256, 256, np.float32, threads=2)
    assert s3["parts"] == 2 and s3["projection"] == "merged"
    assert projection(100, 16, 128, 128) == "merged"  # S2: 512 KB
    assert projection(100, 8, 128, 128, np.float64) == "merged"  # 1 MB in float64
    assert projection(100, 7, 128, 128) == "gemm"  # less than a block of rows, 9e7 flops
    assert projection(20, 7, 64, 64) == "packed"  # the same with 4.6e6 flops
    assert projection(100, 1, 64, 64) == "packed"  # S1: 3.3e6 flops
    assert projection(100, 32, 256, 256) == "gemm"  # S3: 2 MB, 1.7e9 flops
    assert projection(1, 16, 128, 256) == "packed"  # 1.5 MB, a one-step cell
    assert projection(100, 16, 256, 256) == "gemm"  # 2 MB
    assert projection(1, 7, 64, 64) == "gemm"  # fewer than 8 rows of products: not packed


def test_the_plan_sizes_one_workspace():
    # src/include/lstm_plan.h: the packed weights, the inference projection and scratch, or
    # the backward's dz and weight products' panels, in one buffer
    T, B, I, H = 30, 5, 20, 24  # gate panels of float32: 16 units a pair, so H pads to 32
    plan = _testing.lstm_plan_of(T, B, I, H, np.float32, training=False, threads=1)
    assert plan["projection"] == "packed" and plan["chunk"] == T  # 1024 rows: all 30 steps
    assert plan["w_hh_panels"] == 4 * 32 * H and plan["w_ih_panels"] == 4 * 32 * I
    assert plan["work"] == T * B * 4 * H + 2 * B * H
    back = _testing.lstm_plan_of(T, B, I, H, np.float32, backward=True, threads=1)
    assert back["weight_products"] and back["work"] == T * B * 4 * H
    assert back["w_hh_panels"] == 32 * 4 * H  # plain panels of w_hh (G x H): one of 32
    for p in (plan, back):
        assert p["workspace"] == (p["w_ih_panels"] + p["w_hh_panels"] + p["work"]
                                  + p["grad_panels"])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_split_loop_matches_the_reference(threads, dtype):
    T, B, I, H = SHAPES[0]
    p = Problem(T, B, I, H, seed=3)
    threads(3)
    y, h_n, c_n, cache = lc.lstm_forward(*p.args(dtype))
    g = lc.lstm_backward(cache, p.dy.astype(dtype), p.dh_n.astype(dtype), p.dc_n.astype(dtype))
    r_y, r_h, r_c, r_cache = ref.lstm_forward(*p.args(np.float64))
    r_g = ref.lstm_backward(r_cache, p.dy, p.dh_n, p.dc_n)
    for name, a, b in [("y", y, r_y), ("h_n", h_n, r_h), ("c_n", c_n, r_c),
                       *zip(g._fields, g, r_g)]:
        assert_close(a, b, name)


def test_loops_split_only_when_it_pays(threads):
    # loop_parts(B, H, flops per step, T, bytes of packed weights) -> (parts, by_rows)
    small, large = 512e3, 8e6  # bytes of weights: below and above what a core's cache keeps
    threads(2)
    assert _testing.loop_parts(64, 128, 1e5, 1000, small)[0] == 1  # too little per step
    assert _testing.loop_parts(64, 128, 1e6, 5, small)[0] == 1  # too little for a thread
    assert _testing.loop_parts(64, 63, 1e9, 100, large) == (1, False)  # < 2 panels of units
    assert _testing.loop_parts(15, 128, 1e9, 100, small) == (2, False)  # < 2 blocks of rows
    assert _testing.loop_parts(16, 128, 1e9, 100, small) == (2, True)  # weights in cache
    assert _testing.loop_parts(64, 512, 1e9, 100, large) == (2, False)  # weights streamed
    threads(64)
    assert _testing.loop_parts(4096, 4096, 1e6, 35, large)[0] == 3  # 1e7 flops per thread
    assert _testing.loop_parts(4096, 4096, 1e6, 1000, large)[0] == 5  # 2e5 per thread, step
    assert _testing.loop_parts(4096, 160, 1e9, 1000, large) == (5, False)  # a panel each
    assert _testing.loop_parts(40, 4096, 1e9, 1000, small) == (64, False)  # rows too few
    assert _testing.loop_parts(1024, 4096, 1e9, 1000, small) == (64, True)


def test_loops_use_no_more_threads_than_cpus(threads):
    import os
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("the cap reads the CPU affinity, which only Linux reports")
    cpus = len(os.sched_getaffinity(0))
    _testing.allow_more_threads_than_cpus(False)
    threads(cpus + 3)
    assert _testing.loop_parts(4096, 4096, 1e9, 1000, 8e6)[0] == min(cpus, 64)


def test_set_num_threads_checks_its_argument(threads):
    for bad in (1.0, "2", None, True):
        with pytest.raises(TypeError, match="n must be an int"):
            lc.set_num_threads(bad)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="at least 1"):
            lc.set_num_threads(bad)
    threads(3)
    assert lc.get_num_threads() == 3
    with pytest.warns(RuntimeWarning, match="at most 64"):
        threads(10_000)
    assert lc.get_num_threads() == 64  # capped, with a warning


def test_concurrent_callers_each_split_their_loop(threads):
    # several Python threads at once, each call starting its own helper threads: every result
    # is the serial one, bit for bit against the same thread count
    from concurrent.futures import ThreadPoolExecutor
    T, B, I, H = SHAPES[0]
    p = Problem(T, B, I, H, seed=11)
    threads(2)
    want = everything(p, np.float32, None)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: everything(p, np.float32, None), range(8)))
    for got in results:
        for name, value in want.items():
            if value is not None:
                np.testing.assert_array_equal(got[name], value, err_msg=name)


FORK_SCRIPT = """
import multiprocessing as mp, numpy as np, lstm_core as lc
def run(q):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 32, 16), dtype=np.float32)
    w_ih = rng.standard_normal((384, 16), dtype=np.float32) * 0.1
    w_hh = rng.standard_normal((384, 96), dtype=np.float32) * 0.1
    y = lc.lstm_forward(x, w_ih, w_hh, training=False)[0]
    if q is None:
        return y
    q.put(float(np.abs(y).sum()))
lc.set_num_threads(2)
parent = float(np.abs(run(None)).sum())  # the parent splits its loop first
ctx = mp.get_context("fork")
q = ctx.Queue()
child = ctx.Process(target=run, args=(q,))
child.start()
child.join(60)
assert child.exitcode == 0, child.exitcode
assert q.get(timeout=5) == parent
print("ok")
"""


def test_forked_child_splits_its_loop_too(tmp_path):
    # nothing is pooled, so a child forked after split calls runs them normally (a thread
    # pool would leave the child waiting for threads that do not exist)
    from lstm_problems import run_python
    result = run_python(FORK_SCRIPT, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_chunks_claimed_at_run_time_give_the_same_bits(threads, split):
    """Split by columns, each step's chunks of hidden units go to whichever thread claims them
    first (src/kernels/lstm_kernels.inc, forward_chunks and backward_chunks), which changes from call
    to call.  Three threads on this machine's two CPUs: one of them is often descheduled in
    the middle of a step and its chunks are taken by the others.  Every call must give the
    same bits, and the values of the reference."""
    T, B, I, H = 20, 8, 24, 160  # 10 chunks of gate panels, 5 of dh's panels
    p = Problem(T, B, I, H, seed=3)
    split("columns")
    threads(3)
    for parts, by_rows in parts_of((T, B, I, H), np.float32):
        assert parts == 3 and not by_rows, ("not split 3 ways by columns", parts, by_rows)
    first = everything(p, np.float32, None)
    y, h_n, c_n, _ = ref.lstm_forward(*p.args(np.float64))
    assert_close(first["y"], y, "y")
    assert_close(first["c_n"], c_n, "c_n")
    for _ in range(20):
        again = everything(p, np.float32, None)
        for name, value in first.items():
            if value is not None:
                np.testing.assert_array_equal(again[name], value, err_msg=name)
