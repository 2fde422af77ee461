/*
 * lstm_barrier.h -- the barrier at which the threads of one split time loop meet, once per
 * step of a loop split by columns (lstm_core.h, Threads; used by lstm_runner.c).
 *
 * Why spin: a step of the loops worth splitting takes 20 us to a few ms, and the threads
 * arrive within microseconds of each other.  Sleeping on a lock costs a futex wake-up
 * (~5-50 us) per thread per barrier; spinning on one shared word costs a cache-line
 * transfer (~0.1-0.3 us).  A thread that has spun for SPIN_LIMIT rounds without the barrier
 * opening yields its core at every further round: when there are more threads than free
 * cores (a busy machine, or set_num_threads above the CPU count), the thread it waits for
 * then gets the core instead of waiting for the end of a time slice.
 *
 * The classic generation barrier: the last thread to arrive resets the count and bumps the
 * generation; the others wait for the generation to change.  Acquire and release orderings
 * make every write before a thread's wait visible to every thread after it.  GCC and clang
 * builtins (C11 atomics are not C99).
 */
#ifndef LSTM_BARRIER_H
#define LSTM_BARRIER_H

#include <sched.h>

#if !defined(__GNUC__)
#error "lstm_barrier.h needs the GCC/clang __atomic builtins"
#endif

#define LSTM_BARRIER_SPIN_LIMIT 4000 /* ~100-300 us of pause instructions */

typedef struct {
    int parts;          /* threads that meet here */
    int arrived;        /* of this generation */
    unsigned generation;
} lstm_barrier;

static inline void lstm_barrier_init(lstm_barrier *barrier, int parts)
{
    barrier->parts = parts;
    barrier->arrived = 0;
    barrier->generation = 0;
}

static inline void lstm_barrier_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Returns once all `parts` threads have called it as many times. */
static inline void lstm_barrier_wait(lstm_barrier *barrier)
{
    const unsigned generation = __atomic_load_n(&barrier->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&barrier->arrived, 1, __ATOMIC_ACQ_REL) == barrier->parts) {
        /* the last one: nobody touches `arrived` until the generation changes */
        __atomic_store_n(&barrier->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&barrier->generation, generation + 1, __ATOMIC_RELEASE);
        return;
    }
    for (long round = 0; __atomic_load_n(&barrier->generation, __ATOMIC_ACQUIRE) == generation;
         ++round) {
        if (round < LSTM_BARRIER_SPIN_LIMIT) {
            lstm_barrier_pause();
        }
        else {
            sched_yield();
        }
    }
}

#endif /* LSTM_BARRIER_H */
