"""The three cells as tests see them, and seeded RNN and GRU problems in float64.

CELLS maps "lstm", "gru", "rnn" to a Cell: the compiled forward/backward, their float64 numpy
twins, the gate blocks (G = gates * H), the layer class, and a problem factory.  The conftest's
`cell` fixture hands one of them to each test, so a check is written once for every cell.
Tolerances are lstm_problems.assert_close's.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

import lstm_core as lc
from lstm_core import reference as ref

from lstm_problems import Problem


@dataclass(frozen=True)
class Cell:
    name: str  # "lstm", "gru", "rnn"
    gates: int  # gate blocks along the G axis: G = gates * H
    forward: Callable  # lc.<cell>_forward
    backward: Callable  # lc.<cell>_backward
    ref_forward: Callable  # reference.<cell>_forward, the float64 twin
    ref_backward: Callable
    layer: type  # lc.LSTM, lc.GRU, lc.RNN
    cache: type  # lc.LSTMCache, ...
    grads: type  # lc.LSTMGrads, ... (namedtuple)
    biases: tuple  # names of the forward's bias arguments
    states: tuple  # names of the forward's state arguments ("h0", "c0") or ("h0",)
    cache_arrays: tuple  # the cache's array attributes (all read-only)

    def problem(self, T, B, I, H, seed=0):
        """A seeded problem of this cell: Problem for the LSTM, CellProblem for the others."""
        if self.name == "lstm":
            return Problem(T, B, I, H, seed=seed)
        return CellProblem(self.name, T, B, I, H, seed=seed)

    def __repr__(self):
        return self.name


CELLS = {
    "lstm": Cell("lstm", 4, lc.lstm_forward, lc.lstm_backward, ref.lstm_forward,
                 ref.lstm_backward, lc.LSTM, lc.LSTMCache, lc.LSTMGrads, ("bias",),
                 ("h0", "c0"), ("gates", "c", "tanh_c", "h")),
    "gru": Cell("gru", 3, lc.gru_forward, lc.gru_backward, ref.gru_forward, ref.gru_backward,
                lc.GRU, lc.GRUCache, lc.GRUGrads, ("b_ih", "b_hh"), ("h0",),
                ("gates", "hn", "h")),
    "rnn": Cell("rnn", 1, lc.rnn_forward, lc.rnn_backward, ref.rnn_forward, ref.rnn_backward,
                lc.RNN, lc.RNNCache, lc.RNNGrads, ("bias",), ("h0",), ("h",)),
}


class CellProblem:
    """A seeded RNN or GRU problem: inputs, weights, two different non-zero biases, h0, and
    the output gradients dy, dh_n.  Same interface as lstm_problems.Problem."""

    output_names = ("y", "h_n")

    def __init__(self, cell, T, B, I, H, seed=0):
        self.cell = cell
        self.gates = CELLS[cell].gates
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

    @property
    def output_grads(self):
        """dy, dh_n: the gradients <cell>_backward takes after the cache."""
        return self.dy, self.dh_n

    @property
    def initial_state(self):
        return (self.h0,)

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

    def forward(self, dtype, twin=False, bias=True, state=True, **kw):
        """<cell>_forward (or, with twin, the float64 twin) in dtype: y, h_n, cache."""
        spec = CELLS[self.cell]
        fn = spec.ref_forward if twin else spec.forward
        return fn(*self.args(np.float64 if twin else dtype, bias, state), **kw)

    def backward(self, cache, dy, dh_n, dtype=None, twin=False):
        """<cell>_backward (or the twin's) with the output gradients cast to dtype (None: as
        given)."""
        spec = CELLS[self.cell]
        if twin:
            return spec.ref_backward(cache, dy, dh_n)

        def cast(a):
            return a if a is None or dtype is None else np.asarray(a, dtype)

        return spec.backward(cache, cast(dy), cast(dh_n))
