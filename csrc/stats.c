/* Statistics: resets, interval samples (with a fixed buffer whose entries widen when it fills), CPU use. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/resource.h>

#include "stats.h"

static void rusage_now(long v[5])
{
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    getrusage(RUSAGE_THREAD, &ru);
    v[0] = ru.ru_utime.tv_sec * 1000000000L + ru.ru_utime.tv_usec * 1000L;
    v[1] = ru.ru_stime.tv_sec * 1000000000L + ru.ru_stime.tv_usec * 1000L;
    v[2] = ru.ru_nvcsw + ru.ru_nivcsw;
    v[3] = ru.ru_majflt;
    v[4] = ru.ru_minflt;
}

/* Zero the statistics; what they counted so far was ramp I/O (iol_reset_stats() runs only when the ramp ends, or
 * before any I/O), which is kept in ramp_ios/ramp_bytes for the device check. */
void iol_reset_stats(struct iol_job *j)
{
    for (int d = 0; d < IOL_DDIR_COUNT; d++) {
        struct iol_dstat *s = &j->ds[d];
        j->ramp_ios[d] += s->ios;
        j->ramp_bytes[d] += s->bytes;
        s->ios = s->bytes = s->short_ios = 0;
        j->err_ios[d] = 0;
        j->datasyncs = 0;
        iol_hist_reset(&s->lat);
        iol_hist_reset(&s->clat);
        iol_hist_reset(&s->slat);
    }
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        atomic_store_explicit(&j->prog_ios[d], 0, memory_order_relaxed);
        atomic_store_explicit(&j->prog_bytes[d], 0, memory_order_relaxed);
    }
    for (unsigned k = 0; k < j->nsmp; k++) {
        struct iol_sampler *sp = &j->smp[k];
        sp->n = 0;
        memset(sp->bw, 0, sizeof(sp->bw));
        memset(sp->iops, 0, sizeof(sp->iops));
        for (int d = 0; d < IOL_DDIR_IO; d++)
            sp->last_ios[d] = sp->last_bytes[d] = sp->open_ios[d] = sp->open_bytes[d] = 0;
    }
    j->trace_n = 0;
    iol_poll_reset_stats(&j->poll); /* the window itself carries on */
    memset(&j->depths, 0, sizeof(j->depths));
    j->sleeps = j->sleep_ns = j->think_pauses = j->lag_max = j->lag_sum = j->lag_n = 0;
}

static void rstat_add(struct iol_rstat *r, double v)
{
    if (!r->n || v < r->min)
        r->min = v;
    if (!r->n || v > r->max)
        r->max = v;
    r->n++;
    double d = v - r->mean;
    r->mean += d / (double)r->n;
    r->m2 += d * (v - r->mean);
}

/* Close the buffer entry of series sp at t_abs (a multiple of its interval, or the end of the run): when
 * the buffer is full, adjacent pairs merge and the interval doubles first, and a boundary that is no
 * longer one leaves the entry open. */
static void close_entry(struct iol_job *j, struct iol_sampler *sp, uint64_t t_abs, int partial)
{
    uint64_t rel = t_abs - j->t_measure;
    if (!partial && rel % sp->interval)
        return;
    if (sp->n == IOL_SAMPLES_CAP) {
        for (uint32_t i = 0; i < IOL_SAMPLES_CAP / 2; i++) {
            struct iol_sample *a = &sp->buf[2 * i], *b = &sp->buf[2 * i + 1];
            struct iol_sample m = *b;
            for (int d = 0; d < IOL_DDIR_IO; d++) {
                m.ios[d] += a->ios[d];
                m.bytes[d] += a->bytes[d];
            }
            sp->buf[i] = m;
        }
        sp->n = IOL_SAMPLES_CAP / 2;
        sp->interval *= 2;
        if (!partial && rel % sp->interval)
            return;
    }
    struct iol_sample *s = &sp->buf[sp->n++];
    s->t_ns = rel;
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        s->ios[d] = sp->open_ios[d];
        s->bytes[d] = sp->open_bytes[d];
        sp->open_ios[d] = sp->open_bytes[d] = 0;
    }
    sp->entry_t = t_abs;
}

