/* The job loop: the next I/O, issuing and reaping, phases (ramp, measurement), the run.
 *
 * Its parts live next to it, one job each: job_create.c (validation, allocation), offsets.h (offsets and
 * block sizes), randmap.h/.c (the random map), dist.h/.c (zipf, pareto, normal), files.h/.c (file
 * choice, passes), rate.h/.c (rate limiting, think time), stats.h/.c (accounting, samples), errors.h/.c
 * (error handling and checks). What runs for every I/O is static inline in those headers, so the hot
 * path makes no calls across files.
 *
 * Nothing here allocates after iol_job_create(): the hot path (prep_next, the engine's queue(),
 * complete_io) touches only preallocated per-job memory, reads the clock twice per I/O and makes no
 * system call besides the I/O itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "files.h"
#include "job.h"
#include "jobstate.h"
#include "offsets.h"
#include "rate.h"
#include "stats.h"

/* fio's scramble_buffers: a write buffer reused without refill gets every 512-byte sector stamped with
 * its offset and a running count, so no two written sectors are alike (dedupe can't fold them). */
static inline void scramble(struct iol_job *j, struct iol_io *io)
{
    uint64_t stamp = ++j->scramble_seq;
    for (uint64_t s = 0; s + 16 <= io->len; s += 512) {
        uint64_t words[2] = {io->offset + s, stamp};
        memcpy((char *)io->buf + s, words, sizeof(words));
    }
}

/* fio's rule for fsync=N / fdatasync=N: before each I/O of a job that writes, a sync is due when the
 * writes issued so far (all loops) are a non-zero multiple of N and the last I/O completed was not a
 * sync. So no sync follows the job's last write, a loop that ends on one starts the next with a second
 * one, reads of a mixed job are each followed by one while the count stays a multiple, and with writes
 * in flight (iodepth > 1) some are skipped. Returns the op, or 0. */
static inline uint8_t sync_due(const struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (LIKELY(!c->fsync_blocks && !c->fdatasync_blocks) || j->last_was_sync || !(c->ddir_mask & 2) ||
        !j->writes_issued || j->vfy.phase)
        return 0;
    if (c->fsync_blocks && j->writes_issued % c->fsync_blocks == 0)
        return IOL_OP_FSYNC;
    if (c->fdatasync_blocks && j->writes_issued % c->fdatasync_blocks == 0)
        return IOL_OP_FDATASYNC;
    return 0;
}

static inline void prep_sync(struct iol_job *j, struct iol_io *io, uint8_t op, uint32_t file)
{
    io->op = op;
    io->ddir = IOL_DDIR_SYNC;
    io->file = file;
    io->fd = j->files[file].fd;
    io->offset = 0;
    io->len = 0;
}

/* A read of the oldest logged write not read back yet (verify phase, verify_backlog); 0 when there is
 * none, or when that write has not completed. */
static int vfy_prep_read(struct iol_job *j, struct iol_io *io)
{
    struct iol_verify *v = &j->vfy;
    while (v->head < v->tail && (v->log[v->head].state & IOL_VLOG_DROPPED))
        v->head++;
    if (v->head >= v->tail || (v->log[v->head].state & IOL_VLOG_INFLIGHT))
        return 0;
    const struct iol_vlog *e = &v->log[v->head++];
    io->op = IOL_OP_READ;
    io->ddir = IOL_DDIR_READ;
    io->file = e->file;
    io->fd = j->files[e->file].fd;
    io->offset = e->offset;
    io->len = e->len;
    io->buf = (char *)j->bufmem + (size_t)io->index * 2 * j->buflen;
    v->slot_verify[io->index] = 1;
    v->slot_numberio[io->index] = e->numberio | 0x80000000u;
    v->slot_seed[io->index] = e->seed;
    v->last_ddir = IOL_DDIR_READ;
    return 1;
}

/* fio's verify_backlog: once the log holds a multiple of verify_backlog writes (and the last I/O was
 * not a verify read), a batch of verify_backlog_batch (default verify_backlog) reads back the oldest. */
