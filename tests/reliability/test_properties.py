"""Property tests: the compiled path against the float64 reference over random problems.

Hypothesis draws the sizes (T in [0, 16], B in [0, 8], I and H in [1, 40]), the dtype, which of
bias / h0 / c0 / dy / dh_n / dc_n / lengths (variable sequence lengths) are given, the scales of the values and a seed; numpy's
generator fills the arrays from the seed (fast, and every example is reproducible from its
printed blob).  Under the "ci" profile (selected when the CI environment variable is set) the
examples are derandomized: every CI run checks the same cases.

Error model.  For each output array
    err = max|fast - reference| / max(1, max|reference|)
must stay below
    tol = C * eps(dtype) * sqrt(K)
where K counts the rounded operations that feed one element, taken as independent errors whose
variances add (so the error grows like sqrt(K), the model oneDNN's benchdnn and the rounding
error literature use for dot products):
    y, h_n, c_n           K_fwd = T * (I + H + 1)     per step a dot product over I + H terms
                                                      plus the bias, carried by the recurrence
    dx, dh0, dc0          K_bwd = K_fwd + T * 4H      plus, per step back, dh = dz @ w_hh
    dw_ih, dw_hh, dbias   K_w   = K_bwd + T * B       plus the sum over the T*B rows
C = 8 for both dtypes.  It does not rely on libm-exact activations: the smallest tolerance
(T = I = H = 1: K_fwd = 3) is 14 eps, room for activations a few ulps off.  The worst ratio
err / tol measured over the derandomized CI examples is stated in MEASURED_MAX_RATIO below;
`pytest tests/reliability/test_properties.py -s` prints it again.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstm_core as lc
from lstm_core import reference

settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

C = 8
EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps),
       np.dtype(np.float64): float(np.finfo(np.float64).eps)}
# Measured with the CI profile (2,000 forward+backward examples, 300 cell, 200 split) on the
# vectorised activations (<= 2.5 ulps): worst 0.371, dw_ih in float64 for a tiny problem with
# large inputs (T=B=I=H=2, x ~ N(0, 3^2), weights 2/sqrt(H)), where the sum over rows cancels
# and max(1, |dw_ih|) understates the size of its terms; every other output stays below 0.1.
# Three random (dev profile) runs peaked at 0.14-0.17.  Documentation only; the test asserts
# err <= tol.
MEASURED_MAX_RATIO = 0.371

FORWARD_EXAMPLES = 2000
CELL_EXAMPLES = 300
SPLIT_EXAMPLES = 200

# Largest err/tol seen in this process, per output name (printed at the end of the module).
OBSERVED = {}


@pytest.fixture(scope="module", autouse=True)
def _report_observed():
    yield
    if OBSERVED:
        worst = max(OBSERVED.items(), key=lambda kv: kv[1][0])
        print("\nproperty tests: max err/tol per output: "
              + ", ".join(f"{k} {v[0]:.3f}" for k, v in sorted(OBSERVED.items()))
              + f"; worst {worst[0]} {worst[1][0]:.3f} at {worst[1][1]}")


def accumulation_lengths(T, B, I, H):
    k_fwd = T * (I + H + 1)
    k_bwd = k_fwd + T * 4 * H
    return {"fwd": k_fwd, "bwd": k_bwd, "w": k_bwd + T * B}


def check(name, fast, ref, K, label):
    """fast (float32/64) against ref (float64 values) within C * eps * sqrt(K)."""
    assert fast.shape == ref.shape, f"{name}: shape {fast.shape} != {ref.shape}"
    if ref.size == 0:
        return
    ref = np.asarray(ref, dtype=np.float64)
    assert np.all(np.isfinite(fast)), f"{name}: non-finite values"
    err = float(np.abs(fast.astype(np.float64) - ref).max()) / max(1.0, float(np.abs(ref).max()))
    tol = C * EPS[fast.dtype] * math.sqrt(max(K, 1))
    ratio = err / tol
    key = f"{name}[{fast.dtype}]"
    if ratio > OBSERVED.get(key, (-1.0,))[0]:
        OBSERVED[key] = (ratio, label)
    assert err <= tol, f"{name}: error {err:.3e} > tol {tol:.3e} (K={K}) for {label}"


def assert_gates_in_range(gates, H):
    """Activated gates (..., 4H): i, f, o are sigmoids in [0, 1], g is a tanh in [-1, 1]."""
    i, f, g, o = np.split(gates, 4, axis=-1)
    for name, s in (("i", i), ("f", f), ("o", o)):
        assert np.all((s >= 0) & (s <= 1)), f"gate {name} outside [0, 1]"
    assert np.all(np.abs(g) <= 1), "gate g outside [-1, 1]"


@st.composite
def problems(draw):
    T = draw(st.integers(0, 16))
    B = draw(st.integers(0, 8))
    I = draw(st.integers(1, 40))
    H = draw(st.integers(1, 40))
    return {
        "T": T, "B": B, "I": I, "H": H,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "given": {name: draw(st.booleans())
                  for name in ("bias", "h0", "c0", "dy", "dh_n", "dc_n", "lengths")},
        # weights uniform in +-w/sqrt(H) (torch's init is w = 1); x normal with std sx
        "w": draw(st.sampled_from([0.5, 1.0, 2.0])),
        "sx": draw(st.sampled_from([0.3, 1.0, 3.0])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def make_arrays(p):
    """The arrays of problem p, float64 values exactly representable in p's dtype."""
    T, B, I, H = p["T"], p["B"], p["I"], p["H"]
    rng = np.random.default_rng(p["seed"])
    k = p["w"] / math.sqrt(H)
    a = {
        "x": rng.normal(0, p["sx"], (T, B, I)),
        "w_ih": rng.uniform(-k, k, (4 * H, I)),
        "w_hh": rng.uniform(-k, k, (4 * H, H)),
        "bias": rng.uniform(-1, 1, 4 * H),
        "h0": rng.uniform(-0.9, 0.9, (B, H)),
        "c0": rng.normal(0, 1.5, (B, H)),
        "dy": rng.normal(0, 1, (T, B, H)),
        "dh_n": rng.normal(0, 1, (B, H)),
        "dc_n": rng.normal(0, 1, (B, H)),
    }
    a = {n: v.astype(p["dtype"]) for n, v in a.items()}
    a["lengths"] = rng.integers(0, T + 1, B)
    for name, present in p["given"].items():
        if not present:
            a[name] = None
    return a


