/*
 * lstm_runner.h -- the threads of a split time loop (lstm_core.h, Threads).
 *
 * lstm_run_parallel(task, arg, parts) runs task(arg, team) for every part in [0, parts):
 * part 0 on the calling thread, the others on new threads, all at once (they meet at a
 * barrier), and returns when all have returned.  Nothing is pooled: nothing spins between
 * calls and nothing survives a fork().  A new thread keeps off the caller's core and the
 * caller stays on it while the loop runs (lstm_affinity.h).  Every part runs with
 * subnormals flushed (lstm_float_env.h), like the calling thread.  When a thread cannot be
 * started, the loop runs with the parts started so far: team->parts says how many.
 */
#ifndef LSTM_RUNNER_H
#define LSTM_RUNNER_H

/* One task's view of a loop shared between threads. */
typedef struct lstm_team {
    int part, parts;
    void (*wait)(const struct lstm_team *team); /* the barrier of the parts */
    void *shared;                                /* the runner's state, for wait */
} lstm_team;
typedef void (*lstm_task)(void *arg, const lstm_team *team);

#define LSTM_MAX_PARTS 64 /* tasks of one loop at most */

void lstm_run_parallel(lstm_task task, void *arg, int parts);

/* Run task(arg) as `parts` tasks through lstm_run_parallel, or as one task right here. */
void lstm_run(lstm_task task, void *arg, int parts);

/* The number of CPUs the calling thread may run on, or -1 when unknown. */
int lstm_usable_cpus(void);

#endif /* LSTM_RUNNER_H */
