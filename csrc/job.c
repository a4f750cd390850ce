/* The job loop: offsets, directions, block sizes, passes, phases, statistics.
 *
 * Nothing here allocates after iol_job_create(): the hot path (prep_next, the engine's queue(),
 * complete_io) touches only preallocated per-job memory, reads the clock twice per I/O and makes no
 * system call besides the I/O itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "job.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

enum { RNG_STREAM_OFFSET = 1, RNG_STREAM_MIX = 2, RNG_STREAM_BS = 3, RNG_STREAM_BUF = 4, RNG_STREAM_RATE = 5, RNG_STREAM_SEQ = 6,
       RNG_STREAM_ZONE = 7, RNG_STREAM_FILE = 8 };

#define now_ns iol_now_ns

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

/* ------------------------------------------------------------------------------------------------ */
/* random map: one bit per unit; a summary bit per map word that is full */

static void map_reset(struct iol_file *f)
{
    memset(f->map, 0, f->map_words * sizeof(uint64_t));
    memset(f->summary, 0, f->summary_words * sizeof(uint64_t));
    unsigned tail = (unsigned)(f->nblocks & 63);
    if (tail) /* units past the end of the region count as used */
        f->map[f->map_words - 1] = ~0ull << tail;
    unsigned stail = (unsigned)(f->map_words & 63);
    if (stail)
        f->summary[f->summary_words - 1] = ~0ull << stail;
    f->used = 0;
}

static inline void map_mark(struct iol_file *f, uint64_t u)
{
    uint64_t w = u >> 6, bit = 1ull << (u & 63);
    if (f->map[w] & bit)
        return;
    f->map[w] |= bit;
    f->used++;
    if (f->map[w] == ~0ull)
        f->summary[w >> 6] |= 1ull << (w & 63);
}

/* First free unit at or after u, wrapping around. The map must not be full. */
static inline uint64_t map_find_free(const struct iol_file *f, uint64_t u)
{
    uint64_t w = u >> 6;
    uint64_t bits = ~f->map[w] & (~0ull << (u & 63));
    if (LIKELY(bits))
        return (w << 6) + (uint64_t)__builtin_ctzll(bits);
    uint64_t from = w + 1; /* map word to search from */
    for (int round = 0; round < 2; round++, from = 0) {
        uint64_t sw = from >> 6;
        if (sw >= f->summary_words)
            continue;
        uint64_t sfree = ~f->summary[sw] & (~0ull << (from & 63));
        while (!sfree && ++sw < f->summary_words)
            sfree = ~f->summary[sw];
        if (sfree) {
            w = (sw << 6) + (uint64_t)__builtin_ctzll(sfree);
            return (w << 6) + (uint64_t)__builtin_ctzll(~f->map[w]);
        }
    }
    return 0; /* not reached while the map has a free unit */
}

/* ------------------------------------------------------------------------------------------------ */
/* zipf, pareto and normal generators (fio's lib/zipf.c and lib/gauss.c shapes) */

#define FSERVICE_SHIFT 10                /* non-uniform file choice: 1024 ranges per file */
#define ZIPF_MAX_TERMS 10000000ull       /* zeta(n) summed over at most this many terms */
#define FIB_HASH 0x61C8864680B583EBull   /* golden-ratio multiplier: scatters hot ranges */

enum { DIST_UNIFORM = 0, DIST_ZIPF = 1, DIST_PARETO = 2, DIST_NORMAL = 3, DIST_ZONED = 4, DIST_ZONED_ABS = 5 };
enum { FST_RR = 0, FST_SEQ = 1, FST_RANDOM = 2, FST_ZIPF = 3, FST_PARETO = 4, FST_NORMAL = 5 };

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static inline double rng_unit(struct iol_rng *r)
{
    return (double)(iol_rng_next(r) >> 11) * 0x1.0p-53; /* [0, 1) */
}

/* kind: DIST_ZIPF, DIST_PARETO or DIST_NORMAL; center < 0: none */
static void dist_init(struct iol_dist *ds, int kind, uint64_t nranges, double val, double center, int hash,
                      struct iol_rng *r)
{
    memset(ds, 0, sizeof(*ds));
    ds->nranges = nranges ? nranges : 1;
    ds->hash = hash;
    uint64_t n = ds->nranges;
    if (kind == DIST_ZIPF) {
        ds->theta = val;
        ds->zeta2 = 1.0 + pow(0.5, val);
        uint64_t terms = n < ZIPF_MAX_TERMS ? n : ZIPF_MAX_TERMS;
        for (uint64_t i = 1; i <= terms; i++)
            ds->zetan += pow(1.0 / (double)i, val);
    } else if (kind == DIST_PARETO) {
        ds->pareto_pow = log(val) / log(1.0 - val);
    } else if (val != 0.0) {
        ds->stddev = (uint64_t)ceil((double)n * val / 100.0);
        if (ds->stddev > n / 2)
            ds->stddev = n / 2;
    }
    if (kind == DIST_NORMAL) {
        /* the bell sits in the middle; a center moves it by (center - 0.5) of the range */
        int64_t shift = center < 0 ? 0 : (int64_t)((double)n * (center - 0.5));
        ds->rand_off = (uint64_t)(((shift % (int64_t)n) + (int64_t)n) % (int64_t)n);
    } else {
        ds->rand_off = center < 0 ? iol_rng_next(r) % n : (uint64_t)((double)n * center);
    }
}

