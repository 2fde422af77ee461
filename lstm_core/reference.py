"""The numpy twin of lstm_core's fast kernels: the same three functions, written for clarity.

This module is the oracle the tests compare the compiled path against, and the place to read the
math.  Everything is computed in float64 whatever the input dtype; results come back in the input
dtype (pass float64 arrays to get the exact float64 answer).

Conventions (see README): time-major x (T, B, I); gate order i, f, g, o along the 4H axis;
w_ih (4H, I), w_hh (4H, H), one bias (4H,) standing for b_ih + b_hh.

    z   = x_t @ w_ih.T + h_prev @ w_hh.T + bias        (B, 4H)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
    c_t = f * c_prev + i * g
    h_t = o * tanh(c_t)

Reduced precision (precision="bfloat16" or "int8", LSTM only; lstm_core.precision holds the
rounding, the quantization and the error bounds): only the operands of the two products
change,

    z   = P(x_t, w_ih) + P(h_prev, w_hh) + bias

with P(a, w) = round_bfloat16(a) @ round_bfloat16(w).T for "bfloat16" (the weights rounded
once per call; every product exact, summed in float64 here, in float32 by the kernels), and
the int8 dynamic quantization of lstm_core.precision for "int8" (weights per output row,
activations per batch row, int32 sums).  Bias, gates, c, h and y stay in full precision.
The bfloat16 backward rounds the operands of its three products too (see lstm_backward).
"""

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._typing import FloatArray
from lstm_core.precision import (
    Precision, ReducedWeights, check_precision, product, reduce_operand, reduce_weights,
    round_bfloat16)

F64Array = NDArray[np.float64]


class LSTMGrads(NamedTuple):
    """Gradients of lstm_backward; dbias is None when the forward had no bias.

    Attributes
    ----------
    dx : ndarray, shape (T, B, I)
        Gradient of the loss with respect to x.
    dw_ih : ndarray, shape (4H, I)
        Gradient with respect to w_ih.
    dw_hh : ndarray, shape (4H, H)
        Gradient with respect to w_hh.
    dbias : ndarray, shape (4H,), or None
        Gradient with respect to the bias (also that of b_ih and of b_hh); None when the
        forward had no bias.
    dh0, dc0 : ndarray, shape (B, H)
        Gradients with respect to the initial states h0 and c0.
    """

    dx: FloatArray
    dw_ih: FloatArray
    dw_hh: FloatArray
    dbias: FloatArray | None
    dh0: FloatArray
    dc0: FloatArray


