"""Reduced precision, specified in numpy: bfloat16 rounding, int8 dynamic quantization, and the
error bounds both schemes meet.  reference.py imports these; the kernels are tested against them.

Only the operands of the two matrix products of a step change; bias, gates, c, h and y stay in
full precision (float64 here, float32 in the kernels).  For one step, with a_x = x_t (B, I),
a_h = h_{t-1} (B, H):

    z = P(a_x, w_ih) + P(a_h, w_hh) + bias                         (B, 4H)

bfloat16 (mixed-precision training and inference)
    P(a, w) = round_bfloat16(a) @ round_bfloat16(w).T
    round_bfloat16 is the CPU's VCVTNEPS2BF16 / VCVTNE2PS2BF16 (Intel SDM): round to nearest,
    ties to even, on the float32 value (float64 values are first rounded to float32, as a
    float32 kernel would hold them); zero and subnormal inputs become a zero of the same sign
    (denormals-are-zero; outputs are never subnormal); infinities stay; a NaN stays NaN (upper
    16 bits, quiet bit set); finite values above the largest bfloat16 round to infinity.
    Each product of two bfloat16 values is exact in float32 and float64; the reference sums
    them in float64 (error <= K * 2**-53 * sum |a||w|, 2**29 times below float32's), the
    kernels in float32.

int8 (inference only): dynamic quantization, weights at pack time, activations every step
    weights, symmetric per output row j (per channel):
        s_w[j] = max_k |w[j, k]| / 127        (1 for a zero row)
        q_w[j, k] = rint(w[j, k] / s_w[j])    in [-127, 127]
    activations, asymmetric uint8 per row b (one scale and zero point per batch row; x_t and
    h_{t-1} separately):
        lo = min(0, min_k a[b, k]),  hi = max(0, max_k a[b, k])
        s_a[b] = (hi - lo) / 255              (1 for a zero row)
        zp[b] = rint(-lo / s_a[b])            in [0, 255]
        q_a[b, k] = clip(rint(a[b, k] / s_a[b]) + zp[b], 0, 255)
    (a row holding a NaN or an infinity: s_a[b] = NaN, so its products are NaN)
    int32 accumulation (exact for K <= 66311: |q_a - zp| <= 255, |q_w| <= 127), then rescaling:
        acc[b, j] = sum_k q_a[b, k] q_w[j, k] - zp[b] * sum_k q_w[j, k]
        P(a, w)[b, j] = s_a[b] * s_w[j] * acc[b, j]
    rint rounds half to even.  The first sum is VNNI's vpdpbusd (u8 x s8 -> s32); the second
    term is the compensation, one column sum of q_w per output row made at pack time.

Error bounds (derived in docs/precision.rst):
    one product, per element, with e_a, e_w the largest rounding errors of the operands:
        |P(a, w) - a @ w.T|[b, j] <= sum_k (e_a[b,k] |w[j,k]| + |a[b,k]| e_w[j,k]
                                            + e_a[b,k] e_w[j,k])
    bfloat16: e = u |v| with u = 2**-8 + 2**-23 (half an ulp, plus the float32 step for
        float64 inputs), plus 2**-126 for values flushed to zero;
    int8: e_a = s_a[b] / 2, e_w = s_w[j] / 2.
    Through one step (sigmoid' <= 1/4, tanh' <= 1, |i|, |f|, |o|, |g|, |tanh| <= 1):
        |dc| <= |df| |c_prev| + |f~| |dc_prev| + |di| + |dg|,    |dh| <= |do| + |dc|
    and over a sequence the error of h_{t-1} enters z through |w_hh| |dh_{t-1}|
    (forward_error_bound runs this recursion).
"""

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lstm_core._typing import FloatArray

F64Array = NDArray[np.float64]

Precision = Literal["bfloat16", "int8"] | None
#: The precisions the reference computes in; None is the full precision of the inputs.
PRECISIONS: tuple[Precision, ...] = (None, "bfloat16", "int8")

