# The Cython boundary of lstm_core's driver: the LSTM's lstm_forward, lstm_backward,
# lstm_cell, and the GRU's and the vanilla RNN's gru_* and rnn_*, which run on the same driver
# (src/include/lstm_core.h, The cells).
#
# Each call validates its arguments once (TypeError for dtypes, ValueError for shapes, always
# naming the argument), copies a non-contiguous or misaligned input once, allocates every
# output and takes its workspace from the pool (_boundary.pyx, take_workspace), then releases
# the GIL and runs the whole computation in C (src/include/lstm_core.h) without coming back to
# Python.  How it runs (threads, packing, the input projection, the workspace) is the C
# plan's decision (src/include/lstm_plan.h), made once per call from the sizes and the
# process's settings (_threads.pyx).  There is no module-level mutable state here; the
# process-wide state is the thread count (lc.set_num_threads) and the workspace pool
# (lc.free_workspace).

cimport cython
cimport numpy as cnp

import numpy as np
from libc.limits cimport INT_MAX

from lstm_core._boundary cimport (
    INFERENCE_CHUNK_ROWS, SequenceCache, checked, contiguous, data_of, empty, expect_shape,
    give_workspace, gradients_in, lengths_of, require_fit, sequence, shape_of, state,
    step_input, take_workspace, weights, zeros,
)
from lstm_core._kernels cimport (
    lstm_backward_f32, lstm_backward_f64, lstm_cache_f32, lstm_cache_f64, lstm_forward_f32,
    lstm_forward_f64, lstm_grads_f32, lstm_grads_f64, lstm_inputs_f32, lstm_inputs_f64,
    lstm_output_grads_f32, lstm_output_grads_f64, lstm_outputs_f32, lstm_outputs_f64,
    lstm_pack_weights_f32, lstm_pack_weights_f64, lstm_panels_size_f32, lstm_panels_size_f64,
    lstm_plan, lstm_plan_backward, lstm_plan_backward_cell, lstm_plan_forward,
    lstm_plan_forward_cell, lstm_plan_prepacked, lstm_settings, lstm_weights_f32,
    lstm_weights_f64, lstm_reduced_weights, lstm_reduced_isa, lstm_pack_reduced,
    lstm_plan_reduced, lstm_plan_mixed, lstm_reduced_panels_size, lstm_round_bfloat16, lstm_reduced_lanes, LSTM_BFLOAT16, LSTM_INT8,
    LSTM_ISA_PORTABLE, LSTM_ISA_AVX2, LSTM_ISA_AVX512, LSTM_ISA_AMX,
)
from lstm_core._threads cimport kernel_settings
from lstm_core.precision import quantize_weights
from lstm_core.reference import GRUGrads, LSTMGrads, RNNGrads

cnp.import_array()

# ----------------------------------------------------------------------------- the cache

