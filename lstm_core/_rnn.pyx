# The Cython boundary of the GRU: gru_forward, gru_backward, gru_cell (the vanilla RNN runs on
# the LSTM's driver, in _lstm.pyx).
#
# The same rules as lstm_core._lstm, through the same checks (lstm_core._boundary): each call
# validates once (TypeError for dtypes, ValueError for shapes, naming the argument), copies a
# non-contiguous input once, allocates every output and workspace, then releases the GIL and
# runs the whole time loop in C (src/include/rnn_core.h).  No module-level mutable state.

cimport cython
cimport numpy as cnp

from lstm_core._blas cimport gemm_f32, gemm_f64
from lstm_core._boundary cimport (
    INFERENCE_CHUNK_ROWS, SequenceCache, checked, contiguous, data_of, empty, expect_shape,
    flush_subnormals, give_workspace, gradients_in, inference_chunk, lengths_of, require_fit,
    restore_float_env, sequence, state, step_input, take_workspace, weights, zeros,
)
from lstm_core._rnn_kernels cimport (
    gru_backward_f32, gru_backward_f64, gru_cache_f32, gru_cache_f64, gru_forward_f32,
    gru_forward_f64,
)

from lstm_core.reference import GRUGrads

cnp.import_array()

ctypedef fused real:
    float
    double


# ----------------------------------------------------------------------------- shared checks

cdef cnp.ndarray _vector(object value, str name, int typenum, Py_ssize_t size, str meaning):
    """An optional checked (size,) bias (the GRU's b_ih and b_hh)."""
    if value is None:
        return None
    cdef cnp.ndarray arr = checked(value, name, 1, f"({meaning},)", typenum, "x")
    expect_shape(arr, name, f"({meaning},)", size)
    return arr


# ----------------------------------------------------------------------------- GRU

@cython.final
cdef class GRUCache(SequenceCache):
    """What gru_backward needs from one training-mode gru_forward call.

    The inputs of the call (x, w_ih, w_hh) and, read-only, the saved activations.  Past a
    sequence's length gates and hn hold zeros and h the carried state.  Usable by any number
    of gru_backward calls; only gru_forward creates them.

    Attributes
    ----------
    x : ndarray, shape (T, B, I)
        The forward's input.
    w_ih : ndarray, shape (3H, I)
        The forward's input weights.
    w_hh : ndarray, shape (3H, H)
        The forward's recurrent weights.
    lengths : ndarray of C int, shape (B,), or None
        The forward's lengths.
    gates : ndarray, shape (T, B, 3H)
        Post-activation r, z, n of every step.
    hn : ndarray, shape (T, B, H)
        h_{t-1} @ w_hn.T + b_hn of every step.
    h : ndarray, shape (T+1, B, H)
        Hidden states, h[0] = h0.
    has_b_ih, has_b_hh : bool
        Whether the forward had each bias.
    """

    cdef readonly bint has_b_ih, has_b_hh
    cdef gru_cache_f32 c32
    cdef gru_cache_f64 c64

    def __init__(self):
        raise TypeError("GRUCache objects are created by gru_forward(..., training=True)")

    def _biases(self):
        return f"b_ih={bool(self.has_b_ih)} b_hh={bool(self.has_b_hh)}"

    @property
    def gates(self):
        return self.activations[0]

    @property
    def hn(self):
        return self.activations[1]

    @property
    def h(self):
        return self.activations[2]


cdef void _gru_forward_c(real *y, cnp.ndarray h_n, GRUCache cache, cnp.ndarray work,
                         cnp.ndarray x, cnp.ndarray h0, cnp.ndarray w_ih, cnp.ndarray w_hh,
                         cnp.ndarray b_ih, cnp.ndarray b_hh, cnp.ndarray lengths, int T, int B,
                         int I, int H, int chunk):
    cdef real *p_h_n = <real *>data_of(h_n)
    cdef real *p_work = <real *>data_of(work)
    cdef const real *p_x = <const real *>data_of(x)
    cdef const real *p_h0 = <const real *>data_of(h0)
    cdef const real *p_ih = <const real *>data_of(w_ih)
    cdef const real *p_hh = <const real *>data_of(w_hh)
    cdef const real *p_b_ih = <const real *>data_of(b_ih)
    cdef const real *p_b_hh = <const real *>data_of(b_hh)
    cdef const int *p_lengths = <const int *>data_of(lengths)
    cdef const gru_cache_f32 *c32 = NULL
    cdef const gru_cache_f64 *c64 = NULL
    if cache is not None:
        c32, c64 = &cache.c32, &cache.c64
    with nogil:
        saved_env = flush_subnormals()
        if real is float:
            gru_forward_f32(y, p_h_n, c32, p_work, p_x, p_h0, p_ih, p_hh, p_b_ih, p_b_hh,
                            p_lengths, T, B, I, H, chunk, gemm_f32)
        else:
            gru_forward_f64(y, p_h_n, c64, p_work, p_x, p_h0, p_ih, p_hh, p_b_ih, p_b_hh,
                            p_lengths, T, B, I, H, chunk, gemm_f64)
        restore_float_env(saved_env)


