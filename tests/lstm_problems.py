"""Shared test helpers: seeded LSTM problems and per-dtype tolerances.

Imported by the tests as a plain module (pyproject puts tests/ on the path).
"""

import subprocess
import sys

import numpy as np

# Largest error allowed between the compiled path and the float64 reference, relative to the
# largest magnitude of the reference array (or 1 when that is smaller):
#   float64: GEMMs and libm differ from numpy's in the last bits only; 1e-12 leaves room for
#            the longest sums here (T*B = 528 terms) at ~1e-16 each.
#   float32: eps = 1.2e-7; the worst error measured over T <= 100, B <= 16, H <= 64 is 8e-7
#            (dbias, a sum over T*B rows); 5e-6 leaves a 6x margin and still catches any layout
#            or gate bug (those give errors of order 1e-1).
TOLERANCE = {np.dtype(np.float32): 5e-6, np.dtype(np.float64): 1e-12}


def assert_close(actual, expected, name=""):
    """actual (any float dtype) against the float64 expected, at actual's dtype tolerance."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if expected.size == 0:
        return
    assert np.all(np.isfinite(actual)), f"{name}: non-finite values"
    scale = max(1.0, float(np.abs(expected).max()))
    error = float(np.abs(actual - expected).max()) / scale
    tol = TOLERANCE[actual.dtype]
    assert error <= tol, f"{name}: relative error {error:.3e} > {tol:.0e} ({actual.dtype})"


class Problem:
    """A seeded LSTM problem in float64: inputs, weights, non-zero bias and state, gradients."""

    def __init__(self, T, B, I, H, seed=0):
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(H)
        self.x = rng.standard_normal((T, B, I))
        self.w_ih = rng.uniform(-k, k, (4 * H, I))
        self.w_hh = rng.uniform(-k, k, (4 * H, H))
        # b_ih + b_hh, as torch sums them; well away from zero so a bias layout bug shows.
        self.b_ih = rng.uniform(-k, k, 4 * H) + 0.3
        self.b_hh = rng.uniform(-k, k, 4 * H) - 0.1
        self.bias = self.b_ih + self.b_hh
        self.h0 = rng.uniform(-0.9, 0.9, (B, H))
        self.c0 = rng.standard_normal((B, H))
        self.dy = rng.standard_normal((T, B, H))
        self.dh_n = rng.standard_normal((B, H))
        self.dc_n = rng.standard_normal((B, H))

    def args(self, dtype, bias=True, state=True):
        """Positional arguments of lstm_forward in dtype."""
        cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
        return (
            cast(self.x),
            cast(self.w_ih),
            cast(self.w_hh),
            cast(self.bias) if bias else None,
            cast(self.h0) if state else None,
            cast(self.c0) if state else None,
        )



def run_python(script, *args, cwd, timeout):
    """sys.executable -c script in a fresh process, for tests whose failure could be a crash or
    a hang.  cwd is a scratch folder: `python -c` puts the working directory first on
    sys.path, and the source tree's lstm_core (no compiled module) must not shadow the
    installed package."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )
