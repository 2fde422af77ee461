"""The time loop shared between threads (lc.set_num_threads).

Each batch row of an LSTM is an independent sequence, so a call may run its time loop as
several tasks over ranges of rows (src/lstm_core.h, Threads).  A row's arithmetic must not
depend on its range: any two thread counts above one give the same bits.  With one thread
the forward projects the input with one BLAS GEMM before the loop, with several each task
projects its rows with the packed kernel (lstm_core/_lstm.pyx, _run_forward): the two may
round differently in the last bits (the BLAS splits long sums into blocks, the packed
kernel does not), so one thread against several is held to the float tolerance of the
reference tests, and everything is checked against the float64 reference.  The shapes are
checked to be really split, so a loop that silently stayed serial would fail here.
"""

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _threads
from lstm_problems import TOLERANCE, Problem, assert_close
from lstm_core import reference as ref

DTYPES = [np.float32, np.float64]


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    saved = lc.get_num_threads()
    yield lc.set_num_threads
    lc.set_num_threads(saved)


def everything(p, dtype, lengths):
    """Every output of a training forward + backward and of an inference forward."""
    args = p.args(dtype)
    y, h_n, c_n, cache = lc.lstm_forward(*args, lengths=lengths)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    grads = lc.lstm_backward(cache, cast(p.dy), cast(p.dh_n), cast(p.dc_n))
    yi, hi, ci, _ = lc.lstm_forward(*args, training=False, lengths=lengths)
    return {"y": y, "h_n": h_n, "c_n": c_n, "gates": cache.gates, "y_inference": yi,
            "h_n_inference": hi, "c_n_inference": ci, **grads._asdict()}


# (T, B, I, H): 3 blocks of 8 rows over 2 and 3 threads; a partial last block (B = 17); a
# batch of exactly 2 blocks; a long input (I = 600), whose sums the BLAS splits into blocks;
# each loop has more than the threshold of flops, checked below.
SHAPES = [(20, 24, 16, 96), (9, 17, 5, 160), (12, 16, 33, 128), (8, 16, 600, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_thread_counts_agree(threads, shape, dtype, with_lengths):
    T, B, I, H = shape
    p = Problem(T, B, I, H, seed=B * 7 + H)
    lengths = (np.arange(B) * 5) % (T + 1) if with_lengths else None
    threads(1)
    serial = everything(p, dtype, lengths)
    split = {}
    for n in (2, 3):
        threads(n)
        assert _threads._loop_parts(B, 8.0 * T * B * H * (H + I)) == min(n, B // 8), "serial"
        split[n] = everything(p, dtype, lengths)
    for name, value in serial.items():
        if value is None:
            assert split[2][name] is None and split[3][name] is None, name
            continue
        # any two splits: the same bits
        np.testing.assert_array_equal(split[3][name], split[2][name], err_msg=name)
        # one thread against a split: the same values to the float tolerance
        scale = max(1.0, float(np.abs(value).max()))
        error = float(np.abs(split[2][name].astype(np.float64) - value).max()) / scale
        assert error <= TOLERANCE[np.dtype(dtype)], (name, error)


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


def test_small_loops_stay_on_the_calling_thread(threads):
    threads(2)
    assert _threads._loop_parts(16, 1e6) == 1  # too little work to pay for a thread
    assert _threads._loop_parts(15, 1e9) == 1  # fewer than 2 blocks of 8 rows
    assert _threads._loop_parts(16, 1e9) == 2
    threads(64)
    assert _threads._loop_parts(1024, 3.5e7) == 3  # 1e7 flops per thread at least
    assert _threads._loop_parts(40, 1e12) == 5  # 8 rows per thread at least


def test_set_num_threads_checks_its_argument(threads):
    for bad in (1.0, "2", None, True):
        with pytest.raises(TypeError, match="n must be an int"):
            lc.set_num_threads(bad)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="at least 1"):
            lc.set_num_threads(bad)
    threads(3)
    assert lc.get_num_threads() == 3
    threads(10_000)
    assert lc.get_num_threads() == 64  # capped


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
