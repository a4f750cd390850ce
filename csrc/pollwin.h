/* Completion polling: busy-poll the completion ring for up to a window before blocking.
 *
 * Modes: off (window 0: always block), on (fixed window = max_ns), adaptive (the window follows the
 * rules of QEMU's aio_poll after every wait; see iol_poll_adjust()).
 *
 * A "wait" is a moment where the job needs completions and fewer than it needs are available. Each
 * wait either ends inside the poll window (a hit) or goes on to block in the kernel (a miss; with a
 * window of 0 every wait is a miss), so hits + misses == waits. Sleeps of the job loop (rate limiting,
 * thinktime) are not waits for completions, but in adaptive mode they adjust the window exactly like a
 * wait that blocked that long: an event loop that was idle for a long time has nothing to gain from
 * polling (QEMU's iothread sees the same through its idle aio_poll calls).
 *
 * The state is per job (owned by the job, used by its engine); nothing here is global.
 */
#ifndef IOL_POLLWIN_H
#define IOL_POLLWIN_H

#include <stddef.h>
#include <stdint.h>

enum iol_poll_mode {
    IOL_POLL_OFF = 0,
    IOL_POLL_ON = 1,
    IOL_POLL_ADAPTIVE = 2,
};

#define IOL_POLL_FIRST_NS 4000u /* the first growth from 0 (QEMU: "start polling at 4 microseconds") */

struct iol_poll {
    uint32_t mode;
    uint32_t grow;   /* multiplier; 0 means 2 */
    uint32_t shrink; /* divisor; 0 means "back to 0" */
    uint64_t max_ns;
    uint64_t ns; /* the current window */
    /* counters (reset when the measured phase starts) */
    uint64_t waits;      /* waits for completions */
    uint64_t hits;       /* waits that ended while polling */
    uint64_t misses;     /* waits that blocked in the kernel */
    uint64_t poll_ns;    /* time spent busy-polling */
    uint64_t window_sum; /* sum of the window in force at each wait (mean = window_sum / waits) */
    uint64_t block_ns;   /* total time of all waits (polling and blocking) */
    uint64_t sleeps;     /* loop sleeps (rate, thinktime) that adjusted the window */
    uint64_t grows, shrinks;
};

void iol_poll_init(struct iol_poll *p, uint32_t mode, uint64_t max_ns, uint32_t grow, uint32_t shrink);
void iol_poll_reset_stats(struct iol_poll *p);
/* After a wait of block_ns (from its start until the completion was seen): adaptive mode only. */
void iol_poll_adjust(struct iol_poll *p, uint64_t block_ns);
/* A loop sleep of slept_ns (no completion was expected): adjusts the window like a blocking wait. */
void iol_poll_sleep_done(struct iol_poll *p, uint64_t slept_ns);

/* How many completions are available right now (may do a cheap non-blocking flush). */
typedef unsigned (*iol_ready_fn)(void *ctx);
/* Block until at least `need` completions are available (or until a timeout the engine chose);
 * 0 or a negative errno value. */
typedef int (*iol_block_fn)(void *ctx, unsigned need);
typedef uint64_t (*iol_clock_fn)(void *ctx);

/* One wait for `need` completions: poll for up to the window, then block; adjust the window.
 * Static inline so engines get their callbacks inlined (no indirect calls in the hot path). */
static inline int iol_poll_wait(struct iol_poll *p, unsigned need, iol_ready_fn ready, iol_block_fn block,
                                iol_clock_fn now, void *ctx)
{
    uint64_t t0 = now(ctx);
    uint64_t w = p->mode == IOL_POLL_OFF ? 0 : p->ns;
    p->waits++;
    p->window_sum += w;
    if (w) {
        uint64_t t;
        for (;;) {
            unsigned avail = ready(ctx);
            t = now(ctx);
            if (avail >= need) {
                p->hits++;
                p->poll_ns += t - t0;
                p->block_ns += t - t0;
                iol_poll_adjust(p, t - t0);
                return 0;
            }
            if (t - t0 >= w)
                break;
        }
        p->poll_ns += t - t0;
    }
    p->misses++;
    int r = block(ctx, need);
    uint64_t waited = now(ctx) - t0;
    p->block_ns += waited;
    iol_poll_adjust(p, waited);
    return r;
}

/* Test hook: run `n` waits against a scripted clock. Wait i starts at the current simulated time T;
 * its completion arrives at T + arrival_ns[i]. Every clock read advances time by tick_ns (the cost of
 * one poll iteration); blocking jumps to the arrival plus wake_ns (the cost of a kernel wakeup).
 * out gets 4 values per wait: window before, block_ns, window after, 1 if the wait was a hit. */
void iol_poll_simulate(struct iol_poll *p, const uint64_t *arrival_ns, size_t n, uint64_t tick_ns, uint64_t wake_ns,
                       uint64_t *out);

#endif
