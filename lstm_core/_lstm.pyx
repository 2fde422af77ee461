# The Cython boundary of lstm_core: lstm_forward, lstm_backward, lstm_cell.
#
# Each call validates its arguments once (TypeError for dtypes, ValueError for shapes, always
# naming the argument), copies a non-contiguous or misaligned input once, allocates every
# output and workspace, then releases the GIL and runs the whole computation in C
# (src/lstm_core.h) without coming back to Python.  There is no module-level mutable state.

cimport cython
cimport numpy as cnp
from libc.limits cimport INT_MAX

from lstm_core._blas cimport gemm_f32, gemm_f64
from lstm_core._kernels cimport (
    lstm_backward_f32, lstm_backward_f64, lstm_cache_f32, lstm_cache_f64,
    lstm_forward_f32, lstm_forward_f64,
)

import numpy as np

from lstm_core.reference import LSTMGrads

cnp.import_array()

ctypedef fused real:
    float
    double

# Inference mode projects the input of several steps with one GEMM; it takes as many steps
# as make about this many rows, so the GEMM stays efficient while the workspace stays
# O(B*H) whatever T (one step at least).
cdef enum:
    INFERENCE_CHUNK_ROWS = 256


# ----------------------------------------------------------------------------- validation

cdef cnp.ndarray _checked(object value, str name, int ndim, str layout, int typenum,
                          str dtype_owner):
    """value as an ndarray of ndim axes and the call's dtype, not yet made contiguous.

    typenum < 0 accepts float32 or float64 (the first array of a call sets the dtype);
    dtype_owner names the argument that set it, for the error message.
    """
    if not cnp.PyArray_Check(value):
        raise TypeError(f"{name} must be a numpy.ndarray {layout}, got {type(value).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>value
    cdef int t = cnp.PyArray_TYPE(arr)
    if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    if not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(
            f"{name} has non-native byte order (dtype {arr.dtype.str!r}); "
            f"convert it first, e.g. {name}.astype({arr.dtype.name!r})"
        )
    if typenum >= 0 and t != typenum:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but {dtype_owner} has "
            f"{np.dtype(np.float32 if typenum == cnp.NPY_FLOAT else np.float64)}: "
            f"all arrays of one call must share one dtype"
        )
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {_shape(arr)}")
    return arr


cdef inline tuple _shape(cnp.ndarray arr):
    return (<object>arr).shape


cdef _expect_shape(cnp.ndarray arr, str name, tuple expected, str meaning):
    if _shape(arr) != expected:
        raise ValueError(f"{name} must have shape {meaning} = {expected}, got {_shape(arr)}")


cdef cnp.ndarray _contiguous(cnp.ndarray arr):
    """arr itself when C-contiguous and aligned, else one C-contiguous copy (never a view
    that could be read out of bounds)."""
    if cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr):
        return arr
    return cnp.PyArray_FROM_OTF(arr, cnp.PyArray_TYPE(arr), cnp.NPY_ARRAY_IN_ARRAY)


cdef tuple _weights(object w_ih, object w_hh, object bias, int typenum, Py_ssize_t input_size,
                    str dtype_owner):
    """Checked (w_ih, w_hh, bias or None, H); the shapes must agree with input_size."""
    cdef cnp.ndarray a_ih = _checked(w_ih, "w_ih", 2, "(4H, I)", typenum, dtype_owner)
    cdef cnp.ndarray a_hh = _checked(w_hh, "w_hh", 2, "(4H, H)", typenum, dtype_owner)
    cdef cnp.ndarray a_bias = None
    cdef Py_ssize_t gate_rows = a_ih.shape[0]
    if gate_rows % 4 != 0:
        raise ValueError(
            f"w_ih must have 4*H rows (gates i, f, g, o stacked), got shape {_shape(a_ih)}"
        )
    cdef Py_ssize_t hidden = gate_rows // 4
    _expect_shape(a_ih, "w_ih", (gate_rows, input_size), "(4H, I)")
    _expect_shape(a_hh, "w_hh", (gate_rows, hidden), "(4H, H)")
    if bias is not None:
        a_bias = _checked(bias, "bias", 1, "(4H,)", typenum, dtype_owner)
        _expect_shape(a_bias, "bias", (gate_rows,), "(4H,)")
    if gate_rows > INT_MAX or input_size > INT_MAX:
        raise ValueError(
            f"w_ih of shape {_shape(a_ih)} is too large: every dimension must be at most "
            f"{INT_MAX} (the BLAS uses 32-bit sizes)"
        )
    return a_ih, a_hh, a_bias, hidden


