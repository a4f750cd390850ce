/* mmap: every file is mapped whole (MAP_SHARED) and an I/O is a memcpy to or from the mapping, as
 * fio's mmap engine does. fsync and fdatasync are msync(MS_SYNC) of the file's whole mapping;
 * direct=1 adds an msync(MS_SYNC) of the I/O's pages after each read or write (fio's "not really
 * direct"). With fadvise_hint the mapping is advised random or sequential by the job's pattern. */
#define _GNU_SOURCE /* fallocate */
#include <stdlib.h>

#include "mapfile.h"

struct mmap_state {
    unsigned nfiles;
    int direct;
    int thp;
    uintptr_t page;
    uint64_t mapped;
    const char *advice;
    struct iol_mapped_file files[];
};

static void mmap_unmap_all(struct mmap_state *s)
{
    for (unsigned i = 0; i < s->nfiles; i++)
        if (s->files[i].base)
            munmap(s->files[i].base, (size_t)s->files[i].len);
}

static int mmap_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    const struct iol_config *cfg = env->cfg;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uint64_t min_bs = iol_map_min_bs(cfg);
    if ((min_bs & (page - 1)) && (cfg->direct || cfg->fsync_blocks || cfg->fdatasync_blocks)) {
        snprintf(err, errlen,
                 "ioengine=mmap: with direct=1, fsync or fdatasync the block size must be a multiple of "
                 "the page size (%lu bytes), as in fio; the smallest is %llu",
                 (unsigned long)page, (unsigned long long)min_bs);
        return EINVAL;
    }
    struct mmap_state *s = calloc(1, sizeof(*s) + env->nfiles * sizeof(s->files[0]));
    if (!s) {
        snprintf(err, errlen, "ioengine=mmap: out of memory");
        return ENOMEM;
    }
    s->direct = cfg->direct != 0;
    s->thp = (cfg->engine_flags & IOL_EF_THP) != 0;
    s->page = page;
    s->advice = !(cfg->engine_flags & IOL_EF_MADVISE) ? "none" : cfg->random ? "random" : "sequential";
    int prot = iol_map_prot(cfg);
    for (unsigned i = 0; i < env->nfiles; i++) {
        struct iol_mapped_file *m = &s->files[i];
        int is_block = 0, er;
        m->fd = env->files[i].fd;
        s->nfiles = i + 1;
        er = iol_map_size(m->fd, &m->len, &is_block);
        if (!er && (cfg->ddir_mask & 2) && !is_block)
            er = iol_map_allocate(m->fd, m->len);
        if (er) {
            snprintf(err, errlen, "ioengine=mmap: file %u: cannot size or allocate it for mapping: %s", i,
                     strerror(er));
            goto fail;
        }
        if (m->len == 0)
            continue; /* nothing to map: every I/O fails as past the end */
        /* thp=1: fio maps private, so huge pages can back the copy-on-write pages */
        int shared = (cfg->engine_flags & IOL_EF_THP) ? MAP_PRIVATE : MAP_SHARED;
        void *p = mmap(NULL, (size_t)m->len, prot, shared, m->fd, 0);
        if (p == MAP_FAILED) {
            er = errno;
            snprintf(err, errlen, "ioengine=mmap: file %u: mmap of %llu bytes failed: %s", i,
                     (unsigned long long)m->len, strerror(er));
            goto fail;
        }
        m->base = p;
        s->mapped += m->len;
        if (cfg->engine_flags & IOL_EF_THP)
            (void)madvise(p, (size_t)m->len, MADV_HUGEPAGE); /* advisory: fio ignores a failure too */
        if (cfg->engine_flags & IOL_EF_MADVISE) {
            er = posix_madvise(p, (size_t)m->len, cfg->random ? POSIX_MADV_RANDOM : POSIX_MADV_SEQUENTIAL);
            if (er) {
                snprintf(err, errlen, "ioengine=mmap: file %u: madvise failed: %s", i, strerror(er));
                goto fail;
            }
        }
        continue;
    fail:
        mmap_unmap_all(s);
        free(s);
        return er;
    }
    *state = s;
    return 0;
}

static int mmap_queue(void *state, struct iol_io *io)
{
    struct mmap_state *s = state;
    struct iol_mapped_file *m = &s->files[io->file];
    iol_map_clear(io);

    if (io->op == IOL_OP_FSYNC || io->op == IOL_OP_FDATASYNC) {
        /* fio syncs the file's whole mapping for both */
        if (m->base && msync(m->base, (size_t)m->len, MS_SYNC) < 0) {
            io->error = errno;
            io->error_offset = 0;
        }
        return IOL_Q_COMPLETED;
    }
    if (__builtin_expect(io->op != IOL_OP_READ && io->op != IOL_OP_WRITE, 0)) {
        /* trims are refused at plan time (the spec does not say trim): never write for them */
        io->error = EINVAL;
        io->error_offset = io->offset;
        return IOL_Q_COMPLETED;
    }
    char *p = iol_map_at(m, io);
    if (__builtin_expect(p == NULL, 0))
        return IOL_Q_COMPLETED;
    if (io->op == IOL_OP_READ)
        memcpy(io->buf, p, (size_t)io->len);
    else
        memcpy(p, io->buf, (size_t)io->len);
    io->done = io->len;
    if (s->direct) {
        int er = iol_map_msync(p, io->len, MS_SYNC, s->page);
        if (er) {
            io->error = er;
            io->error_offset = io->offset;
        }
    }
    return IOL_Q_COMPLETED;
}

static void mmap_describe(void *state, char *buf, size_t len)
{
    const struct mmap_state *s = state;
    snprintf(buf, len, "mmap: %u file(s) mapped whole (%llu bytes), %s, madvise %s%s", s->nfiles,
             (unsigned long long)s->mapped, s->thp ? "MAP_PRIVATE (thp=1)" : "MAP_SHARED", s->advice, s->direct ? ", direct=1: msync(MS_SYNC) per I/O" : "");
}

static void mmap_cleanup(void *state)
{
    struct mmap_state *s = state;
    if (!s)
        return;
    mmap_unmap_all(s);
    free(s);
}

const struct iol_engine iol_engine_mmap = {
    .name = "mmap",
    .flags = IOL_ENGINE_SYNC,
    .init = mmap_init,
    .start = NULL,
    .queue = mmap_queue,
    .commit = NULL,
    .reap = NULL,
    .describe = mmap_describe,
    .cleanup = mmap_cleanup,
};
