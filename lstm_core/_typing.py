"""Type aliases shared by the Python layer and the stubs of the compiled modules."""

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

#: A float32 or float64 array (the dtypes every kernel takes).
FloatArray: TypeAlias = NDArray[np.floating[Any]]
#: An array of integers (lengths, token ids, labels).
IntArray: TypeAlias = NDArray[np.integer[Any]]