cdef cnp.ndarray _state(object value, str name, int typenum, Py_ssize_t batch,
                        Py_ssize_t hidden, str dtype_owner, bint optional):
    """A checked (B, H) state; None gives zeros when the argument is optional."""
    if value is None and optional:
        return None
    cdef cnp.ndarray arr = _checked(value, name, 2, "(B, H)", typenum, dtype_owner)
    _expect_shape(arr, name, (batch, hidden), "(B, H)")
    return arr


cdef cnp.ndarray _lengths(object value, Py_ssize_t batch, Py_ssize_t steps):
    """lengths as a C-int array of shape (B,) with values in [0, T], or None.

    Any integer array-like is accepted (a list, an int64 array): lengths are sizes, not data.
    """
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got {arr.shape}")
    if batch > 0 and (arr.min() < 0 or arr.max() > steps):
        raise ValueError(
            f"lengths must lie in [0, T] = [0, {steps}], got values from {arr.min()} to {arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.intc)


cdef cnp.ndarray _empty(tuple shape, int typenum):
    # Through the C API rather than np.empty: no Python call, which the streaming cell feels.
    cdef cnp.npy_intp dims[3]
    cdef int ndim = len(shape)
    for axis in range(ndim):
        dims[axis] = shape[axis]
    return cnp.PyArray_EMPTY(ndim, dims, typenum, 0)


cdef cnp.ndarray _zeros(tuple shape, int typenum):
    cdef cnp.npy_intp dims[3]
    cdef int ndim = len(shape)
    for axis in range(ndim):
        dims[axis] = shape[axis]
    return cnp.PyArray_ZEROS(ndim, dims, typenum, 0)


cdef inline void *_data(cnp.ndarray arr):
    return NULL if arr is None else cnp.PyArray_DATA(arr)


# ----------------------------------------------------------------------------- the cache

@cython.final
cdef class LSTMCache:
    """What lstm_backward needs from one training-mode lstm_forward call.

    It holds the inputs of the call (x, w_ih, w_hh: the very arrays passed in when they were
    already contiguous, so modifying them in place before lstm_backward changes the
    gradients) and the saved activations, read-only:
    gates (T, B, 4H) post-activation i, f, g, o; c, h (T+1, B, H) with slot 0 = c0, h0;
    tanh_c (T, B, H); lengths (B,) C ints, or None.  Past a sequence's length, gates and
    tanh_c hold zeros and h, c the carried state.  A cache may be used by any number of lstm_backward calls.
    Only lstm_forward creates caches; the class cannot be instantiated or subclassed.
    """

    cdef readonly cnp.ndarray x, w_ih, w_hh, lengths, gates, c, tanh_c, h
    cdef readonly bint has_bias
    cdef int typenum
    cdef lstm_cache_f32 c32
    cdef lstm_cache_f64 c64

    def __init__(self):
        raise TypeError("LSTMCache objects are created by lstm_forward(..., training=True)")

    def __repr__(self):
        T, B, I = _shape(self.x)
        return (f"<LSTMCache T={T} B={B} I={I} H={_shape(self.w_hh)[1]} "
                f"dtype={self.x.dtype} bias={bool(self.has_bias)}>")


cdef LSTMCache _new_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_bias,
                          cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                          int typenum):
    cdef LSTMCache cache = LSTMCache.__new__(LSTMCache)
    cache.x, cache.w_ih, cache.w_hh, cache.has_bias, cache.lengths, cache.typenum = (
        x, w_ih, w_hh, has_bias, lengths, typenum)
    cache.gates = _empty((T, B, 4 * H), typenum)
    cache.c = _empty((T + 1, B, H), typenum)
    cache.tanh_c = _empty((T, B, H), typenum)
    cache.h = _empty((T + 1, B, H), typenum)
    cache.c32 = lstm_cache_f32(<float *>_data(cache.gates), <float *>_data(cache.c),
                               <float *>_data(cache.tanh_c), <float *>_data(cache.h))
    cache.c64 = lstm_cache_f64(<double *>_data(cache.gates), <double *>_data(cache.c),
                               <double *>_data(cache.tanh_c), <double *>_data(cache.h))
    return cache