def _label(p):
    g = "".join(n[0] if on else "-" for n, on in p["given"].items())
    return (f"T={p['T']} B={p['B']} I={p['I']} H={p['H']} {np.dtype(p['dtype'])} given={g} "
            f"w={p['w']} sx={p['sx']} seed={p['seed']}")


@settings(max_examples=FORWARD_EXAMPLES)
@given(problems())
def test_forward_and_backward_match_reference(p):
    a = make_arrays(p)
    T, B, I, H = p["T"], p["B"], p["I"], p["H"]
    K = accumulation_lengths(T, B, I, H)
    label = _label(p)
    fwd_args = [a[n] for n in ("x", "w_ih", "w_hh", "bias", "h0", "c0")]
    lengths = a["lengths"]
    y, h_n, c_n, cache = lc.lstm_forward(*fwd_args, lengths=lengths)
    ry, rh, rc, rcache = reference.lstm_forward(
        *[None if v is None else v.astype(np.float64) for v in fwd_args], lengths=lengths)
    for name, fast, ref in (("y", y, ry), ("h_n", h_n, rh), ("c_n", c_n, rc)):
        assert fast.dtype == p["dtype"], name
        check(name, fast, ref, K["fwd"], label)
    # the invariants of the cell hold exactly, whatever the rounding
    assert_gates_in_range(cache.gates, H)
    assert np.all(np.abs(y) <= 1) and np.all(np.abs(cache.tanh_c) <= 1)
    if lengths is not None:  # past its length a sequence outputs exact zeros
        assert np.all(y[np.arange(T)[:, None] >= lengths[None, :]] == 0)
    if T == 0:  # the state passes through bit for bit
        for out, init in ((h_n, a["h0"]), (c_n, a["c0"])):
            np.testing.assert_array_equal(out, 0 if init is None else init)
    # inference keeps nothing per step and chunks its input GEMM; same numbers
    iy, ih, ic, none = lc.lstm_forward(*fwd_args, training=False, lengths=lengths)
    assert none is None
    for name, fast, ref in (("y_inference", iy, ry), ("h_n_inference", ih, rh),
                            ("c_n_inference", ic, rc)):
        check(name, fast, ref, K["fwd"], label)

    grad_args = [a[n] for n in ("dy", "dh_n", "dc_n")]
    g = lc.lstm_backward(cache, *grad_args)
    rg = reference.lstm_backward(rcache, *[None if v is None else v.astype(np.float64)
                                           for v in grad_args])
    for name in g._fields:
        fast, ref = getattr(g, name), getattr(rg, name)
        if ref is None:
            assert fast is None and a["bias"] is None, name
            continue
        assert fast.dtype == p["dtype"], name
        check(name, fast, ref, K["w"] if name.startswith(("dw", "db")) else K["bwd"], label)


@settings(max_examples=CELL_EXAMPLES)
@given(problems())
def test_cell_matches_reference(p):
    a = make_arrays(p)
    B, I, H = p["B"], p["I"], p["H"]
    x_t = a["x"][0] if p["T"] else np.zeros((B, I), p["dtype"])
    h = np.zeros((B, H), p["dtype"]) if a["h0"] is None else a["h0"]
    c = np.zeros((B, H), p["dtype"]) if a["c0"] is None else a["c0"]
    args = [x_t, h, c, a["w_ih"], a["w_hh"], a["bias"]]
    h1, c1 = lc.lstm_cell(*args)
    rh1, rc1 = reference.lstm_cell(*[None if v is None else v.astype(np.float64)
                                     for v in args])
    K = accumulation_lengths(1, B, I, H)["fwd"]
    check("cell_h", h1, rh1, K, _label(p))
    check("cell_c", c1, rc1, K, _label(p))
    assert np.all(np.abs(h1) <= 1)


@settings(max_examples=SPLIT_EXAMPLES)
@given(problems(), st.integers(0, 16))
def test_split_sequence_carries_the_state(p, cut):
    """Running x[:k] and then x[k:] from the carried state equals running x at once."""
    a = make_arrays(p)
    k = min(cut, p["T"])
    w = (a["w_ih"], a["w_hh"], a["bias"])
    y, h_n, c_n, _ = lc.lstm_forward(a["x"], *w, a["h0"], a["c0"], training=False)
    y1, h1, c1, _ = lc.lstm_forward(a["x"][:k], *w, a["h0"], a["c0"], training=False)
    y2, h2, c2, _ = lc.lstm_forward(a["x"][k:], *w, h1, c1, training=False)
    K = accumulation_lengths(p["T"], p["B"], p["I"], p["H"])["fwd"]
    label = _label(p) + f" cut={k}"
    check("split_y", np.concatenate([y1, y2]), y.astype(np.float64), K, label)
    check("split_h_n", h2, h_n.astype(np.float64), K, label)
    check("split_c_n", c2, c_n.astype(np.float64), K, label)
