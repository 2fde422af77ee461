/*
 * lstm_affinity.h -- keep a helper thread off the core of the thread that started it.
 *
 * Why: when lstm_core's time loop is split between the calling thread and a new thread
 * (lstm_runner.c), the other cores are often busy with the BLAS's idle workers,
 * which spin (yielding) for ~0.1 s after each call.  The kernel then sees no idle core and
 * may put the new thread on the caller's own core, where the two halves of the loop share
 * one core.  The new thread therefore excludes the caller's core from its allowed CPUs: it
 * lands beside a yielding spinner instead (docs/performance.rst, Threads, has the
 * measurements).
 *
 * Linux only (sched_getcpu, sched_setaffinity: the including file defines _GNU_SOURCE
 * before any header); elsewhere the functions do nothing or report "unknown".
 */
#ifndef LSTM_AFFINITY_H
#define LSTM_AFFINITY_H

#include <sched.h>

/* The number of CPUs the calling thread may run on, or -1 when unknown. */
static inline int lstm_affinity_usable_cpus(void)
{
#if defined(__linux__) && defined(CPU_CLR)
    cpu_set_t allowed;
    return sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : -1;
#else
    return -1;
#endif
}

/* The CPU the calling thread runs on, or -1 when unknown. */
static inline int lstm_current_cpu(void)
{
#if defined(__linux__) && defined(CPU_CLR)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* Remove `cpu` from the calling thread's allowed CPUs, unless it is unknown (-1) or the
 * only one. */
static inline void lstm_avoid_cpu(int cpu)
{
#if defined(__linux__) && defined(CPU_CLR)
    cpu_set_t allowed;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        return;
    }
    CPU_CLR(cpu, &allowed);
    if (CPU_COUNT(&allowed) > 0) {
        sched_setaffinity(0, sizeof allowed, &allowed);
    }
#else
    (void)cpu;
#endif
}

/* The calling thread's allowed CPUs, saved while it is pinned to one (lstm_pin). */
typedef struct {
    int pinned;
#if defined(__linux__) && defined(CPU_CLR)
    cpu_set_t allowed;
#endif
} lstm_pinning;

/* Keep the calling thread on `cpu` until lstm_unpin: a loop split by columns meets at a
 * barrier every step, so its threads must stay on distinct cores, and the scheduler would
 * otherwise move the caller next to its helper when other threads (the BLAS's spinning
 * workers) keep the remaining cores busy.  Does nothing when cpu is unknown (-1). */
static inline void lstm_pin(lstm_pinning *pinning, int cpu)
{
    pinning->pinned = 0;
#if defined(__linux__) && defined(CPU_CLR)
    cpu_set_t only;
    if (cpu < 0 || cpu >= CPU_SETSIZE ||
        sched_getaffinity(0, sizeof pinning->allowed, &pinning->allowed) != 0) {
        return;
    }
    CPU_ZERO(&only);
    CPU_SET(cpu, &only);
    pinning->pinned = sched_setaffinity(0, sizeof only, &only) == 0;
#else
    (void)cpu;
#endif
}

/* Give the calling thread back the CPUs it had before lstm_pin. */
static inline void lstm_unpin(const lstm_pinning *pinning)
{
#if defined(__linux__) && defined(CPU_CLR)
    if (pinning->pinned) {
        sched_setaffinity(0, sizeof pinning->allowed, &pinning->allowed);
    }
#else
    (void)pinning;
#endif
}

#endif /* LSTM_AFFINITY_H */
