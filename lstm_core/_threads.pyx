# How many threads the kernels' time loops use, and the runner that gives them threads.
#
# The C drivers split a time loop into tasks that share its rows or its columns (src/
# lstm_core.h, Threads; loop_parts chooses) and run them through run_parallel: parts - 1 new
# threads plus the calling one, joined before it returns.  Nothing is pooled, so nothing
# spins between calls and nothing survives a fork(); a thread costs ~50 us to start and a
# barrier ~0.1-0.3 us, so a loop is split only when each part gets at least MIN_PART_FLOPS
# in all and MIN_PART_STEP_FLOPS per step.  A new thread keeps off its caller's core, and
# the caller stays on it (src/lstm_affinity.h).  Calls on one thread use BLAS GEMMs, on the
# BLAS's own threads (threadpoolctl limits those).

import os

from lstm_core._boundary cimport flush_subnormals, restore_float_env
from lstm_core._kernels cimport lstm_team

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
    ctypedef struct lstm_pinning:
        pass
    int lstm_usable_cpus()
    int lstm_current_cpu()
    void lstm_avoid_cpu(int cpu)
    void lstm_pin(lstm_pinning *pinning, int cpu)
    void lstm_unpin(const lstm_pinning *pinning)

cdef extern from "lstm_barrier.h" nogil:
    ctypedef struct lstm_barrier:
        pass
    void lstm_barrier_init(lstm_barrier *barrier, int parts)
    void lstm_barrier_wait(lstm_barrier *barrier)

cdef enum:
    MAX_PARTS = 64          # threads of one loop at most
    MIN_PART_COLUMNS = 32   # hidden units per part split by columns: one float32 panel
    MIN_PART_ROWS = 8       # batch rows per part split by rows: one block of the kernel
# Split by rows while the packed weights take at most this: half the 2 MB L2 cache of a core
# here, so each core keeps them with its share of the activations.  Above it, by columns.
# Measured at 2 threads against the columns (forward, float32): S2 (512 KB) 3.5 ms vs 4.1;
# S5 (32 MB) 59 ms vs 76 by rows; S4 (8 MB) 81 vs 87.
cdef double ROWS_SPLIT_MAX_BYTES = 1 << 20
cdef double MIN_PART_FLOPS = 1e7       # ~0.1 ms of work: twice a thread's start
cdef double MIN_PART_STEP_FLOPS = 2e5  # ~2 us per step: ten times a step's barrier

cdef int _num_threads = 1


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
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _num_threads = min(n, MAX_PARTS)


def get_num_threads():
    """The most threads a call's time loop may use (see set_num_threads).

    Returns
    -------
    int
    """
    return _num_threads


def _usable_cpus():
    cpus = lstm_usable_cpus()  # -1 where the system does not report its affinity
    return cpus if cpus >= 1 else os.cpu_count() or 1


set_num_threads(_usable_cpus())


cdef bint weights_stay_cached(double weight_bytes) noexcept:
    """Whether packed weights of this size stay in a core's cache beside the activations of
    its share of a step (ROWS_SPLIT_MAX_BYTES): then each step may read all of them."""
    return weight_bytes <= ROWS_SPLIT_MAX_BYTES