static int vfy_backlog(struct iol_job *j, struct iol_io *io)
{
    struct iol_verify *v = &j->vfy;
    uint64_t len = v->tail - v->head;
    if (!len)
        return 0;
    if (!v->backlog_left) {
        if (len % j->cfg.verify_backlog || v->last_ddir == IOL_DDIR_READ)
            return 0;
        v->backlog_left = j->cfg.verify_backlog_batch ? j->cfg.verify_backlog_batch : j->cfg.verify_backlog;
    }
    if (!vfy_prep_read(j, io))
        return 0;
    v->backlog_left--;
    return 1;
}

/* Fill io with the next I/O to issue; 0 when there is none left. */
static inline int prep_next(struct iol_job *j, struct iol_io *io)
{
    const struct iol_config *c = &j->cfg;
    uint64_t off = 0, len = 0;
    int d;
    unsigned fi;
    unsigned failures = 0;
    if (UNLIKELY(j->vfy.phase))
        return vfy_prep_read(j, io);
    for (;;) {
        /* fio's issue limits: (io_size or size) x loops bytes, number_ios x loops I/Os (the ramp's
         * I/O included, as in fio) */
        /* trimwrite: the bytes are the writes' (fio), and number_ios counts both halves of each pair */
        if (!c->time_based && (j->total_bytes >= c->io_size * c->loops ||
                               (c->number_ios && j->total_ios >= (c->number_ios << c->trimwrite) * c->loops)))
            return 0;
        uint8_t sop = sync_due(j);
        if (UNLIKELY(sop)) {
            prep_sync(j, io, sop, j->sync_wfile);
            return 1;
        }
        if (UNLIKELY(c->verify_backlog) && j->vfy.log && vfy_backlog(j, io))
            return 1;
        fi = next_file(j);
        if (fi == UINT32_MAX) {
            if (!iol_next_pass(j))
                return 0;
            continue;
        }
        struct iol_file *f = &j->files[fi];
        if (c->ddir_mask == 3) {
            if (j->mix_issues[j->mix_dir] >= j->mix_quota) {
                uint32_t v = iol_taus88_between(&j->mix_rng, 1, 100);
                int nd = v <= c->rwmix_read ? IOL_DDIR_READ : IOL_DDIR_WRITE;
                if (nd != j->mix_dir) {
                    /* fio sizes the new run from the old direction's count and the new one's share */
                    uint64_t share = nd == IOL_DDIR_READ ? c->rwmix_read : 100 - c->rwmix_read;
                    j->mix_quota = j->mix_issues[j->mix_dir] * share / 100;
                }
                j->mix_dir = nd;
            }
            d = j->mix_dir;
        } else if (UNLIKELY(c->trimwrite)) {
            /* fio: a trim when the last write started where the last trim did, else the write */
            d = f->tw_write_start == f->tw_trim_start ? IOL_DDIR_TRIM : IOL_DDIR_WRITE;
            if (d == IOL_DDIR_WRITE && c->random) {
                /* randtrimwrite: the write covers the block just trimmed */
                off = f->tw_trim_start;
                len = f->tw_trim_len;
                f->tw_write_start = off;
                break;
            }
        } else {
            d = __builtin_ctz(c->ddir_mask); /* one direction: bit 0 read, 1 write, 2 trim */
        }
        if (LIKELY(fill_io(j, f, d, &off, &len))) {
            if (UNLIKELY(c->trimwrite)) {
                if (d == IOL_DDIR_TRIM) {
                    /* a random trim on the block of the last pair: the write must still follow (fio) */
                    if (f->tw_trim_start == off)
                        f->tw_write_start--;
                    f->tw_trim_start = off;
                    f->tw_trim_len = len;
                } else {
                    f->tw_write_start = off;
                }
            }
            break;
        }
        if (c->time_based && c->random) {
            /* fio starts a used-up file of a time_based random job over at once (and drops the cache
             * of a buffered one) */
            file_reset(j, f);
            if (!c->direct)
                iol_drop_cache(j, f);
            if (fill_io(j, f, d, &off, &len))
                break;
        }
        if (c->fst_mode >= FST_ZIPF) {
            /* non-uniform file choice: a file that ran out starts over (fio), it is never done */
            file_reset(j, f);
            if (++failures > 2 * j->nfiles + 16)
                return 0;
        } else {
            f->done = 1;
            j->files_done++;
        }
    }
    struct iol_file *f = &j->files[fi];
    if (c->ddir_mask == 3 && d < 2)
        j->mix_issues[d]++;
    j->pass_bytes += len;
    j->pass_ios++;
    if (LIKELY(!c->trimwrite) || d == IOL_DDIR_WRITE)
        j->total_bytes += len;
    j->total_ios++;

    char *rbuf = (char *)j->bufmem + (size_t)io->index * 2 * j->buflen;
    io->op = d == IOL_DDIR_TRIM ? IOL_OP_TRIM : (uint8_t)d;
    io->ddir = (uint8_t)d;
    io->blockdev = (uint8_t)f->is_block;
    io->file = fi;
    io->fd = f->fd;
    io->offset = off;
    io->len = len;
    if (UNLIKELY(c->verify)) {
        j->vfy.last_ddir = d;
        j->vfy.slot_verify[io->index] = j->vfy.read_job;
        j->vfy.slot_numberio[io->index] = 0;
    }
    if (d == IOL_DDIR_WRITE) {
        j->writes_issued++;
        j->sync_wfile = fi;
        io->buf = rbuf + j->buflen;
        if (UNLIKELY(c->verify))
            iol_verify_fill(j, io); /* header, checksum and payload; logged to be read back */
        else if (c->refill_buffers && !c->zero_buffers)
            iol_rng_fill(&j->rng_buf, io->buf, len);
        else if (j->cfg.scramble_buffers && !j->cfg.zero_buffers)
            scramble(j, io);
    } else {
        io->buf = rbuf;
    }
    return 1;
}

