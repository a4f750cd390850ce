/* Mapping a job's files into memory, for the engines that do I/O by copying to and from a mapping
 * (mmap, libpmem). Each file is mapped whole, once, at init: an I/O is then a pointer computation and
 * a copy. An I/O that would reach past the end of the file fails with EIO (touching a mapping past the
 * file's last page raises SIGBUS), as a read at end of file does with psync. */
#ifndef IOL_MAPFILE_H
#define IOL_MAPFILE_H

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

struct iol_mapped_file {
    char *base;    /* NULL: nothing mapped (an empty file) */
    uint64_t len;  /* bytes mapped from offset 0: the file's size when the job was set up */
    int fd;
};

/* The protection a job needs: its files are opened read-only unless it writes. */
static inline int iol_map_prot(const struct iol_config *cfg)
{
    return (cfg->ddir_mask & 2) ? PROT_READ | PROT_WRITE : PROT_READ;
}

/* Size of a regular file or block device; 0 and an errno value on failure. */
static inline int iol_map_size(int fd, uint64_t *size, int *is_block)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return errno;
    *is_block = S_ISBLK(st.st_mode);
    if (*is_block) {
        if (ioctl(fd, BLKGETSIZE64, size) < 0)
            return errno;
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return ENODEV;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* A writing job on a regular file: allocate the file's holes without changing a byte (KEEP_SIZE,
 * existing data kept), so a store into a hole cannot meet a full file system (SIGBUS) in the measured
 * loop. Where fallocate is not supported the file is used as it is. */
static inline int iol_map_allocate(int fd, uint64_t size)
{
    if (size == 0)
        return 0;
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return 0;
    return errno;
}

/* The minimum block size a job issues over its enabled directions (fio's rw_min_bs). */
static inline uint64_t iol_map_min_bs(const struct iol_config *cfg)
{
    uint64_t min = UINT64_MAX;
    for (int d = 0; d < 2; d++) {
        if (!(cfg->ddir_mask & (1u << d)))
            continue;
        uint64_t bs = cfg->bssplit_n[d] ? cfg->bssplit_bs[d * 64] : cfg->bs_min[d];
        for (uint32_t i = 1; i < cfg->bssplit_n[d]; i++)
            if (cfg->bssplit_bs[d * 64 + i] < bs)
                bs = cfg->bssplit_bs[d * 64 + i];
        if (bs < min)
            min = bs;
    }
    return min == UINT64_MAX ? 0 : min;
}

/* Where io's bytes live in its file's mapping, or NULL (io->error set) when it lies past the end. */
static inline char *iol_map_at(const struct iol_mapped_file *m, struct iol_io *io)
{
    if (__builtin_expect(io->offset + io->len <= m->len && io->offset + io->len >= io->offset, 1))
        return m->base + io->offset;
    io->eof = io->offset >= m->len;
    io->error = EIO;
    io->error_offset = io->offset;
    return NULL;
}

static inline void iol_map_clear(struct iol_io *io)
{
    io->done = 0;
    io->short_count = 0;
    io->error = 0;
    io->eof = 0;
}

/* msync over the pages that hold [p, p+len). */
static inline int iol_map_msync(char *p, uint64_t len, int flags, uintptr_t page)
{
    uintptr_t start = (uintptr_t)p & ~(page - 1);
    if (msync((void *)start, (size_t)((uintptr_t)p + len - start), flags) < 0)
        return errno;
    return 0;
}

#endif
