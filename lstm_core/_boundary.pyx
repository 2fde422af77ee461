# Argument checking and allocation shared by the Cython boundaries (lstm_core._lstm, ...).
#
# The rules, the same for every public function: numpy arrays only; float32 or float64, one
# dtype per call (TypeError otherwise); the right number of axes and sizes (ValueError),
# every message naming the argument with the expected and the actual value; inputs made
# C-contiguous and aligned by one copy when they are not, after every check has passed.

cimport numpy as cnp
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.limits cimport INT_MAX

import os

import numpy as np

cnp.import_array()


def _physical_memory():
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


# Read once at import; no call can need more than the machine has.
cdef object PHYSICAL_MEMORY = _physical_memory()


cdef cnp.ndarray checked(object value, str name, int ndim, str layout, int typenum,
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
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {shape_of(arr)}")
    return arr


cdef cnp.ndarray sequence(object x):
    """x checked as (T, B, I), float32 or float64 (it sets the call's dtype), with T*B within
    the BLAS's int sizes."""
    cdef cnp.ndarray ax = checked(x, "x", 3, "(T, B, I)", -1, "x")
    if ax.shape[0] * ax.shape[1] > INT_MAX:
        raise ValueError(
            f"x of shape {shape_of(ax)} is too large: T*B must be at most {INT_MAX} "
            f"(the BLAS uses 32-bit sizes)"
        )
    return ax


cdef int inference_chunk(Py_ssize_t T, Py_ssize_t B):
    """Steps per input GEMM in inference mode: about INFERENCE_CHUNK_ROWS rows, one at least."""
    return <int>max(1, min(T, INFERENCE_CHUNK_ROWS // max(B, 1)))


cdef tuple shape_of(cnp.ndarray arr):
    return (<object>arr).shape


cdef int expect_shape(cnp.ndarray arr, str name, str meaning, Py_ssize_t d0, Py_ssize_t d1=-1,
                      Py_ssize_t d2=-1) except -1:
    """ValueError unless arr's shape is (d0,), (d0, d1) or (d0, d1, d2) (-1: no such axis).
    Compared in C, the expected tuple built only for the message: the streaming cell checks
    five shapes per call."""
    cdef int ndim = 1 + (d1 >= 0) + (d2 >= 0)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    if (cnp.PyArray_NDIM(arr) == ndim and dims[0] == d0 and (ndim < 2 or dims[1] == d1)
            and (ndim < 3 or dims[2] == d2)):
        return 0
    expected = (d0, d1, d2)[:ndim]
    raise ValueError(f"{name} must have shape {meaning} = {expected}, got {shape_of(arr)}")


cdef cnp.ndarray contiguous(cnp.ndarray arr):
    """arr itself when C-contiguous and aligned, else one C-contiguous copy (never a view
    that could be read out of bounds)."""
    if arr is None or (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        return arr
    return cnp.PyArray_FROM_OTF(arr, cnp.PyArray_TYPE(arr), cnp.NPY_ARRAY_IN_ARRAY)


# The layouts named in the weights' error messages, per number of stacked gates: built once,
# not on every call.
cdef dict _LAYOUTS = {}


cdef tuple _weight_layouts(int gates):
    """("(4H, I)", "(4H, H)", "(4H,)") for 4 gates; "H" alone for one."""
    cdef tuple layouts = _LAYOUTS.get(gates)
    if layouts is None:
        rows = f"{gates}H" if gates > 1 else "H"
        layouts = _LAYOUTS[gates] = (f"({rows}, I)", f"({rows}, H)", f"({rows},)")
    return layouts


cdef tuple weights(object w_ih, object w_hh, object bias, int typenum, Py_ssize_t input_size,
                   str dtype_owner, int gates, str gate_names):
    """Checked (w_ih, w_hh, bias or None, H) of a cell with `gates` stacked gates of H rows
    each (4 for the LSTM's i, f, g, o); the shapes must agree with input_size."""
    cdef tuple layouts = _weight_layouts(gates)
    cdef str ih_layout = layouts[0], hh_layout = layouts[1], bias_layout = layouts[2]
    cdef cnp.ndarray a_ih = checked(w_ih, "w_ih", 2, ih_layout, typenum, dtype_owner)
    cdef cnp.ndarray a_hh = checked(w_hh, "w_hh", 2, hh_layout, typenum, dtype_owner)
    cdef cnp.ndarray a_bias = None
    cdef Py_ssize_t gate_rows = a_ih.shape[0]
    if gate_rows % gates != 0:
        raise ValueError(
            f"w_ih must have {gates}*H rows (gates {gate_names} stacked), "
            f"got shape {shape_of(a_ih)}"
        )
    cdef Py_ssize_t hidden = gate_rows // gates
    expect_shape(a_ih, "w_ih", ih_layout, gate_rows, input_size)
    expect_shape(a_hh, "w_hh", hh_layout, gate_rows, hidden)
    if bias is not None:
        a_bias = checked(bias, "bias", 1, bias_layout, typenum, dtype_owner)
        expect_shape(a_bias, "bias", bias_layout, gate_rows)
    if gate_rows > INT_MAX or input_size > INT_MAX:
        raise ValueError(
            f"w_ih of shape {shape_of(a_ih)} is too large: every dimension must be at most "
            f"{INT_MAX} (the BLAS uses 32-bit sizes)"
        )
    return a_ih, a_hh, a_bias, hidden


cdef cnp.ndarray state(object value, str name, int typenum, Py_ssize_t batch,
                       Py_ssize_t hidden, str dtype_owner, bint optional):
    """A checked (B, H) state; None is returned as None when the argument is optional."""
    if value is None and optional:
        return None
    cdef cnp.ndarray arr = checked(value, name, 2, "(B, H)", typenum, dtype_owner)
    expect_shape(arr, name, "(B, H)", batch, hidden)
    return arr


cdef cnp.ndarray lengths_of(object value, Py_ssize_t batch, Py_ssize_t steps):
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


cdef require_memory(object nbytes, str name, tuple shape, str what):
    """MemoryError naming the argument, before anything is allocated, when a call would need
    more bytes than the machine has (nbytes is a Python int: it never overflows)."""
    if PHYSICAL_MEMORY is not None and nbytes > PHYSICAL_MEMORY:
        raise MemoryError(
            f"{name} of shape {shape} needs {nbytes / 2**30:.3g} GiB for {what}, more than "
            f"this machine's {PHYSICAL_MEMORY / 2**30:.3g} GiB of memory"
        )


cdef require_copy_memory(cnp.ndarray arr, str name):
    """The one copy of a non-contiguous or misaligned input must fit in memory."""
    if arr is not None and not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        shape = shape_of(arr)
        nbytes = cnp.PyArray_ITEMSIZE(arr)
        for n in shape:
            nbytes *= n
        require_memory(nbytes, name, shape, "its contiguous copy")


cdef require_fit(tuple inputs, object elements, cnp.ndarray x, str what):
    """Before any copy or allocation: the copy of every input that needs one, and `elements`
    more elements of x's dtype (outputs, caches, workspace), must fit in memory; MemoryError
    naming the argument otherwise.  inputs: ((array or None, name), ...)."""
    for arr, name in inputs:
        require_copy_memory(arr, name)
    require_memory(elements * cnp.PyArray_ITEMSIZE(x), "x", shape_of(x), what)


cdef enum:
    # Arrays of at least ALIGN_FROM bytes start on a 64-byte boundary (numpy's own is 16):
    # a vector load of the packed kernel's panels then never straddles two cache lines, and
    # the threads of a split loop, which own whole 64-byte runs of every row, share no line.
    # Smaller arrays keep numpy's alignment: one array object each, which the cell feels.
    ALIGN_BYTES = 64
    ALIGN_FROM = 4096


cdef cnp.ndarray _new_array(tuple shape, int typenum, bint zeroed):
    # Through the C API rather than np.empty: no Python call, which the streaming cell feels.
    cdef cnp.npy_intp dims[3]
    cdef int ndim = len(shape)
    cdef cnp.npy_intp count = 1
    for axis in range(ndim):
        dims[axis] = shape[axis]
        count *= dims[axis]
    cdef int itemsize = cnp.PyArray_DescrFromType(typenum).itemsize
    if count * itemsize < ALIGN_FROM:
        if zeroed:
            return cnp.PyArray_ZEROS(ndim, dims, typenum, 0)
        return cnp.PyArray_EMPTY(ndim, dims, typenum, 0)
    # a flat buffer one line longer, and the aligned view of it (which keeps it alive)
    cdef cnp.npy_intp padded = count + ALIGN_BYTES // itemsize
    cdef cnp.ndarray buffer = (cnp.PyArray_ZEROS(1, &padded, typenum, 0) if zeroed
                               else cnp.PyArray_EMPTY(1, &padded, typenum, 0))
    cdef char *data = <char *>cnp.PyArray_DATA(buffer)
    data += (ALIGN_BYTES - <size_t>data % ALIGN_BYTES) % ALIGN_BYTES
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(ndim, dims, typenum, data)
    cnp.set_array_base(arr, buffer)
    return arr


cdef cnp.ndarray empty(tuple shape, int typenum):
    return _new_array(shape, typenum, False)


cdef cnp.ndarray zeros(tuple shape, int typenum):
    return _new_array(shape, typenum, True)


# ----------------------------------------------------------------------------- workspace

# Workspaces that never leave a call (dz, the packed weights, the inference projection) come
# from a pool of spare buffers, given back when the call ends: a training loop then reuses
# the same memory instead of mapping and faulting in fresh pages on every call (in this VM
# a fresh page costs a fault, zeroing and, above 128 KB, an mmap/munmap pair; the gain is
# in docs/measurements.rst).  The pool keeps the most recently given back buffers, at most
# SPARES of them and SPARE_BYTES in all.  lstm_core.free_workspace() empties it.
cdef enum:
    SPARES = 8
cdef Py_ssize_t SPARE_BYTES = 256 << 20
cdef list _spares = []  # 1-D arrays from empty(), the most recently given back last


cdef cnp.ndarray take_workspace(Py_ssize_t count, int typenum):
    """A 1-D array of at least count elements of the dtype, aligned like empty(): the
    smallest spare that fits, else a new one.  Give it back with give_workspace."""
    cdef Py_ssize_t i, best = -1
    cdef cnp.ndarray arr
    for i in range(len(_spares)):
        arr = _spares[i]
        if (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_DIMS(arr)[0] >= count
                and (best < 0 or cnp.PyArray_NBYTES(arr)
                     < cnp.PyArray_NBYTES(<cnp.ndarray>_spares[best]))):
            best = i
    if best >= 0:
        return _spares.pop(best)
    return empty((count,), typenum)


cdef give_workspace(cnp.ndarray arr):
    """Return a take_workspace array to the pool once the call is done with it (None:
    nothing); the oldest spares go when the pool is over its limits."""
    if arr is None:
        return
    _spares.append(arr)
    cdef Py_ssize_t total = 0
    cdef cnp.ndarray spare
    for spare in _spares:
        total += cnp.PyArray_NBYTES(spare)
    while len(_spares) > SPARES or total > SPARE_BYTES:
        spare = _spares.pop(0)
        total -= cnp.PyArray_NBYTES(spare)


cdef tuple pooled_views(tuple shapes, int typenum):
    """(memory, views): one workspace buffer and C-contiguous views of it with these shapes,
    each starting on a 64-byte boundary (as the buffer does, empty()).  A training cache's
    activations: the cache gives the memory back with give_views_back when it goes."""
    cdef Py_ssize_t line = 64 // cnp.PyArray_DescrFromType(typenum).itemsize
    cdef Py_ssize_t total = 0, count
    cdef list spans = []
    for shape in shapes:
        count = 1
        for n in shape:
            count *= n
        spans.append((total, count))
        total += (count + line - 1) // line * line
    cdef cnp.ndarray memory = take_workspace(total, typenum)
    return memory, tuple(memory[start:start + count].reshape(shape)
                         for (start, count), shape in zip(spans, shapes))


cdef extern from *:
    """
    /* Borrowed pointers in, no reference taken: what Py_REFCNT counts is what others hold. */
    static Py_ssize_t lstm_references(PyObject *o) { return Py_REFCNT(o); }
    static PyObject *lstm_array_base(PyObject *a) { return PyArray_BASE((PyArrayObject *)a); }
    """
    Py_ssize_t lstm_references(PyObject *o) noexcept
    PyObject *lstm_array_base(PyObject *a) noexcept


cdef void give_views_back(PyObject *memory, PyObject **views, int count) noexcept:
    """From a cache's __dealloc__, with borrowed pointers to its pooled_views memory and its
    views (attributes of the cache): give the memory back to the pool when nothing but the
    cache references the views or the memory's owner (the buffer itself, or the array it
    views: referenced once by memory or the cache, and once by each view, whose own base it
    is; numpy makes any view of a view reference the owner too).  A cache's memory goes back
    only when no gate trace, no cache.gates and no slice of it outlives the cache.  After a
    cycle collection an attribute may be None already: then nothing is given back."""
    cdef PyObject *owner = lstm_array_base(memory)
    if owner == NULL:
        owner = memory
    if lstm_references(owner) != 1 + count:
        return
    for i in range(count):
        if lstm_references(views[i]) != 1:
            return
    give_workspace(<cnp.ndarray>memory)


cdef tuple step_input(object x_t, object h, object w_ih, object w_hh, object bias, int gates,
                     str order):
    """The checked one-step arguments of rnn_cell (gates 1, bias summed) and gru_cell (gates 3,
    bias None: its two biases are checked apart): x_t (B, I), h (B, H), the weights and the
    bias, each contiguous, and H."""
    cdef cnp.ndarray ax = checked(x_t, "x_t", 2, "(B, I)", -1, "x_t")
    cdef int typenum = cnp.PyArray_TYPE(ax)
    cdef Py_ssize_t B = ax.shape[0]
    a_ih, a_hh, a_bias, H = weights(w_ih, w_hh, bias, typenum, ax.shape[1], "x_t", gates, order)
    cdef cnp.ndarray a_h = state(h, "h", typenum, B, H, "x_t", False)
    if B > INT_MAX:
        raise ValueError(f"x_t of shape {shape_of(ax)} is too large: B must be at most {INT_MAX}")
    return (contiguous(ax), contiguous(a_h), contiguous(a_ih), contiguous(a_hh),
            contiguous(a_bias), H)


cdef tuple gradients_in(object dy, object dh_n, int typenum, Py_ssize_t T, Py_ssize_t B,
                        Py_ssize_t H):
    """dy (T, B, H) and dh_n (B, H), each checked and contiguous, or None."""
    cdef cnp.ndarray a_dy = None
    if dy is not None:
        a_dy = checked(dy, "dy", 3, "(T, B, H)", typenum, "cache")
        expect_shape(a_dy, "dy", "(T, B, H) of the forward call", T, B, H)
    cdef cnp.ndarray a_dh_n = state(dh_n, "dh_n", typenum, B, H, "cache", True)
    return contiguous(a_dy), contiguous(a_dh_n)


cdef class SequenceCache:
    """The base of LSTMCache, GRUCache and RNNCache: the inputs of one training-mode forward
    call (x, w_ih, w_hh: the very arrays passed in when they were already contiguous, and
    lengths as C ints or None) and its saved activations, views of one buffer of the
    workspace pool that goes back to the pool with the cache, unless one of them is still
    referenced elsewhere.  Each subclass names its activations."""

    def __init__(self):
        raise TypeError("SequenceCache is the base of the caches that the forward functions "
                        "return with training=True; it is not instantiated")

    def __dealloc__(self):
        # A training loop drops each step's cache before the next step's forward: back in
        # the pool, its memory serves that forward instead of pages faulted in afresh
        # (docs/measurements.rst).  The tuple holds the only reference to each view.
        cdef PyObject *views[8]
        cdef Py_ssize_t count
        if self.memory is None or self.activations is None:
            return
        count = min(len(self.activations), 8)
        for i in range(count):
            views[i] = PyTuple_GET_ITEM(self.activations, i)
        give_views_back(<PyObject *>self.memory, views, <int>count)

    def __repr__(self):
        T, B, I = shape_of(self.x)
        return (f"<{type(self).__name__} T={T} B={B} I={I} H={shape_of(self.w_hh)[1]} "
                f"dtype={self.x.dtype} {self._biases()}>")

    def _biases(self):
        return ""

    cdef keep(self, cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray lengths,
              int typenum, tuple shapes):
        """Keep the call's inputs and take the activations' memory, views of these shapes."""
        self.x, self.w_ih, self.w_hh, self.lengths, self.typenum = x, w_ih, w_hh, lengths, typenum
        self.memory, self.activations = pooled_views(shapes, typenum)

    cdef freeze(self):
        """The activations are read-only once the forward has written them."""
        for arr in self.activations:
            arr.flags.writeable = False


def take_scratch(tuple shape, dtype):
    """(spare, view): a spare of the pool and a C-contiguous view of it with this shape and
    dtype, for a Python layer's array that never leaves its call (lstm_core/layers.py, the
    reversed input of an inference).  Give the spare back with give_scratch."""
    spare, views = pooled_views((shape,), cnp.dtype(dtype).num)
    return spare, views[0]


def give_scratch(spare):
    """Return the spare of take_scratch to the pool once its view is no longer used."""
    give_workspace(spare)


def free_workspace():
    """Release the workspace buffers the kernels keep between calls (see README, Memory).

    The next call allocates afresh what it needs.
    """
    _spares.clear()


def _spare_buffers():
    """The pool's spare buffers themselves, for the tests (which fill them with NaN, so that
    a call reading stale workspace shows)."""
    return list(_spares)