static void update_next_event(struct iol_job *j)
{
    j->next_event = j->deadline < j->next_sample ? j->deadline : j->next_sample;
}

/* The ramp is over: statistics start again, but the I/O carries on where it is. As in fio, what the ramp
 * read or wrote counts against size and loops: a pass is not started over. */
static void begin_measure(struct iol_job *j, uint64_t t)
{
    iol_reset_stats(j);
    j->writes_issued = 0; /* fio's reset_all_stats: the count of writes starts again */
    j->mix_issues[0] = j->mix_issues[1] = 0; /* and so do fio's io_issues, */
    j->mix_quota = 0;                         /* and its rwmix_issues */
    j->last_was_sync = 0;
    iol_start_schedule(j, t);
    iol_start_clock(j, t);
    j->deadline = j->cfg.runtime_ns ? t + j->cfg.runtime_ns : UINT64_MAX;
    update_next_event(j);
    j->ramp_done = 1;
    atomic_store_explicit(&j->phase, IOL_PHASE_MEASURE, memory_order_relaxed);
}

enum { EV_ACCOUNT = 0, EV_FINISH = 1, EV_DISCARD = 2 };

/* Slow path: t passed the ramp end, a sample boundary or the deadline. */
static int handle_event(struct iol_job *j, uint64_t t)
{
    if (atomic_load_explicit(&j->phase, memory_order_relaxed) == IOL_PHASE_RAMP) {
        if (t >= j->deadline) {
            begin_measure(j, t);
            return EV_DISCARD; /* this I/O was issued during the ramp */
        }
        if (t >= j->next_sample) /* kept in case the job ends before its ramp does */
            iol_take_samples(j, t);
        update_next_event(j);
        return EV_ACCOUNT;
    }
    if (t >= j->next_sample)
        iol_take_samples(j, t);
    update_next_event(j);
    return t >= j->deadline ? EV_FINISH : EV_ACCOUNT;
}

/* A write completed: its log entry may be read back now (a failed write is not read back, as fio
 * drops it from its log). */
static inline void vfy_write_done(struct iol_job *j, const struct iol_io *io)
{
    struct iol_verify *v = &j->vfy;
    uint32_t at = v->slot_write[io->index];
    if (!at)
        return;
    v->slot_write[io->index] = 0;
    v->log[at - 1].state = io->error ? IOL_VLOG_DROPPED : 0;
}

/* A read to check completed (and was accounted, as fio counts verify reads as reads). Nonzero when the
 * job must end: a bad block is an EILSEQ error of the read (continue_on_error=verify lets it pass), and
 * verify_fatal stops the job at the first one. */
static int vfy_read_done(struct iol_job *j, struct iol_io *io)
{
    j->vfy.slot_verify[io->index] = 0;
    if (LIKELY(!iol_verify_check(j, io)))
        return 0;
    io->error = EILSEQ;
    io->error_offset = j->vfy.fail_offset;
    int end = iol_io_error(j, io, 0);
    io->error = 0;
    if (end) {
        memcpy(j->error_msg, j->vfy.msg, sizeof(j->error_msg));
        j->error_offset = j->vfy.fail_offset;
    }
    return end || (j->vfy.flags & IOL_VF_FATAL);
}

