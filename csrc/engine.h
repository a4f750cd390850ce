/* I/O engine interface.
 *
 * The job loop (job.c) prepares an iol_io (file, op, buffer, offset, length), stamps its issue time
 * and hands it to queue(). A synchronous engine does the I/O right there and returns
 * IOL_Q_COMPLETED. An asynchronous engine (libaio, io_uring) returns IOL_Q_QUEUED; the loop then
 * calls commit() to submit what was queued (once per batch, iodepth_batch_submit) and reap() to
 * collect completions. An engine must accept up to cfg->iodepth queued I/Os without refusing (it
 * sizes its rings in init()), so the loop never has to take an I/O back.
 *
 * Asynchronous engines stamp io->t_submit when the I/O has been handed to the kernel (for slat).
 * reap() first submits anything queued but not yet committed. A short transfer is continued by the
 * engine itself (the remainder is submitted again; io->short_count counts it) and only the finished
 * I/O is returned. Engines never fail an I/O by returning an error: they fill io->error (an errno
 * value) and io->error_offset, and return the I/O as completed; the loop records it. Engines hold no
 * global state: everything lives in the state pointer init() returns.
 */
#ifndef IOL_ENGINE_H
#define IOL_ENGINE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "config_gen.h"
#include "pollwin.h"

enum iol_ddir {
    IOL_DDIR_READ = 0,
    IOL_DDIR_WRITE = 1,
    IOL_DDIR_TRIM = 2,
    IOL_DDIR_SYNC = 3, /* fsync / fdatasync, for statistics */
    IOL_DDIR_COUNT = 4,
};

/* The directions that address data (fio's ddir order: read, write, trim); sync comes after them. */
#define IOL_DDIR_IO 3

enum iol_op {
    IOL_OP_READ = 0,
    IOL_OP_WRITE = 1,
    IOL_OP_FSYNC = 2,
    IOL_OP_FDATASYNC = 3,
    IOL_OP_TRIM = 4, /* discard the range: BLKDISCARD on a block device, a punched hole in a file */
};

/* enum iol_engine_id, the IOL_EF_* engine_flags bits and IOL_ENGINE_LIST come from config_gen.h,
 * generated from the engines' specs (src/iolab/ioengines.py). */

struct iol_io {
    /* set by the job loop */
    uint8_t op;     /* enum iol_op */
    uint8_t ddir;   /* enum iol_ddir */
    uint8_t eof;    /* set by the engine: nothing could be transferred (end of file/device) */
    uint8_t blockdev; /* fd is a block device (a trim is a BLKDISCARD there, else a punched hole) */
    uint16_t index; /* slot in the job's I/O pool */
    uint32_t file;  /* index into the job's file list */
    int fd;
    void *buf;
    uint64_t offset; /* absolute offset in fd */
    uint64_t len;
    uint64_t t_issue;  /* ns: when the I/O was meant to start (rate limiting: its scheduled time) */
    uint64_t t_submit; /* ns: handed to the kernel (synchronous engines: when the call started) */
    /* set by the engine when the I/O completes */
    uint64_t done;          /* bytes transferred */
    uint32_t short_count;   /* short transfers that had to be continued */
    int error;              /* 0 or an errno value */
    uint64_t error_offset;  /* where the failing transfer started */
};

enum iol_queue_status {
    IOL_Q_COMPLETED = 0, /* the I/O finished inside queue(); completion fields are set */
    IOL_Q_QUEUED = 1,    /* the I/O is in flight; reap() will return it */
};

struct iol_engine_file {
    int fd;
};

/* What an engine gets at init. files is valid during init() only; the other pointers until cleanup(). */
struct iol_engine_env {
    const struct iol_config *cfg;
    const struct iol_engine_file *files;
    unsigned nfiles;
    unsigned depth;       /* I/O pool size: at most this many I/Os are queued or in flight */
    struct iol_io *ios;   /* the pool; ios[i].index == i */
    void *bufmem;         /* I/O buffers: slot i owns slot_len bytes at bufmem + i * slot_len */
    size_t slot_len;
    struct iol_poll *poll; /* completion-wait policy and counters, owned by the job */
    const int *engine_fds; /* more descriptors for the engine (nbd: extra connections); valid in init() */
    unsigned nengine_fds;
};