cdef void _gru_backward_c(real *dx, cnp.ndarray dw_ih, cnp.ndarray dw_hh, cnp.ndarray db_ih,
                          cnp.ndarray db_hh, cnp.ndarray dh0, cnp.ndarray dgi, cnp.ndarray dgh,
                          cnp.ndarray dy, cnp.ndarray dh_n, GRUCache cache, int T, int B,
                          int I, int H):
    cdef real *p_dw_ih = <real *>data_of(dw_ih)
    cdef real *p_dw_hh = <real *>data_of(dw_hh)
    cdef real *p_db_ih = <real *>data_of(db_ih)
    cdef real *p_db_hh = <real *>data_of(db_hh)
    cdef real *p_dh0 = <real *>data_of(dh0)
    cdef real *p_dgi = <real *>data_of(dgi)
    cdef real *p_dgh = <real *>data_of(dgh)
    cdef const real *p_dy = <const real *>data_of(dy)
    cdef const real *p_dh_n = <const real *>data_of(dh_n)
    cdef const real *p_x = <const real *>data_of(cache.x)
    cdef const real *p_ih = <const real *>data_of(cache.w_ih)
    cdef const real *p_hh = <const real *>data_of(cache.w_hh)
    cdef const int *p_lengths = <const int *>data_of(cache.lengths)
    with nogil:
        saved_env = flush_subnormals()
        if real is float:
            gru_backward_f32(dx, p_dw_ih, p_dw_hh, p_db_ih, p_db_hh, p_dh0, p_dgi, p_dgh, p_dy,
                             p_dh_n, &cache.c32, p_x, p_ih, p_hh, p_lengths, T, B, I, H,
                             gemm_f32)
        else:
            gru_backward_f64(dx, p_dw_ih, p_dw_hh, p_db_ih, p_db_hh, p_dh0, p_dgi, p_dgh, p_dy,
                             p_dh_n, &cache.c64, p_x, p_ih, p_hh, p_lengths, T, B, I, H,
                             gemm_f64)
        restore_float_env(saved_env)