cdef int loop_parts(Py_ssize_t B, Py_ssize_t H, double step_flops, Py_ssize_t T,
                    double weight_bytes, int *by_rows) noexcept:
    """Tasks for a loop of T steps of step_flops each over B rows and H hidden units, whose
    packed weights take weight_bytes: as many as pay off, 1 at least.  Sets by_rows when the
    tasks should share the rows (src/lstm_core.h, Threads): when every core's cache holds all
    the weights and the rows make enough blocks; else they share the columns, each part at
    least one float32 panel of hidden units."""
    cdef double by_work = min(step_flops * T / MIN_PART_FLOPS, step_flops / MIN_PART_STEP_FLOPS)
    cdef int wanted = <int>max(1, min(_num_threads, by_work))
    cdef int cpus
    if wanted > 1 and not _oversubscribe:
        cpus = lstm_usable_cpus()  # now: the affinity may have changed since import
        if cpus >= 1:
            wanted = min(wanted, cpus)
    if _split == 1 or (_split == 0 and weights_stay_cached(weight_bytes)):
        if B // MIN_PART_ROWS >= wanted or _split == 1:
            by_rows[0] = 1
            return max(1, min(wanted, B // MIN_PART_ROWS))
    by_rows[0] = 0
    return max(1, min(wanted, H // MIN_PART_COLUMNS))


cdef int _split = 0  # 0: loop_parts chooses; 1: rows, 2: columns (the tests)
cdef bint _oversubscribe = False  # more parts than CPUs (the tests of 3 parts on 2 CPUs)


def _loop_parts(B, H, step_flops, T, weight_bytes):
    """loop_parts as (parts, by_rows), for the tests (which check that their shapes are
    really split)."""
    cdef int by_rows = 0
    parts = loop_parts(B, H, step_flops, T, weight_bytes, &by_rows)
    return parts, bool(by_rows)


def _allow_more_threads_than_cpus(allow):
    """Let loops use more threads than CPUs (the tests, which split into 3 parts anywhere)."""
    global _oversubscribe
    _oversubscribe = bool(allow)


def _force_split(mode):
    """Make loop_parts split every loop by "rows" or by "columns" when it can, or choose
    (None): for the tests of both ways."""
    global _split
    _split = {None: 0, "rows": 1, "columns": 2}[mode]


cdef struct _crew:
    # what the parts of one loop share
    lstm_barrier barrier
    lstm_task task
    void *arg
    int parts               # final once `gate` is released
    int caller_cpu
    PyThread_type_lock gate  # held by the caller until every thread has been started


cdef struct _member:
    lstm_team team
    _crew *crew
    PyThread_type_lock done  # held until the part has run


cdef void _wait(const lstm_team *team) noexcept nogil:
    lstm_barrier_wait(&(<_crew *>team.shared).barrier)


cdef void _run_member(void *p) noexcept nogil:
    cdef _member *member = <_member *>p
    cdef _crew *crew = member.crew
    lstm_avoid_cpu(crew.caller_cpu)  # not on the caller's core: src/lstm_affinity.h
    PyThread_acquire_lock(crew.gate, WAIT_LOCK)  # every part started: parts is final
    PyThread_release_lock(crew.gate)
    member.team.parts = crew.parts
    saved_env = flush_subnormals()  # as on the calling thread
    crew.task(crew.arg, &member.team)
    restore_float_env(saved_env)
    PyThread_release_lock(member.done)


cdef void run_parallel(lstm_task task, void *arg, int parts) noexcept nogil:
    """task(arg, team) for every part, part 0 on the calling thread, the others on new
    threads; returns when all are done.  The tasks meet at barriers, so all of them must run
    at once: when a thread cannot be started, the loop runs with the parts started so far."""
    cdef _crew crew
    cdef _member members[MAX_PARTS]
    cdef lstm_pinning pinning
    cdef int p, started = 1
    parts = min(parts, <int>MAX_PARTS)
    crew.task, crew.arg, crew.caller_cpu = task, arg, lstm_current_cpu()
    crew.gate = PyThread_allocate_lock()
    if crew.gate != NULL:
        PyThread_acquire_lock(crew.gate, WAIT_LOCK)
        while started < parts:
            p = started
            members[p].team.part, members[p].team.wait, members[p].team.shared = p, _wait, &crew
            members[p].crew = &crew
            members[p].done = PyThread_allocate_lock()
            if members[p].done == NULL:
                break
            PyThread_acquire_lock(members[p].done, WAIT_LOCK)
            if PyThread_start_new_thread(_run_member, &members[p]) == PYTHREAD_INVALID_THREAD_ID:
                PyThread_release_lock(members[p].done)
                PyThread_free_lock(members[p].done)
                break
            started += 1
    crew.parts = started
    lstm_barrier_init(&crew.barrier, started)
    members[0].team.part, members[0].team.parts = 0, started
    members[0].team.wait, members[0].team.shared = _wait, &crew
    if crew.gate != NULL:
        PyThread_release_lock(crew.gate)  # the started threads may go
    lstm_pin(&pinning, crew.caller_cpu)  # the helpers avoid this core; stay on it
    task(arg, &members[0].team)
    lstm_unpin(&pinning)
    for p in range(1, started):
        PyThread_acquire_lock(members[p].done, WAIT_LOCK)
        PyThread_release_lock(members[p].done)
        PyThread_free_lock(members[p].done)
    if crew.gate != NULL:
        PyThread_free_lock(crew.gate)