static inline uint64_t dist_next(const struct iol_dist *ds, int kind, struct iol_rng *r)
{
    uint64_t n = ds->nranges, v;
    if (kind == DIST_ZIPF) {
        double u = rng_unit(r);
        double rz = u * ds->zetan;
        if (rz < 1.0) {
            v = 0;
        } else if (rz < 1.0 + pow(0.5, ds->theta)) {
            v = 1;
        } else {
            double alpha = 1.0 / (1.0 - ds->theta);
            double eta = (1.0 - pow(2.0 / (double)n, 1.0 - ds->theta)) / (1.0 - ds->zeta2 / ds->zetan);
            v = (uint64_t)((double)n * pow(eta * u - eta + 1.0, alpha));
        }
    } else if (kind == DIST_PARETO) {
        v = (uint64_t)((double)(n - 1) * pow(rng_unit(r), ds->pareto_pow));
    } else {
        /* fio's "normal": the mean of 12 uniform draws over [0, n], plus a uniform deviation */
        uint64_t sum = 0;
        for (int i = 0; i < 12; i++)
            sum += iol_rng_below(r, n + 1);
        sum = (sum + 11) / 12;
        if (ds->stddev) {
            int64_t dev = (int64_t)((double)ds->stddev * rng_unit(r)) - (int64_t)(ds->stddev / 2);
            while (dev + (int64_t)sum >= (int64_t)n)
                dev /= 2;
            sum = (uint64_t)((int64_t)sum + dev);
        }
        v = sum;
    }
    if (ds->hash)
        v *= FIB_HASH;
    return (v + ds->rand_off) % n;
}

/* The streams that choose the I/O pattern (offsets, directions, sizes, files). */
static void seed_pattern(struct iol_job *j)
{
    uint64_t seed = j->cfg.seed;
    iol_rng_seed(&j->rng_off, seed, RNG_STREAM_OFFSET);
    iol_rng_seed(&j->rng_mix, seed, RNG_STREAM_MIX);
    iol_rng_seed(&j->rng_bs, seed, RNG_STREAM_BS);
    iol_rng_seed(&j->rng_seq, seed, RNG_STREAM_SEQ);
    iol_rng_seed(&j->rng_zone, seed, RNG_STREAM_ZONE);
    iol_rng_seed(&j->rng_file, seed, RNG_STREAM_FILE);
}

/* ------------------------------------------------------------------------------------------------ */
/* creation */

static int setup_dir(struct iol_job *j, int d, char *err, size_t errlen)
{
    const struct iol_config *c = &j->cfg;
    struct iol_dir *dr = &j->dir[d];
    const char *name = d ? "write" : "read";
    dr->enabled = 1;
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
    if (c->ddir_mask == 0 || (c->ddir_mask & ~3u))
        return fail(err, errlen, "ddir_mask is %u, expected 1 (read), 2 (write) or 3 (both)", c->ddir_mask);
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
    for (int d = 0; d < 2; d++) {
        if (c->ddir_mask & (1u << d)) {
            int r = setup_dir(j, d, err, errlen);
            if (r)
                return r;
        }
    }
    uint64_t unit = UINT64_MAX, biggest = 0;
    for (int d = 0; d < 2; d++) {
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
    for (int d = 0; d < 2; d++) {
        uint64_t ba = c->blockalign[d];
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

static void fill_random(struct iol_rng *r, void *buf, uint64_t len)
{
    unsigned char *p = buf;
    while (len >= 8) {
        uint64_t v = iol_rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = iol_rng_next(r);
        memcpy(p, &v, len);
    }
}

int iol_job_create(struct iol_job **out, const void *cfg, size_t cfg_len, const struct iol_file_spec *files,
                   size_t nfiles, char *err, size_t errlen)
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
    for (int d = 0; d < 2; d++) {
        atomic_init(&j->prog_ios[d], 0);
        atomic_init(&j->prog_bytes[d], 0);
    }

    int r = validate_and_setup(j, files, nfiles, err, errlen);
    if (r) {
        free(j);
        return r;
    }
    const struct iol_config *c = &j->cfg;
    seed_pattern(j);
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
            dist_init(&f->dist, (int)c->rand_dist, (span + j->unit - 1) / j->unit, dist_val, center, 1, &j->rng_off);
        }
        f->nblocks = f->size / j->unit;
        if (use_map) {
            f->map_words = (f->nblocks + 63) / 64;
            f->summary_words = (f->map_words + 63) / 64;
            f->map = malloc(f->map_words * sizeof(uint64_t));
            f->summary = malloc(f->summary_words * sizeof(uint64_t));
            if (!f->map || !f->summary)
                goto fail;
            map_reset(f);
        }
    }

    if (c->fst_mode >= 3)
        dist_init(&j->fst_dist, (int)c->fst_mode - 3 + 1, (uint64_t)nfiles << FSERVICE_SHIFT,
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
            fill_random(&j->rng_buf, wbuf, j->buflen);
        j->ios[i].index = (uint16_t)i;
        j->ios[i].buf = rbuf; /* read buffer; the write buffer follows it */
        j->free_ios[i] = &j->ios[j->depth - 1 - i];
    }
    j->nfree = j->depth;

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
    free(j);
}

