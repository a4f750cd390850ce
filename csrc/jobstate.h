/* The state of one job (struct iol_job and its parts), shared by the files that implement the job: job.c
 * (the loop) and the parts it names. No globals: everything a job needs lives here. The public face is
 * job.h.
 */
#ifndef IOL_JOBSTATE_H
#define IOL_JOBSTATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config_gen.h"
#include "engine.h"
#include "histogram.h"
#include "pollwin.h"
#include "rand.h"
#include "verify.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* The job's random streams (see iol_rng_seed): one per choice, so that one choice never shifts another. */
enum { RNG_STREAM_OFFSET = 1, RNG_STREAM_MIX = 2, RNG_STREAM_BS = 3, RNG_STREAM_BUF = 4, RNG_STREAM_RATE = 5, RNG_STREAM_SEQ = 6,
       RNG_STREAM_ZONE = 7, RNG_STREAM_FILE = 8, RNG_STREAM_VERIFY = 9 };

#define IOL_SAMPLES_CAP 2048 /* preallocated samples; when full, pairs merge and the interval doubles */
#define IOL_FULL_INTERVAL 0.9 /* a last, partial interval counts as a sample if it lasted this much of one */
#define IOL_MAX_FILES 65535u
#define IOL_MAX_BS (1ull << 30) /* largest block size accepted */

enum iol_phase {
    IOL_PHASE_SETUP = 0,
    IOL_PHASE_RAMP = 1,
    IOL_PHASE_MEASURE = 2,
    IOL_PHASE_DONE = 3,
};

/* Test hook: one record per counted I/O (measured phase only), written into a caller buffer. */
struct iol_trace_rec {
    uint64_t offset; /* absolute offset in the file (0 for syncs) */
    uint32_t len;    /* bytes (0 for syncs) */
    uint16_t file;   /* index in the file list */
    uint8_t ddir;    /* enum iol_ddir */
    uint8_t pad;
    uint64_t head;   /* first 8 bytes of the buffer after the I/O (read: data read; write: data written) */
    uint64_t tail;   /* last 8 bytes */
};

struct iol_dstat {
    uint64_t ios;
    uint64_t bytes;
    uint64_t short_ios;
    struct iol_hist lat;
    struct iol_hist clat; /* async engines only; synchronous engines report lat */
    struct iol_hist slat; /* async engines only */
};

/* fio's I/O depth distributions (buckets as fio's iodepth_level / iodepth_submit / iodepth_complete). */
struct iol_depths {
    uint64_t level[7];    /* I/Os submitted, by in-flight depth after the submission: 1,2,4,8,16,32,>=64 */
    uint64_t submit[7];   /* submit calls by I/Os submitted: 0,1-4,5-8,9-16,17-32,33-64,>64 */
    uint64_t complete[7]; /* reap calls by completions returned, same buckets */
    uint64_t max_inflight;
};

struct iol_sample {
    uint64_t t_ns; /* end of the interval, from the start of the measured phase */
    uint64_t ios[IOL_DDIR_IO];
    uint64_t bytes[IOL_DDIR_IO];
};

/* Running min/max/mean/variance (Welford) of per-interval rates. */
struct iol_rstat {
    uint64_t n;
    double min, max, mean, m2;
};

/* One series of interval samples. Statistics are kept at the requested interval for the whole run; the time
 * series goes into a preallocated buffer whose entries widen (pairs merge) when it fills. */
struct iol_sampler {
    struct iol_sample *buf; /* IOL_SAMPLES_CAP entries */
    uint32_t n;
    uint64_t base;     /* requested interval, ns: what the statistics are taken over */
    uint64_t interval; /* interval of the buffer's entries: base, doubled whenever the buffer fills */
    uint64_t next;     /* absolute time of the next base boundary */
    uint64_t last_t;   /* absolute time of the last base boundary */
    uint64_t entry_t;  /* absolute time the last buffer entry ended */
    uint64_t last_ios[IOL_DDIR_IO], last_bytes[IOL_DDIR_IO]; /* counters at the last base boundary */
    uint64_t open_ios[IOL_DDIR_IO], open_bytes[IOL_DDIR_IO]; /* counts since the last buffer entry */
    struct iol_rstat bw[IOL_DDIR_IO], iops[IOL_DDIR_IO];      /* per direction: KiB/s and I/Os per second */
};