cdef void _freeze(LSTMCache cache):
    for arr in (cache.gates, cache.c, cache.tanh_c, cache.h):
        arr.flags.writeable = False


# ----------------------------------------------------------------------------- GIL-free calls

cdef void _run_forward(real *y, real *h_n, real *c_n, LSTMCache cache, real *work,
                       const real *x, const real *h0, const real *c0, const real *w_ih,
                       const real *w_hh, const real *bias, const int *lengths, int T, int B,
                       int I, int H, int chunk):
    """The whole forward in C with the GIL released."""
    cdef const lstm_cache_f32 *c32 = NULL
    cdef const lstm_cache_f64 *c64 = NULL
    if cache is not None:
        c32, c64 = &cache.c32, &cache.c64
    with nogil:
        if real is float:
            lstm_forward_f32(y, h_n, c_n, c32, work, x, h0, c0, w_ih, w_hh, bias, lengths,
                             T, B, I, H, chunk, gemm_f32)
        else:
            lstm_forward_f64(y, h_n, c_n, c64, work, x, h0, c0, w_ih, w_hh, bias, lengths,
                             T, B, I, H, chunk, gemm_f64)


cdef void _run_backward(real *dx, real *dw_ih, real *dw_hh, real *dbias, real *dh0,
                        real *dc0, real *dz, const real *dy, const real *dh_n,
                        const real *dc_n, LSTMCache cache, int T, int B, int I, int H):
    """The whole backward in C with the GIL released."""
    cdef const real *x = <const real *>_data(cache.x)
    cdef const real *w_ih = <const real *>_data(cache.w_ih)
    cdef const real *w_hh = <const real *>_data(cache.w_hh)
    cdef const int *lengths = <const int *>_data(cache.lengths)
    with nogil:
        if real is float:
            lstm_backward_f32(dx, dw_ih, dw_hh, dbias, dh0, dc0, dz, dy, dh_n, dc_n,
                              &cache.c32, x, w_ih, w_hh, lengths, T, B, I, H, gemm_f32)
        else:
            lstm_backward_f64(dx, dw_ih, dw_hh, dbias, dh0, dc0, dz, dy, dh_n, dc_n,
                              &cache.c64, x, w_ih, w_hh, lengths, T, B, I, H, gemm_f64)


cdef void _forward_arrays(cnp.ndarray y, cnp.ndarray h_n, cnp.ndarray c_n, LSTMCache cache,
                          cnp.ndarray work, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray c0,
                          cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias,
                          cnp.ndarray lengths, int T, int B, int I, int H, int chunk):
    """Dispatch on the dtype of x; every array has been validated and allocated."""
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        _run_forward(<float *>_data(y), <float *>_data(h_n), <float *>_data(c_n), cache,
                     <float *>_data(work), <float *>_data(x), <float *>_data(h0),
                     <float *>_data(c0), <float *>_data(w_ih), <float *>_data(w_hh),
                     <float *>_data(bias), <int *>_data(lengths), T, B, I, H, chunk)
    else:
        _run_forward(<double *>_data(y), <double *>_data(h_n), <double *>_data(c_n), cache,
                     <double *>_data(work), <double *>_data(x), <double *>_data(h0),
                     <double *>_data(c0), <double *>_data(w_ih), <double *>_data(w_hh),
                     <double *>_data(bias), <int *>_data(lengths), T, B, I, H, chunk)