/* ------------------------------------------------------------------------------------------------ */
/* offsets: fio's rules (io_u.c get_next_offset / get_next_buflen, backend.c limits), own code */

static void file_reset(struct iol_job *j, struct iol_file *f)
{
    (void)j;
    f->last_pos[0] = f->last_pos[1] = f->base;
    if (f->map)
        map_reset(f);
}

/* fio drops a file's cached pages whenever it starts over on it (invalidate=1): a new loop reopens the
 * files, and a time_based run that wraps round a buffered file would otherwise read its own cache.
 * Errors are ignored, as fio ignores them there. */
static void drop_cache(struct iol_job *j, struct iol_file *f)
{
    if (!j->cfg.invalidate)
        return;
    if (f->is_block)
        (void)ioctl(f->fd, BLKFLSBUF, 0);
    else
        (void)posix_fadvise(f->fd, (off_t)f->base, (off_t)f->size, POSIX_FADV_DONTNEED);
}

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

static void start_pass(struct iol_job *j)
{
    j->pass_bytes = 0;
    j->pass_ios = 0;
    j->cur_file = 0;
    j->files_done = 0;
    j->fst_have = 0;
    j->zone_bytes = 0;
    for (unsigned i = 0; i < j->nfiles; i++) {
        struct iol_file *f = &j->files[i];
        f->base = f->start;
        f->done = 0;
        file_reset(j, f);
    }
}

static inline uint64_t unit_to_off(const struct iol_job *j, uint64_t u)
{
    return j->unit_pow2 ? u << j->unit_shift : u * j->unit;
}

static inline uint64_t off_to_unit(const struct iol_job *j, uint64_t off)
{
    return j->unit_pow2 ? off >> j->unit_shift : off / j->unit;
}

/* fio's get_next_seq_offset: the next sequential position (relative to base), holes applied. */
static inline int seq_pos(struct iol_job *j, struct iol_file *f, int d, uint64_t *pos)
{
    const uint64_t hole = j->cfg.rw_hole; /* two's complement */
    const int back = (int64_t)hole < 0;
    if (f->last_pos[d] >= f->real_size)
        return 1;
    uint64_t end = f->size < f->real_size ? f->size : f->real_size;
    /* backwards from a region that does not start at 0: fio starts from the region LENGTH taken as
     * an absolute offset (a quirk kept for the same offsets) */
    if (back && f->base && f->last_pos[d] == f->base)
        f->last_pos[d] = end;
    uint64_t p = f->last_pos[d] - f->base; /* unsigned wrap-around as in fio */
    if (p && hole) {
        p += hole;
        if (p >= f->real_size)
            p = back ? end + hole : f->base; /* past either end: wrap (fio's values) */
    }
    *pos = p;
    return 0;
}

/* fio's last_block: how many blocks of ba a random offset of direction d is drawn from. */
static inline uint64_t last_block(const struct iol_job *j, const struct iol_file *f, int d)
{
    uint64_t max = f->size < f->real_size ? f->size : f->real_size;
    if (j->cfg.zonemode_strided && j->cfg.zone_range)
        max = j->cfg.zone_range;
    const struct iol_dir *dr = &j->dir[d];
    if (dr->bs_min > dr->ba) {
        if (max < dr->bs_min - dr->ba)
            return 0;
        max -= dr->bs_min - dr->ba;
    }
    return max / dr->ba;
}

/* A random position (relative to base) for direction d; 1 when there is none (map full). Uniform
 * offsets keep to free blocks of the random map; the others have no map (fio turns it off). */