/* Per-file state of a zipf/pareto/normal offset (or file) generator. */
struct iol_dist {
    uint64_t nranges;
    uint64_t rand_off; /* added to every value (a random or a centered shift) */
    double zetan, zeta2, theta, pareto_pow;
    uint64_t stddev; /* normal: width of the added uniform deviation, in ranges */
    int hash;        /* scatter values over the range (offsets) or not (files) */
};

struct iol_file {
    int fd;
    int is_block; /* block device (cache dropped with BLKFLSBUF) or regular file (posix_fadvise) */
    uint64_t start; /* region start as planned (absolute) */
    uint64_t base;  /* region start now (fio's file_offset: strided zones move it) */
    uint64_t size;  /* region length (fio's per-file io_size) */
    uint64_t real_size; /* file length (fio's real_file_size) */
    uint64_t last_pos[IOL_DDIR_IO]; /* absolute end of the previous I/O per direction (fio's last_pos) */
    /* trimwrite: start of the last trim and of the last write (fio's last_start); equal: a trim is next */
    uint64_t tw_trim_start, tw_write_start;
    uint64_t tw_trim_len; /* randtrimwrite: the write covers the trimmed block */
    int done;             /* no more I/O this pass */
    struct iol_dist dist;
    /* random modes */
    uint64_t nblocks;    /* map units in the region */
    /* random map: bit set = unit used this pass; summary bit set = map word full */
    uint64_t *map;
    uint64_t *summary;
    uint64_t map_words;
    uint64_t summary_words;
    uint64_t used;
};

struct iol_dir {
    int enabled;
    uint64_t bs_min, bs_max;
    uint64_t bs_gran;   /* bs range: sizes are bs_min + k * bs_gran */
    uint64_t bs_steps;  /* number of possible sizes in the range */
    uint64_t align;     /* random offsets: alignment (0 or a divisor of the map unit: none needed) */
    uint64_t ba;        /* random offsets are multiples of this (blockalign, default the smallest bs) */
    unsigned nsplit;
    uint64_t split_bs[IOL_BSSPLIT_MAX];
    uint32_t split_cum[IOL_BSSPLIT_MAX]; /* cumulative percentages */
};

struct iol_job {
    struct iol_config cfg;
    const struct iol_engine *eng;
    void *eng_state;
    unsigned depth;

    struct iol_file *files;
    unsigned nfiles;
    unsigned cur_file;

    struct iol_dir dir[IOL_DDIR_IO];
    uint64_t unit;       /* random map unit = smallest block size any enabled direction issues */
    unsigned unit_shift; /* log2(unit) if a power of two, else 0 with unit_pow2 = 0 */
    int unit_pow2;
    uint32_t rw_seq_nr;
    uint32_t seq_nr_left; /* fio's ddir_seq_nr countdown: a random offset when it reaches 0 */
    unsigned files_done;
    unsigned fst_left;  /* I/Os left on the current file (file_service_type ':N') */
    int fst_have;       /* a current file was chosen */
    unsigned fst_cur;
    struct iol_dist fst_dist;
    uint64_t zone_bytes; /* strided zones: bytes issued in the current zone */
    uint64_t total_bytes, total_ios; /* issued in the measured phase (all passes) */

    struct iol_rng rng_off, rng_mix, rng_bs, rng_buf, rng_seq, rng_zone, rng_file;

    /* I/O pool and buffers */
    struct iol_io *ios;
    struct iol_io **free_ios;
    unsigned nfree;
    struct iol_io **reaped;
    int eng_sync;
    unsigned inflight;    /* queued or in flight in the engine */
    unsigned uncommitted; /* queued since the last commit() */
    unsigned batch_submit, batch_min, batch_max, depth_low;
    struct iol_poll poll;
    struct iol_depths depths;

