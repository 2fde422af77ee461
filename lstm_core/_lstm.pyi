# Stub of the compiled module lstm_core._lstm (_lstm.pyx): the Cython boundary of the driver
# (LSTM, GRU, RNN).

from typing import Literal, final, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

from lstm_core._boundary import SequenceCache
from lstm_core._typing import FloatArray
from lstm_core.reference import GRUGrads, LSTMGrads, RNNGrads

@final
class LSTMCache(SequenceCache):
    @property
    def gates(self) -> FloatArray: ...
    @property
    def c(self) -> FloatArray: ...
    @property
    def tanh_c(self) -> FloatArray: ...
    @property
    def h(self) -> FloatArray: ...
    @property
    def has_bias(self) -> bool: ...
    @property
    def precision(self) -> Literal["bfloat16"] | None: ...
    # Raises TypeError: only the forward function of the cell creates caches.
    def __init__(self, *args: object, **kwargs: object) -> None: ...

@overload
def lstm_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    c0: FloatArray | None = None,
    *,
    training: Literal[True] = True,
    lengths: ArrayLike | None = None,
    precision: Literal["bfloat16"] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, LSTMCache]: ...
@overload
def lstm_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    c0: FloatArray | None = None,
    *,
    training: Literal[False],
    lengths: ArrayLike | None = None,
    precision: Literal["bfloat16", "int8"] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, None]: ...
@overload
def lstm_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    c0: FloatArray | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
    precision: Literal["bfloat16", "int8"] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, LSTMCache | None]: ...
def check_reduced_precision(precision: object, training: bool) -> None: ...
def lstm_backward(
    cache: LSTMCache,
    dy: FloatArray | None = None,
    dh_n: FloatArray | None = None,
    dc_n: FloatArray | None = None,
) -> LSTMGrads: ...
def lstm_cell(
    x_t: FloatArray,
    h: FloatArray,
    c: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]: ...

@disjoint_base
class PackedWeights:
    @property
    def precision(self) -> str: ...
    @property
    def kernel(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    # Raises TypeError: only pack_lstm, pack_gru and pack_rnn make packed cells.
    def __init__(self, *args: object, **kwargs: object) -> None: ...

@final
class PackedLSTM(PackedWeights):
    @property
    def w_ih(self) -> FloatArray: ...
    @property
    def w_hh(self) -> FloatArray: ...
    @property
    def bias(self) -> FloatArray | None: ...
    def forward(
        self,
        x: FloatArray,
        h0: FloatArray | None = None,
        c0: FloatArray | None = None,
        *,
        lengths: ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...
    def cell(
        self, x_t: FloatArray, h: FloatArray, c: FloatArray
    ) -> tuple[FloatArray, FloatArray]: ...

ISA_VARIABLE: str

def pack_lstm(
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    *,
    precision: Literal["float32", "float64", "bfloat16", "int8"] = "float32",
) -> PackedLSTM: ...

# The vanilla RNN and the GRU, on the same driver.

@final
class RNNCache(SequenceCache):
    @property
    def h(self) -> FloatArray: ...
    @property
    def has_bias(self) -> bool: ...
    # Raises TypeError: only the forward function of the cell creates caches.
    def __init__(self, *args: object, **kwargs: object) -> None: ...

@overload
def rnn_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: Literal[True] = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, RNNCache]: ...
@overload
def rnn_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: Literal[False],
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, None]: ...
@overload
def rnn_forward(
    x: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    h0: FloatArray | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, RNNCache | None]: ...
def rnn_backward(
    cache: RNNCache, dy: FloatArray | None = None, dh_n: FloatArray | None = None
) -> RNNGrads: ...
def rnn_cell(
    x_t: FloatArray,
    h: FloatArray,
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    *,
    nonlinearity: Literal["tanh"] = "tanh",
) -> FloatArray: ...

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

@final
class PackedGRU(PackedWeights):
    @property
    def w_ih(self) -> FloatArray: ...
    @property
    def w_hh(self) -> FloatArray: ...
    @property
    def b_ih(self) -> FloatArray | None: ...
    @property
    def b_hh(self) -> FloatArray | None: ...
    def forward(
        self, x: FloatArray, h0: FloatArray | None = None, *, lengths: ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]: ...
    def cell(self, x_t: FloatArray, h: FloatArray) -> FloatArray: ...

def pack_gru(
    w_ih: FloatArray,
    w_hh: FloatArray,
    b_ih: FloatArray | None = None,
    b_hh: FloatArray | None = None,
    *,
    precision: Literal["float32", "float64"] = "float32",
) -> PackedGRU: ...

@final
class PackedRNN(PackedWeights):
    @property
    def w_ih(self) -> FloatArray: ...
    @property
    def w_hh(self) -> FloatArray: ...
    @property
    def bias(self) -> FloatArray | None: ...
    def forward(
        self, x: FloatArray, h0: FloatArray | None = None, *, lengths: ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]: ...
    def cell(self, x_t: FloatArray, h: FloatArray) -> FloatArray: ...

def pack_rnn(
    w_ih: FloatArray,
    w_hh: FloatArray,
    bias: FloatArray | None = None,
    *,
    nonlinearity: Literal["tanh"] = "tanh",
    precision: Literal["float32", "float64"] = "float32",
) -> PackedRNN: ...
