# The threads of the kernels' time loops (see _threads.pyx and src/lstm_core.h, Threads).
from lstm_core._kernels cimport lstm_task

cdef void run_parallel(lstm_task task, void *arg, int parts) noexcept nogil
cdef int loop_parts(Py_ssize_t B, Py_ssize_t H, double step_flops, Py_ssize_t T,
                    double weight_bytes, int *by_rows) noexcept
cdef bint weights_stay_cached(double weight_bytes) noexcept