    /* rate limiting (per direction) and think time */
    int rated;              /* any direction has a rate: latencies count from the scheduled time */
    uint64_t rate_origin;   /* schedule start (start of the ramp, then of the measured phase) */
    uint64_t rate_next[2];  /* ns after rate_origin when the next I/O of the direction is due */
    uint64_t rate_bytes[2]; /* bytes issued since rate_origin (linear) */
    struct iol_rng rng_rate;
    uint64_t think_count;   /* I/Os counted for thinktime_blocks (completed or issued) */
    uint64_t think_last;    /* think_count at the last pause */
    uint64_t think_since;   /* end of the last pause (thinktime_iotime) */
    uint64_t sleeps, sleep_ns, think_pauses;
    uint64_t lag_max;       /* rate: largest delay between the scheduled time and the submission */
    uint64_t lag_sum, lag_n; /* rate: total delay and the number of scheduled I/Os */
    long tid;               /* kernel thread id of the thread that ran the job */
    uint64_t cpu_mask;      /* CPUs (0..63) the job thread could run on when it started */
    int engine_failed;      /* submitting or reaping failed: in-flight I/Os may never complete */
    void *bufmem;
    size_t buflen; /* per buffer */

    /* pass / loop accounting */
    uint64_t pass_bytes;
    uint64_t pass_ios;
    uint32_t passes_done;
    uint64_t scramble_seq; /* scramble_buffers: running stamp of write buffers */
    /* fsync=N / fdatasync=N as fio decides them (see sync_due in job.c) */
    uint64_t writes_issued; /* writes issued since the job (or the measured phase) started, all loops */
    uint32_t sync_wfile;    /* file of the last write issued: the file a sync flushes */
    int last_was_sync;      /* the last I/O completed was a sync; cleared by any other, and per loop */
    int fsyncing;           /* end_fsync running: fio keeps it out of the statistics */
    uint64_t end_syncs;     /* end_fsync calls completed (for the device check only) */
    uint64_t datasyncs;     /* fdatasyncs accounted: fio's sync total_ios counts fsyncs only */

    /* time */
    uint64_t t_start;   /* run() start */
    uint64_t t_measure; /* measured phase start */
    uint64_t t_end;
    uint64_t deadline;  /* end of ramp or of the measured phase, UINT64_MAX if none */
    uint64_t next_event; /* min(deadline, next sample boundary) */

    /* samples: series 0 at the bandwidth interval (bwavgtime), series 1 at the IOPS interval
     * (iopsavgtime) when that differs; nsmp series are in use */
    struct iol_sampler smp[2];
    unsigned nsmp;
    uint64_t next_sample; /* absolute: the earliest next boundary of the series */

    /* statistics (reset at the end of the ramp) */
    struct iol_dstat ds[IOL_DDIR_COUNT];
    /* I/O the statistics leave out but the device saw: completed during the ramp, and drained (in flight
     * when the job ended on an error, waited for but not counted; after the runtime or stop() they are
     * counted, as fio counts them) */
    uint64_t ramp_ios[IOL_DDIR_COUNT], ramp_bytes[IOL_DDIR_COUNT];
    uint64_t drained_ios[IOL_DDIR_COUNT], drained_bytes[IOL_DDIR_COUNT];
    long ru_utime_ns, ru_stime_ns, ru_ctx, ru_majf, ru_minf; /* at the start of the measured phase */
    uint64_t usr_ns, sys_ns, ctx, majf, minf;

    /* outcome */
    int ramp_done;
    int stopped;
    uint64_t runtime_ns;
    int error;
    int error_ddir; /* -1 if none */
    uint64_t error_offset;
    char error_msg[256];
    char engine_info[256];

    /* shared with other threads */
    atomic_int stop;
    atomic_int phase;
    atomic_uint_fast64_t prog_ios[IOL_DDIR_IO];
    atomic_uint_fast64_t prog_bytes[IOL_DDIR_IO];

    /* continue_on_error: I/Os that failed with an error let pass (per direction), all errors counted
     * (the fatal one too when its type continues) and the first of them */
    uint64_t err_ios[IOL_DDIR_COUNT];
    uint64_t total_err;
    int first_error;
    int checks;           /* max_latency or rate_min is set: completion_checks() runs after each I/O */
    uint64_t lat_exceeded; /* max_latency: the latency that failed the job */
    /* rate_min: counts and time at the last check, per direction (counts 0: no check yet) */
    uint64_t rmin_t[2], rmin_bytes[2], rmin_ios[2];

    /* data verification (verify.h) */
    struct iol_verify vfy;

    /* test hook */
    struct iol_trace_rec *trace;
    size_t trace_cap;
    size_t trace_n;
};

#endif
