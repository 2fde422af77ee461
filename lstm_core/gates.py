"""Gate inspection: the per-step gate activations and cell states an LSTM computed.

    trace = gate_trace(cache)        # from lstm_forward(..., training=True)
    trace["f"]                       # (T, B, H) forget gate of every step
    traces = lstm_gates(lstm)        # after a training-mode lstm(x): one trace per layer and
                                     # direction, index layer*D + direction, in x's layout

Nothing is recomputed: the training-mode cache already holds the post-activation gates
(T, B, 4H) in the order i, f, g, o and the cell states (T+1, B, H) with slot 0 = c0, so the
traces are read-only views of it (the reverse direction of a bidirectional layer with
`lengths` is the one exception: putting each sequence back in time order takes a copy).
Past a sequence's length the gates are zeros and c holds the carried state, as in the cache.
"""

from lstm_core._lstm import LSTMCache
from lstm_core._typing import FloatArray
from lstm_core.layers import LSTM, Reversal

GATE_NAMES = ("i", "f", "g", "o")


class GateTrace(dict[str, FloatArray]):
    """A gate trace: {"i", "f", "g", "o", "c"} -> arrays, and the layout they are in.

    layout is "TBH" (time-major), "BTH" (batch-first) or "TH" (one unbatched sequence);
    lstm_core.plotting.plot_gates reads it.
    """

    def __init__(self, arrays: dict[str, FloatArray], layout: str) -> None:
        super().__init__(arrays)
        self.layout = layout


def gate_trace(cache: LSTMCache) -> GateTrace:
    """The gates and cell states of one lstm_forward call, as views of its cache.

    i, f, o are the sigmoid gates, g the tanh cell candidate, c the cell state after each
    step (c_1 .. c_T; c0 is cache.c[0]).

    Parameters
    ----------
    cache : LSTMCache
        From lstm_forward(..., training=True).

    Returns
    -------
    GateTrace
        {"i", "f", "g", "o", "c"} -> (T, B, H) read-only views; layout "TBH".

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((5, 2, 3))
    >>> w_ih, w_hh = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    >>> y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh)
    >>> lc.gate_trace(cache)["f"].shape
    (5, 2, 2)
    """
    gates = cache.gates                      # (T, B, 4H), post-activation
    hidden = gates.shape[2] // 4
    trace = {name: gates[:, :, k * hidden:(k + 1) * hidden] for k, name in enumerate(GATE_NAMES)}
    trace["c"] = cache.c[1:]                 # (T, B, H)
    return GateTrace(trace, "TBH")


def lstm_gates(lstm: LSTM) -> list[GateTrace]:
    """The gate traces of the last training-mode forward of an lstm_core.LSTM.

    Reverse directions are put back in input time order, so step t of every trace belongs to
    x's step t.

    Parameters
    ----------
    lstm : LSTM
        A layer whose last forward ran in training mode.

    Returns
    -------
    list of GateTrace
        One per layer and direction (index layer*D + direction, as in h_n), each
        {"i", "f", "g", "o", "c"} -> arrays in the layout of the x that was passed, which
        its layout attribute names: (T, B, H) "TBH", (B, T, H) "BTH" with batch_first,
        (T, H) "TH" unbatched.

    Raises
    ------
    RuntimeError
        When the layer has no training-mode forward to show.
    """
    tape = getattr(lstm, "_tape", None)
    if tape is None:
        raise RuntimeError(
            "no gates to show: run the LSTM forward in training mode first (lstm.train(); "
            "eval() keeps no caches)"
        )
    # The layer's tape is (caches, dropout masks, reversal, unbatched, (T, B)); reading it here
    # keeps the layer itself unchanged and costs nothing extra.
    caches, _, reversal, unbatched, _ = tape
    directions = lstm.num_directions
    layout = "TH" if unbatched else "BTH" if lstm.batch_first else "TBH"
    traces = []
    for index, cache in enumerate(caches):
        trace: dict[str, FloatArray] = gate_trace(cache)
        if index % directions == 1:
            trace = {k: _in_time_order(v, reversal) for k, v in trace.items()}
        traces.append(GateTrace({k: _user_layout(v, lstm.batch_first, unbatched)
                                 for k, v in trace.items()}, layout))
    return traces


def _in_time_order(a: FloatArray, reversal: Reversal) -> FloatArray:
    """A reverse direction's (T, B, H) array back in input time order (its own inverse map)."""
    if reversal is None:
        return a[::-1]
    return a[reversal]


def _user_layout(a: FloatArray, batch_first: bool, unbatched: bool) -> FloatArray:
    if unbatched:
        return a[:, 0, :]
    return a.transpose(1, 0, 2) if batch_first else a