#: Largest relative error of round_bfloat16 on a normal float64 value: half an ulp of bfloat16
#: (2**-8), plus 2**-23 (> the float32 rounding that comes first, times 1 + 2**-8).
BF16_UNIT_ROUNDOFF = 2.0**-8 + 2.0**-23
#: Largest absolute error on a value that is flushed to zero (a float32 subnormal).
BF16_FLUSH = 2.0**-126
#: int32 accumulation of |q_a - zp| * |q_w| <= 255 * 127 per term is exact up to this K.
INT8_MAX_K = (2**31 - 1) // (255 * 127)


def check_precision(precision: object) -> Precision:
    """precision itself when it is None, "bfloat16" or "int8"; ValueError otherwise."""
    if precision is None or (isinstance(precision, str) and precision in ("bfloat16", "int8")):
        return precision  # type: ignore[return-value]
    raise ValueError(f"precision must be None, 'bfloat16' or 'int8', got {precision!r}")


# ------------------------------------------------------------------------------ bfloat16


def bfloat16_bits(a: ArrayLike, *, daz: bool = True) -> NDArray[np.uint16]:
    """The bfloat16 bit patterns of a, as the CPU's VCVTNEPS2BF16 makes them.

    Per the Intel SDM (VCVTNEPS2BF16, VCVTNE2PS2BF16): a zero or denormal input gives a zero
    of its sign; an infinity keeps its upper 16 bits; a NaN keeps its upper 16 bits with the
    quiet bit (bit 6) set; a normal value u (as uint32) becomes (u + 0x7FFF + bit 16 of u)
    >> 16, round to nearest even (which carries the largest finite values to infinity).

    Parameters
    ----------
    a : array_like
        float32 values, or any real values (rounded to float32 first, round to nearest even).
    daz : bool, default True
        Denormals are zero, as the instruction does.  False rounds subnormals like normal
        values (what torch's ``tensor.to(torch.bfloat16)`` does); the kernels never do.

    Returns
    -------
    ndarray of uint16, the shape of a
    """
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes infinity
        f32 = np.asarray(a, dtype=np.float32)
    u = f32.view(np.uint32).astype(np.uint64)
    exponent = u & 0x7F800000
    mantissa = u & 0x007FFFFF
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (exponent == 0x7F800000) & (mantissa != 0)
    bits = np.where(nan, (u >> 16) | 0x0040, rounded)
    if daz:
        bits = np.where(exponent == 0, (u >> 16) & 0x8000, bits)
    result: NDArray[np.uint16] = bits.astype(np.uint16)
    return result


def round_bfloat16(a: ArrayLike, *, daz: bool = True) -> FloatArray:
    """a rounded to bfloat16, as float values numpy can compute with.

    Parameters
    ----------
    a : array_like
        Real values; float64 ones are rounded to float32 first.
    daz : bool, default True
        See bfloat16_bits.

    Returns
    -------
    ndarray
        float64 for float64 (or non-float) input, else float32; every value exactly a
        bfloat16 (widening loses nothing).

    Examples
    --------
    >>> import numpy as np
    >>> from lstm_core.precision import round_bfloat16
    >>> round_bfloat16(np.array([1 + 2**-8, 1 + 3 * 2**-8, 1e-40], dtype=np.float32))
    array([1.       , 1.0078125, 0.       ], dtype=float32)
    """
    array = np.asarray(a)
    bits = bfloat16_bits(array, daz=daz).astype(np.uint32) << 16
    values = bits.view(np.float32)
    out_dtype = np.float32 if array.dtype == np.float32 else np.float64
    result: FloatArray = values.astype(out_dtype)
    return result


# ------------------------------------------------------------------------------ int8


class QuantizedWeights(NamedTuple):
    """w (G, K) as q (G, K) int8 values in [-127, 127] (held in int64) and scale (G,):
    w ~ scale[:, None] * q; column_sums (G,) = sum_k q[j, k] for the zero-point compensation."""

    q: NDArray[np.int64]
    scale: F64Array
    column_sums: NDArray[np.int64]


