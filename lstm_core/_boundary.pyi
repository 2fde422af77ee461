# Stub of the compiled module lstm_core._boundary (_boundary.pyx): argument checking and the
# workspace pool shared by the Cython boundaries.  The private helpers _spare_buffers (which
# only the tests call) and _physical_memory are left out.

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray
from typing_extensions import disjoint_base

from lstm_core._typing import FloatArray

def take_scratch(shape: tuple[int, ...], dtype: DTypeLike) -> tuple[NDArray[Any], FloatArray]: ...
def give_scratch(spare: NDArray[Any] | None) -> None: ...
def free_workspace() -> None: ...

@disjoint_base
class SequenceCache:
    """The base of LSTMCache, GRUCache and RNNCache: the inputs of one training-mode call."""
    @property
    def x(self) -> FloatArray: ...
    @property
    def w_ih(self) -> FloatArray: ...
    @property
    def w_hh(self) -> FloatArray: ...
    @property
    def lengths(self) -> NDArray[np.intc] | None: ...
    # Raises TypeError: only the forward functions create caches.
    def __init__(self, *args: object, **kwargs: object) -> None: ...