/* Returns nonzero when the job must end. */
static inline int complete_io(struct iol_job *j, struct iol_io *io, uint64_t t)
{
    j->last_was_sync = io->ddir == IOL_DDIR_SYNC;
    if (UNLIKELY(j->fsyncing)) {
        j->end_syncs++;
        return 0; /* end_fsync: fio neither counts it nor times it */
    }
    j->think_count += j->cfg.thinktime_blocks_type == 0 && io->ddir < IOL_DDIR_SYNC;
    if (UNLIKELY(j->cfg.verify) && io->ddir == IOL_DDIR_WRITE)
        vfy_write_done(j, io);
    if (UNLIKELY(io->error)) {
        if (iol_io_error(j, io, 1))
            return 1;
        /* an error let pass still moves time on: the ramp's end, samples and the deadline */
        return UNLIKELY(t >= j->next_event) && handle_event(j, t) == EV_FINISH;
    }
    int ev = EV_ACCOUNT;
    if (UNLIKELY(t >= j->next_event)) {
        ev = handle_event(j, t);
        if (ev == EV_DISCARD) {
            j->ramp_ios[io->ddir]++; /* issued during the ramp: the device saw it */
            j->ramp_bytes[io->ddir] += io->done;
            return 0;
        }
    }
    account(j, io, t);
    j->datasyncs += io->op == IOL_OP_FDATASYNC;
    if (UNLIKELY(j->cfg.verify) && io->ddir == IOL_DDIR_READ && j->vfy.slot_verify[io->index] &&
        vfy_read_done(j, io))
        return 1;
    if (UNLIKELY(j->checks) && completion_checks(j, io, t))
        return 1;
    return ev == EV_FINISH;
}

/* ------------------------------------------------------------------------------------------------ */
/* the loop
 *
 * It follows fio's do_io(): issue one I/O per turn; submit when iodepth_batch_submit I/Os are queued;
 * when the queue is full (or in fio's "polling" mode, iodepth_batch_complete_min = max = 0) reap at
 * least max(1, min(iodepth_batch_complete_min, in flight)) and at most iodepth_batch_complete_max
 * completions, and keep reaping while the queue is above iodepth_low. A sync (fsync=N, fdatasync=N)
 * first waits for the I/Os in flight, so it covers every write before it, and is waited for itself.
 * Rate limiting and think time wait for the I/Os in flight before sleeping, as fio does. */

/* Submit what was queued. 0, or -1 after an engine error. */
static inline int commit(struct iol_job *j)
{
    if (!j->uncommitted)
        return 0;
    j->uncommitted = 0;
    int r = j->eng->commit(j->eng_state);
    if (UNLIKELY(r < 0)) {
        iol_engine_error(j, "submitting I/O", -r);
        return -1;
    }
    j->depths.level[depth_bucket(j->inflight)] += (unsigned)r;
    j->depths.submit[count_bucket((unsigned)r)]++;
    if (j->inflight > j->depths.max_inflight)
        j->depths.max_inflight = j->inflight;
    return 0;
}

/* What reap() does with completions. */
enum reap_mode {
    REAP_DROP,      /* after an error: not counted (reported as "drained") */
    REAP_COUNT,     /* the normal path: events (samples, ramp end, deadline) and accounting */
    REAP_AFTER_END, /* in flight when the run ended: counted without events, as fio counts them */
};

/* An I/O that completes after the end (deadline, size, stop): fio counts it (bytes, ios and its
 * latency), so it is accounted, but it starts no sync and closes no interval. */
static inline void complete_after_end(struct iol_job *j, struct iol_io *io, uint64_t t)
{
    if (io->error)
        return;
    if (atomic_load_explicit(&j->phase, memory_order_relaxed) != IOL_PHASE_MEASURE) {
        j->ramp_ios[io->ddir]++; /* stopped during the ramp: the ramp's I/O */
        j->ramp_bytes[io->ddir] += io->done;
        return;
    }
    account(j, io, t);
}