class QuantizedActivations(NamedTuple):
    """a (B, K) as q (B, K) uint8 values (held in int64), scale (B,), zero_point (B,):
    a ~ scale[:, None] * (q - zero_point[:, None])."""

    q: NDArray[np.int64]
    scale: F64Array
    zero_point: NDArray[np.int64]


def quantize_weights(w: ArrayLike) -> QuantizedWeights:
    """Symmetric int8 per output row: s = max |w_j| / 127, q = rint(w / s) in [-127, 127]."""
    w64 = np.asarray(w, dtype=np.float64)
    amax = np.abs(w64).max(axis=1) if w64.shape[1] else np.zeros(w64.shape[0])
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.rint(w64 / scale[:, None]), -127, 127).astype(np.int64)
    return QuantizedWeights(q, scale, q.sum(axis=1))


def quantize_activations(a: ArrayLike) -> QuantizedActivations:
    """Asymmetric uint8 per row b over [min(0, min a_b), max(0, max a_b)]: 0 is exact.  A row
    holding a NaN or an infinity gets a NaN scale (codes and zero point 0), so that its
    products are NaN rather than numbers made from a meaningless range."""
    given = np.asarray(a, dtype=np.float64)
    finite = np.asarray(np.isfinite(given).all(axis=1))
    a64 = np.where(finite[:, None], given, 0.0)
    if a64.shape[1]:
        lo = np.minimum(a64.min(axis=1), 0.0)
        hi = np.maximum(a64.max(axis=1), 0.0)
    else:
        lo = hi = np.zeros(a64.shape[0])
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
    zero_point = np.clip(np.rint(-lo / scale), 0, 255).astype(np.int64)
    q = np.clip(np.rint(a64 / scale[:, None]) + zero_point[:, None], 0, 255).astype(np.int64)
    return QuantizedActivations(q, np.where(finite, scale, np.nan), zero_point)


def int8_product(a: QuantizedActivations, w: QuantizedWeights) -> F64Array:
    """P(a, w) (B, G): the exact integer sums (int64 here; int32 in the kernels, the same
    value for K <= INT8_MAX_K), rescaled by s_a[b] * s_w[j]."""
    acc = a.q @ w.q.T - a.zero_point[:, None] * w.column_sums[None, :]
    result: F64Array = (a.scale[:, None] * w.scale[None, :]) * acc
    return result


# ------------------------------------------------------------------------------ products


class ReducedWeights(NamedTuple):
    """The weights of one LSTM in a precision, made once per call (the kernels: at pack time).

    w_ih (4H, I), w_hh (4H, H): the float64 values the products use (bfloat16-rounded, or the
    dequantized int8 values scale * q); quantized: the int8 form (int8 only)."""

    w_ih: F64Array
    w_hh: F64Array
    quantized: tuple[QuantizedWeights, QuantizedWeights] | None


def reduce_weights(w_ih: F64Array, w_hh: F64Array, precision: Precision) -> ReducedWeights:
    """Round or quantize both weight matrices once (None: returned unchanged)."""
    if precision == "bfloat16":
        return ReducedWeights(_as64(round_bfloat16(w_ih)), _as64(round_bfloat16(w_hh)), None)
    if precision == "int8":
        q_ih, q_hh = quantize_weights(w_ih), quantize_weights(w_hh)
        return ReducedWeights(q_ih.scale[:, None] * q_ih.q, q_hh.scale[:, None] * q_hh.q,
                              (q_ih, q_hh))
    return ReducedWeights(w_ih, w_hh, None)


def reduce_operand(a: F64Array, precision: Precision) -> F64Array:
    """An activation operand (B, K) as its product sees it: bfloat16-rounded, or dequantized
    int8 (scale * (q - zp)), or unchanged."""
    if precision == "bfloat16":
        return _as64(round_bfloat16(a))
    if precision == "int8":
        qa = quantize_activations(a)
        return qa.scale[:, None] * (qa.q - qa.zero_point[:, None])
    return a


