# The Cython boundary of lstm_core: lstm_forward, lstm_backward, lstm_cell.
#
# Each call validates its arguments once (TypeError for dtypes, ValueError for shapes, always
# naming the argument), copies a non-contiguous or misaligned input once, allocates every
# output and takes its workspace from the pool (_boundary.pyx, take_workspace), then releases
# the GIL and runs the whole computation in C (src/lstm_core.h) without coming back to
# Python, its time loop split between threads when that pays off (_threads.pyx).  There is
# no module-level mutable state here; the process-wide state is the thread count
# (lc.set_num_threads) and the workspace pool (lc.free_workspace).

cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.limits cimport INT_MAX

from lstm_core._blas cimport gemm_f32, gemm_f64
from lstm_core._boundary cimport (
    INFERENCE_CHUNK_ROWS, checked, contiguous, data_of, empty, expect_shape, flush_subnormals,
    give_views_back, give_workspace, inference_chunk, lengths_of, pooled_views, require_fit,
    restore_float_env, sequence, shape_of, state, take_workspace, weights, zeros,
)
from lstm_core._kernels cimport (
    lstm_backward_f32, lstm_backward_f64, lstm_cache_f32, lstm_cache_f64,
    lstm_forward_f32, lstm_forward_f64, lstm_panels_size_f32, lstm_panels_size_f64,
)


from lstm_core._threads cimport loop_parts, run_parallel, weights_stay_cached
from lstm_core.reference import LSTMGrads

cnp.import_array()

ctypedef fused real:
    float
    double

# The recurrent products use the packed kernel (src/lstm_core.h, "Packed recurrent
# products") whenever the call runs at least PANELS_MIN_ROWS rows of them (T steps of B rows):
# packing w_hh costs about one product with one row, so below that the BLAS is cheaper (or,
# for one row, the matvec kernel of src/lstm_matvec.inc, which reads the weights as they
# are); above it, the BLAS repacks w_hh on every step and the packed kernel does not.  The
# streaming cell (T = 1) therefore packs only for B >= 8, and a cell step and a one-step
# sequence always take the same kernel (same bits).
cdef enum:
    PANELS_MIN_ROWS = 8

# How the forward projects its input, x_t @ w_ih.T for every step (src/lstm_core.h,
# lstm_forward's w_ih_panels and merge):
# - MERGED: each step's projection in one pass with its recurrent product, w_ih packed too:
#   - in a split loop, always: each task projects only its own columns, where a BLAS GEMM
#     would compute all of them on the BLAS's threads, whose idle workers would then spin on
#     the cores the loop needs;
#   - on one thread, when both packed weights stay in the core's cache and the batch fills
#     a block of the packed kernel's rows (MERGED_MIN_ROWS): z is then written once per step
#     and read back from cache.  With weights that do not stay cached, every step would
#     stream w_ih from memory; with fewer rows, the kernel's small blocks are slower than a
#     GEMM over many steps.  Measured forward, merged / GEMM, in one process: S2 0.91,
#     (100,64,64,64) 0.90, (100,8,64,128) 0.89, (200,32,128,128) 0.91; S1 (B = 1) 1.15,
#     S4 (8 MB) 1.03, S5 (32 MB) 1.09;
# - PACKED: otherwise, when the projection is small (SMALL_PRODUCT_FLOPS), all the steps of
#   a chunk at once with the packed kernel: a BLAS GEMM that small spends more in waking
#   its worker threads than they save.  S1's forward at 2 threads (B = 1, one task):
#   packed / GEMM 0.83-0.88 per round; at 1 thread 1.01;
# - GEMM: otherwise, one BLAS GEMM over all the steps of a chunk (all T in training).
# The three round differently in the last bits: calls that merge agree bit for bit whatever
# their thread count, and with calls that do not to the dtype's tolerance (README, Threads).
# The streaming cell follows the same rule as a one-step sequence.
cdef enum:
    MERGED_MIN_ROWS = 8
    PROJECT_GEMM = 0
    PROJECT_PACKED = 1
    PROJECT_MERGED = 2