# What backward needs from forward, per step; built only when training=True.
class ReferenceCache(NamedTuple):
    """Saved activations of reference.lstm_forward.

    x (T,B,I), w_ih (4H,I), w_hh (4H,H): the float64 inputs; h, c (T+1,B,H): states, slot 0 =
    h0/c0; gates (T,B,4H): post-activation i, f, g, o; active (T,B,1): step t of sequence b
    lies within its length; dtype: the caller's dtype, used for the results; precision: that
    of the forward (None, "bfloat16"); reduced: the weights as the products used them (None
    for full precision).
    """

    x: F64Array
    w_ih: F64Array
    w_hh: F64Array
    has_bias: bool
    h: F64Array
    c: F64Array
    gates: F64Array
    active: NDArray[np.bool_]
    dtype: np.dtype[Any]
    precision: Precision = None
    reduced: ReducedWeights | None = None


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function 1 / (1 + exp(-z)), without overflow.

    exp is only ever taken of a non-positive number.

    Parameters
    ----------
    z : ndarray
        Pre-activations, any shape.

    Returns
    -------
    ndarray
        sigmoid(z), with the shape and float dtype of z.
    """
    e = np.exp(-np.abs(z))
    result: FloatArray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return result


def _as64(a: ArrayLike) -> F64Array:
    return np.asarray(a, dtype=np.float64)


def _sizes(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike) -> tuple[int, int, int, int]:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (T, B, I), got shape {x.shape}")
    four_h, input_size = np.shape(w_ih)
    hidden = four_h // 4
    if four_h % 4 or input_size != x.shape[2] or np.shape(w_hh) != (four_h, hidden):
        raise ValueError(
            f"inconsistent shapes: x {x.shape}, w_ih {np.shape(w_ih)}, w_hh {np.shape(w_hh)}"
        )
    return x.shape[0], x.shape[1], input_size, hidden


def _state(s: ArrayLike | None, batch: int, hidden: int) -> F64Array:
    if s is None:
        return np.zeros((batch, hidden))
    s = _as64(s)
    if s.shape != (batch, hidden):
        raise ValueError(f"state must have shape {(batch, hidden)}, got {s.shape}")
    return s


def _active(lengths: ArrayLike | None, T: int, B: int) -> NDArray[np.bool_]:
    """(T, B, 1) bool: True where step t is inside sequence b (t < lengths[b])."""
    if lengths is None:
        return np.ones((T, B, 1), dtype=bool)
    array = np.asarray(lengths)
    if array.shape != (B,) or array.dtype.kind not in "iu":
        raise ValueError(
            f"lengths must be integers of shape {(B,)}, got {array.dtype} {array.shape}")
    if B and (array.min() < 0 or array.max() > T):
        raise ValueError(f"lengths must lie in [0, T={T}], got {array.min()}..{array.max()}")
    return (np.arange(T)[:, None] < array[None, :])[:, :, None]


def _gates(z: F64Array, hidden: int) -> F64Array:
    """Pre-activations (B, 4H) -> activated gates (B, 4H) in order i, f, g, o."""
    a = np.empty_like(z)
    a[:, : 2 * hidden] = sigmoid(z[:, : 2 * hidden])
    a[:, 2 * hidden : 3 * hidden] = np.tanh(z[:, 2 * hidden : 3 * hidden])
    a[:, 3 * hidden :] = sigmoid(z[:, 3 * hidden :])
    return a


def _step(x_t: F64Array, h_prev: F64Array, c_prev: F64Array, w_ih: F64Array, w_hh: F64Array,
          bias: F64Array, hidden: int) -> tuple[F64Array, F64Array, F64Array]:
    """One LSTM step in float64; returns (h_t, c_t, gates)."""
    z = x_t @ w_ih.T + h_prev @ w_hh.T + bias
    gates = _gates(z, hidden)
    i, f, g, o = np.split(gates, 4, axis=1)
    c_t = f * c_prev + i * g
    h_t = o * np.tanh(c_t)
    return h_t, c_t, gates


def _reduced_step(x_t: F64Array, h_prev: F64Array, c_prev: F64Array, weights: ReducedWeights,
                  bias: F64Array, hidden: int,
                  precision: Precision) -> tuple[F64Array, F64Array, F64Array]:
    """_step with the products in a reduced precision (lstm_core.precision.product)."""
    q_ih, q_hh = weights.quantized if weights.quantized is not None else (None, None)
    z = (product(x_t, weights.w_ih, q_ih, precision)
         + product(h_prev, weights.w_hh, q_hh, precision) + bias)
    gates = _gates(z, hidden)
    i, f, g, o = np.split(gates, 4, axis=1)
    c_t = f * c_prev + i * g
    h_t = o * np.tanh(c_t)
    return h_t, c_t, gates


def lstm_forward(
    x: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    bias: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    c0: ArrayLike | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
    precision: Precision = None,
) -> tuple[FloatArray, FloatArray, FloatArray, ReferenceCache | None]:
    """Run an LSTM over a whole sequence (the numpy twin of lstm_core.lstm_forward).

    Parameters
    ----------
    x : array_like, shape (T, B, I)
        The input sequence, time-major.
    w_ih : array_like, shape (4H, I)
        Input weights, gate order i, f, g, o.
    w_hh : array_like, shape (4H, H)
        Recurrent weights.
    bias : array_like, shape (4H,), optional
        b_ih + b_hh; None for no bias.
    h0, c0 : array_like, shape (B, H), optional
        Initial states; None for zeros.
    training : bool, default True
        Keep the activations backward needs (the returned cache).
    lengths : array_like of int, shape (B,), optional
        Integers in [0, T], or None for all T: steps t >= lengths[b] leave sequence b's
        state unchanged and output zeros, so h_n, c_n are each sequence's state at its own
        length.
    precision : None, "bfloat16" or "int8", default None
        The operands of the step's two products (module docstring; lstm_core.precision):
        None, full precision; "bfloat16": x_t, h_{t-1} and the weights rounded to bfloat16
        (round to nearest even, subnormals to zero), the weights once; "int8" (inference:
        training must be False): weights quantized per output row, x_t and h_{t-1} per batch
        row, every step.  Everything else stays float64.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n, c_n : ndarray, shape (B, H)
        The final states.
    cache : ReferenceCache or None
        What lstm_backward needs; None when training is False.

    Raises
    ------
    ValueError
        For inconsistent shapes or lengths out of range, an unknown precision, or
        precision="int8" with training=True (int8 is for inference only).
    """
    if check_precision(precision) == "int8" and training:
        raise ValueError("precision='int8' is for inference only: pass training=False")
    y, h_n, c_n, cache = _lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths, precision)
    return y, h_n, c_n, cache if training else None


def _lstm_forward(
    x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike, bias: ArrayLike | None,
    h0: ArrayLike | None, c0: ArrayLike | None, lengths: ArrayLike | None,
    precision: Precision,
) -> tuple[FloatArray, FloatArray, FloatArray, ReferenceCache]:
    """lstm_forward, always with its cache (for int8 too: precision.forward_error_bound
    reads the states)."""
    T, B, _, H = _sizes(x, w_ih, w_hh)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x64, w_ih64, w_hh64 = _as64(x), _as64(w_ih), _as64(w_hh)
    b = np.zeros(4 * H) if bias is None else _as64(bias)
    h = np.empty((T + 1, B, H))
    c = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    gates = np.empty((T, B, 4 * H))
    h[0], c[0] = _state(h0, B, H), _state(c0, B, H)
    reduced = None if precision is None else reduce_weights(w_ih64, w_hh64, precision)
    for t in range(T):
        if reduced is None:
            h_t, c_t, gates[t] = _step(x64[t], h[t], c[t], w_ih64, w_hh64, b, H)
        else:
            h_t, c_t, gates[t] = _reduced_step(x64[t], h[t], c[t], reduced, b, H, precision)
        # Past its length a sequence keeps its state and outputs zeros.
        h[t + 1] = np.where(active[t], h_t, h[t])
        c[t + 1] = np.where(active[t], c_t, c[t])
        y[t] = np.where(active[t], h_t, 0.0)
    cache = ReferenceCache(x64, w_ih64, w_hh64, bias is not None, h, c, gates, active, dtype,
                           precision, reduced)
    return y.astype(dtype), h[T].astype(dtype), c[T].astype(dtype), cache


def lstm_backward(
    cache: ReferenceCache,
    dy: ArrayLike | None = None,
    dh_n: ArrayLike | None = None,
    dc_n: ArrayLike | None = None,
) -> LSTMGrads:
    """Gradients of a loss L through one training-mode lstm_forward call.

    Backpropagation through time, one step at a time from t = T-1 down to 0.

    After a forward with precision="bfloat16" (mixed-precision training) the gradients are
    those of the bfloat16 forward with its rounding taken as the identity (straight-through):
    the gate gradients dz come from the bfloat16 forward's gates and states, and the
    products use the rounded operands the forward used, with dz itself rounded to bfloat16
    as their other operand (as oneDNN's bf16 LSTM, which torch.autocast runs, keeps its gate
    gradients for its GEMMs):

        dh_{t-1} += bf16(dz_t) @ bf16(w_hh)        dx = bf16(dz) @ bf16(w_ih)
        dw_ih = bf16(dz).T @ bf16(x)               dw_hh = bf16(dz).T @ bf16(h[:T])
        dbias = sum of dz (full precision: no product)

    Everything else (dz, dc, the running dh) is float64 here, float32 in the kernels.

    Parameters
    ----------
    cache : ReferenceCache
        From reference.lstm_forward(..., training=True).
    dy : array_like, shape (T, B, H), optional
        dL/dy; None means zero.
    dh_n, dc_n : array_like, shape (B, H), optional
        dL/dh_n and dL/dc_n; None means zero.

    Returns
    -------
    LSTMGrads
        (dx, dw_ih, dw_hh, dbias, dh0, dc0) in the forward's dtype; dbias is None when the
        forward had no bias.

    Raises
    ------
    ValueError
        For a gradient of the wrong shape, or a cache of an int8 forward (inference only).
    """
    if cache.precision == "int8":
        raise ValueError("precision='int8' is for inference only: no backward")
    return _lstm_backward(cache, dy, dh_n, dc_n, round_dz=cache.precision == "bfloat16")


def _lstm_backward(cache: ReferenceCache, dy: ArrayLike | None, dh_n: ArrayLike | None,
                   dc_n: ArrayLike | None, *, round_dz: bool) -> LSTMGrads:
    """lstm_backward; round_dz False gives the exact straight-through gradient of a bfloat16
    forward (dz unrounded), which the tests check with finite differences."""
    x, w_ih, w_hh, h, c, gates = cache.x, cache.w_ih, cache.w_hh, cache.h, cache.c, cache.gates
    T, B, I = x.shape
    H = w_hh.shape[1]
    dy64 = np.zeros((T, B, H)) if dy is None else _as64(dy)
    if dy64.shape != (T, B, H):
        raise ValueError(f"dy must have shape {(T, B, H)}, got {dy64.shape}")
    if cache.precision is not None:
        # the operands the forward's products used: rounded weights, x and h (STE)
        assert cache.reduced is not None
        w_ih, w_hh = cache.reduced.w_ih, cache.reduced.w_hh
        x = reduce_operand(x.reshape(T * B, I), cache.precision).reshape(x.shape)
        h = np.concatenate([reduce_operand(h[:T].reshape(T * B, H), cache.precision)
                            .reshape(T, B, H), h[T:]])
    dz_operand = _round_bf16_64 if round_dz else _identity
    dh = _state(dh_n, B, H).copy()  # dL/dh_t, flowing backwards
    dc = _state(dc_n, B, H).copy()  # dL/dc_t, flowing backwards
    dz = np.empty((T, B, 4 * H))
    for t in reversed(range(T)):
        # Past its length a sequence's state passes through untouched and its output is a
        # constant zero: dy is ignored there, dh and dc flow on unchanged, dz is zero.
        on = cache.active[t]
        i, f, g, o = np.split(gates[t], 4, axis=1)
        tanh_c = np.tanh(np.where(on, c[t + 1], 0.0))  # c[t+1] is c_t on active rows
        dh_t = dh + np.where(on, dy64[t], 0.0)
        dc_t = dc + dh_t * o * (1.0 - tanh_c**2)
        dz[t] = np.where(
            on,
            np.concatenate(
                [
                    dc_t * g * i * (1.0 - i),  # through i = sigmoid(z_i)
                    dc_t * c[t] * f * (1.0 - f),  # through f = sigmoid(z_f)
                    dc_t * i * (1.0 - g**2),  # through g = tanh(z_g)
                    dh_t * tanh_c * o * (1.0 - o),  # through o = sigmoid(z_o)
                ],
                axis=1,
            ),
            0.0,
        )
        dc = np.where(on, dc_t * f, dc)
        dh = np.where(on, dz_operand(dz[t]) @ w_hh, dh)
    dz_rows = dz.reshape(T * B, 4 * H)
    dz_product = dz_operand(dz_rows)
    dx = (dz_product @ w_ih).reshape(x.shape)
    dw_ih = dz_product.T @ x.reshape(T * B, I)
    dw_hh = dz_product.T @ h[:T].reshape(T * B, H)
    dbias = dz_rows.sum(axis=0) if cache.has_bias else None
    out = cache.dtype
    return LSTMGrads(
        dx.astype(out),
        dw_ih.astype(out),
        dw_hh.astype(out),
        None if dbias is None else dbias.astype(out),
        dh.astype(out),
        dc.astype(out),
    )


def _round_bf16_64(a: F64Array) -> F64Array:
    return np.asarray(round_bfloat16(a), dtype=np.float64)


def _identity(a: F64Array) -> F64Array:
    return a


def lstm_cell(
    x_t: ArrayLike,
    h: ArrayLike,
    c: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    precision: Precision = None,
) -> tuple[FloatArray, FloatArray]:
    """One inference step of an LSTM (the numpy twin of lstm_core.lstm_cell).

    Parameters
    ----------
    x_t : array_like, shape (B, I)
        The input of this step.
    h, c : array_like, shape (B, H)
        The states before the step.
    w_ih : array_like, shape (4H, I)
        Input weights, gate order i, f, g, o.
    w_hh : array_like, shape (4H, H)
        Recurrent weights.
    bias : array_like, shape (4H,), optional
        b_ih + b_hh; None for no bias.
    precision : None, "bfloat16" or "int8", default None
        As in lstm_forward: the step of lstm_forward(x_t[None], ..., precision=precision).

    Returns
    -------
    h1, c1 : ndarray, shape (B, H)
        The states after the step.

    Raises
    ------
    ValueError
        For inconsistent shapes or an unknown precision.
    """
    precision = check_precision(precision)
    x_arr = np.asarray(x_t)
    if x_arr.ndim != 2:
        raise ValueError(f"x_t must be 2-D (B, I), got shape {x_arr.shape}")
    _, B, _, H = _sizes(x_arr[None], w_ih, w_hh)
    dtype = np.result_type(x_arr, h, c, w_ih, w_hh)
    b = np.zeros(4 * H) if bias is None else _as64(bias)
    if precision is not None:
        h1, c1, _ = _reduced_step(_as64(x_arr), _state(h, B, H), _state(c, B, H),
                                  reduce_weights(_as64(w_ih), _as64(w_hh), precision), b, H,
                                  precision)
        return h1.astype(dtype), c1.astype(dtype)
    h1, c1, _ = _step(
        _as64(x_arr), _state(h, B, H), _state(c, B, H), _as64(w_ih), _as64(w_hh), b, H
    )
    return h1.astype(dtype), c1.astype(dtype)


# --------------------------------------------------------------------------------------------
# Vanilla RNN (tanh) and GRU, torch.nn.RNN's and torch.nn.GRU's cells.
#
#   RNN:  h_t = tanh(x_t @ w_ih.T + h_prev @ w_hh.T + bias)       w_ih (H,I), w_hh (H,H),
#         bias (H,) = b_ih + b_hh
#   GRU:  gate order r, z, n along the 3H axis; w_ih (3H,I), w_hh (3H,H), b_ih, b_hh (3H,)
#         kept apart, because b_hn sits inside the reset product:
#         r = sigmoid(x_t @ w_ir.T + b_ir + h_prev @ w_hr.T + b_hr)
#         z = sigmoid(x_t @ w_iz.T + b_iz + h_prev @ w_hz.T + b_hz)
#         n = tanh(x_t @ w_in.T + b_in + r * (h_prev @ w_hn.T + b_hn))
#         h_t = (1 - z) * n + z * h_prev

class RNNGrads(NamedTuple):
    """Gradients of rnn_backward; dbias is None when the forward had no bias.

    Attributes
    ----------
    dx : ndarray, shape (T, B, I)
        Gradient of the loss with respect to x.
    dw_ih : ndarray, shape (H, I)
        Gradient with respect to w_ih.
    dw_hh : ndarray, shape (H, H)
        Gradient with respect to w_hh.
    dbias : ndarray, shape (H,), or None
        Gradient with respect to the bias (also that of b_ih and of b_hh); None when the
        forward had no bias.
    dh0 : ndarray, shape (B, H)
        Gradient with respect to the initial state h0.
    """

    dx: FloatArray
    dw_ih: FloatArray
    dw_hh: FloatArray
    dbias: FloatArray | None
    dh0: FloatArray


class GRUGrads(NamedTuple):
    """Gradients of gru_backward; db_ih / db_hh is None when that bias was None.

    Attributes
    ----------
    dx : ndarray, shape (T, B, I)
        Gradient of the loss with respect to x.
    dw_ih : ndarray, shape (3H, I)
        Gradient with respect to w_ih.
    dw_hh : ndarray, shape (3H, H)
        Gradient with respect to w_hh.
    db_ih, db_hh : ndarray, shape (3H,), or None
        Gradients with respect to b_ih and b_hh; None for a bias the forward did not have.
    dh0 : ndarray, shape (B, H)
        Gradient with respect to the initial state h0.
    """

    dx: FloatArray
    dw_ih: FloatArray
    dw_hh: FloatArray
    db_ih: FloatArray | None
    db_hh: FloatArray | None
    dh0: FloatArray


class RNNReferenceCache(NamedTuple):
    """Saved activations of reference.rnn_forward.

    h (T+1,B,H), slot 0 = h0, h[t+1] = h_t on active steps (the carried state elsewhere); the
    rest as ReferenceCache.
    """

    x: F64Array
    w_ih: F64Array
    w_hh: F64Array
    has_bias: bool
    h: F64Array
    active: NDArray[np.bool_]
    dtype: np.dtype[Any]


class GRUReferenceCache(NamedTuple):
    """Saved activations of reference.gru_forward.

    h (T+1,B,H); gates (T,B,3H) post-activation r, z, n; hn (T,B,H) = h_prev @ w_hn.T + b_hn;
    the rest as ReferenceCache.
    """

    x: F64Array
    w_ih: F64Array
    w_hh: F64Array
    has_b_ih: bool
    has_b_hh: bool
    h: F64Array
    gates: F64Array
    hn: F64Array
    active: NDArray[np.bool_]
    dtype: np.dtype[Any]


def _cell_sizes(x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike,
                gates: int) -> tuple[int, int, int, int]:
    """(T, B, I, H) of a cell whose weights stack `gates` blocks of H rows."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (T, B, I), got shape {x.shape}")
    rows, input_size = np.shape(w_ih)
    hidden = rows // gates
    if rows % gates or input_size != x.shape[2] or np.shape(w_hh) != (rows, hidden):
        raise ValueError(
            f"inconsistent shapes: x {x.shape}, w_ih {np.shape(w_ih)}, w_hh {np.shape(w_hh)}"
        )
    return x.shape[0], x.shape[1], input_size, hidden


