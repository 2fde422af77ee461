# Stub of the compiled module lstm_core._boundary (_boundary.pyx): argument checking and the
# workspace pool shared by the Cython boundaries.  The private helpers _spare_buffers (which
# only the tests call) and _physical_memory are left out.

from typing import Any

from numpy.typing import DTypeLike, NDArray

from lstm_core._typing import FloatArray

def take_scratch(shape: tuple[int, ...], dtype: DTypeLike) -> tuple[NDArray[Any], FloatArray]: ...
def give_scratch(spare: NDArray[Any] | None) -> None: ...
def free_workspace() -> None: ...