cdef GRUCache _new_gru_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_b_ih,
                             bint has_b_hh, cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B,
                             Py_ssize_t H, int typenum):
    cdef GRUCache cache = GRUCache.__new__(GRUCache)
    cache.keep(x, w_ih, w_hh, lengths, typenum, ((T, B, 3 * H), (T, B, H), (T + 1, B, H)))
    cache.has_b_ih, cache.has_b_hh = has_b_ih, has_b_hh
    cdef void *gates = data_of(cache.gates)
    cdef void *hn = data_of(cache.hn)
    cdef void *h = data_of(cache.h)
    cache.c32 = gru_cache_f32(<float *>gates, <float *>hn, <float *>h)
    cache.c64 = gru_cache_f64(<double *>gates, <double *>hn, <double *>h)
    return cache


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, *, training=True, lengths=None):
    """Run a one-layer GRU over a whole sequence: torch.nn.GRU's cell, gate order r, z, n.

    ::

        r = sigmoid(x_t @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = sigmoid(x_t @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        n = tanh(x_t @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
        h_t = (1 - z) * n + z * h

    All arrays float32, or all float64.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        The input sequence, time-major.
    w_ih : ndarray, shape (3H, I)
        Input weights.
    w_hh : ndarray, shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : ndarray, shape (3H,), optional
        The two biases, or None; kept apart because b_hn sits inside the reset product.
    h0 : ndarray, shape (B, H), optional
        Initial state; None for zeros.
    training : bool, default True
        Keep what gru_backward needs.
    lengths : array_like of int, shape (B,), optional
        As lstm_forward's.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n : ndarray, shape (B, H)
        The final state.
    cache : GRUCache or None
        What gru_backward needs; None when training is False.

    Raises
    ------
    TypeError
        For an argument that is not a float32/float64 numpy array or whose dtype differs
        from x's (the message names the argument).
    ValueError
        For a wrong number of axes or a wrong size, or lengths out of range (the message
        names the argument with the expected and the actual shape).
    MemoryError
        When the outputs and the cache would need more memory than the machine has.
    """
    cdef cnp.ndarray ax = sequence(x)
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    cdef cnp.ndarray a_ih, a_hh
    cdef Py_ssize_t H
    a_ih, a_hh, _, H = weights(w_ih, w_hh, None, typenum, I, "x", 3, "r, z, n")
    cdef cnp.ndarray a_b_ih = _vector(b_ih, "b_ih", typenum, 3 * H, "3H")
    cdef cnp.ndarray a_b_hh = _vector(b_hh, "b_hh", typenum, 3 * H, "3H")
    cdef cnp.ndarray a_h0 = state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = lengths_of(lengths, B, T)
    # y, h_n, the step's scratch; training: gates 3H, h for T+1 steps, hn (Python ints)
    require_fit(((ax, "x"), (a_ih, "w_ih"), (a_hh, "w_hh"), (a_b_ih, "b_ih"), (a_b_hh, "b_hh"),
                 (a_h0, "h0")),
                T * B * H + 5 * B * H + (T * B * 3 * H + (T + 1) * B * H + T * B * H
                                         if training else INFERENCE_CHUNK_ROWS * 3 * H),
                ax, "the outputs" + (" and the training cache" if training else ""))
    ax, a_ih, a_hh = contiguous(ax), contiguous(a_ih), contiguous(a_hh)
    a_b_ih, a_b_hh = contiguous(a_b_ih), contiguous(a_b_hh)
    a_h0 = zeros((B, H), typenum) if a_h0 is None else contiguous(a_h0)
    cdef cnp.ndarray y = empty((T, B, H), typenum)
    cdef cnp.ndarray h_n = empty((B, H), typenum)
    cdef GRUCache cache = None
    cdef cnp.ndarray work
    cdef int chunk = 1
    if training:
        cache = _new_gru_cache(ax, a_ih, a_hh, a_b_ih is not None, a_b_hh is not None,
                               a_lengths, T, B, H, typenum)
        work = take_workspace(B * 3 * H, typenum)
    else:
        chunk = inference_chunk(T, B)
        work = take_workspace(chunk * B * 3 * H + B * 3 * H + B * H, typenum)
    if typenum == cnp.NPY_FLOAT:
        _gru_forward_c(<float *>data_of(y), h_n, cache, work, ax, a_h0, a_ih, a_hh, a_b_ih,
                       a_b_hh, a_lengths, T, B, I, H, chunk)
    else:
        _gru_forward_c(<double *>data_of(y), h_n, cache, work, ax, a_h0, a_ih, a_hh, a_b_ih,
                       a_b_hh, a_lengths, T, B, I, H, chunk)
    give_workspace(work)
    if cache is not None:
        cache.freeze()
    return y, h_n, cache


