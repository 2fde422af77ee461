# How many threads the kernels' time loops use, and the runner that gives them threads.
#
# The C drivers split their time loop into tasks over ranges of batch rows (src/lstm_core.h,
# Threads) and run them through run_parallel: parts - 1 new threads plus the calling one,
# joined before it returns.  Nothing is pooled, so nothing spins between calls and nothing
# survives a fork(); a thread costs ~50 us to start, so a loop is split only into parts of at
# least MIN_PART_ROWS rows and MIN_PART_FLOPS each.  A new thread keeps off its caller's core
# (src/lstm_affinity.h).  The BLAS keeps its own threads for the GEMMs outside the loops
# (threadpoolctl limits those).

import os

from lstm_core._boundary cimport flush_subnormals, restore_float_env

cdef extern from "pythread.h" nogil:
    ctypedef void *PyThread_type_lock
    unsigned long PyThread_start_new_thread(void (*func)(void *) noexcept nogil, void *arg)
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock lock)
    int PyThread_acquire_lock(PyThread_type_lock lock, int waitflag)
    void PyThread_release_lock(PyThread_type_lock lock)
    int WAIT_LOCK
    unsigned long PYTHREAD_INVALID_THREAD_ID

cdef extern from "lstm_affinity.h" nogil:
    int lstm_current_cpu()
    void lstm_avoid_cpu(int cpu)

cdef enum:
    MAX_PARTS = 64        # threads of one loop at most
    MIN_PART_ROWS = 8     # one block of the packed kernel
cdef double MIN_PART_FLOPS = 1e7  # ~0.1 ms of work: twice a thread's start

cdef int _num_threads = 1


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use at most n threads (>= 1) in each call's time loop; the default is the number of
    CPUs this process may run on.  Results are the same bits for any n > 1, and agree with
    n = 1 to the last bits (README, Threads).  The BLAS's own threads (the GEMMs around the
    loop) are set separately, e.g. with threadpoolctl.threadpool_limits(n)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _num_threads = min(n, MAX_PARTS)


def get_num_threads():
    """The most threads a call's time loop may use (set_num_threads)."""
    return _num_threads


set_num_threads(_usable_cpus())


cdef int loop_parts(Py_ssize_t B, double flops) noexcept:
    """Tasks for a loop over B rows doing `flops`: as many as pay off, 1 at least."""
    cdef double by_work = flops / MIN_PART_FLOPS
    return <int>max(1, min(_num_threads, B // MIN_PART_ROWS, by_work))


def _loop_parts(B, flops):
    """loop_parts, for the tests (which check that their shapes are really split)."""
    return loop_parts(B, flops)


cdef struct _job:
    lstm_task task
    void *arg
    int part
    int parts
    int caller_cpu
    PyThread_type_lock done  # held until the part has run


cdef void _run_part(void *p) noexcept nogil:
    cdef _job *job = <_job *>p
    lstm_avoid_cpu(job.caller_cpu)  # not on the caller's core: src/lstm_affinity.h
    saved_env = flush_subnormals()  # as on the calling thread
    job.task(job.arg, job.part, job.parts)
    restore_float_env(saved_env)
    PyThread_release_lock(job.done)


cdef void run_parallel(lstm_task task, void *arg, int parts) noexcept nogil:
    """task(arg, part, parts) for every part, part 0 on the calling thread; returns when all
    are done.  A part whose thread cannot be started runs on the calling thread."""
    cdef _job jobs[MAX_PARTS]
    cdef int p
    parts = min(parts, <int>MAX_PARTS)
    cdef int caller_cpu = lstm_current_cpu()
    for p in range(1, parts):
        jobs[p].caller_cpu = caller_cpu
        jobs[p].task, jobs[p].arg, jobs[p].part, jobs[p].parts = task, arg, p, parts
        jobs[p].done = PyThread_allocate_lock()
        if jobs[p].done != NULL:
            PyThread_acquire_lock(jobs[p].done, WAIT_LOCK)
            if PyThread_start_new_thread(_run_part, &jobs[p]) != PYTHREAD_INVALID_THREAD_ID:
                continue
            PyThread_release_lock(jobs[p].done)
            PyThread_free_lock(jobs[p].done)
            jobs[p].done = NULL
        task(arg, p, parts)  # no thread: run it here
    task(arg, 0, parts)
    for p in range(1, parts):
        if jobs[p].done != NULL:
            PyThread_acquire_lock(jobs[p].done, WAIT_LOCK)
            PyThread_release_lock(jobs[p].done)
            PyThread_free_lock(jobs[p].done)
