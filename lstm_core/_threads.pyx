# The process-wide settings that every LSTM plan reads (src/include/lstm_plan.h): how many
# threads a call's time loop may use, and the GEMM (scipy's BLAS, lstm_core/_blas.pxd).
#
# The plan decides how many of those threads pay off for a call and how they share it; the
# C runner (src/threads/lstm_runner.c) starts them for the call and joins them before it
# returns.  Calls on one thread use BLAS GEMMs, on the BLAS's own threads (threadpoolctl
# limits those).

import os

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

    The default is the number of CPUs this process may run on, and a loop never uses more
    threads than that (its threads meet at spinning barriers: more threads than CPUs would
    wait for each other).  Results are the same bits for any n > 1, and agree with n = 1 to
    the last bits (README, Threads).  The BLAS's own threads (the GEMMs of one-thread calls)
    are set separately, e.g. with threadpoolctl.threadpool_limits(n).

    Parameters
    ----------
    n : int
        At least 1 (counts above 64 are taken as 64).

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
    _settings.threads = min(n, MAX_PARTS)


def get_num_threads():
    """The most threads a call's time loop may use (see set_num_threads).

    Returns
    -------
    int
    """
    return _settings.threads


def _usable_cpus():
    cpus = lstm_usable_cpus()  # -1 where the system does not report its affinity
    return cpus if cpus >= 1 else os.cpu_count() or 1


set_num_threads(_usable_cpus())
