/* Rate limiting and think time: the sleeps (the schedule itself is in rate.h). */
#include <stdatomic.h>
#include <time.h>

#include "rate.h"

/* Rate schedule and think-time counters start over (at the start of the ramp and of the measurement). */
void iol_start_schedule(struct iol_job *j, uint64_t t)
{
    j->rate_origin = t;
    j->rate_next[0] = j->rate_next[1] = 0;
    j->rate_bytes[0] = j->rate_bytes[1] = 0;
    j->think_count = j->think_last = 0;
    j->think_since = t;
}

/* Sleep until `until` (absolute), in slices so that stop() and the end of the measured phase are
 * noticed. The sleep adjusts an adaptive poll window like a long wait. 1 if the job must end instead. */
int iol_sleep_until(struct iol_job *j, uint64_t until)
{
    const uint64_t slice = 50 * 1000000ull;
    uint64_t t0 = iol_now_ns(), t = t0;
    int end = 0;
    while (t < until) {
        if (atomic_load_explicit(&j->stop, memory_order_relaxed)) {
            end = 1;
            break;
        }
        int measuring = atomic_load_explicit(&j->phase, memory_order_relaxed) == IOL_PHASE_MEASURE;
        if (measuring && t >= j->deadline) {
            end = 1;
            break;
        }
        uint64_t target = until - t > slice ? t + slice : until;
        if (measuring && j->deadline < target)
            target = j->deadline;
        struct timespec ts = {.tv_sec = (time_t)(target / 1000000000ull), .tv_nsec = (long)(target % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        t = iol_now_ns();
    }
    j->sleeps++;
    j->sleep_ns += t - t0;
    iol_poll_sleep_done(&j->poll, t - t0);
    return end;
}

int iol_think_pause(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    uint64_t t0 = iol_now_ns();
    while (c->thinktime_spin_ns && iol_now_ns() - t0 < c->thinktime_spin_ns)
        if (atomic_load_explicit(&j->stop, memory_order_relaxed))
            return 1;
    int end = 0;
    if (c->thinktime_ns > c->thinktime_spin_ns)
        end = iol_sleep_until(j, t0 + c->thinktime_ns);
    j->think_pauses++;
    j->think_last = j->think_count;
    j->think_since = iol_now_ns();
    return end;
}
