/*
 * lstm_shares.h -- how the tasks of a split loop (lstm_core.h, Threads) share out its work:
 * a fixed share of a range per task, and chunks of a range claimed at run time.
 *
 * Why claim at run time: the two cores of a shared machine do not run at the same speed
 * from one moment to the next (other processes, their caches), and the slower task kept
 * the faster one waiting at the per-step barrier (docs/measurements.rst).  Claimed, a range goes in
 * chunks (at most LSTM_MAX_CHUNKS): each task claims the chunks of its own share first to
 * last, then those of the others last to first, until a claim fails.
 * Owners start where they always do, so a task's weights usually stay in its core's cache;
 * only the chunks a slower task did not reach in time move.  Whichever task computes a
 * chunk, its outputs are the same bits (the kernels' arithmetic does not depend on which
 * rows or columns a call computes).
 */
#ifndef LSTM_SHARES_H
#define LSTM_SHARES_H

#include <stddef.h>

#include "lstm_runner.h"

#define LSTM_MAX_CHUNKS 64

/* The part of [0, n) that task `part` of `parts` owns, or chunk `part` of `parts` chunks:
 * whole blocks of `unit` (the last one cut at n). */
static inline void lstm_share(int part, int parts, ptrdiff_t n, ptrdiff_t unit,
                              ptrdiff_t *begin, ptrdiff_t *end)
{
    const ptrdiff_t units = (n + unit - 1) / unit;
    const ptrdiff_t u0 = units * part / parts * unit;
    const ptrdiff_t u1 = units * (part + 1) / parts * unit;
    *begin = u0 < n ? u0 : n;
    *end = u1 < n ? u1 : n;
}

/* Chunks for n elements in blocks of unit: one per block, LSTM_MAX_CHUNKS at most. */
static inline ptrdiff_t lstm_chunks(ptrdiff_t n, ptrdiff_t unit)
{
    const ptrdiff_t units = (n + unit - 1) / unit;
    return units < LSTM_MAX_CHUNKS ? units : LSTM_MAX_CHUNKS;
}

/* One task's claiming of the chunks of one round.  claims [LSTM_MAX_CHUNKS], shared by the
 * tasks and zeroed before the first round, holds for each chunk the last round that
 * claimed it, plus one; rounds count up, so each round finds every chunk free.  A task may
 * start a round only once every task is done claiming in the one before (a barrier between
 * them): else its claims would make the chunks look taken to a task still in the earlier
 * round, which would leave them undone.  Work claimed without a barrier in between needs
 * claims of its own. */
typedef struct {
    unsigned *claims;
    unsigned round;
    ptrdiff_t chunks;
    int part, parts;
    int q;                /* claiming in the share of task (part + q) % parts */
    ptrdiff_t c0, c1, i;  /* that share, and how many of its chunks were tried */
} lstm_claimer;

static inline void lstm_claimer_share(lstm_claimer *it)
{
    lstm_share((it->part + it->q) % it->parts, it->parts, it->chunks, 1, &it->c0, &it->c1);
    it->i = 0;
}

static inline lstm_claimer lstm_claims_begin(unsigned *claims, unsigned round,
                                             ptrdiff_t chunks, const lstm_team *team)
{
    lstm_claimer it = {claims, round, chunks, team->part, team->parts, 0, 0, 0, 0};
    lstm_claimer_share(&it);
    return it;
}

/* Chunk c for this round: 1 when this task got it. */
static inline int lstm_claim(lstm_claimer *it, ptrdiff_t c)
{
#if defined(__GNUC__)
    unsigned seen = __atomic_load_n(it->claims + c, __ATOMIC_RELAXED);
    while (seen <= it->round) {
        if (__atomic_compare_exchange_n(it->claims + c, &seen, it->round + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            return 1;
        }
    }
    return 0;
#else
    /* no atomics: each task keeps to its own share (the first q) */
    (void)c;
    return it->q == 0;
#endif
}

/* The next chunk this task claims in this round, or -1 when none is left. */
static inline ptrdiff_t lstm_claim_next(lstm_claimer *it)
{
    while (it->q < it->parts) {
        if (it->i < it->c1 - it->c0) {
            const ptrdiff_t c = it->q == 0 ? it->c0 + it->i : it->c1 - 1 - it->i;
            ++it->i;
            if (lstm_claim(it, c)) {
                return c;
            }
        }
        /* this share is done, or the rest of it is someone else's */
        if (++it->q < it->parts) {
            lstm_claimer_share(it);
        }
    }
    return -1;
}

#endif /* LSTM_SHARES_H */
