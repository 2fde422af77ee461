"""Fuzz harness over lstm_core's public API: lstm_forward (both modes), lstm_backward, lstm_cell.

The input bytes choose the entry point, the sizes (T <= 6, B <= 5, I <= 7, H <= 6, zeros
included), the dtype, the sequence lengths (none, valid, or invalid), and for every argument: present or None, a wrong ndim or size, an odd
dtype ('>f4', bool, int, float16, complex, object), a list or a scalar instead of an array, and
its memory layout (Fortran, negative strides, strided, misaligned, read-only, zero strides);
values come from a seeded normal distribution and a palette of hard values (+-20, +-89, +-710,
+-1e30, subnormals, -0, NaN, +-inf).

A finding is anything but the documented outcome:
  * an exception other than TypeError, ValueError or MemoryError (and under ASan, any report);
  * a result of the wrong shape or dtype; a gate outside [0, 1] or an h outside [-1, 1];
  * a non-finite result from finite, moderate inputs (|value| <= 100);
  * in float64, a result more than 1e-8 (relative to its largest value) away from the reference.

Run it (ASan build, one core; see README "Reliability"):
    python tests/fuzz/fuzz_api.py -max_total_time=1800 <work dir> tests/fuzz/corpus
Replayed without atheris by tests/reliability/test_fuzz_corpus.py, through run_one().
"""

import math
import sys

import numpy as np

import lstm_core as lc
from lstm_core import reference

EXPECTED_ERRORS = (TypeError, ValueError, MemoryError)
PALETTE = [0.0, -0.0, 1.0, -1.0, 0.5, -3.5, 20.0, -20.0, 88.0, -89.0, 710.0, -710.0, 1e30,
           -1e30, 1e-40, 5e-324, math.nan, math.inf, -math.inf]
ODD_DTYPES = [">f4", ">f8", np.bool_, np.int32, np.int64, np.float16, np.complex64, object]
MODERATE = 100.0


