/*
 * lstm_runner.c -- lstm_run_parallel with POSIX threads (lstm_runner.h).
 */
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity (lstm_affinity.h) */

#include <pthread.h>

#include "lstm_affinity.h"
#include "lstm_barrier.h"
#include "lstm_float_env.h"
#include "lstm_runner.h"

/* What the parts of one loop share. */
typedef struct {
    lstm_barrier barrier;
    lstm_task task;
    void *arg;
    int parts;            /* final once `gate` is unlocked */
    int caller_cpu;
    pthread_mutex_t gate; /* held by the caller until every thread has been started */
} crew;

typedef struct {
    lstm_team team;
    crew *crew;
    pthread_t thread;
} member;

static void wait_for_crew(const lstm_team *team)
{
    lstm_barrier_wait(&((crew *)team->shared)->barrier);
}

static void wait_alone(const lstm_team *team)
{
    (void)team;
}

static void *run_member(void *p)
{
    member *m = p;
    crew *c = m->crew;
    lstm_avoid_cpu(c->caller_cpu); /* not on the caller's core: lstm_affinity.h */
    pthread_mutex_lock(&c->gate);  /* every part started: parts is final */
    pthread_mutex_unlock(&c->gate);
    m->team.parts = c->parts;
    const unsigned saved_env = lstm_float_env_flush_subnormals();
    c->task(c->arg, &m->team);
    lstm_float_env_restore(saved_env);
    return NULL;
}

void lstm_run_parallel(lstm_task task, void *arg, int parts)
{
    crew c;
    member members[LSTM_MAX_PARTS];
    lstm_pinning pinning;
    int started = 1;
    parts = parts < LSTM_MAX_PARTS ? parts : LSTM_MAX_PARTS;
    c.task = task;
    c.arg = arg;
    c.caller_cpu = lstm_current_cpu();
    pthread_mutex_init(&c.gate, NULL);
    pthread_mutex_lock(&c.gate);
    for (; started < parts; ++started) {
        member *m = &members[started];
        m->team.part = started;
        m->team.wait = wait_for_crew;
        m->team.shared = &c;
        m->crew = &c;
        if (pthread_create(&m->thread, NULL, run_member, m) != 0) {
            break;
        }
    }
    c.parts = started;
    lstm_barrier_init(&c.barrier, started);
    members[0].team.part = 0;
    members[0].team.parts = started;
    members[0].team.wait = wait_for_crew;
    members[0].team.shared = &c;
    pthread_mutex_unlock(&c.gate); /* the started threads may go */
    lstm_pin(&pinning, c.caller_cpu); /* the helpers avoid this core; stay on it */
    task(arg, &members[0].team);
    lstm_unpin(&pinning);
    for (int p = 1; p < started; ++p) {
        pthread_join(members[p].thread, NULL);
    }
    pthread_mutex_destroy(&c.gate);
}

void lstm_run(lstm_task task, void *arg, int parts)
{
    if (parts > 1) {
        lstm_run_parallel(task, arg, parts);
    }
    else {
        const lstm_team alone = {0, 1, wait_alone, NULL};
        task(arg, &alone);
    }
}

int lstm_usable_cpus(void)
{
    return lstm_affinity_usable_cpus();
}