def product(a: F64Array, w: F64Array, reduced: QuantizedWeights | None,
            precision: Precision) -> F64Array:
    """P(a, w) = a @ w.T (B, G) in the precision: w is the reduced weight matrix (from
    reduce_weights), `reduced` its int8 form for "int8"."""
    if precision == "int8":
        assert reduced is not None
        return int8_product(quantize_activations(a), reduced)
    return reduce_operand(a, precision) @ w.T


def _as64(a: ArrayLike) -> F64Array:
    return np.asarray(a, dtype=np.float64)


# ------------------------------------------------------------------------------ bounds


def operand_error(a: ArrayLike, precision: Precision, *, weights: bool = False) -> F64Array:
    """Largest |reduced(a) - a| per element (the shape of a), for an activation (B, K) or,
    with weights=True, a weight matrix (G, K)."""
    a64 = np.abs(_as64(a))
    if precision is None:
        return np.zeros_like(a64)
    if precision == "bfloat16":
        result: F64Array = BF16_UNIT_ROUNDOFF * a64 + BF16_FLUSH
        return result
    if weights:
        scale = quantize_weights(a).scale
    else:
        scale = quantize_activations(a).scale
    return np.broadcast_to(scale[:, None] / 2.0, a64.shape).copy()


def product_error_bound(a: ArrayLike, w: ArrayLike, precision: Precision,
                        accumulation: Literal["float64", "float32"] = "float64") -> F64Array:
    """Elementwise bound (B, G) on |P(a, w) - a @ w.T| for exact a (B, K), w (G, K).

    The quantization term is sum_k (e_a |w| + |a| e_w + e_a e_w); accumulation "float32"
    adds a float32 sum's error, gamma_{K+2} * sum_k |a~| |w~| with gamma_n = n u / (1 - n u),
    u = 2**-24 (Higham, Accuracy and Stability, 3.1; K + 2 for the two additions of the other
    product and the bias; for int8, whose integer sums are exact, 4 u |P| for the rescaling's
    two roundings and those two additions); "float64" (the reference) the same with
    u = 2**-53.
    """
    a64, w64 = _as64(a), _as64(w)
    e_a = operand_error(a64, precision)
    e_w = operand_error(w64, precision, weights=True)
    abs_a, abs_w = np.abs(a64), np.abs(w64)
    bound = quantization_product_bound(abs_a, abs_w, e_a, e_w)
    K = a64.shape[1]
    u = 2.0**-24 if accumulation == "float32" else 2.0**-53
    magnitude = (abs_a + e_a) @ (abs_w + e_w).T  # >= sum |a~| |w~|
    if precision == "int8":  # integer sums are exact; the rescale rounds twice
        bound = bound + 4 * u * magnitude  # and adding the other product and the bias
    else:
        gamma = (K + 2) * u / (1 - (K + 2) * u)  # + 2: adding the other product and bias
        bound = bound + gamma * magnitude
    return bound


def quantization_product_bound(abs_a: F64Array, abs_w: F64Array, e_a: F64Array,
                               e_w: F64Array) -> F64Array:
    """sum_k (e_a |w| + |a| e_w + e_a e_w) (B, G): the bound on |a~ @ w~.T - a @ w.T| for
    |a~ - a| <= e_a (B, K) and |w~ - w| <= e_w (G, K) elementwise, exact arithmetic."""
    bound: F64Array = e_a @ abs_w.T + abs_a @ e_w.T + e_a @ e_w.T
    return bound


