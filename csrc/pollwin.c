/* Completion-polling window (see pollwin.h). */
#include <string.h>

#include "pollwin.h"

void iol_poll_init(struct iol_poll *p, uint32_t mode, uint64_t max_ns, uint32_t grow, uint32_t shrink)
{
    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->max_ns = max_ns;
    p->grow = grow;
    p->shrink = shrink;
    p->ns = mode == IOL_POLL_ON ? max_ns : 0;
}

void iol_poll_reset_stats(struct iol_poll *p)
{
    p->waits = p->hits = p->misses = 0;
    p->poll_ns = p->window_sum = p->block_ns = 0;
    p->sleeps = p->grows = p->shrinks = 0;
}

/* QEMU's rules (util/aio-posix.c, aio_poll): with w the window and M the maximum,
 *   block <= w             -> unchanged (the event came inside the window)
 *   block >  M             -> shrink: w / shrink, or 0 when shrink is 0
 *   w < M and block < M    -> grow: w * grow (grow 0 means 2), or 4000 ns from 0; at most M
 *   otherwise              -> unchanged */
void iol_poll_adjust(struct iol_poll *p, uint64_t block_ns)
{
    if (p->mode != IOL_POLL_ADAPTIVE || p->max_ns == 0)
        return;
    if (block_ns <= p->ns)
        return;
    if (block_ns > p->max_ns) {
        uint64_t old = p->ns;
        p->ns = p->shrink ? p->ns / p->shrink : 0;
        p->shrinks += p->ns != old;
        return;
    }
    if (p->ns < p->max_ns && block_ns < p->max_ns) {
        uint64_t g = p->grow ? p->grow : 2;
        uint64_t w = p->ns ? p->ns * g : IOL_POLL_FIRST_NS;
        if (p->ns && w / g != p->ns) /* overflow */
            w = p->max_ns;
        p->ns = w > p->max_ns ? p->max_ns : w;
        p->grows++;
    }
}

void iol_poll_sleep_done(struct iol_poll *p, uint64_t slept_ns)
{
    if (p->mode != IOL_POLL_ADAPTIVE)
        return;
    p->sleeps++;
    iol_poll_adjust(p, slept_ns);
}

/* ------------------------------------------------------------------------------------------------ */
/* scripted clock for the unit test */

struct sim {
    uint64_t t;
    uint64_t arrival; /* absolute */
    uint64_t tick, wake;
};

static uint64_t sim_now(void *ctx)
{
    struct sim *s = ctx;
    uint64_t t = s->t;
    s->t += s->tick;
    return t;
}

static unsigned sim_ready(void *ctx)
{
    struct sim *s = ctx;
    return s->t >= s->arrival;
}

static int sim_block(void *ctx, unsigned need)
{
    (void)need;
    struct sim *s = ctx;
    if (s->t < s->arrival)
        s->t = s->arrival;
    s->t += s->wake;
    return 0;
}

void iol_poll_simulate(struct iol_poll *p, const uint64_t *arrival_ns, size_t n, uint64_t tick_ns, uint64_t wake_ns,
                       uint64_t *out)
{
    struct sim s = {.t = 1000000, .tick = tick_ns, .wake = wake_ns};
    for (size_t i = 0; i < n; i++) {
        uint64_t before = p->mode == IOL_POLL_OFF ? 0 : p->ns;
        uint64_t hits = p->hits, block0 = p->block_ns;
        s.arrival = s.t + arrival_ns[i];
        iol_poll_wait(p, 1, sim_ready, sim_block, sim_now, &s);
        out[4 * i + 0] = before;
        out[4 * i + 1] = p->block_ns - block0;
        out[4 * i + 2] = p->mode == IOL_POLL_OFF ? 0 : p->ns;
        out[4 * i + 3] = p->hits - hits;
        s.t += 10 * tick_ns; /* some work between waits */
    }
}
