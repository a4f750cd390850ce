/* Creating a job: the config is validated, everything the run needs is allocated, the engine is set up.
 * Nothing is allocated after this (the loop uses only what is made here). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
#include "files.h"
#include "job.h"
#include "randmap.h"

static int iol_job_fail_free(struct iol_job *j, int r);

static int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return IOL_EINVAL;
}

static int setup_dir(struct iol_job *j, int d, char *err, size_t errlen)
{
    const struct iol_config *c = &j->cfg;
    struct iol_dir *dr = &j->dir[d];
    const char *name = d == IOL_DDIR_TRIM ? "trim" : d ? "write" : "read";
    dr->enabled = 1;
    if (d == IOL_DDIR_TRIM) {
        /* trims take one block size (the plan refuses bsrange and bssplit for them) */
        dr->bs_min = dr->bs_max = c->trim_bs;
        if (dr->bs_min == 0 || dr->bs_min > IOL_MAX_BS)
            return fail(err, errlen, "trim block size %llu is invalid (need 1..%llu)",
                        (unsigned long long)dr->bs_min, (unsigned long long)IOL_MAX_BS);
        dr->bs_gran = dr->bs_min;
        dr->bs_steps = 1;
        dr->ba = c->trim_blockalign ? c->trim_blockalign : dr->bs_min;
        return IOL_OK;
    }
    if (c->bssplit_n[d] > IOL_BSSPLIT_MAX)
        return fail(err, errlen, "bssplit_n[%d] is %u, at most %d entries allowed", d, c->bssplit_n[d],
                    IOL_BSSPLIT_MAX);
    if (c->bssplit_n[d]) {
        uint32_t cum = 0;
        dr->nsplit = c->bssplit_n[d];
        dr->bs_min = UINT64_MAX;
        dr->bs_max = 0;
        for (unsigned i = 0; i < dr->nsplit; i++) {
            uint64_t bs = c->bssplit_bs[d * IOL_BSSPLIT_MAX + i];
            uint32_t perc = c->bssplit_perc[d * IOL_BSSPLIT_MAX + i];
            if (bs == 0 || bs > IOL_MAX_BS)
                return fail(err, errlen, "%s bssplit entry %u: block size %llu out of range (1..%llu)", name,
                            i, (unsigned long long)bs, (unsigned long long)IOL_MAX_BS);
            if (perc > 100)
                return fail(err, errlen, "%s bssplit entry %u: percentage %u > 100", name, i, perc);
            cum += perc;
            dr->split_bs[i] = bs;
            dr->split_cum[i] = cum;
            if (bs < dr->bs_min)
                dr->bs_min = bs;
            if (bs > dr->bs_max)
                dr->bs_max = bs;
        }
        if (cum != 100)
            return fail(err, errlen, "%s bssplit percentages sum to %u, expected 100", name, cum);
        dr->bs_steps = 1;
        dr->bs_gran = dr->bs_min;
    } else {
        dr->bs_min = c->bs_min[d];
        dr->bs_max = c->bs_max[d];
        if (dr->bs_min == 0 || dr->bs_min > dr->bs_max || dr->bs_max > IOL_MAX_BS)
            return fail(err, errlen, "%s block size range %llu..%llu is invalid (need 1 <= min <= max <= %llu)",
                        name, (unsigned long long)dr->bs_min, (unsigned long long)dr->bs_max,
                        (unsigned long long)IOL_MAX_BS);
        dr->bs_gran = c->blockalign[d] ? c->blockalign[d] : dr->bs_min;
        dr->bs_steps = (dr->bs_max - dr->bs_min) / dr->bs_gran + 1;
    }
    dr->ba = c->blockalign[d] ? c->blockalign[d] : dr->bs_min;
    return IOL_OK;
}