# ----------------------------------------------------------------------------- public API

def lstm_forward(x, w_ih, w_hh, bias=None, h0=None, c0=None, *, training=True, lengths=None):
    """Run a one-layer LSTM over a whole sequence.

    x (T, B, I); w_ih (4H, I); w_hh (4H, H); bias (4H,) = b_ih + b_hh or None;
    h0, c0 (B, H) or None for zeros.  All arrays float32, or all float64.
    lengths (B,) integers in [0, T], or None for all T: steps t >= lengths[b] leave sequence
    b's state unchanged and output zeros, so h_n, c_n are each sequence's state at its own
    length (what torch computes on a packed sequence, without packing); the cache remembers
    the lengths and lstm_backward masks the gradients to match.
    Returns y (T, B, H), h_n (B, H), c_n (B, H) and a cache for lstm_backward
    (None when training=False, which keeps no per-step activations: memory O(B*H) beyond
    the inputs and outputs).  Non-contiguous inputs are copied once; inputs are never
    modified; the GIL is released while the kernels run.
    """
    cdef cnp.ndarray ax = _checked(x, "x", 3, "(T, B, I)", -1, "x")
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    a_ih, a_hh, a_bias, H = _weights(w_ih, w_hh, bias, typenum, I, "x")
    cdef cnp.ndarray a_h0 = _state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_c0 = _state(c0, "c0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = _lengths(lengths, B, T)
    if T * B > INT_MAX:
        raise ValueError(
            f"x of shape {_shape(ax)} is too large: T*B must be at most {INT_MAX} "
            f"(the BLAS uses 32-bit sizes)"
        )
    # Everything is valid: copy what needs copying, allocate, run.
    ax, a_ih, a_hh = _contiguous(ax), _contiguous(a_ih), _contiguous(a_hh)
    a_bias = None if a_bias is None else _contiguous(a_bias)
    a_h0 = _zeros((B, H), typenum) if a_h0 is None else _contiguous(a_h0)
    a_c0 = _zeros((B, H), typenum) if a_c0 is None else _contiguous(a_c0)
    cdef cnp.ndarray y = _empty((T, B, H), typenum)
    cdef cnp.ndarray h_n = _empty((B, H), typenum)
    cdef cnp.ndarray c_n = _empty((B, H), typenum)
    cdef LSTMCache cache = None
    cdef cnp.ndarray work = None
    cdef int chunk = 1
    if training:
        cache = _new_cache(ax, a_ih, a_hh, a_bias is not None, a_lengths, T, B, H, typenum)
    else:
        chunk = <int>max(1, min(T, INFERENCE_CHUNK_ROWS // max(B, 1)))
        work = _empty((chunk * B * 4 * H + B * H,), typenum)
    _forward_arrays(y, h_n, c_n, cache, work, ax, a_h0, a_c0, a_ih, a_hh, a_bias, a_lengths,
                    T, B, I, H, chunk)
    if cache is not None:
        _freeze(cache)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Gradients of a loss through one training-mode lstm_forward call.

    cache: from lstm_forward(..., training=True); dy (T, B, H), dh_n, dc_n (B, H): the
    gradients of the loss with respect to y, h_n and c_n, None meaning zero.
    Returns LSTMGrads(dx, dw_ih, dw_hh, dbias, dh0, dc0); dbias is None when the forward
    had no bias (its gradient is also the gradient of b_ih and of b_hh).
    """
    if not isinstance(cache, LSTMCache) or (<LSTMCache>cache).x is None:
        raise TypeError(
            "cache must be the LSTMCache returned by lstm_forward(..., training=True), "
            f"got {type(cache).__name__}"
        )
    cdef LSTMCache c = <LSTMCache>cache
    cdef int typenum = c.typenum
    cdef Py_ssize_t T = c.x.shape[0], B = c.x.shape[1], I = c.x.shape[2]
    cdef Py_ssize_t H = c.w_hh.shape[1]
    cdef cnp.ndarray a_dy = None
    if dy is not None:
        a_dy = _checked(dy, "dy", 3, "(T, B, H)", typenum, "cache")
        _expect_shape(a_dy, "dy", (T, B, H), "(T, B, H) of the forward call")
    cdef cnp.ndarray a_dh_n = _state(dh_n, "dh_n", typenum, B, H, "cache", True)
    cdef cnp.ndarray a_dc_n = _state(dc_n, "dc_n", typenum, B, H, "cache", True)
    a_dy = None if a_dy is None else _contiguous(a_dy)
    a_dh_n = None if a_dh_n is None else _contiguous(a_dh_n)
    a_dc_n = None if a_dc_n is None else _contiguous(a_dc_n)
    cdef cnp.ndarray dx = _empty((T, B, I), typenum)
    cdef cnp.ndarray dw_ih = _zeros((4 * H, I), typenum)
    cdef cnp.ndarray dw_hh = _zeros((4 * H, H), typenum)
    cdef cnp.ndarray dbias = _zeros((4 * H,), typenum) if c.has_bias else None
    cdef cnp.ndarray dh0 = _empty((B, H), typenum)
    cdef cnp.ndarray dc0 = _empty((B, H), typenum)
    cdef cnp.ndarray dz = _empty((T, B, 4 * H), typenum)
    if typenum == cnp.NPY_FLOAT:
        _run_backward(<float *>_data(dx), <float *>_data(dw_ih), <float *>_data(dw_hh),
                      <float *>_data(dbias), <float *>_data(dh0), <float *>_data(dc0),
                      <float *>_data(dz), <float *>_data(a_dy), <float *>_data(a_dh_n),
                      <float *>_data(a_dc_n), c, T, B, I, H)
    else:
        _run_backward(<double *>_data(dx), <double *>_data(dw_ih), <double *>_data(dw_hh),
                      <double *>_data(dbias), <double *>_data(dh0), <double *>_data(dc0),
                      <double *>_data(dz), <double *>_data(a_dy), <double *>_data(a_dh_n),
                      <double *>_data(a_dc_n), c, T, B, I, H)
    return LSTMGrads(dx, dw_ih, dw_hh, dbias, dh0, dc0)


def lstm_cell(x_t, h, c, w_ih, w_hh, bias=None):
    """One inference step: x_t (B, I), h, c (B, H) -> h1, c1 (B, H).

    The streaming path: no cache, nothing kept between calls; same rules as lstm_forward.
    """
    cdef cnp.ndarray ax = _checked(x_t, "x_t", 2, "(B, I)", -1, "x_t")
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t B = ax.shape[0], I = ax.shape[1]
    a_ih, a_hh, a_bias, H = _weights(w_ih, w_hh, bias, typenum, I, "x_t")
    cdef cnp.ndarray a_h = _state(h, "h", typenum, B, H, "x_t", False)
    cdef cnp.ndarray a_c = _state(c, "c", typenum, B, H, "x_t", False)
    if B > INT_MAX:
        raise ValueError(f"x_t of shape {_shape(ax)} is too large: B must be at most {INT_MAX}")
    ax, a_ih, a_hh = _contiguous(ax), _contiguous(a_ih), _contiguous(a_hh)
    a_bias = None if a_bias is None else _contiguous(a_bias)
    a_h, a_c = _contiguous(a_h), _contiguous(a_c)
    cdef cnp.ndarray h1 = _empty((B, H), typenum)
    cdef cnp.ndarray c1 = _empty((B, H), typenum)
    cdef cnp.ndarray work = _empty((B * 4 * H + B * H,), typenum)
    # One inference step of the sequence driver, whose running state ends as h1, c1.
    _forward_arrays(None, h1, c1, None, work, ax, a_h, a_c, a_ih, a_hh, a_bias, None,
                    1, B, I, H, 1)
    return h1, c1
