"""The compiled reduced-precision path (lc.pack_lstm(..., precision="bfloat16" | "int8")) against
the numpy reference of the same scheme (lstm_core.precision) and against float64, at every
kernel level this machine can run: LSTM_CORE_MAX_ISA caps the level a PackedLSTM picks, so the
portable kernels run everywhere and each higher level where the CPU has it.
"""

import threading

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import precision as P
from lstm_core import reference as ref
from lstm_problems import assert_refused_in_subprocess

REDUCED = ("bfloat16", "int8")
# Every level the API names, lowest first; a level the CPU (or this build) lacks is skipped
# where it would run, and the levels below it still run.
LEVELS = ("portable", "avx2", "avx512", "amx")


def packed_at(level, monkeypatch, *args, **kwargs):
    """lc.pack_lstm under LSTM_CORE_MAX_ISA=level; skips when the kernels it picked are of a
    lower level (the CPU or the build has no such kernels)."""
    monkeypatch.setenv("LSTM_CORE_MAX_ISA", level)
    packed = lc.pack_lstm(*args, **kwargs)
    if packed.kernel != level:
        pytest.skip(f"no {level} kernels here (picked {packed.kernel})")
    return packed


def problem(T, B, I, H, seed):
    """float32 x, w_ih, w_hh, bias, h0, c0 at torch's initialisation scale, non-zero biases and
    states (a layout bug shows), x ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    arrays = (rng.standard_normal((T, B, I)), rng.uniform(-k, k, (4 * H, I)),
              rng.uniform(-k, k, (4 * H, H)), rng.uniform(-k, k, 4 * H) + 0.2,
              rng.uniform(-0.5, 0.5, (B, H)), rng.uniform(-1, 1, (B, H)))
    return tuple(a.astype(np.float32) for a in arrays)


def f64(arrays):
    return tuple(None if a is None else np.asarray(a, np.float64) for a in arrays)


# (T, B, I, H): odd depths (the last pair of k padded), one row (the two-panel blocks), odd
# row counts (a block of one row after blocks of two), partial panels (H not a multiple of 16).
SHAPES = [(1, 1, 7, 5), (6, 1, 33, 40), (5, 3, 10, 16), (4, 9, 64, 48), (3, 2, 1, 1)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("shape", SHAPES)
def test_one_step_is_within_the_derived_bound(shape, precision, level, monkeypatch):
    # One step against the exact float64 LSTM, within the bound derived for float32 sums and
    # float32 pointwise math (a few ulps of c and h): docs/precision.rst, Error bounds.
    x, w_ih, w_hh, bias, h0, c0 = problem(1, *shape[1:], seed=sum(shape))
    packed = packed_at(level, monkeypatch, w_ih, w_hh, bias, precision=precision)
    h1, c1 = packed.cell(x[0], h0, c0)
    exact = ref.lstm_forward(*f64((x, w_ih, w_hh, bias, h0, c0)), training=False)
    bound = P.forward_error_bound(*f64((x, w_ih, w_hh, bias, h0, c0)), precision=precision,
                                  accumulation="float32", pointwise_eps=4 * 2.0**-24)
    assert np.all(np.abs(h1 - exact[1]) <= bound.h_n)
    assert np.all(np.abs(c1 - exact[2]) <= bound.c_n)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("shape", SHAPES + [(30, 20, 96, 72)])
def test_sequences_follow_the_reference_scheme(shape, precision, level, monkeypatch):
    # Whole sequences against the reference of the same scheme.  They differ only where the
    # kernels' float32 h lies within a float32 rounding of a bfloat16 tie or an int8 step
    # boundary (the reference's h is float64), one operand ulp or step there: measured up to
    # 2e-4 (T = 30); 2e-3 is below the scheme's own error against float64 (2-9e-3) and far
    # below a layout or scale bug (order 0.1-1).
    x, w_ih, w_hh, bias, h0, c0 = problem(*shape, seed=sum(shape) + 1)
    packed = packed_at(level, monkeypatch, w_ih, w_hh, bias, precision=precision)
    y, h_n, c_n = packed.forward(x, h0, c0)
    want = ref.lstm_forward(*f64((x, w_ih, w_hh, bias, h0, c0)), training=False,
                            precision=precision)
    for name, got, expected in zip(("y", "h_n", "c_n"), (y, h_n, c_n), want):
        assert got.dtype == np.float32
        error = np.abs(got - expected).max()
        assert error <= 2e-3, f"{name}: {error:.2e}"


# The accuracy targets against float64 (torch's default init, x ~ N(0, 1)) on the benchmark
# shapes S1-S3 and S4, S5 with fewer steps (the measured error does not grow with T).
TARGET = {"bfloat16": 1e-2, "int8": 5e-2}
BENCH_SHAPES = [(100, 1, 64, 64), (100, 16, 128, 128), (30, 32, 256, 256), (8, 64, 512, 512),
                (4, 16, 1024, 1024)]


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("shape", BENCH_SHAPES)
def test_accuracy_targets_against_float64(shape, precision):
    x, w_ih, w_hh, bias, h0, c0 = problem(*shape, seed=3)
    y, h_n, c_n = lc.pack_lstm(w_ih, w_hh, bias, precision=precision).forward(x, h0, c0)
    exact = ref.lstm_forward(*f64((x, w_ih, w_hh, bias, h0, c0)), training=False)
    for got, expected in zip((y, h_n, c_n), exact):
        assert np.abs(got - expected).max() <= TARGET[precision]


@pytest.mark.parametrize("precision", REDUCED)
def test_every_level_gives_the_same_bits(precision, monkeypatch):
    # bfloat16: each product of two bfloat16 values is exact in float32, so a fused
    # multiply-add rounds as a multiply then an add; int8: exact integer sums, the same
    # rescaling.  Hence the same sums in the same order give the same bits at every level.
    x, w_ih, w_hh, bias, h0, c0 = problem(7, 5, 37, 45, seed=9)
    results = {}
    for level in LEVELS:
        monkeypatch.setenv("LSTM_CORE_MAX_ISA", level)
        packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
        results[packed.kernel] = packed.forward(x, h0, c0)
    assert "portable" in results
    for got in results.values():
        for a, b in zip(got, results["portable"]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision", REDUCED)
def test_cell_equals_a_one_step_sequence_and_rows_are_independent(precision):
    # A cell step is a one-step forward; and a row's result does not depend on the other rows
    # of its batch (int8 quantizes per row), bit for bit.
    x, w_ih, w_hh, bias, h0, c0 = problem(5, 6, 20, 24, seed=11)
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
    y, h_n, c_n = packed.forward(x[:1], h0, c0)
    h1, c1 = packed.cell(x[0], h0, c0)
    np.testing.assert_array_equal(h1, h_n)
    np.testing.assert_array_equal(c1, c_n)
    y, h_n, c_n = packed.forward(x, h0, c0)
    for b in range(6):
        yb, hb, cb = packed.forward(x[:, b:b + 1], h0[b:b + 1], c0[b:b + 1])
        np.testing.assert_array_equal(yb[:, 0], y[:, b])
        np.testing.assert_array_equal(cb[0], c_n[b])


@pytest.mark.parametrize("precision", REDUCED)
def test_lengths_follow_the_reference(precision):
    x, w_ih, w_hh, bias, h0, c0 = problem(6, 4, 12, 16, seed=12)
    lengths = [6, 0, 3, 5]
    y, h_n, c_n = lc.pack_lstm(w_ih, w_hh, bias, precision=precision).forward(
        x, h0, c0, lengths=lengths)
    want = ref.lstm_forward(*f64((x, w_ih, w_hh, bias, h0, c0)), training=False,
                            precision=precision, lengths=lengths)
    for got, expected in zip((y, h_n, c_n), want):
        assert np.abs(got - expected).max() <= 2e-3
    assert np.all(y[3:, 2] == 0) and np.all(y[:, 1] == 0)
    np.testing.assert_array_equal(h_n[1], h0[1])


@pytest.mark.parametrize("precision", REDUCED)
def test_threads_and_splits_give_the_same_bits(precision):
    # A loop large enough to split, by rows and by columns, in 2 and 3 tasks, gives the bits
    # of one thread (each task quantizes its own rows' operands, or all rows for its columns).
    from lstm_core import _testing

    x, w_ih, w_hh, bias, h0, c0 = problem(4, 48, 64, 256, seed=13)
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
    saved = lc.get_num_threads()
    try:
        lc.set_num_threads(1)
        one = packed.forward(x, h0, c0)
        _testing.allow_more_threads_than_cpus(True)
        for threads in (2, 3):
            lc.set_num_threads(threads)
            for split in ("rows", "columns"):
                _testing.force_split(split)
                plan = _testing.lstm_plan_of(4, 48, 64, 256, np.float32, training=False)
                assert plan["parts"] == threads and plan["by_rows"] == (split == "rows")
                for a, b in zip(packed.forward(x, h0, c0), one):
                    np.testing.assert_array_equal(a, b)
    finally:
        _testing.force_split(None)
        _testing.allow_more_threads_than_cpus(False)
        lc.set_num_threads(saved)


@pytest.mark.parametrize("precision", REDUCED)
def test_owns_its_weights_and_serves_many_threads(precision):
    x, w_ih, w_hh, bias, h0, c0 = problem(5, 3, 8, 16, seed=14)
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
    want = packed.forward(x, h0, c0)
    w_ih[:] = 0
    w_hh[:] = 7
    bias[:] = 0
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(packed.forward(x, h0, c0))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(results) == 20
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision", REDUCED)
def test_non_finite_inputs_give_non_finite_outputs_and_inputs_stay(precision):
    x, w_ih, w_hh, bias, h0, c0 = problem(3, 3, 6, 8, seed=15)
    x[1, 1, 2] = np.nan
    x[0, 2, 0] = np.inf
    copies = [a.copy() for a in (x, w_ih, w_hh, bias, h0, c0)]
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision=precision)
    y, h_n, c_n = packed.forward(x, h0, c0)
    assert np.all(np.isfinite(y[:, 0])) and np.all(np.isfinite(y[0, 1]))
    assert np.isnan(y[1, 1]).all() and np.isnan(h_n[1]).all()
    # an infinity: int8's row scale becomes infinite, hence NaN products, as in the reference;
    # bfloat16 keeps it, and the gates saturate as in float32
    want = ref.lstm_forward(*f64((x, w_ih, w_hh, bias, h0, c0)), training=False,
                            precision=precision)[0]
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    assert np.isnan(y[0, 2]).all() == (precision == "int8")
    for a, b in zip((x, w_ih, w_hh, bias, h0, c0), copies):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_refused_clearly(monkeypatch):
    x, w_ih, w_hh, bias, h0, c0 = problem(2, 2, 3, 4, seed=16)
    with pytest.raises(ValueError, match="'float32', 'float64', 'bfloat16', 'int8'"):
        lc.pack_lstm(w_ih, w_hh, bias, precision="float16")
    packed = lc.pack_lstm(w_ih, w_hh, bias, precision="int8")
    assert "kernel=" in repr(packed) and packed.w_ih.dtype == np.float32
    with pytest.raises(TypeError, match=r"from float32 inputs: pass x.astype\(np.float32\)"):
        packed.forward(x.astype(np.float64))
    with pytest.raises(TypeError, match=r"x_t.astype\(np.float32\)"):
        packed.cell(x[0].astype(np.float64), h0, c0)
    with pytest.raises(ValueError, match="x"):
        packed.forward(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(TypeError, match="h0"):
        packed.forward(x, h0.astype(np.float64))
    monkeypatch.setenv("LSTM_CORE_MAX_ISA", "sse9")
    with pytest.raises(ValueError, match="LSTM_CORE_MAX_ISA='sse9'.*'portable', 'avx2'"):
        lc.pack_lstm(w_ih, w_hh, bias, precision="bfloat16")
    # float64 weights are accepted (rounded through float32, as the reference does)
    monkeypatch.delenv("LSTM_CORE_MAX_ISA")
    p64 = lc.pack_lstm(w_ih.astype(np.float64), w_hh.astype(np.float64),
                       bias.astype(np.float64), precision="bfloat16")
    for a, b in zip(p64.forward(x, h0, c0), lc.pack_lstm(w_ih, w_hh, bias,
                                                         precision="bfloat16").forward(x, h0, c0)):
        np.testing.assert_array_equal(a, b)


def test_bad_input_never_crashes_the_process(tmp_path):
    # Wrong shapes and dtypes in a subprocess: a crash would show as a signal, not an error.
    setup = """
