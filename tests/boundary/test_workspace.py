"""The workspace pool (lstm_core/_boundary.pyx, take_workspace): buffers that never leave a
call are kept for the next one.

A reused buffer holds whatever its last call left there, so every test first fills the
spares with NaN: a kernel that read workspace it had not written would turn the result NaN,
or at least change its bits, against a call on fresh buffers.
"""

import threading

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import _boundary, layers
from lstm_problems import Problem

DTYPES = [np.float32, np.float64]
# (T, B, I, H): the packed kernel and its panels with a partial last panel (H = 20), the cell
# step through the sequence driver (T * B < 8), a loop split by columns (H = 96, 2 threads)
# and by rows (B = 16 for H = 24: small weights)
SHAPES = [(7, 3, 5, 20), (1, 2, 3, 4), (6, 4, 10, 96), (9, 16, 8, 24)]


@pytest.fixture(autouse=True)
def empty_pool(num_threads):
    """Each test starts and ends with an empty workspace pool; its thread count is restored
    (the conftest's num_threads)."""
    lc.free_workspace()
    yield
    lc.free_workspace()


def poison_spares():
    spares = _boundary._spare_buffers()
    for spare in spares:
        spare.fill(np.nan)
    return len(spares)


def everything(p, dtype, lengths=None):
    """Every output of a training forward + backward, an inference forward and a cell step."""
    args = p.args(dtype)
    y, h_n, c_n, cache = lc.lstm_forward(*args, lengths=lengths)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    grads = lc.lstm_backward(cache, cast(p.dy), cast(p.dh_n), cast(p.dc_n))
    yi, hi, ci, _ = lc.lstm_forward(*args, training=False, lengths=lengths)
    x, w_ih, w_hh, bias, h0, c0 = args
    h1, c1 = lc.lstm_cell(x[0], h0, c0, w_ih, w_hh, bias)
    return [y, h_n, c_n, cache.gates, *grads, yi, hi, ci, h1, c1]