#define IOL_ENGINE_SYNC 1u /* queue() always completes: clat == lat, no slat, depth 1 */

struct iol_engine {
    const char *name;
    unsigned flags;
    /* Returns 0 and sets *state, or an errno value with a message in err. Runs in the thread that
     * creates the job, which need not be the one that runs it. */
    int (*init)(const struct iol_engine_env *env, void **state, char *err, size_t errlen);
    /* Optional: called once in the job's thread before the first I/O. 0 or an errno value (message
     * in err). */
    int (*start)(void *state, char *err, size_t errlen);
    /* Returns enum iol_queue_status. */
    int (*queue)(void *state, struct iol_io *io);
    /* Asynchronous engines: submit what queue() batched; returns how many I/Os were handed to the
     * kernel (>= 0), or a negative errno value when submitting is impossible. */
    int (*commit)(void *state);
    /* Wait for at least min completions (min may be 0: do not wait), store up to max of them in
     * out[]; returns how many, or a negative errno value. Never called on synchronous engines. */
    int (*reap)(void *state, unsigned min, unsigned max, struct iol_io **out);
    /* Optional: one line on how the engine was set up (for the result), written into buf. */
    void (*describe)(void *state, char *buf, size_t len);
    void (*cleanup)(void *state);
};

/* NULL if id is not a known engine. */
const struct iol_engine *iol_engine_get(uint32_t id);
/* The most I/Os id keeps in flight (its spec's max_depth); 0 if id is not a known engine. */
unsigned iol_engine_max_depth(uint32_t id);

#define IOL_ENGINE_DECLARE(id, vtable, max_depth) extern const struct iol_engine vtable;
IOL_ENGINE_LIST(IOL_ENGINE_DECLARE)
#undef IOL_ENGINE_DECLARE

/* Helpers shared by the asynchronous engines. */

/* Account a completion result (bytes or -errno) for io. Returns 1 when the I/O is finished (done or
 * failed), 0 when a short transfer left a remainder that must be submitted again (buffer, offset and
 * length of the remainder: iol_io_rest_*). */
static inline int iol_io_result(struct iol_io *io, long long res)
{
    if (io->op == IOL_OP_FSYNC || io->op == IOL_OP_FDATASYNC) {
        if (res < 0) {
            io->error = (int)-res;
            io->error_offset = 0;
        }
        return 1;
    }
    if (__builtin_expect(res == (long long)(io->len - io->done), 1)) {
        io->done = io->len;
        return 1;
    }
    if (res > 0 && (uint64_t)res < io->len - io->done) {
        io->done += (uint64_t)res;
        io->short_count++;
        return 0;
    }
    if (res == 0) {
        /* end of file: fio's asynchronous engines complete the I/O with what it got, no error (the
         * synchronous one fails it with EIO) */
        io->eof = 1;
        return 1;
    }
    if (res < 0) {
        io->error = (int)-res;
    } else {
        io->error = EIO; /* more than asked: cannot happen */
    }
    io->error_offset = io->offset + io->done;
    return 1;
}

/* The part of io still to transfer. */
static inline void *iol_io_rest_buf(const struct iol_io *io)
{
    return (char *)io->buf + io->done;
}

static inline uint64_t iol_io_rest_off(const struct iol_io *io)
{
    return io->offset + io->done;
}

static inline uint64_t iol_io_rest_len(const struct iol_io *io)
{
    return io->len - io->done;
}

/* A trim, done synchronously by every engine (as fio's engines do): the range is discarded on a block
 * device (BLKDISCARD), a hole is punched in a regular file. Sets done or error/error_offset. */
void iol_io_trim(struct iol_io *io);

/* Reset the completion fields before an I/O is queued. */
static inline void iol_io_clear(struct iol_io *io)
{
    io->done = 0;
    io->short_count = 0;
    io->error = 0;
    io->eof = 0;
    io->error_offset = 0;
}

#endif