class Reader:
    """Decisions read from the fuzzer's bytes; past the end every byte reads as 0."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def byte(self):
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self, lo, hi):
        return lo + self.byte() % (hi - lo + 1)

    def choice(self, options):
        return options[self.byte() % len(options)]

    def chance(self, percent):
        return self.byte() % 100 < percent


# ----------------------------------------------------------------------------- arrays


def _values(r, shape, dtype):
    """float64 values for an array of shape: scaled normals, plus hard values when asked."""
    rng = np.random.default_rng(r.byte() | r.byte() << 8)
    a = rng.standard_normal(shape) * r.choice([0.1, 0.5, 1.0, 3.0])
    if a.size and r.chance(30):
        for _ in range(r.int(1, 4)):
            a.flat[r.byte() % a.size] = r.choice(PALETTE)
    if r.chance(5):
        a[...] = r.choice(PALETTE)
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def _layout(r, a):
    """a, or a view with the same values in an unusual layout (never out of bounds)."""
    kind = r.choice(["c"] * 6 + ["fortran", "negative", "strided", "misaligned", "readonly",
                                 "broadcast"])
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "negative":
        return np.flip(np.flip(a).copy())
    if kind == "strided":
        big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "misaligned" and a.dtype != object:
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        view = buf[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view
    if kind == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if kind == "broadcast" and a.ndim and a.shape[0]:
        return np.broadcast_to(a[:1], a.shape)
    return a


def _argument(r, shape, dtype, optional):
    """An argument meant to have this shape and dtype; sometimes wrong in one way."""
    k = r.byte()
    if optional and k < 40:
        return None
    if k >= 215:
        wrong = r.int(0, 7)
        if wrong == 0:
            return None
        if wrong == 1:
            return _values(r, shape, np.float64).tolist()
        if wrong == 2:
            return r.choice([0.0, 1, "x", np.float64(1.0), memoryview(b"abcd")])
        if wrong in (3, 4) and shape:  # one size off by one or zero
            axis = r.byte() % len(shape)
            shape = shape[:axis] + (r.choice([0, shape[axis] + 1, max(shape[axis] - 1, 0)]),) \
                + shape[axis + 1:]
        elif wrong == 5:  # one axis more or fewer
            shape = shape + (1,) if r.chance(50) or not shape else shape[:-1]
        else:
            dtype = r.choice(ODD_DTYPES + [np.float32, np.float64])
    return _layout(r, _values(r, shape, dtype))


# ----------------------------------------------------------------------------- checks


def _arrays(*values):
    return [v for v in values if isinstance(v, np.ndarray)]


def _moderate(*values):
    """All arguments are float arrays with finite values of at most MODERATE."""
    arrays = _arrays(*values)
    return all(a.dtype.kind == "f" and np.all(np.isfinite(a)) and
               (a.size == 0 or np.abs(a).max() <= MODERATE) for a in arrays)


def _check_shape(name, a, shape, dtype):
    assert isinstance(a, np.ndarray), f"{name} is {type(a).__name__}"
    assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"


def _check_bounded(name, a, low=-1.0):
    ok = np.isnan(a) | ((a >= low) & (a <= 1))
    assert np.all(ok), f"{name} outside [{low}, 1]"


def _check_close(name, a, ref):
    assert np.array_equal(np.isnan(a), np.isnan(ref)), f"{name}: NaN positions differ"
    if a.size:
        scale = max(1.0, float(np.nanmax(np.abs(ref))) if np.any(~np.isnan(ref)) else 1.0)
        err = float(np.nanmax(np.abs(a - ref))) if np.any(~np.isnan(a)) else 0.0
        assert err <= 1e-8 * scale, f"{name}: {err:.3e} from the reference"


def _as64(values):
    return [v if v is None else np.asarray(v, dtype=np.float64) for v in values]


# ----------------------------------------------------------------------------- entry points


def _lengths(r, T, B):
    """None, valid lengths in [0, T] (a list or an integer array), or invalid ones."""
    k = r.byte()
    if k < 130:
        return None
    valid = [r.int(0, T) for _ in range(B)]
    if k < 200:
        return valid
    if k < 215:
        return np.array(valid, dtype=r.choice([np.int8, np.uint16, np.int64, np.uint64]))
    return r.choice([valid + [0], valid[:-1], [T + 1] * B, [-1] * B, [0.5] * B, "ab",
                     np.array(valid, dtype=float), [2**63] * B, np.array(valid, dtype=object),
                     np.array(valid, dtype=bool)])


def _sizes(r):
    return r.int(0, 6), r.int(0, 5), r.int(0, 7), r.int(0, 6)


def _forward(r):
    T, B, I, H = _sizes(r)
    dtype = r.choice([np.float32, np.float64])
    args = [_argument(r, (T, B, I), dtype, False), _argument(r, (4 * H, I), dtype, False),
            _argument(r, (4 * H, H), dtype, False), _argument(r, (4 * H,), dtype, True),
            _argument(r, (B, H), dtype, True), _argument(r, (B, H), dtype, True)]
    training = r.choice([True, False, 1, 0, None, "yes"])
    lengths = _lengths(r, T, B)
    y, h_n, c_n, cache = lc.lstm_forward(*args, training=training, lengths=lengths)
    # The call succeeded: x (whose T is free) and the weights set the sizes and the dtype.
    (T, B, I), H, dtype = args[0].shape, args[2].shape[1], args[0].dtype
    _check_shape("y", y, (T, B, H), dtype)
    _check_shape("h_n", h_n, (B, H), dtype)
    _check_shape("c_n", c_n, (B, H), dtype)
    assert (cache is None) == (not training)
    _check_bounded("y", y)
    if T > 0:  # h_n is some h_t, except for sequences of length 0 (h_n = h0)
        _check_bounded("h_n", h_n if lengths is None else h_n[np.asarray(lengths) > 0])
    if lengths is not None and T > 0:  # outputs past each sequence's length are zeros
        past = np.arange(T)[:, None] >= np.asarray(lengths)[None, :]
        assert np.all(y[past] == 0), "y is not zero past a sequence's length"
    if T == 0:  # the state passes through, bit for bit
        for name, out, init in (("h_n", h_n, args[4]), ("c_n", c_n, args[5])):
            want = np.zeros((B, H), dtype) if init is None else np.asarray(init)
            assert out.tobytes() == np.ascontiguousarray(want).tobytes(), f"{name} != initial"
    if cache is not None:
        i, f, g, o = np.split(cache.gates, 4, axis=-1)
        for name, gate in (("i", i), ("f", f), ("o", o)):
            _check_bounded(f"gate {name}", gate, 0.0)
        _check_bounded("gate g", g)
    if _moderate(*args):
        for name, a in (("y", y), ("h_n", h_n), ("c_n", c_n)):
            assert np.all(np.isfinite(a)), f"{name}: non-finite from moderate inputs"
        if dtype == np.float64:
            ref = reference.lstm_forward(*_as64(args), lengths=lengths)
            for name, a, e in zip(("y", "h_n", "c_n"), (y, h_n, c_n), ref):
                _check_close(name, a, e)
    return "ok"


def _backward(r):
    T, B, I, H = _sizes(r)
    dtype = r.choice([np.float32, np.float64])
    fwd = [_layout(r, _values(r, s, dtype)) for s in ((T, B, I), (4 * H, I), (4 * H, H))]
    bias = None if r.chance(30) else _values(r, (4 * H,), dtype)
    fwd += [bias, _values(r, (B, H), dtype), _values(r, (B, H), dtype)]
    lengths = None if r.chance(50) else [r.int(0, T) for _ in range(B)]
    cache = lc.lstm_forward(*fwd, lengths=lengths)[3]
    if r.chance(5):
        cache = r.choice([None, fwd[0], (cache,), lc.LSTMCache.__new__(lc.LSTMCache)])
    grads = [_argument(r, (T, B, H), dtype, True), _argument(r, (B, H), dtype, True),
             _argument(r, (B, H), dtype, True)]
    g = lc.lstm_backward(cache, *grads)
    for name, shape in (("dx", (T, B, I)), ("dw_ih", (4 * H, I)), ("dw_hh", (4 * H, H)),
                        ("dh0", (B, H)), ("dc0", (B, H))):
        _check_shape(name, getattr(g, name), shape, dtype)
    assert (g.dbias is None) == (bias is None)
    if _moderate(*fwd, *grads):
        for name in g._fields:
            a = getattr(g, name)
            assert a is None or np.all(np.isfinite(a)), f"{name}: non-finite from moderate inputs"
        if dtype == np.float64:
            ref_cache = reference.lstm_forward(*_as64(fwd), lengths=lengths)[3]
            ref = reference.lstm_backward(ref_cache, *_as64(grads))
            for name in g._fields:
                if getattr(ref, name) is not None:
                    _check_close(name, getattr(g, name), getattr(ref, name))
    return "ok"


def _cell(r):
    _, B, I, H = _sizes(r)
    dtype = r.choice([np.float32, np.float64])
    args = [_argument(r, (B, I), dtype, False), _argument(r, (B, H), dtype, False),
            _argument(r, (B, H), dtype, False), _argument(r, (4 * H, I), dtype, False),
            _argument(r, (4 * H, H), dtype, False), _argument(r, (4 * H,), dtype, True)]
    h1, c1 = lc.lstm_cell(*args)
    (B, I), H, dtype = args[0].shape, args[4].shape[1], args[0].dtype
    _check_shape("h1", h1, (B, H), dtype)
    _check_shape("c1", c1, (B, H), dtype)
    _check_bounded("h1", h1)
    if _moderate(*args):
        assert np.all(np.isfinite(h1)) and np.all(np.isfinite(c1)), "non-finite from moderate"
        if dtype == np.float64:
            for name, a, e in zip(("h1", "c1"), (h1, c1), reference.lstm_cell(*_as64(args))):
                _check_close(name, a, e)
    return "ok"


ENTRY_POINTS = {"forward": _forward, "backward": _backward, "cell": _cell}


def run_one(data):
    """One fuzz input; returns '<entry point>:<outcome>' (ok or the expected error's name).
    Anything unexpected propagates: an AssertionError or another exception is a finding."""
    r = Reader(data)
    name = r.choice(list(ENTRY_POINTS))
    try:
        with np.errstate(all="ignore"):  # the reference meets inf - inf on purpose
            outcome = ENTRY_POINTS[name](r)
    except EXPECTED_ERRORS as e:
        outcome = type(e).__name__
    return f"{name}:{outcome}"


def TestOneInput(data):  # noqa: N802 - the name atheris looks for
    run_one(data)


def main():
    import atheris

    # Coverage feedback from the harness's own branches (which entry point, which fault, which
    # layout) and from lstm_core's Python modules; the compiled module is built by gcc, which
    # has no -fsanitize=fuzzer-no-link, so its C branches give no feedback, only ASan reports.
    for name, fn in list(globals().items()):
        if callable(fn) and getattr(fn, "__module__", None) == __name__ and name != "main":
            if hasattr(fn, "__code__"):
                atheris.instrument_func(fn)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
