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
"""

from collections import namedtuple

import numpy as np

LSTMGrads = namedtuple("LSTMGrads", ["dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0"])
LSTMGrads.__doc__ = """Gradients of lstm_backward; dbias is None when the forward had no bias."""

# What backward needs from forward, per step; built only when training=True.
ReferenceCache = namedtuple(
    "ReferenceCache",
    ["x", "w_ih", "w_hh", "has_bias", "h", "c", "gates", "active", "dtype"],
)
ReferenceCache.__doc__ = """Saved activations of reference.lstm_forward.

x (T,B,I), w_ih (4H,I), w_hh (4H,H): the float64 inputs; h, c (T+1,B,H): states, slot 0 = h0/c0;
gates (T,B,4H): post-activation i, f, g, o; active (T,B,1): step t of sequence b lies within its
length; dtype: the caller's dtype, used for the results."""


def sigmoid(z):
    """1 / (1 + exp(-z)) without overflow: exp is only ever taken of a non-positive number."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _as64(a):
    return np.asarray(a, dtype=np.float64)


def _sizes(x, w_ih, w_hh):
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


def _state(s, batch, hidden):
    if s is None:
        return np.zeros((batch, hidden))
    s = _as64(s)
    if s.shape != (batch, hidden):
        raise ValueError(f"state must have shape {(batch, hidden)}, got {s.shape}")
    return s


def _active(lengths, T, B):
    """(T, B, 1) bool: True where step t is inside sequence b (t < lengths[b])."""
    if lengths is None:
        return np.ones((T, B, 1), dtype=bool)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers of shape {(B,)}, got {lengths.dtype} {lengths.shape}")
    if B and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [0, T={T}], got {lengths.min()}..{lengths.max()}")
    return (np.arange(T)[:, None] < lengths[None, :])[:, :, None]


def _gates(z, hidden):
    """Pre-activations (B, 4H) -> activated gates (B, 4H) in order i, f, g, o."""
    a = np.empty_like(z)
    a[:, : 2 * hidden] = sigmoid(z[:, : 2 * hidden])
    a[:, 2 * hidden : 3 * hidden] = np.tanh(z[:, 2 * hidden : 3 * hidden])
    a[:, 3 * hidden :] = sigmoid(z[:, 3 * hidden :])
    return a


def _step(x_t, h_prev, c_prev, w_ih, w_hh, bias, hidden):
    """One LSTM step in float64; returns (h_t, c_t, gates)."""
    z = x_t @ w_ih.T + h_prev @ w_hh.T + bias
    gates = _gates(z, hidden)
    i, f, g, o = np.split(gates, 4, axis=1)
    c_t = f * c_prev + i * g
    h_t = o * np.tanh(c_t)
    return h_t, c_t, gates


def lstm_forward(x, w_ih, w_hh, bias=None, h0=None, c0=None, *, training=True, lengths=None):
    """Run an LSTM over a whole sequence.

    x (T,B,I) -> y (T,B,H), h_n (B,H), c_n (B,H), cache (None when training=False).
    lengths (B,) integers in [0, T], or None for all T: steps t >= lengths[b] leave sequence b's
    state unchanged and output zeros, so h_n, c_n are each sequence's state at its own length.
    """
    T, B, _, H = _sizes(x, w_ih, w_hh)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x, w_ih, w_hh = _as64(x), _as64(w_ih), _as64(w_hh)
    b = np.zeros(4 * H) if bias is None else _as64(bias)
    h = np.empty((T + 1, B, H))
    c = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    gates = np.empty((T, B, 4 * H))
    h[0], c[0] = _state(h0, B, H), _state(c0, B, H)
    for t in range(T):
        h_t, c_t, gates[t] = _step(x[t], h[t], c[t], w_ih, w_hh, b, H)
        # Past its length a sequence keeps its state and outputs zeros.
        h[t + 1] = np.where(active[t], h_t, h[t])
        c[t + 1] = np.where(active[t], c_t, c[t])
        y[t] = np.where(active[t], h_t, 0.0)
    cache = None
    if training:
        cache = ReferenceCache(x, w_ih, w_hh, bias is not None, h, c, gates, active, dtype)
    return y.astype(dtype), h[T].astype(dtype), c[T].astype(dtype), cache


def lstm_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Gradients of a loss L given dL/dy (T,B,H), dL/dh_n and dL/dc_n (B,H); None means zero.

    Backpropagation through time, one step at a time from t = T-1 down to 0.
    """
    x, w_ih, w_hh, h, c, gates = cache.x, cache.w_ih, cache.w_hh, cache.h, cache.c, cache.gates
    T, B, I = x.shape
    H = w_hh.shape[1]
    dy = np.zeros((T, B, H)) if dy is None else _as64(dy)
    if dy.shape != (T, B, H):
        raise ValueError(f"dy must have shape {(T, B, H)}, got {dy.shape}")
    dh = _state(dh_n, B, H).copy()  # dL/dh_t, flowing backwards
    dc = _state(dc_n, B, H).copy()  # dL/dc_t, flowing backwards
    dz = np.empty((T, B, 4 * H))
    for t in reversed(range(T)):
        # Past its length a sequence's state passes through untouched and its output is a
        # constant zero: dy is ignored there, dh and dc flow on unchanged, dz is zero.
        on = cache.active[t]
        i, f, g, o = np.split(gates[t], 4, axis=1)
        tanh_c = np.tanh(np.where(on, c[t + 1], 0.0))  # c[t+1] is c_t on active rows
        dh_t = dh + np.where(on, dy[t], 0.0)
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
        dh = np.where(on, dz[t] @ w_hh, dh)
    dz_rows = dz.reshape(T * B, 4 * H)
    dx = (dz_rows @ w_ih).reshape(x.shape)
    dw_ih = dz_rows.T @ x.reshape(T * B, I)
    dw_hh = dz_rows.T @ h[:T].reshape(T * B, H)
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


def lstm_cell(x_t, h, c, w_ih, w_hh, bias=None):
    """One inference step: x_t (B,I), h, c (B,H) -> h1, c1 (B,H)."""
    x_t = np.asarray(x_t)
    if x_t.ndim != 2:
        raise ValueError(f"x_t must be 2-D (B, I), got shape {x_t.shape}")
    _, B, _, H = _sizes(x_t[None], w_ih, w_hh)
    dtype = np.result_type(x_t, h, c, w_ih, w_hh)
    b = np.zeros(4 * H) if bias is None else _as64(bias)
    h1, c1, _ = _step(
        _as64(x_t), _state(h, B, H), _state(c, B, H), _as64(w_ih), _as64(w_hh), b, H
    )
    return h1.astype(dtype), c1.astype(dtype)