@cython.final
cdef class LSTMCache(SequenceCache):
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
    precision : None or "bfloat16"
        "bfloat16" for a mixed-precision forward, whose x, w_ih and w_hh above are the
        bfloat16-rounded arrays its products read (and lstm_backward's products too).
    """

    cdef readonly bint has_bias
    cdef readonly object precision
    cdef lstm_cache_f32 c32
    cdef lstm_cache_f64 c64

    def __init__(self):
        raise TypeError("LSTMCache objects are created by lstm_forward(..., training=True)")

    def _biases(self):
        return f"bias={bool(self.has_bias)}" + (
            f" precision={self.precision!r}" if self.precision is not None else "")

    @property
    def gates(self):
        return self.activations[0]

    @property
    def c(self):
        return self.activations[1]

    @property
    def tanh_c(self):
        return self.activations[2]

    @property
    def h(self):
        return self.activations[3]


cdef LSTMCache _new_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_bias,
                          cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                          int typenum):
    cdef LSTMCache cache = LSTMCache.__new__(LSTMCache)
    cache.keep(x, w_ih, w_hh, lengths, typenum,
               ((T, B, 4 * H), (T + 1, B, H), (T, B, H), (T + 1, B, H)))
    cache.has_bias = has_bias
    cdef void *gates = data_of(cache.gates)
    cdef void *c = data_of(cache.c)
    cdef void *tanh_c = data_of(cache.tanh_c)
    cdef void *h = data_of(cache.h)
    cache.c32 = lstm_cache_f32(<float *>gates, <float *>c, <float *>tanh_c, <float *>h, NULL)
    cache.c64 = lstm_cache_f64(<double *>gates, <double *>c, <double *>tanh_c, <double *>h,
                               NULL)
    return cache


# ----------------------------------------------------------------------------- packed weights

_PRECISIONS = {"float32": cnp.NPY_FLOAT, "float64": cnp.NPY_DOUBLE,
               "bfloat16": cnp.NPY_FLOAT, "int8": cnp.NPY_FLOAT}
_REDUCED = {"bfloat16": LSTM_BFLOAT16, "int8": LSTM_INT8}
# The kernel levels of the reduced precisions (src/include/lstm_core.h), lowest first; the
# environment variable caps the level a PackedLSTM picks when it is made.
_ISA_LEVELS = {"portable": LSTM_ISA_PORTABLE, "avx2": LSTM_ISA_AVX2,
               "avx512": LSTM_ISA_AVX512, "amx": LSTM_ISA_AMX}
ISA_VARIABLE = "LSTM_CORE_MAX_ISA"


def _isa_cap():
    """The level named by LSTM_CORE_MAX_ISA (unset or empty: no cap); ValueError otherwise."""
    import os
    value = os.environ.get(ISA_VARIABLE, "").strip().lower()
    if not value:
        return LSTM_ISA_AMX
    if value not in _ISA_LEVELS:
        raise ValueError(f"{ISA_VARIABLE}={value!r} is not a kernel level: use one of "
                         + ", ".join(repr(k) for k in _ISA_LEVELS))
    return _ISA_LEVELS[value]


cdef class PackedWeights:
    """What the packed cells share: the panels the kernels read (w_ih.T's, then w_hh.T's, in
    the cell's layout) or the reduced-precision panels, and the dtype they compute in."""

    cdef readonly str precision, kernel
    cdef readonly Py_ssize_t input_size, hidden_size
    cdef cnp.ndarray panels       # [w_ih.T's gate panels | w_hh.T's]
    cdef Py_ssize_t ih_panels     # elements of w_ih.T's panels
    cdef int typenum
    # the reduced precisions (the LSTM's): the packed matrices, their int8 lane scales and
    # sums, and the kernels' view of them
    cdef bint is_reduced
    cdef cnp.ndarray reduced_ih, reduced_hh, ih_scales, hh_scales, ih_sums, hh_sums
    cdef lstm_reduced_weights reduced

    def __init__(self):
        raise TypeError(f"{type(self).__name__} objects are made by lstm_core."
                        f"{_PACKERS.get(type(self).__name__, 'pack_lstm')}(...)")

    cdef int _check_dtype(self, cnp.ndarray arr, str name) except -1:
        if cnp.PyArray_TYPE(arr) != self.typenum:
            dtype = "float32" if self.typenum == cnp.NPY_FLOAT else "float64"
            raise TypeError(
                f"{name} has dtype {arr.dtype} but this {type(self).__name__} computes in "
                f"{self.precision}" + (" from float32 inputs" if self.is_reduced else "")
                + f": pass {name}.astype(np.{dtype})"
            )
        return 0

    cdef cnp.ndarray _sequence_input(self, object x):
        cdef cnp.ndarray ax = sequence(x)
        self._check_dtype(ax, "x")
        expect_shape(ax, "x", "(T, B, I) with I = the packed input size", ax.shape[0],
                     ax.shape[1], self.input_size)
        return ax

    cdef cnp.ndarray _step_input(self, object x_t):
        cdef cnp.ndarray ax = checked(x_t, "x_t", 2, "(B, I)", -1, "x_t")
        self._check_dtype(ax, "x_t")
        expect_shape(ax, "x_t", "(B, I) with I = the packed input size", ax.shape[0],
                     self.input_size)
        return ax


# The function that makes each packed class, for its error message.
_PACKERS = {"PackedLSTM": "pack_lstm", "PackedGRU": "pack_gru", "PackedRNN": "pack_rnn"}


cdef int _pack_panels(PackedWeights packed, cnp.ndarray w_ih, cnp.ndarray w_hh,
                      int gates) except -1:
    """Pack w_ih.T and w_hh.T (float32 or float64, the packed dtype) into the panels of the
    cell of `gates` gate blocks, as the forward's plan reads them."""
    cdef int In = <int>w_ih.shape[1], H = <int>w_hh.shape[1], G = <int>w_hh.shape[0]
    cdef int gated = 0 if gates == 1 else gates
    if packed.typenum == cnp.NPY_FLOAT:
        packed.ih_panels = lstm_panels_size_f32(In, G, gated)
        packed.panels = empty((packed.ih_panels + lstm_panels_size_f32(H, G, gated),),
                              packed.typenum)
        lstm_pack_weights_f32(<float *>data_of(packed.panels), <float *>data_of(w_ih),
                              <float *>data_of(w_hh), In, H, gates)
    else:
        packed.ih_panels = lstm_panels_size_f64(In, G, gated)
        packed.panels = empty((packed.ih_panels + lstm_panels_size_f64(H, G, gated),),
                              packed.typenum)
        lstm_pack_weights_f64(<double *>data_of(packed.panels), <double *>data_of(w_ih),
                              <double *>data_of(w_hh), In, H, gates)
    return 0


cdef tuple _copies(object arrays, int typenum):
    """Read-only C-ordered copies in the dtype of typenum (None stays None)."""
    dtype = np.float32 if typenum == cnp.NPY_FLOAT else np.float64
    out = []
    for arr in arrays:
        copy = None if arr is None else np.array(arr, dtype=dtype, order="C")
        if copy is not None:
            copy.flags.writeable = False
        out.append(copy)
    return tuple(out)


@cython.final
cdef class PackedLSTM(PackedWeights):
    """LSTM weights packed once for inference: made by ``lc.pack_lstm``.

    It owns read-only copies of the weights it was packed from (w_ih (4H, I), w_hh (4H, H),
    bias (4H,) or None; float32 or float64 for those precisions, float32 for "bfloat16" and
    "int8") and both matrices packed into the kernels' panels (bfloat16 or int8 ones, with
    the int8 scales and column sums, for the reduced precisions), so ``forward`` and ``cell``
    neither pack nor check the weights again.  Later changes to the arrays it was made from
    do not affect it; any number of threads may call it at once.  In float32 and float64 its
    results are the same bits as ``lstm_forward(..., training=False)`` and ``lstm_cell`` with
    the same weights; ``kernel`` names the kernels that run its products.
    """

    cdef readonly cnp.ndarray w_ih, w_hh, bias

    def __repr__(self):
        return (f"<PackedLSTM input_size={self.input_size} hidden_size={self.hidden_size} "
                f"precision={self.precision!r} bias={self.bias is not None}"
                + (f" kernel={self.kernel!r}>" if self.is_reduced else ">"))

    def forward(self, x, h0=None, c0=None, *, lengths=None):
        """Inference over a whole sequence: the same arguments and results as
        ``lstm_forward(x, w_ih, w_hh, bias, h0, c0, training=False, lengths=lengths)``
        without its cache: returns y (T, B, H), h_n (B, H), c_n (B, H).  x (T, B, I) must
        have the dtype of the precision (float32 for "bfloat16" and "int8")."""
        cdef cnp.ndarray ax = self._sequence_input(x)
        return _sequence(ax, self.w_ih, self.w_hh, self.bias, self.hidden_size, h0, c0,
                         lengths, False, self)[:3]

    def cell(self, x_t, h, c):
        """One inference step, as ``lstm_cell(x_t, h, c, w_ih, w_hh, bias)``: x_t (B, I),
        h, c (B, H) -> h1, c1 (B, H)."""
        cdef cnp.ndarray ax = self._step_input(x_t)
        return _cell(ax, self.w_ih, self.w_hh, self.bias, self.hidden_size, h, c, self)


def pack_lstm(w_ih, w_hh, bias=None, *, precision="float32"):
    """Pack an LSTM's weights once for any number of inference calls.

    w_ih (4H, I), w_hh (4H, H), bias (4H,) = b_ih + b_hh or None, float32 or float64 (one
    dtype).  precision: what the packed LSTM computes in.
      "float32", "float64"  the dtype the weights are copied in; ``forward`` and ``cell``
                            equal ``lstm_forward(training=False)`` and ``lstm_cell`` bit for
                            bit.
      "bfloat16"            weights rounded to bfloat16 (nearest even); each step's x_t and
                            h_{t-1} rounded likewise; float32 sums, gates and state.
      "int8"                weights int8 with a scale per gate row; each step's x_t and
                            h_{t-1} quantized to uint8 per row (dynamic quantization); int32
                            sums rescaled to float32.
    The reduced precisions take float32 inputs and follow ``lstm_core.precision`` (the
    reference, ``lc.reference.lstm_forward(..., precision=...)``); docs/precision.rst gives
    their error bounds.  Returns an immutable PackedLSTM.
    """
    if not isinstance(precision, str) or precision not in _PRECISIONS:
        raise ValueError("precision must be one of " + ", ".join(map(repr, _PRECISIONS))
                         + f", got {precision!r}")
    cdef int cap = _isa_cap()
    cdef cnp.ndarray first = checked(w_ih, "w_ih", 2, "(4H, I)", -1, "w_ih")
    a_ih, a_hh, a_bias, H = weights(first, w_hh, bias, cnp.PyArray_TYPE(first),
                                    first.shape[1], "w_ih", 4, "i, f, g, o")
    cdef int typenum = _PRECISIONS[precision]
    cdef PackedLSTM packed = PackedLSTM.__new__(PackedLSTM)
    cdef Py_ssize_t I = a_ih.shape[1]
    packed.precision, packed.typenum, packed.input_size, packed.hidden_size = (
        precision, typenum, I, H)
    packed.w_ih, packed.w_hh, packed.bias = _copies((a_ih, a_hh, a_bias), typenum)
    if precision in _REDUCED:
        _pack_reduced(packed, _REDUCED[precision], lstm_reduced_isa(cap))
        return packed
    packed.kernel = precision
    _pack_panels(packed, packed.w_ih, packed.w_hh, 4)
    return packed


cdef tuple _pack_matrix(int precision, cnp.ndarray w):
    """One weight matrix w (4H, K) float32 in the reduced panels: (panels, lane scales, lane
    sums); the codes: the kernels' bfloat16 rounding (tested bit for bit against the
    reference's), or the reference's own int8 quantization."""
    cdef Py_ssize_t N = w.shape[0], K = w.shape[1]
    cdef cnp.ndarray codes, row_scales = None, scales = None, sums = None
    if precision == LSTM_BFLOAT16:
        codes = (_rounded(w).view(np.uint32) >> 16).astype(np.uint16)
        panels = np.zeros(lstm_reduced_panels_size(K, N), np.uint16)
    else:
        quantized = quantize_weights(w)
        codes = np.ascontiguousarray(quantized.q, dtype=np.int8)
        row_scales = np.ascontiguousarray(quantized.scale, dtype=np.float32)
        panels = np.zeros(lstm_reduced_panels_size(K, N), np.int8)
        scales = np.zeros(lstm_reduced_lanes(N), np.float32)
        sums = np.zeros(lstm_reduced_lanes(N), np.int32)
    lstm_pack_reduced(precision, data_of(panels), <float *>data_of(scales),
                      <int *>data_of(sums), data_of(codes), <float *>data_of(row_scales),
                      <int>K, <int>N)
    return panels, scales, sums


cdef void _pack_reduced(PackedLSTM packed, int precision, int isa) except *:
    """Pack both matrices of `packed` (its float32 weights) for a reduced precision and the
    kernels of `isa`."""
    packed.is_reduced = True
    packed.kernel = {v: k for k, v in _ISA_LEVELS.items()}[isa]
    packed.reduced_ih, packed.ih_scales, packed.ih_sums = _pack_matrix(precision, packed.w_ih)
    packed.reduced_hh, packed.hh_scales, packed.hh_sums = _pack_matrix(precision, packed.w_hh)
    packed.reduced = lstm_reduced_weights(
        precision, isa, data_of(packed.reduced_ih), data_of(packed.reduced_hh),
        <float *>data_of(packed.ih_scales), <float *>data_of(packed.hh_scales),
        <int *>data_of(packed.ih_sums), <int *>data_of(packed.hh_sums))


# ----------------------------------------------------------------------------- GIL-free calls

cdef void _run_forward(const lstm_plan *plan, cnp.ndarray y, cnp.ndarray h_n, cnp.ndarray c_n,
                       const lstm_cache_f32 *c32, const lstm_cache_f64 *c64,
                       cnp.ndarray workspace, cnp.ndarray x, cnp.ndarray h0, cnp.ndarray c0,
                       cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias, cnp.ndarray lengths,
                       PackedWeights packed, cnp.ndarray b_hh=None):
    """The whole forward in C with the GIL released, as the plan says; every array has been
    validated and allocated.  c32, c64: the cache's arrays (training), else NULL; packed: the
    weights' panels, or None.  The GRU and the RNN pass None for c0 and c_n (their cells have
    no c); the GRU passes b_ih as bias and its b_hh."""
    cdef const int *steps = <const int *>data_of(lengths)
    cdef lstm_inputs_f32 in32 = lstm_inputs_f32(
        <float *>data_of(x), <float *>data_of(h0), <float *>data_of(c0), steps)
    cdef char *ih_panels = NULL
    cdef char *hh_panels = NULL
    cdef const lstm_reduced_weights *reduced = NULL
    if packed is not None and packed.is_reduced:
        reduced = &packed.reduced
    elif packed is not None:
        ih_panels = <char *>data_of(packed.panels)
        hh_panels = ih_panels + packed.ih_panels * cnp.PyArray_ITEMSIZE(packed.panels)
    cdef lstm_weights_f32 w32 = lstm_weights_f32(
        <float *>data_of(w_ih), <float *>data_of(w_hh), <float *>data_of(bias),
        <float *>ih_panels, <float *>hh_panels, <float *>data_of(b_hh), reduced)
    cdef lstm_outputs_f32 out32 = lstm_outputs_f32(
        <float *>data_of(y), <float *>data_of(h_n), <float *>data_of(c_n))
    cdef lstm_inputs_f64 in64 = lstm_inputs_f64(
        <double *>data_of(x), <double *>data_of(h0), <double *>data_of(c0), steps)
    cdef lstm_weights_f64 w64 = lstm_weights_f64(
        <double *>data_of(w_ih), <double *>data_of(w_hh), <double *>data_of(bias),
        <double *>ih_panels, <double *>hh_panels, <double *>data_of(b_hh), NULL)
    cdef lstm_outputs_f64 out64 = lstm_outputs_f64(
        <double *>data_of(y), <double *>data_of(h_n), <double *>data_of(c_n))
    cdef void *work = data_of(workspace)
    with nogil:
        if plan.itemsize == 4:
            lstm_forward_f32(plan, &in32, &w32, &out32, c32, <float *>work)
        else:
            lstm_forward_f64(plan, &in64, &w64, &out64, c64, <double *>work)


cdef void _run_backward(const lstm_plan *plan, SequenceCache cache, const lstm_cache_f32 *c32,
                        const lstm_cache_f64 *c64, cnp.ndarray dy, cnp.ndarray dh_n,
                        cnp.ndarray dc_n, cnp.ndarray dx, cnp.ndarray dw_ih, cnp.ndarray dw_hh,
                        cnp.ndarray dbias, cnp.ndarray dh0, cnp.ndarray dc0,
                        cnp.ndarray workspace, cnp.ndarray db_hh=None):
    """The whole backward in C with the GIL released, as the plan says: cache's inputs and
    activations (c32, c64: the driver's view of them).  The GRU and the RNN pass None for
    dc_n and dc0; the GRU passes db_ih as dbias and its db_hh."""
    cdef const int *steps = <const int *>data_of(cache.lengths)
    cdef lstm_inputs_f32 in32 = lstm_inputs_f32(<float *>data_of(cache.x), NULL, NULL, steps)
    cdef lstm_weights_f32 w32 = lstm_weights_f32(
        <float *>data_of(cache.w_ih), <float *>data_of(cache.w_hh), NULL, NULL, NULL, NULL,
        NULL)
    cdef lstm_output_grads_f32 d32 = lstm_output_grads_f32(
        <float *>data_of(dy), <float *>data_of(dh_n), <float *>data_of(dc_n))
    cdef lstm_grads_f32 g32 = lstm_grads_f32(
        <float *>data_of(dx), <float *>data_of(dw_ih), <float *>data_of(dw_hh),
        <float *>data_of(dbias), <float *>data_of(dh0), <float *>data_of(dc0),
        <float *>data_of(db_hh))
    cdef lstm_inputs_f64 in64 = lstm_inputs_f64(<double *>data_of(cache.x), NULL, NULL, steps)
    cdef lstm_weights_f64 w64 = lstm_weights_f64(
        <double *>data_of(cache.w_ih), <double *>data_of(cache.w_hh), NULL, NULL, NULL, NULL,
        NULL)
    cdef lstm_output_grads_f64 d64 = lstm_output_grads_f64(
        <double *>data_of(dy), <double *>data_of(dh_n), <double *>data_of(dc_n))
    cdef lstm_grads_f64 g64 = lstm_grads_f64(
        <double *>data_of(dx), <double *>data_of(dw_ih), <double *>data_of(dw_hh),
        <double *>data_of(dbias), <double *>data_of(dh0), <double *>data_of(dc0),
        <double *>data_of(db_hh))
    cdef void *work = data_of(workspace)
    with nogil:
        if plan.itemsize == 4:
            lstm_backward_f32(plan, &in32, &w32, c32, &d32, &g32, <float *>work)
        else:
            lstm_backward_f64(plan, &in64, &w64, c64, &d64, &g64, <double *>work)


cdef void _forward(lstm_plan *plan, const lstm_settings *settings, cnp.ndarray y,
                   cnp.ndarray h_n, cnp.ndarray c_n, LSTMCache cache, cnp.ndarray x,
                   cnp.ndarray h0, cnp.ndarray c0, cnp.ndarray w_ih, cnp.ndarray w_hh,
                   cnp.ndarray bias, cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B,
                   Py_ssize_t I, Py_ssize_t H, PackedWeights packed):
    """Plan the forward, take its workspace from the pool, run it, give the workspace back.
    A cache of precision "bfloat16" makes it a mixed-precision forward (x and the weights
    rounded already)."""
    lstm_plan_forward(plan, settings, <int>T, <int>B, <int>I, <int>H,
                      cnp.PyArray_ITEMSIZE(x), cache is not None)
    if cache is not None and cache.precision is not None:
        lstm_plan_mixed(plan)
    if packed is not None:
        lstm_plan_prepacked(plan)
        if packed.is_reduced:
            lstm_plan_reduced(plan, packed.reduced.precision)
    workspace = take_workspace(plan.workspace, cnp.PyArray_TYPE(x))
    _run_forward(plan, y, h_n, c_n, NULL if cache is None else &cache.c32,
                 NULL if cache is None else &cache.c64, workspace, x, h0, c0, w_ih, w_hh, bias,
                 lengths,
                 packed)
    give_workspace(workspace)


cdef tuple _sequence(cnp.ndarray ax, cnp.ndarray a_ih, cnp.ndarray a_hh, cnp.ndarray a_bias,
                     Py_ssize_t H, object h0, object c0, object lengths, bint training,
                     PackedLSTM packed, object precision=None):
    """lstm_forward once x and the weights are checked: the states and lengths checked, the
    memory checked, the outputs (and the cache) allocated, the forward run."""
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    cdef cnp.ndarray a_h0 = state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_c0 = state(c0, "c0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = lengths_of(lengths, B, T)
    # Everything is valid: check that the copies, outputs and caches fit in memory, then copy
    # what needs copying, allocate, run.
    # y, h_n, c_n; the packed weights unless packed already (w_hh, and w_ih; gate panels pad
    # H to whole pairs of panels, at most 16 units more); training: the cache (gates 4H, c
    # and h T+1 steps, tanh_c); inference: the chunk's workspace (one step's 4BH at least,
    # and 2BH scratch).  Python ints: no overflow.
    require_fit(((ax, "x"), (a_ih, "w_ih"), (a_hh, "w_hh"), (a_bias, "bias"), (a_h0, "h0"),
                 (a_c0, "c0")),
                T * B * H + 4 * B * H + (0 if packed is not None else 4 * (H + 16) * (H + I)) + (
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
    if training:
        if precision is not None:
            # mixed precision: the products' operands rounded once (h_{t-1}: every step)
            ax, a_ih, a_hh = _rounded(ax), _rounded(a_ih), _rounded(a_hh)
        cache = _new_cache(ax, a_ih, a_hh, a_bias is not None, a_lengths, T, B, H, typenum)
        cache.precision = precision
    cdef lstm_plan plan
    _forward(&plan, kernel_settings(), y, h_n, c_n, cache, ax, a_h0, a_c0, a_ih, a_hh, a_bias,
             a_lengths, T, B, I, H, packed)
    if cache is not None:
        cache.freeze()
    return y, h_n, c_n, cache


cdef tuple _cell(cnp.ndarray ax, cnp.ndarray a_ih, cnp.ndarray a_hh, cnp.ndarray a_bias,
                 Py_ssize_t H, object h, object c, PackedLSTM packed):
    """lstm_cell once x_t and the weights are checked."""
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t B = ax.shape[0], I = ax.shape[1]
    cdef cnp.ndarray a_h = state(h, "h", typenum, B, H, "x_t", False)
    cdef cnp.ndarray a_c = state(c, "c", typenum, B, H, "x_t", False)
    if B > INT_MAX:
        raise ValueError(f"x_t of shape {shape_of(ax)} is too large: B must be at most {INT_MAX}")
    ax, a_ih, a_hh = contiguous(ax), contiguous(a_ih), contiguous(a_hh)
    a_bias = contiguous(a_bias)
    a_h, a_c = contiguous(a_h), contiguous(a_c)
    cdef cnp.ndarray h1 = empty((B, H), typenum)
    cdef cnp.ndarray c1 = empty((B, H), typenum)
    # One inference step of the sequence driver on one thread, whose running state ends as
    # h1, c1: a step of the cell and a step of the sequence give the same bits.
    cdef lstm_settings settings = kernel_settings()[0]
    settings.threads = 1
    cdef lstm_plan plan
    _forward(&plan, &settings, None, h1, c1, None, ax, a_h, a_c, a_ih, a_hh, a_bias, None, 1, B,
             I, H, packed)
    return h1, c1


# ----------------------------------------------------------------------------- public API

def lstm_forward(x, w_ih, w_hh, bias=None, h0=None, c0=None, *, training=True, lengths=None,
                 precision=None):
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
    precision : None, "bfloat16" or "int8", default None
        None computes in the arrays' dtype.  "bfloat16" (float32 arrays): the two products
        of every step take bfloat16-rounded operands (x_t, h_{t-1}, the weights) and sum in
        float32; gates, states and outputs stay float32.  With training=True that is mixed
        precision: lstm_backward's products (dh, dx, dw_ih, dw_hh) take bfloat16 operands
        too, the gradients are float32.  "int8" (float32 arrays, training=False only):
        dynamic quantization, as ``pack_lstm(..., precision="int8")``.  Both follow
        ``lstm_core.precision``; a forward of many calls with the same weights is faster
        through ``pack_lstm``, which packs them once.

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
    check_reduced_precision(precision, training)
    cdef cnp.ndarray ax = sequence(x)
    if precision is not None and cnp.PyArray_TYPE(ax) != cnp.NPY_FLOAT:
        raise TypeError(f"precision={precision!r} computes from float32 arrays, but x has "
                        f"dtype {ax.dtype}: pass x and the weights as float32")
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, cnp.PyArray_TYPE(ax), ax.shape[2], "x", 4,
                                    "i, f, g, o")
    if precision is not None and not training:
        return pack_lstm(a_ih, a_hh, a_bias, precision=precision).forward(
            ax, h0, c0, lengths=lengths) + (None,)
    return _sequence(ax, a_ih, a_hh, a_bias, H, h0, c0, lengths, training, None, precision)


cdef cnp.ndarray _rounded(cnp.ndarray a):
    """A contiguous float32 copy of a rounded to bfloat16 (the kernels' rounding)."""
    cdef cnp.ndarray src = contiguous(a)
    cdef cnp.ndarray out = empty((<object>a).shape, cnp.NPY_FLOAT)
    cdef float *to = <float *>data_of(out)
    cdef const float *values = <const float *>data_of(src)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(src)
    with nogil:
        lstm_round_bfloat16(to, values, n)
    return out


def check_reduced_precision(precision, training):
    """ValueError for a precision that is not None, "bfloat16" or "int8", or "int8" in
    training (quantization has no gradient: it is for inference)."""
    if precision is not None and (not isinstance(precision, str)
                                  or precision not in ("bfloat16", "int8")):
        raise ValueError(f"precision must be None, 'bfloat16' or 'int8', got {precision!r}")
    if precision == "int8" and training:
        raise ValueError("precision='int8' is for inference only: pass training=False "
                         "(mixed-precision training uses 'bfloat16')")


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
    cdef lstm_plan plan
    lstm_plan_backward(&plan, kernel_settings(), <int>T, <int>B, <int>I, <int>H,
                       cnp.PyArray_ITEMSIZE(c.x))
    cdef lstm_cache_f32 c32 = c.c32
    cdef cnp.ndarray h_rounded
    if c.precision is not None:
        # mixed precision: the weight gradient's h[0:T] operand rounded to bfloat16
        lstm_plan_mixed(&plan)
        h_rounded = _rounded(c.h)
        c32.h = <float *>data_of(h_rounded)
    workspace = take_workspace(plan.workspace, typenum)
    _run_backward(&plan, c, &c32, &c.c64, a_dy, a_dh_n, a_dc_n, dx, dw_ih, dw_hh, dbias, dh0,
                  dc0, workspace)
    give_workspace(workspace)
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
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, cnp.PyArray_TYPE(ax), ax.shape[1], "x_t",
                                    4, "i, f, g, o")
    return _cell(ax, a_ih, a_hh, a_bias, H, h, c, None)


# ----------------------------------------------------------------------------- RNN

@cython.final
cdef class RNNCache(SequenceCache):
    """What rnn_backward needs from one training-mode rnn_forward call.

    The inputs of the call (x, w_ih, w_hh: the arrays passed in when already contiguous) and,
    read-only, the hidden states.  Usable by any number of rnn_backward calls; only
    rnn_forward creates them.

    Attributes
    ----------
    x : ndarray, shape (T, B, I)
        The forward's input.
    w_ih : ndarray, shape (H, I)
        The forward's input weights.
    w_hh : ndarray, shape (H, H)
        The forward's recurrent weights.
    lengths : ndarray of C int, shape (B,), or None
        The forward's lengths.
    h : ndarray, shape (T+1, B, H)
        h[0] = h0, h[t+1] = h_t (carried past a sequence's length).
    has_bias : bool
        Whether the forward had a bias.
    """

    cdef readonly bint has_bias
    cdef lstm_cache_f32 c32  # the driver's view of h (the cell has no c, tanh_c or gates)
    cdef lstm_cache_f64 c64

    def __init__(self):
        raise TypeError("RNNCache objects are created by rnn_forward(..., training=True)")

    def _biases(self):
        return f"bias={bool(self.has_bias)}"

    @property
    def h(self):
        return self.activations[0]


cdef RNNCache _new_rnn_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_bias,
                             cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                             int typenum):
    cdef RNNCache cache = RNNCache.__new__(RNNCache)
    cache.keep(x, w_ih, w_hh, lengths, typenum, ((T + 1, B, H),))
    cache.has_bias = has_bias
    cdef void *h = data_of(cache.h)
    cache.c32 = lstm_cache_f32(NULL, NULL, NULL, <float *>h, NULL)
    cache.c64 = lstm_cache_f64(NULL, NULL, NULL, <double *>h, NULL)
    return cache


cdef void _rnn_forward(const lstm_settings *settings, Py_ssize_t T, cnp.ndarray y,
                       cnp.ndarray h_n, RNNCache cache, cnp.ndarray x, cnp.ndarray h0,
                       cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray bias,
                       cnp.ndarray lengths, PackedWeights packed=None):
    """Plan the RNN's forward of T steps (the driver's one-gate cell) and run it in its pooled
    workspace; x is (T, B, I), or (B, I) for one step; packed: the weights' panels, or
    None."""
    cdef lstm_plan plan
    lstm_plan_forward_cell(&plan, settings, 1, <int>T, <int>h0.shape[0], <int>w_ih.shape[1],
                           <int>w_hh.shape[1], cnp.PyArray_ITEMSIZE(x), cache is not None)
    if packed is not None:
        lstm_plan_prepacked(&plan)
    workspace = take_workspace(plan.workspace, cnp.PyArray_TYPE(x))
    _run_forward(&plan, y, h_n, None, NULL if cache is None else &cache.c32,
                 NULL if cache is None else &cache.c64, workspace, x, h0, None, w_ih, w_hh,
                 bias, lengths, packed)
    give_workspace(workspace)


def rnn_forward(x, w_ih, w_hh, bias=None, h0=None, *, training=True, lengths=None):
    """Run a one-layer vanilla RNN (tanh) over a whole sequence: torch.nn.RNN's cell.

    ::

        h_t = tanh(x_t @ w_ih.T + h_{t-1} @ w_hh.T + bias)

    All arrays float32, or all float64.  Inputs are never modified; the GIL is released
    while the kernels run.

    Parameters
    ----------
    x : ndarray, shape (T, B, I)
        The input sequence, time-major.
    w_ih : ndarray, shape (H, I)
        Input weights.
    w_hh : ndarray, shape (H, H)
        Recurrent weights.
    bias : ndarray, shape (H,), optional
        b_ih + b_hh, or None for no bias.
    h0 : ndarray, shape (B, H), optional
        Initial state; None for zeros.
    training : bool, default True
        Keep what rnn_backward needs; False keeps nothing per step.
    lengths : array_like of int, shape (B,), optional
        Integers in [0, T] or None, exactly as lstm_forward's.

    Returns
    -------
    y : ndarray, shape (T, B, H)
        The hidden state of every step.
    h_n : ndarray, shape (B, H)
        The final state.
    cache : RNNCache or None
        What rnn_backward needs; None when training is False.

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
    cdef cnp.ndarray a_ih, a_hh, a_bias
    cdef Py_ssize_t H
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, cnp.PyArray_TYPE(ax), ax.shape[2], "x", 1,
                                    "h")
    return _rnn_sequence(ax, a_ih, a_hh, a_bias, H, h0, lengths, training, None)


cdef tuple _rnn_sequence(cnp.ndarray ax, cnp.ndarray a_ih, cnp.ndarray a_hh,
                         cnp.ndarray a_bias, Py_ssize_t H, object h0, object lengths,
                         bint training, PackedWeights packed):
    """rnn_forward once x and the weights are checked (packed: their panels, or None)."""
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    cdef cnp.ndarray a_h0 = state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = lengths_of(lengths, B, T)
    # y, h_n; training: h for T+1 steps; inference: the chunk's workspace (Python ints)
    require_fit(((ax, "x"), (a_ih, "w_ih"), (a_hh, "w_hh"), (a_bias, "bias"), (a_h0, "h0")),
                T * B * H + 2 * B * H + (H + 32) * (H + I) + ((T + 1) * B * H if training
                                                             else INFERENCE_CHUNK_ROWS * H
                                                             + 2 * B * H),
                ax, "the outputs" + (" and the training cache" if training else ""))
    ax, a_ih, a_hh, a_bias = contiguous(ax), contiguous(a_ih), contiguous(a_hh), contiguous(a_bias)
    a_h0 = zeros((B, H), typenum) if a_h0 is None else contiguous(a_h0)
    cdef cnp.ndarray y = empty((T, B, H), typenum)
    cdef cnp.ndarray h_n = empty((B, H), typenum)
    cdef RNNCache cache = None
    if training:
        cache = _new_rnn_cache(ax, a_ih, a_hh, a_bias is not None, a_lengths, T, B, H, typenum)
    _rnn_forward(kernel_settings(), T, y, h_n, cache, ax, a_h0, a_ih, a_hh, a_bias, a_lengths,
                 packed)
    if cache is not None:
        cache.freeze()
    return y, h_n, cache


def rnn_cell(x_t, h, w_ih, w_hh, bias=None, *, nonlinearity="tanh"):
    """One inference step of a vanilla RNN: x_t, h -> h1 (torch.nn.RNNCell's step).

    ::

        h1 = tanh(x_t @ w_ih.T + h @ w_hh.T + bias)

    The streaming path: no cache, nothing kept between calls, the same bits as the step of
    ``rnn_forward(x_t[None], w_ih, w_hh, bias, h, training=False)``; same rules as
    rnn_forward.

    Parameters
    ----------
    x_t : ndarray, shape (B, I)
        The input of this step.
    h : ndarray, shape (B, H)
        The state before the step.
    w_ih : ndarray, shape (H, I)
        Input weights.
    w_hh : ndarray, shape (H, H)
        Recurrent weights.
    bias : ndarray, shape (H,), optional
        b_ih + b_hh, or None for no bias.
    nonlinearity : {"tanh"}, default "tanh"
        The only one the kernels implement.

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
        For a wrong number of axes or a wrong size, or another nonlinearity.
    """
    _check_nonlinearity(nonlinearity)
    cdef cnp.ndarray ax, a_h, a_ih, a_hh, a_bias
    ax, a_h, a_ih, a_hh, a_bias, _ = step_input(x_t, h, w_ih, w_hh, bias, 1, "h")
    return _rnn_step(ax, a_h, a_ih, a_hh, a_bias, None)


cdef cnp.ndarray _rnn_step(cnp.ndarray ax, cnp.ndarray a_h, cnp.ndarray a_ih,
                           cnp.ndarray a_hh, cnp.ndarray a_bias, PackedWeights packed):
    """One inference step of the sequence driver on one thread (x_t (B, I) is x (1, B, I)),
    whose running state ends as h1: a step of the cell and a step of the sequence give the
    same bits."""
    cdef cnp.ndarray h1 = empty((ax.shape[0], a_hh.shape[1]), cnp.PyArray_TYPE(ax))
    cdef lstm_settings settings = kernel_settings()[0]
    settings.threads = 1
    _rnn_forward(&settings, 1, None, h1, None, ax, a_h, a_ih, a_hh, a_bias, None, packed)
    return h1


def _check_nonlinearity(nonlinearity):
    if nonlinearity != "tanh":
        raise ValueError(f"nonlinearity must be 'tanh' (the only one the kernels implement), "
                         f"got {nonlinearity!r}")


def rnn_backward(cache, dy=None, dh_n=None):
    """Gradients of a loss through one training-mode rnn_forward call.

    Parameters
    ----------
    cache : RNNCache
        From rnn_forward(..., training=True).
    dy : ndarray, shape (T, B, H), optional
        dL/dy; None means zero.
    dh_n : ndarray, shape (B, H), optional
        dL/dh_n; None means zero.

    Returns
    -------
    RNNGrads
        (dx, dw_ih, dw_hh, dbias, dh0), in the forward's dtype; dbias is None when the
        forward had no bias (it is also the gradient of b_ih and of b_hh).

    Raises
    ------
    TypeError
        For a cache that is not an RNNCache, or a gradient of another dtype.
    ValueError
        For a gradient of the wrong shape.
    """
    if not isinstance(cache, RNNCache) or (<RNNCache>cache).x is None:
        raise TypeError(
            "cache must be the RNNCache returned by rnn_forward(..., training=True), "
            f"got {type(cache).__name__}"
        )
    cdef RNNCache c = <RNNCache>cache
    cdef int typenum = c.typenum
    cdef Py_ssize_t T = c.x.shape[0], B = c.x.shape[1], I = c.x.shape[2], H = c.w_hh.shape[1]
    cdef cnp.ndarray a_dy, a_dh_n
    a_dy, a_dh_n = gradients_in(dy, dh_n, typenum, T, B, H)
    cdef cnp.ndarray dx = empty((T, B, I), typenum)
    cdef cnp.ndarray dw_ih = zeros((H, I), typenum)
    cdef cnp.ndarray dw_hh = zeros((H, H), typenum)
    cdef cnp.ndarray dbias = zeros((H,), typenum) if c.has_bias else None
    cdef cnp.ndarray dh0 = empty((B, H), typenum)
    cdef lstm_plan plan
    lstm_plan_backward_cell(&plan, kernel_settings(), 1, <int>T, <int>B, <int>I, <int>H,
                            cnp.PyArray_ITEMSIZE(c.x))
    workspace = take_workspace(plan.workspace, typenum)
    _run_backward(&plan, c, &c.c32, &c.c64, a_dy, a_dh_n, None, dx, dw_ih, dw_hh, dbias, dh0,
                  None, workspace)
    give_workspace(workspace)
    return RNNGrads(dx, dw_ih, dw_hh, dbias, dh0)


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
    cdef lstm_cache_f32 c32  # the driver's view of gates, hn, h
    cdef lstm_cache_f64 c64

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


cdef GRUCache _new_gru_cache(cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, bint has_b_ih,
                             bint has_b_hh, cnp.ndarray lengths, Py_ssize_t T, Py_ssize_t B,
                             Py_ssize_t H, int typenum):
    cdef GRUCache cache = GRUCache.__new__(GRUCache)
    cache.keep(x, w_ih, w_hh, lengths, typenum, ((T, B, 3 * H), (T, B, H), (T + 1, B, H)))
    cache.has_b_ih, cache.has_b_hh = has_b_ih, has_b_hh
    cdef void *gates = data_of(cache.gates)
    cdef void *hn = data_of(cache.hn)
    cdef void *h = data_of(cache.h)
    cache.c32 = lstm_cache_f32(<float *>gates, NULL, NULL, <float *>h, <float *>hn)
    cache.c64 = lstm_cache_f64(<double *>gates, NULL, NULL, <double *>h, <double *>hn)
    return cache


cdef void _gru_forward(const lstm_settings *settings, Py_ssize_t T, cnp.ndarray y,
                       cnp.ndarray h_n, GRUCache cache, cnp.ndarray x, cnp.ndarray h0,
                       cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray b_ih, cnp.ndarray b_hh,
                       cnp.ndarray lengths, PackedWeights packed=None):
    """Plan the GRU's forward of T steps (the driver's three-gate cell) and run it in its
    pooled workspace; x is (T, B, I), or (B, I) for one step; packed: the weights' panels,
    or None."""
    cdef lstm_plan plan
    lstm_plan_forward_cell(&plan, settings, 3, <int>T, <int>h0.shape[0], <int>w_ih.shape[1],
                           <int>w_hh.shape[1], cnp.PyArray_ITEMSIZE(x), cache is not None)
    if packed is not None:
        lstm_plan_prepacked(&plan)
    workspace = take_workspace(plan.workspace, cnp.PyArray_TYPE(x))
    _run_forward(&plan, y, h_n, None, NULL if cache is None else &cache.c32,
                 NULL if cache is None else &cache.c64, workspace, x, h0, None, w_ih, w_hh,
                 b_ih, lengths, packed, b_hh)
    give_workspace(workspace)


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
    cdef cnp.ndarray a_ih, a_hh
    cdef Py_ssize_t H
    a_ih, a_hh, _, H = weights(w_ih, w_hh, None, typenum, ax.shape[2], "x", 3, "r, z, n")
    cdef cnp.ndarray a_b_ih = _vector(b_ih, "b_ih", typenum, 3 * H, "3H")
    cdef cnp.ndarray a_b_hh = _vector(b_hh, "b_hh", typenum, 3 * H, "3H")
    return _gru_sequence(ax, a_ih, a_hh, a_b_ih, a_b_hh, H, h0, lengths, training, None)


cdef tuple _gru_sequence(cnp.ndarray ax, cnp.ndarray a_ih, cnp.ndarray a_hh,
                         cnp.ndarray a_b_ih, cnp.ndarray a_b_hh, Py_ssize_t H, object h0,
                         object lengths, bint training, PackedWeights packed):
    """gru_forward once x, the weights and the biases are checked (packed: the weights'
    panels, or None)."""
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t T = ax.shape[0], B = ax.shape[1], I = ax.shape[2]
    cdef cnp.ndarray a_h0 = state(h0, "h0", typenum, B, H, "x", True)
    cdef cnp.ndarray a_lengths = lengths_of(lengths, B, T)
    # y, h_n, the step's scratch; training: gates 3H, h for T+1 steps, hn (Python ints)
    require_fit(((ax, "x"), (a_ih, "w_ih"), (a_hh, "w_hh"), (a_b_ih, "b_ih"), (a_b_hh, "b_hh"),
                 (a_h0, "h0")),
                T * B * H + 5 * B * H + 3 * (H + 32) * (H + I) + (
                    T * B * 3 * H + (T + 1) * B * H + T * B * H if training
                    else INFERENCE_CHUNK_ROWS * 3 * H + 4 * B * H),
                ax, "the outputs" + (" and the training cache" if training else ""))
    ax, a_ih, a_hh = contiguous(ax), contiguous(a_ih), contiguous(a_hh)
    a_b_ih, a_b_hh = contiguous(a_b_ih), contiguous(a_b_hh)
    a_h0 = zeros((B, H), typenum) if a_h0 is None else contiguous(a_h0)
    cdef cnp.ndarray y = empty((T, B, H), typenum)
    cdef cnp.ndarray h_n = empty((B, H), typenum)
    cdef GRUCache cache = None
    if training:
        cache = _new_gru_cache(ax, a_ih, a_hh, a_b_ih is not None, a_b_hh is not None,
                               a_lengths, T, B, H, typenum)
    _gru_forward(kernel_settings(), T, y, h_n, cache, ax, a_h0, a_ih, a_hh, a_b_ih, a_b_hh,
                 a_lengths, packed)
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
    cdef cnp.ndarray a_b_ih = contiguous(_vector(b_ih, "b_ih", typenum, 3 * H, "3H"))
    cdef cnp.ndarray a_b_hh = contiguous(_vector(b_hh, "b_hh", typenum, 3 * H, "3H"))
    return _gru_step(ax, a_h, a_ih, a_hh, a_b_ih, a_b_hh, None)


cdef cnp.ndarray _gru_step(cnp.ndarray ax, cnp.ndarray a_h, cnp.ndarray a_ih,
                           cnp.ndarray a_hh, cnp.ndarray a_b_ih, cnp.ndarray a_b_hh,
                           PackedWeights packed):
    """One inference step of the sequence driver on one thread, as _rnn_step."""
    cdef cnp.ndarray h1 = empty((ax.shape[0], a_hh.shape[1]), cnp.PyArray_TYPE(ax))
    cdef lstm_settings settings = kernel_settings()[0]
    settings.threads = 1
    _gru_forward(&settings, 1, None, h1, None, ax, a_h, a_ih, a_hh, a_b_ih, a_b_hh, None,
                 packed)
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
    cdef lstm_plan plan
    lstm_plan_backward_cell(&plan, kernel_settings(), 3, <int>T, <int>B, <int>I, <int>H,
                            cnp.PyArray_ITEMSIZE(c.x))
    workspace = take_workspace(plan.workspace, typenum)
    _run_backward(&plan, c, &c.c32, &c.c64, a_dy, a_dh_n, None, dx, dw_ih, dw_hh, db_ih, dh0,
                  None, workspace, db_hh)
    give_workspace(workspace)
    return GRUGrads(dx, dw_ih, dw_hh, db_ih, db_hh, dh0)


# ----------------------------------------------------------------------------- packed GRU, RNN

def _packed_precision(precision, str cell):
    """The dtype number of a GRU's or RNN's packed precision; ValueError otherwise."""
    if isinstance(precision, str) and precision in ("float32", "float64"):
        return _PRECISIONS[precision]
    if precision in _REDUCED:
        raise ValueError(f"precision={precision!r} is implemented for the LSTM (pack_lstm); "
                         f"a packed {cell} computes in 'float32' or 'float64'")
    raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")


@cython.final
cdef class PackedGRU(PackedWeights):
    """GRU weights packed once for inference: made by ``lc.pack_gru``.

    Read-only copies of w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,) or None, in the dtype
    of its precision, and both matrices in the kernels' panels; ``forward`` and ``cell``
    equal ``gru_forward(..., training=False)`` and ``gru_cell`` bit for bit.  Later changes
    to the source arrays do not affect it; any number of threads may call it at once.
    """

    cdef readonly cnp.ndarray w_ih, w_hh, b_ih, b_hh

    def __repr__(self):
        return (f"<PackedGRU input_size={self.input_size} hidden_size={self.hidden_size} "
                f"precision={self.precision!r} bias={self.b_ih is not None}>")

    def forward(self, x, h0=None, *, lengths=None):
        """Inference over a whole sequence, as ``gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0,
        training=False, lengths=lengths)`` without its cache: returns y (T, B, H), h_n
        (B, H)."""
        cdef cnp.ndarray ax = self._sequence_input(x)
        return _gru_sequence(ax, self.w_ih, self.w_hh, self.b_ih, self.b_hh,
                             self.hidden_size, h0, lengths, False, self)[:2]

    def cell(self, x_t, h):
        """One inference step, as ``gru_cell(x_t, h, w_ih, w_hh, b_ih, b_hh)``: x_t (B, I),
        h (B, H) -> h1 (B, H)."""
        cdef cnp.ndarray ax = self._step_input(x_t)
        cdef cnp.ndarray a_h = contiguous(state(h, "h", self.typenum, ax.shape[0],
                                                self.hidden_size, "x_t", False))
        return _gru_step(contiguous(ax), a_h, self.w_ih, self.w_hh, self.b_ih, self.b_hh, self)


def pack_gru(w_ih, w_hh, b_ih=None, b_hh=None, *, precision="float32"):
    """Pack a GRU's weights once for any number of inference calls.

    w_ih (3H, I), w_hh (3H, H) and the biases b_ih, b_hh (3H,) or None (gate order r, z, n,
    as gru_forward), float32 or float64; precision "float32" or "float64": the dtype the
    packed GRU computes in.  Returns an immutable PackedGRU whose ``forward(x, h0=None, *,
    lengths=None)`` and ``cell(x_t, h)`` equal ``gru_forward(training=False)`` and
    ``gru_cell`` bit for bit.  Reduced precisions are the LSTM's (ValueError here).
    """
    cdef int typenum = _packed_precision(precision, "GRU")
    cdef cnp.ndarray first = checked(w_ih, "w_ih", 2, "(3H, I)", -1, "w_ih")
    cdef int given = cnp.PyArray_TYPE(first)
    a_ih, a_hh, _, H = weights(first, w_hh, None, given, first.shape[1], "w_ih", 3, "r, z, n")
    a_b_ih = _vector(b_ih, "b_ih", given, 3 * H, "3H")
    a_b_hh = _vector(b_hh, "b_hh", given, 3 * H, "3H")
    cdef PackedGRU packed = PackedGRU.__new__(PackedGRU)
    packed.precision = packed.kernel = precision
    packed.typenum, packed.input_size, packed.hidden_size = typenum, a_ih.shape[1], H
    packed.w_ih, packed.w_hh, packed.b_ih, packed.b_hh = _copies(
        (a_ih, a_hh, a_b_ih, a_b_hh), typenum)
    _pack_panels(packed, packed.w_ih, packed.w_hh, 3)
    return packed


@cython.final
cdef class PackedRNN(PackedWeights):
    """Vanilla RNN (tanh) weights packed once for inference: made by ``lc.pack_rnn``.

    Read-only copies of w_ih (H, I), w_hh (H, H), bias (H,) = b_ih + b_hh or None, in the
    dtype of its precision, and both matrices in the kernels' panels; ``forward`` and
    ``cell`` equal ``rnn_forward(..., training=False)`` and ``rnn_cell`` bit for bit.
    """

    cdef readonly cnp.ndarray w_ih, w_hh, bias

    def __repr__(self):
        return (f"<PackedRNN input_size={self.input_size} hidden_size={self.hidden_size} "
                f"precision={self.precision!r} bias={self.bias is not None}>")

    def forward(self, x, h0=None, *, lengths=None):
        """Inference over a whole sequence, as ``rnn_forward(x, w_ih, w_hh, bias, h0,
        training=False, lengths=lengths)`` without its cache: returns y (T, B, H), h_n
        (B, H)."""
        cdef cnp.ndarray ax = self._sequence_input(x)
        return _rnn_sequence(ax, self.w_ih, self.w_hh, self.bias, self.hidden_size, h0,
                             lengths, False, self)[:2]

    def cell(self, x_t, h):
        """One inference step, as ``rnn_cell(x_t, h, w_ih, w_hh, bias)``: x_t (B, I),
        h (B, H) -> h1 (B, H)."""
        cdef cnp.ndarray ax = self._step_input(x_t)
        cdef cnp.ndarray a_h = contiguous(state(h, "h", self.typenum, ax.shape[0],
                                                self.hidden_size, "x_t", False))
        return _rnn_step(contiguous(ax), a_h, self.w_ih, self.w_hh, self.bias, self)


def pack_rnn(w_ih, w_hh, bias=None, *, nonlinearity="tanh", precision="float32"):
    """Pack a vanilla RNN's weights once for any number of inference calls.

    w_ih (H, I), w_hh (H, H), bias (H,) = b_ih + b_hh or None, float32 or float64;
    nonlinearity "tanh" (the kernels' only one); precision "float32" or "float64".  Returns
    an immutable PackedRNN whose ``forward(x, h0=None, *, lengths=None)`` and ``cell(x_t,
    h)`` equal ``rnn_forward(training=False)`` and ``rnn_cell`` bit for bit.
    """
    _check_nonlinearity(nonlinearity)
    cdef int typenum = _packed_precision(precision, "RNN")
    cdef cnp.ndarray first = checked(w_ih, "w_ih", 2, "(H, I)", -1, "w_ih")
    a_ih, a_hh, a_bias, H = weights(first, w_hh, bias, cnp.PyArray_TYPE(first),
                                    first.shape[1], "w_ih", 1, "h")
    cdef PackedRNN packed = PackedRNN.__new__(PackedRNN)
    packed.precision = packed.kernel = precision
    packed.typenum, packed.input_size, packed.hidden_size = typenum, a_ih.shape[1], H
    packed.w_ih, packed.w_hh, packed.bias = _copies((a_ih, a_hh, a_bias), typenum)
    _pack_panels(packed, packed.w_ih, packed.w_hh, 1)
    return packed
