/* Rate limiting (rate, rate_process) and think time (thinktime*). The per-I/O checks are static inline;
 * sleeping is in rate.c. */
#ifndef IOL_RATE_H
#define IOL_RATE_H

#include <math.h>
#include <stdint.h>

#include "clock.h"
#include "jobstate.h"

/* Rate schedule and think-time counters start over at t. */
void iol_start_schedule(struct iol_job *j, uint64_t t);
/* Sleep until `until` (absolute); 1 if the job must end instead. */
int iol_sleep_until(struct iol_job *j, uint64_t until);
/* fio's thinktime, once the I/Os in flight completed: spin thinktime_spin, sleep the rest. 1 if the job
 * must end. */
int iol_think_pause(struct iol_job *j);

static inline int think_due(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (c->thinktime_iotime_ns) {
        if (iol_now_ns() - j->think_since >= c->thinktime_iotime_ns)
            return 1;
        if (!c->thinktime_blocks_set)
            return 0;
    }
    uint32_t blocks = c->thinktime_blocks ? c->thinktime_blocks : 1;
    return j->think_count >= j->think_last + blocks;
}

/* The time the next I/O of direction d is due, and move the schedule on past it. */
static inline uint64_t rate_slot(struct iol_job *j, const struct iol_io *io)
{
    int d = io->ddir;
    uint64_t due = j->rate_origin + j->rate_next[d];
    uint64_t bps = j->cfg.rate_bps[d];
    if (j->cfg.rate_process == 1) {
        /* exponential gaps with the mean of one smallest-block I/O at the byte rate */
        double mean = 1e9 * (double)j->cfg.rate_min_bs[d] / (double)bps;
        double u = (double)((iol_rng_next(&j->rng_rate) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
        j->rate_next[d] += (uint64_t)(mean * -log(u));
    } else {
        j->rate_bytes[d] += io->len;
        j->rate_next[d] = (uint64_t)((unsigned __int128)j->rate_bytes[d] * 1000000000u / bps);
    }
    return due;
}

#endif