static int validate_and_setup(struct iol_job *j, const struct iol_file_spec *files, size_t nfiles, char *err,
                              size_t errlen)
{
    struct iol_config *c = &j->cfg;
    if (c->magic != IOL_CONFIG_MAGIC)
        return fail(err, errlen, "config magic is 0x%08X, expected 0x%08X (config packed for another build?)",
                    c->magic, IOL_CONFIG_MAGIC);
    if (c->size != sizeof(struct iol_config))
        return fail(err, errlen, "config size field is %u, expected %zu", c->size, sizeof(struct iol_config));
    j->eng = iol_engine_get(c->engine);
    if (!j->eng)
        return fail(err, errlen, "unknown engine %u (known: 0 = psync, 1 = libaio, 2 = io_uring)", c->engine);
    j->eng_sync = !!(j->eng->flags & IOL_ENGINE_SYNC);
    if (c->ddir_mask == 0 || (c->ddir_mask & ~7u) || c->ddir_mask == 5 || c->ddir_mask == 7 ||
        (c->ddir_mask == 6) != (c->trimwrite != 0))
        return fail(err, errlen,
                    "ddir_mask is %u (trimwrite %u), expected 1 (read), 2 (write), 3 (both), 4 (trim) or 6 "
                    "(trimwrite, with trimwrite set)",
                    c->ddir_mask, c->trimwrite);
    if (c->rwmix_read > 100)
        return fail(err, errlen, "rwmix_read is %u, expected a percentage 0..100", c->rwmix_read);
    if ((int64_t)c->rw_hole > (1ll << 60) || (int64_t)c->rw_hole < -(1ll << 60))
        return fail(err, errlen, "rw_hole %lld is too large", (long long)c->rw_hole);
    if (c->perc_rand[0] > 100 || c->perc_rand[1] > 100)
        return fail(err, errlen, "perc_rand %u/%u: expected percentages 0..100", c->perc_rand[0], c->perc_rand[1]);
    if (c->rand_dist > 5)
        return fail(err, errlen, "rand_dist is %u, expected 0..5", c->rand_dist);
    if (c->fst_mode > 5)
        return fail(err, errlen, "fst_mode is %u, expected 0..5", c->fst_mode);
    for (int i = 0; i < 2 * IOL_ZONE_TABLE; i++)
        if (c->zone_lo[i] > c->zone_hi[i] || (c->rand_dist == 4 && c->zone_hi[i] > 100))
            return fail(err, errlen, "zone table entry %d: %llu..%llu is not a range", i,
                        (unsigned long long)c->zone_lo[i], (unsigned long long)c->zone_hi[i]);
    if (c->zonemode_strided && (c->zone_size == 0 || c->zone_range == 0))
        return fail(err, errlen, "zonemode strided needs zone_size and zone_range");
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        if (c->ddir_mask & (1u << d)) {
            int r = setup_dir(j, d, err, errlen);
            if (r)
                return r;
        }
    }
    uint64_t unit = UINT64_MAX, biggest = 0;
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        if (!j->dir[d].enabled)
            continue;
        if (j->dir[d].bs_min < unit)
            unit = j->dir[d].bs_min;
        if (j->dir[d].bs_max > biggest)
            biggest = j->dir[d].bs_max;
    }
    j->unit = unit;
    j->unit_pow2 = is_pow2(unit);
    j->unit_shift = j->unit_pow2 ? (unsigned)__builtin_ctzll(unit) : 0;
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        uint64_t ba = d < 2 ? c->blockalign[d] : c->trim_blockalign;
        /* offsets are multiples of the unit already: extra alignment only if blockalign does not
         * divide it */
        j->dir[d].align = (ba > 1 && unit % ba) ? ba : 0;
    }
    if (c->max_bs < biggest)
        return fail(err, errlen, "max_bs %llu is smaller than the largest block size %llu",
                    (unsigned long long)c->max_bs, (unsigned long long)biggest);
    if (c->max_bs > IOL_MAX_BS)
        return fail(err, errlen, "max_bs %llu is too large (at most %llu)", (unsigned long long)c->max_bs,
                    (unsigned long long)IOL_MAX_BS);
    if (c->io_size == 0)
        return fail(err, errlen, "io_size is 0 (need the bytes per loop)");
    if (!c->time_based && c->loops == 0)
        return fail(err, errlen, "loops is 0 (need at least 1 unless time_based)");
    j->rw_seq_nr = c->rw_seq_nr; /* 0: never a new random offset (fio) */
    j->seq_nr_left = 1;         /* the first I/O takes a random offset */
    /* the plan decided the depth and fio's batch fixups (iolab.plan); C checks, it does not decide again */
    j->depth = c->iodepth ? c->iodepth : 1;
    if (j->depth > iol_engine_max_depth(c->engine))
        return fail(err, errlen, "iodepth %u is too large (at most %u)", c->iodepth,
                    iol_engine_max_depth(c->engine));
    if (c->iodepth_batch_submit > j->depth || c->iodepth_low > j->depth)
        return fail(err, errlen, "iodepth_batch_submit %u / iodepth_low %u: more than iodepth %u",
                    c->iodepth_batch_submit, c->iodepth_low, j->depth);
    if (c->iodepth_batch_complete_max < c->iodepth_batch_complete_min)
        return fail(err, errlen, "iodepth_batch_complete_max %u is below iodepth_batch_complete_min %u",
                    c->iodepth_batch_complete_max, c->iodepth_batch_complete_min);
    j->batch_submit = c->iodepth_batch_submit ? c->iodepth_batch_submit : j->depth; /* 0: the depth */
    j->depth_low = c->iodepth_low ? c->iodepth_low : j->depth;                      /* 0: the depth */
    j->batch_min = c->iodepth_batch_complete_min;
    j->batch_max = c->iodepth_batch_complete_max;
    if (c->poll_mode > IOL_POLL_ADAPTIVE)
        return fail(err, errlen, "poll_mode is %u, expected 0 (off), 1 (on) or 2 (adaptive)", c->poll_mode);
    if (c->poll_mode != IOL_POLL_OFF && j->eng_sync)
        return fail(err, errlen, "completion polling needs an asynchronous engine (libaio, io_uring), not %s",
                    j->eng->name);
    if (c->poll_mode != IOL_POLL_OFF && c->poll_max_ns == 0)
        return fail(err, errlen, "poll_max_ns is 0: polling would never poll");
    if (c->poll_max_ns > 10000000000ull)
        return fail(err, errlen, "poll_max_ns %llu is too large (at most 10 s)", (unsigned long long)c->poll_max_ns);
    if (c->rate_process > 1)
        return fail(err, errlen, "rate_process is %u, expected 0 (linear) or 1 (poisson)", c->rate_process);
    for (int d = 0; d < 2; d++) {
        if (c->rate_bps[d] && (c->ddir_mask & (1u << d))) {
            j->rated = 1;
            if (c->rate_process == 1 && (c->rate_min_bs[d] == 0 || c->rate_bps[d] < c->rate_min_bs[d]))
                return fail(err, errlen, "%s rate %llu B/s is below one I/O (%llu bytes) per second",
                            d ? "write" : "read", (unsigned long long)c->rate_bps[d],
                            (unsigned long long)c->rate_min_bs[d]);
        }
    }
    if (c->thinktime_spin_ns > c->thinktime_ns)
        return fail(err, errlen, "thinktime_spin (%llu ns) is longer than thinktime (%llu ns)",
                    (unsigned long long)c->thinktime_spin_ns, (unsigned long long)c->thinktime_ns);
    if (c->thinktime_blocks_type > 1)
        return fail(err, errlen, "thinktime_blocks_type is %u, expected 0 (complete) or 1 (issue)",
                    c->thinktime_blocks_type);
    for (int d = 0; d < 2; d++) {
        if (c->ignore_error_n[d] > IOL_IGNORE_ERROR_MAX)
            return fail(err, errlen, "ignore_error_n[%d] is %u, at most %d errnos allowed", d, c->ignore_error_n[d],
                        IOL_IGNORE_ERROR_MAX);
        if (c->max_latency_ns[d] || c->rate_min_bps[d] || c->rate_min_iops[d])
            j->checks = 1;
    }
    if (j->checks && (c->rate_min_bps[0] | c->rate_min_bps[1] | c->rate_min_iops[0] | c->rate_min_iops[1]) &&
        c->rate_cycle_ns < 1000000)
        return fail(err, errlen, "rate_cycle_ns %llu is below 1 ms", (unsigned long long)c->rate_cycle_ns);

    if (nfiles == 0)
        return fail(err, errlen, "no files: the file list must not be empty");
    if (nfiles > IOL_MAX_FILES)
        return fail(err, errlen, "%zu files, at most %u allowed", nfiles, IOL_MAX_FILES);
    for (size_t i = 0; i < nfiles; i++) {
        const struct iol_file_spec *fs = &files[i];
        if (fs->fd < 0 || fcntl(fs->fd, F_GETFD) < 0)
            return fail(err, errlen, "files[%zu]: fd %d is not an open file descriptor", i, fs->fd);
        if (fs->size == 0)
            return fail(err, errlen, "files[%zu]: region size is 0", i);
        if (fs->offset > (uint64_t)INT64_MAX || fs->size > (uint64_t)INT64_MAX - fs->offset)
            return fail(err, errlen, "files[%zu]: region %llu+%llu is beyond the largest file offset", i,
                        (unsigned long long)fs->offset, (unsigned long long)fs->size);
        /* a region smaller than a block is fio's too: the blocks that do not fit are not issued */
    }
    return IOL_OK;
}

