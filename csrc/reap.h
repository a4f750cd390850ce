/* The completion-reap loop shared by the asynchronous engines (libaio, io_uring).
 *
 * Both engines reap the same way: hand anything queued to the kernel, take the completions that are
 * ready without waiting, and when fewer than `min` were found, wait for the rest (poll for up to the
 * window, then block: iol_poll_wait). Remainders of short transfers are queued again while taking
 * completions; they go to the kernel before the loop waits and before it returns. An engine supplies
 * only the small operations below.
 *
 * The engine's operations sit in a static const table and the loop is forced inline into the engine's
 * reap(): the table's loads then fold to direct calls early enough for the callees to be inlined, as
 * they were in each engine's own loop (plain `static inline` left them as calls). No indirect calls
 * in the hot path.
 */
#ifndef IOL_REAP_H
#define IOL_REAP_H

#include <errno.h>

#include "engine.h"
#include "pollwin.h"

struct iol_reap_ops {
    /* I/Os queued but not yet handed to the kernel. */
    unsigned (*queued)(void *ctx);
    /* Hand them to the kernel: how many it took (>= 0) or a negative errno value. */
    int (*submit)(void *ctx);
    /* After a submit: nonzero when I/Os are still queued and nothing is in flight or waiting to be
     * handed out, i.e. the kernel takes nothing and waiting could never end. */
    int (*stalled)(void *ctx);
    /* Store up to max finished I/Os that are ready now (no waiting) in out[]; need is how many the
     * caller still lacks (an engine may do a cheap flush when it cannot find them). */
    unsigned (*take)(void *ctx, unsigned need, unsigned max, struct iol_io **out);
    /* Optional: called before each wait with room, the most completions the caller can take. */
    void (*prepare_wait)(void *ctx, unsigned room);
    iol_ready_fn ready;
    iol_block_fn block;
    iol_clock_fn now;
};

/* The engine's reap(): at least min (unless an error), at most max completions into out[]. */
static inline __attribute__((always_inline)) int iol_reap_loop(const struct iol_reap_ops *ops, void *ctx,
                                                               struct iol_poll *poll, unsigned min, unsigned max,
                                                               struct iol_io **out)
{
    unsigned n = 0;
    for (;;) {
        if (ops->queued(ctx)) {
            int r = ops->submit(ctx);
            if (r < 0)
                return r;
            if (ops->stalled(ctx))
                return -EAGAIN;
        }
        n += ops->take(ctx, n < min ? min - n : 0, max - n, out + n);
        if (n >= min) {
            if (ops->queued(ctx)) { /* remainders of short transfers */
                int r = ops->submit(ctx);
                if (r < 0)
                    return r;
            }
            return (int)n;
        }
        if (ops->queued(ctx))
            continue; /* remainders of short transfers go to the kernel before waiting */
        if (ops->prepare_wait)
            ops->prepare_wait(ctx, max - n);
        int r = iol_poll_wait(poll, min - n, ops->ready, ops->block, ops->now, ctx);
        if (r < 0)
            return r;
    }
}

#endif