/* Reap at least min and at most max completions (both clamped to what is in flight) and handle them
 * as `mode` says. 1 when the job must end (REAP_COUNT only), -1 on an engine error, else 0. */
static inline int reap(struct iol_job *j, unsigned min, unsigned max, enum reap_mode mode)
{
    if (max > j->inflight)
        max = j->inflight;
    if (min > max)
        min = max;
    if (!max)
        return 0;
    int n = j->eng->reap(j->eng_state, min, max, j->reaped);
    j->uncommitted = 0; /* reap() submits what was still queued */
    if (UNLIKELY(n < 0)) {
        iol_engine_error(j, "reaping completions", -n);
        return -1;
    }
    if (!n)
        return 0;
    uint64_t t = iol_now_ns();
    j->depths.complete[count_bucket((unsigned)n)]++;
    int end = 0;
    for (int i = 0; i < n; i++) {
        struct iol_io *io = j->reaped[i];
        j->inflight--;
        j->free_ios[j->nfree++] = io;
        if (mode == REAP_COUNT && !end) {
            if (complete_io(j, io, t))
                end = 1;
        } else if (mode == REAP_DROP) {
            if (!io->error) {
                j->drained_ios[io->ddir]++; /* done, but after an error: not in the statistics */
                j->drained_bytes[io->ddir] += io->done;
            }
        } else {
            complete_after_end(j, io, t); /* the rest of a batch that ended the job, too */
        }
    }
    return mode == REAP_COUNT && end;
}

/* Wait for everything queued or in flight. 1 if the job must end (REAP_COUNT), -1 on an engine error,
 * else 0. */
static int quiesce(struct iol_job *j, enum reap_mode mode)
{
    int end = 0;
    if (commit(j) < 0)
        return -1;
    while (j->inflight) {
        int r = reap(j, 1, j->inflight, end ? REAP_AFTER_END : mode);
        if (r < 0)
            return -1;
        if (r)
            end = 1;
    }
    return end;
}

/* fio's thinktime: wait for the I/Os in flight, then pause. */
static int think(struct iol_job *j)
{
    int r = quiesce(j, REAP_COUNT);
    if (r)
        return r;
    return iol_think_pause(j);
}

/* Issue io (prepared). 1 if the job must end, -1 on an engine error, else 0; io is back in the free
 * list unless it is in flight. */
static inline int issue(struct iol_job *j, struct iol_io *io)
{
    uint64_t t = iol_now_ns();
    uint64_t sched = t;
    if (UNLIKELY(j->rated) && io->ddir < 2 && j->cfg.rate_bps[io->ddir]) {
        uint64_t due = j->rate_origin + j->rate_next[io->ddir];
        if (due > t) {
            int r = quiesce(j, REAP_COUNT);
            if (!r)
                r = iol_sleep_until(j, due);
            if (r) {
                j->free_ios[j->nfree++] = io;
                return r;
            }
            t = iol_now_ns();
        }
        sched = rate_slot(j, io);
        uint64_t lag = t > sched ? t - sched : 0;
        if (lag > j->lag_max)
            j->lag_max = lag;
        j->lag_sum += lag;
        j->lag_n++;
    }
    if (UNLIKELY(io->op == IOL_OP_TRIM) && j->uncommitted && commit(j) < 0) {
        /* the engine does a trim at once: what was queued before it goes first (fio's FIO_Q_BUSY) */
        j->free_ios[j->nfree++] = io;
        return -1;
    }
    io->t_issue = sched;
    io->t_submit = t;
    iol_io_clear(io);
    j->think_count += j->cfg.thinktime_blocks_type == 1 && io->ddir < IOL_DDIR_SYNC;
    if (LIKELY(j->eng->queue(j->eng_state, io) == IOL_Q_COMPLETED)) {
        uint64_t tc = iol_now_ns();
        j->free_ios[j->nfree++] = io;
        j->depths.level[0]++;
        j->depths.submit[1]++;
        j->depths.complete[1]++;
        if (!j->depths.max_inflight)
            j->depths.max_inflight = 1;
        return complete_io(j, io, tc);
    }
    j->inflight++;
    if (++j->uncommitted >= j->batch_submit || io->ddir == IOL_DDIR_SYNC) {
        if (commit(j) < 0)
            return -1;
    }
    if (UNLIKELY(io->ddir == IOL_DDIR_SYNC))
        return quiesce(j, REAP_COUNT); /* a sync is a barrier: nothing is issued until it completed */
    return 0;
}