def step_error_bound(dz: F64Array, c_prev: F64Array, f_reduced: F64Array | None = None,
                     dc_prev: F64Array | None = None) -> tuple[F64Array, F64Array]:
    """(dh, dc) bounds (B, H) of one LSTM step from a bound dz (B, 4H) on its pre-activations.

    dc <= df/4 |c_prev| + |f~| dc_prev + di/4 + dg and dh <= do/4 + dc, where di, df, dg, do
    are the blocks of dz (sigmoid' <= 1/4, tanh' <= 1, |i|, |g|, |o|, |tanh| <= 1); c_prev
    the exact previous cell state, f~ the reduced run's forget gate, dc_prev the bound on
    the previous cell state (both omitted for a first step: no error carried in).
    """
    d_i, d_f, d_g, d_o = np.split(dz, 4, axis=1)
    dc = d_f / 4 * np.abs(c_prev) + d_i / 4 + d_g
    if dc_prev is not None:
        assert f_reduced is not None
        dc = dc + np.abs(f_reduced) * dc_prev
    dh: F64Array = d_o / 4 + dc
    return dh, dc


class ForwardBound(NamedTuple):
    """Elementwise bounds on |reduced - exact| of lstm_forward's outputs (T,B,H), (B,H), (B,H)."""

    y: F64Array
    h_n: F64Array
    c_n: F64Array


def forward_error_bound(
    x: ArrayLike, w_ih: ArrayLike, w_hh: ArrayLike, bias: ArrayLike | None = None,
    h0: ArrayLike | None = None, c0: ArrayLike | None = None, *, precision: Precision,
    accumulation: Literal["float64", "float32"] = "float64", pointwise_eps: float = 0.0,
) -> ForwardBound:
    """Bound the difference between lstm_forward(precision=...) and the exact LSTM.

    Runs the exact float64 forward and the reduced one (both from lstm_core.reference) and
    this recursion, elementwise over (b, j), per step::

        dz   <= Q + abs(w_hh) @ dh_prev    Q: product_error_bound of both products, at the
                                           reduced run's operands (x_t, h~_{t-1})
        di, df, do <= dz / 4,  dg <= dz    (Lipschitz constants of sigmoid and tanh)
        dc   <= df abs(c_prev) + abs(f~) dc_prev + di + dg
        dh   <= do + dc

    with c_prev from the exact run and f~ from the reduced one.  A worst case: through
    abs(w_hh) it grows like (L norm(w_hh, 1))**T, so it is tight for a step or a few, loose
    beyond (the measured errors of long sequences stay at the one-step level; see
    docs/precision.rst).

    Parameters
    ----------
    x, w_ih, w_hh, bias, h0, c0 : array_like
        As reference.lstm_forward.
    precision : "bfloat16" or "int8"
        The scheme to bound.
    accumulation : "float64" or "float32", default "float64"
        How the products are summed: float64 in the reference, float32 in the kernels.
    pointwise_eps : float, default 0
        A relative error added per step for an implementation whose pointwise math is not
        float64 (float32 kernels: a few float32 ulps, e.g. 4 * 2**-24, on c and on h).

    Returns
    -------
    ForwardBound
        (y (T,B,H), h_n, c_n (B,H)), float64.
    """
    from lstm_core import reference

    x64 = _as64(x)
    T, B, _ = x64.shape
    w_hh64 = _as64(w_hh)
    H = w_hh64.shape[1]
    exact = reference._lstm_forward(x64, w_ih, w_hh, bias, h0, c0, None, None)[3]
    reduced = reference._lstm_forward(x64, w_ih, w_hh, bias, h0, c0, None, precision)[3]
    dh = np.zeros((B, H))
    dc = np.zeros((B, H))
    y = np.zeros((T, B, H))
    abs_w_hh = np.abs(w_hh64)
    for t in range(T):
        h_prev = reduced.h[t]
        dz = (product_error_bound(x64[t], w_ih, precision, accumulation)
              + product_error_bound(h_prev, w_hh64, precision, accumulation)
              + dh @ abs_w_hh.T)
        dh, dc = step_error_bound(dz, exact.c[t], reduced.gates[t][:, H:2 * H], dc)
        dc = dc + pointwise_eps * np.abs(reduced.c[t + 1])
        dh = dh + pointwise_eps * (np.abs(reduced.c[t + 1]) + np.abs(reduced.h[t + 1]))
        y[t] = dh
    return ForwardBound(y, dh.copy(), dc.copy())
