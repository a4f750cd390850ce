/* Statistics of a job: per-direction counts and latency histograms, I/O depth distributions, interval
 * samples, CPU use. account() and the depth buckets run for every I/O: static inline. */
#ifndef IOL_STATS_H
#define IOL_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "jobstate.h"

/* Zero the statistics (what they counted so far was ramp I/O, kept for the device check). */
void iol_reset_stats(struct iol_job *j);
/* Close every interval of every series that ended by t. */
void iol_take_samples(struct iol_job *j, uint64_t t);
/* The measured clock, the samples and the CPU use start at t. */
void iol_start_clock(struct iol_job *j, uint64_t t);
/* The run ended at j->t_end while measuring: the last intervals close, the CPU use is taken. */
void iol_stats_close(struct iol_job *j);

static inline unsigned depth_bucket(unsigned d) /* iodepth_level: 1, 2, 4, 8, 16, 32, >= 64 */
{
    if (d >= 64)
        return 6;
    if (d >= 32)
        return 5;
    if (d >= 16)
        return 4;
    if (d >= 8)
        return 3;
    if (d >= 4)
        return 2;
    if (d >= 2)
        return 1;
    return 0;
}

static inline unsigned count_bucket(unsigned n) /* iodepth_submit/complete: 0, 1-4, 5-8, ..., 33-64, > 64 */
{
    if (n == 0)
        return 0;
    if (n <= 4)
        return 1;
    if (n <= 8)
        return 2;
    if (n <= 16)
        return 3;
    if (n <= 32)
        return 4;
    if (n <= 64)
        return 5;
    return 6;
}

static inline void account(struct iol_job *j, const struct iol_io *io, uint64_t t)
{
    struct iol_dstat *s = &j->ds[io->ddir];
    s->ios++;
    s->bytes += io->done;
    s->short_ios += io->short_count != 0;
    iol_hist_add(&s->lat, t - io->t_issue);
    if (!j->eng_sync || j->rated) {
        iol_hist_add(&s->clat, t - io->t_submit);
        iol_hist_add(&s->slat, io->t_submit - io->t_issue);
    }
    if (LIKELY(io->ddir < IOL_DDIR_IO)) {
        atomic_store_explicit(&j->prog_ios[io->ddir], s->ios, memory_order_relaxed);
        atomic_store_explicit(&j->prog_bytes[io->ddir], s->bytes, memory_order_relaxed);
    }
    if (UNLIKELY(j->trace != NULL) && j->trace_n < j->trace_cap) {
        struct iol_trace_rec *r = &j->trace[j->trace_n++];
        r->offset = io->offset;
        r->len = (uint32_t)io->len;
        r->file = (uint16_t)io->file;
        r->ddir = io->ddir;
        r->pad = 0;
        r->head = r->tail = 0;
        if (io->ddir < 2 && io->len >= 8) {
            memcpy(&r->head, io->buf, 8);
            memcpy(&r->tail, (const char *)io->buf + io->len - 8, 8);
        }
    }
}

#endif
