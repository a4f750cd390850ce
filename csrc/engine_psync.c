/* psync: pread(2)/pwrite(2), one I/O at a time, completed inside queue(). */
#include <errno.h>
#include <unistd.h>

#include "engine.h"

static int psync_init(const struct iol_engine_env *env, void **state, char *err, size_t errlen)
{
    (void)env;
    (void)err;
    (void)errlen;
    *state = NULL; /* nothing to keep */
    return 0;
}

static int psync_queue(void *state, struct iol_io *io)
{
    (void)state;
    io->done = 0;
    io->short_count = 0;
    io->error = 0;
    io->eof = 0;

    if (io->op == IOL_OP_FSYNC || io->op == IOL_OP_FDATASYNC) {
        int r;
        do
            r = io->op == IOL_OP_FSYNC ? fsync(io->fd) : fdatasync(io->fd);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            io->error = errno;
            io->error_offset = 0;
        }
        return IOL_Q_COMPLETED;
    }

    if (io->op == IOL_OP_TRIM) {
        iol_io_trim(io);
        return IOL_Q_COMPLETED;
    }

    char *buf = io->buf;
    uint64_t len = io->len, off = io->offset, done = 0;
    for (;;) {
        ssize_t r = io->op == IOL_OP_READ ? pread(io->fd, buf + done, len - done, (off_t)(off + done))
                                          : pwrite(io->fd, buf + done, len - done, (off_t)(off + done));
        if (__builtin_expect(r == (ssize_t)(len - done), 1)) {
            done = len;
            break;
        }
        if (r > 0) {
            /* short transfer: continue with the remainder */
            done += (uint64_t)r;
            io->short_count++;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        /* r == 0: nothing more can be transferred (end of file/device); r < 0: an error */
        io->eof = r == 0;
        io->error = r == 0 ? EIO : errno;
        io->error_offset = off + done;
        break;
    }
    io->done = done;
    return IOL_Q_COMPLETED;
}

static void psync_cleanup(void *state)
{
    (void)state;
}

const struct iol_engine iol_engine_psync = {
    .name = "psync",
    .flags = IOL_ENGINE_SYNC,
    .init = psync_init,
    .start = NULL,
    .queue = psync_queue,
    .commit = NULL,
    .reap = NULL,
    .describe = NULL,
    .cleanup = psync_cleanup,
};