static inline int rand_pos(struct iol_job *j, struct iol_file *f, int d, uint64_t *pos)
{
    const struct iol_config *c = &j->cfg;
    uint64_t lastb = last_block(j, f, d);
    if (!lastb)
        return 1;
    uint64_t ba = j->dir[d].ba, b;
    switch (c->rand_dist) {
    case DIST_ZONED:
    case DIST_ZONED_ABS: {
        unsigned v = (unsigned)iol_rng_below(&j->rng_zone, 100);
        uint64_t lo = c->zone_lo[d * IOL_ZONE_TABLE + v], hi = c->zone_hi[d * IOL_ZONE_TABLE + v];
        uint64_t first, n;
        if (c->rand_dist == DIST_ZONED) {
            first = lo * lastb / 100;
            n = lastb * (hi - lo) / 100;
        } else {
            first = lo / ba;
            if (hi / ba > lastb)
                return 1; /* zones past the end (the planner refuses those) */
            n = hi / ba - first;
        }
        b = first + (n ? iol_rng_below(&j->rng_off, n) : 0);
        break;
    }
    case DIST_ZIPF:
    case DIST_PARETO:
    case DIST_NORMAL:
        b = dist_next(&f->dist, (int)c->rand_dist, &j->rng_off);
        break;
    default:
        b = iol_rng_below(&j->rng_off, lastb);
        break;
    }
    if (f->map) {
        /* fio looks the block number (in units of this direction's ba) up in the map as it is, even
         * when the map's unit is another direction's smaller block: kept for the same blocks */
        if (f->used >= f->nblocks)
            return 1;
        if (b < f->nblocks && (f->map[b >> 6] & (1ull << (b & 63))))
            b = map_find_free(f, b);
    }
    *pos = b * ba;
    return 0;
}

/* A block size for direction d at absolute offset off: fio draws again until the block fits before
 * the end of the region (0 if not even the smallest fits). */
static inline uint64_t pick_bs(struct iol_job *j, const struct iol_file *f, int d, uint64_t off)
{
    const struct iol_dir *dr = &j->dir[d];
    if (dr->bs_min == dr->bs_max)
        return dr->bs_min;
    const uint64_t limit = f->start + f->size;
    if (off + dr->bs_min > limit)
        return 0;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t len;
        if (dr->nsplit) {
            uint32_t r = (uint32_t)iol_rng_below(&j->rng_bs, 100);
            unsigned i = 0;
            while (i + 1 < dr->nsplit && r >= dr->split_cum[i])
                i++;
            /* the drawn entry, or a later one that fits (fio's scan) */
            while (i + 1 < dr->nsplit && off + dr->split_bs[i] > limit)
                i++;
            len = dr->split_bs[i];
        } else {
            /* fio's draw: min + max * u, down to a multiple of min, at most max (so the largest
             * size comes up about min/max more often than the others) */
            len = dr->bs_min + (uint64_t)((double)dr->bs_max * rng_unit(&j->rng_bs));
            len -= len % dr->bs_min;
            if (len > dr->bs_max)
                len = dr->bs_max;
        }
        if (off + len <= limit)
            return len;
    }
    return dr->bs_min;
}

/* Mark the units of a random I/O in the map; the block shrinks to the free units that follow its
 * start (fio: a block never covers units already done this pass). */
static inline uint64_t map_take(struct iol_job *j, struct iol_file *f, int d, uint64_t pos, uint64_t len)
{
    /* fio marks in units of this direction's smallest block (another quirk kept as is) */
    uint64_t bs = j->dir[d].bs_min;
    uint64_t u = j->unit_pow2 && bs == j->unit ? pos >> j->unit_shift : pos / bs;
    uint64_t want = (len + bs - 1) / bs, got = 0;
    while (got < want && u + got < f->nblocks && !(f->map[(u + got) >> 6] & (1ull << ((u + got) & 63)))) {
        map_mark(f, u + got);
        got++;
    }
    if (got && got * bs < len)
        len = got * bs;
    return len;
}

/* fio's setup_strided_zone_mode: after zone_size bytes, move to the next zone. */
static inline void strided_zone(struct iol_job *j, struct iol_file *f, int d)
{
    const struct iol_config *c = &j->cfg;
    if (j->zone_bytes >= c->zone_size) {
        j->zone_bytes = 0;
        f->base += c->zone_range + c->zone_skip;
        if (f->base >= f->real_size)
            f->base = f->start;
        f->last_pos[d] = f->base;
    }
    if (f->last_pos[d] >= f->base + c->zone_range)
        f->last_pos[d] = f->base;
    if (j->zone_bytes % c->zone_range == 0)
        file_reset(j, f);
}

/* Offset (absolute) and length of the next I/O of direction d on f; 0 when f has none left. */
static inline int fill_io(struct iol_job *j, struct iol_file *f, int d, uint64_t *offp, uint64_t *lenp)
{
    const struct iol_config *c = &j->cfg;
    if (UNLIKELY(c->zonemode_strided))
        strided_zone(j, f, d);
    int hit = 0;
    if (j->rw_seq_nr && !--j->seq_nr_left) {
        hit = 1;
        j->seq_nr_left = j->rw_seq_nr;
    }
    uint64_t pos;
    int random = 0;
    if (hit && c->random) {
        if (c->perc_rand[d] >= 100 || iol_rng_below(&j->rng_seq, 100) < c->perc_rand[d]) {
            if (rand_pos(j, f, d, &pos))
                return 0;
            random = 1;
        } else if (seq_pos(j, f, d, &pos) && rand_pos(j, f, d, &pos)) {
            return 0;
        }
    } else if (seq_pos(j, f, d, &pos) && (!c->random || rand_pos(j, f, d, &pos))) {
        return 0;
    }
    if (pos >= f->size)
        return 0;
    uint64_t off = f->base + pos;
    if (off >= f->real_size)
        return 0;
    uint64_t len = pick_bs(j, f, d, off);
    if (!len || off + len > f->real_size)
        return 0;
    if (random && f->map)
        len = map_take(j, f, d, off - f->base, len);
    j->zone_bytes += len;
    f->last_pos[d] = off + len;
    *offp = off;
    *lenp = len;
    return 1;
}

