# The process-wide settings that every plan reads (src/include/lstm_plan.h): how many
# threads a call's time loop may use, and the GEMM (scipy's BLAS, lstm_core/_blas.pxd).
#
# The plan decides how many of those threads pay off for a call and how they share it; the
# C runner (src/threads/lstm_runner.c) starts them for the call and joins them before it
# returns.  Calls on one thread use BLAS GEMMs, on the BLAS's own threads (threadpoolctl
# limits those).

import os
import warnings

from lstm_core._blas cimport gemm_f32, gemm_f64
from lstm_core._kernels cimport LSTM_SPLIT_AUTO, lstm_settings, lstm_usable_cpus

cdef enum:
    MAX_PARTS = 64  # threads of one loop at most (src/threads/lstm_runner.h, LSTM_MAX_PARTS)

cdef lstm_settings _settings
_settings.threads = 1
_settings.split = LSTM_SPLIT_AUTO
_settings.oversubscribe = 0
_settings.gemm_f32 = gemm_f32
_settings.gemm_f64 = gemm_f64


cdef lstm_settings *kernel_settings() noexcept nogil:
    """The settings the plans read (lstm_core._testing changes the split for its tests)."""
    return &_settings


def set_num_threads(n):
    """Use at most n threads in each call's time loop.

    The default is ``LSTM_CORE_NUM_THREADS``, else ``OMP_NUM_THREADS`` (its first count),
    else the number of CPUs this process may run on; a loop never uses more threads than
    those CPUs (its threads meet at spinning barriers: more threads than CPUs would wait for
    each other).  ``threadpoolctl.threadpool_limits(n)`` sets it too (lstm_core registers its
    controller with threadpoolctl when that is installed).  Results are the same bits for any
    n > 1, and agree with n = 1 to the last bits.  The BLAS's own threads (the GEMMs of
    one-thread calls) are set separately, e.g. with threadpoolctl.

    Parameters
    ----------
    n : int
        At least 1.  At most 64 threads share a loop: a larger n is taken as 64, with a
        RuntimeWarning.

    Raises
    ------
    TypeError
        For n that is not an int.
    ValueError
        For n below 1.

    Examples
    --------
    >>> import lstm_core as lc
    >>> previous = lc.get_num_threads()
    >>> lc.set_num_threads(1)
    >>> lc.get_num_threads()
    1
    >>> lc.set_num_threads(previous)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n > MAX_PARTS:
        warnings.warn(f"lstm_core uses at most {MAX_PARTS} threads per loop: "
                      f"set_num_threads({n}) sets {MAX_PARTS}", RuntimeWarning, stacklevel=2)
    _settings.threads = min(n, MAX_PARTS)


def get_num_threads():
    """The most threads a call's time loop may use (see set_num_threads).

    Returns
    -------
    int
    """
    return _settings.threads


# The two entry points of threadpoolctl's controller (lstm_core/_threadpool.py), exported
# from this module's shared library, which threadpoolctl finds among the loaded ones.
cdef public int lstm_core_get_num_threads() noexcept nogil:
    return _settings.threads


cdef public void lstm_core_set_num_threads(int n) noexcept nogil:
    _settings.threads = 1 if n < 1 else MAX_PARTS if n > MAX_PARTS else n


def _usable_cpus():
    cpus = lstm_usable_cpus()  # -1 where the system does not report its affinity
    return cpus if cpus >= 1 else os.cpu_count() or 1


def _default_threads(environ=os.environ):
    """The default thread count: LSTM_CORE_NUM_THREADS, else OMP_NUM_THREADS (its first
    count: OpenMP reads "4,2" as 4 threads at the outer level), else the usable CPUs.  A
    value that is not a positive integer is ignored with a RuntimeWarning."""
    for name in ("LSTM_CORE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = environ.get(name, "").strip()
        if not value:
            continue
        first = value.split(",")[0].strip()
        if first.isdigit() and int(first) >= 1:
            return int(first)
        warnings.warn(f"{name}={value!r} is not a positive integer: ignored",
                      RuntimeWarning, stacklevel=2)
    return _usable_cpus()


_settings.threads = max(1, min(_default_threads(), MAX_PARTS))