/* The interval of series sp from its last boundary to t_abs (a boundary, or the end of the run when
 * partial): its rates join the statistics (as in fio, a direction without I/O in it adds no sample; a
 * partial interval only if it lasted most of one), its counts the open buffer entry. */
static void tick_sample(struct iol_job *j, struct iol_sampler *sp, uint64_t t_abs, int partial)
{
    uint64_t len = t_abs - sp->last_t;
    int counted = len > 0 && (!partial || (double)len >= IOL_FULL_INTERVAL * (double)sp->base);
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        uint64_t ios = j->ds[d].ios - sp->last_ios[d];
        uint64_t bytes = j->ds[d].bytes - sp->last_bytes[d];
        if (counted && bytes) {
            double sec = (double)len / 1e9;
            rstat_add(&sp->bw[d], (double)bytes / 1024.0 / sec);
            rstat_add(&sp->iops[d], (double)ios / sec);
        }
        sp->open_ios[d] += ios;
        sp->open_bytes[d] += bytes;
        sp->last_ios[d] = j->ds[d].ios;
        sp->last_bytes[d] = j->ds[d].bytes;
    }
    sp->last_t = t_abs;
    sp->next = t_abs + sp->base;
    close_entry(j, sp, t_abs, partial);
}

/* Close every interval of every series that ended by t; next_sample becomes the earliest boundary left. */
void iol_take_samples(struct iol_job *j, uint64_t t)
{
    uint64_t next = UINT64_MAX;
    for (unsigned k = 0; k < j->nsmp; k++) {
        struct iol_sampler *sp = &j->smp[k];
        while (t >= sp->next)
            tick_sample(j, sp, sp->next, 0);
        if (sp->next < next)
            next = sp->next;
    }
    j->next_sample = next;
}

/* The baseline of what is measured: the clock, the samples and the CPU use start at t (the ramp's start,
 * then the measurement's; a job that ends while still in its ramp reports all of it, as fio does). */
void iol_start_clock(struct iol_job *j, uint64_t t)
{
    j->t_measure = t;
    j->next_sample = UINT64_MAX;
    for (unsigned k = 0; k < j->nsmp; k++) {
        struct iol_sampler *sp = &j->smp[k];
        sp->base = sp->interval = k ? j->cfg.iops_interval_ns : j->cfg.sample_interval_ns;
        sp->next = sp->base ? t + sp->base : UINT64_MAX;
        sp->last_t = sp->entry_t = t;
        if (sp->next < j->next_sample)
            j->next_sample = sp->next;
    }
    long ru[5];
    rusage_now(ru);
    j->ru_utime_ns = ru[0];
    j->ru_stime_ns = ru[1];
    j->ru_ctx = ru[2];
    j->ru_majf = ru[3];
    j->ru_minf = ru[4];
}

void iol_stats_close(struct iol_job *j)
{
    for (unsigned k = 0; k < j->nsmp; k++) {
        struct iol_sampler *sp = &j->smp[k];
        if (!sp->base || j->t_end <= sp->entry_t)
            continue;
        while (j->t_end >= sp->next)
            tick_sample(j, sp, sp->next, 0);
        if (j->t_end > sp->entry_t)
            tick_sample(j, sp, j->t_end, 1); /* the last, partial interval */
    }
    long ru[5];
    rusage_now(ru);
    j->usr_ns = (uint64_t)(ru[0] - j->ru_utime_ns);
    j->sys_ns = (uint64_t)(ru[1] - j->ru_stime_ns);
    j->ctx = (uint64_t)(ru[2] - j->ru_ctx);
    j->majf = (uint64_t)(ru[3] - j->ru_majf);
    j->minf = (uint64_t)(ru[4] - j->ru_minf);
}