# A product (the forward's projection, the backward's dx and weight gradients) below this
# many flops skips the BLAS on a loop of one task: ~0.1 ms of work, about what waking the
# BLAS's idle worker threads costs (the split loops never call the BLAS).
cdef double SMALL_PRODUCT_FLOPS = 2e7


cdef int _projection(Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, int itemsize,
                     int parts) noexcept:
    """PROJECT_MERGED, PROJECT_PACKED or PROJECT_GEMM (see above), for a call whose
    recurrent products use the packed kernel."""
    if parts > 1 or (B >= MERGED_MIN_ROWS and weights_stay_cached(4.0 * H * (H + I) * itemsize)):
        return PROJECT_MERGED
    if 8.0 * T * B * I * H < SMALL_PRODUCT_FLOPS:
        return PROJECT_PACKED
    return PROJECT_GEMM


def _projection_of(T, B, I, H, itemsize, parts):
    """_projection as "merged", "packed" or "gemm", for the tests (which check the bits)."""
    return {PROJECT_MERGED: "merged", PROJECT_PACKED: "packed",
            PROJECT_GEMM: "gemm"}[_projection(T, B, I, H, itemsize, parts)]


cdef Py_ssize_t _panels_size(Py_ssize_t K, Py_ssize_t N, int typenum, bint gated=False):
    """Elements of a K x N matrix packed into panels."""
    return (lstm_panels_size_f32(<int>K, <int>N, gated) if typenum == cnp.NPY_FLOAT
            else lstm_panels_size_f64(<int>K, <int>N, gated))


cdef cnp.ndarray _panels_buffer(Py_ssize_t T, Py_ssize_t B, Py_ssize_t K, Py_ssize_t N,
                                bint gated, int typenum):
    """Workspace for a weight matrix packed as K x N (give it back with give_workspace), or
    None when T * B rows are too few."""
    if T * B < PANELS_MIN_ROWS:
        return None
    return take_workspace(_panels_size(K, N, typenum, gated), typenum)


# ----------------------------------------------------------------------------- the cache

@cython.final
cdef class LSTMCache:
    """What lstm_backward needs from one training-mode lstm_forward call.

    It holds the inputs of the call (x, w_ih, w_hh: the very arrays passed in when they were
    already contiguous, so modifying them in place before lstm_backward changes the
    gradients) and the saved activations, read-only.  Past a sequence's length, gates and
    tanh_c hold zeros and h, c the carried state.  A cache may be used by any number of
    lstm_backward calls.  Only lstm_forward creates caches; the class cannot be instantiated
    or subclassed.  The saved activations live in one buffer of the workspace pool, given
    back to it when the cache goes, unless one of them is still referenced elsewhere.

    Attributes
    ----------
    x : ndarray, shape (T, B, I)
        The forward's input.
    w_ih : ndarray, shape (4H, I)
        The forward's input weights.
    w_hh : ndarray, shape (4H, H)
        The forward's recurrent weights.
    lengths : ndarray of C int, shape (B,), or None
        The forward's lengths.
    gates : ndarray, shape (T, B, 4H)
        Post-activation i, f, g, o of every step.
    c, h : ndarray, shape (T+1, B, H)
        Cell and hidden states, slot 0 = c0, h0.
    tanh_c : ndarray, shape (T, B, H)
        tanh of the cell state of every step.
    has_bias : bool
        Whether the forward had a bias.
    """

    cdef readonly cnp.ndarray x, w_ih, w_hh, lengths, gates, c, tanh_c, h
    cdef readonly bint has_bias
    cdef int typenum
    cdef lstm_cache_f32 c32
    cdef lstm_cache_f64 c64
    cdef cnp.ndarray memory  # the pool buffer that gates, c, tanh_c and h are views of

    def __dealloc__(self):
        # A training loop drops each step's cache before the next step's forward: back in
        # the pool, its memory serves that forward instead of pages faulted in afresh (~2 us
        # each here; S2's training step faulted in 1574 of them, ~20% of its time).
        cdef PyObject *views[4]
        if self.memory is not None:
            views[0], views[1] = <PyObject *>self.gates, <PyObject *>self.c
            views[2], views[3] = <PyObject *>self.tanh_c, <PyObject *>self.h
            give_views_back(<PyObject *>self.memory, views, 4)

    def __init__(self):
        raise TypeError("LSTMCache objects are created by lstm_forward(..., training=True)")

    def __repr__(self):
        T, B, I = shape_of(self.x)
        return (f"<LSTMCache T={T} B={B} I={I} H={shape_of(self.w_hh)[1]} "
                f"dtype={self.x.dtype} bias={bool(self.has_bias)}>")


