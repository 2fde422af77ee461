# Stub of the compiled module lstm_core._rnn (_rnn.pyx): the GRU's Cython boundary.

from typing import Literal, final, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._boundary import SequenceCache
from lstm_core._typing import FloatArray
from lstm_core.reference import GRUGrads

@final
class GRUCache(SequenceCache):
    @property
    def gates(self) -> FloatArray: ...
    @property
    def hn(self) -> FloatArray: ...
    @property
    def h(self) -> FloatArray: ...
    @property
    def has_b_ih(self) -> bool: ...
    @property
    def has_b_hh(self) -> bool: ...
    # Raises TypeError: only the forward function of the cell creates caches.
    def __init__(self, *args: object, **kwargs: object) -> None: ...

@overload
def gru_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None = None,
    b_hh: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: Literal[True] = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, GRUCache]: ...
@overload
def gru_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None = None,
    b_hh: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: Literal[False],
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, None]: ...
@overload
def gru_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None = None,
    b_hh: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, GRUCache | None]: ...
def gru_backward(
    cache: GRUCache, dy: FloatArray | None = None, dh_n: FloatArray | None = None
) -> GRUGrads: ...
def gru_cell(
    x_t: FloatArray,
    h: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None = None,
    b_hh: FloatArray | None = None,
) -> FloatArray: ...