int iol_job_create(struct iol_job **out, const void *cfg, size_t cfg_len, const struct iol_file_spec *files,
                   size_t nfiles, char *err, size_t errlen)
{
    return iol_job_create_ex(out, cfg, cfg_len, files, nfiles, NULL, 0, err, errlen);
}

int iol_job_create_ex(struct iol_job **out, const void *cfg, size_t cfg_len, const struct iol_file_spec *files,
                      size_t nfiles, const int *engine_fds, size_t nengine_fds, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg_len != sizeof(struct iol_config))
        return fail(err, errlen, "config is %zu bytes, expected %zu (packed for another build of iolab._core?)",
                    cfg_len, sizeof(struct iol_config));
    struct iol_job *j = calloc(1, sizeof(*j));
    if (!j)
        return IOL_ENOMEM;
    memcpy(&j->cfg, cfg, sizeof(j->cfg));
    for (int d = 0; d < IOL_DDIR_COUNT; d++) {
        iol_hist_reset(&j->ds[d].lat);
        iol_hist_reset(&j->ds[d].clat);
        iol_hist_reset(&j->ds[d].slat);
    }
    j->error_ddir = -1;
    atomic_init(&j->stop, 0);
    atomic_init(&j->phase, IOL_PHASE_SETUP);
    for (int d = 0; d < IOL_DDIR_IO; d++) {
        atomic_init(&j->prog_ios[d], 0);
        atomic_init(&j->prog_bytes[d], 0);
    }

    int r = validate_and_setup(j, files, nfiles, err, errlen);
    if (r) {
        free(j);
        return r;
    }
    const struct iol_config *c = &j->cfg;
    iol_seed_pattern(j);
    iol_rng_seed(&j->rng_buf, c->seed, RNG_STREAM_BUF);
    iol_rng_seed(&j->rng_rate, c->seed, RNG_STREAM_RATE);
    iol_poll_init(&j->poll, c->poll_mode, c->poll_max_ns, c->poll_grow, c->poll_shrink);

    r = IOL_ENOMEM;
    j->nfiles = (unsigned)nfiles;
    j->files = calloc(nfiles, sizeof(*j->files));
    if (!j->files)
        goto fail;
    int use_map = c->random && !c->norandommap && c->rand_dist == 0; /* fio: no map but for uniform */
    double dist_val = bits_to_double(c->rand_dist_val), center = bits_to_double(c->rand_center);
    for (size_t i = 0; i < nfiles; i++) {
        struct iol_file *f = &j->files[i];
        f->fd = files[i].fd;
        struct stat st;
        f->is_block = fstat(f->fd, &st) == 0 && S_ISBLK(st.st_mode);
        f->start = f->base = files[i].offset;
        f->size = files[i].size;
        off_t end = files[i].file_size ? (off_t)files[i].file_size : lseek(f->fd, 0, SEEK_END);
        f->real_size = end > 0 && (uint64_t)end > f->start + f->size ? (uint64_t)end : f->start + f->size;
        if (c->rand_dist >= 1 && c->rand_dist <= 3) {
            uint64_t span = f->size < f->real_size ? f->size : f->real_size;
            iol_dist_init(&f->dist, (int)c->rand_dist, (span + j->unit - 1) / j->unit, dist_val, center, 1, &j->rng_off);
        }
        f->nblocks = f->size / j->unit;
        if (use_map) {
            f->map_words = (f->nblocks + 63) / 64;
            f->summary_words = (f->map_words + 63) / 64;
            f->map = malloc(f->map_words * sizeof(uint64_t));
            f->summary = malloc(f->summary_words * sizeof(uint64_t));
            if (!f->map || !f->summary)
                goto fail;
            iol_map_reset(f);
        }
    }

    if (c->fst_mode >= 3)
        iol_dist_init(&j->fst_dist, (int)c->fst_mode - 3 + 1, (uint64_t)nfiles << FSERVICE_SHIFT,
                  bits_to_double(c->fst_val), center, 0, &j->rng_file);

    j->ios = calloc(j->depth, sizeof(*j->ios));
    j->free_ios = calloc(j->depth, sizeof(*j->free_ios));
    j->reaped = calloc(j->depth, sizeof(*j->reaped));
    if (!j->ios || !j->free_ios || !j->reaped)
        goto fail;
    j->buflen = (size_t)((c->max_bs + 4095) & ~4095ull);
    if (posix_memalign(&j->bufmem, 4096, j->buflen * 2 * j->depth)) {
        j->bufmem = NULL;
        goto fail;
    }
    for (unsigned i = 0; i < j->depth; i++) {
        char *rbuf = (char *)j->bufmem + (size_t)i * 2 * j->buflen;
        char *wbuf = rbuf + j->buflen;
        memset(rbuf, 0, j->buflen); /* touch every page now, not in the measured loop */
        if (c->zero_buffers)
            memset(wbuf, 0, j->buflen);
        else
            iol_rng_fill(&j->rng_buf, wbuf, j->buflen);
        j->ios[i].index = (uint16_t)i;
        j->ios[i].buf = rbuf; /* read buffer; the write buffer follows it */
        j->free_ios[i] = &j->ios[j->depth - 1 - i];
    }
    j->nfree = j->depth;

    if (c->verify) {
        /* the log holds every write of the job: io_size x loops bytes of the smallest write */
        uint64_t cap = 0;
        if (c->ddir_mask & 2) {
            if (c->time_based)
                return iol_job_fail_free(j, fail(err, errlen, "verify with time_based is not implemented"));
            cap = c->io_size / j->dir[1].bs_min * (c->loops ? c->loops : 1) + 2;
            if (c->number_ios && c->number_ios * c->loops < cap)
                cap = c->number_ios * c->loops + 2;
            if (cap > IOL_VLOG_MAX)
                return iol_job_fail_free(
                    j, fail(err, errlen,
                            "verify: %llu blocks to remember, at most %llu (use a larger bs or a smaller size)",
                            (unsigned long long)cap, (unsigned long long)IOL_VLOG_MAX));
        }
        int ve = iol_verify_init(j, cap, err, errlen);
        if (ve == ENOMEM)
            goto fail;
        if (ve)
            return iol_job_fail_free(j, IOL_EINVAL);
    }

    /* bandwidth samples, and IOPS samples of their own when iopsavgtime differs from bwavgtime */
    j->nsmp = c->iops_interval_ns && c->iops_interval_ns != c->sample_interval_ns ? 2 : 1;
    for (unsigned k = 0; k < j->nsmp; k++) {
        j->smp[k].buf = calloc(IOL_SAMPLES_CAP, sizeof(*j->smp[k].buf));
        if (!j->smp[k].buf)
            goto fail;
    }

    struct iol_engine_file *ef = calloc(nfiles, sizeof(*ef));
    if (!ef)
        goto fail;
    for (size_t i = 0; i < nfiles; i++)
        ef[i].fd = files[i].fd;
    struct iol_engine_env env = {
        .cfg = c,
        .files = ef,
        .nfiles = (unsigned)nfiles,
        .depth = j->depth,
        .ios = j->ios,
        .bufmem = j->bufmem,
        .slot_len = 2 * j->buflen,
        .poll = &j->poll,
        .engine_fds = engine_fds,
        .nengine_fds = (unsigned)nengine_fds,
    };
    int er = j->eng->init(&env, &j->eng_state, err, errlen);
    free(ef);
    if (er) {
        r = IOL_EENGINE;
        j->eng = NULL;
        goto fail;
    }
    *out = j;
    return IOL_OK;

fail:
    iol_job_destroy(j);
    return r;
}

static int iol_job_fail_free(struct iol_job *j, int r)
{
    j->eng = NULL; /* the engine is not set up yet */
    iol_job_destroy(j);
    return r;
}

void iol_job_destroy(struct iol_job *j)
{
    if (!j)
        return;
    if (j->eng && j->eng->cleanup)
        j->eng->cleanup(j->eng_state);
    if (j->files) {
        for (unsigned i = 0; i < j->nfiles; i++) {
            free(j->files[i].map);
            free(j->files[i].summary);
        }
    }
    free(j->files);
    free(j->ios);
    free(j->free_ios);
    free(j->reaped);
    free(j->bufmem);
    free(j->smp[0].buf);
    free(j->smp[1].buf);
    iol_verify_free(j);
    free(j);
}
