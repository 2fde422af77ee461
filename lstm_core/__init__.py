"""lstm_core: fused LSTM kernels for the CPU, called from numpy.

    y, h_n, c_n, cache = lstm_forward(x, w_ih, w_hh, bias, h0, c0)
    grads = lstm_backward(cache, dy, dh_n, dc_n)
    h1, c1 = lstm_cell(x_t, h, c, w_ih, w_hh, bias)

Gate order i, f, g, o; PyTorch's weight layout; time-major (T, B, I) arrays; float32 or
float64.  lstm_core.reference holds the numpy twin of every function.
"""

from lstm_core import reference
from lstm_core._lstm import LSTMCache, lstm_backward, lstm_cell, lstm_forward
from lstm_core.reference import LSTMGrads

__version__ = "0.1.0"

__all__ = [
    "LSTMCache",
    "LSTMGrads",
    "lstm_backward",
    "lstm_cell",
    "lstm_forward",
    "reference",
]
