"""Shared helpers of the RNN and GRU tests: seeded problems in float64 and the functions under
test, so each test runs over both cells.  Tolerances are lstm_problems.assert_close's.
"""

import numpy as np

import lstm_core as lc
from lstm_core import reference as ref

# cell name -> (gate blocks G/H, fast forward, fast backward, twin forward, twin backward)
CELLS = {
    "rnn": (1, lc.rnn_forward, lc.rnn_backward, ref.rnn_forward, ref.rnn_backward),
    "gru": (3, lc.gru_forward, lc.gru_backward, ref.gru_forward, ref.gru_backward),
}


class CellProblem:
    """A seeded RNN or GRU problem: inputs, weights, two different non-zero biases, h0, and
    the output gradients dy, dh_n."""

    def __init__(self, cell, T, B, I, H, seed=0):
        self.cell = cell
        self.gates = CELLS[cell][0]
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(H)
        G = self.gates * H
        self.x = rng.standard_normal((T, B, I))
        self.w_ih = rng.uniform(-k, k, (G, I))
        self.w_hh = rng.uniform(-k, k, (G, H))
        # Two distinct biases well away from zero, so a bias placement bug shows (for the GRU,
        # b_hn inside the reset product versus b_in outside it).
        self.b_ih = rng.uniform(-k, k, G) + 0.3
        self.b_hh = rng.uniform(-k, k, G) - 0.2
        self.h0 = rng.uniform(-0.9, 0.9, (B, H))
        self.dy = rng.standard_normal((T, B, H))
        self.dh_n = rng.standard_normal((B, H))

    def args(self, dtype, bias=True, state=True):
        """Positional arguments of rnn_forward (x, w_ih, w_hh, bias, h0) or gru_forward
        (x, w_ih, w_hh, b_ih, b_hh, h0) in dtype; the RNN's one bias is b_ih + b_hh."""
        cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
        if self.cell == "rnn":
            biases = [cast(self.b_ih + self.b_hh) if bias else None]
        else:
            biases = [cast(self.b_ih) if bias else None, cast(self.b_hh) if bias else None]
        return [cast(self.x), cast(self.w_ih), cast(self.w_hh), *biases,
                cast(self.h0) if state else None]

    def forward(self, dtype, twin=False, **kw):
        fn = CELLS[self.cell][3 if twin else 1]
        return fn(*self.args(np.float64 if twin else dtype, kw.pop("bias", True),
                             kw.pop("state", True)), **kw)

    def backward(self, cache, dy, dh_n, dtype=None, twin=False):
        fn = CELLS[self.cell][4 if twin else 2]
        cast = lambda a: None if a is None or dtype is None else np.asarray(a, dtype)  # noqa
        return fn(cache, cast(dy) if not twin else dy, cast(dh_n) if not twin else dh_n)