def gru_cell(x_t, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One inference step of a GRU: x_t, h -> h1 (torch.nn.GRUCell's step), gate order r, z, n.

    ::

        r = sigmoid(x_t @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = sigmoid(x_t @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        n = tanh(x_t @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
        h1 = (1 - z) * n + z * h

    The streaming path: no cache, nothing kept between calls, the same bits as the step of
    ``gru_forward(x_t[None], w_ih, w_hh, b_ih, b_hh, h, training=False)``; same rules as
    gru_forward.

    Parameters
    ----------
    x_t : ndarray, shape (B, I)
        The input of this step.
    h : ndarray, shape (B, H)
        The state before the step.
    w_ih : ndarray, shape (3H, I)
        Input weights.
    w_hh : ndarray, shape (3H, H)
        Recurrent weights.
    b_ih, b_hh : ndarray, shape (3H,), optional
        The two biases, or None; kept apart because b_hn sits inside the reset product.

    Returns
    -------
    h1 : ndarray, shape (B, H)
        The state after the step.

    Raises
    ------
    TypeError
        For an argument that is not a float32/float64 numpy array or whose dtype differs
        from x_t's.
    ValueError
        For a wrong number of axes or a wrong size.
    """
    cdef cnp.ndarray ax, a_h, a_ih, a_hh
    cdef Py_ssize_t H
    ax, a_h, a_ih, a_hh, _, H = step_input(x_t, h, w_ih, w_hh, None, 3, "r, z, n")
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t B = ax.shape[0], I = ax.shape[1]
    cdef cnp.ndarray a_b_ih = contiguous(_vector(b_ih, "b_ih", typenum, 3 * H, "3H"))
    cdef cnp.ndarray a_b_hh = contiguous(_vector(b_hh, "b_hh", typenum, 3 * H, "3H"))
    cdef cnp.ndarray h1 = empty((B, H), typenum)
    # One inference step of the sequence driver, as rnn_cell: the input projection of one
    # step, the recurrent product and scratch for hn.
    cdef cnp.ndarray work = take_workspace(B * 3 * H + B * 3 * H + B * H, typenum)
    if typenum == cnp.NPY_FLOAT:
        _gru_forward_c[float](NULL, h1, None, work, ax, a_h, a_ih, a_hh, a_b_ih, a_b_hh, None,
                       1, B, I, H, 1)
    else:
        _gru_forward_c[double](NULL, h1, None, work, ax, a_h, a_ih, a_hh, a_b_ih, a_b_hh,
                       None, 1, B, I, H, 1)
    give_workspace(work)
    return h1


def gru_backward(cache, dy=None, dh_n=None):
    """Gradients of a loss through one training-mode gru_forward call.

    Parameters
    ----------
    cache : GRUCache
        From gru_forward(..., training=True).
    dy : ndarray, shape (T, B, H), optional
        dL/dy; None means zero.
    dh_n : ndarray, shape (B, H), optional
        dL/dh_n; None means zero.

    Returns
    -------
    GRUGrads
        (dx, dw_ih, dw_hh, db_ih, db_hh, dh0), in the forward's dtype; db_ih / db_hh is
        None when the forward had no such bias.

    Raises
    ------
    TypeError
        For a cache that is not a GRUCache, or a gradient of another dtype.
    ValueError
        For a gradient of the wrong shape.
    """
    if not isinstance(cache, GRUCache) or (<GRUCache>cache).x is None:
        raise TypeError(
            "cache must be the GRUCache returned by gru_forward(..., training=True), "
            f"got {type(cache).__name__}"
        )
    cdef GRUCache c = <GRUCache>cache
    cdef int typenum = c.typenum
    cdef Py_ssize_t T = c.x.shape[0], B = c.x.shape[1], I = c.x.shape[2], H = c.w_hh.shape[1]
    cdef cnp.ndarray a_dy, a_dh_n
    a_dy, a_dh_n = gradients_in(dy, dh_n, typenum, T, B, H)
    cdef cnp.ndarray dx = empty((T, B, I), typenum)
    cdef cnp.ndarray dw_ih = zeros((3 * H, I), typenum)
    cdef cnp.ndarray dw_hh = zeros((3 * H, H), typenum)
    cdef cnp.ndarray db_ih = zeros((3 * H,), typenum) if c.has_b_ih else None
    cdef cnp.ndarray db_hh = zeros((3 * H,), typenum) if c.has_b_hh else None
    cdef cnp.ndarray dh0 = empty((B, H), typenum)
    cdef cnp.ndarray dgi = take_workspace(T * B * 3 * H, typenum)  # [T,B,3H]
    cdef cnp.ndarray dgh = take_workspace(T * B * 3 * H, typenum)  # [T,B,3H]
    if typenum == cnp.NPY_FLOAT:
        _gru_backward_c(<float *>data_of(dx), dw_ih, dw_hh, db_ih, db_hh, dh0, dgi, dgh, a_dy,
                        a_dh_n, c, T, B, I, H)
    else:
        _gru_backward_c(<double *>data_of(dx), dw_ih, dw_hh, db_ih, db_hh, dh0, dgi, dgh, a_dy,
                        a_dh_n, c, T, B, I, H)
    give_workspace(dgi)
    give_workspace(dgh)
    return GRUGrads(dx, dw_ih, dw_hh, db_ih, db_hh, dh0)
