/* The engine registry: config engine id -> vtable, from the generated IOL_ENGINE_LIST; and the trim every
 * engine shares. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "engine.h"

struct iol_engine_entry {
    const struct iol_engine *vtable;
    unsigned max_depth;
};

#define IOL_ENGINE_ENTRY(id, vtable, max_depth) [id] = {&vtable, max_depth},
static const struct iol_engine_entry engines[IOL_ENGINE_COUNT] = {IOL_ENGINE_LIST(IOL_ENGINE_ENTRY)};
#undef IOL_ENGINE_ENTRY

const struct iol_engine *iol_engine_get(uint32_t id)
{
    return id < IOL_ENGINE_COUNT ? engines[id].vtable : NULL;
}

unsigned iol_engine_max_depth(uint32_t id)
{
    return id < IOL_ENGINE_COUNT ? engines[id].max_depth : 0;
}

void iol_io_trim(struct iol_io *io)
{
    int r;
    if (io->blockdev) {
        uint64_t range[2] = {io->offset, io->len};
        r = ioctl(io->fd, BLKDISCARD, range);
    } else {
        /* fio 3.33 fails a trim on a file (it only knows the block device ioctl); a punched hole is what a
         * discard means for a file, and the size stays */
        do
            r = fallocate(io->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)io->offset, (off_t)io->len);
        while (r < 0 && errno == EINTR);
    }
    if (r < 0) {
        io->error = errno;
        io->error_offset = io->offset;
        return;
    }
    io->done = io->len;
}
