"""lstm_core: fused LSTM kernels for the CPU, called from numpy.

    y, h_n, c_n, cache = lstm_forward(x, w_ih, w_hh, bias, h0, c0)
    grads = lstm_backward(cache, dy, dh_n, dc_n)
    h1, c1 = lstm_cell(x_t, h, c, w_ih, w_hh, bias)
    packed = pack_lstm(w_ih, w_hh, bias); y, h_n, c_n = packed.forward(x, h0, c0)

Gate order i, f, g, o; PyTorch's weight layout; time-major (T, B, I) arrays; float32 or
float64.  lstm_core.reference holds the numpy twin of every function.

On top of them (each module imports only the ones below it):
    layers  LSTM (torch.nn.LSTM's shapes and state_dict), Linear, SequenceModel
    losses  mse_loss, cross_entropy_loss -> (loss, gradient)
    optim   SGD, Adam, AdamW, clip_grad_norm, schedules
    train   fit, predict, evaluate
    io      save_model, load_model, Keras weight conversion
    onnx_io to_onnx, from_onnx (optional: the onnx package)
    gates   gate_trace, lstm_gates: per-step i, f, g, o and c, views of the training cache
    plotting, demos (python -m lstm_core demo): optional, matplotlib for the figures
"""

from lstm_core import reference

try:
    import lstm_core._lstm  # noqa: F401  (the first compiled module)
except ModuleNotFoundError as error:  # a source checkout that was never built
    if not (error.name or "").startswith("lstm_core._"):
        raise
    raise ImportError(
        f"lstm_core's compiled modules ({error.name}) are missing from {__path__[0]}: this is "
        "a source checkout that was not built.  Install it (pip install .), or build it in "
        "place (python setup.py build_ext --inplace), or run Python from another folder to "
        "import the installed lstm_core."
    ) from error

from lstm_core._lstm import (
    LSTMCache, PackedLSTM, lstm_backward, lstm_cell, lstm_forward, pack_lstm,
)
from lstm_core._boundary import free_workspace
from lstm_core._threads import get_num_threads, set_num_threads
from lstm_core import _threadpool
from lstm_core.gates import GateTrace, gate_trace, lstm_gates
from lstm_core.io import from_keras_weights, load_model, save_model, to_keras_weights
from lstm_core.onnx_io import from_onnx, to_onnx
from lstm_core.heads import Dropout, ReLU, Sequential, Tanh
from lstm_core.layers import LSTM, Linear, SequenceModel
from lstm_core.losses import cross_entropy_loss, mse_loss
from lstm_core.optim import SGD, Adam, AdamW, clip_grad_norm, cosine_schedule, step_schedule
from lstm_core.reference import LSTMGrads
from lstm_core.train import Callback, History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "SGD",
    "Adam",
    "AdamW",
    "Callback",
    "Dropout",
    "GateTrace",
    "History",
    "LSTMCache",
    "LSTMGrads",
    "Linear",
    "PackedLSTM",
    "ReLU",
    "Sequential",
    "SequenceModel",
    "Tanh",
    "clip_grad_norm",
    "cosine_schedule",
    "cross_entropy_loss",
    "evaluate",
    "fit",
    "free_workspace",
    "from_keras_weights",
    "from_onnx",
    "gate_trace",
    "get_num_threads",
    "load_model",
    "lstm_backward",
    "lstm_cell",
    "lstm_forward",
    "lstm_gates",
    "mse_loss",
    "pack_lstm",
    "predict",
    "reference",
    "save_model",
    "set_num_threads",
    "step_schedule",
    "to_keras_weights",
    "to_onnx",
]

# Vanilla RNN (tanh) and GRU: the same house, torch.nn.RNN's and torch.nn.GRU's conventions.
from lstm_core._lstm import (  # noqa: E402
    GRUCache, PackedGRU, PackedRNN, RNNCache, gru_backward, gru_cell, gru_forward, pack_gru,
    pack_rnn, rnn_backward, rnn_cell, rnn_forward,
)
from lstm_core.layers import GRU, RNN  # noqa: E402
from lstm_core.reference import GRUGrads, RNNGrads  # noqa: E402

__all__ += [
    "GRU",
    "GRUCache",
    "GRUGrads",
    "PackedGRU",
    "PackedRNN",
    "RNN",
    "RNNCache",
    "RNNGrads",
    "gru_backward",
    "gru_cell",
    "gru_forward",
    "pack_gru",
    "pack_rnn",
    "rnn_backward",
    "rnn_cell",
    "rnn_forward",
]

# threadpoolctl (when installed) sees and limits lstm_core's own threads.
_threadpool.register()