cdef LSTMCache _new_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_bias,
                          cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                          int typenum):
    cdef LSTMCache cache = LSTMCache.__new__(LSTMCache)
    cache.x, cache.w_ih, cache.w_hh, cache.has_bias, cache.lengths, cache.typenum = (
        x, w_ih, w_hh, has_bias, lengths, typenum)
    shapes = ((T, B, 4 * H), (T + 1, B, H), (T, B, H), (T + 1, B, H))
    cache.memory, views = pooled_views(shapes, typenum)
    cache.gates, cache.c, cache.tanh_c, cache.h = views
    cache.c32 = lstm_cache_f32(<float *>data_of(cache.gates), <float *>data_of(cache.c),
                               <float *>data_of(cache.tanh_c), <float *>data_of(cache.h))
    cache.c64 = lstm_cache_f64(<double *>data_of(cache.gates), <double *>data_of(cache.c),
                               <double *>data_of(cache.tanh_c), <double *>data_of(cache.h))
    return cache


cdef void _freeze(LSTMCache cache):
    for arr in (cache.gates, cache.c, cache.tanh_c, cache.h):
        arr.flags.writeable = False


# ----------------------------------------------------------------------------- GIL-free calls

cdef void _run_forward(real *y, real *h_n, real *c_n, LSTMCache cache, real *work,
                       real *hh_panels, real *ih_panels, const real *x, const real *h0,
                       const real *c0, const real *w_ih, const real *w_hh, const real *bias,
                       const int *lengths, int T, int B, int I, int H, int chunk, int merge,
                       int parts, int by_rows):
    """The whole forward in C with the GIL released: the time loop in `parts` tasks, which
    first pack w_hh.T into hh_panels and w_ih.T into ih_panels, when given."""
    cdef const lstm_cache_f32 *c32 = NULL
    cdef const lstm_cache_f64 *c64 = NULL
    if cache is not None:
        c32, c64 = &cache.c32, &cache.c64
    with nogil:
        saved_env = flush_subnormals()
        if real is float:
            lstm_forward_f32(y, h_n, c_n, c32, work, x, h0, c0, w_ih, w_hh, ih_panels,
                             hh_panels, bias, lengths, T, B, I, H, chunk, merge, gemm_f32, parts,
                             by_rows, run_parallel)
        else:
            lstm_forward_f64(y, h_n, c_n, c64, work, x, h0, c0, w_ih, w_hh, ih_panels,
                             hh_panels, bias, lengths, T, B, I, H, chunk, merge, gemm_f64, parts,
                             by_rows, run_parallel)
        restore_float_env(saved_env)


