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

RNNGrads = namedtuple("RNNGrads", ["dx", "dw_ih", "dw_hh", "dbias", "dh0"])
RNNGrads.__doc__ = """Gradients of rnn_backward; dbias is None when the forward had no bias."""

GRUGrads = namedtuple("GRUGrads", ["dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0"])
GRUGrads.__doc__ = """Gradients of gru_backward; db_ih / db_hh is None when that bias was None."""

RNNReferenceCache = namedtuple(
    "RNNReferenceCache", ["x", "w_ih", "w_hh", "has_bias", "h", "active", "dtype"]
)
RNNReferenceCache.__doc__ = """Saved activations of reference.rnn_forward: h (T+1,B,H), slot 0 =
h0, h[t+1] = h_t on active steps (the carried state elsewhere); the rest as ReferenceCache."""

GRUReferenceCache = namedtuple(
    "GRUReferenceCache",
    ["x", "w_ih", "w_hh", "has_b_ih", "has_b_hh", "h", "gates", "hn", "active", "dtype"],
)
GRUReferenceCache.__doc__ = """Saved activations of reference.gru_forward: h (T+1,B,H);
gates (T,B,3H) post-activation r, z, n; hn (T,B,H) = h_prev @ w_hn.T + b_hn."""


def _cell_sizes(x, w_ih, w_hh, gates):
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


def _bias(b, size):
    return np.zeros(size) if b is None else _as64(b)


def _weight_gradients(dgi, dgh, x, h, w_ih):
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


def _output_gradients(cache, dy, dh_n):
    """dL/dy (T,B,H) and a fresh copy of dL/dh_n (B,H), the running dL/dh; None means zero."""
    T, B, _ = cache.x.shape
    H = cache.w_hh.shape[1]
    dy = np.zeros((T, B, H)) if dy is None else _as64(dy)
    if dy.shape != (T, B, H):
        raise ValueError(f"dy must have shape {(T, B, H)}, got {dy.shape}")
    return dy, _state(dh_n, B, H).copy()


def rnn_forward(x, w_ih, w_hh, bias=None, h0=None, *, training=True, lengths=None):
    """Run a vanilla (tanh) RNN over a whole sequence.

    x (T,B,I) -> y (T,B,H), h_n (B,H), cache (None when training=False); lengths as in
    lstm_forward.
    """
    T, B, _, H = _cell_sizes(x, w_ih, w_hh, 1)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x, w_ih, w_hh, b = _as64(x), _as64(w_ih), _as64(w_hh), _bias(bias, H)
    h = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    h[0] = _state(h0, B, H)
    for t in range(T):
        h_t = np.tanh(x[t] @ w_ih.T + h[t] @ w_hh.T + b)
        h[t + 1] = np.where(active[t], h_t, h[t])
        y[t] = np.where(active[t], h_t, 0.0)
    cache = None
    if training:
        cache = RNNReferenceCache(x, w_ih, w_hh, bias is not None, h, active, dtype)
    return y.astype(dtype), h[T].astype(dtype), cache


def rnn_backward(cache, dy=None, dh_n=None):
    """Gradients of L given dL/dy (T,B,H) and dL/dh_n (B,H); None means zero."""
    x, w_hh, h = cache.x, cache.w_hh, cache.h
    dy, dh = _output_gradients(cache, dy, dh_n)
    T, B, H = dy.shape
    dz = np.empty((T, B, H))
    for t in reversed(range(T)):
        on = cache.active[t]  # past its length a sequence passes dh through untouched
        dz[t] = np.where(on, (dh + dy[t]) * (1.0 - h[t + 1] ** 2), 0.0)  # through tanh
        dh = np.where(on, dz[t] @ w_hh, dh)
    dx, dw_ih, dw_hh, dbias, _ = _weight_gradients(dz, dz, x, h, cache.w_ih)
    out = cache.dtype
    return RNNGrads(dx.astype(out), dw_ih.astype(out), dw_hh.astype(out),
                    dbias.astype(out) if cache.has_bias else None, dh.astype(out))


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, training=True, lengths=None):
    """Run a GRU over a whole sequence (gate order r, z, n).

    x (T,B,I) -> y (T,B,H), h_n (B,H), cache (None when training=False); lengths as in
    lstm_forward.
    """
    T, B, _, H = _cell_sizes(x, w_ih, w_hh, 3)
    active = _active(lengths, T, B)
    dtype = np.result_type(x, w_ih, w_hh)
    x, w_ih, w_hh = _as64(x), _as64(w_ih), _as64(w_hh)
    bi, bh = _bias(b_ih, 3 * H), _bias(b_hh, 3 * H)
    h = np.empty((T + 1, B, H))
    y = np.empty((T, B, H))
    gates = np.zeros((T, B, 3 * H))
    hn = np.zeros((T, B, H))
    h[0] = _state(h0, B, H)
    for t in range(T):
        gi = x[t] @ w_ih.T + bi  # (B, 3H)
        gh = h[t] @ w_hh.T + bh  # (B, 3H)
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        h_t = (1.0 - z) * n + z * h[t]
        on = active[t]
        gates[t] = np.where(on, np.concatenate([r, z, n], axis=1), 0.0)
        hn[t] = np.where(on, gh[:, 2 * H :], 0.0)
        h[t + 1] = np.where(on, h_t, h[t])
        y[t] = np.where(on, h_t, 0.0)
    cache = None
    if training:
        cache = GRUReferenceCache(x, w_ih, w_hh, b_ih is not None, b_hh is not None, h, gates,
                                  hn, active, dtype)
    return y.astype(dtype), h[T].astype(dtype), cache


def gru_backward(cache, dy=None, dh_n=None):
    """Gradients of L given dL/dy (T,B,H) and dL/dh_n (B,H); None means zero.

    The input product gi and the recurrent product gh get different gradients in their n
    block only: dgi_n = dn, dgh_n = dn * r (r multiplies h_prev @ w_hn.T + b_hn).
    """
    x, w_hh, h = cache.x, cache.w_hh, cache.h
    dy, dh = _output_gradients(cache, dy, dh_n)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dgi = np.zeros((T, B, 3 * H))
    dgh = np.zeros((T, B, 3 * H))
    for t in reversed(range(T)):
        on = cache.active[t]
        r, z, n = np.split(cache.gates[t], 3, axis=1)
        dh_t = dh + dy[t]
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
