"""Saturation and non-finite values.

1. Huge pre-activations (+-20, +-88, +-89, +-710, +-1e30, where exp overflows float32 or
   float64) give finite outputs and gradients, gates in [0, 1] (g in [-1, 1]) and h in [-1, 1],
   equal to the reference; far enough out, sigma and tanh saturate to exactly 0 or +-1.
2. A NaN or an infinity in any input reaches exactly the outputs the reference says it reaches
   (same NaN and infinity positions, the finite rest within tolerance): never masked, never
   spread to rows it does not touch.
3. All of it once more in a fresh process with a timeout: no crash, no hang.
"""

import json
import textwrap

import numpy as np
import pytest

import lstm_core as lc
from lstm_core import reference

from lstm_problems import TOLERANCE, assert_close, run_python

DTYPES = [np.float32, np.float64]
SATURATING = [20.0, 88.0, 89.0, 710.0, 1e30]


def _gates_in_range(gates):
    i, f, g, o = np.split(gates, 4, axis=-1)
    for name, s in (("i", i), ("f", f), ("o", o)):
        assert np.all((s >= 0) & (s <= 1)), f"gate {name} outside [0, 1]"
    assert np.all(np.abs(g) <= 1), "gate g outside [-1, 1]"


def _saturating_problem(dtype, seed):
    """Pre-activations drawn from +-SATURATING (and 0): each (gate, column) of each step gets one.

    x is 1 on a single input, so z = w_ih[:, 0] + h_{t-1} @ w_hh.T: the first term is the huge
    value, the second (w_hh ~ N(0, 1), |h| <= 1) keeps the recurrence alive without
    changing the sign of any huge value.
    """
    rng = np.random.default_rng(seed)
    T, B, H = 4, 3, 2 * len(SATURATING) + 1
    values = np.array(SATURATING + [-v for v in SATURATING] + [0.0])
    w_ih = np.stack([rng.permutation(values) for _ in range(4)]).reshape(4 * H, 1)
    x = np.ones((T, B, 1))
    w_hh = rng.standard_normal((4 * H, H))
    h0 = rng.uniform(-1, 1, (B, H))
    c0 = rng.standard_normal((B, H))
    return [a.astype(dtype) for a in (x, w_ih, w_hh)] + [None] + [
        a.astype(dtype) for a in (h0, c0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_saturated_preactivations_give_finite_bounded_outputs(dtype, seed):
    args = _saturating_problem(dtype, seed)
    y, h_n, c_n, cache = lc.lstm_forward(*args)
    for name, a in (("y", y), ("h_n", h_n), ("c_n", c_n), ("gates", cache.gates)):
        assert np.all(np.isfinite(a)), name
    _gates_in_range(cache.gates)
    assert np.all(np.abs(y) <= 1) and np.all(np.abs(h_n) <= 1)
    assert np.all(np.abs(cache.tanh_c) <= 1)
    ref = reference.lstm_forward(*[None if a is None else a.astype(np.float64) for a in args])
    for name, a, e in zip(("y", "h_n", "c_n"), (y, h_n, c_n), ref[:3]):
        assert_close(a, e, name)
    T, B, H = y.shape
    rng = np.random.default_rng(seed + 100)
    dy, dh_n, dc_n = (rng.standard_normal(s).astype(dtype) for s in ((T, B, H), (B, H), (B, H)))
    g = lc.lstm_backward(cache, dy, dh_n, dc_n)
    rg = reference.lstm_backward(ref[3], dy, dh_n, dc_n)
    for name in ("dx", "dw_ih", "dw_hh", "dh0", "dc0"):
        assert np.all(np.isfinite(getattr(g, name))), name
        assert_close(getattr(g, name), getattr(rg, name), name)
    # the inference path and the cell saturate the same way
    yi, hi, ci, _ = lc.lstm_forward(*args, training=False)
    assert np.all(np.isfinite(yi)) and np.all(np.abs(yi) <= 1) and np.all(np.isfinite(ci))
    h1, c1 = lc.lstm_cell(args[0][0], args[4], args[5], args[1], args[2])
    assert np.all(np.abs(h1) <= 1) and np.all(np.isfinite(c1))
    assert_close(h1, ref[0][0], "h1")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c0_value", [1e30, -1e30])
def test_huge_cell_state_stays_finite(dtype, c0_value):
    """c0 = +-1e30: c keeps its size (f in [0, 1]), tanh(c) saturates, h stays in [-1, 1]."""
    rng = np.random.default_rng(5)
    T, B, I, H = 3, 2, 4, 5
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w_ih = rng.uniform(-0.5, 0.5, (4 * H, I)).astype(dtype)
    w_hh = rng.uniform(-0.5, 0.5, (4 * H, H)).astype(dtype)
    h0 = np.zeros((B, H), dtype)
    c0 = np.full((B, H), c0_value, dtype)
    y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh, None, h0, c0)
    assert np.all(np.isfinite(c_n)) and np.all(np.abs(y) <= 1)
    np.testing.assert_array_equal(np.abs(cache.tanh_c), 1.0)
    g = lc.lstm_backward(cache, np.ones_like(y))
    for name in g._fields:
        value = getattr(g, name)
        assert value is None or np.all(np.isfinite(value)), name


def _activation_grid(dtype):
    """Pre-activations from 1e-8 to the largest finite value, both signs, plus the values
    around which exp over- or underflows (88.72 and 103.97 for float32, 709.78 and 745.13 for
    float64) and the saturation points of sigma and tanh."""
    finfo = np.finfo(dtype)
    mags = np.concatenate([
        np.logspace(-8, np.log10(float(finfo.max)) - 1e-9, 400),
        np.linspace(0, 120, 481),
        np.array([8.0, 9.0, 9.1, 15.0, 16.64, 17.0, 18.0, 19.0, 20.0, 36.0, 37.0, 88.0, 88.72,
                  89.0, 103.9, 104.0, 705.0, 709.78, 710.0, 745.0, 746.0, 1e30, 1e300]),
    ]).astype(np.float64)
    mags = mags[mags <= float(finfo.max)].astype(dtype)
    near = np.concatenate([np.nextafter(mags, dtype(0)), np.nextafter(mags, finfo.max)])
    mags = np.unique(np.concatenate([mags, near]))
    return np.concatenate([mags, -mags, [dtype(np.inf), dtype(-np.inf)]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_over_the_whole_range(dtype):
    """sigma and tanh of every grid value, read from the cache's gates: within 4 eps of the
    float64 reference (absolute; gates are at most 1), exact 1 / 0 / +-1 where the true value
    is nearer to it than half an ulp of 1 allows to tell, never NaN, and infinities saturate."""
    z = _activation_grid(dtype)
    n = z.size
    # one step, one batch row, H = n: z becomes the bias of all four gates (x and h0 are 0)
    bias = np.tile(z, 4).astype(dtype)
    x = np.zeros((1, 1, 1), dtype)
    w_ih = np.zeros((4 * n, 1), dtype)
    w_hh = np.zeros((4 * n, n), dtype)
    _, _, _, cache = lc.lstm_forward(x, w_ih, w_hh, bias)
    i, f, g, o = np.split(cache.gates[0, 0], 4)
    np.testing.assert_array_equal(i, f)
    np.testing.assert_array_equal(i, o)
    z64 = z.astype(np.float64)
    sig, tanh = reference.sigmoid(z64), np.tanh(z64)
    eps = float(np.finfo(dtype).eps)
    for name, got, want, low in (("sigmoid", i, sig, 0.0), ("tanh", g, tanh, -1.0)):
        assert not np.any(np.isnan(got)), f"{name}: NaN"
        assert np.all((got >= low) & (got <= 1)), f"{name}: outside [{low}, 1]"
        err = np.abs(got.astype(np.float64) - want)
        worst = int(np.argmax(err))
        assert err[worst] <= 4 * eps, f"{name}({z[worst]!r}) = {got[worst]!r}, want {want[worst]!r}"
    # exact saturation where the true 1 - sigma(z) ~ exp(-z) and 1 - |tanh(z)| ~ 2 exp(-2|z|)
    # are below an eighth of an ulp of 1 (rounding to nearest must give 1, with a 2x margin)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(i[np.exp(-z64) < eps / 8], 1.0)
        np.testing.assert_array_equal(np.abs(g[2 * np.exp(-2 * np.abs(z64)) < eps / 8]), 1.0)
    assert np.all(i[z64 < -800] == 0.0)  # exp(-800) underflows even float64's subnormals
    assert i[-2] == 1 and i[-1] == 0 and g[-2] == 1 and g[-1] == -1  # z = +inf, -inf


# ----------------------------------------------------------------------------- NaN and Inf

T, B, I, H = 4, 3, 5, 6


def _dense_problem(dtype):
    """Every value non-zero: a NaN times 0 inside a GEMM is NaN in IEEE, but some BLAS skip
    zero multiplicands, and the test must not depend on that."""
    rng = np.random.default_rng(7)

    def nz(*shape, scale=1.0):
        a = rng.uniform(0.2, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
        return (scale * a).astype(dtype)

    return {
        "x": nz(T, B, I), "w_ih": nz(4 * H, I, scale=0.5), "w_hh": nz(4 * H, H, scale=0.5),
        "bias": nz(4 * H, scale=0.3), "h0": nz(B, H, scale=0.5), "c0": nz(B, H),
        "dy": nz(T, B, H), "dh_n": nz(B, H), "dc_n": nz(B, H),
    }


# (argument, index) pairs; each gets NaN, +inf and -inf in turn
POISON_SITES = [
    ("x", (1, 2, 3)), ("x", (0, 0, 0)), ("h0", (1, 0)), ("c0", (0, 4)), ("c0", (2, 5)),
    ("bias", (0 * H + 2,)), ("bias", (1 * H + 2,)), ("bias", (2 * H + 2,)),
    ("bias", (3 * H + 2,)), ("w_ih", (3, 1)), ("w_hh", (2 * H + 1, 3)),
    ("dy", (2, 1, 0)), ("dy", (0, 0, 5)), ("dh_n", (1, 2)), ("dc_n", (2, 3)),
]
POISONS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def _same_nonfinite_and_close(actual, expected, name):
    """Same NaN positions, same infinities (with sign), finite parts within tolerance."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{name}: NaN")
    inf = np.isinf(expected)
    np.testing.assert_array_equal(np.isinf(actual), inf, err_msg=f"{name}: inf positions")
    np.testing.assert_array_equal(actual[inf], expected[inf], err_msg=f"{name}: inf signs")
    finite = np.isfinite(expected)
    if finite.any():
        scale = max(1.0, float(np.abs(expected[finite]).max()))
        err = float(np.abs(actual[finite] - expected[finite]).max()) / scale
        assert err <= TOLERANCE[np.dtype(np.float32)], f"{name}: error {err:.2e}"


@np.errstate(all="ignore")  # the reference meets inf - inf and 0 * inf on purpose
def run_poisoned(dtype, arg, index, value):
    """Forward, backward and cell with one poisoned value, against the reference; returns the
    number of non-finite output elements (so the caller can see the poison arrived)."""
    a = _dense_problem(dtype)
    a[arg][index] = value
    fwd = [a[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")]
    y, h_n, c_n, cache = lc.lstm_forward(*fwd)
    ry, rh, rc, rcache = reference.lstm_forward(*[v.astype(np.float64) for v in fwd])
    outs = {"y": (y, ry), "h_n": (h_n, rh), "c_n": (c_n, rc)}
    iy, ih, ic, _ = lc.lstm_forward(*fwd, training=False)
    outs.update({"y_inference": (iy, ry), "h_n_inference": (ih, rh), "c_n_inference": (ic, rc)})
    grads = [a[k] for k in ("dy", "dh_n", "dc_n")]
    g = lc.lstm_backward(cache, *grads)
    rg = reference.lstm_backward(rcache, *[v.astype(np.float64) for v in grads])
    outs.update({name: (getattr(g, name), getattr(rg, name)) for name in g._fields})
    cell = [a["x"][0], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a["bias"]]
    h1, c1 = lc.lstm_cell(*cell)
    rh1, rc1 = reference.lstm_cell(*[v.astype(np.float64) for v in cell])
    outs.update({"cell_h": (h1, rh1), "cell_c": (c1, rc1)})
    for name, (got, want) in outs.items():
        assert got.dtype == dtype, name
        _same_nonfinite_and_close(got, want, name)
    return sum(int(np.sum(~np.isfinite(got))) for got, _ in outs.values())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("arg,index", POISON_SITES,
                         ids=[f"{a}{list(i)}" for a, i in POISON_SITES])
def test_nonfinite_inputs_reach_exactly_the_affected_outputs(arg, index, poison, dtype):
    nonfinite = run_poisoned(dtype, arg, index, POISONS[poison])
    if poison == "nan":  # a NaN always arrives somewhere (an infinity may saturate a gate)
        assert nonfinite > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_stays_in_its_batch_row(dtype):
    """A NaN in x[t, b] poisons row b from step t on, and nothing else of the forward pass."""
    a = _dense_problem(dtype)
    a["x"][1, 2, 3] = np.nan
    y, h_n, c_n, _ = lc.lstm_forward(*(a[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")))
    assert np.all(np.isnan(y[1:, 2])) and np.all(np.isnan(h_n[2])) and np.all(np.isnan(c_n[2]))
    assert np.all(np.isfinite(y[:1])) and np.all(np.isfinite(y[:, :2]))
    assert np.all(np.isfinite(h_n[:2])) and np.all(np.isfinite(c_n[:2]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gate", range(4), ids=list("ifgo"))
def test_nan_preactivation_of_each_gate_reaches_h(dtype, gate):
    """A NaN pre-activation of any one gate of column j makes h[:, j] NaN after one step (and
    c[:, j] too, except for the output gate), and leaves the other columns alone."""
    a = _dense_problem(dtype)
    a["bias"][gate * H + 2] = np.nan
    y, h_n, c_n, _ = lc.lstm_forward(a["x"][:1], a["w_ih"], a["w_hh"], a["bias"], a["h0"], a["c0"])
    assert np.all(np.isnan(h_n[:, 2]))
    assert np.all(np.isnan(c_n[:, 2])) == (gate != 3)
    others = np.delete(np.arange(H), 2)
    assert np.all(np.isfinite(h_n[:, others])) and np.all(np.isfinite(c_n[:, others]))


_FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(sys.argv[1])))  # tests/: the shared helpers
    spec = importlib.util.spec_from_file_location("_saturation", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import numpy as np
    done = 0
    for dtype in mod.DTYPES:
        for arg, index in mod.POISON_SITES:
            for value in mod.POISONS.values():
                mod.run_poisoned(dtype, arg, index, value)
                done += 1
        # everything NaN, everything infinite: every entry point returns
        for value in (np.nan, np.inf):
            a = {k: np.full_like(v, value) for k, v in mod._dense_problem(dtype).items()}
            fwd = [a[k] for k in ("x", "w_ih", "w_hh", "bias", "h0", "c0")]
            y, h_n, c_n, cache = mod.lc.lstm_forward(*fwd)
            mod.lc.lstm_backward(cache, a["dy"], a["dh_n"], a["dc_n"])
            mod.lc.lstm_forward(*fwd, training=False)
            mod.lc.lstm_cell(a["x"][0], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a["bias"])
            assert np.all(np.isnan(y)) if value != value else not np.all(np.isfinite(c_n))
            done += 1
    print("DONE", json.dumps(done))
    """
)


def test_nonfinite_sweep_in_fresh_process_neither_crashes_nor_hangs(tmp_path):
    proc = run_python(_FRESH_PROCESS_SCRIPT, __file__, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, (
        f"exit code {proc.returncode} (negative = signal)\n{proc.stderr[-2000:]}")
    expected = len(DTYPES) * (len(POISON_SITES) * len(POISONS) + 2)
    assert proc.stdout.split()[-2:] == ["DONE", json.dumps(expected)], proc.stdout[-500:]