/* fio's __get_next_file: the file for the next I/O, NULL when every file is done. */
static inline unsigned next_file(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (j->files_done >= j->nfiles)
        return UINT32_MAX;
    if (j->fst_have && !j->files[j->fst_cur].done) {
        if (c->fst_mode == FST_SEQ)
            return j->fst_cur;
        if (j->fst_left) {
            j->fst_left--;
            return j->fst_cur;
        }
    }
    unsigned fi;
    if (c->fst_mode == FST_RR || c->fst_mode == FST_SEQ) {
        do {
            fi = j->cur_file;
            if (++j->cur_file == j->nfiles)
                j->cur_file = 0;
        } while (j->files[fi].done);
    } else {
        do {
            if (c->fst_mode == FST_RANDOM)
                fi = (unsigned)iol_rng_below(&j->rng_file, j->nfiles);
            else
                fi = (unsigned)(dist_next(&j->fst_dist, (int)c->fst_mode - FST_ZIPF + DIST_ZIPF, &j->rng_file) >>
                                FSERVICE_SHIFT);
        } while (fi >= j->nfiles || j->files[fi].done);
    }
    j->fst_have = 1;
    j->fst_cur = fi;
    j->fst_left = c->fst_nr ? c->fst_nr - 1 : 0;
    return fi;
}

/* fio's keep_running: another pass, or 0 when the job is done. */
static int next_pass(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (j->pass_ios == 0)
        return 0; /* no progress possible */
    if (!c->time_based && ++j->passes_done >= c->loops) { /* ramp passes count, as in fio */
        /* after the loops, only io_size keeps a job going (while a whole block is still missing) */
        if (!c->io_size_set || j->total_bytes >= c->io_size || c->io_size - j->total_bytes < c->max_bs)
            return 0;
        if (c->number_ios && j->total_ios >= c->number_ios * c->loops)
            return 0;
    }
    if (c->rand_repeat && !c->time_based)
        seed_pattern(j); /* fio re-seeds for every loop: the same random choices again */
    /* fio reopens the files for every loop (which drops their cache); a time_based job starting over
     * on a buffered file drops it too (one file: in place; several: they are reopened) */
    if (!c->time_based || !c->direct)
        for (unsigned i = 0; i < j->nfiles; i++)
            drop_cache(j, &j->files[i]);
    /* fio forgets the last sync per loop, so a loop may start with a second one; a time_based job on one
     * file wraps around inside its loop instead */
    if (!(c->time_based && j->nfiles == 1))
        j->last_was_sync = 0;
    start_pass(j);
    return 1;
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
        !j->writes_issued)
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