def _bias(b: ArrayLike | None, size: int) -> F64Array:
    return np.zeros(size) if b is None else _as64(b)


def _weight_gradients(
    dgi: F64Array, dgh: F64Array, x: F64Array, h: F64Array, w_ih: F64Array
) -> tuple[F64Array, F64Array, F64Array, F64Array, F64Array]:
    """dx, dw_ih, dw_hh, and the bias gradients from dgi and dgh (T,B,G), the gradients of the
    input product x_t @ w_ih.T and of the recurrent product h_prev @ w_hh.T (the same array
    for the RNN)."""
    T, B, I = x.shape
    G, H = dgi.shape[2], h.shape[2]
    rows_i = dgi.reshape(T * B, G)
    rows_h = dgh.reshape(T * B, G)
    dx = (rows_i @ w_ih).reshape(x.shape)
    dw_ih = rows_i.T @ x.reshape(T * B, I)
    dw_hh = rows_h.T @ h[:T].reshape(T * B, H)
    return dx, dw_ih, dw_hh, rows_i.sum(axis=0), rows_h.sum(axis=0)


def _output_gradients(cache: RNNReferenceCache | GRUReferenceCache, dy: ArrayLike | None,
                      dh_n: ArrayLike | None) -> tuple[F64Array, F64Array]:
    """dL/dy (T,B,H) and a fresh copy of dL/dh_n (B,H), the running dL/dh; None means zero."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[1]
    dy64 = np.zeros((T, B, H)) if dy is None else _as64(dy)
    if dy64.shape != (T, B, H):
        raise ValueError(f"dy must have shape {(T, B, H)}, got {dy64.shape}")
    return dy64, _state(dh_n, B, H).copy()


def rnn_forward(
    x: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    bias: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, RNNReferenceCache | None]:
    """Run a vanilla (tanh) RNN over a whole sequence (the twin of lstm_core.rnn_forward).

    Parameters
    ----------
    x : array_like, shape (T, B, I)
        The input sequence, time-major.
    w_ih : array_like, shape (H, I)
        Input weights.
    w_hh : array_like, shape (H, H)
        Recurrent weights.
    bias : array_like, shape (H,), optional
        b_ih + b_hh; None for no bias.
    h0 : array_like, shape (B, H), optional
        Initial state; None for zeros.
    training : bool, default True
        Keep the activations backward needs (the returned cache).
    lengths : array_like of int, shape (B,), optional
        As in lstm_forward.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n : ndarray, shape (B, H)
        The final state.
    cache : RNNReferenceCache or None
        What rnn_backward needs; None when training is False.

    Raises
    ------
    ValueError
        For inconsistent shapes or lengths out of range.
    """
    T, B, _, H = _cell_sizes(x, w_ih, w_hh, 1)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x64, w_ih64, w_hh64, b = _as64(x), _as64(w_ih), _as64(w_hh), _bias(bias, H)
    h = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    h[0] = _state(h0, B, H)
    for t in range(T):
        h_t = np.tanh(x64[t] @ w_ih64.T + h[t] @ w_hh64.T + b)
        h[t + 1] = np.where(active[t], h_t, h[t])
        y[t] = np.where(active[t], h_t, 0.0)
    cache = None
    if training:
        cache = RNNReferenceCache(x64, w_ih64, w_hh64, bias is not None, h, active, dtype)
    return y.astype(dtype), h[T].astype(dtype), cache


def rnn_cell(
    x_t: ArrayLike,
    h: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    nonlinearity: str = "tanh",
) -> FloatArray:
    """One inference step of a vanilla RNN (the numpy twin of lstm_core.rnn_cell).

    Parameters
    ----------
    x_t : array_like, shape (B, I)
        The input of this step.
    h : array_like, shape (B, H)
        The state before the step.
    w_ih : array_like, shape (H, I)
        Input weights.
    w_hh : array_like, shape (H, H)
        Recurrent weights.
    bias : array_like, shape (H,), optional
        b_ih + b_hh; None for no bias.
    nonlinearity : {"tanh"}, default "tanh"
        The only one lstm_core implements.

    Returns
    -------
    h1 : ndarray, shape (B, H)
        tanh(x_t @ w_ih.T + h @ w_hh.T + bias), in the inputs' dtype.

    Raises
    ------
    ValueError
        For inconsistent shapes or another nonlinearity.
    """
    if nonlinearity != "tanh":
        raise ValueError(f"nonlinearity must be 'tanh', got {nonlinearity!r}")
    _, B, _, H = _cell_sizes(np.asarray(x_t)[None], w_ih, w_hh, 1)
    dtype = np.result_type(x_t, w_ih, w_hh)
    h1 = np.tanh(_as64(x_t) @ _as64(w_ih).T + _state(h, B, H) @ _as64(w_hh).T + _bias(bias, H))
    return h1.astype(dtype)


def rnn_backward(
    cache: RNNReferenceCache, dy: ArrayLike | None = None, dh_n: ArrayLike | None = None
) -> RNNGrads:
    """Gradients of a loss L through one training-mode rnn_forward call.

    Parameters
    ----------
    cache : RNNReferenceCache
        From reference.rnn_forward(..., training=True).
    dy : array_like, shape (T, B, H), optional
        dL/dy; None means zero.
    dh_n : array_like, shape (B, H), optional
        dL/dh_n; None means zero.

    Returns
    -------
    RNNGrads
        (dx, dw_ih, dw_hh, dbias, dh0) in the forward's dtype.

    Raises
    ------
    ValueError
        For a gradient of the wrong shape.
    """
    x, w_hh, h = cache.x, cache.w_hh, cache.h
    dy64, dh = _output_gradients(cache, dy, dh_n)
    T, B, H = dy64.shape
    dz = np.empty((T, B, H))
    for t in reversed(range(T)):
        on = cache.active[t]  # past its length a sequence passes dh through untouched
        dz[t] = np.where(on, (dh + dy64[t]) * (1.0 - h[t + 1] ** 2), 0.0)  # through tanh
        dh = np.where(on, dz[t] @ w_hh, dh)
    dx, dw_ih, dw_hh, dbias, _ = _weight_gradients(dz, dz, x, h, cache.w_ih)
    out = cache.dtype
    return RNNGrads(dx.astype(out), dw_ih.astype(out), dw_hh.astype(out),
                    dbias.astype(out) if cache.has_bias else None, dh.astype(out))


def _gru_step(x_t: F64Array, h: F64Array, w_ih: F64Array, w_hh: F64Array, b_ih: F64Array,
              b_hh: F64Array) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """One GRU step in float64: the gates r, z, n, hn = h @ w_hn.T + b_hn and h_t."""
    H = h.shape[1]
    gi = x_t @ w_ih.T + b_ih  # (B, 3H)
    gh = h @ w_hh.T + b_hh  # (B, 3H)
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    return r, z, n, gh[:, 2 * H :], (1.0 - z) * n + z * h


def gru_forward(
    x: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    b_ih: ArrayLike | None = None,
    b_hh: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    *,
    training: bool = True,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, GRUReferenceCache | None]:
    """Run a GRU over a whole sequence, gate order r, z, n (the twin of lstm_core.gru_forward).

    Parameters
    ----------
    x : array_like, shape (T, B, I)
        The input sequence, time-major.
    w_ih : array_like, shape (3H, I)
        Input weights.
    w_hh : array_like, shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : array_like, shape (3H,), optional
        The two biases, kept apart (b_hn sits inside the reset product); None for none.
    h0 : array_like, shape (B, H), optional
        Initial state; None for zeros.
    training : bool, default True
        Keep the activations backward needs (the returned cache).
    lengths : array_like of int, shape (B,), optional
        As in lstm_forward.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n : ndarray, shape (B, H)
        The final state.
    cache : GRUReferenceCache or None
        What gru_backward needs; None when training is False.

    Raises
    ------
    ValueError
        For inconsistent shapes or lengths out of range.
    """
    T, B, _, H = _cell_sizes(x, w_ih, w_hh, 3)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x64, w_ih64, w_hh64 = _as64(x), _as64(w_ih), _as64(w_hh)
    bi, bh = _bias(b_ih, 3 * H), _bias(b_hh, 3 * H)
    h = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    gates = np.zeros((T, B, 3 * H))
    hn = np.zeros((T, B, H))
    h[0] = _state(h0, B, H)
    for t in range(T):
        r, z, n, hn_t, h_t = _gru_step(x64[t], h[t], w_ih64, w_hh64, bi, bh)
        on = active[t]
        gates[t] = np.where(on, np.concatenate([r, z, n], axis=1), 0.0)
        hn[t] = np.where(on, hn_t, 0.0)
        h[t + 1] = np.where(on, h_t, h[t])
        y[t] = np.where(on, h_t, 0.0)
    cache = None
    if training:
        cache = GRUReferenceCache(x64, w_ih64, w_hh64, b_ih is not None, b_hh is not None, h,
                                  gates, hn, active, dtype)
    return y.astype(dtype), h[T].astype(dtype), cache


def gru_cell(
    x_t: ArrayLike,
    h: ArrayLike,
    w_ih: ArrayLike,
    w_hh: ArrayLike,
    b_ih: ArrayLike | None = None,
    b_hh: ArrayLike | None = None,
) -> FloatArray:
    """One inference step of a GRU, gate order r, z, n (the numpy twin of lstm_core.gru_cell).

    Parameters
    ----------
    x_t : array_like, shape (B, I)
        The input of this step.
    h : array_like, shape (B, H)
        The state before the step.
    w_ih : array_like, shape (3H, I)
        Input weights.
    w_hh : array_like, shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : array_like, shape (3H,), optional
        The two biases; None for none.

    Returns
    -------
    h1 : ndarray, shape (B, H)
        The state after the step, in the inputs' dtype.

    Raises
    ------
    ValueError
        For inconsistent shapes.
    """
    _, B, _, H = _cell_sizes(np.asarray(x_t)[None], w_ih, w_hh, 3)
    dtype = np.result_type(x_t, w_ih, w_hh)
    h1 = _gru_step(_as64(x_t), _state(h, B, H), _as64(w_ih), _as64(w_hh), _bias(b_ih, 3 * H),
                   _bias(b_hh, 3 * H))[4]
    return h1.astype(dtype)


def gru_backward(
    cache: GRUReferenceCache, dy: ArrayLike | None = None, dh_n: ArrayLike | None = None
) -> GRUGrads:
    """Gradients of a loss L through one training-mode gru_forward call.

    The input product gi and the recurrent product gh get different gradients in their n
    block only: dgi_n = dn, dgh_n = dn * r (r multiplies h_prev @ w_hn.T + b_hn).

    Parameters
    ----------
    cache : GRUReferenceCache
        From reference.gru_forward(..., training=True).
    dy : array_like, shape (T, B, H), optional
        dL/dy; None means zero.
    dh_n : array_like, shape (B, H), optional
        dL/dh_n; None means zero.

    Returns
    -------
    GRUGrads
        (dx, dw_ih, dw_hh, db_ih, db_hh, dh0) in the forward's dtype.

    Raises
    ------
    ValueError
        For a gradient of the wrong shape.
    """
    x, w_hh, h = cache.x, cache.w_hh, cache.h
    dy64, dh = _output_gradients(cache, dy, dh_n)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dgi = np.zeros((T, B, 3 * H))
    dgh = np.zeros((T, B, 3 * H))
    for t in reversed(range(T)):
        on = cache.active[t]
        r, z, n = np.split(cache.gates[t], 3, axis=1)
        dh_t = dh + dy64[t]
        dn = dh_t * (1.0 - z) * (1.0 - n**2)  # h_t = (1-z) n + z h_prev; n = tanh(.)
        dz = dh_t * (h[t] - n) * z * (1.0 - z)  # z = sigmoid(.)
        dr = dn * cache.hn[t] * r * (1.0 - r)  # r = sigmoid(.), inside n's r * hn
        dgi[t] = np.where(on, np.concatenate([dr, dz, dn], axis=1), 0.0)
        dgh[t] = np.where(on, np.concatenate([dr, dz, dn * r], axis=1), 0.0)
        dh = np.where(on, dh_t * z + dgh[t] @ w_hh, dh)
    dx, dw_ih, dw_hh, db_ih, db_hh = _weight_gradients(dgi, dgh, x, h, cache.w_ih)
    out = cache.dtype
    return GRUGrads(dx.astype(out), dw_ih.astype(out), dw_hh.astype(out),
                    db_ih.astype(out) if cache.has_b_ih else None,
                    db_hh.astype(out) if cache.has_b_hh else None, dh.astype(out))