import numpy as np, lstm_core as lc
w_ih = np.zeros((16, 3), np.float32); w_hh = np.zeros((16, 4), np.float32)
b = lc.pack_lstm(w_ih, w_hh, precision="bfloat16"); q = lc.pack_lstm(w_ih, w_hh, precision="int8")
"""
    calls = [f"{p}.{call}" for p in ("b", "q") for call in (
        "forward(np.zeros((2, 2, 3)))", "forward(np.zeros((2, 3)))",
        "cell(np.zeros((2, 4), np.float32), None, None)",
        "forward(np.zeros((2, 2, 3), np.float32), np.zeros((3, 4), np.float32))",
        "forward(np.zeros((2, 2, 3), np.float32), lengths=[3, 1])")]
    assert_refused_in_subprocess(setup, calls, cwd=tmp_path)


# ----------------------------------------------------------------------------- lstm_forward


@pytest.mark.parametrize("precision", REDUCED)
def test_functional_inference_equals_the_packed_lstm(precision):
    x, w_ih, w_hh, bias, h0, c0 = problem(5, 4, 9, 12, seed=17)
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False,
                                         precision=precision, lengths=[5, 3, 0, 1])
    assert cache is None
    want = lc.pack_lstm(w_ih, w_hh, bias, precision=precision).forward(
        x, h0, c0, lengths=[5, 3, 0, 1])
    for a, b in zip((y, h_n, c_n), want):
        np.testing.assert_array_equal(a, b)


# (T, B, I, H, lengths): one thread's packed loop, a loop split between tasks with the weight
# products on them, the BLAS path of larger products, one row, variable lengths.
MIXED = [(6, 3, 10, 16, None), (5, 1, 7, 9, None), (12, 48, 64, 96, None),
         (20, 16, 64, 64, [20, 3, 0, 11] * 4), (8, 64, 160, 128, None)]


@pytest.mark.parametrize("T, B, I, H, lengths", MIXED)
def test_mixed_precision_training_follows_the_reference(T, B, I, H, lengths):
    x, w_ih, w_hh, bias, h0, c0 = problem(T, B, I, H, seed=T + B)
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    dh_n, dc_n = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    copies = [a.copy() for a in (x, w_ih, w_hh, bias, h0, c0)]
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths=lengths,
                                         precision="bfloat16")
    assert cache.precision == "bfloat16" and "precision='bfloat16'" in repr(cache)
    np.testing.assert_array_equal(cache.x, P.round_bfloat16(x))
    grads = lc.lstm_backward(cache, dy, dh_n, dc_n)
    for a, b in zip((x, w_ih, w_hh, bias, h0, c0), copies):
        np.testing.assert_array_equal(a, b)  # the rounding works on copies
    args64 = f64((x, w_ih, w_hh, bias, h0, c0))
    ry, rh, rc, rcache = ref.lstm_forward(*args64, lengths=lengths, precision="bfloat16")
    rgrads = ref.lstm_backward(rcache, *f64((dy, dh_n, dc_n)))
    ey, eh, ec, ecache = ref.lstm_forward(*args64, lengths=lengths)
    egrads = ref.lstm_backward(ecache, *f64((dy, dh_n, dc_n)))
    for got, want in zip((y, h_n, c_n), (ry, rh, rc)):
        assert np.abs(got - want).max() <= 2e-3
    for name, got, want, exact in zip(grads._fields, grads, rgrads, egrads):
        scale = np.abs(exact).max()
        # Against the reference of the same scheme: where float32 and float64 dz straddle a
        # bfloat16 rounding boundary, one operand differs by an ulp (2**-8 relative):
        # measured up to 5e-4 of the largest gradient; 4e-3 stays below the scheme's own
        # error against float64 (1-5e-3) and far below a wrong operand (order 1).
        assert np.abs(got - want).max() <= 4e-3 * scale, name
        # The target against float64: relative error <= 2e-2.
        assert np.abs(got - exact).max() <= 2e-2 * scale, name


def test_precision_arguments_are_checked():
    x, w_ih, w_hh, bias, h0, c0 = problem(2, 2, 3, 4, seed=18)
    with pytest.raises(ValueError, match="precision must be None, 'bfloat16' or 'int8'"):
        lc.lstm_forward(x, w_ih, w_hh, precision="fp8")
    with pytest.raises(ValueError, match="inference only: pass training=False"):
        lc.lstm_forward(x, w_ih, w_hh, precision="int8")
    for training in (True, False):
        with pytest.raises(TypeError, match="computes from float32 arrays"):
            lc.lstm_forward(*f64((x, w_ih, w_hh)), precision="bfloat16", training=training)


def test_the_kernels_round_as_the_reference_bit_for_bit():
    # The C rounding (mixed precision's x, the packed weights) against the reference's on
    # every special case: ties to even both ways, subnormals (to a signed zero), the largest
    # finite values (to infinity), infinities and NaNs, and a random sample.
    special = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8), 1 + 2.0**-8 + 2.0**-20,
                        1e-39, -1e-39, 1.2e-38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan, 0.0,
                        -0.0], np.float32)
    rng = np.random.default_rng(19)
    values = np.concatenate([special, rng.standard_normal(1000).astype(np.float32) * 10.0**
                             rng.integers(-30, 30, 1000)]).astype(np.float32)
    x = np.resize(values, (len(values) // 2, 2, 1)).astype(np.float32)
    cache = lc.lstm_forward(x, np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32),
                            precision="bfloat16")[3]
    got = cache.x.view(np.uint32)
    want = P.bfloat16_bits(x).astype(np.uint32) << 16
    np.testing.assert_array_equal(got, want)