static void run_loop(struct iol_job *j)
{
    /* fio's io_in_polling(): no batch_complete limits at all means reaping after every I/O */
    const int polling = !j->eng_sync && j->batch_min == 0 && j->batch_max == 0;
    const unsigned reap_max = j->batch_max ? j->batch_max : 1;
    int more = 1;
    int count_rest = 0; /* the job ran out of I/O to issue: what is in flight still counts */

    for (;;) {
        if (more && UNLIKELY(atomic_load_explicit(&j->stop, memory_order_relaxed)))
            more = 0;
        if (more && UNLIKELY(j->cfg.thinktime_ns) && !j->vfy.phase && think_due(j)) {
            if (think(j))
                more = 0;
            continue;
        }
        if (more && j->nfree) {
            if (UNLIKELY(j->inflight && sync_due(j))) {
                if (quiesce(j, REAP_COUNT)) /* the sync must cover the writes in flight */
                    more = 0;
                continue;
            }
            struct iol_io *io = j->free_ios[--j->nfree];
            if (UNLIKELY(!prep_next(j, io))) {
                j->nfree++;
                more = 0;
                count_rest = 1;
                continue;
            }
            if (UNLIKELY(issue(j, io)))
                more = 0;
        }
        if (!more) {
            /* all issued: the rest completes normally; after the deadline or stop() the I/Os in flight
             * are still counted (as fio does), after an error they are drained uncounted */
            if (j->inflight && !j->engine_failed)
                quiesce(j, j->error ? REAP_DROP : count_rest ? REAP_COUNT : REAP_AFTER_END);
            return;
        }
        const int full = j->nfree == 0;
        if (full || polling) {
            if (commit(j) < 0) {
                more = 0;
                continue;
            }
            unsigned min = j->batch_min < j->inflight ? j->batch_min : j->inflight;
            if ((full && !min) || !j->batch_min)
                min = 1;
            do {
                int r = reap(j, min, reap_max > min ? reap_max : min, REAP_COUNT);
                if (r) {
                    more = 0;
                    break;
                }
            } while (full && j->inflight > j->depth_low);
        }
    }
}

/* verify_only: the writes are generated and logged (their seeds and numbers too), not issued. */
static void vfy_dry_run(struct iol_job *j)
{
    struct iol_verify *v = &j->vfy;
    struct iol_io *io = j->free_ios[j->nfree - 1];
    while (!atomic_load_explicit(&j->stop, memory_order_relaxed) && prep_next(j, io)) {
        j->last_was_sync = io->ddir == IOL_DDIR_SYNC;
        if (io->ddir == IOL_DDIR_WRITE && v->slot_write[io->index]) {
            v->log[v->slot_write[io->index] - 1].state = 0;
            v->slot_write[io->index] = 0;
        }
    }
}

/* fio's do_verify: flush the files and drop their cache (so the reads reach the device), then read back
 * every logged write through the job's engine; each read is checked when it completes. */
static void verify_phase(struct iol_job *j)
{
    uint64_t t0 = iol_now_ns();
    for (unsigned i = 0; i < j->nfiles; i++) {
        (void)fsync(j->files[i].fd); /* as fio, a file that cannot be synced is read back all the same */
        iol_drop_cache(j, &j->files[i]);
    }
    iol_verify_prepare_phase(j);
    j->vfy.phase = 1;
    run_loop(j);
    j->vfy.phase = 0;
    j->vfy.phase_ns = iol_now_ns() - t0;
}

/* Issue one end_fsync after the loop and wait for it. */
static void final_sync(struct iol_job *j, struct iol_io *io)
{
    if (issue(j, io) == 0 && j->inflight)
        quiesce(j, REAP_COUNT);
}

