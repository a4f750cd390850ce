/* Passes over the files: re-seeding, cache drops, starting over (next_file() is in files.h). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "files.h"
#include "offsets.h"

/* The streams that choose the I/O pattern (offsets, directions, sizes, files). */
void iol_seed_pattern(struct iol_job *j)
{
    uint64_t seed = j->cfg.seed;
    iol_rng_seed(&j->rng_off, seed, RNG_STREAM_OFFSET);
    iol_rng_seed(&j->rng_bs, seed, RNG_STREAM_BS);
    iol_rng_seed(&j->rng_seq, seed, RNG_STREAM_SEQ);
    iol_rng_seed(&j->rng_zone, seed, RNG_STREAM_ZONE);
    iol_rng_seed(&j->rng_file, seed, RNG_STREAM_FILE);
    iol_taus88_seed(&j->mix_rng, j->cfg.rwmix_seed);
}

/* fio drops a file's cached pages whenever it starts over on it (invalidate=1): a new loop reopens the
 * files, and a time_based run that wraps round a buffered file would otherwise read its own cache.
 * Errors are ignored, as fio ignores them there. */
void iol_drop_cache(struct iol_job *j, struct iol_file *f)
{
    if (!j->cfg.invalidate)
        return;
    if (f->is_block)
        (void)ioctl(f->fd, BLKFLSBUF, 0);
    else
        (void)posix_fadvise(f->fd, (off_t)f->base, (off_t)f->size, POSIX_FADV_DONTNEED);
}

void iol_start_pass(struct iol_job *j)
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

/* fio's keep_running: another pass, or 0 when the job is done. */
int iol_next_pass(struct iol_job *j)
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
        iol_seed_pattern(j); /* fio re-seeds for every loop: the same random choices again */
    /* fio reopens the files for every loop (which drops their cache); a time_based job starting over
     * on a buffered file drops it too (one file: in place; several: they are reopened) */
    if (!c->time_based || !c->direct)
        for (unsigned i = 0; i < j->nfiles; i++)
            iol_drop_cache(j, &j->files[i]);
    /* fio forgets the last sync per loop, so a loop may start with a second one; a time_based job on one
     * file wraps around inside its loop instead */
    if (!(c->time_based && j->nfiles == 1))
        j->last_was_sync = 0;
    j->mix_quota = 0; /* fio's reset_io_counters: the next I/O draws its direction afresh */
    iol_start_pass(j);
    return 1;
}