def assert_same_bits(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        assert a.tobytes() == e.tobytes()


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_reused_workspace_gives_the_bits_of_fresh_workspace(shape, dtype, threads, lengths):
    lc.set_num_threads(threads)
    T, B = shape[:2]
    # with lengths, rows past their end (and an empty one) get their zeros from the kernels
    lengths = np.arange(B) % (T + 1) if lengths else None
    p = Problem(*shape, seed=1)
    fresh = everything(p, dtype, lengths)  # on new buffers: the pool was empty
    # the spares now hold this problem's and another one's buffers, filled with NaN
    everything(Problem(5, 9, 6, 40, seed=2), dtype)
    assert poison_spares() > 0
    assert_same_bits(everything(p, dtype, lengths), fresh)


def test_the_pool_keeps_at_most_8_buffers_and_256_MB():
    for H in range(8, 168, 8):  # buffers of many sizes, more than 8 of them
        p = Problem(9, 8, 8, H)
        everything(p, np.float32)
        spares = _boundary._spare_buffers()
        assert 0 < len(spares) <= 8
        assert sum(s.nbytes for s in spares) <= 256 << 20
    lc.free_workspace()
    assert _boundary._spare_buffers() == []


def test_a_buffer_is_never_given_to_two_calls_at_once():
    # Python threads run calls of different shapes at the same time (the GIL is released in
    # the kernels), each taking its workspace from, and giving it back to, the one pool.
    problems = [Problem(12, 8, 6, H, seed=H) for H in (16, 24, 40, 64)]
    expected = [everything(p, np.float32) for p in problems]
    failures = []

    def run(p, want):
        for _ in range(20):
            got = everything(p, np.float32)
            if any(a.tobytes() != e.tobytes() for a, e in zip(got, want)):
                failures.append(p)
                return

    workers = [threading.Thread(target=run, args=pw) for pw in zip(problems, expected)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []


def rnn_and_gru(T, B, I, H, dtype, lengths):
    """Every output of the RNN's and the GRU's training forward + backward and inference
    forward, on seeded inputs with non-zero biases and state."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.uniform(-0.9, 0.9, (B, H)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    out = []
    for gates, forward, backward in ((1, lc.rnn_forward, lc.rnn_backward),
                                     (3, lc.gru_forward, lc.gru_backward)):
        w_ih = (0.3 * rng.standard_normal((gates * H, I))).astype(dtype)
        w_hh = (0.3 * rng.standard_normal((gates * H, H))).astype(dtype)
        biases = [(0.2 + rng.standard_normal(gates * H)).astype(dtype)
                  for _ in range(1 if gates == 1 else 2)]
        y, h_n, cache = forward(x, w_ih, w_hh, *biases, h0, lengths=lengths)
        grads = backward(cache, dy, dh_n)
        yi, hi, _ = forward(x, w_ih, w_hh, *biases, h0, training=False, lengths=lengths)
        out += [y, h_n, *(g for g in grads if g is not None), yi, hi]
    return out


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_rnn_and_gru_on_reused_workspace_give_the_bits_of_fresh_workspace(dtype, lengths):
    T, B, I, H = 7, 5, 4, 12
    lengths = np.array([7, 0, 3, 7, 1]) if lengths else None
    fresh = rnn_and_gru(T, B, I, H, dtype, lengths)
    rnn_and_gru(9, 6, 5, 20, dtype, None)  # another problem's buffers, then NaN
    assert poison_spares() > 0
    assert_same_bits(rnn_and_gru(T, B, I, H, dtype, lengths), fresh)


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("cls", [lc.LSTM, lc.GRU])
def test_a_bidirectional_inference_reverses_its_input_into_the_pool(cls, lengths, monkeypatch):
    """In eval mode a bidirectional layer's reversed input is a pool buffer (layers.py), one
    per layer, each given back: on stale NaN buffers, the same bits as on fresh ones."""
    T, B, I, H = 6, 4, 5, 7
    model = cls(I, H, num_layers=2, bidirectional=True, seed=3).eval()
    x = np.random.default_rng(4).standard_normal((T, B, I)).astype(np.float32)
    lengths = np.array([6, 0, 2, 5]) if lengths else None
    taken, given = [], []

    def take(shape, dtype):
        spare, view = _boundary.take_scratch(shape, dtype)
        taken.append(spare)
        return spare, view

    monkeypatch.setattr(layers, "take_scratch", take)
    def give(spare):
        if spare is not None:  # None: the forward direction took none
            given.append(spare)
        _boundary.give_scratch(spare)

    monkeypatch.setattr(layers, "give_scratch", give)
    flat = lambda out: [out[0], *out[1]]  # noqa: E731  y, then each final state
    fresh = flat(model(x, lengths=lengths))
    assert len(taken) == 2 and [id(a) for a in given] == [id(a) for a in taken]
    assert poison_spares() > 0
    assert_same_bits(flat(model(x, lengths=lengths)), fresh)
    model.train()  # training keeps the reversed input in its cache: a new array, same output
    assert_same_bits(flat(model(x, lengths=lengths)), fresh)


def _training_cache(kind, seed=0):
    """A training-mode cache of an LSTM, GRU or RNN forward (seeded, non-zero biases)."""
    T, B, I, H = 9, 5, 6, 20
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = (0.3 * rng.standard_normal((gates * H, I))).astype(np.float32)
    w_hh = (0.3 * rng.standard_normal((gates * H, H))).astype(np.float32)
    bias = (0.2 + rng.standard_normal(gates * H)).astype(np.float32)
    h0 = rng.uniform(-0.9, 0.9, (B, H)).astype(np.float32)
    if kind == "gru":  # b_ih and b_hh apart
        return lc.gru_forward(x, w_ih, w_hh, bias, -bias, h0)[-1]
    forward = {"lstm": lc.lstm_forward, "rnn": lc.rnn_forward}[kind]
    return forward(x, w_ih, w_hh, bias, h0)[-1]


KEPT = {
    "nothing": lambda cache: None,
    "h": lambda cache: cache.h,
    "slice of h": lambda cache: cache.h[1:, :2],
    "gate trace": lambda cache: lc.gate_trace(cache),
}


@pytest.mark.parametrize("kind,keep", [("lstm", k) for k in KEPT]
                         + [(kind, k) for kind in ("gru", "rnn") for k in ("nothing", "h")])
def test_a_dropped_cache_gives_its_memory_back_unless_something_views_it(kind, keep):
    """A training cache's saved activations live in one pool buffer (lstm_core/_boundary.pyx,
    pooled_views), given back when the cache goes: a training loop reuses it instead of
    faulting in fresh memory.  Anything still viewing the activations keeps the buffer out
    of the pool, so that the next calls cannot overwrite what it sees."""
    cache = _training_cache(kind)
    kept = KEPT[keep](cache)
    expected = None if kept is None else copy_of(kept)
    before = {id(spare) for spare in _boundary._spare_buffers()}
    del cache
    returned = {id(spare) for spare in _boundary._spare_buffers()} - before
    assert len(returned) == (1 if keep == "nothing" else 0)
    for seed in (1, 2):  # calls that take every spare there is, then poisoned ones
        _training_cache(kind, seed)
        poison_spares()
    if kept is not None:
        assert_same_bits(flatten(kept), flatten(expected))


def copy_of(kept):
    return {k: v.copy() for k, v in kept.items()} if isinstance(kept, dict) else kept.copy()


def flatten(kept):
    return [kept[k] for k in sorted(kept)] if isinstance(kept, dict) else [kept]