cdef void _run_backward(real *dx, real *dw_ih, real *dw_hh, real *dbias, real *dh0,
                        real *dc0, real *dz, real *panels, real *grad_panels, const real *dy,
                        const real *dh_n, const real *dc_n, LSTMCache cache, int T, int B,
                        int I, int H, int parts, int by_rows):
    """The whole backward in C with the GIL released: the time loop in `parts` tasks, which
    first pack w_hh into panels, when given, and also share the weight products when
    grad_panels is given."""
    cdef const real *x = <const real *>data_of(cache.x)
    cdef const real *w_ih = <const real *>data_of(cache.w_ih)
    cdef const real *w_hh = <const real *>data_of(cache.w_hh)
    cdef const int *lengths = <const int *>data_of(cache.lengths)
    with nogil:
        saved_env = flush_subnormals()
        if real is float:
            lstm_backward_f32(dx, dw_ih, dw_hh, dbias, dh0, dc0, dz, dy, dh_n, dc_n,
                              &cache.c32, x, w_ih, w_hh, panels, grad_panels, lengths, T, B,
                              I, H, gemm_f32, parts, by_rows, run_parallel)
        else:
            lstm_backward_f64(dx, dw_ih, dw_hh, dbias, dh0, dc0, dz, dy, dh_n, dc_n,
                              &cache.c64, x, w_ih, w_hh, panels, grad_panels, lengths, T, B,
                              I, H, gemm_f64, parts, by_rows, run_parallel)
        restore_float_env(saved_env)


cdef void _forward_arrays(cnp.ndarray y, cnp.ndarray h_n, cnp.ndarray c_n, LSTMCache cache,
                          cnp.ndarray work, cnp.ndarray hh_panels, cnp.ndarray ih_panels,
                          cnp.ndarray x, cnp.ndarray h0, cnp.ndarray c0, cnp.ndarray w_ih,
                          cnp.ndarray w_hh, cnp.ndarray bias, cnp.ndarray lengths, int T, int B,
                          int I, int H, int chunk, int merge, int parts, int by_rows):
    """Dispatch on the dtype of x; every array has been validated and allocated."""
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        _run_forward(<float *>data_of(y), <float *>data_of(h_n), <float *>data_of(c_n), cache,
                     <float *>data_of(work), <float *>data_of(hh_panels),
                     <float *>data_of(ih_panels), <float *>data_of(x), <float *>data_of(h0),
                     <float *>data_of(c0), <float *>data_of(w_ih), <float *>data_of(w_hh),
                     <float *>data_of(bias), <int *>data_of(lengths), T, B, I, H, chunk, merge,
                     parts, by_rows)
    else:
        _run_forward(<double *>data_of(y), <double *>data_of(h_n), <double *>data_of(c_n), cache,
                     <double *>data_of(work), <double *>data_of(hh_panels),
                     <double *>data_of(ih_panels), <double *>data_of(x), <double *>data_of(h0),
                     <double *>data_of(c0), <double *>data_of(w_ih), <double *>data_of(w_hh),
                     <double *>data_of(bias), <int *>data_of(lengths), T, B, I, H, chunk, merge,
                     parts, by_rows)


# ----------------------------------------------------------------------------- public API