void iol_job_run(struct iol_job *j)
{
    __atomic_store_n(&j->tid, (long)syscall(SYS_gettid), __ATOMIC_RELAXED); /* read by Job.thread_id() */
    cpu_set_t cs;
    CPU_ZERO(&cs);
    if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
        for (int c = 0; c < 64; c++)
            if (CPU_ISSET(c, &cs))
                j->cpu_mask |= 1ull << c;
    int old_slack = -1;
    if (j->rated || j->cfg.thinktime_ns) {
        /* precise wakeups for rate limiting and think time (the default slack is 50 us) */
        old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    }
    j->t_start = iol_now_ns();
    j->deadline = UINT64_MAX;
    j->next_sample = UINT64_MAX;
    if (j->eng->start) {
        char ebuf[192] = "";
        int er = j->eng->start(j->eng_state, ebuf, sizeof(ebuf));
        if (er) {
            j->engine_failed = 1;
            j->error = er;
            j->error_ddir = -1;
            snprintf(j->error_msg, sizeof(j->error_msg), "%s: %s", j->eng->name, ebuf);
        }
    }
    if (!j->error) {
        if (j->cfg.ramp_ns) {
            atomic_store_explicit(&j->phase, IOL_PHASE_RAMP, memory_order_relaxed);
            j->deadline = j->t_start + j->cfg.ramp_ns;
            iol_start_clock(j, j->t_start);
            update_next_event(j);
            iol_start_pass(j);
            iol_start_schedule(j, j->t_start);
        } else {
            iol_start_pass(j);
            begin_measure(j, j->t_start);
        }
        if (UNLIKELY(j->vfy.flags & IOL_VF_ONLY) && j->vfy.log)
            vfy_dry_run(j);
        else
            run_loop(j);
    }

    j->stopped = atomic_load_explicit(&j->stop, memory_order_relaxed) != 0;
    int phase_now = atomic_load_explicit(&j->phase, memory_order_relaxed);
    /* a job whose I/O ran out before its ramp did is measured whole, as fio reports it */
    int measuring = phase_now == IOL_PHASE_MEASURE || (phase_now == IOL_PHASE_RAMP && !j->stopped);
    if (measuring && !j->error && !j->stopped) {
        /* fio issues no sync due after the last write; end_fsync, unless the last I/O was a sync */
        if (j->cfg.end_fsync && !j->last_was_sync && (j->cfg.ddir_mask & 2)) {
            j->fsyncing = 1;
            for (unsigned i = 0; i < j->nfiles && !j->error; i++) {
                struct iol_io *io = j->free_ios[--j->nfree];
                prep_sync(j, io, IOL_OP_FSYNC, i);
                final_sync(j, io);
            }
        }
        if (j->vfy.log && !j->error && iol_now_ns() < j->deadline &&
            !atomic_load_explicit(&j->stop, memory_order_relaxed))
            verify_phase(j);
    }
    j->t_end = iol_now_ns();
    if (measuring) {
        j->runtime_ns = j->t_end - j->t_measure;
        iol_stats_close(j);
    } else {
        /* ended during the ramp (or before it started): nothing was measured */
        iol_reset_stats(j);
        j->runtime_ns = 0;
    }
    if (old_slack >= 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)old_slack, 0, 0, 0);
    atomic_store_explicit(&j->phase, IOL_PHASE_DONE, memory_order_release);
}

const char *iol_job_engine_info(struct iol_job *j)
{
    if (!j->engine_info[0] && j->eng && j->eng->describe && j->eng_state)
        j->eng->describe(j->eng_state, j->engine_info, sizeof(j->engine_info));
    return j->engine_info;
}

void iol_job_stop(struct iol_job *j)
{
    atomic_store_explicit(&j->stop, 1, memory_order_relaxed);
}

void iol_job_progress(struct iol_job *j, uint64_t out[7])
{
    out[5] = atomic_load_explicit(&j->prog_ios[IOL_DDIR_TRIM], memory_order_relaxed);
    out[6] = atomic_load_explicit(&j->prog_bytes[IOL_DDIR_TRIM], memory_order_relaxed);
    out[0] = atomic_load_explicit(&j->prog_ios[0], memory_order_relaxed);
    out[1] = atomic_load_explicit(&j->prog_ios[1], memory_order_relaxed);
    out[2] = atomic_load_explicit(&j->prog_bytes[0], memory_order_relaxed);
    out[3] = atomic_load_explicit(&j->prog_bytes[1], memory_order_relaxed);
    out[4] = (uint64_t)atomic_load_explicit(&j->phase, memory_order_acquire);
}

void iol_job_set_trace(struct iol_job *j, struct iol_trace_rec *buf, size_t cap)
{
    j->trace = buf;
    j->trace_cap = buf ? cap : 0;
    j->trace_n = 0;
}
