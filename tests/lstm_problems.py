"""Shared test helpers: seeded LSTM problems and per-dtype tolerances.

Imported by the tests as a plain module (pyproject puts tests/ on the path).
"""

import re
import subprocess
import sys

import numpy as np

import lstm_core as lc
from lstm_core import reference as ref

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

    # The interface CellProblem shares (tests/cell_problems.py), for tests written once over cells.
    cell = "lstm"
    output_names = ("y", "h_n", "c_n")

    @property
    def output_grads(self):
        """dy, dh_n, dc_n: the gradients lstm_backward takes after the cache."""
        return self.dy, self.dh_n, self.dc_n

    @property
    def initial_state(self):
        return self.h0, self.c0

    def forward(self, dtype, twin=False, bias=True, state=True, **kw):
        """lstm_forward (or, with twin, the float64 reference) on this problem in dtype:
        y, h_n, c_n, cache."""
        fn = ref.lstm_forward if twin else lc.lstm_forward
        return fn(*self.args(np.float64 if twin else dtype, bias, state), **kw)

    def backward(self, cache, dy, dh_n, dc_n, dtype=None, twin=False):
        """lstm_backward (or the reference's) with the output gradients cast to dtype (None:
        as given)."""

        def cast(a):
            return a if a is None or dtype is None else np.asarray(a, dtype)

        if twin:
            return ref.lstm_backward(cache, dy, dh_n, dc_n)
        return lc.lstm_backward(cache, cast(dy), cast(dh_n), cast(dc_n))


def run_python(script, *args, cwd, timeout, env=None):
    """sys.executable -c script in a fresh process, for tests whose failure could be a crash or
    a hang.  cwd is a scratch folder: `python -c` puts the working directory first on
    sys.path, and the source tree's lstm_core (no compiled module) must not shadow the
    installed package."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
    )


def assert_refused_in_subprocess(setup, calls, *, cwd, timeout=120):
    """Run `setup` and then each expression of `calls` in one fresh process: every one must
    raise TypeError or ValueError (a crash would end the process with a signal instead)."""
    script = (setup + "\nfor source in " + repr(list(calls)) + ":\n"
              "    try:\n        eval(source)\n"
              "    except (TypeError, ValueError):\n        pass\n"
              "    else:\n        raise SystemExit('accepted: ' + source)\n"
              "print('ok')\n")
    result = run_python(script, cwd=cwd, timeout=timeout)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        result.returncode, result.stdout, result.stderr)


def numeric_gradient(f, a, eps=1e-6):
    """Central differences of f with respect to every element of a (modified, then restored)."""
    g = np.empty_like(a)
    for idx in np.ndindex(a.shape):
        saved = a[idx]
        a[idx] = saved + eps
        plus = f()
        a[idx] = saved - eps
        minus = f()
        a[idx] = saved
        g[idx] = (plus - minus) / (2 * eps)
    return g


def name_pattern(name):
    """The argument name as a whole word: 'h' must not match inside 'dh_n' or 'h0'."""
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"
