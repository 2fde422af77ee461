# Argument checking and allocation shared by the Cython boundaries; see _boundary.pyx.
cimport numpy as cnp
from cpython.ref cimport PyObject

# Inference mode projects the input of several steps with one GEMM; it takes as many steps
# as make about this many rows, so the GEMM stays efficient while the workspace stays
# bounded whatever T (one step at least): 1024 rows x 4H, 4 MB at H = 256.  The GRU and the
# RNN use it; the LSTM's plan has the same rule (src/kernels/lstm_plan.c).
cdef enum:
    INFERENCE_CHUNK_ROWS = 1024

# Subnormals flushed to zero on the calling thread while a kernel runs (src/kernels/lstm_float_env.h):
#     saved = flush_subnormals(); ...kernels...; restore_float_env(saved)
cdef extern from "lstm_float_env.h" nogil:
    unsigned flush_subnormals "lstm_float_env_flush_subnormals"()
    void restore_float_env "lstm_float_env_restore"(unsigned saved)

cdef cnp.ndarray checked(object value, str name, int ndim, str layout, int typenum, str dtype_owner)
cdef cnp.ndarray sequence(object x)
cdef int inference_chunk(Py_ssize_t T, Py_ssize_t B)
cdef tuple shape_of(cnp.ndarray arr)
cdef int expect_shape(cnp.ndarray arr, str name, str meaning, Py_ssize_t d0, Py_ssize_t d1=*, Py_ssize_t d2=*) except -1
cdef cnp.ndarray contiguous(cnp.ndarray arr)
cdef tuple weights(object w_ih, object w_hh, object bias, int typenum, Py_ssize_t input_size, str dtype_owner, int gates, str gate_names)
cdef cnp.ndarray state(object value, str name, int typenum, Py_ssize_t batch, Py_ssize_t hidden, str dtype_owner, bint optional)
cdef tuple gradients_in(object dy, object dh_n, int typenum, Py_ssize_t T, Py_ssize_t B, Py_ssize_t H)
cdef tuple step_input(object x_t, object h, object w_ih, object w_hh, object bias, int gates, str order)
cdef cnp.ndarray lengths_of(object value, Py_ssize_t batch, Py_ssize_t steps)
cdef require_memory(object nbytes, str name, tuple shape, str what)
cdef require_copy_memory(cnp.ndarray arr, str name)
cdef require_fit(tuple inputs, object elements, cnp.ndarray x, str what)
cdef cnp.ndarray empty(tuple shape, int typenum)
cdef cnp.ndarray zeros(tuple shape, int typenum)
cdef cnp.ndarray take_workspace(Py_ssize_t count, int typenum)
cdef give_workspace(cnp.ndarray arr)
cdef tuple pooled_views(tuple shapes, int typenum)
cdef void give_views_back(PyObject *memory, PyObject **views, int count) noexcept


# What every cell's backward needs from its training-mode forward (see _boundary.pyx).
cdef class SequenceCache:
    cdef readonly cnp.ndarray x, w_ih, w_hh, lengths
    cdef int typenum
    cdef cnp.ndarray memory   # the pool buffer that the activations view
    cdef tuple activations    # the saved activations, each a view of memory
    cdef keep(self, cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, cnp.ndarray lengths,
              int typenum, tuple shapes)
    cdef freeze(self)


cdef inline void *data_of(cnp.ndarray arr):
    return NULL if arr is None else cnp.PyArray_DATA(arr)
