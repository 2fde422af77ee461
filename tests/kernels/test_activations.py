"""Accuracy and saturation of the kernels' sigmoid and tanh (src/kernels/lstm_activations.h).

A one-step forward with I = H = 1, w_ih = 1, w_hh = 0 and no bias has pre-activations
z = x exactly, so its cache holds sigmoid(x) (gates i, f, o) and tanh(x) (gate g) for every
one of the B rows.
"""

import numpy as np
import pytest

import lstm_core as lc

# Largest error allowed, in units in the last place of the dtype at the exact value.  The
# measured maxima over these grids are 2.4 ulps (sigmoid) and 2.5 ulps (tanh), in float32 and
# in float64 alike: the roundings of the reduced argument, the series, the division and the
# scaling add up.  4 leaves a margin and still catches a broken polynomial or constant
# (errors of hundreds of ulps or more).
MAX_ULPS = 4


def activations(values, dtype):
    """(sigmoid(values), tanh(values)) as the kernel computes them, in dtype."""
    x = np.asarray(values, dtype=dtype).reshape(1, -1, 1)  # (T=1, B=n, I=1)
    _, _, _, cache = lc.lstm_forward(
        x, np.ones((4, 1), dtype), np.zeros((4, 1), dtype), training=True
    )
    gates = cache.gates[0]  # (n, 4): i, f, g, o
    return gates[:, 0], gates[:, 2]


def exact(values):
    """Reference sigmoid and tanh in extended precision (80-bit long double on x86)."""
    z = np.asarray(values, dtype=np.longdouble)
    e = np.exp(-np.abs(z))
    sigmoid = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return sigmoid, np.tanh(z)


def ulp_error(actual, expected, dtype):
    """|actual - expected| in ulps of dtype at expected (ulp of the smallest normal below it)."""
    tiny = np.finfo(dtype).tiny
    rounded = np.asarray(expected, dtype=dtype)
    ulp = np.spacing(np.maximum(np.abs(rounded), tiny)).astype(np.longdouble)
    return np.abs(np.asarray(actual, np.longdouble) - expected) / ulp


def grid(dtype):
    """Dense over the interesting range, logarithmic out to the largest finite values."""
    linear = np.linspace(-40, 40, 200_001)
    small = np.geomspace(1e-30, 1, 2_001)
    large = np.geomspace(1, np.finfo(dtype).max / 2, 2_001)
    return np.concatenate([linear, small, -small, large, -large, [0.0]]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sigmoid_and_tanh_within_a_few_ulps(dtype):
    z = grid(dtype)
    sigmoid, tanh = activations(z, dtype)
    sigmoid_exact, tanh_exact = exact(z)
    # Where the true sigmoid is below the smallest normal number the kernel returns 0
    # (documented): compare there in absolute terms.
    normal = sigmoid_exact >= np.finfo(dtype).tiny
    assert np.all(sigmoid[~normal] == 0)
    worst_sigmoid = ulp_error(sigmoid[normal], sigmoid_exact[normal], dtype).max()
    worst_tanh = ulp_error(tanh, tanh_exact, dtype).max()
    assert worst_sigmoid <= MAX_ULPS, f"sigmoid: {worst_sigmoid:.2f} ulps"
    assert worst_tanh <= MAX_ULPS, f"tanh: {worst_tanh:.2f} ulps"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_saturation_is_exact_and_finite(dtype):
    big = [20, 88, 89, 710, 1e30, np.finfo(dtype).max, np.inf]
    z = np.array(big + [-v for v in big], dtype=dtype)
    sigmoid, tanh = activations(z, dtype)
    half = len(big)
    assert np.all(np.isfinite(sigmoid)) and np.all(np.isfinite(tanh))
    np.testing.assert_array_equal(tanh[:half], 1.0)
    np.testing.assert_array_equal(tanh[half:], -1.0)
    np.testing.assert_array_equal(sigmoid[1:half], 1.0)
    assert 0.999999 < sigmoid[0] <= 1.0  # sigmoid(20) = 1 - 2e-9: 1.0 in float32, not in float64
    assert np.all((sigmoid[half:] >= 0) & (sigmoid[half:] < 1e-8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_nan_propagates(dtype):
    sigmoid, tanh = activations([np.nan, 0.0], dtype)
    assert np.isnan(sigmoid[0]) and np.isnan(tanh[0])
    assert sigmoid[1] == 0.5 and tanh[1] == 0.0


def test_symmetry():
    z = np.linspace(0, 30, 10_001)
    for dtype in (np.float32, np.float64):
        s_pos, t_pos = activations(z, dtype)
        s_neg, t_neg = activations(-z, dtype)
        np.testing.assert_array_equal(t_neg, -t_pos)  # tanh is odd, bit for bit
        np.testing.assert_allclose(s_pos + s_neg, 1.0, rtol=0, atol=2 * np.finfo(dtype).eps)


def every_float(lo, hi, dtype):
    """Every number of dtype in [lo, hi] (lo and hi of one sign), in increasing order."""
    bits = np.dtype({np.float32: np.int32, np.float64: np.int64}[dtype])
    a, b = sorted(int(v) for v in np.asarray([lo, hi], dtype).view(bits))
    return np.arange(a, b + 1, dtype=bits).view(dtype)


# The edges of the approximations (src/kernels/lstm_activations.h), where a constant a little off
# goes unseen by the coarser grid above: sigmoid's underflow to 0 (the threshold EXP_LOW and
# the true edge ln(smallest normal)), sigmoid's rounding to 1, and tanh's to +-1 (TANH_BIG).
# float32: every number in a band around each; float64: every number within 2^16 ulps of each
# threshold and of each true edge, and a dense grid over the band.
EDGES = {
    np.float32: [(-88.0, -86.5), (16.5, 18.0), (8.5, 10.0)],
    np.float64: [(-709.5, -707.5), (36.5, 38.5), (18.5, 20.5)],
}
THRESHOLDS_F64 = [-708.39, float(np.log(np.finfo(np.float64).tiny)), -np.log(2.0**-54),
                  19.5, 0.5 * np.log(2.0**55)]


def edge_grid(dtype):
    if dtype == np.float32:
        return np.concatenate([every_float(lo, hi, dtype) for lo, hi in EDGES[dtype]])
    dense = [np.linspace(lo, hi, 400_001) for lo, hi in EDGES[dtype]]
    exact_edges = []
    for t in THRESHOLDS_F64:
        t = np.float64(t)
        exact_edges.append(every_float(t - 2**16 * np.spacing(t), t + 2**16 * np.spacing(t),
                                       np.float64))
    return np.concatenate(dense + exact_edges).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sigmoid_and_tanh_within_a_few_ulps_at_their_edges(dtype):
    z = edge_grid(dtype)
    z = np.concatenate([z, -z])
    sigmoid, tanh = activations(z, dtype)
    sigmoid_exact, tanh_exact = exact(z)
    normal = sigmoid_exact >= np.finfo(dtype).tiny
    assert np.all(sigmoid[~normal] == 0), "a sigmoid below the smallest normal is not 0"
    errors = ulp_error(sigmoid[normal], sigmoid_exact[normal], dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= MAX_ULPS, \
        f"sigmoid({z[normal][worst]!r}): {errors[worst]:.3g} ulps"
    errors = ulp_error(tanh, tanh_exact, dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= MAX_ULPS, f"tanh({z[worst]!r}): {errors[worst]:.3g} ulps"
