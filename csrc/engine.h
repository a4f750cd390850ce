/* I/O engine interface.
 *
 * The job loop (job.c) prepares an iol_io (file, op, buffer, offset, length), stamps its issue time
 * and hands it to queue(). A synchronous engine does the I/O right there and returns
 * IOL_Q_COMPLETED. An asynchronous engine (libaio, io_uring) returns IOL_Q_QUEUED; the loop then
 * calls commit() (if set) once per batch and reap() to collect completions. An engine must accept
 * up to cfg->iodepth queued I/Os without refusing (it sizes its rings in init()), so the loop never
 * has to take an I/O back.
 *
 * Engines never fail an I/O by returning an error: they fill io->error (an errno value) and
 * io->error_offset, and the loop records it. Engines hold no global state: everything lives in the
 * state pointer init() returns.
 */
#ifndef IOL_ENGINE_H
#define IOL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "config_gen.h"

enum iol_ddir {
    IOL_DDIR_READ = 0,
    IOL_DDIR_WRITE = 1,
    IOL_DDIR_SYNC = 2, /* fsync / fdatasync, for statistics */
    IOL_DDIR_COUNT = 3,
};

enum iol_op {
    IOL_OP_READ = 0,
    IOL_OP_WRITE = 1,
    IOL_OP_FSYNC = 2,
    IOL_OP_FDATASYNC = 3,
};

struct iol_io {
    /* set by the job loop */
    uint8_t op;     /* enum iol_op */
    uint8_t ddir;   /* enum iol_ddir */
    uint8_t eof;    /* set by the engine: nothing could be transferred (end of file/device) */
    uint16_t index; /* slot in the job's I/O pool */
    uint32_t file;  /* index into the job's file list */
    int fd;
    void *buf;
    uint64_t offset; /* absolute offset in fd */
    uint64_t len;
    uint64_t t_issue;  /* ns, taken just before queue() */
    uint64_t t_submit; /* async engines: ns after commit() (for slat) */
    /* set by the engine when the I/O completes */
    uint64_t done;          /* bytes transferred */
    uint32_t short_count;   /* short transfers that had to be continued */
    int error;              /* 0 or an errno value */
    uint64_t error_offset;  /* where the failing transfer started */
    void *engine_priv;      /* per-I/O engine data (iocb, sqe user data, ...) */
};

enum iol_queue_status {
    IOL_Q_COMPLETED = 0, /* the I/O finished inside queue(); completion fields are set */
    IOL_Q_QUEUED = 1,    /* the I/O is in flight; reap() will return it */
};

struct iol_engine_file {
    int fd;
};

#define IOL_ENGINE_SYNC 1u /* queue() always completes: clat == lat, no slat, depth 1 */

struct iol_engine {
    const char *name;
    unsigned flags;
    /* Returns 0 and sets *state, or an errno value with a message in err. */
    int (*init)(const struct iol_config *cfg, const struct iol_engine_file *files, unsigned nfiles,
                void **state, char *err, size_t errlen);
    /* Returns enum iol_queue_status. */
    int (*queue)(void *state, struct iol_io *io);
    /* Optional (NULL for engines that submit in queue()): submit what queue() batched. Returns 0 or
     * an errno value. */
    int (*commit)(void *state);
    /* Wait for at least min completions, store up to max of them in out[]; returns how many, or a
     * negative errno value. Never called on synchronous engines. */
    int (*reap)(void *state, unsigned min, unsigned max, struct iol_io **out);
    void (*cleanup)(void *state);
};

/* NULL if id is not a known engine. */
const struct iol_engine *iol_engine_get(uint32_t id);

extern const struct iol_engine iol_engine_psync;

#endif