def lstm_forward(x, w_ih, w_hh, bias=None, h0=None, c0=None, *, training=True, lengths=None):
    """Run a one-layer LSTM over a whole sequence.

    Gate order i, f, g, o along the 4H axis.  All arrays float32, or all float64.
    Non-contiguous inputs are copied once; inputs are never modified; the GIL is released
    while the kernels run.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        The input sequence, time-major.
    w_ih : ndarray, shape (4H, I)
        Input weights.
    w_hh : ndarray, shape (4H, H)
        Recurrent weights.
    bias : ndarray, shape (4H,), optional
        b_ih + b_hh, or None for no bias.
    h0, c0 : ndarray, shape (B, H), optional
        Initial states; None for zeros.
    training : bool, default True
        Keep the per-step activations lstm_backward needs.  False keeps none: memory
        O(B*H) beyond the inputs and outputs.
    lengths : array_like of int, shape (B,), optional
        Integers in [0, T], or None for all T: steps t >= lengths[b] leave sequence b's
        state unchanged and output zeros, so h_n, c_n are each sequence's state at its own
        length (what torch computes on a packed sequence, without packing); the cache
        remembers the lengths and lstm_backward masks the gradients to match.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n, c_n : ndarray, shape (B, H)
        The final states.
    cache : LSTMCache or None
        What lstm_backward needs; None when training is False.

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

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> rng = np.random.default_rng(0)
    >>> T, B, I, H = 5, 2, 3, 4
    >>> x = rng.standard_normal((T, B, I)).astype(np.float32)
    >>> w_ih = rng.standard_normal((4 * H, I)).astype(np.float32)
    >>> w_hh = rng.standard_normal((4 * H, H)).astype(np.float32)
    >>> y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh)
    >>> y.shape, h_n.shape
    ((5, 2, 4), (2, 4))
    """
    cdef cnp.ndarray ax = sequence(x)
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, typenum, I, "x", 4, "i, f, g, o")
    cdef cnp.ndarray a_h0 = state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_c0 = state(c0, "c0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = lengths_of(lengths, B, T)
    # Everything is valid: check that the copies, outputs and caches fit in memory, then copy
    # what needs copying, allocate, run.
    # y, h_n, c_n; the packed weights (w_hh, and w_ih when the loop is split; panels of 8
    # units at most, so H + 8 units); training: the cache (gates 4H, c and h T+1 steps,
    # tanh_c); inference: the chunk's workspace (one step's 4BH at least, and 2BH scratch).
    # Python ints: no overflow.
    require_fit(((ax, "x"), (a_ih, "w_ih"), (a_hh, "w_hh"), (a_bias, "bias"), (a_h0, "h0"),
                 (a_c0, "c0")),
                T * B * H + 4 * B * H + 4 * (H + 8) * (H + I) + (
                    T * B * 4 * H + 2 * (T + 1) * B * H + T * B * H if training
                    else INFERENCE_CHUNK_ROWS * 4 * H + 6 * B * H),
                ax, "the outputs" + (" and the training cache" if training else ""))
    ax, a_ih, a_hh = contiguous(ax), contiguous(a_ih), contiguous(a_hh)
    a_bias = contiguous(a_bias)
    a_h0 = zeros((B, H), typenum) if a_h0 is None else contiguous(a_h0)
    a_c0 = zeros((B, H), typenum) if a_c0 is None else contiguous(a_c0)
    cdef cnp.ndarray y = empty((T, B, H), typenum)
    cdef cnp.ndarray h_n = empty((B, H), typenum)
    cdef cnp.ndarray c_n = empty((B, H), typenum)
    cdef LSTMCache cache = None
    cdef cnp.ndarray work = None
    cdef int chunk = 1
    # The time loop in `parts` tasks (_threads.pyx), each computing its share of the columns
    # (or rows) of every product; the input projection as _projection says.
    cdef int by_rows = 0
    cdef int itemsize = cnp.PyArray_ITEMSIZE(ax)
    cdef int parts = loop_parts(B, H, 8.0 * B * H * (H + I), T, 4.0 * H * (H + I) * itemsize,
                                &by_rows)
    cdef cnp.ndarray hh_panels = _panels_buffer(T, B, H, 4 * H, True, typenum)
    cdef cnp.ndarray ih_panels = None
    cdef int projection = (PROJECT_GEMM if hh_panels is None
                           else _projection(T, B, I, H, itemsize, parts))
    if projection != PROJECT_GEMM:
        ih_panels = _panels_buffer(T, B, I, 4 * H, True, typenum)
    if training:
        cache = _new_cache(ax, a_ih, a_hh, a_bias is not None, a_lengths, T, B, H, typenum)
    else:
        # projected step by step: one step's workspace is enough
        chunk = 1 if projection == PROJECT_MERGED else inference_chunk(T, B)
        work = take_workspace(chunk * B * 4 * H + 2 * B * H, typenum)
    _forward_arrays(y, h_n, c_n, cache, work, hh_panels, ih_panels, ax, a_h0, a_c0, a_ih, a_hh,
                    a_bias, a_lengths, T, B, I, H, chunk, projection == PROJECT_MERGED, parts,
                    by_rows)
    for scratch in (work, hh_panels, ih_panels):
        give_workspace(scratch)
    if cache is not None:
        _freeze(cache)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Gradients of a loss through one training-mode lstm_forward call.

    Parameters
    ----------
    cache : LSTMCache
        From lstm_forward(..., training=True).
    dy : ndarray, shape (T, B, H), optional
        The gradient of the loss with respect to y; None means zero.
    dh_n, dc_n : ndarray, shape (B, H), optional
        The gradients with respect to h_n and c_n; None means zero.

    Returns
    -------
    LSTMGrads
        (dx, dw_ih, dw_hh, dbias, dh0, dc0), in the forward's dtype; dbias is None when the
        forward had no bias (its gradient is also the gradient of b_ih and of b_hh).

    Raises
    ------
    TypeError
        For a cache that is not an LSTMCache, or a gradient of another dtype.
    ValueError
        For a gradient of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> import lstm_core as lc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((5, 2, 3))
    >>> w_ih, w_hh = rng.standard_normal((16, 3)), rng.standard_normal((16, 4))
    >>> y, h_n, c_n, cache = lc.lstm_forward(x, w_ih, w_hh)
    >>> grads = lc.lstm_backward(cache, dy=np.ones_like(y))
    >>> grads.dx.shape, grads.dw_hh.shape
    ((5, 2, 3), (16, 4))
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
        a_dy = checked(dy, "dy", 3, "(T, B, H)", typenum, "cache")
        expect_shape(a_dy, "dy", "(T, B, H) of the forward call", T, B, H)
    cdef cnp.ndarray a_dh_n = state(dh_n, "dh_n", typenum, B, H, "cache", True)
    cdef cnp.ndarray a_dc_n = state(dc_n, "dc_n", typenum, B, H, "cache", True)
    a_dy, a_dh_n, a_dc_n = contiguous(a_dy), contiguous(a_dh_n), contiguous(a_dc_n)
    cdef cnp.ndarray dx = empty((T, B, I), typenum)
    cdef cnp.ndarray dw_ih = zeros((4 * H, I), typenum)
    cdef cnp.ndarray dw_hh = zeros((4 * H, H), typenum)
    cdef cnp.ndarray dbias = zeros((4 * H,), typenum) if c.has_bias else None
    cdef cnp.ndarray dh0 = empty((B, H), typenum)
    cdef cnp.ndarray dc0 = empty((B, H), typenum)
    cdef cnp.ndarray dz = take_workspace(T * B * 4 * H, typenum)  # [T,B,4H]
    cdef cnp.ndarray panels = _panels_buffer(T, B, 4 * H, H, False, typenum)
    # The time loop in `parts` tasks (_threads.pyx).  A split loop's tasks also compute dx and
    # the weight gradients with the packed kernel, from x, h and w_ih packed into grad_panels:
    # the BLAS's GEMMs would run on its own threads, whose idle workers then spin on the cores
    # the next call's loop needs.  So does a loop of one task when those products are small
    # (SMALL_PRODUCT_FLOPS), where waking the BLAS's threads costs more than they save.  As
    # in the forward, one and several threads agree to the dtype's tolerance, any two counts
    # above one bit for bit.
    cdef int by_rows = 0
    cdef int parts = loop_parts(B, H, 8.0 * B * H * H, T,
                                4.0 * H * H * cnp.PyArray_ITEMSIZE(c.x), &by_rows)
    cdef cnp.ndarray grad_panels = None
    if panels is not None and (parts > 1 or 8.0 * T * B * H * (2 * I + H) < SMALL_PRODUCT_FLOPS):
        grad_panels = take_workspace(_panels_size(T * B, I, typenum)
                                     + _panels_size(T * B, H, typenum)
                                     + _panels_size(4 * H, I, typenum), typenum)
    if typenum == cnp.NPY_FLOAT:
        _run_backward(<float *>data_of(dx), <float *>data_of(dw_ih), <float *>data_of(dw_hh),
                      <float *>data_of(dbias), <float *>data_of(dh0), <float *>data_of(dc0),
                      <float *>data_of(dz), <float *>data_of(panels),
                      <float *>data_of(grad_panels), <float *>data_of(a_dy),
                      <float *>data_of(a_dh_n), <float *>data_of(a_dc_n), c, T, B, I, H, parts,
                      by_rows)
    else:
        _run_backward(<double *>data_of(dx), <double *>data_of(dw_ih), <double *>data_of(dw_hh),
                      <double *>data_of(dbias), <double *>data_of(dh0), <double *>data_of(dc0),
                      <double *>data_of(dz), <double *>data_of(panels),
                      <double *>data_of(grad_panels), <double *>data_of(a_dy),
                      <double *>data_of(a_dh_n), <double *>data_of(a_dc_n), c, T, B, I, H, parts,
                      by_rows)
    for scratch in (dz, panels, grad_panels):
        give_workspace(scratch)
    return LSTMGrads(dx, dw_ih, dw_hh, dbias, dh0, dc0)


def lstm_cell(x_t, h, c, w_ih, w_hh, bias=None):
    """One inference step of an LSTM: x_t, h, c -> h1, c1.

    The streaming path: no cache, nothing kept between calls; same rules as lstm_forward.

    Parameters
    ----------
    x_t : ndarray, shape (B, I)
        The input of this step.
    h, c : ndarray, shape (B, H)
        The states before the step.
    w_ih : ndarray, shape (4H, I)
        Input weights, gate order i, f, g, o.
    w_hh : ndarray, shape (4H, H)
        Recurrent weights.
    bias : ndarray, shape (4H,), optional
        b_ih + b_hh, or None for no bias.

    Returns
    -------
    h1, c1 : ndarray, shape (B, H)
        The states after the step.

    Raises
    ------
    TypeError
        For an argument that is not a float32/float64 numpy array or whose dtype differs
        from x_t's.
    ValueError
        For a wrong number of axes or a wrong size.
    """
    cdef cnp.ndarray ax = checked(x_t, "x_t", 2, "(B, I)", -1, "x_t")
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t B = ax.shape[0], I = ax.shape[1]
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, typenum, I, "x_t", 4, "i, f, g, o")
    cdef cnp.ndarray a_h = state(h, "h", typenum, B, H, "x_t", False)
    cdef cnp.ndarray a_c = state(c, "c", typenum, B, H, "x_t", False)
    if B > INT_MAX:
        raise ValueError(f"x_t of shape {shape_of(ax)} is too large: B must be at most {INT_MAX}")
    ax, a_ih, a_hh = contiguous(ax), contiguous(a_ih), contiguous(a_hh)
    a_bias = contiguous(a_bias)
    a_h, a_c = contiguous(a_h), contiguous(a_c)
    cdef cnp.ndarray h1 = empty((B, H), typenum)
    cdef cnp.ndarray c1 = empty((B, H), typenum)
    cdef cnp.ndarray work = empty((B * 4 * H + 2 * B * H,), typenum)
    # One inference step of the sequence driver, whose running state ends as h1, c1.
    # The same recurrent kernel as lstm_forward for this B, so that a step of the cell and a
    # step of the sequence give the same bits (packing costs 1/B of the product).
    cdef cnp.ndarray panels = _panels_buffer(1, B, H, 4 * H, True, typenum)
    cdef cnp.ndarray ih_panels = None
    cdef int projection = (PROJECT_GEMM if panels is None
                           else _projection(1, B, I, H, cnp.PyArray_ITEMSIZE(ax), 1))
    if projection != PROJECT_GEMM:
        ih_panels = _panels_buffer(1, B, I, 4 * H, True, typenum)
    _forward_arrays(None, h1, c1, None, work, panels, ih_panels, ax, a_h, a_c, a_ih, a_hh,
                    a_bias, None, 1, B, I, H, 1, projection == PROJECT_MERGED, 1, 0)
    give_workspace(panels)
    give_workspace(ih_panels)
    return h1, c1