/* Fill io with the next I/O to issue; 0 when there is none left. */
static inline int prep_next(struct iol_job *j, struct iol_io *io)
{
    const struct iol_config *c = &j->cfg;
    uint64_t off = 0, len = 0;
    int d;
    unsigned fi;
    unsigned failures = 0;
    for (;;) {
        /* fio's issue limits: (io_size or size) x loops bytes, number_ios x loops I/Os (the ramp's
         * I/O included, as in fio) */
        if (!c->time_based &&
            (j->total_bytes >= c->io_size * c->loops || (c->number_ios && j->total_ios >= c->number_ios * c->loops)))
            return 0;
        uint8_t sop = sync_due(j);
        if (UNLIKELY(sop)) {
            prep_sync(j, io, sop, j->sync_wfile);
            return 1;
        }
        fi = next_file(j);
        if (fi == UINT32_MAX) {
            if (!next_pass(j))
                return 0;
            continue;
        }
        if (c->ddir_mask == 3)
            d = iol_rng_below(&j->rng_mix, 100) < c->rwmix_read ? IOL_DDIR_READ : IOL_DDIR_WRITE;
        else
            d = c->ddir_mask == 1 ? IOL_DDIR_READ : IOL_DDIR_WRITE;
        struct iol_file *f = &j->files[fi];
        if (LIKELY(fill_io(j, f, d, &off, &len)))
            break;
        if (c->time_based && c->random) {
            /* fio starts a used-up file of a time_based random job over at once (and drops the cache
             * of a buffered one) */
            file_reset(j, f);
            if (!c->direct)
                drop_cache(j, f);
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
    j->pass_bytes += len;
    j->pass_ios++;
    j->total_bytes += len;
    j->total_ios++;

    char *rbuf = (char *)j->bufmem + (size_t)io->index * 2 * j->buflen;
    io->op = (uint8_t)d;
    io->ddir = (uint8_t)d;
    io->file = fi;
    io->fd = f->fd;
    io->offset = off;
    io->len = len;
    if (d == IOL_DDIR_WRITE) {
        j->writes_issued++;
        j->sync_wfile = fi;
        io->buf = rbuf + j->buflen;
        if (c->refill_buffers && !c->zero_buffers)
            fill_random(&j->rng_buf, io->buf, len);
        else if (j->cfg.scramble_buffers && !j->cfg.zero_buffers)
            scramble(j, io);
    } else {
        io->buf = rbuf;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------------ */
/* statistics */

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

/* Zero the statistics; what they counted so far was ramp I/O (reset_stats() runs only when the ramp ends, or
 * before any I/O), which is kept in ramp_ios/ramp_bytes for the device check. */
static void reset_stats(struct iol_job *j)
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
    for (int d = 0; d < 2; d++) {
        atomic_store_explicit(&j->prog_ios[d], 0, memory_order_relaxed);
        atomic_store_explicit(&j->prog_bytes[d], 0, memory_order_relaxed);
    }
    for (unsigned k = 0; k < j->nsmp; k++) {
        struct iol_sampler *sp = &j->smp[k];
        sp->n = 0;
        memset(sp->bw, 0, sizeof(sp->bw));
        memset(sp->iops, 0, sizeof(sp->iops));
        for (int d = 0; d < 2; d++)
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
            for (int d = 0; d < 2; d++) {
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
    for (int d = 0; d < 2; d++) {
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
    for (int d = 0; d < 2; d++) {
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
static void take_samples(struct iol_job *j, uint64_t t)
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

static void update_next_event(struct iol_job *j)
{
    j->next_event = j->deadline < j->next_sample ? j->deadline : j->next_sample;
}

/* Rate schedule and think-time counters start over (at the start of the ramp and of the measurement). */
static void start_schedule(struct iol_job *j, uint64_t t)
{
    j->rate_origin = t;
    j->rate_next[0] = j->rate_next[1] = 0;
    j->rate_bytes[0] = j->rate_bytes[1] = 0;
    j->think_count = j->think_last = 0;
    j->think_since = t;
}

/* The baseline of what is measured: the clock, the samples and the CPU use start at t (the ramp's start,
 * then the measurement's; a job that ends while still in its ramp reports all of it, as fio does). */
static void start_clock(struct iol_job *j, uint64_t t)
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

/* The ramp is over: statistics start again, but the I/O carries on where it is. As in fio, what the ramp
 * read or wrote counts against size and loops: a pass is not started over. */
static void begin_measure(struct iol_job *j, uint64_t t)
{
    reset_stats(j);
    j->writes_issued = 0; /* fio's reset_all_stats: the count of writes starts again */
    j->last_was_sync = 0;
    start_schedule(j, t);
    start_clock(j, t);
    j->deadline = j->cfg.runtime_ns ? t + j->cfg.runtime_ns : UINT64_MAX;
    update_next_event(j);
    j->ramp_done = 1;
    atomic_store_explicit(&j->phase, IOL_PHASE_MEASURE, memory_order_relaxed);
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
    if (LIKELY(io->ddir < 2)) {
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

static void record_error(struct iol_job *j, const struct iol_io *io)
{
    static const char *const opname[] = {"read", "write", "fsync", "fdatasync"};
    char ebuf[128];
    j->error = io->error;
    j->error_offset = io->error_offset;
    j->error_ddir = io->ddir;
    const char *what = strerror_r(io->error, ebuf, sizeof(ebuf));
    if (j->lat_exceeded)
        snprintf(j->error_msg, sizeof(j->error_msg),
                 "latency of %llu ns exceeds max_latency (%llu ns): %s of %llu bytes at offset %llu of file %u",
                 (unsigned long long)j->lat_exceeded, (unsigned long long)j->cfg.max_latency_ns[io->ddir],
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file);
    else if (io->ddir == IOL_DDIR_SYNC)
        snprintf(j->error_msg, sizeof(j->error_msg), "%s of file %u (fd %d): %s", opname[io->op], io->file,
                 io->fd, what);
    else if (io->eof)
        snprintf(j->error_msg, sizeof(j->error_msg),
                 "%s of %llu bytes at offset %llu of file %u (fd %d): end of file or device at offset %llu",
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file, io->fd,
                 (unsigned long long)io->error_offset);
    else
        snprintf(j->error_msg, sizeof(j->error_msg), "%s of %llu bytes at offset %llu of file %u (fd %d): %s",
                 opname[io->op], (unsigned long long)io->len, (unsigned long long)io->offset, io->file, io->fd,
                 what);
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
            take_samples(j, t);
        update_next_event(j);
        return EV_ACCOUNT;
    }
    if (t >= j->next_sample)
        take_samples(j, t);
    update_next_event(j);
    return t >= j->deadline ? EV_FINISH : EV_ACCOUNT;
}

/* fio's continue_on_error: does this error let the job go on? Errors of a type continue_on_error names
 * (read; write, which includes syncs; verify for EILSEQ) pass when they are in the ignore_error list of
 * the direction, or, without a list, when they are EIO or EILSEQ. */
static int error_passes(const struct iol_job *j, int ddir, int err)
{
    int type = err == EILSEQ ? 2 : ddir == IOL_DDIR_READ ? 0 : 1;
    if (!(j->cfg.coe_mask & (1u << type)))
        return 0;
    unsigned n = type < 2 ? j->cfg.ignore_error_n[type] : 0;
    if (!n)
        return err == EIO || err == EILSEQ;
    for (unsigned i = 0; i < n; i++)
        if ((int)j->cfg.ignore_error[type * IOL_IGNORE_ERROR_MAX + i] == err)
            return 1;
    return 0;
}

/* An I/O ended with io->error. Count it when continue_on_error covers its type (as fio, the fatal one
 * too); 1 when it ends the job (recorded as the job's error), 0 when the job goes on. `issued_only`: the
 * I/O failed, it is counted as issued but not as done (a failed transfer; a max_latency violation was
 * accounted as done already). */
static int io_error(struct iol_job *j, struct iol_io *io, int issued_only)
{
    int type = io->error == EILSEQ ? 2 : io->ddir == IOL_DDIR_READ ? 0 : 1;
    if (j->cfg.coe_mask & (1u << type)) {
        if (!j->total_err++)
            j->first_error = io->error;
    }
    if (error_passes(j, io->ddir, io->error)) {
        j->err_ios[io->ddir] += issued_only;
        j->lat_exceeded = 0;
        return 0;
    }
    j->err_ios[io->ddir] += issued_only;
    record_error(j, io);
    return 1;
}

/* rate_min / rate_iops_min as fio checks them: not in the first 2 s of the job; then every rate_cycle
 * the rate since the previous check must reach the minimum. 1 (with the job's error set) if it did not. */
static int check_min_rate(struct iol_job *j, uint64_t t)
{
    const struct iol_config *c = &j->cfg;
    if (t - j->t_start < 2000000000ull)
        return 0;
    for (int d = 0; d < 2; d++) {
        if (!c->rate_min_bps[d] && !c->rate_min_iops[d])
            continue;
        if (!j->ds[d].ios)
            continue;
        if (j->rmin_bytes[d] || j->rmin_ios[d]) {
            uint64_t spent_ms = (t - j->rmin_t[d]) / 1000000ull;
            if (spent_ms == 0 || spent_ms * 1000000ull < c->rate_cycle_ns)
                continue;
            const char *name = d ? "write" : "read";
            if (c->rate_min_bps[d]) {
                uint64_t got = (j->ds[d].bytes - j->rmin_bytes[d]) * 1000 / spent_ms;
                if (got < c->rate_min_bps[d]) {
                    j->error = EIO;
                    snprintf(j->error_msg, sizeof(j->error_msg), "%s rate_min=%lluB/s not met, got %lluB/s", name,
                             (unsigned long long)c->rate_min_bps[d], (unsigned long long)got);
                    return 1;
                }
            } else {
                uint64_t got = (j->ds[d].ios - j->rmin_ios[d]) * 1000 / spent_ms;
                if (got < c->rate_min_iops[d]) {
                    j->error = EIO;
                    snprintf(j->error_msg, sizeof(j->error_msg), "%s rate_iops_min=%llu not met, got %llu IOPS",
                             name, (unsigned long long)c->rate_min_iops[d], (unsigned long long)got);
                    return 1;
                }
            }
        }
        j->rmin_bytes[d] = j->ds[d].bytes;
        j->rmin_ios[d] = j->ds[d].ios;
        j->rmin_t[d] = t;
    }
    return 0;
}

/* max_latency and rate_min, after an I/O was accounted. Nonzero when the job must end. */
static int completion_checks(struct iol_job *j, struct iol_io *io, uint64_t t)
{
    if (io->ddir < 2 && j->cfg.max_latency_ns[io->ddir] && t - io->t_issue > j->cfg.max_latency_ns[io->ddir]) {
        j->lat_exceeded = t - io->t_issue;
        io->error = ETIMEDOUT;
        io->error_offset = io->offset;
        int end = io_error(j, io, 0);
        io->error = 0;
        if (end)
            return 1;
    }
    return check_min_rate(j, t);
}

/* Returns nonzero when the job must end. */
static inline int complete_io(struct iol_job *j, struct iol_io *io, uint64_t t)
{
    j->last_was_sync = io->ddir == IOL_DDIR_SYNC;
    if (UNLIKELY(j->fsyncing)) {
        j->end_syncs++;
        return 0; /* end_fsync: fio neither counts it nor times it */
    }
    j->think_count += j->cfg.thinktime_blocks_type == 0 && io->ddir < 2;
    if (UNLIKELY(io->error)) {
        if (io_error(j, io, 1))
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

static void engine_error(struct iol_job *j, const char *what, int err)
{
    j->engine_failed = 1;
    if (j->error)
        return;
    char ebuf[128];
    j->error = err;
    j->error_ddir = -1;
    snprintf(j->error_msg, sizeof(j->error_msg), "%s: %s failed: %s", j->eng->name, what,
             strerror_r(err, ebuf, sizeof(ebuf)));
}

/* Submit what was queued. 0, or -1 after an engine error. */
static inline int commit(struct iol_job *j)
{
    if (!j->uncommitted)
        return 0;
    j->uncommitted = 0;
    int r = j->eng->commit(j->eng_state);
    if (UNLIKELY(r < 0)) {
        engine_error(j, "submitting I/O", -r);
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
        engine_error(j, "reaping completions", -n);
        return -1;
    }
    if (!n)
        return 0;
    uint64_t t = now_ns();
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

/* Sleep until `until` (absolute), in slices so that stop() and the end of the measured phase are
 * noticed. The sleep adjusts an adaptive poll window like a long wait. 1 if the job must end instead. */
static int sleep_until(struct iol_job *j, uint64_t until)
{
    const uint64_t slice = 50 * 1000000ull;
    uint64_t t0 = now_ns(), t = t0;
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
        t = now_ns();
    }
    j->sleeps++;
    j->sleep_ns += t - t0;
    iol_poll_sleep_done(&j->poll, t - t0);
    return end;
}

static inline int think_due(struct iol_job *j)
{
    const struct iol_config *c = &j->cfg;
    if (c->thinktime_iotime_ns) {
        if (now_ns() - j->think_since >= c->thinktime_iotime_ns)
            return 1;
        if (!c->thinktime_blocks_set)
            return 0;
    }
    uint32_t blocks = c->thinktime_blocks ? c->thinktime_blocks : 1;
    return j->think_count >= j->think_last + blocks;
}

/* fio's thinktime: wait for the I/Os in flight, spin thinktime_spin, sleep the rest. */
static int think(struct iol_job *j)
{
    int r = quiesce(j, REAP_COUNT);
    if (r)
        return r;
    const struct iol_config *c = &j->cfg;
    uint64_t t0 = now_ns();
    while (c->thinktime_spin_ns && now_ns() - t0 < c->thinktime_spin_ns)
        if (atomic_load_explicit(&j->stop, memory_order_relaxed))
            return 1;
    int end = 0;
    if (c->thinktime_ns > c->thinktime_spin_ns)
        end = sleep_until(j, t0 + c->thinktime_ns);
    j->think_pauses++;
    j->think_last = j->think_count;
    j->think_since = now_ns();
    return end;
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

/* Issue io (prepared). 1 if the job must end, -1 on an engine error, else 0; io is back in the free
 * list unless it is in flight. */
static inline int issue(struct iol_job *j, struct iol_io *io)
{
    uint64_t t = now_ns();
    uint64_t sched = t;
    if (UNLIKELY(j->rated) && io->ddir < 2 && j->cfg.rate_bps[io->ddir]) {
        uint64_t due = j->rate_origin + j->rate_next[io->ddir];
        if (due > t) {
            int r = quiesce(j, REAP_COUNT);
            if (!r)
                r = sleep_until(j, due);
            if (r) {
                j->free_ios[j->nfree++] = io;
                return r;
            }
            t = now_ns();
        }
        sched = rate_slot(j, io);
        uint64_t lag = t > sched ? t - sched : 0;
        if (lag > j->lag_max)
            j->lag_max = lag;
        j->lag_sum += lag;
        j->lag_n++;
    }
    io->t_issue = sched;
    io->t_submit = t;
    iol_io_clear(io);
    j->think_count += j->cfg.thinktime_blocks_type == 1 && io->ddir < 2;
    if (LIKELY(j->eng->queue(j->eng_state, io) == IOL_Q_COMPLETED)) {
        uint64_t tc = now_ns();
        j->free_ios[j->nfree++] = io;
        j->depths.level[0]++;
        j->depths.submit[1]++;
        j->depths.complete[1]++;
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
        if (more && UNLIKELY(j->cfg.thinktime_ns) && think_due(j)) {
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
    j->t_start = now_ns();
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
            start_clock(j, j->t_start);
            update_next_event(j);
            start_pass(j);
            start_schedule(j, j->t_start);
        } else {
            start_pass(j);
            begin_measure(j, j->t_start);
        }
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
    }
    j->t_end = now_ns();
    if (measuring) {
        j->runtime_ns = j->t_end - j->t_measure;
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
    } else {
        /* ended during the ramp (or before it started): nothing was measured */
        reset_stats(j);
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

void iol_job_progress(struct iol_job *j, uint64_t out[5])
{
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
